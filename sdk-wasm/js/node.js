// Entry for Node (tests, SSR): the .wasm is read from disk. Uses the global
// WebSocket, or the constructor passed as `new Client({WebSocket})`.
import { readFile } from 'node:fs/promises';
import { initSync } from './tokenrelay_wasm.js';
import { setInitializer } from './client.js';

setInitializer(async () => {
  const bytes = await readFile(new URL('./tokenrelay_wasm_bg.wasm', import.meta.url));
  initSync({ module: bytes });
});

export { Client, Connection } from './client.js';
export * from './errors.js';
