// Entry for Node, Deno and Bun (tests, SSR, scripts): the .wasm is read from
// disk. Uses the global WebSocket (Node 22+), or the constructor passed as
// `new Client({ WebSocket })` (the `ws` package on Node 18 and 20).
import { readFile } from 'node:fs/promises';
import { initSync as wbgInitSync } from './tokenrelay_wasm.js';
import { Client as Base, initWith } from './client.js';

const load = async () => {
  const bytes = await readFile(new URL('./tokenrelay_wasm_bg.wasm', import.meta.url));
  wbgInitSync({ module: bytes });
};

/** A client for one tokenrelay server; `connect()` opens connections. */
export class Client extends Base {
  constructor(options) {
    super(options, load);
  }
}

/** Loads the wasm module now, from `options.module` or from disk next to
 * this file. Optional: the first `connect()` loads it otherwise. */
export function init(options) {
  return initWith(options, load);
}

export { initSync, Connection, TokenStream } from './client.js';
export * from './errors.js';
