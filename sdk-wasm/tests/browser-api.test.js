// The API of issue #13 §3 in real headless Chromium: connect() aborted
// while getToken hangs (the provider's signal aborted too) and timed out,
// init({ module }) with the app's own fetch of the .wasm, the tokens of
// conn.stream(), and ask() aborted mid-reply (the reply ends "stopped").

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, extname } from 'node:path';
import { chromium } from 'playwright-core';
import { Server, root } from './harness.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SKIP_BROWSER = existsSync(CHROMIUM) || process.env.CI ? false : `no ${CHROMIUM}`;
const pkg = join(root, 'sdk-wasm', 'pkg');
const tokens = (n) => Array.from({ length: n }, (_, i) => `t${i}`).join(' ');
const types = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };

// A page that uses the API of issue #13 §3 and writes what happened as
// JSON: connect() aborted while getToken hangs (the provider's signal is
// aborted too), connect({ timeout }), the tokens of conn.stream(), and
// ask() aborted mid-reply (the reply then ends "stopped").
const apiPage = (wsUrl) => `<!doctype html>
<meta charset="utf-8">
<title>tokenrelay API</title>
<pre id="done"></pre>
<script type="module">
  import { Client, TimeoutError, init } from '/pkg/index.js';
  const contextId = new URLSearchParams(location.search).get('context');
  const mint = async (contextId, { signal }) => {
    const r = await fetch('/api/get-client-token', { method: 'POST', body: JSON.stringify({ contextId }), signal });
    return (await r.json()).clientToken;
  };
  const done = document.getElementById('done');
  const out = {};
  try {
    await init({ module: fetch('/pkg/tokenrelay_wasm_bg.wasm') });
    let providerSignal;
    let called;
    const calledOnce = new Promise((r) => { called = r; });
    const hanging = new Client({
      wsUrl: ${JSON.stringify(wsUrl)},
      getToken: (c, { signal }) => { providerSignal = signal; called(); return new Promise(() => {}); },
    });
    const controller = new AbortController();
    const connecting = hanging.connect(contextId, { signal: controller.signal }).then(() => 'resolved', (e) => e.name);
    await calledOnce;
    controller.abort();
    out.aborted = await connecting;
    out.providerAborted = providerSignal.aborted;
    out.timedOut = await hanging.connect(contextId, { timeout: 100 })
      .then(() => 'resolved', (e) => (e instanceof TimeoutError ? e.name + ':' + e.code : 'other:' + e));

    const conn = await new Client({ wsUrl: ${JSON.stringify(wsUrl)}, getToken: mint }).connect(contextId);
    const streamed = [];
    const stream = conn.stream('[tokens=20 pace_ms=2] go');
    for await (const t of stream) streamed.push(t);
    out.streamed = streamed.join('');
    out.count = streamed.length;
    out.status = stream.response.status;

    const stopper = new AbortController();
    const reply = conn.ask('[tokens=100000 pace_ms=2] long', { signal: stopper.signal });
    const ended = new Promise((resolve) => conn.on('response', (e) => { if (e.response.requestId === reply.requestId) resolve(e.response.status); }));
    await new Promise((resolve) => { const off = conn.on('token', () => { off(); resolve(); }); });
    stopper.abort();
    out.askAborted = await reply.then(() => 'resolved', (e) => e.name);
    out.askEnded = await ended;
    conn.close();
    done.textContent = JSON.stringify(out);
  } catch (e) {
    done.textContent = 'error:' + e.name + ':' + e.message;
  }
</script>`;

/** The app's web server: the page at `/`, the package under `/pkg/`, and
 * the "get client token" endpoint minting keys from `server`. */
async function serveApp(server, html) {
  const app = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://x');
      if (req.method === 'POST' && url.pathname === '/api/get-client-token') {
        let body = '';
        for await (const chunk of req) body += chunk;
        const clientToken = await server.clientKey(JSON.parse(body).contextId);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ clientToken }));
      } else if (url.pathname === '/') {
        res.writeHead(200, { 'content-type': 'text/html' }).end(html());
      } else if (url.pathname.startsWith('/pkg/') && !url.pathname.includes('..')) {
        const file = join(pkg, url.pathname.slice(5));
        res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(await readFile(file));
      } else {
        res.writeHead(404).end();
      }
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  await new Promise((r) => app.listen(0, '127.0.0.1', r));
  return app;
}

function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

test('headless Chromium: connect aborted and timed out, stream(), ask() aborted', { timeout: 120_000, skip: SKIP_BROWSER }, async () => {
  const server = await Server.start();
  const browser = await launch();
  let app;
  try {
    const ctx = await server.context();
    app = await serveApp(server, () => apiPage(server.ws));
    const tab = await browser.newPage();
    const problems = [];
    tab.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await tab.goto(`http://127.0.0.1:${app.address().port}/?context=${encodeURIComponent(ctx)}`);
    await tab.waitForFunction(() => document.getElementById('done').textContent !== '', null, { timeout: 60_000 });
    const done = await tab.textContent('#done');
    assert.ok(!done.startsWith('error:'), done);
    assert.deepEqual(JSON.parse(done), {
      aborted: 'AbortError',
      providerAborted: true,
      timedOut: 'TimeoutError:timeout',
      streamed: tokens(20),
      count: 20,
      status: 'complete',
      askAborted: 'AbortError',
      askEnded: 'stopped',
    });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    app?.close();
    await server.stop();
  }
});
