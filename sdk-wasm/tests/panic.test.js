// A panic in wasm becomes a rejected promise and an error event on every
// connection, never an uncaught exception. In its own file: node --test runs
// each file in its own process, and a panic ends this module instance.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, PanicError } from '../pkg/node.js';
import { __crashForTests } from '../pkg/client.js';
import WebSocket from 'ws';
import { Server, within } from './harness.js';

let server;
after(async () => { await server?.stop(); });

test('a panic rejects pending requests and reports an error event', async () => {
  server = await Server.start();
  const ctx = await server.context();
  const sockets = [];
  class Recorded extends WebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  }
  const conn = await within(new Client(server.clientOptions({ WebSocket: Recorded })).connect(ctx), 'connect');
  assert.equal(sockets.length, 1);
  const errors = [];
  conn.on('error', (e) => errors.push(e.error));
  const states = [];
  conn.on('state', (e) => states.push(e.state));
  const reply = conn.ask('[tokens=500 pace_ms=10] long');
  // A second connection whose key is still being fetched when the module
  // dies: the key's late answer must not reach the dead module.
  let giveKey;
  const keyAsked = new Promise((resolve) => {
    giveKey = (key) => resolve(key);
  });
  let fetching;
  const fetched = new Promise((resolve) => { fetching = resolve; });
  const secondSockets = [];
  class Counted extends WebSocket {
    constructor(...args) {
      super(...args);
      secondSockets.push(this);
    }
  }
  const second = new Client(server.clientOptions({
    WebSocket: Counted,
    getToken: () => {
      fetching();
      return keyAsked;
    },
  })).connect(ctx).then(() => null, (e) => e);
  await within(fetched, 'the second connection asked for a key');
  assert.throws(() => __crashForTests(), PanicError);
  await assert.rejects(reply, (e) => e instanceof PanicError && /panic requested by the test suite \(sdk-wasm\/src\/js_api\.rs:\d+\)/.test(e.message));
  assert.ok((await second) instanceof PanicError);
  giveKey(await server.clientKey(ctx));
  // Promise reactions run before the timer: had the key reached the dead
  // module, its session would have opened a socket by now.
  await new Promise((resolve) => { setTimeout(resolve, 0); });
  assert.equal(secondSockets.length, 0, 'the late key reached the dead module');
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof PanicError);
  assert.deepEqual(states, ['failed']);
  assert.equal(conn.state, 'failed');
  // Further calls fail cleanly, and the connection lets go of its socket
  // (and its timer and listeners): a dead module is never called again,
  // and the server stops streaming to it.
  assert.throws(() => conn.sendMessage('x'), PanicError);
  await within(new Promise((resolve) => {
    if (sockets[0].readyState === WebSocket.CLOSED) resolve();
    else sockets[0].once('close', resolve);
  }), 'the socket closed after the panic');
  assert.equal(errors.length, 1);
  assert.deepEqual(states, ['failed']);
  const other = await new Client(server.clientOptions()).connect(ctx).then(() => null, (e) => e);
  assert.ok(other instanceof PanicError);
});
