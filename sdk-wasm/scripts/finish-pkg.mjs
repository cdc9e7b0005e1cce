// Finishes sdk-wasm/pkg/ after build.sh has put the wasm and the ESM there:
//   * node.cjs, server.cjs, react.cjs and testing.cjs, CommonJS builds for `require('tokenrelay')`
//     (esbuild bundles the ESM; `import.meta.url` becomes the file's URL),
//     with .d.cts copies of the types so TypeScript types a CJS importer;
//   * the licenses, so the packed tarball carries them.
// Run by build.sh (and so by `npm run build` and `prepack`).
import { build } from 'esbuild';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const pkg = join(here, 'pkg');
const url = '__tokenrelay_import_meta_url';

for (const [entry, out] of [['node.js', 'node.cjs'], ['server.js', 'server.cjs'], ['react.js', 'react.cjs'], ['testing.js', 'testing.cjs']]) {
  await build({
    entryPoints: [join(pkg, entry)],
    outfile: join(pkg, out),
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node18',
    define: { 'import.meta.url': url },
    banner: { js: `const ${url} = require('node:url').pathToFileURL(__filename).href;` },
    external: ['react'],
    logLevel: 'warning',
  });
}
for (const name of ['index', 'server', 'react', 'testing']) {
  const types = readFileSync(join(pkg, `${name}.d.ts`), 'utf8').replaceAll("from './index.js'", "from './index.cjs'");
  writeFileSync(join(pkg, `${name}.d.cts`), types);
}
for (const license of ['LICENSE-MIT', 'LICENSE-APACHE']) {
  copyFileSync(join(here, '..', license), join(pkg, license));
}
console.log(`finished ${pkg}: *.cjs, *.d.cts, licenses`);
