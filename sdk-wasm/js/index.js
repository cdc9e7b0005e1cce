// Entry for browsers, web workers and bundlers: the .wasm is fetched from
// next to this file (`new URL(…, import.meta.url)`, which Vite, webpack 5,
// esbuild's file loader, Parcel and Rollup plugins follow), unless the app
// loads it itself with `init({ module })` / `initSync({ module })`.
import wbgInit from './tokenrelay_wasm.js';
import { Client as Base, initWith } from './client.js';

const load = () => wbgInit({ module_or_path: new URL('./tokenrelay_wasm_bg.wasm', import.meta.url) });

/** A client for one tokenrelay server; `connect()` opens connections. */
export class Client extends Base {
  constructor(options) {
    super(options, load);
  }
}

/** Loads the wasm module now, from `options.module` (a `WebAssembly.Module`,
 * the bytes, a `Response`, a URL) or from next to this file. Optional:
 * the first `connect()` loads it otherwise. */
export function init(options) {
  return initWith(options, load);
}

export { initSync, Connection, TokenStream } from './client.js';
export * from './errors.js';
