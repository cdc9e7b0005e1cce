// Latency through the browser package (issue #11), on Node and in real
// headless Chromium, against the release reference server started the way
// the test harness starts it (tests/harness.js: fault injection on,
// relaxed limits; the engine's default pace 0 as in the other SDKs'
// harnesses). The suite itself is bench/latency-core.js, the same code in
// both hosts; see it for what is measured. Every reply must arrive whole
// (a failure exits non-zero); timings are printed, never judged.
//
//   node bench/latency.mjs [--short] [--node-only | --browser-only]
//
// Needs ./build.sh done (pkg/), npm ci, and for the browser part
// /usr/bin/chromium (CHROMIUM_PATH). Run in full by bench/latency.sh, short
// at the end of test.sh.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join, extname, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { chromium } from 'playwright-core';
import { Client } from '../pkg/node.js';
import { Server } from '../tests/harness.js';
import { measure, within } from './latency-core.js';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, '..', 'pkg');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const args = new Set(process.argv.slice(2));
const short = args.has('--short');
const rounds = short ? 20 : 200;
// Cuts per fault and provider (the Rust bench: rounds / 4; the short run
// takes 2, as it runs in two hosts and CI time counts).
const cuts = short ? 2 : 50;
// The whole suite in one host, bounded (each wait inside is bounded too).
const SUITE_MS = 30 * 60_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const SILENT = `  ${'freeze, silent drop'.padEnd(52)} not measured: the package has no keepalive ` +
  '(browsers cannot ping; the wasm driver turns the session\'s ping and idle timeout off, on Node too), ' +
  'so nothing on the client notices a silent drop; only the reply\'s inactivity timeout (120 s) bounds it';

async function cut(relay, contextId, kind) {
  const r = await relay.fault(contextId, kind);
  if (!(r.sockets >= 1)) throw new Error(`fault ${kind} reached no socket: ${JSON.stringify(r)}`);
  return r;
}

async function onNode(relay, contextId, plainContextId) {
  console.log(`latency, browser package on Node ${process.version} (npm ws), loopback, ${rounds} rounds${short ? ' (short)' : ''}: ms p50 p99 max n`);
  const options = (delayMs) => ({
    wsUrl: relay.ws,
    WebSocket,
    // What an app's backend does, in-process: a fresh client key per call.
    getToken: async (ctx) => {
      if (delayMs) await sleep(delayMs);
      return relay.clientKey(ctx);
    },
  });
  await within(measure({
    Client, WebSocketCtor: WebSocket, wsUrl: relay.ws, options, contextId, plainContextId, rounds, cuts, log: (l) => console.log(l),
    fault: (kind) => cut(relay, contextId, kind),
  }), 'the Node suite', SUITE_MS);
  console.log(SILENT);
}

const types = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };

// The page: the package and the suite as modules; `getToken` asks the
// app's backend (this process) for a key, which takes `delayMs` there.
const page = (wsUrl) => `<!doctype html>
<meta charset="utf-8">
<title>tokenrelay latency</title>
<script type="module">
  import { Client } from '/pkg/index.js';
  import { measure } from '/bench/latency-core.js';
  const post = async (path, body) => {
    const r = await fetch(path, { method: 'POST', body: JSON.stringify(body) });
    if (!r.ok) throw Object.assign(new Error(path + ': ' + r.status + ' ' + await r.text()), { status: r.status });
    return r.json();
  };
  window.runBench = ({ contextId, plainContextId, rounds, cuts }) => measure({
    Client, WebSocketCtor: WebSocket, wsUrl: ${JSON.stringify(wsUrl)}, contextId, plainContextId, rounds, cuts, log: (l) => console.log(l),
    options: (delayMs) => ({
      wsUrl: ${JSON.stringify(wsUrl)},
      getToken: async (contextId) => (await post('/api/get-client-token', { contextId, delayMs })).clientToken,
    }),
    fault: (kind) => post('/api/fault', { kind }),
  });
</script>`;

/** The app's web server: the page, the package, the suite, the token
 * endpoint (after the requested delay: the backend's own time) and the
 * fault hook (the org key stays on this side). */
async function serveApp(relay, contextId) {
  const app = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://x');
      let body = '';
      for await (const chunk of req) body += chunk;
      const json = (v) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      if (req.method === 'POST' && url.pathname === '/api/get-client-token') {
        const { contextId: ctx, delayMs } = JSON.parse(body);
        if (delayMs) await sleep(delayMs);
        json({ clientToken: await relay.clientKey(ctx) });
      } else if (req.method === 'POST' && url.pathname === '/api/fault') {
        json(await cut(relay, contextId, JSON.parse(body).kind));
      } else if (url.pathname === '/') {
        res.writeHead(200, { 'content-type': 'text/html' }).end(page(relay.ws));
      } else if (url.pathname === '/bench/latency-core.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end(await readFile(join(here, 'latency-core.js')));
      } else if (url.pathname.startsWith('/pkg/') && !url.pathname.includes('..')) {
        const file = join(pkg, url.pathname.slice(5));
        res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(await readFile(file));
      } else {
        res.writeHead(404).end();
      }
    } catch (e) {
      res.writeHead(500).end(String(e?.message ?? e));
    }
  });
  await new Promise((r) => app.listen(0, '127.0.0.1', r));
  return app;
}

async function inChromium(relay, contextId, plainContextId) {
  const app = await serveApp(relay, contextId);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: 60_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const p = await browser.newPage();
    console.log(`latency, browser package in headless Chromium ${browser.version()}, loopback, ${rounds} rounds${short ? ' (short)' : ''}: ms p50 p99 max n`);
    const errors = [];
    p.on('console', (m) => (m.type() === 'error' ? errors.push(m.text()) : console.log(m.text())));
    p.on('pageerror', (e) => errors.push(String(e)));
    await p.goto(`http://127.0.0.1:${app.address().port}/`, { timeout: 30_000 });
    await p.waitForFunction(() => typeof window.runBench === 'function', null, { timeout: 30_000 });
    await within(p.evaluate((a) => window.runBench(a).then(() => true), { contextId, plainContextId, rounds, cuts }), 'the Chromium suite', SUITE_MS)
      .catch((e) => { throw new Error(`${e.message}${errors.length ? `\npage errors:\n${errors.join('\n')}` : ''}`); });
    console.log(SILENT);
  } finally {
    await browser.close();
    app.close();
  }
}

const relay = await Server.start(['--scripted-pace-ms', '0']);
try {
  const contextId = await relay.context();
  const plainContextId = await relay.context();
  if (!args.has('--browser-only')) await onNode(relay, contextId, plainContextId);
  if (!args.has('--node-only')) await inChromium(relay, contextId, plainContextId);
} finally {
  await relay.stop();
}
