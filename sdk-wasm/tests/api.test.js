// The API web developers expect (issue #13 §3), against a real reference
// server: connect(contextId, { signal, timeout }) that stops everything,
// ask(text, { signal }) that stops the reply, conn.stream(text) as an async
// iterator of one reply's tokens, the timeout and reconnect options, and
// the logger hook (which never sees a key).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import {
  Client, TokenRelayError, TimeoutError, TransportError, ClosedError, TokenStream,
} from '../pkg/node.js';
import { Server, within } from './harness.js';

let server;
before(async () => { server = await Server.start(); });
after(async () => { await server?.stop(); });

const tokens = (n) => Array.from({ length: n }, (_, i) => `t${i}`).join(' ');
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

function waitFor(conn, type, pred = () => true, what = type) {
  return within(new Promise((resolve) => {
    const off = conn.on(type, (e) => { if (pred(e)) { off(); resolve(e); } });
  }), what);
}

/** A ws:// URL nothing listens on: every attempt fails at once (refused). */
async function refusedUrl() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return `ws://127.0.0.1:${port}/ws`;
}

/** A getToken that never answers, recording the signals it was given and
 * resolving `called` on its first call. */
function hangingProvider() {
  let called;
  const provider = (contextId, options) => {
    provider.calls += 1;
    provider.signals.push(options?.signal);
    called();
    return new Promise(() => {});
  };
  provider.calls = 0;
  provider.signals = [];
  provider.called = new Promise((r) => { called = r; });
  return provider;
}

test('option and argument checks throw TypeError', async () => {
  const base = server.clientOptions();
  for (const [extra, message] of [
    [{ requestTimeoutMs: 0 }, /requestTimeoutMs must be a positive number/],
    [{ invocationTimeoutMs: -1 }, /invocationTimeoutMs must be a positive number/],
    [{ reconnectMinDelayMs: 'x' }, /reconnectMinDelayMs must be a non-negative number/],
    [{ reconnectMinDelayMs: 5000, reconnectMaxDelayMs: 100 }, /must not exceed/],
    [{ maxReconnectAttempts: 1.5 }, /maxReconnectAttempts must be a positive integer/],
    [{ logger: {} }, /logger must have a debug\(message\) method/],
  ]) {
    assert.throws(() => new Client({ ...base, ...extra }), { name: 'TypeError', message }, JSON.stringify(extra));
  }
  const client = new Client(base);
  assert.throws(() => client.connect('c', { signal: 'no' }), { name: 'TypeError', message: /signal must be an AbortSignal/ });
  assert.throws(() => client.connect('c', { timeout: 0 }), { name: 'TypeError', message: /timeout must be a positive number/ });
  assert.throws(() => client.connect('c', 5), { name: 'TypeError', message: /options must be an object/ });
});

test('connect with an aborted signal: rejects with its reason, getToken never called', async () => {
  const getToken = hangingProvider();
  const client = new Client(server.clientOptions({ getToken }));
  const err = await client.connect('ctx', { signal: AbortSignal.abort() }).then(() => null, (e) => e);
  assert.ok(err instanceof DOMException, `got ${err}`);
  assert.equal(err.name, 'AbortError');
  const reason = new Error('unmounted');
  assert.equal(await client.connect('ctx', { signal: AbortSignal.abort(reason) }).catch((e) => e), reason);
  assert.equal(getToken.calls, 0);
});

test('aborting connect while getToken is in flight: AbortError, the provider\'s signal aborted, nothing left running', async () => {
  const ctx = await server.context();
  const getToken = hangingProvider();
  const client = new Client(server.clientOptions({ getToken }));
  const before = timers();
  const controller = new AbortController();
  const connecting = client.connect(ctx, { signal: controller.signal }).then(() => null, (e) => e);
  await within(getToken.called, 'the getToken call');
  assert.equal(getToken.signals[0].aborted, false);
  controller.abort();
  const err = await within(connecting, 'connect to reject');
  assert.equal(err.name, 'AbortError');
  assert.ok(err instanceof DOMException);
  assert.equal(getToken.signals[0].aborted, true, 'the getToken call was told to stop');
  // No timer is left: no retry, no connect deadline can fire again.
  assert.ok(timers() <= before, `timers before ${before}, after ${timers()}`);
  assert.equal(getToken.calls, 1);
});

test('aborting connect against an unreachable relay stops every retry and getToken call', async () => {
  const ctx = await server.context();
  let calls = 0;
  let third;
  const thirdCall = new Promise((r) => { third = r; });
  const signals = [];
  const client = new Client(server.clientOptions({
    wsUrl: await refusedUrl(),
    getToken: async (c, { signal }) => {
      calls += 1;
      signals.push(signal);
      if (calls === 3) third();
      return 'any-key';
    },
    reconnectMinDelayMs: 5,
    reconnectMaxDelayMs: 20,
  }));
  const before = timers();
  const controller = new AbortController();
  const connecting = client.connect(ctx, { signal: controller.signal }).then(() => null, (e) => e);
  // It is retrying: three getToken calls, three refused sockets.
  await within(thirdCall, 'three attempts');
  controller.abort();
  const err = await within(connecting, 'connect to reject');
  assert.equal(err.name, 'AbortError');
  const settledAt = calls;
  // Nothing can call getToken again: no timer is armed and the signal
  // every call got is aborted.
  assert.ok(timers() <= before, `timers before ${before}, after ${timers()}`);
  assert.ok(signals.every((s) => s.aborted));
  // One more turn of the event loop's I/O for a socket close to land.
  await new Promise((r) => setImmediate(r));
  assert.equal(calls, settledAt);
});

test('connect({ timeout }): TimeoutError (name and class) with the last attempt as its cause, then nothing runs', async () => {
  const ctx = await server.context();
  // Attempts fail (refused) until the timeout: the cause is the last one.
  const client = new Client(server.clientOptions({
    wsUrl: await refusedUrl(), getToken: async () => 'any-key', reconnectMinDelayMs: 5, reconnectMaxDelayMs: 20,
  }));
  const before = timers();
  const err = await within(client.connect(ctx, { timeout: 300 }).then(() => null, (e) => e), 'connect to time out');
  assert.ok(err instanceof TimeoutError, `got ${err}`);
  assert.ok(err instanceof TokenRelayError);
  assert.equal(err.name, 'TimeoutError');
  assert.equal(err.code, 'timeout');
  assert.ok(err.cause instanceof TransportError, `cause ${err.cause}`);
  assert.ok(timers() <= before, `timers before ${before}, after ${timers()}`);

  // A getToken that hangs: no attempt ever failed, no cause; its signal is
  // aborted.
  const getToken = hangingProvider();
  const hanging = new Client(server.clientOptions({ getToken }));
  const err2 = await within(hanging.connect(ctx, { timeout: 200 }).then(() => null, (e) => e), 'connect to time out');
  assert.ok(err2 instanceof TimeoutError, `got ${err2}`);
  assert.equal(err2.cause, undefined);
  assert.equal(getToken.signals[0].aborted, true);
});

test('AbortSignal.timeout() rejects with its TimeoutError DOMException', async () => {
  const getToken = hangingProvider();
  const client = new Client(server.clientOptions({ getToken }));
  const err = await within(client.connect(await server.context(), { signal: AbortSignal.timeout(100) })
    .then(() => null, (e) => e), 'connect to be aborted');
  assert.ok(err instanceof DOMException, `got ${err}`);
  assert.equal(err.name, 'TimeoutError');
});

test('aborting after connect resolved closes the connection; getToken gets a signal aborted then', async () => {
  const ctx = await server.context();
  const signals = [];
  const client = new Client(server.clientOptions({
    getToken: async (c, { signal }) => { signals.push(signal); return server.clientKey(c); },
  }));
  const controller = new AbortController();
  const conn = await within(client.connect(ctx, { signal: controller.signal }), 'connect');
  assert.equal((await within(conn.ask('[tokens=3] x'), 'reply')).text, tokens(3));
  assert.ok(signals.length >= 1 && signals.every((s) => !s.aborted));
  const closed = waitFor(conn, 'state', (e) => e.state === 'closed');
  controller.abort();
  await closed;
  assert.equal(conn.state, 'closed');
  assert.ok(signals.every((s) => s.aborted));
  await assert.rejects(conn.ask('more'), ClosedError);
});

test('maxReconnectAttempts: gives up after that many retries (getToken called once more than it)', async () => {
  let calls = 0;
  const client = new Client(server.clientOptions({
    wsUrl: await refusedUrl(),
    getToken: async () => { calls += 1; return 'any-key'; },
    reconnectMinDelayMs: 5,
    reconnectMaxDelayMs: 20,
    maxReconnectAttempts: 2,
  }));
  const err = await within(client.connect(await server.context()).then(() => null, (e) => e), 'connect to fail');
  assert.ok(err instanceof TransportError, `got ${err}`);
  assert.equal(calls, 3);
});

test('invocationTimeoutMs: a reply silent for longer fails its request with TimeoutError', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions({ invocationTimeoutMs: 300 })).connect(ctx), 'connect');
  try {
    // 5 s between tokens: the first one never comes within 300 ms.
    const err = await within(conn.ask('[tokens=3 pace_ms=5000] slow').then(() => null, (e) => e), 'the request to time out');
    assert.ok(err instanceof TimeoutError, `got ${err}`);
  } finally {
    conn.close();
  }
});

test('ask(text, { signal }): aborting a streaming reply rejects with AbortError and stops it on the server', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions()).connect(ctx), 'connect');
  try {
    const controller = new AbortController();
    const reply = conn.ask('[tokens=100000 pace_ms=2] long', { signal: controller.signal });
    const ended = waitFor(conn, 'response', (e) => e.response.requestId === reply.requestId, 'the reply to end');
    await waitFor(conn, 'token', () => true, 'the first token');
    controller.abort();
    const err = await reply.then(() => null, (e) => e);
    assert.equal(err?.name, 'AbortError');
    const { response } = await ended;
    assert.equal(response.status, 'stopped');
    assert.ok(response.text.length > 0 && tokens(100000).startsWith(response.text));
    // The connection is still usable.
    assert.equal((await within(conn.ask('[tokens=2] next'), 'next reply')).text, tokens(2));
  } finally {
    conn.close();
  }
});

test('ask(text, { signal }): aborted before its reply started, the reply is stopped as it starts', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions()).connect(ctx), 'connect');
  try {
    const controller = new AbortController();
    const reply = conn.ask('[tokens=100000 pace_ms=2] long', { signal: controller.signal });
    const ended = waitFor(conn, 'response', (e) => e.response.requestId === reply.requestId, 'the reply to end');
    controller.abort(new Error('the user left'));
    await assert.rejects(reply, /the user left/);
    assert.equal((await ended).response.status, 'stopped');
    // An already aborted signal sends nothing.
    await assert.rejects(conn.ask('x', { signal: AbortSignal.abort() }), { name: 'AbortError' });
  } finally {
    conn.close();
  }
});

test('for await (const token of conn.stream(text)): the reply\'s tokens, in order, then its response', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions()).connect(ctx), 'connect');
  try {
    const stream = conn.stream('[tokens=50 pace_ms=1] go');
    assert.ok(stream instanceof TokenStream);
    assert.equal(typeof stream.requestId, 'number');
    const got = [];
    await within((async () => { for await (const t of stream) got.push(t); })(), 'the stream to end');
    assert.deepEqual(got, tokens(50).split(' ').map((w, i) => (i < 49 ? `${w} ` : w)));
    assert.equal(stream.response.text, tokens(50));
    assert.equal(stream.response.status, 'complete');
    assert.equal(stream.response.requestId, stream.requestId);
    // Once only.
    assert.throws(() => stream[Symbol.asyncIterator](), { name: 'TypeError' });
    // Another reply's tokens are not this stream's: two streams at once,
    // each with its own text.
    const a = conn.stream('[echo] alpha beta');
    const b = conn.stream('[echo] gamma delta');
    const collect = async (s) => { let text = ''; for await (const t of s) text += t; return text; };
    assert.deepEqual(await within(Promise.all([collect(a), collect(b)]), 'two streams'), ['alpha beta', 'gamma delta']);
  } finally {
    conn.close();
  }
});

test('stream(): every token exactly once through a socket drop', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions()).connect(ctx), 'connect');
  try {
    const resumed = waitFor(conn, 'connected', (e) => e.resumed, 'a resumed reconnect');
    let text = '';
    let n = 0;
    await within((async () => {
      for await (const t of conn.stream('[tokens=60 pace_ms=5] go')) {
        text += t;
        n += 1;
        if (n === 10) server.fault(ctx, 'drop');
      }
    })(), 'the stream to end');
    await resumed;
    assert.equal(text, tokens(60));
    assert.equal(n, 60);
  } finally {
    conn.close();
  }
});

test('stream() throws when its request fails, and when its signal aborts', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions({ invocationTimeoutMs: 300 })).connect(ctx), 'connect');
  try {
    const failing = (async () => { for await (const t of conn.stream('[tokens=3 pace_ms=5000] slow')) void t; })();
    await assert.rejects(within(failing, 'the stream to fail'), TimeoutError);
  } finally {
    conn.close();
  }
  // A context of its own: the server is still generating the slow reply.
  const other = await within(new Client(server.clientOptions()).connect(await server.context()), 'connect');
  try {
    const controller = new AbortController();
    const seen = [];
    const aborted = (async () => {
      for await (const t of other.stream('[tokens=100000 pace_ms=2] long', { signal: controller.signal })) {
        seen.push(t);
        if (seen.length === 5) controller.abort();
      }
    })();
    await assert.rejects(within(aborted, 'the stream to abort'), { name: 'AbortError' });
    assert.equal(seen.length, 5);
  } finally {
    other.close();
  }
});

test('logger: debug lines for every state change and the reconnect, never a key', async () => {
  const ctx = await server.context();
  const keys = [];
  const lines = [];
  const client = new Client(server.clientOptions({
    getToken: async (c) => { const k = await server.clientKey(c); keys.push(k); return k; },
    logger: { debug: (line) => lines.push(line) },
    refreshAhead: false,
  }));
  const conn = await within(client.connect(ctx), 'connect');
  try {
    const back = waitFor(conn, 'connected', (e) => e.resumed !== undefined, 'the reconnect');
    await server.fault(ctx, 'drop');
    await back;
  } finally {
    conn.close();
  }
  const text = lines.join('\n');
  for (const state of ['fetching_token', 'connecting', 'authenticating', 'connected', 'reconnecting', 'closed']) {
    assert.match(text, new RegExp(`state ${state}`), `a line for ${state}`);
  }
  assert.match(text, /state reconnecting \(attempt \d+\) retry in \d+ ms; cause ConnectionLostError\(connection_lost\)/);
  assert.match(text, /reconnected, missed notifications replayed/);
  assert.ok(lines.every((l) => l.startsWith(`tokenrelay ${ctx}: `)), lines[0]);
  assert.equal(keys.length, 2);
  for (const k of [...keys, server.orgKey]) assert.ok(!text.includes(k), 'a key in the log');
  assert.ok(!/eyJ/.test(text), 'something JWT-like in the log');
});

test('logger: a provider error quoting a key is logged redacted', async () => {
  const ctx = await server.context();
  const key = await server.clientKey(ctx);
  const lines = [];
  const client = new Client(server.clientOptions({
    getToken: async () => { throw Object.assign(new Error(`refused ${key} and pub_tok_abc123`), { code: 'forbidden' }); },
    logger: { debug: (line) => lines.push(line) },
  }));
  await assert.rejects(within(client.connect(ctx), 'connect'), /refused/);
  const text = lines.join('\n');
  assert.match(text, /cause ForbiddenError\(forbidden\): .*refused \[redacted\] and \[redacted\]/);
  assert.ok(!text.includes(key));
});

test('a WebSocket class that throws (constructing, or on a setter) fails connect() with ConfigError, and nothing is left running', async () => {
  const ctx = await server.context();
  const realWs = server.clientOptions().WebSocket;
  const made = [];
  class ThrowsOnSetter extends realWs {
    constructor(...args) {
      super(...args);
      made.push(this);
    }

    set onmessage(_f) { throw new Error('no message handler allowed'); }
  }
  class ThrowsOnConstruct {
    constructor() { throw new Error('no sockets here'); }
  }
  for (const [Ctor, text] of [[ThrowsOnSetter, /no message handler allowed/], [ThrowsOnConstruct, /no sockets here/]]) {
    const before = timers();
    const error = await within(
      new Client(server.clientOptions({ WebSocket: Ctor })).connect(ctx).then(() => null, (e) => e),
      'connect() settled',
    );
    assert.equal(error?.code, 'config', `${Ctor.name}: ${error}`);
    assert.match(error.message, /cannot open a WebSocket/);
    assert.match(error.message, text);
    assert.equal(timers(), before, `${Ctor.name}: a timer left running`);
  }
  // The socket made before its setter threw was closed, not left open.
  assert.equal(made.length, 1);
  await within(new Promise((resolve) => {
    if (made[0].readyState === realWs.CLOSED) resolve();
    else made[0].once('close', resolve);
  }), 'the half-made socket closed');
});

test('a getToken that resolves to something that is not a credential fails connect() with ConfigError, asked once', async () => {
  const ctx = await server.context();
  for (const answer of [42, null, {}, { accessToken: 7 }]) {
    let calls = 0;
    const getToken = async () => { calls += 1; return answer; };
    const error = await within(
      new Client(server.clientOptions({ getToken })).connect(ctx).then(() => null, (e) => e),
      'connect() settled',
    );
    assert.equal(error?.code, 'config', `${JSON.stringify(answer)}: ${error}`);
    assert.match(error.message, /getToken must resolve to a string/);
    assert.equal(calls, 1, `${JSON.stringify(answer)}: a configuration error is not retried`);
  }
});
