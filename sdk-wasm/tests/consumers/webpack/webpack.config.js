// webpack 5 as a user configures it for a browser app: nothing for the
// package's wasm (webpack follows `new URL('….wasm', import.meta.url)` and
// emits the file as an asset).
import { fileURLToPath } from 'node:url';

export default {
  mode: 'production',
  entry: './src/main.js',
  output: { path: fileURLToPath(new URL('./dist', import.meta.url)), filename: 'main.js', clean: true },
  performance: { hints: false },
};
