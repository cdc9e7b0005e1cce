// Giving up on connect() while it is still trying (the same test as
// tests/e2e/tests/cancel.rs): an AbortSignal and connect()'s own timeout
// while the app's backend is down (getToken fails, a transient failure the
// connection retries), and connectTimeoutMs against a relay nobody answers
// at (api.test.js checks the options themselves). Everything is
// released (no socket left on the server or in the client, no timer, the
// signal of the getToken call in flight aborted) and getToken is never
// called again. The package runs on one thread and closing is synchronous,
// so "never again" is exact here: not even a call already under way.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import WebSocket from 'ws';
import { Client, TimeoutError, TokenProviderError, TransportError } from '../pkg/node.js';
import { Server, within, WAIT_MS } from './harness.js';

let server;
before(async () => { server = await Server.start(); });
after(async () => { await server?.stop(); });

/** A getToken answering `key` (failing as a backend that is down when
 * `key` is null), counting its calls and keeping the signal
 * each call was given; `reach(n)` waits for the n-th call. */
function counting(key) {
  const calls = { count: 0, signals: [], waiters: new Set() };
  calls.getToken = async (_contextId, options) => {
    calls.count += 1;
    calls.signals.push(options?.signal);
    for (const w of calls.waiters) w();
    if (key === null) throw new Error('the backend is down');
    return key;
  };
  /** Resolves true once the count exceeds `n`, or false after `ms`. */
  calls.above = (n, ms) => new Promise((resolve) => {
    const timer = setTimeout(() => { calls.waiters.delete(check); resolve(false); }, ms);
    const check = () => {
      if (calls.count <= n) return;
      clearTimeout(timer);
      calls.waiters.delete(check);
      resolve(true);
    };
    calls.waiters.add(check);
    check();
  });
  calls.reach = async (n) => {
    assert.ok(await calls.above(n - 1, WAIT_MS), `${calls.count} getToken calls, waited for ${n}`);
  };
  return calls;
}

/** Every socket the client opens, so the test can wait for their close. */
function recordingSockets() {
  const sockets = [];
  class Recorded extends WebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  }
  return { sockets, WebSocket: Recorded };
}

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

/** Waits until every socket the client opened has closed and the server
 * holds none, then checks no timer of the package is left. */
async function released(sockets, timersBefore) {
  await within(Promise.all(sockets.map((ws) => (
    ws.readyState === WebSocket.CLOSED ? null : new Promise((r) => ws.once('close', r))
  ))), 'the client\'s sockets to close');
  const deadline = Date.now() + WAIT_MS;
  while ((await server.rest('GET', '/health')).connections > 0) {
    assert.ok(Date.now() < deadline, 'a socket stayed open on the server');
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(timers() <= timersBefore, `timers before ${timersBefore}, after ${timers()}`);
}

// Quick retries: a connection still running after it was given up on
// would call getToken every 10–20 ms; 500 ms would see about 25 calls.
const QUICK = { reconnectMinDelayMs: 10, reconnectMaxDelayMs: 20 };
const WINDOW_MS = 500;

async function backendDown(extra = {}) {
  const ctx = await server.context();
  const calls = counting(null);
  // The timers of the REST client's own pool exist from here on.
  await server.rest('GET', '/health');
  const rec = recordingSockets();
  const client = new Client(server.clientOptions({ getToken: calls.getToken, WebSocket: rec.WebSocket, ...QUICK, ...extra }));
  return { ctx, calls, sockets: rec.sockets, client };
}

test('connect({signal}) aborted while getToken keeps failing: rejects with the AbortError, everything released, getToken never called again', async () => {
  const { ctx, calls, sockets, client } = await backendDown();
  const before = timers();
  const controller = new AbortController();
  const connecting = client.connect(ctx, { signal: controller.signal }).then(() => null, (e) => e);
  await calls.reach(4);
  controller.abort();
  const after = calls.count;
  const err = await within(connecting, 'connect to reject on abort');
  assert.equal(err?.name, 'AbortError', `got ${err}`);
  // The signal each getToken call got is aborted now, the last one's too.
  assert.ok(calls.signals.every((s) => s?.aborted), 'a getToken signal left unaborted');
  await released(sockets, before);
  assert.equal(await calls.above(after, WINDOW_MS), false, `getToken called ${calls.count - after} times after the abort`);
});

test('connect({timeout}) while getToken keeps failing: TimeoutError caused by the last failure, everything released, getToken never called again', async () => {
  const { ctx, calls, sockets, client } = await backendDown();
  const before = timers();
  let after;
  const connecting = client.connect(ctx, { timeout: 300 }).then(() => null, (e) => {
    after = calls.count;
    return e;
  });
  // Settles at its 300 ms timeout; the bound only catches a hang.
  const err = await within(connecting, 'connect to time out');
  assert.ok(err instanceof TimeoutError, `got ${err}`);
  assert.ok(err.cause instanceof TokenProviderError, `cause ${err.cause}`);
  assert.ok(after >= 2, `${after} getToken calls`);
  await released(sockets, before);
  assert.equal(await calls.above(after, WINDOW_MS), false, `getToken called ${calls.count - after} times after the timeout`);
});

/** A loopback port nothing listens on (bound, then released). */
async function unusedPort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

test('connectTimeoutMs against an unreachable relay: rejects with the last TransportError, everything released, getToken never called again', async () => {
  const ctx = await server.context();
  const calls = counting(await server.clientKey(ctx));
  await server.rest('GET', '/health');
  const before = timers();
  const rec = recordingSockets();
  const client = new Client({
    ...server.clientOptions({ getToken: calls.getToken, WebSocket: rec.WebSocket, ...QUICK }),
    wsUrl: `ws://127.0.0.1:${await unusedPort()}/ws`,
    connectTimeoutMs: 300,
  });
  let after;
  const err = await within(client.connect(ctx).then(() => null, (e) => {
    after = calls.count;
    return e;
  }), 'connect to settle at connectTimeoutMs');
  assert.ok(err instanceof TransportError, `got ${err}`);
  assert.ok(after >= 2, `${after} getToken calls`);
  await released(rec.sockets, before);
  assert.equal(await calls.above(after, WINDOW_MS), false, `getToken called ${calls.count - after} times after connect settled`);
});
