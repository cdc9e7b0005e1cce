// The JSON values a frame carries without a type (a tool's input, an
// event's data, client-side tool calls, an answer's result, an unknown
// notification's params, the agent's tools and extra fields) reach the page
// as the values the server wrote. The browser build keeps them as the
// frame's text and hands that to JSON.parse (sdk-core/src/wire/raw_json.rs),
// so this test writes every frame by hand, with whitespace, escapes, floats
// and nesting a serde server would not produce, and compares each value
// with JSON.parse of the text the server sent.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket, { WebSocketServer } from 'ws';
import { Client } from '../pkg/node.js';
import { within } from './harness.js';

const VALUES = {
  agentTools: '[ {"name": "search", "weight": 1.5e3}, "plain" ]',
  agentColor: '{ "a": [1, 2.5, "\\u00e9\\ud83d\\ude00"], "b": null, "c": {} }',
  agentScore: '-0.0001',
  ackMeta: '{"k" : [true, false, null], "n": 12345678901234567890}',
  toolInput: '{\n  "query": "caf\\u00e9 \\"quoted\\"",\n  "limit": 3,\n  "nested": {"deep": [[[]]]}\n}',
  eventData: '[1, "two", {"three": 3.25}]',
  clientCall: '{"tool_name": "ask_user", "tool_call_id": "c1", "args": {"q": "ok?"}}',
  unknownParams: '{ "deep": {"x": [1, {"y": "z"}]}, "f": 1e-7 }',
};

/** A base server (no extensions) that answers with the values above. */
async function valueServer() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  wss.on('connection', (ws) => ws.on('message', (data) => {
    const req = JSON.parse(data.toString());
    if (req.method === 'connect_to_context') {
      ws.send(`{"id": ${JSON.stringify(req.id)}, "result": {"success": true, "agent": {"agent_id": 7, ` +
        `"agent_name": "Ada", "tools": ${VALUES.agentTools}, "color": ${VALUES.agentColor}, ` +
        `"score": ${VALUES.agentScore}}}}`);
    } else if (req.method === 'add_message') {
      ws.send(`{"id": ${JSON.stringify(req.id)}, "result": {"success": true, "response_id": "r1", "meta": ${VALUES.ackMeta}}}`);
      ws.send(`{"method": "on_custom", "params": ${VALUES.unknownParams}}`);
      ws.send(`{"method": "on_tool_call", "params": {"tool_call_id": "t1", "tool_name": "search", ` +
        `"tool_input": ${VALUES.toolInput}, "response_id": "r1"}}`);
      ws.send(`{"method": "on_events", "params": {"events": [{"type": "progress", "data": ${VALUES.eventData}}], "response_id": "r1"}}`);
      ws.send(`{"method": "on_client_side_tool_calls", "params": {"tool_calls": [${VALUES.clientCall}], "response_id": "r1"}}`);
      ws.send('{"method": "on_token", "params": {"token": "done", "response_id": "r1"}}');
      ws.send('{"method": "on_stop_token", "params": {"response_id": "r1"}}');
    } else if (req.id != null) {
      ws.send(JSON.stringify({ id: req.id, result: { success: true } }));
    }
  }));
  return {
    wsUrl: `ws://127.0.0.1:${wss.address().port}/ws`,
    dropSockets: () => { for (const ws of wss.clients) ws.terminate(); },
    close: () => new Promise((resolve) => {
      for (const ws of wss.clients) ws.terminate();
      wss.close(resolve);
    }),
  };
}

test('untyped JSON values reach the page as the server wrote them', async () => {
  const server = await valueServer();
  const events = [];
  try {
    const conn = await within(new Client({ wsUrl: server.wsUrl, getToken: () => 'key', WebSocket }).connect('ctx'), 'connect');
    try {
      conn.on('*', (e) => events.push(e));
      const reply = await within(conn.ask('hi'), 'the reply');
      assert.equal(reply.text, 'done');
      assert.deepEqual(reply.toolCalls.map((c) => c.toolInput), [JSON.parse(VALUES.toolInput)]);
      assert.deepEqual(reply.clientSideToolCalls, [JSON.parse(VALUES.clientCall)]);

      const ack = events.find((e) => e.type === 'ack');
      assert.deepEqual(ack.result, { success: true, response_id: 'r1', meta: JSON.parse(VALUES.ackMeta) });
      const unknown = events.find((e) => e.type === 'unknown');
      assert.equal(unknown.method, 'on_custom');
      assert.deepEqual(unknown.params, JSON.parse(VALUES.unknownParams));
      // (Sent before the reply's first token, so it is not in the reply:
      // events attach to a reply already kept.)
      const agentEvents = events.find((e) => e.type === 'events');
      assert.deepEqual(agentEvents.events, [{ type: 'progress', data: JSON.parse(VALUES.eventData) }]);
      const call = events.find((e) => e.type === 'tool_call');
      assert.deepEqual(call.toolInput, JSON.parse(VALUES.toolInput));
    } finally {
      conn.close();
    }
  } finally {
    await server.close();
  }
});

test("the agent's tools and unknown fields arrive whole on connect", async () => {
  const server = await valueServer();
  try {
    const conn = await within(new Client({ wsUrl: server.wsUrl, getToken: () => 'key', WebSocket }).connect('ctx'), 'connect');
    try {
      // The first `connected` event fires before connect() resolves: drop
      // the socket and read the agent from the reconnect's.
      const connected = new Promise((resolve) => conn.on('connected', resolve));
      server.dropSockets();
      const { agent } = await within(connected, 'the reconnect');
      assert.equal(agent.agent_id, '7');
      assert.equal(agent.agent_name, 'Ada');
      assert.deepEqual(agent.tools, JSON.parse(VALUES.agentTools));
      assert.deepEqual(agent.color, JSON.parse(VALUES.agentColor));
      assert.equal(agent.score, JSON.parse(VALUES.agentScore));
    } finally {
      conn.close();
    }
  } finally {
    await server.close();
  }
});
