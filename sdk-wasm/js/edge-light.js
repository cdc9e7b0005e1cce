// Entry for Vercel/Next.js edge functions (`edge-light`): the .wasm is imported as
// a compiled `WebAssembly.Module`, with the `?module` suffix these runtimes document (they
// cannot fetch it by URL nor read files).
import wasmModule from './tokenrelay_wasm_bg.wasm?module';
import wbgInit from './tokenrelay_wasm.js';
import { Client as Base, initWith } from './client.js';

// Instantiated asynchronously: the module may come from another realm (the
// edge runtime's sandbox), which `WebAssembly.instantiate` accepts and the
// synchronous path's `instanceof WebAssembly.Module` check does not.
const load = () => wbgInit({ module_or_path: wasmModule });

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
