// Types of `tokenrelay/testing`, written by hand: the reference server in a
// test suite (Node only). No wasm.

/** Options of {@link startReferenceServer}. */
export interface ReferenceServerOptions {
  /** The `tokenrelay-server` executable; default: `$TOKENRELAY_SERVER_BIN`,
   * else the first on `PATH`. */
  binary?: string;
  /** More server flags (`--scripted-pace-ms 0`, `--fault-injection`,
   * limits, `--base-protocol`; `tokenrelay-server --help`). Global flags:
   * given to `bootstrap` and `serve` alike. */
  args?: readonly string[];
  /** The bootstrapped org's name (default `test`). */
  orgName?: string;
  /** The org's credits (default: unlimited). */
  credits?: number;
  /** The store: a SQLite path or a `postgres://` URL; default: a SQLite
   * file in a fresh temporary directory, removed by `stop()`. Not
   * `:memory:`: bootstrap and serve are two processes. */
  db?: string;
  /** The address to serve on (default `127.0.0.1:0`: a free port). */
  bind?: string;
  /** Environment variables for the server, over `process.env`. */
  env?: Readonly<Record<string, string>>;
  /** How long to wait for the ready line (default 30,000 ms). */
  startupTimeoutMs?: number;
}

/** How {@link ReferenceServer.restart} and {@link ReferenceServer.stop} stop the process. */
export interface StopOptions {
  /** SIGTERM (default: the server drains, then exits) or, when false,
   * SIGKILL at once (as a crash). */
  graceful?: boolean;
  /** After a SIGTERM, how long to wait before a SIGKILL. */
  timeoutMs?: number;
}

/** A running reference server and the org bootstrapped in its store. */
export declare class ReferenceServer {
  /** Use {@link startReferenceServer}; the constructor starts nothing. */
  constructor(options?: ReferenceServerOptions);
  /** REST base URL, `http://127.0.0.1:PORT`. */
  readonly httpUrl: string;
  /** WebSocket URL, `ws://127.0.0.1:PORT/ws`. */
  readonly wsUrl: string;
  /** The bootstrapped org's id. */
  readonly orgId: string;
  /** The org's API key: server-side only; mint client keys with it. Not
   * enumerable, so it stays out of `console.log(server)`. */
  readonly orgKey: string;
  /** Every line the server logged (stderr), across restarts; never a credential. */
  readonly log: string[];
  /** The executable run. */
  readonly binary: string;
  /** The store (kept across restarts; a SQLite path or a `postgres://` URL);
   * undefined before the first start when none was given. */
  readonly db: string | undefined;
  /** Whether the server process is running. */
  readonly running: boolean;
  /** Bootstraps (the first time) and serves; resolves once it listens. */
  start(): Promise<this>;
  /** Stops the server and starts it again on the same address and store:
   * URLs, keys and data stay valid, as across a deployment's restart. */
  restart(options?: StopOptions): Promise<this>;
  /** Stops the server for good and removes the store it created. */
  stop(options?: StopOptions): Promise<void>;
}

/** No `tokenrelay-server` binary where one was asked for or looked for;
 * the message names every place tried. */
export declare class ServerNotFoundError extends Error {
  readonly code: 'ENOENT';
}

/** The executable's name, `tokenrelay-server`. */
export declare const BINARY_NAME: string;
/** `TOKENRELAY_SERVER_BIN`, the variable naming the binary. */
export declare const ENV_VAR: 'TOKENRELAY_SERVER_BIN';

/** The binary to run: `binary`, else `$TOKENRELAY_SERVER_BIN`, else `PATH`;
 * throws {@link ServerNotFoundError}. */
export declare function findServerBinary(binary?: string): string;

/**
 * Starts a reference server with a freshly bootstrapped org on
 * `127.0.0.1:0`; resolves once it listens.
 *
 * ```ts
 * import { startReferenceServer } from 'tokenrelay/testing';
 * const server = await startReferenceServer({ args: ['--scripted-pace-ms', '0'] });
 * // server.httpUrl, server.wsUrl, server.orgId, server.orgKey
 * await server.stop();
 * ```
 */
export declare function startReferenceServer(options?: ReferenceServerOptions): Promise<ReferenceServer>;
