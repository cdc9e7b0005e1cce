// Text split badly across `on_token` frames: a token boundary inside a
// grapheme (a ZWJ sequence, a combining mark) and inside a surrogate pair's
// JSON escape. The reference server's engine splits at whitespace and
// serde_json writes non-ASCII raw, so neither can come from it: a raw
// WebSocket server here writes each frame's JSON by hand. (Non-ASCII tokens
// through the real server: connection.test.js, "every kind of token".)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket, { WebSocketServer } from 'ws';
import { Client } from '../pkg/node.js';
import { within } from './harness.js';

const FAMILY = '\u{1F469}\u200d\u{1F469}\u200d\u{1F467}'; // 👩‍👩‍👧: woman ZWJ woman ZWJ girl
const GRINNING = '\u{1F600}'; // 😀, JSON escape "\ud83d\ude00"

/** Serves `ws://127.0.0.1:<port>/ws` like a base server (no extensions):
 * `connect_to_context` succeeds, each `add_message` is answered with
 * `{success, response_id}` at once, then one `on_token` frame per entry of
 * `rawTokens` (each the exact JSON string literal, quotes included, put in
 * the frame) and `on_stop_token`. */
async function rawTokenServer(rawTokens) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  let n = 0;
  wss.on('connection', (ws) => ws.on('message', (data) => {
    const req = JSON.parse(data.toString());
    if (req.method === 'connect_to_context') {
      ws.send(JSON.stringify({ id: req.id, result: { success: true, agent_speaks_first: false } }));
    } else if (req.method === 'add_message') {
      n += 1;
      const responseId = `raw-${n}`;
      ws.send(JSON.stringify({ id: req.id, result: { success: true, response_id: responseId } }));
      for (const raw of rawTokens) {
        ws.send(`{"method":"on_token","params":{"token":${raw},"response_id":"${responseId}"}}`);
      }
      ws.send(JSON.stringify({ method: 'on_stop_token', params: { response_id: responseId } }));
    } else if (req.id != null) {
      ws.send(JSON.stringify({ id: req.id, result: { success: true } }));
    }
  }));
  return {
    wsUrl: `ws://127.0.0.1:${wss.address().port}/ws`,
    close: () => new Promise((resolve) => {
      for (const ws of wss.clients) ws.terminate();
      wss.close(resolve);
    }),
  };
}

/** Asks once through a raw server sending `rawTokens`; returns the reply,
 * its token strings in order and the error events seen. */
async function replyThrough(rawTokens) {
  const raw = await rawTokenServer(rawTokens);
  try {
    const conn = await within(new Client({ wsUrl: raw.wsUrl, getToken: () => 'key', WebSocket }).connect('ctx'), 'connect');
    try {
      const seen = [];
      const errors = [];
      conn.on('token', ({ token }) => seen.push(token));
      conn.on('error', ({ error }) => errors.push(error));
      const reply = await within(conn.ask('hi'), 'the reply');
      return { reply, seen, errors };
    } finally {
      conn.close();
    }
  } finally {
    await raw.close();
  }
}

// Each entry: the JSON string literal written into one on_token frame, and
// the text it stands for. Raw UTF-8 and \u escapes both appear.
const SPLIT_INSIDE_GRAPHEMES = [
  ['"family: "', 'family: '],
  // 👩‍👩‍👧 cut after each ZWJ: one grapheme over three frames.
  ['"\u{1F469}\u200d"', '\u{1F469}\u200d'],
  ['"\\ud83d\\udc69\\u200d"', '\u{1F469}\u200d'],
  ['"\u{1F467}"', '\u{1F467}'],
  // e + COMBINING ACUTE ACCENT: the mark arrives alone in the next frame,
  // once raw and once escaped.
  ['", caf"', ', caf'],
  ['"e"', 'e'],
  ['"\u0301"', '\u0301'],
  ['" re"', ' re'],
  ['"\\u0301"', '\u0301'],
  // A non-BMP character as its surrogate-pair escape, in one frame.
  ['", \\ud83d\\ude00"', `, ${GRINNING}`],
  ['" end"', ' end'],
];

test('text split inside graphemes arrives exact, token by token', async () => {
  const { reply, seen, errors } = await replyThrough(SPLIT_INSIDE_GRAPHEMES.map(([raw]) => raw));
  const sent = SPLIT_INSIDE_GRAPHEMES.map(([, text]) => text);
  assert.deepEqual(errors, []);
  assert.equal(reply.status, 'complete');
  assert.equal(reply.text, sent.join(''));
  assert.equal(reply.text, `family: ${FAMILY}, cafe\u0301 re\u0301, ${GRINNING} end`);
  assert.deepEqual(seen, sent);
  assert.ok(seen.every((t) => !t.includes('\ufffd')), JSON.stringify(seen));
});

test('a surrogate pair escape split across two frames is joined, not lost or replaced', async () => {
  // 😀 as its surrogate-pair escape cut between the two halves: each frame
  // on its own holds a lone surrogate, which strict JSON decoders refuse. A
  // server whose strings are UTF-16 (JavaScript, Java) cuts text this way.
  const { reply, seen, errors } = await replyThrough(['"before "', '"\\ud83d"', '"\\ude00"', '" after"']);
  // Exactly the text sent: the halves make one 😀 (no U+FFFD, no hole),
  // and no frame of it is reported as a protocol error.
  assert.equal(reply.text, `before ${GRINNING} after`, `errors: ${errors.map((e) => e.message).join('; ')}`);
  assert.deepEqual(errors, []);
  assert.equal(reply.status, 'complete');
  assert.equal(seen.join(''), reply.text);
  assert.ok(seen.every((t) => !t.includes('\ufffd')), JSON.stringify(seen));
  // The whole tokens around the cut arrive as sent; the halves arrive as
  // one or two token events that together make 😀 (a JS string can hold
  // each half, a Rust string cannot, so the SDK may join them first).
  assert.equal(seen[0], 'before ');
  assert.equal(seen.at(-1), ' after');
  assert.equal(seen.slice(1, -1).join(''), GRINNING);
});
