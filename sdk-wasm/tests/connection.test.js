// The JS surface against a real reference server: argument checks,
// refusals as error classes, reconnect and resume (and stats() counting
// them), the network switch,
// stream tokens, and what close() releases.

import { test, before, after } from 'node:test';
import { createHmac } from 'node:crypto';
import assert from 'node:assert/strict';
import {
  Client, TokenRelayError, ForbiddenError, NotFoundError, UnauthorizedError,
  ClosedError, ConnectionLostError, TokenProviderError,
} from '../pkg/node.js';
import WebSocket from 'ws';
import { Server, within } from './harness.js';

let server;
before(async () => { server = await Server.start(); });
after(async () => { await server?.stop(); });

const tokens = (n) => Array.from({ length: n }, (_, i) => `t${i}`).join(' ');

function waitFor(conn, type, pred = () => true, what = type) {
  return within(new Promise((resolve) => {
    const off = conn.on(type, (e) => { if (pred(e)) { off(); resolve(e); } });
  }), what);
}

test('wrong argument types throw TypeError with a clear message', async () => {
  assert.throws(() => new Client(), { name: 'TypeError', message: /options must be an object/ });
  assert.throws(() => new Client({ wsUrl: 'http://x', getToken: () => 't' }), { name: 'TypeError', message: /wsUrl must be a ws:\/\/ or wss:\/\//i });
  assert.throws(() => new Client({ wsUrl: 'ws://x/ws' }), { name: 'TypeError', message: /getToken must be a function/ });
  assert.throws(() => new Client({ wsUrl: 'ws://x/ws', getToken: () => 't', WebSocket: 3 }), { name: 'TypeError', message: /WebSocket must be a WebSocket constructor/ });
  assert.throws(() => new Client({ wsUrl: 'ws://x/ws', getToken: () => 't', clientKey: 5 }), { name: 'TypeError', message: /clientKey must be a string/ });
  const client = new Client(server.clientOptions());
  assert.throws(() => client.connect(42), { name: 'TypeError', message: /contextId must be a non-empty string, got number/ });
  const conn = await client.connect(await server.context());
  try {
    assert.throws(() => conn.ask(42), { name: 'TypeError', message: /text must be a string, got number/ });
    assert.throws(() => conn.on('tokens', () => {}), { name: 'TypeError', message: /unknown event type "tokens"/ });
    assert.throws(() => conn.on('token', 'f'), { name: 'TypeError', message: /listener must be a function/ });
    assert.throws(() => conn.sendToolResponses([{ toolCallId: 1 }]), { name: 'TypeError' });
    assert.throws(() => conn.setNetworkAvailable('yes'), { name: 'TypeError' });
  } finally {
    conn.close();
  }
});

test('a context that does not exist: connect rejects with NotFoundError, no retry', async () => {
  const options = server.clientOptions({ getToken: async () => server.clientKey(await server.context()) });
  const err = await within(new Client(options).connect('no-such-context').then(() => null, (e) => e), 'refusal');
  assert.ok(err instanceof NotFoundError, `got ${err}`);
  assert.ok(err instanceof TokenRelayError);
  assert.equal(err.code, 'not_found');
});

test('a key scoped to another context: ForbiddenError, terminal', async () => {
  const other = await server.context();
  const mine = await server.context();
  let calls = 0;
  const options = server.clientOptions({ getToken: async () => { calls += 1; return server.clientKey(other); } });
  const err = await within(new Client(options).connect(mine).then(() => null, (e) => e), 'refusal');
  assert.ok(err instanceof ForbiddenError, `got ${err}`);
  assert.equal(err.code, 'forbidden');
  assert.equal(calls, 1);
});

test('getToken rejecting with code "forbidden" ends the connection at once', async () => {
  let calls = 0;
  const denied = Object.assign(new Error('this user may not read this context'), { code: 'forbidden' });
  const options = server.clientOptions({ getToken: async () => { calls += 1; throw denied; } });
  const err = await within(new Client(options).connect(await server.context()).then(() => null, (e) => e), 'refusal');
  assert.ok(err instanceof ForbiddenError, `got ${err}`);
  assert.match(err.message, /may not read this context/);
  assert.equal(calls, 1);
});

test('a failing getToken is retried with backoff, then connects', async () => {
  const ctx = await server.context();
  let calls = 0;
  // Fails the first call of the first connect and of the reconnect below.
  const options = server.clientOptions({
    getToken: async (c) => {
      calls += 1;
      if (calls === 1 || calls === 3) throw new Error(`backend hiccup ${calls}`);
      return server.clientKey(c);
    },
    refreshAhead: false, // count the calls one connection at a time
  });
  const client = new Client(options);
  const conn = await within(client.connect(ctx), 'connect');
  try {
    // The first failure happened before connect() resolved (no listener
    // could see its states); the state is now connected.
    assert.equal(conn.state, 'connected');
    assert.equal(calls, 2);
    // The same failure on a reconnect, where its states can be seen.
    const states = [];
    conn.on('state', (e) => states.push(e));
    const back = waitFor(conn, 'connected', () => true, 'the reconnect');
    await server.fault(ctx, 'drop');
    await back;
    assert.equal(calls, 4);
    assert.deepEqual(states.map((e) => e.state), [
      'reconnecting', 'fetching_token', // the drop, then the failing call
      'reconnecting', 'fetching_token', 'connecting', 'authenticating', 'connected',
    ]);
    const [dropped, , retry] = states;
    assert.ok(dropped.cause instanceof ConnectionLostError, `cause ${dropped.cause}`);
    assert.equal(dropped.cause.code, 'connection_lost');
    // The provider's failure is the cause of a retry on the backoff
    // schedule: a delay is announced and the attempt count grows.
    assert.ok(retry.cause instanceof TokenProviderError, `cause ${retry.cause}`);
    assert.equal(retry.cause.code, 'token_provider');
    assert.match(retry.cause.message, /backend hiccup 3/);
    assert.equal(typeof retry.retryIn, 'number');
    assert.ok(retry.retryIn >= 0, `retryIn ${retry.retryIn}`);
    assert.equal(retry.attempt, dropped.attempt + 1);
    assert.equal(states.at(-1).attempt, 0);
    assert.equal(states.at(-1).cause, null);
    assert.equal((await within(conn.ask('[tokens=3] x'), 'reply')).text, tokens(3));
  } finally {
    conn.close();
  }
});

test('a token the server refuses: UnauthorizedError as the cause, one fresh token at once', async () => {
  const ctx = await server.context();
  let calls = 0;
  // Refuses the first key of the first connect and of the reconnect below.
  const options = server.clientOptions({
    getToken: async (c) => { calls += 1; return calls === 1 || calls === 3 ? 'not-a-real-key' : server.clientKey(c); },
    refreshAhead: false, // count the calls one connection at a time
  });
  const client = new Client(options);
  const conn = await within(client.connect(ctx), 'connect');
  try {
    assert.equal(calls, 2);
    const r = await within(conn.ask('[tokens=2] x'), 'reply');
    assert.equal(r.text, tokens(2));
    // The same refusal on a reconnect, where its states can be seen.
    const states = [];
    conn.on('state', (e) => states.push(e));
    const back = waitFor(conn, 'connected', () => true, 'the reconnect');
    await server.fault(ctx, 'drop');
    await back;
    assert.equal(calls, 4, 'one fresh key after the refusal, no more');
    assert.deepEqual(states.map((e) => e.state), [
      'reconnecting', 'fetching_token', 'connecting', 'authenticating', // the refused key
      'reconnecting', 'fetching_token', 'connecting', 'authenticating', 'connected',
    ]);
    const refused = states[4];
    assert.ok(refused.cause instanceof UnauthorizedError, `cause ${refused.cause}`);
    assert.equal(refused.cause.code, 'unauthorized');
    assert.equal(refused.cause.serverCode, 'unauthorized');
    // At once, and without spending the retry budget.
    assert.equal(refused.retryIn, 0);
    assert.equal(refused.attempt, states[0].attempt);
    assert.equal(states.at(-1).attempt, 0);
    assert.equal((await within(conn.ask('[tokens=2] y'), 'reply')).text, tokens(2));
  } finally {
    conn.close();
  }
});

test('close 4001 (credential expired): UnauthorizedError as the cause, a fresh key at once', async () => {
  const ctx = await server.context();
  const options = server.clientOptions({ refreshAhead: false });
  const conn = await within(new Client(options).connect(ctx), 'connect');
  try {
    const reconnecting = waitFor(conn, 'state', (e) => e.state === 'reconnecting');
    const back = waitFor(conn, 'connected');
    await server.fault(ctx, 'close_4001');
    const e = await reconnecting;
    assert.ok(e.cause instanceof UnauthorizedError, `cause ${e.cause}`);
    assert.equal(e.retryIn, 0);
    await back;
    assert.equal(options.getToken.calls, 2);
  } finally {
    conn.close();
  }
});

test('refresh ahead: a reconnect presents the key fetched while connected, not a new getToken call', async () => {
  // getToken answers twice (the connection's key, then the spare fetched
  // once attached) and never again: the reconnect after the server closes
  // the socket must not need it.
  const ctx = await server.context();
  let calls = 0;
  let sawSpare;
  const spareFetched = new Promise((resolve) => { sawSpare = resolve; });
  const options = server.clientOptions({
    getToken: (c) => {
      calls += 1;
      if (calls === 2) sawSpare();
      return calls > 2 ? new Promise(() => {}) : server.clientKey(c);
    },
  });
  const conn = await within(new Client(options).connect(ctx), 'connect');
  try {
    await within(spareFetched, 'the spare fetch');
    const reconnecting = waitFor(conn, 'state', (e) => e.state === 'reconnecting');
    const back = waitFor(conn, 'connected');
    await server.fault(ctx, 'close_1001');
    await within(reconnecting, 'the drop');
    await within(back, 'the reconnect with the spare');
    assert.equal((await within(conn.ask('[echo] after'), 'reply')).text, 'after');
    assert.equal(calls, 3, 'the next spare is asked for once attached again');
  } finally {
    conn.close();
  }
});

test('every kind of token arrives exact: plain, escaped, non-ASCII, bigger than the frame buffer', async () => {
  // Plain ASCII tokens cross as slices of the frame JS already holds; the
  // others (escapes, non-ASCII, a frame too big for the wasm frame buffer)
  // take the other paths. All must give the same text.
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions()).connect(ctx), 'connect');
  try {
    const seen = [];
    conn.on('token', ({ token }) => seen.push(token));
    const words = ['plain', 'é', '"quoted"', 'back\\slash', 'bell\u0007', '😀', 'x'.repeat(9000), 'end'];
    const reply = await within(conn.ask(`[echo] ${words.join(' ')}`), 'reply');
    const expected = words.join(' ');
    assert.equal(reply.text, expected);
    assert.deepEqual(seen, words.map((w, i) => (i < words.length - 1 ? `${w} ` : w)));
  } finally {
    conn.close();
  }
});

test('an unpaced burst arrives whole and in order (frames cross to wasm in batches)', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions()).connect(ctx), 'connect');
  try {
    const seen = [];
    conn.on('token', ({ token }) => seen.push(token));
    const reply = await within(conn.ask('[tokens=3000 pace_ms=0] go'), 'reply');
    assert.equal(reply.text, tokens(3000));
    assert.equal(seen.length, 3000);
    assert.equal(seen.join(''), tokens(3000));
  } finally {
    conn.close();
  }
});

test('a drop mid-reply: fresh key, resume, every token exactly once', async () => {
  const ctx = await server.context();
  const options = server.clientOptions();
  const conn = await within(new Client(options).connect(ctx), 'connect');
  try {
    const seen = [];
    conn.on('token', ({ token }) => seen.push(token));
    const resumed = waitFor(conn, 'connected', (e) => e.resumed, 'a resumed reconnect');
    const dropped = waitFor(conn, 'state', (e) => e.state === 'reconnecting', 'reconnecting');
    let faulted = false;
    conn.on('token', () => {
      if (!faulted && seen.length === 10) { faulted = true; server.fault(ctx, 'drop'); }
    });
    const reply = await within(conn.ask('[tokens=80 pace_ms=5] go'), 'reply');
    const state = await dropped;
    assert.ok(state.cause instanceof ConnectionLostError, `cause ${state.cause}`);
    await resumed;
    assert.equal(reply.status, 'complete');
    assert.equal(reply.text, tokens(80));
    assert.equal(seen.join(''), tokens(80));
    assert.ok(options.getToken.calls >= 2);
    // stats() counts what just happened, from the core's counters.
    const s = conn.stats();
    assert.deepEqual([s.connects, s.reconnects, s.resumes, s.interrupted], [2, 1, 1, 0], JSON.stringify(s));
    assert.equal(s.tokens, 80);
    assert.ok(s.tokenFetches >= 2 && s.tokenFetches <= options.getToken.calls, JSON.stringify(s));
    assert.ok(s.framesReceived > 80 && s.bytesReceived > s.framesReceived, JSON.stringify(s));
    assert.ok(Object.isFrozen(s));
  } finally {
    conn.close();
  }
  assert.equal(conn.stats().tokens, 80, 'still readable once closed');
});

test('close 1011 mid-reply also heals', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions()).connect(ctx), 'connect');
  try {
    let n = 0;
    conn.on('token', () => { n += 1; if (n === 5) server.fault(ctx, 'close_1011'); });
    const reply = await within(conn.ask('[tokens=40 pace_ms=5] go'), 'reply');
    assert.equal(reply.text, tokens(40));
  } finally {
    conn.close();
  }
});

test('offline pauses retries; online reconnects at once', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions()).connect(ctx), 'connect');
  try {
    conn.setNetworkAvailable(false);
    const waiting = waitFor(conn, 'state', (e) => e.state === 'reconnecting');
    await server.fault(ctx, 'drop');
    await waiting;
    // Nothing happens while offline. An attempt shows as a state change
    // (`fetching_token`), and the first retry after a drop is immediate: a
    // connection that ignored the switch would change state at once. Waits
    // for such a change itself, bounded by a window far beyond that.
    let off;
    const stirred = await within(new Promise((resolve) => { off = conn.on('state', resolve); }), 'a state change while offline', 1500)
      .then((e) => e.state, () => null)
      .finally(() => off());
    assert.equal(stirred, null, `the connection went ${stirred} while offline`);
    assert.equal(conn.state, 'reconnecting');
    const back = waitFor(conn, 'state', (e) => e.state === 'connected');
    conn.setNetworkAvailable(true);
    await back;
    assert.equal((await within(conn.ask('[echo] again'), 'reply')).text, 'again');
  } finally {
    conn.close();
  }
});

test('a single-use stream token ({streamToken}) opens the socket', async () => {
  const ctx = await server.context();
  const options = server.clientOptions({
    getToken: async () => ({ streamToken: (await server.rest('GET', '/api/v1/token?ttl=60')).token }),
  });
  const conn = await within(new Client(options).connect(ctx), 'connect');
  try {
    assert.equal((await conn.ask('[tokens=4] hi')).text, tokens(4));
  } finally {
    conn.close();
  }
});

test('events: the async iterator and on() see the same stream, typed', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions()).connect(ctx), 'connect');
  const seen = [];
  const reading = (async () => {
    for await (const ev of conn) seen.push(ev.type);
  })();
  const reply = await within(conn.ask('[tool=web_search events=1] weather'), 'reply');
  assert.deepEqual(reply.toolCalls.map((c) => c.toolName), ['web_search']);
  conn.close();
  await within(reading, 'the iterator to end');
  for (const t of ['ack', 'response_started', 'tool_call', 'tool_response', 'token', 'response', 'state']) {
    assert.ok(seen.includes(t), `${t} in ${seen}`);
  }
  assert.equal(seen.at(-1), 'state');
});

test('close() ends what is pending and releases every timer', async () => {
  const ctx = await server.context();
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  // Every socket the connection opens, to wait for their close handshakes.
  const sockets = [];
  class Recorded extends WebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  }
  const conn = await within(new Client(server.clientOptions({ WebSocket: Recorded })).connect(ctx), 'connect');
  const streaming = conn.ask('[tokens=200 pace_ms=20] long');
  await waitFor(conn, 'token');
  const queued = conn.ask('[tokens=2] next');
  conn.close();
  // The reply that was streaming ends interrupted with what had arrived;
  // the one that had not started rejects.
  const partial = await streaming;
  assert.equal(partial.status, 'interrupted');
  assert.ok(tokens(200).startsWith(partial.text));
  await assert.rejects(queued, (e) => e instanceof ClosedError && e.code === 'closed');
  assert.equal(conn.state, 'closed');
  await assert.rejects(conn.ask('more'), ClosedError);
  // The last timer to go is the socket's close handshake (the `ws`
  // package's): wait for the sockets' close events themselves.
  assert.equal(sockets.length, 1);
  await within(Promise.all(sockets.map((ws) => (
    ws.readyState === WebSocket.CLOSED ? null : new Promise((r) => ws.once('close', r))
  ))), 'the sockets to finish closing');
  assert.ok(timers() <= before, `timers before ${before}, after ${timers()}`);
});

/** `key` re-signed with a secret the server does not have: a well-formed
 * HS256 JWT, unexpired, for the right context, that no server accepts. */
function forged(key) {
  const [header, payload] = key.split('.');
  const signature = createHmac('sha256', 'not-the-servers-secret-not-the-servers')
    .update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

test('a fresh key the server always refuses: connect rejects with UnauthorizedError at once, after two getToken calls, and none after', async () => {
  // The core's rule (the same in every SDK): a refused key gets one fresh
  // key at once; that one refused too, before any attachment, getToken
  // mints keys this server does not take, and connect rejects with the
  // refusal at once, not at its deadline (10 minutes here).
  const ctx = await server.context();
  const bad = forged(await server.clientKey(ctx));
  let calls = 0;
  let settled = false;
  let calledAfter;
  const calledAgain = new Promise((resolve) => { calledAfter = resolve; });
  const options = server.clientOptions({
    getToken: async () => {
      calls += 1;
      if (settled) calledAfter();
      return bad;
    },
    connectTimeoutMs: 600_000,
    // Quick retries: a connection that kept retrying would call getToken
    // again within 100 ms.
    reconnectMinDelayMs: 50,
    reconnectMaxDelayMs: 100,
  });
  const err = await within(new Client(options).connect(ctx).then(() => null, (e) => e), 'connect with a key always refused to settle');
  settled = true;
  assert.ok(err instanceof UnauthorizedError, `got ${err}`);
  assert.equal(err.code, 'unauthorized');
  assert.equal(calls, 2, 'the first key and one fresh key, nothing more');
  // Failed: getToken is never called again. Waits for that call itself,
  // bounded (ten retry delays).
  const again = await within(calledAgain.then(() => true), 'another getToken call', 1000).catch(() => false);
  assert.equal(again, false, `getToken called again after connect settled (${calls} calls)`);
});

test('several connections on one client at once: each reply lands on its own connection only', async () => {
  const client = new Client(server.clientOptions());
  const contexts = [await server.context(), await server.context(), await server.context()];
  const conns = await within(Promise.all(contexts.map((ctx) => client.connect(ctx))), 'three connects');
  const [a, b, c] = conns;
  try {
    assert.deepEqual(conns.map((x) => x.contextId), contexts);
    const seen = new Map(conns.map((x) => [x, []]));
    for (const [conn, list] of seen) conn.on('token', (e) => list.push(e));
    const bWords = Array.from({ length: 30 }, (_, i) => `b${i}`);
    const cWords = Array.from({ length: 30 }, (_, i) => `c${i}`);
    // a streams until it is stopped, so b's and c's replies, sent
    // together, stream and complete while a's is still streaming.
    const aReply = a.ask('[tokens=100000 pace_ms=2] a');
    let aEnded = false;
    aReply.then(() => { aEnded = true; }, () => { aEnded = true; });
    await waitFor(a, 'token', () => true, "a's first token");
    const [rb, rc] = await within(Promise.all([
      b.ask(`[pace_ms=3] [echo] ${bWords.join(' ')}`),
      c.ask(`[pace_ms=3] [echo] ${cWords.join(' ')}`),
    ]), "b's and c's replies");
    assert.equal(aEnded, false, "a's reply ended before b's and c's");
    await within(a.stop(), 'stop a');
    const ra = await within(aReply, "a's stopped reply");

    assert.equal(ra.status, 'stopped');
    assert.equal(rb.status, 'complete');
    assert.equal(rc.status, 'complete');
    assert.equal(rb.text, bWords.join(' '));
    assert.equal(rc.text, cWords.join(' '));
    assert.ok(ra.text.length > 0 && tokens(100000).startsWith(ra.text), ra.text.slice(0, 40));
    assert.equal(new Set([ra.id, rb.id, rc.id]).size, 3);
    // Each connection saw its own reply's tokens and nothing else.
    for (const [conn, r] of [[a, ra], [b, rb], [c, rc]]) {
      const list = seen.get(conn);
      assert.deepEqual([...new Set(list.map((e) => e.responseId))], [r.id]);
      assert.equal(list.map((e) => e.token).join(''), r.text);
    }
    const asTokens = (words) => words.map((w, i) => (i < words.length - 1 ? `${w} ` : w));
    assert.deepEqual(seen.get(b).map((e) => e.token), asTokens(bWords));
    assert.deepEqual(seen.get(c).map((e) => e.token), asTokens(cWords));
  } finally {
    for (const conn of conns) conn.close();
  }
});
