// The public classes, over the wasm `WasmConnection`. This layer checks
// arguments, routes events to listeners and iterators, and settles the
// promises of `ask`/`stop`; every protocol decision is the Rust session's.

import { WasmConnection, setPanicReporter, __panicForTests } from './tokenrelay_wasm.js';
import { toError, PanicError, ClosedError, TimeoutError } from './errors.js';

let initialize = null;
let ready = null;
/** Set by the entry module (`index.js` for browsers, `node.js`). */
export function setInitializer(f) {
  initialize = f;
}
function loaded() {
  ready ??= Promise.resolve(initialize()).then(() => {
    setPanicReporter((message) => { lastPanic = message; });
  });
  return ready;
}

// A panic aborts the wasm instance; from then on nothing may call into it.
let dead = false;
let lastPanic = null;
const live = new Set();

function panicked(e) {
  if (!dead) {
    dead = true;
    const error = new PanicError(`tokenrelay crashed: ${lastPanic ?? e?.message ?? e}`, { code: 'panic' });
    for (const c of live) c._crash(error);
  }
  return new PanicError(`tokenrelay crashed: ${lastPanic ?? e?.message ?? e}`, { code: 'panic' });
}

/** Wraps a callback the wasm driver hands to JS (socket handlers, timers):
 * a trap inside becomes an error on every connection, never an uncaught
 * exception (which would end a Node process). */
function guard(f) {
  // Fixed arity (every driver callback takes at most two arguments): no rest
  // array per call on the per-frame path.
  return function guarded(a, b) {
    if (dead) return undefined;
    try {
      return f(a, b);
    } catch (e) {
      panicked(e);
      return undefined;
    }
  };
}

/** Calls into wasm: a returned error descriptor becomes an error class, a
 * trap a PanicError. */
function call(f) {
  if (dead) throw panicked(null);
  try {
    return f();
  } catch (e) {
    if (e && typeof e === 'object' && typeof e.code === 'string' && !(e instanceof Error)) throw toError(e);
    throw panicked(e);
  }
}

/** A listener that throws must not break the connection, but must not be
 * hidden either. */
function report(e) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
  else console.error(e);
}

function describe(v) {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

const EVENT_TYPES = new Set([
  'state', 'connected', 'response_started', 'token', 'response', 'tool_call', 'tool_response',
  'events', 'client_side_tool_calls', 'ack', 'request_failed', 'error', 'unknown', '*',
]);

/** A client for one tokenrelay server; `connect()` opens connections. */
export class Client {
  #options;

  constructor(options) {
    if (options == null || typeof options !== 'object') {
      throw new TypeError(`new Client(options): options must be an object {wsUrl, getToken}, got ${describe(options)}`);
    }
    const { wsUrl, getToken, clientKey, WebSocket, refreshAhead, connectTimeoutMs } = options;
    if (typeof wsUrl !== 'string' || !/^wss?:\/\//i.test(wsUrl)) {
      throw new TypeError(`options.wsUrl must be a ws:// or wss:// URL string, got ${typeof wsUrl === 'string' ? JSON.stringify(wsUrl) : describe(wsUrl)}`);
    }
    if (typeof getToken !== 'function') {
      throw new TypeError(`options.getToken must be a function (contextId) => token or Promise<token>, got ${describe(getToken)}`);
    }
    if (clientKey !== undefined && clientKey !== null && typeof clientKey !== 'string') {
      throw new TypeError(`options.clientKey must be a string (the publishable pk_… key), got ${describe(clientKey)}`);
    }
    if (WebSocket !== undefined && typeof WebSocket !== 'function') {
      throw new TypeError(`options.WebSocket must be a WebSocket constructor, got ${describe(WebSocket)}`);
    }
    if (WebSocket === undefined && typeof globalThis.WebSocket !== 'function') {
      throw new TypeError('there is no global WebSocket here: pass options.WebSocket (for example the `ws` package in Node)');
    }
    if (refreshAhead !== undefined && typeof refreshAhead !== 'boolean') {
      throw new TypeError(`options.refreshAhead must be a boolean, got ${describe(refreshAhead)}`);
    }
    if (connectTimeoutMs !== undefined && !(typeof connectTimeoutMs === 'number' && connectTimeoutMs > 0)) {
      throw new TypeError(`options.connectTimeoutMs must be a positive number of milliseconds, got ${describe(connectTimeoutMs)}`);
    }
    this.#options = {
      wsUrl,
      getToken,
      clientKey: clientKey ?? undefined,
      WebSocket,
      refreshAhead: refreshAhead ?? true,
      connectTimeoutMs: connectTimeoutMs ?? 30_000,
    };
  }

  /** Connects to `contextId`; resolves once attached, rejects if the
   * connection fails for good (forbidden, not found, …) before that, or
   * with the last attempt's error (a `TimeoutError` if none failed) when
   * no attempt attached within `connectTimeoutMs`; the connection is then
   * closed, and `getToken` is not called again. */
  connect(contextId) {
    if (typeof contextId !== 'string' || contextId === '') {
      throw new TypeError(`connect(contextId): contextId must be a non-empty string, got ${describe(contextId)}`);
    }
    return loaded().then(() => {
      const conn = new Connection(this.#options, contextId, secret);
      return conn._opened.then(() => conn);
    });
  }
}

// Only `Client.connect` makes connections.
const secret = Symbol('tokenrelay.internal');
const encoder = new TextEncoder();
// Frames handed to wasm in one call at most (see `wrapMessage`).
const MAX_BATCH = 64;

/** One connection to one context. Reconnects by itself until `close()`. */
export class Connection {
  #wasm;
  #contextId;
  #listeners = new Map();
  #iterators = new Set();
  #answers = new Map();
  #acks = new Map();
  #ended = false;
  #state = 'idle';
  #opened = {};
  #responseId = null;
  /** Ends a connect that never attaches (see `Client.connect`). */
  #connectTimer = null;
  /** The cause of the latest failed attempt, reported if connect times out. */
  #lastCause = null;
  #timedOut = null;

  constructor(options, contextId, key) {
    if (key !== secret) throw new TypeError('use `await client.connect(contextId)` to make a Connection');
    this.#contextId = contextId;
    this._opened = new Promise((resolve, reject) => { this.#opened = { resolve, reject }; });
    // Unhandled only if nobody awaits connect(); avoid a spurious warning.
    this._opened.catch(() => {});
    const timeoutMs = options.connectTimeoutMs;
    if (Number.isFinite(timeoutMs)) {
      this.#connectTimer = setTimeout(() => {
        this.#connectTimer = null;
        if (this.#ended || this.#state === 'connected') return;
        this.#timedOut = this.#lastCause
          ?? new TimeoutError(`no attempt attached to the context within ${timeoutMs} ms`, { code: 'timeout' });
        this.close();
      }, timeoutMs);
    }
    const getToken = options.getToken;
    // What the wasm driver calls (see `Sink` in src/driver.rs). Frames are
    // handed over in batches: `batch` holds the text of those written to
    // the frame buffer and not yet handed over; `frames` those being handled,
    // from which a token that is a plain slice arrives as offsets, sparing a
    // string copy out of wasm per token.
    let batch = [];
    let frames = batch;
    let used = 0;
    let scheduled = false;
    let buffer = new Uint8Array(0);
    const sink = {
      responseId: (id) => { this.#responseId = id; },
      tokenAt: (frame, start, end) => this.#token(this.#responseId, frames[frame].slice(start, end)),
      token: (token) => this.#token(this.#responseId, token),
      event: (e) => this.#event(e),
      wrapMessage: (inBuffer, asText) => {
        const flush = () => {
          scheduled = false;
          if (used === 0) return;
          const n = used;
          used = 0;
          frames = batch.splice(0);
          if (dead) return;
          try {
            inBuffer(n);
          } catch (err) {
            panicked(err);
          }
          frames = batch;
        };
        return (e) => {
          if (dead) return;
          const data = e.data;
          try {
            if (typeof data !== 'string') {
              flush();
              asText(undefined);
              return;
            }
            // UTF-8 takes at most 3 bytes per UTF-16 unit, plus 4 for the
            // length. The view is detached (length 0) once wasm memory grew.
            if (buffer.length === 0) buffer = this.#wasm.frameBuffer();
            if (used + 4 + data.length * 3 > buffer.length) {
              flush();
              if (buffer.length === 0) buffer = this.#wasm.frameBuffer();
              if (4 + data.length * 3 > buffer.length) {
                asText(data);
                return;
              }
            }
            const written = encoder.encodeInto(data, buffer.subarray(used + 4)).written;
            buffer[used] = written & 0xff;
            buffer[used + 1] = (written >>> 8) & 0xff;
            buffer[used + 2] = (written >>> 16) & 0xff;
            buffer[used + 3] = written >>> 24;
            used += 4 + written;
            // Handed over when the socket read that brought it is done (a
            // microtask), or at once when the batch is big enough: the call
            // into wasm is then well amortized, and no token waits long.
            if (batch.push(data) >= MAX_BATCH) flush();
            else if (!scheduled) {
              scheduled = true;
              queueMicrotask(flush);
            }
          } catch (err) {
            panicked(err);
          }
        };
      },
    };
    this.#wasm = call(() => new WasmConnection(
      options.wsUrl, contextId, options.clientKey, getToken, options.WebSocket, sink, guard,
      options.refreshAhead,
    ));
    live.add(this);
    call(() => this.#wasm.start());
  }

  /** The context this connection is attached to. */
  get contextId() { return this.#contextId; }

  /** The current state (`"connected"`, `"reconnecting"`, …). */
  get state() { return this.#state; }

  /** The server's name, version and capabilities, once connected. */
  get server() { return this.#ended ? null : call(() => this.#wasm.server()); }

  /** Calls `listener` for every event of `type` (`"*"`: every event).
   * Returns a function that removes it. */
  on(type, listener) {
    if (!EVENT_TYPES.has(type)) throw new TypeError(`on(type, listener): unknown event type ${JSON.stringify(type)}; one of ${[...EVENT_TYPES].join(', ')}`);
    if (typeof listener !== 'function') throw new TypeError(`on(${JSON.stringify(type)}, listener): listener must be a function, got ${describe(listener)}`);
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  /** Removes a listener added with `on`. */
  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
  }

  /** Sends `text` and resolves with the whole response it causes. */
  ask(text) {
    checkText('ask(text)', text);
    return this.#answer(() => this.#wasm.sendMessage(text));
  }

  /** Sends `text` without waiting; returns the request id (the response's
   * `requestId`). Follow it with `on('token')`/`on('response')`. */
  sendMessage(text) {
    checkText('sendMessage(text)', text);
    return call(() => this.#wasm.sendMessage(text));
  }

  /** Stops the running reply (kept, status `"stopped"`); resolves with the
   * server's acknowledgement. */
  stop() {
    return this.#settle(this.#acks, () => this.#wasm.stop());
  }

  /** Rewrites the tail of the history and re-invokes the agent; resolves
   * with the new response. */
  setLastMessages(humanMessage, aiMessage) {
    checkText('setLastMessages(humanMessage)', humanMessage);
    if (aiMessage !== undefined && aiMessage !== null && typeof aiMessage !== 'string') {
      throw new TypeError(`setLastMessages(humanMessage, aiMessage): aiMessage must be a string or undefined, got ${describe(aiMessage)}`);
    }
    return this.#answer(() => this.#wasm.setLastMessages(humanMessage, aiMessage ?? undefined));
  }

  /** Answers client-side tool calls; resolves with the agent's whole
   * continuation (a new response, which may itself ask for tools). */
  sendToolResponses(responses) {
    const bad = () => new TypeError('sendToolResponses(responses): responses must be an array of {toolCallId: string, response: string}');
    if (!Array.isArray(responses)) throw bad();
    const ids = [];
    const outputs = [];
    for (const r of responses) {
      if (r == null || typeof r.toolCallId !== 'string' || typeof r.response !== 'string') throw bad();
      ids.push(r.toolCallId);
      outputs.push(r.response);
    }
    return this.#answer(() => this.#wasm.sendToolResponses(ids, outputs));
  }

  /** A response by id: streaming, or one of the last 64 completed. */
  response(responseId) {
    if (typeof responseId !== 'string') throw new TypeError(`response(responseId): responseId must be a string, got ${describe(responseId)}`);
    return this.#ended ? undefined : call(() => this.#wasm.response(responseId));
  }

  /** Tells the connection whether the network is up. Browsers' `online` /
   * `offline` events are followed automatically; this is for other hosts. */
  setNetworkAvailable(available) {
    if (typeof available !== 'boolean') throw new TypeError(`setNetworkAvailable(available): available must be a boolean, got ${describe(available)}`);
    if (!this.#ended) call(() => this.#wasm.setNetworkAvailable(available));
  }

  /** Retries at once if waiting to reconnect. */
  reconnectNow() {
    if (!this.#ended) call(() => this.#wasm.reconnectNow());
  }

  /** Closes for good: pending requests reject with `ClosedError`, every
   * socket, timer and listener is released. */
  close() {
    if (this.#ended || dead) return;
    call(() => this.#wasm.close());
  }

  /** Every event from now on, until the connection closes or fails. */
  [Symbol.asyncIterator]() {
    const it = { queue: [], wake: null, done: this.#ended };
    this.#iterators.add(it);
    const finish = () => {
      this.#iterators.delete(it);
      it.done = true;
      it.queue.length = 0;
      return Promise.resolve({ value: undefined, done: true });
    };
    return {
      next: () => {
        if (it.queue.length) return Promise.resolve({ value: it.queue.shift(), done: false });
        if (it.done) return finish();
        return new Promise((resolve) => { it.wake = resolve; }).then(() => (
          it.queue.length ? { value: it.queue.shift(), done: false } : finish()
        ));
      },
      return: finish,
      [Symbol.asyncIterator]() { return this; },
    };
  }

  #answer(send) {
    return this.#settle(this.#answers, send);
  }

  // The promise carries the request id, so a caller can match the
  // response's events (`response_started.requestId`) while it streams.
  #settle(map, send) {
    let id;
    try {
      id = call(send);
    } catch (e) {
      return Promise.reject(e);
    }
    const p = new Promise((resolve, reject) => map.set(id, { resolve, reject }));
    p.requestId = id;
    return p;
  }

  #token(responseId, token) {
    const listeners = this.#listeners.get('token');
    if (!listeners?.size && !this.#listeners.get('*')?.size && !this.#iterators.size) return;
    this.#emit({ type: 'token', responseId, token });
  }

  #event(e) {
    switch (e.type) {
      case 'state':
        if (e.cause) e.cause = toError(e.cause);
        this.#state = e.state;
        break;
      case 'request_failed': {
        e.error = toError(e.error);
        const waiter = this.#answers.get(e.requestId) ?? this.#acks.get(e.requestId);
        this.#answers.delete(e.requestId);
        this.#acks.delete(e.requestId);
        waiter?.reject(e.error);
        break;
      }
      case 'error':
        e.error = toError(e.error);
        break;
      case 'response': {
        const waiter = this.#answers.get(e.response.requestId);
        if (waiter) {
          this.#answers.delete(e.response.requestId);
          waiter.resolve(e.response);
        }
        break;
      }
      case 'ack': {
        const waiter = this.#acks.get(e.requestId);
        if (waiter) {
          this.#acks.delete(e.requestId);
          waiter.resolve(e.result);
        }
        break;
      }
      default:
    }
    this.#emit(e);
    if (e.type === 'state') {
      if (e.cause) this.#lastCause = e.cause;
      if (e.state === 'connected') {
        clearTimeout(this.#connectTimer);
        this.#opened.resolve();
      } else if (e.state === 'closed' || e.state === 'failed') {
        this.#end(this.#timedOut ?? e.cause ?? new ClosedError('the connection is closed', { code: 'closed' }));
      }
    }
  }

  #emit(e) {
    this.#call(this.#listeners.get(e.type), e);
    this.#call(this.#listeners.get('*'), e);
    if (this.#iterators.size === 0) return;
    for (const it of this.#iterators) {
      it.queue.push(e);
      if (it.wake) {
        const wake = it.wake;
        it.wake = null;
        wake();
      }
    }
  }

  #call(set, e) {
    if (!set || set.size === 0) return;
    for (const f of set) {
      try {
        f(e);
      } catch (err) {
        report(err);
      }
    }
  }

  #end(cause) {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#connectTimer);
    live.delete(this);
    this.#opened.reject(cause);
    for (const map of [this.#answers, this.#acks]) {
      for (const w of map.values()) w.reject(cause);
      map.clear();
    }
    for (const it of this.#iterators) {
      it.done = true;
      if (it.wake) {
        const wake = it.wake;
        it.wake = null;
        wake();
      }
    }
  }

  /** The wasm module crashed: report it and end. */
  _crash(error) {
    if (this.#ended) return;
    this.#state = 'failed';
    this.#emit({ type: 'error', error });
    this.#emit({ type: 'state', state: 'failed', attempt: 0, retryIn: null, cause: error });
    this.#end(error);
  }
}

/** Makes the wasm module panic, for the test suite only (not re-exported
 * by the entries): the panic must reach every connection as an error. */
export function __crashForTests() {
  return call(() => __panicForTests());
}

function checkText(what, text) {
  if (typeof text !== 'string') throw new TypeError(`${what}: text must be a string, got ${describe(text)}`);
}
