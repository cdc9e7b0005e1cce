// esbuild as a user runs it for a browser app: the package's `.wasm`
// (imported as `tokenrelay/wasm`) goes through the file loader, which
// copies it next to the bundle and gives its URL.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';

mkdirSync('dist', { recursive: true });
await build({
  entryPoints: ['src/main.js'],
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  outdir: 'dist',
  loader: { '.wasm': 'file' },
  logLevel: 'warning',
});
copyFileSync('index.html', 'dist/index.html');
