// `tokenrelay/react` in headless Chromium with React 19: a component
// connects with useTokenRelay, streams a reply into state with useReply,
// stops one, and unmounting closes the connection (or aborts a connect
// still waiting for its key).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { Server, root } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SKIP_BROWSER = existsSync(CHROMIUM) || process.env.CI ? false : `no ${CHROMIUM}`;
const pkg = join(root, 'sdk-wasm', 'pkg');
const tokens = (n) => Array.from({ length: n }, (_, i) => `t${i}`).join(' ');

// The app, bundled by esbuild with React from node_modules. The page's
// query says which context, and `hang=1` makes getToken never answer.
const app = `
import { createElement as h, useEffect } from 'react';
import { createRoot } from 'react-dom/client';
import { Client, init } from ${JSON.stringify(join(pkg, 'index.js'))};
import { useTokenRelay, useReply } from ${JSON.stringify(join(pkg, 'react.js'))};

const params = new URLSearchParams(location.search);
window.providerSignals = [];
const client = new Client({
  wsUrl: params.get('ws'),
  getToken: async (contextId, { signal }) => {
    window.providerSignals.push(signal);
    if (params.get('hang')) return new Promise(() => {});
    const r = await fetch('/api/get-client-token', { method: 'POST', body: JSON.stringify({ contextId }), signal });
    return (await r.json()).clientToken;
  },
});

function App({ contextId }) {
  const { connection, state, error } = useTokenRelay(client, contextId);
  const reply = useReply(connection);
  useEffect(() => { window.conn = connection; }, [connection]);
  window.send = reply.send;
  window.stop = reply.stop;
  return h('div', null,
    h('b', { id: 'state' }, state),
    h('i', { id: 'error' }, error ? error.name : ''),
    h('pre', { id: 'text' }, reply.text),
    h('u', { id: 'status' }, reply.status));
}

await init({ module: fetch('/pkg/tokenrelay_wasm_bg.wasm') });
const root = createRoot(document.getElementById('root'));
root.render(h(App, { contextId: params.get('context') }));
window.unmount = () => root.unmount();
`;

let relay;
let web;
before(async () => {
  relay = await Server.start();
  const bundle = await build({
    stdin: { contents: app, resolveDir: here, loader: 'js' },
    bundle: true, format: 'esm', write: false, logLevel: 'warning',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const js = bundle.outputFiles[0].text;
  web = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'POST' && url.pathname === '/api/get-client-token') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const clientToken = await relay.clientKey(JSON.parse(body).contextId);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ clientToken }));
    } else if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html' })
        .end('<!doctype html><meta charset="utf-8"><div id="root"></div><script type="module" src="/app.js"></script>');
    } else if (url.pathname === '/app.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
    } else if (url.pathname.startsWith('/pkg/') && !url.pathname.includes('..')) {
      const file = join(pkg, url.pathname.slice(5));
      res.writeHead(200, { 'content-type': extname(file) === '.wasm' ? 'application/wasm' : 'text/javascript' }).end(await readFile(file));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => web.listen(0, '127.0.0.1', r));
});
after(async () => {
  web?.close();
  await relay?.stop();
});

function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

const text = (tab, id) => tab.textContent(`#${id}`);

test('React: useTokenRelay connects, useReply streams into state and stops, unmount closes', { timeout: 120_000, skip: SKIP_BROWSER }, async () => {
  const browser = await launch();
  try {
    const tab = await browser.newPage();
    const problems = [];
    tab.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    const ctx = await relay.context();
    await tab.goto(`http://127.0.0.1:${web.address().port}/?context=${encodeURIComponent(ctx)}&ws=${encodeURIComponent(relay.ws)}`);
    await tab.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', null, { timeout: 30_000 });

    // A reply streams into state and ends complete.
    const first = await tab.evaluate(() => window.send('[tokens=30 pace_ms=2] go').then((r) => r.status));
    assert.equal(first, 'complete');
    assert.equal(await text(tab, 'text'), tokens(30));
    assert.equal(await text(tab, 'status'), 'complete');

    // stop(): the state says stopped, and so does the server's reply.
    const stopped = await tab.evaluate(async () => {
      const ended = new Promise((resolve) => {
        const off = window.conn.on('response', (e) => { off(); resolve(e.response.status); });
      });
      const sending = window.send('[tokens=100000 pace_ms=2] long');
      await new Promise((resolve) => { const off = window.conn.on('token', () => { off(); resolve(); }); });
      window.stop();
      return { result: await sending, server: await ended };
    });
    assert.deepEqual(stopped, { result: null, server: 'stopped' });
    await tab.waitForFunction(() => document.getElementById('status').textContent === 'stopped', null, { timeout: 10_000 });

    // Unmounting closes the connection at once.
    const after = await tab.evaluate(() => { const c = window.conn; window.unmount(); return c.state; });
    assert.equal(after, 'closed');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('React: unmounting while the key is being fetched aborts the connect and the key request', { timeout: 120_000, skip: SKIP_BROWSER }, async () => {
  const browser = await launch();
  try {
    const tab = await browser.newPage();
    const ctx = await relay.context();
    await tab.goto(`http://127.0.0.1:${web.address().port}/?hang=1&context=${encodeURIComponent(ctx)}&ws=${encodeURIComponent(relay.ws)}`);
    await tab.waitForFunction(() => window.providerSignals?.length === 1, null, { timeout: 30_000 });
    assert.equal(await text(tab, 'state'), 'connecting');
    const aborted = await tab.evaluate(() => { window.unmount(); return window.providerSignals.map((s) => s.aborted); });
    assert.deepEqual(aborted, [true]);
  } finally {
    await browser.close();
  }
});
