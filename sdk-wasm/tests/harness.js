// Test harness: a real reference server binary in its own process, on a
// free loopback port, with fault injection, and the REST calls an app's
// backend makes (the org key stays here, on the "backend").
//
// The server's store is a SQLite file in a fresh temp dir rather than
// `:memory:`: the org key is minted by `tokenrelay-server bootstrap`, a
// separate process, which must see the same store as the server.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..', '..');

/** The server binary: $TOKENRELAY_SERVER_BIN, else the workspace's release build. */
export function serverBinary() {
  const bin = process.env.TOKENRELAY_SERVER_BIN ?? join(root, 'target', 'release', 'tokenrelay-server');
  if (!existsSync(bin)) throw new Error(`${bin} missing: cargo build --release -p tokenrelay-server`);
  return bin;
}

/** Upper bound of any single wait, so a bug fails a test instead of hanging it. */
export const WAIT_MS = 30_000;

/** Runs `serve` on `bind` and waits for its ready line. */
async function serve(common, bind, extraArgs) {
  const child = spawn(serverBinary(), [
    ...common, '--bind', bind, '--fault-injection', '--log-json',
    '--rate-limit-per-minute', '100000',
    // The server's abuse limits are tested by its own suite.
    '--socket-frame-burst', '100000', '--socket-frames-per-sec', '100000',
    '--max-pending-invocations', '10000', '--max-sockets-per-ip', '100000',
    // A graceful stop (restart.test.js) lets running replies finish for
    // this long, not the default 30 s: the tests' replies run for seconds.
    '--drain-timeout-secs', '1',
    ...extraArgs, 'serve',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = createInterface({ input: child.stderr });
  const urls = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not start in 30 s')), WAIT_MS);
    child.once('exit', (code) => reject(new Error(`the server exited with ${code}`)));
    lines.on('line', (line) => {
      try {
        const f = JSON.parse(line).fields ?? {};
        if (f.http && f.ws) {
          clearTimeout(timer);
          resolve({ http: f.http, ws: f.ws });
        }
      } catch { /* not a JSON line */ }
    });
  });
  // Keep draining stderr so the child never blocks on a full pipe.
  lines.on('line', () => {});
  return { child, urls };
}

export class Server {
  static async start(extraArgs = []) {
    const dir = mkdtempSync(join(tmpdir(), 'tokenrelay-js-'));
    // The server refuses JWT secrets under 32 bytes.
    const secret = 'js-suite-secret-' + Math.random().toString(36).slice(2).padEnd(32, '0');
    const common = ['--db', join(dir, 'store.sqlite3'), '--jwt-secret', secret];
    const out = execFileSync(serverBinary(), [...common, 'bootstrap', '--org-name', 'js'], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'],
    });
    const orgId = /org_id=(\S+)/.exec(out)[1];
    const orgKey = /org_api_key=(\S+)/.exec(out)[1];
    const { child, urls } = await serve(common, '127.0.0.1:0', extraArgs);
    const server = new Server(child, dir, urls, orgId, orgKey);
    server.#args = { common, extraArgs };
    return server;
  }

  #args;

  /** Stops the server with `signal` (`SIGTERM`: graceful, it closes every
   * socket with 1001; `SIGKILL`: as `kill -9`), waits for it to exit, and
   * starts it again on the same address with the same store. */
  async restart(signal) {
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill(signal);
    await within(exited, `the server to exit on ${signal}`);
    const { common, extraArgs } = this.#args;
    const { child, urls } = await serve(common, new URL(this.http).host, extraArgs);
    assert.deepEqual(urls, { http: this.http, ws: this.ws });
    this.child = child;
  }

  constructor(child, dir, urls, orgId, orgKey) {
    this.child = child;
    this.dir = dir;
    this.http = urls.http;
    this.ws = urls.ws;
    this.orgId = orgId;
    this.orgKey = orgKey;
  }

  async rest(method, path, body, key = this.orgKey) {
    let r;
    try {
      r = await fetch(this.http + path, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new Error(`${method} ${path}: ${e.message} (${e?.cause?.message ?? 'no cause'})`, { cause: e });
    }
    const json = await r.json().catch(() => null);
    if (!r.ok) {
      const e = new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(json)}`);
      e.status = r.status;
      e.code = json?.code;
      throw e;
    }
    return json;
  }

  /** An agent with `prompt` (engine directives allowed) and a context on it. */
  async context(prompt = '', agentSpeaksFirst = false) {
    const agent = await this.rest('POST', '/agent', {
      agent_name: 'js agent', agent_description: 'js suite', prompt,
      is_public: false, agent_speaks_first: agentSpeaksFirst,
    });
    const ctx = await this.rest('POST', '/context', { agent_id: agent.agent_id });
    return ctx.context_id;
  }

  /** What the app's "get client token" endpoint does: a client key scoped
   * to the context. */
  async clientKey(contextId, ttlSeconds) {
    const k = await this.rest('POST', '/generate-api-key', {
      org_id: this.orgId, type: 'client', context_id: contextId, ttl_seconds: ttlSeconds,
    });
    return k.token;
  }

  /** A getToken for `new Client`, counting its calls in `.calls`. */
  tokenProvider() {
    const provider = async (contextId) => {
      provider.calls += 1;
      return this.clientKey(contextId);
    };
    provider.calls = 0;
    return provider;
  }

  /** Options for `new Client` against this server, from Node. */
  clientOptions(extra = {}) {
    return { wsUrl: this.ws, getToken: this.tokenProvider(), WebSocket, ...extra };
  }

  /** Drops or closes every socket of the context (`drop`, `close_4001`, …). */
  fault(contextId, fault) {
    return this.rest('POST', '/debug/faults', { context_id: contextId, fault });
  }

  async stop() {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Rejects after `ms` with `what`, so awaits cannot hang a test. */
export function within(promise, what, ms = WAIT_MS) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}
