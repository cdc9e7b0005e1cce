// A server restart with clients attached, one of them mid-reply: graceful
// (SIGTERM: the server closes every socket with 1001 and exits) and abrupt
// (SIGKILL, as `kill -9`: no close frame, the kernel resets the sockets).
// Either way each connection reports the lost connection, reconnects by
// itself to the new server on the same address and store, the cut reply
// ends with a gapless prefix, `interrupted` (the replay buffer did not
// survive the restart), and the next ask
// works (the same test as tests/e2e/tests/restart.rs).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, ConnectionLostError, TransportError } from '../pkg/node.js';
import { Server, within } from './harness.js';

const numbered = (n) => Array.from({ length: n }, (_, i) => `t${i}`).join(' ');

/** What `conn` goes through from now on: the first cause it reports when
 * it goes reconnecting, and a promise of it being connected again. */
function watch(conn) {
  const seen = { cause: null, lost: false };
  seen.back = within(new Promise((resolve) => {
    const off = conn.on('state', (e) => {
      if (e.state === 'reconnecting') {
        seen.lost = true;
        // The first cause: the cut itself (later attempts fail to reach
        // the server while it restarts).
        seen.cause ??= e.cause;
      } else if (e.state === 'connected' && seen.lost) {
        off();
        resolve();
      }
    });
  }), 'connected again after the restart');
  return seen;
}

async function recovered(conn, seen) {
  await seen.back;
  assert.ok(seen.cause instanceof ConnectionLostError || seen.cause instanceof TransportError, `cause ${seen.cause}`);
  const after = await within(conn.ask('[echo] after the restart'), 'an answer after the restart');
  assert.equal(after.text, 'after the restart');
  assert.equal(after.status, 'complete');
}

for (const signal of ['SIGTERM', 'SIGKILL']) {
  test(`a server restart mid-reply (${signal}): the lost connection is reported, the reply is cut with a prefix, the next ask works`, { timeout: 120_000 }, async () => {
    const server = await Server.start();
    const client = new Client(server.clientOptions());
    const [streaming, idle] = [await server.context(), await server.context()];
    const conn = await within(client.connect(streaming), 'connect');
    const other = await within(client.connect(idle), 'connect');
    try {
      const seen = watch(conn);
      const otherSeen = watch(other);
      let before = '';
      let count = 0;
      const twenty = within(new Promise((resolve) => {
        const off = conn.on('token', (e) => {
          before += e.token;
          if (++count === 20) {
            off();
            resolve();
          }
        });
      }), 'the reply\'s first 20 tokens');
      const reply = conn.ask('[tokens=2000 pace_ms=5] long');
      await twenty;
      await server.restart(signal);
      const cut = await within(reply, 'the cut reply to end');
      // Killed, the server sends nothing more. Shut down gracefully, it
      // drains: every socket is closed (1001) before the reply is cut
      // (`--drain-timeout-secs 1`), so the client never sees the cut
      // either. Either way it resumes on the new server, whose replay
      // buffer is new: the reply ends interrupted.
      assert.equal(cut.status, 'interrupted');
      assert.ok(numbered(2000).startsWith(cut.text), 'a prefix, no gap');
      assert.ok(cut.text.startsWith(before), `the tokens seen before the cut (${before.length} chars) are in the reply`);
      await recovered(conn, seen);
      await recovered(other, otherSeen);
    } finally {
      conn.close();
      other.close();
      await server.stop();
    }
  });
}
