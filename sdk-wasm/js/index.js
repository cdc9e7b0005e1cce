// Entry for browsers and bundlers: the .wasm is fetched next to this file.
import init from './tokenrelay_wasm.js';
import { setInitializer } from './client.js';

setInitializer(() => init({ module_or_path: new URL('./tokenrelay_wasm_bg.wasm', import.meta.url) }));

export { Client, Connection } from './client.js';
export * from './errors.js';
