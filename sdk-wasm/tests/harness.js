// Test harness: a real reference server binary in its own process, on a
// free loopback port, with fault injection, and the REST calls an app's
// backend makes (the org key stays here, on the "backend"). The process is
// started by `tokenrelay/testing` (js/testing.js), the helper the package
// ships for its users' suites: bootstrap in a fresh SQLite file, serve on
// 127.0.0.1:0, the ready line parsed for the bound address.

import { join, dirname } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startReferenceServer } from '../pkg/testing.js';

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

export class Server {
  static async start(extraArgs = []) {
    // The server refuses JWT secrets under 32 bytes.
    const secret = 'js-suite-secret-' + Math.random().toString(36).slice(2).padEnd(32, '0');
    const relay = await startReferenceServer({
      binary: serverBinary(),
      orgName: 'js',
      startupTimeoutMs: WAIT_MS,
      args: [
        '--jwt-secret', secret, '--fault-injection',
        '--rate-limit-per-minute', '100000',
        // The server's abuse limits are tested by its own suite.
        '--socket-frame-burst', '100000', '--socket-frames-per-sec', '100000',
        '--max-pending-invocations', '10000', '--max-sockets-per-ip', '100000',
        // A graceful stop (restart.test.js) lets running replies finish for
        // this long, not the default 30 s: the tests' replies run for seconds.
        '--drain-timeout-secs', '1',
        ...extraArgs,
      ],
    });
    return new Server(relay);
  }

  /** Stops the server with `signal` (`SIGTERM`: graceful, it drains and
   * closes every socket with 1001; `SIGKILL`: as `kill -9`), waits for it
   * to exit, and starts it again on the same address with the same store. */
  async restart(signal) {
    if (signal !== 'SIGTERM' && signal !== 'SIGKILL') throw new TypeError(`restart(${signal}): SIGTERM or SIGKILL`);
    await within(this.relay.restart({ graceful: signal === 'SIGTERM', timeoutMs: WAIT_MS }), `the server to restart on ${signal}`);
  }

  constructor(relay) {
    /** The `tokenrelay/testing` server. */
    this.relay = relay;
    this.http = relay.httpUrl;
    this.ws = relay.wsUrl;
    this.orgId = relay.orgId;
    this.orgKey = relay.orgKey;
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

  /** Stops the server and removes its store. */
  stop() {
    return this.relay.stop();
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
