// Loading the wasm module yourself: initSync({ module }) with a compiled
// WebAssembly.Module, before any connect (its own file: node --test runs
// each file in a fresh process, so nothing has loaded the module yet).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, init, initSync } from '../pkg/node.js';
import { Server, within, root } from './harness.js';

let server;
before(async () => { server = await Server.start(); });
after(async () => { await server?.stop(); });

test('initSync({ module }) loads the module; init() and connect() then use it', async () => {
  assert.throws(() => initSync({ module: 'tokenrelay_wasm_bg.wasm' }), { name: 'TypeError', message: /WebAssembly.Module or the .wasm bytes/ });
  assert.throws(() => initSync(), { name: 'TypeError' });
  await assert.rejects(init(5), { name: 'TypeError', message: /options must be an object/ });
  const bytes = readFileSync(join(root, 'sdk-wasm', 'pkg', 'tokenrelay_wasm_bg.wasm'));
  initSync({ module: new WebAssembly.Module(bytes) });
  // Loaded: a second load of anything is a no-op, even of something that
  // is not a module at all.
  initSync({ module: new Uint8Array(4) });
  await init({ module: new Uint8Array(4) });
  const conn = await within(new Client(server.clientOptions()).connect(await server.context()), 'connect');
  try {
    assert.equal((await within(conn.ask('[echo] loaded by hand'), 'reply')).text, 'loaded by hand');
  } finally {
    conn.close();
  }
});
