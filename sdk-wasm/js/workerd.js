// Entry for Cloudflare Workers (workerd, wrangler): the .wasm is imported as
// a compiled `WebAssembly.Module`, the way these runtimes load wasm (they
// cannot fetch it by URL nor read files).
import wasmModule from './tokenrelay_wasm_bg.wasm';
import { initSync as wbgInitSync } from './tokenrelay_wasm.js';
import { Client as Base, initWith } from './client.js';

const load = () => { wbgInitSync({ module: wasmModule }); };

/** A client for one tokenrelay server; `connect()` opens connections. */
export class Client extends Base {
  constructor(options) {
    super(options, load);
  }
}

/** Loads the wasm module now (optional). */
export function init(options) {
  return initWith(options, load);
}

export { initSync, Connection, TokenStream } from './client.js';
export * from './errors.js';
