// No message lost, none said twice (issue #17), through the browser
// package in Node against the real reference server: the socket is cut at
// every point around a message, many rounds, and each time the app gets one
// complete reply and the context's history holds the message once; messages
// sent while offline are queued (conn.pending), bounded by count and age,
// sent in order once back, and failed with their own error by close().

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Client, QueueFullError, QueueExpiredError, ClosedBeforeSentError, ClosedError,
  ConnectionLostError, TokenRelayError,
} from '../pkg/node.js';
import { Server, within, WAIT_MS } from './harness.js';

let server;
before(async () => { server = await Server.start(); });
after(async () => { await server?.stop(); });

/** Polls `cond` until it holds: for states the connection reaches on its
 * own (a drop noticed). */
async function until(what, cond) {
  const deadline = Date.now() + WAIT_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The context's history once it holds `replies` replies (the last is
 * saved just after its stop went out: wait for it). */
async function history(ctx, replies = 0) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const { messages } = await server.rest('GET', `/context/${ctx}`);
    const saved = {
      humans: messages.filter((m) => m.sender === 'human').map((m) => m.message),
      ais: messages.filter((m) => m.sender === 'ai').length,
    };
    if (saved.ais >= replies || Date.now() > deadline) return saved;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Cuts the socket with the network marked down: the connection waits for
 * the network instead of reconnecting, so what is sent now queues. */
async function goOffline(ctx, conn) {
  conn.setNetworkAvailable(false);
  await server.fault(ctx, 'drop');
  await until('the drop is noticed', () => conn.state === 'reconnecting');
}

const FAST_RECONNECT = { reconnectMinDelayMs: 5, reconnectMaxDelayMs: 20 };

test('every message is answered once and saved once, whatever the cut', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions(FAST_RECONNECT)).connect(ctx), 'connect');
  const cuts = ['after the server took it', 'just before', 'racing', 'mid-reply'];
  const rounds = 24;
  try {
    for (let round = 0; round < rounds; round += 1) {
      const cut = cuts[round % cuts.length];
      const text = `m${round}`;
      let reply;
      if (cut === 'after the server took it') {
        // The server takes it, then drops the socket before it answers:
        // the client cannot know it arrived.
        const { reconnects } = conn.stats();
        // Armed on the one socket before the hook answers, so this message
        // meets it; a reconnect follows.
        assert.equal((await server.fault(ctx, 'drop_before_answer')).sockets, 1);
        reply = await within(conn.ask(`[echo] ${text}`), `${cut} ${round}`);
        assert.ok(conn.stats().reconnects > reconnects, `${cut} ${round}: not cut`);
      } else if (cut === 'just before') {
        // It goes into a dying socket, or waits for the next one.
        await server.fault(ctx, 'drop');
        reply = await within(conn.ask(`[echo] ${text}`), `${cut} ${round}`);
      } else if (cut === 'racing') {
        // The drop and the message race on the way.
        [, reply] = await within(
          Promise.all([server.fault(ctx, 'drop'), conn.ask(`[echo] ${text}`)]), `${cut} ${round}`);
      } else {
        // After the reply's first token: resume heals it.
        const stream = conn.stream(`[echo] [pace_ms=5] ${text} and more words to stream`);
        const got = [];
        for await (const token of stream) {
          got.push(token);
          if (got.length === 1) await server.fault(ctx, 'drop');
        }
        reply = stream.response;
        assert.equal(got.join(''), reply.text, `${cut} ${round}: one gapless reply`);
      }
      assert.equal(reply.status, 'complete', `${cut} round ${round}`);
      assert.ok(reply.text.startsWith(text), `${cut} round ${round}: ${reply.text}`);
      if (cut !== 'mid-reply') assert.equal(reply.text, text, `${cut} round ${round}`);
    }
  } finally {
    conn.close();
  }
  // Every message once, in order; every reply saved once (the last one is
  // saved just after its stop went out: wait for it).
  const saved = await history(ctx, rounds);
  assert.equal(saved.humans.length, rounds, JSON.stringify(saved.humans));
  saved.humans.forEach((m, round) => assert.ok(`${m} `.includes(`m${round} `), `round ${round}: ${m}`));
  assert.equal(saved.ais, rounds);
});

test('offline messages are pending, bounded by count, and sent in order once back', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions({ maxQueued: 3 })).connect(ctx), 'connect');
  try {
    await goOffline(ctx, conn);
    assert.equal(conn.pending, 0);
    const replies = [0, 1, 2].map((i) => {
      const reply = conn.ask(`[echo] q${i}`);
      assert.equal(conn.pending, i + 1, 'counted once sent');
      return reply;
    });
    // The fourth is refused at once, typed; the three stay queued.
    const refused = await conn.ask('[echo] q3').then(() => null, (e) => e);
    assert.ok(refused instanceof QueueFullError, `got ${refused}`);
    assert.equal(refused.code, 'queue_full');
    assert.equal(conn.pending, 3);
    // Sent in order, and answered in order: the server runs a context's
    // invocations in the order they arrive (conversation::ArrivalOrder).
    const acks = [];
    const ended = [];
    conn.on('ack', (e) => acks.push(e.requestId));
    conn.on('response', (e) => ended.push(e.response.requestId));
    conn.setNetworkAvailable(true);
    const done = await within(Promise.all(replies), 'the queued messages are answered');
    await until('every ack', () => acks.length === 3);
    assert.deepEqual(acks, replies.map((r) => r.requestId), 'sent in the order queued');
    assert.deepEqual(done.map((r) => [r.requestId, r.text, r.status]),
      done.map((r, i) => [replies[i].requestId, `q${i}`, 'complete']));
    assert.deepEqual(replies.map((r) => r.requestId), [...replies.map((r) => r.requestId)].sort((a, b) => a - b));
    assert.deepEqual(ended, replies.map((r) => r.requestId), 'answered in the order sent');
    assert.equal(conn.pending, 0);
  } finally {
    conn.close();
  }
  assert.deepEqual((await history(ctx, 3)).humans, ['[echo] q0', '[echo] q1', '[echo] q2']);
});

test('a message queued too long fails while still offline, and is never sent', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions({ maxQueuedAgeMs: 200 })).connect(ctx), 'connect');
  try {
    await goOffline(ctx, conn);
    const err = await within(conn.ask('[echo] stale').then(() => null, (e) => e), 'the aged-out message fails');
    assert.ok(err instanceof QueueExpiredError, `got ${err}`);
    assert.ok(err instanceof TokenRelayError);
    assert.ok(!(err instanceof ConnectionLostError));
    assert.equal(err.code, 'queue_expired');
    // Failed while the network was still down, and left the queue.
    assert.equal(conn.state, 'reconnecting');
    assert.equal(conn.pending, 0);
    conn.setNetworkAvailable(true);
    assert.equal((await within(conn.ask('[echo] fresh'), 'a fresh ask')).text, 'fresh');
  } finally {
    conn.close();
  }
  assert.deepEqual((await history(ctx, 1)).humans, ['[echo] fresh']);
  assert.throws(() => new Client(server.clientOptions({ maxQueued: -1 })), { name: 'TypeError', message: /maxQueued/ });
  assert.throws(() => new Client(server.clientOptions({ maxQueuedAgeMs: 'soon' })), { name: 'TypeError', message: /maxQueuedAgeMs/ });
});

test('close() fails queued messages with ClosedBeforeSentError', async () => {
  const ctx = await server.context();
  const conn = await within(new Client(server.clientOptions()).connect(ctx), 'connect');
  await goOffline(ctx, conn);
  const asking = conn.ask('[echo] unsent').then(() => null, (e) => e);
  assert.equal(conn.pending, 1);
  conn.close();
  const err = await within(asking, 'the queued ask settles');
  assert.ok(err instanceof ClosedBeforeSentError, `got ${err}`);
  assert.equal(err.code, 'closed_before_sent');
  assert.equal(err.name, 'ClosedBeforeSentError');
  // Its own class: not the generic closed or connection-lost ones.
  assert.ok(!(err instanceof ClosedError) && !(err instanceof ConnectionLostError));
  assert.equal(conn.pending, 0);
  assert.deepEqual((await history(ctx)).humans, []);
});
