// `tokenrelay/server` (the backend's admin client) against a real reference
// server: the two-endpoint pattern end to end (the backend creates a
// context and mints a key; the browser package connects with it), stream
// tokens, refusals as the package's error classes, timeouts, aborts.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AdminClient, TokenRelayError, UnauthorizedError, ForbiddenError, NotFoundError,
  InvalidRequestError, TimeoutError, TransportError, ConfigError,
} from '../pkg/server.js';
import * as browserPackage from '../pkg/node.js';
import WebSocket from 'ws';
import { Server, within, root } from './harness.js';

let server;
let admin;
before(async () => {
  server = await Server.start();
  admin = new AdminClient({ baseUrl: server.http, apiKey: server.orgKey });
});
after(async () => { await server?.stop(); });

const tokens = (n) => Array.from({ length: n }, (_, i) => `t${i}`).join(' ');

test('the module loads no wasm: it imports only the error classes', () => {
  const source = readFileSync(join(root, 'sdk-wasm', 'pkg', 'server.js'), 'utf8');
  const imports = [...source.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
  assert.deepEqual([...new Set(imports)], ['./errors.js']);
  // The same classes as the browser package's, so instanceof holds across.
  assert.equal(TokenRelayError, browserPackage.TokenRelayError);
  assert.equal(NotFoundError, browserPackage.NotFoundError);
});

test('create an agent and a context, mint a scoped client key, connect with it and chat', async () => {
  const agent = await admin.createAgent({ name: 'helper', description: 'test', prompt: '' });
  assert.match(agent.agentId, /\S/);
  assert.equal(agent.orgId, server.orgId);
  assert.equal(agent.name, 'helper');
  const ctx = await admin.createContext(agent.agentId, { userDefined: { user: 'u1' } });
  assert.equal(ctx.agentId, agent.agentId);
  assert.deepEqual(ctx.userDefined, { user: 'u1' });
  let minted = 0;
  const getToken = async (contextId) => {
    const key = await admin.generateClientKey({ contextId, ttlSeconds: 60 });
    minted += 1;
    assert.equal(key.orgId, server.orgId);
    assert.ok(key.expiresAt > Date.now() / 1000 && key.expiresAt <= Date.now() / 1000 + 61, `exp ${key.expiresAt}`);
    return key.token;
  };
  const client = new browserPackage.Client({ wsUrl: server.ws, getToken, WebSocket });
  const conn = await within(client.connect(ctx.contextId), 'connect');
  try {
    assert.equal((await within(conn.ask('[echo] hello there'), 'reply')).text, 'hello there');
  } finally {
    conn.close();
  }
  assert.ok(minted >= 1);
  const after = await admin.getContext(ctx.contextId);
  assert.equal(after.contextId, ctx.contextId);
  assert.ok(after.messages.some((m) => m.message === 'hello there' && m.sender === 'ai'), JSON.stringify(after.messages));
  await admin.deleteContext(ctx.contextId);
  await assert.rejects(admin.getContext(ctx.contextId), NotFoundError);
});

test('a single-use stream token opens a socket as { streamToken }', async () => {
  const ctx = await server.context();
  const { token, ttl } = await admin.streamToken({ ttl: 30 });
  assert.match(token, /^pub_tok_/);
  assert.equal(ttl, 30);
  const client = new browserPackage.Client({
    wsUrl: server.ws, WebSocket, getToken: async () => ({ streamToken: (await admin.streamToken()).token }),
  });
  const conn = await within(client.connect(ctx), 'connect');
  try {
    assert.equal((await within(conn.ask('[tokens=3] x'), 'reply')).text, tokens(3));
  } finally {
    conn.close();
  }
});

test('refusals are the package\'s error classes with the server\'s code and status', async () => {
  const missing = await admin.generateClientKey({ contextId: 'no-such-context' }).catch((e) => e);
  assert.ok(missing instanceof NotFoundError, `got ${missing}`);
  assert.equal(missing.status, 404);
  assert.equal(missing.serverCode, 'not_found');
  assert.match(missing.message, /^POST \/generate-api-key: /);

  const stranger = new AdminClient({ baseUrl: server.http, apiKey: 'not-a-key' });
  const bad = await stranger.createAgent({ name: 'x' }).catch((e) => e);
  assert.ok(bad instanceof UnauthorizedError, `got ${bad}`);
  assert.equal(bad.status, 401);

  // A client key belongs in a browser: refused on every REST route.
  const ctx = await server.context();
  const asClient = new AdminClient({ baseUrl: server.http, apiKey: await server.clientKey(ctx) });
  const refused = await asClient.getContext(ctx).catch((e) => e);
  assert.ok(refused instanceof ForbiddenError, `got ${refused}`);
  assert.equal(refused.status, 403);

  const invalid = await admin.generateClientKey({ contextId: ctx, ttlSeconds: 10 ** 9 }).catch((e) => e);
  assert.ok(invalid instanceof InvalidRequestError, `got ${invalid}`);
  assert.equal(invalid.status, 400);

  // Not an org key: the org must be named.
  const user = new AdminClient({ baseUrl: server.http, apiKey: 'sk_live_whatever' });
  await assert.rejects(user.generateClientKey({ contextId: ctx }), ConfigError);
});

test('argument checks throw TypeError', () => {
  assert.throws(() => new AdminClient({ baseUrl: 'ws://x', apiKey: 'k' }), { name: 'TypeError', message: /baseUrl must be an http/ });
  assert.throws(() => new AdminClient({ baseUrl: 'http://x' }), { name: 'TypeError', message: /apiKey must be a non-empty string/ });
  assert.throws(() => admin.streamToken({ ttl: 301 }), { name: 'TypeError', message: /ttl must be an integer from 1 to 300/ });
  assert.throws(() => admin.getContext(''), { name: 'TypeError' });
});

test('timeoutMs, an aborted signal and an unreachable server', async () => {
  // A server that accepts and never answers.
  const silent = createServer(() => {});
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${silent.address().port}`;
  try {
    const slow = new AdminClient({ baseUrl: base, apiKey: server.orgKey, timeoutMs: 200 });
    const err = await within(slow.streamToken().catch((e) => e), 'the timeout');
    assert.ok(err instanceof TimeoutError, `got ${err}`);
    assert.equal(err.name, 'TimeoutError');

    const patient = new AdminClient({ baseUrl: base, apiKey: server.orgKey });
    const controller = new AbortController();
    const pending = patient.streamToken({}, { signal: controller.signal }).catch((e) => e);
    controller.abort();
    assert.equal((await within(pending, 'the abort')).name, 'AbortError');
  } finally {
    silent.closeAllConnections();
    silent.close();
  }
  const gone = new AdminClient({ baseUrl: base, apiKey: server.orgKey });
  const err = await within(gone.streamToken().catch((e) => e), 'a refused connection');
  assert.ok(err instanceof TransportError, `got ${err}`);
});

test('a publishable key: created with its origins', async () => {
  // Its own server: a publishable key binds every browser connection of
  // the org, which the tests above must not see.
  const own = await Server.start();
  try {
    const a = new AdminClient({ baseUrl: own.http, apiKey: own.orgKey });
    const pk = await a.createPublishableKey(['https://app.example']);
    assert.match(pk.clientKey, /^pk_/);
    assert.deepEqual(pk.allowedOrigins, ['https://app.example']);
  } finally {
    await own.stop();
  }
});
