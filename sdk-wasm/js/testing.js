// `tokenrelay/testing`: the reference server in your own tests (Node only).
//
// startReferenceServer() runs the `tokenrelay-server` binary: it bootstraps
// an org in a fresh SQLite file, serves on 127.0.0.1:0, waits for the
// server's ready line (the only place the bound port is told) and resolves
// with the URLs and the org key. Nothing here loads the wasm: a test file
// can import it beside `tokenrelay` or on its own.

import { spawn, execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';

/** The executable's name, as cargo and the `tokenrelay-server` wheel install it. */
export const BINARY_NAME = process.platform === 'win32' ? 'tokenrelay-server.exe' : 'tokenrelay-server';

/** The environment variable naming the binary (wins over `PATH`). */
export const ENV_VAR = 'TOKENRELAY_SERVER_BIN';

// `… ready http=http://127.0.0.1:PORT ws=ws://127.0.0.1:PORT/ws`
// (reference-server/src/main.rs), colours stripped.
const READY = /\bready\b.*\bhttp=(\S+).*\bws=(\S+)/;
const ANSI = /\x1b\[[0-9;]*m/g;

function isExecutable(path) {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The `tokenrelay-server` executable to run: `binary` when given, else
 * `$TOKENRELAY_SERVER_BIN`, else the first on `PATH`. A given path or
 * variable that is not an executable file is an error, never a reason to
 * look further (a test run must not quietly use another server).
 * @param {string} [binary]
 * @returns {string}
 */
export function findServerBinary(binary) {
  if (binary !== undefined && binary !== null) return checked(binary, 'the binary option');
  const fromEnv = process.env[ENV_VAR];
  if (fromEnv) return checked(fromEnv, ENV_VAR);
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, BINARY_NAME))) return join(dir, BINARY_NAME);
  }
  throw new ServerNotFoundError(
    `no ${BINARY_NAME} binary found: no binary option, ${ENV_VAR} is not set and none is on PATH. ` +
    `Build it with \`cargo build --release -p tokenrelay-server\` and set ${ENV_VAR} to ` +
    `target/release/${BINARY_NAME}, or \`pip install tokenrelay-server\` (it puts the binary on a venv's PATH).`,
  );
}

function checked(path, source) {
  if (!isExecutable(path)) throw new ServerNotFoundError(`${source} names ${path}, which is not an executable file`);
  return path;
}

/** No `tokenrelay-server` binary where one was asked for or looked for. */
export class ServerNotFoundError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ServerNotFoundError';
    this.code = 'ENOENT';
  }
}

function run(binary, args, env) {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { env, encoding: 'utf8' }, (error, stdout, stderr) => {
      // stderr only in the error: stdout would hold the key had it got that far.
      if (error) reject(new Error(`${BINARY_NAME} bootstrap failed (${error.code ?? error.signal}):\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/**
 * A reference server process and the org bootstrapped in its store; made
 * by {@link startReferenceServer}.
 */
export class ReferenceServer {
  #options;
  #binary;
  #child = null;
  #tmp = null;
  #db;
  /** @type {string[]} every line the server logged (stderr), across restarts; never a credential. */
  log = [];
  /** @type {string} REST base URL, `http://127.0.0.1:PORT`. */
  httpUrl;
  /** @type {string} WebSocket URL, `ws://127.0.0.1:PORT/ws`. */
  wsUrl;
  /** @type {string} the bootstrapped org's id. */
  orgId;

  /** Use {@link startReferenceServer}; this does not start anything. */
  constructor(options = {}) {
    this.#options = { args: [], orgName: 'test', bind: '127.0.0.1:0', startupTimeoutMs: 30_000, ...options };
    this.#binary = findServerBinary(options.binary);
    this.#db = options.db;
    // The org's API key (server-side: mint client keys with it), an own
    // property that is not enumerable, so console.log / util.inspect of the
    // server (test reports) never show it.
    Object.defineProperty(this, 'orgKey', { value: undefined, writable: true, enumerable: false });
  }

  /** The executable run. */
  get binary() {
    return this.#binary;
  }

  /** The store (kept across restarts; a SQLite path or a `postgres://` URL). */
  get db() {
    return this.#db;
  }

  /** Whether the server process is running. */
  get running() {
    return this.#child !== null && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  #env() {
    const env = { ...process.env };
    // The ready line is parsed as text at level info: a developer's own
    // TOKENRELAY_LOG / TOKENRELAY_LOG_JSON must not hide it.
    delete env.TOKENRELAY_LOG_JSON;
    return { ...env, TOKENRELAY_LOG: 'info', NO_COLOR: '1', ...this.#options.env };
  }

  /** Bootstraps (first time) and serves; resolves once the server listens. */
  async start() {
    if (this.running) throw new Error('the reference server is already running');
    const { args, orgName, credits } = this.#options;
    if (this.orgKey === undefined) {
      if (this.#db === undefined) {
        this.#tmp = mkdtempSync(join(tmpdir(), 'tokenrelay-test-'));
        this.#db = join(this.#tmp, 'store.sqlite3');
      }
      const boot = ['--db', this.#db, ...args, 'bootstrap', '--org-name', orgName];
      if (credits !== undefined && credits !== null) boot.push('--credits', String(credits));
      const out = await run(this.#binary, boot, this.#env());
      const orgId = /^org_id=(\S+)$/m.exec(out)?.[1];
      const orgKey = /^org_api_key=(\S+)$/m.exec(out)?.[1];
      if (!orgId || !orgKey) throw new Error(`${BINARY_NAME} bootstrap printed no org_id/org_api_key`);
      this.orgId = orgId;
      this.orgKey = orgKey;
      await this.#serve(this.#options.bind);
    } else {
      // The address the first start bound: clients reconnect to the URLs
      // they were given.
      await this.#serve(new URL(this.httpUrl).host);
    }
    return this;
  }

  async #serve(bind) {
    const child = spawn(this.#binary, ['--db', this.#db, '--bind', bind, ...this.#options.args, 'serve'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: this.#env(),
    });
    this.#child = child;
    const first = this.log.length;
    // One reader for the process's whole life: it finds the ready line,
    // then keeps draining so the server never blocks on a full pipe.
    const lines = createInterface({ input: child.stderr });
    const urls = await new Promise((resolve, reject) => {
      const fail = (why) => {
        clearTimeout(timer);
        reject(new Error(`${BINARY_NAME} ${why}; its log:\n${this.log.slice(first).join('\n')}`));
      };
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        fail(`gave no ready line within ${this.#options.startupTimeoutMs} ms`);
      }, this.#options.startupTimeoutMs);
      // 'close': the process exited and its stderr is read to the end, so
      // the error holds the whole log.
      child.once('close', (code, signal) => fail(`exited (${code ?? signal}) before it was ready`));
      child.once('error', (e) => fail(`could not be run: ${e.message}`));
      lines.on('line', (raw) => {
        const line = raw.replace(ANSI, '');
        this.log.push(line);
        const found = READY.exec(line);
        if (found) {
          clearTimeout(timer);
          child.removeAllListeners('close');
          resolve({ httpUrl: found[1], wsUrl: found[2] });
        }
      });
    });
    if (this.httpUrl !== undefined && urls.httpUrl !== this.httpUrl) {
      await this.#kill('SIGKILL', 0);
      throw new Error(`the restarted server listens on ${urls.httpUrl}, not ${this.httpUrl}`);
    }
    this.httpUrl = urls.httpUrl;
    this.wsUrl = urls.wsUrl;
  }

  async #kill(signal, timeoutMs) {
    const child = this.#child;
    if (child === null) return;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill(signal);
      let timer;
      const late = new Promise((resolve) => { timer = setTimeout(() => resolve('late'), timeoutMs); });
      if (signal !== 'SIGKILL' && (await Promise.race([exited, late])) === 'late') child.kill('SIGKILL');
      clearTimeout(timer);
      await exited;
    }
    this.#child = null;
  }

  /**
   * Stops the server and starts it again on the same address and store
   * (URLs, keys and data stay valid), as a deployment's restart would.
   * `graceful` (default) sends SIGTERM: the server drains (sockets closed
   * with 1001, running replies finish within `--drain-timeout-secs`,
   * default 30) and is killed after `timeoutMs`; `graceful: false` kills it
   * at once (SIGKILL, as a crash: no close frames).
   */
  async restart({ graceful = true, timeoutMs = 30_000 } = {}) {
    await this.#kill(graceful ? 'SIGTERM' : 'SIGKILL', timeoutMs);
    return this.start();
  }

  /**
   * Stops the server for good (SIGTERM, killed after `timeoutMs`, default
   * 10 s; `graceful: false` kills at once) and removes the store it created.
   */
  async stop({ graceful = true, timeoutMs = 10_000 } = {}) {
    try {
      await this.#kill(graceful ? 'SIGTERM' : 'SIGKILL', timeoutMs);
    } finally {
      if (this.#tmp !== null) {
        rmSync(this.#tmp, { recursive: true, force: true });
        this.#tmp = null;
      }
    }
  }
}

/**
 * Starts a reference server with a freshly bootstrapped org; resolves once
 * it listens. Call `stop()` when done (it also removes the store).
 *
 * ```js
 * import { startReferenceServer } from 'tokenrelay/testing';
 * const server = await startReferenceServer({ args: ['--scripted-pace-ms', '0'] });
 * // server.httpUrl, server.wsUrl, server.orgId, server.orgKey
 * await server.stop();
 * ```
 * @param {import('./testing.js').ReferenceServerOptions} [options]
 * @returns {Promise<ReferenceServer>}
 */
export async function startReferenceServer(options = {}) {
  const server = new ReferenceServer(options);
  try {
    return await server.start();
  } catch (e) {
    await server.stop({ graceful: false });
    throw e;
  }
}
