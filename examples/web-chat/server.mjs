// The web-chat example's backend: the two endpoints an app needs, and the
// static files. The org API key lives here and only here; the page gets
// short-lived client keys scoped to its one context.
//
//   POST /api/create-context          -> {contextId}
//   POST /api/get-client-token {contextId} -> {clientToken}
//
// Needs only Node (>= 18) built-ins. Configuration (environment):
//   TOKENRELAY_HTTP     the relay's HTTP base, default http://127.0.0.1:8080
//   TOKENRELAY_ORG_ID   the org id      } printed by
//   TOKENRELAY_ORG_KEY  the org API key } `tokenrelay-server bootstrap`
//   PORT                where this backend listens, default 3000

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join, extname, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, '..', '..', 'sdk-wasm', 'pkg');
const relay = process.env.TOKENRELAY_HTTP ?? 'http://127.0.0.1:8080';
const orgId = process.env.TOKENRELAY_ORG_ID;
const orgKey = process.env.TOKENRELAY_ORG_KEY;
if (!orgId || !orgKey) {
  console.error('set TOKENRELAY_ORG_ID and TOKENRELAY_ORG_KEY (from `tokenrelay-server bootstrap`)');
  process.exit(1);
}

async function rest(method, path, body) {
  const r = await fetch(relay + path, {
    method,
    headers: { authorization: `Bearer ${orgKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await r.json();
  if (!r.ok) throw Object.assign(new Error(json.error ?? `HTTP ${r.status}`), { status: r.status });
  return json;
}

// One demo agent, made on first use. Its prompt sets the scripted engine's
// pace so the streaming is visible; a real deployment uses a real engine.
let agentId = null;
async function agent() {
  agentId ??= (await rest('POST', '/agent', {
    agent_name: 'web-chat demo', agent_description: 'the web-chat example',
    prompt: '[pace_ms=40]', is_public: false, agent_speaks_first: false,
  })).agent_id;
  return agentId;
}

const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.wasm': 'application/wasm' };

async function body(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text ? JSON.parse(text) : {};
}

createServer(async (req, res) => {
  const send = (status, json) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
  try {
    const url = new URL(req.url, 'http://localhost');
    if (req.method === 'POST' && url.pathname === '/api/create-context') {
      const ctx = await rest('POST', '/context', { agent_id: await agent() });
      return send(200, { contextId: ctx.context_id });
    }
    if (req.method === 'POST' && url.pathname === '/api/get-client-token') {
      // A real app checks here that the signed-in user may use contextId.
      const { contextId } = await body(req);
      if (typeof contextId !== 'string') return send(400, { error: 'contextId required' });
      const key = await rest('POST', '/generate-api-key', { org_id: orgId, type: 'client', context_id: contextId });
      return send(200, { clientToken: key.token });
    }
    if (req.method === 'GET' && url.pathname === '/config.json') {
      return send(200, { wsUrl: relay.replace(/^http/, 'ws') + '/ws' });
    }
    const file = url.pathname === '/' ? join(here, 'index.html')
      : url.pathname.startsWith('/pkg/') && !url.pathname.includes('..') ? join(pkg, url.pathname.slice(5))
        : null;
    if (!file) return send(404, { error: 'not found' });
    const data = await readFile(file);
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(data);
  } catch (e) {
    send(e.status ?? 500, { error: e.message });
  }
}).listen(Number(process.env.PORT ?? 3000), '127.0.0.1', function listening() {
  console.log(`web-chat on http://127.0.0.1:${this.address().port} (relay ${relay})`);
});
