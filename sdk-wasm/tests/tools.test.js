// Client-side tools and whole replies (#20), against a normal reference
// server and against one in base-protocol mode (the hosted service's
// behaviour: a reply's client-side tool calls and events come after its
// on_stop_token, the request's `"result": null` last). In both, ask() and
// sendToolResponses() resolve with the reply whole.
//
// The scripted engine's continuation of a tool answer never calls a tool
// itself (reference-server/ENGINE.md: it replies "Tool results: …"), so
// "two rounds" are two tool turns of one conversation, each answered by the
// same loop, the first with two tools at once.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '../pkg/node.js';
import { Server, within } from './harness.js';

const servers = {};
before(async () => {
  servers.full = await Server.start();
  servers.base = await Server.start(['--base-protocol']);
});
after(async () => {
  await servers.full?.stop();
  await servers.base?.stop();
});

async function withConnection(server, body) {
  const contextId = await server.context();
  const conn = await within(new Client(server.clientOptions()).connect(contextId), 'connect');
  try {
    await body(conn);
  } finally {
    conn.close();
  }
}

const ask = (conn, text) => within(conn.ask(text), `the reply to ${text}`);
const answer = (conn, responses) => within(conn.sendToolResponses(responses), 'the continuation');
const names = (r) => r.clientSideToolCalls.map((c) => c.tool_name);

// The README's loop: ask, then answer while the reply asks for tools.
// Returns the last reply and every reply that asked for tools.
async function toolLoop(conn, text, runTool) {
  let reply = await ask(conn, text);
  const asked = [];
  while (reply.clientSideToolCalls.length > 0) {
    asked.push(reply);
    assert.ok(asked.length <= 5, 'the tool loop does not end');
    reply = await answer(conn, reply.clientSideToolCalls.map((c) => ({ toolCallId: c.tool_call_id, response: runTool(c) })));
  }
  return { last: reply, asked };
}

for (const mode of ['full', 'base']) {
  const prefix = mode === 'full' ? 'tools' : 'base protocol: tools';

  test(`${prefix}: a reply made only of a tool call`, () => withConnection(servers[mode], async (conn) => {
    const first = await ask(conn, '[tokens=0 client_tool=get_time]');
    assert.equal(first.status, 'complete');
    assert.equal(first.text, '');
    assert.deepEqual(names(first), ['get_time'], JSON.stringify(first));
    const id = first.clientSideToolCalls[0].tool_call_id;
    const pending = conn.sendToolResponses([{ toolCallId: id, response: '12:00' }]);
    assert.equal(typeof pending.requestId, 'number', 'the continuation\'s request id is known at once');
    const after = await within(pending, 'the continuation');
    assert.equal(after.status, 'complete');
    assert.notEqual(after.id, first.id, 'a continuation is a new response');
    assert.equal(after.requestId, pending.requestId);
    assert.equal(after.text, `Tool results: ${id}=12:00`);
    assert.deepEqual(after.clientSideToolCalls, []);
  }));

  test(`${prefix}: text, then tools and events, in one reply`, () => withConnection(servers[mode], async (conn) => {
    const first = await ask(conn, '[client_tool=get_location events=1] where am I?');
    assert.equal(first.status, 'complete');
    assert.equal(first.text, 'You said: where am I?');
    assert.deepEqual(names(first), ['get_location'], JSON.stringify(first));
    assert.equal(first.events.length, 1, JSON.stringify(first));
    const id = first.clientSideToolCalls[0].tool_call_id;
    const after = await answer(conn, [{ toolCallId: id, response: '52.52,13.40' }]);
    assert.equal(after.status, 'complete');
    assert.equal(after.text, `Tool results: ${id}=52.52,13.40`);
  }));

  test(`${prefix}: two rounds of tools through the loop`, () => withConnection(servers[mode], async (conn) => {
    const outputs = { get_location: '52.52,13.40', get_time: '12:00', get_weather: 'sunny' };
    const answered = [];
    const runTool = (c) => { answered.push(c.tool_name); return outputs[c.tool_name]; };
    // Round one: two tools in one reply, answered together.
    let { last, asked } = await toolLoop(conn, '[client_tool=get_location client_tool=get_time] where and when?', runTool);
    assert.deepEqual(asked.map(names), [['get_location', 'get_time']]);
    const ids = asked[0].clientSideToolCalls.map((c) => c.tool_call_id);
    assert.equal(last.status, 'complete');
    assert.equal(last.text, `Tool results: ${ids[0]}=52.52,13.40, ${ids[1]}=12:00`);
    // Round two, in the same conversation, after the continuation.
    ({ last, asked } = await toolLoop(conn, '[client_tool=get_weather events=2] and the weather?', runTool));
    assert.deepEqual(asked.map(names), [['get_weather']]);
    assert.equal(asked[0].text, 'You said: and the weather?');
    assert.equal(asked[0].events.length, 2);
    assert.equal(last.text, `Tool results: ${asked[0].clientSideToolCalls[0].tool_call_id}=sunny`);
    assert.deepEqual(answered, ['get_location', 'get_time', 'get_weather']);
  }));

  // The reply's tool calls and events reach the app both as events (never
  // dropped) and attached to the reply the `response` event and ask() hand
  // over: in base mode they follow the stop, in full mode they precede it.
  test(`${prefix}: trailing tool calls and events are events and part of the reply`, () => withConnection(servers[mode], async (conn) => {
    const seen = [];
    const events = conn[Symbol.asyncIterator]();
    const reply = conn.ask('[tokens=3 client_tool=get_location events=2] hi');
    let done = null;
    while (done === null) {
      const { value: e, done: ended } = await within(events.next(), 'the reply\'s events');
      assert.ok(!ended, 'the connection ended');
      if (e.type === 'error') throw e.error;
      if (e.type === 'response' && e.response.requestId === reply.requestId) done = e.response;
      else if (['token', 'client_side_tool_calls', 'events'].includes(e.type)) seen.push(e);
    }
    const kinds = seen.map((e) => e.type);
    assert.equal(kinds.filter((k) => k === 'token').length, 3, kinds.join());
    const calls = seen.filter((e) => e.type === 'client_side_tool_calls');
    const evs = seen.filter((e) => e.type === 'events');
    assert.deepEqual(calls.map((e) => e.responseId), [done.id], kinds.join());
    assert.deepEqual(evs.map((e) => e.responseId), [done.id], kinds.join());
    assert.equal(done.status, 'complete');
    assert.equal(done.text, 't0 t1 t2');
    assert.deepEqual(done.clientSideToolCalls, calls[0].toolCalls);
    assert.deepEqual(done.events, evs[0].events);
    assert.equal(done.events.length, 2);
    assert.deepEqual(await within(reply, 'ask()'), done, 'ask() resolves with the whole reply');
    assert.deepEqual(conn.response(done.id), done, 'the connection\'s record of the reply');
  }));
}
