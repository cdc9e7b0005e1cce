// The public classes, over the wasm `WasmConnection`. This layer checks
// arguments, routes events to listeners and iterators, and settles the
// promises of `ask`/`stop`; every protocol decision is the Rust session's.

import wbgInit, { initSync as wbgInitSync, WasmConnection, setPanicReporter, __panicForTests, __errorKindsForTests as errorKindSamples } from './tokenrelay_wasm.js';
import { toError, PanicError, ClosedError, TimeoutError } from './errors.js';

// The wasm module is loaded once per module instance: by `init()` /
// `initSync()` when the app calls them, else on the first `connect()` by
// the entry's default loader (a URL next to the file for browsers and
// bundlers, the file on disk in Node, an imported module on edge runtimes).
let ready = null;
let instantiated = false;
function afterLoad() {
  if (instantiated) return;
  instantiated = true;
  setPanicReporter((message, file, line) => {
    lastPanic = file === undefined ? message : `${message} (${file}:${line})`;
  });
}

/** Loads the wasm module with `load` unless it is loaded or loading. */
function loaded(load) {
  if (ready === null) {
    ready = Promise.resolve().then(load).then(afterLoad);
    // A failed load (a 404 for the .wasm) may be retried.
    ready.catch(() => { ready = null; });
  }
  return ready;
}

/** `init()` of an entry: `options.module` is what wasm-bindgen's loader
 * takes (a `WebAssembly.Module`, bytes, a `Response` or a promise of one,
 * a URL); without it the entry's default loader runs. */
export function initWith(options, defaultLoad) {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    return Promise.reject(new TypeError(`init(options): options must be an object { module }, got ${describe(options)}`));
  }
  const module = options?.module;
  return loaded(module === undefined ? defaultLoad : () => wbgInit({ module_or_path: module })).then(() => undefined);
}

/** `initSync()` of every entry: `options.module` is a `WebAssembly.Module`
 * or the `.wasm` file's bytes. */
export function initSync(options) {
  if (instantiated) return;
  const module = options?.module;
  if (!(module instanceof WebAssembly.Module || ArrayBuffer.isView(module) || module instanceof ArrayBuffer)) {
    throw new TypeError(`initSync(options): options.module must be a WebAssembly.Module or the .wasm bytes, got ${describe(module)}`);
  }
  wbgInitSync({ module });
  afterLoad();
  ready = Promise.resolve();
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

/** Wraps a callback that calls into wasm (socket handlers, the timer,
 * `getToken` answers, browser listeners): a trap inside becomes an error
 * on every connection, never an uncaught exception (which would end a Node
 * process); once the module is dead it does nothing. */
function guard(f) {
  // Fixed arity (every callback takes at most two arguments): no rest
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

/** Calls into wasm: a trap becomes a PanicError. (No export throws; the
 * request methods return an error descriptor instead: `request`.) */
function call(f) {
  if (dead) throw panicked(null);
  try {
    return f();
  } catch (e) {
    throw panicked(e);
  }
}

/** Sends a request through wasm: its id, or its error descriptor (returned,
 * not thrown, by the module) thrown as its error class. */
function request(f) {
  const id = call(f);
  if (typeof id !== 'number') throw toError(JSON.parse(id));
  return id;
}

/** The message of a thrown JS value. */
function thrownMessage(e) {
  if (typeof e === 'string') return e;
  return stringField(e, 'message') ?? 'unknown error';
}

/** `o[key]` if it is a string; a getter that throws reads as nothing. */
function stringField(o, key) {
  const v = field(o, key);
  return typeof v === 'string' ? v : undefined;
}

/** `o[key]`, or undefined when reading it throws (`null`, a getter). */
function field(o, key) {
  try {
    return o[key];
  } catch {
    return undefined;
  }
}

/** What `getToken` resolved to, handed to the session as a credential:
 * a string (an access token), `{streamToken}` or `{accessToken}`; anything
 * else is handed over without one (the binding makes it a configuration
 * error, which ends the connection). */
function tokenAnswer(wasm, id, v) {
  if (typeof v === 'string') return wasm.tokenOk(id, v, false);
  if (v !== null && typeof v === 'object') {
    const stream = stringField(v, 'streamToken');
    if (stream !== undefined) return wasm.tokenOk(id, stream, true);
    const access = stringField(v, 'accessToken');
    if (access !== undefined) return wasm.tokenOk(id, access, false);
  }
  return wasm.tokenOk(id, undefined, false);
}

/** A `getToken` rejection, handed to the session with what it is
 * classified by (the core's `Error::from_provider`): its `code` (a kind
 * name such as `"forbidden"` from this package's error classes, or a server
 * code), `serverCode`, and an HTTP status, its own (`status`,
 * `statusCode`) or its `response`'s (a thrown `fetch` Response, ky's and
 * ofetch's errors). */
function tokenFailure(wasm, id, e) {
  const status = (o) => {
    const v = field(o, 'status');
    if (typeof v === 'number') return v;
    const w = field(o, 'statusCode');
    return typeof w === 'number' ? w : undefined;
  };
  wasm.tokenErr(id, thrownMessage(e), stringField(e, 'code'), stringField(e, 'serverCode'),
    status(e) ?? status(field(e, 'response')));
}

const STATS = ['connects', 'reconnects', 'resumes', 'replayed', 'tokens', 'duplicates',
  'interrupted', 'framesReceived', 'bytesReceived', 'tokenFetches'];

/** The wasm side's counters (numbers in `STATS` order, or null: zeros) as
 * a frozen object. */
function statsOf(numbers) {
  const out = {};
  STATS.forEach((name, i) => { out[name] = numbers ? numbers[i] : 0; });
  return Object.freeze(out);
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
  #load;

  // `load`: the entry's default wasm loader (each entry subclasses Client
  // to pass its own, so a bundler that drops unused modules keeps it).
  constructor(options, load) {
    this.#load = load;
    if (options == null || typeof options !== 'object') {
      throw new TypeError(`new Client(options): options must be an object {wsUrl, getToken}, got ${describe(options)}`);
    }
    const {
      wsUrl, getToken, clientKey, WebSocket, refreshAhead, connectTimeoutMs, logger,
      requestTimeoutMs, invocationTimeoutMs, reconnectMinDelayMs, reconnectMaxDelayMs, maxReconnectAttempts,
      maxQueued, maxQueuedAgeMs,
    } = options;
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
    const durations = { connectTimeoutMs, requestTimeoutMs, invocationTimeoutMs, reconnectMinDelayMs, reconnectMaxDelayMs };
    for (const [name, v] of Object.entries(durations)) checkMs(`options.${name}`, v, name !== 'reconnectMinDelayMs');
    // 0: no age limit.
    checkMs('options.maxQueuedAgeMs', maxQueuedAgeMs, false);
    if (maxQueued !== undefined && !(Number.isInteger(maxQueued) && maxQueued >= 0 && maxQueued < 2 ** 32)) {
      throw new TypeError(`options.maxQueued must be a non-negative integer, got ${describe(maxQueued)}`);
    }
    if ((reconnectMinDelayMs ?? 500) > (reconnectMaxDelayMs ?? 20_000)) {
      throw new TypeError(`options.reconnectMinDelayMs (${reconnectMinDelayMs ?? 500}) must not exceed options.reconnectMaxDelayMs (${reconnectMaxDelayMs ?? 20_000})`);
    }
    if (maxReconnectAttempts !== undefined && !(Number.isInteger(maxReconnectAttempts) && maxReconnectAttempts >= 1 && maxReconnectAttempts < 2 ** 32)) {
      throw new TypeError(`options.maxReconnectAttempts must be a positive integer, got ${describe(maxReconnectAttempts)}`);
    }
    if (logger !== undefined && logger !== null && typeof logger?.debug !== 'function') {
      throw new TypeError(`options.logger must have a debug(message) method (console does), got ${describe(logger)}`);
    }
    this.#options = {
      wsUrl,
      getToken,
      clientKey: clientKey ?? undefined,
      WebSocket,
      refreshAhead: refreshAhead ?? true,
      connectTimeoutMs: connectTimeoutMs ?? 30_000,
      requestTimeoutMs,
      invocationTimeoutMs,
      reconnectMinDelayMs,
      reconnectMaxDelayMs,
      maxReconnectAttempts,
      maxQueued,
      maxQueuedAgeMs,
      logger: logger ?? null,
    };
  }

  /** Connects to `contextId`; resolves once attached, rejects if the
   * connection fails for good (forbidden, not found, …) before that, or
   * with the last attempt's error (a `TimeoutError` if none failed) when
   * no attempt attached within `connectTimeoutMs`; the connection is then
   * closed, and `getToken` is not called again.
   *
   * `options.signal` (an `AbortSignal`) cancels: connect() rejects with
   * `signal.reason` (a `DOMException` named `"AbortError"`, or
   * `"TimeoutError"` from `AbortSignal.timeout()`), and aborting later
   * closes the connection. `options.timeout` (ms) bounds this call: past
   * it, connect() rejects with a `TimeoutError` whose `cause` is the last
   * attempt's error. Either way every retry, timer and socket stops, and
   * the signal passed to a `getToken` call in flight is aborted. */
  connect(contextId, options) {
    if (typeof contextId !== 'string' || contextId === '') {
      throw new TypeError(`connect(contextId): contextId must be a non-empty string, got ${describe(contextId)}`);
    }
    const signal = checkSignal('connect(contextId, options)', options);
    const timeout = options?.timeout;
    checkMs('connect(contextId, options): options.timeout', timeout, true);
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return loaded(this.#load).then(() => {
      if (signal?.aborted) throw abortReason(signal);
      const conn = new Connection(this.#options, contextId, secret, signal, timeout);
      return conn._opened.then(() => conn);
    });
  }
}

/** A WebSocket constructor whose sockets always have an `error` listener:
 * an EventEmitter socket (the `ws` package) closed while still connecting
 * (connect() aborted) emits `error`, which with no listener would be an
 * uncaught exception. Errors need no handling: `close` follows each. */
function withErrorListener(Ctor) {
  if (Ctor === undefined) return undefined;
  return function WebSocket(url) {
    const ws = new Ctor(url);
    if (typeof ws.on === 'function') ws.on('error', () => {});
    return ws;
  };
}

/** Throws a TypeError unless `v` is undefined or a positive number of
 * milliseconds (zero allowed when `positive` is false). */
function checkMs(what, v, positive) {
  if (v === undefined) return;
  if (!(typeof v === 'number' && Number.isFinite(v) && (positive ? v > 0 : v >= 0))) {
    throw new TypeError(`${what} must be a ${positive ? 'positive' : 'non-negative'} number of milliseconds, got ${describe(v)}`);
  }
}

/** `options.signal`, checked: undefined or an AbortSignal. */
function checkSignal(what, options) {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object') throw new TypeError(`${what}: options must be an object, got ${describe(options)}`);
  const { signal } = options;
  if (signal === undefined || signal === null) return undefined;
  if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function') {
    throw new TypeError(`${what}: options.signal must be an AbortSignal, got ${describe(signal)}`);
  }
  return signal;
}

/** What an aborted operation rejects with: the signal's reason, as
 * `fetch()` does (an `AbortError` DOMException unless the app gave one). */
function abortReason(signal) {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

// Secrets look like these; a log line never carries one, even when a
// server or provider message quotes it.
const SECRET = /\b(?:eyJ[\w-]*\.[\w-]*\.[\w-]*|pub_tok_[\w-]+|sk_live_[\w-]+|pk_[\w.-]+)/g;
function redact(text) {
  return String(text).replace(SECRET, '[redacted]');
}

/** One line about an error for the logger: class, code, message (redacted). */
function describeError(e) {
  if (!e) return '';
  return `${e.name ?? 'Error'}${e.code ? `(${e.code})` : ''}: ${redact(e.message ?? e)}`;
}

// Only `Client.connect` makes connections.
const secret = Symbol('tokenrelay.internal');
const encoder = new TextEncoder();
// Frames handed to wasm in one call at most (see `onMessage`).
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
  /** The counters as they stood when the connection ended. */
  #finalStats = null;
  #state = 'idle';
  #opened = {};
  #responseId = null;
  /** Ends a connect that never attaches (see `Client.connect`). */
  #connectTimer = null;
  /** The cause of the latest failed attempt, reported if connect times out. */
  #lastCause = null;
  #timedOut = null;
  /** connect()'s own `timeout` timer. */
  #callTimer = null;
  /** connect()'s `signal` and its listener, removed when the connection ends. */
  #signal = null;
  #onAbort = null;
  /** Aborted when the connection ends: the signal `getToken` calls get. */
  #life = new AbortController();
  #logger = null;
  /** Clears the timer, closes the socket and removes the browser
   * listeners (set by the constructor). */
  #release = null;
  /** Token streams (`stream()`) by request id, then by response id once
   * their reply started. */
  #streamsByRequest = new Map();
  #streamsByResponse = new Map();
  /** Replies streaming now: request id -> response id. */
  #streaming = new Map();
  /** Requests whose caller gave up (`ask(text, {signal})` aborted) before
   * their reply started: stopped as soon as it starts. */
  #stopOnStart = new Set();

  constructor(options, contextId, key, signal, callTimeout) {
    if (key !== secret) throw new TypeError('use `await client.connect(contextId)` to make a Connection');
    this.#contextId = contextId;
    this.#logger = options.logger;
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
        this.#log(`connect: no attempt attached within connectTimeoutMs ${timeoutMs} ms; closing`);
        this.close();
      }, timeoutMs);
    }
    if (callTimeout !== undefined) {
      this.#callTimer = setTimeout(() => {
        this.#callTimer = null;
        if (this.#ended || this.#state === 'connected') return;
        this.#timedOut = new TimeoutError(
          `connect() did not attach within its timeout of ${callTimeout} ms`,
          { code: 'timeout', cause: this.#lastCause ?? undefined },
        );
        this.#log(`connect: timeout ${callTimeout} ms passed; closing`);
        this.close();
      }, callTimeout);
    }
    if (signal) {
      this.#signal = signal;
      this.#onAbort = () => {
        this.#timedOut = abortReason(signal);
        this.#log('aborted by the signal; closing');
        this.close();
      };
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
    // The app's provider, with a signal it may pass on to fetch(): aborted
    // once the connection ends, so a token request in flight stops too.
    const getToken = (ctx) => options.getToken(ctx, { signal: this.#life.signal });
    // The I/O of the connection (the wasm driver asks for it through
    // `sink`, see `Sink` in src/driver.rs, and hears back through the
    // connection's methods): the socket, the one timer, `getToken` calls
    // and the browser's life events. What to do with each is the wasm
    // session's decision; nothing here decides anything about the protocol.
    //
    // Frames are handed over in batches: `batch` holds the text of those
    // written to the frame buffer and not yet handed over; `frames` those
    // being handled, from which a token that is a plain slice arrives as
    // offsets, sparing a string copy out of wasm per token.
    let batch = [];
    let frames = batch;
    let used = 0;
    let scheduled = false;
    let buffer = new Uint8Array(0);
    let ws = null;
    let wsOpen = false;
    let timer = null;
    const wasm = () => this.#wasm;
    const flush = () => {
      scheduled = false;
      if (used === 0) return;
      const n = used;
      used = 0;
      frames = batch.splice(0);
      if (dead) return;
      try {
        wasm().batch(n);
      } catch (err) {
        panicked(err);
      }
      frames = batch;
    };
    // Text frames that fit are written one after another into the frame
    // buffer (`TextEncoder.encodeInto`, no allocation), each as a
    // little-endian u32 byte length and its UTF-8, and handed over in one
    // call from a microtask. A frame too big for the buffer crosses as a
    // string (`frame(text)`), a binary one as `frame(undefined)`, each
    // after the batch before it. (`frameBuffer()` is read here
    // synchronously: a socket whose `send` delivered a message at once,
    // inside the call into wasm that sent, would meet the session still
    // borrowed. Real WebSockets deliver messages as tasks.)
    const onMessage = guard((e) => {
      const data = e.data;
      if (typeof data !== 'string') {
        flush();
        wasm().frame(undefined);
        return;
      }
      // UTF-8 takes at most 3 bytes per UTF-16 unit, plus 4 for the
      // length. The view is detached (length 0) once wasm memory grew.
      if (buffer.length === 0) buffer = wasm().frameBuffer();
      if (used + 4 + data.length * 3 > buffer.length) {
        flush();
        if (buffer.length === 0) buffer = wasm().frameBuffer();
        if (4 + data.length * 3 > buffer.length) {
          wasm().frame(data);
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
    });
    const onOpen = guard(() => {
      wsOpen = true;
      wasm().opened();
    });
    const onClose = guard((e) => {
      const wasOpen = wsOpen;
      detach();
      wasm().closed(e.code, String(e.reason ?? ''), wasOpen);
    });
    /** Forgets the socket: its handlers go first, so nothing more is
     * heard from it. */
    const detach = () => {
      const old = ws;
      if (old) {
        old.onopen = old.onmessage = old.onclose = null;
        ws = null;
        wsOpen = false;
      }
      return old;
    };
    const closeQuietly = (socket, code, reason) => {
      try {
        socket?.close(code, reason);
      } catch {
        // Closing is best effort: the socket is forgotten either way.
      }
    };
    const WebSocketCtor = withErrorListener(options.WebSocket);
    const onTimer = guard(() => {
      timer = null;
      wasm().timer();
    });
    const onOnline = guard(() => wasm().setNetworkAvailable(true));
    const onOffline = guard(() => wasm().setNetworkAvailable(false));
    const onVisibility = guard(() => {
      const v = globalThis.document?.visibilityState;
      if (typeof v !== 'string' || v === 'visible') wasm().visible();
    });
    // The `online`/`offline` and `visibilitychange` listeners, where the
    // host has them (not in Node).
    const listen = (on) => {
      const method = on ? 'addEventListener' : 'removeEventListener';
      const doc = globalThis.document;
      if (typeof globalThis[method] === 'function') {
        globalThis[method]('online', onOnline);
        globalThis[method]('offline', onOffline);
      }
      if (doc && typeof doc[method] === 'function') doc[method]('visibilitychange', onVisibility);
    };
    this.#release = () => {
      clearTimeout(timer);
      timer = null;
      closeQuietly(detach());
      listen(false);
    };
    const sink = {
      responseId: (id) => { this.#responseId = id; },
      tokenAt: (frame, start, end) => this.#token(this.#responseId, frames[frame].slice(start, end)),
      token: (token) => this.#token(this.#responseId, token),
      // The core writes valid JSON; were it ever not, the one event is
      // reported as a protocol error rather than trapping the module.
      event: (text) => {
        let e;
        try {
          e = JSON.parse(text);
        } catch (err) {
          e = { type: 'error', error: { code: 'protocol', message: `an event could not be read: ${err.message}` } };
        }
        this.#event(e);
      },
      open: (url) => {
        closeQuietly(detach());
        // Nothing here may throw into wasm (which holds the session while
        // it asks): an app's WebSocket class that throws on construction or
        // on a setter is reported as the constructor's failure.
        let socket;
        try {
          socket = new (WebSocketCtor ?? globalThis.WebSocket)(url);
          socket.binaryType = 'arraybuffer';
          socket.onopen = onOpen;
          socket.onmessage = onMessage;
          socket.onclose = onClose;
        } catch (e) {
          // Its handlers go first (they would take it for the current
          // socket), then it is closed.
          try {
            if (socket) socket.onopen = socket.onmessage = socket.onclose = null;
          } catch {
            // A setter that throws: there is nothing more to undo.
          }
          closeQuietly(socket);
          return thrownMessage(e);
        }
        ws = socket;
        wsOpen = false;
        return undefined;
      },
      closeSocket: (code, reason) => closeQuietly(detach(), code, reason),
      send: (frame) => {
        if (!ws) return undefined; // the socket went away; the session knows
        try {
          ws.send(frame);
          return undefined;
        } catch (e) {
          closeQuietly(detach());
          return thrownMessage(e);
        }
      },
      timer: (ms) => {
        clearTimeout(timer);
        timer = setTimeout(onTimer, ms);
      },
      // Answered asynchronously even when `getToken` returns or throws
      // synchronously, as promises are; the fetch id rides along so the
      // session can ignore a late answer to an abandoned fetch.
      fetchToken: (id, ctx) => {
        let answer;
        try {
          answer = Promise.resolve(getToken(ctx));
        } catch (e) {
          answer = Promise.reject(e);
        }
        answer.then(
          guard((v) => tokenAnswer(wasm(), id, v)),
          guard((e) => tokenFailure(wasm(), id, e)),
        );
      },
      release: () => this.#release(),
    };
    const n = (v) => (v === undefined ? NaN : Number(v));
    this.#wasm = call(() => new WasmConnection(
      options.wsUrl, contextId, options.clientKey, sink,
      Float64Array.of(
        options.refreshAhead ? 1 : 0, n(options.requestTimeoutMs), n(options.invocationTimeoutMs),
        n(options.reconnectMinDelayMs), n(options.reconnectMaxDelayMs), n(options.maxReconnectAttempts),
        n(options.maxQueued), n(options.maxQueuedAgeMs),
      ),
    ));
    live.add(this);
    this.#log('connecting');
    listen(true);
    call(() => this.#wasm.start(globalThis.navigator?.onLine === false));
  }

  /** A debug line for the app's logger (context id, states, causes; never
   * a key or token). */
  #log(line) {
    if (!this.#logger) return;
    try {
      this.#logger.debug(`tokenrelay ${this.#contextId}: ${line}`);
    } catch (e) {
      report(e);
    }
  }

  /** The context this connection is attached to. */
  get contextId() { return this.#contextId; }

  /** The current state (`"connected"`, `"reconnecting"`, …). */
  get state() { return this.#state; }

  /** How many messages wait for a connection to be sent: queued while
   * disconnected, or sent on a socket that died before the server
   * confirmed them (sent again, once, after the reconnect). Nonzero only
   * while disconnected: show them as "sending…". It changes on a send, on
   * a `state` event, and when a queued message fails (`QueueExpiredError`,
   * or `ClosedBeforeSentError` on `close()`). */
  get pending() { return this.#ended ? 0 : call(() => this.#wasm.pending()); }

  /** What this connection has done since it started, counted by the
   * core: `connects`, `reconnects`, `resumes`, `replayed` (notifications
   * replayed on resumes), `tokens`, `duplicates`, `interrupted` (replies
   * cut), `framesReceived`, `bytesReceived`, `tokenFetches`. Still
   * readable after the connection ended. */
  stats() {
    if (this.#ended) return this.#finalStats ?? statsOf(null);
    return statsOf(call(() => this.#wasm.stats()));
  }

  /** The server's name, version and capabilities, once connected. */
  get server() {
    const text = this.#ended ? undefined : call(() => this.#wasm.server());
    return text === undefined ? null : JSON.parse(text);
  }

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

  /** Sends `text` and resolves with the whole response it causes.
   *
   * `options.signal` cancels: the promise rejects with `signal.reason` (an
   * `AbortError` DOMException by default) and the agent's reply is stopped
   * (`stop()`), at once if it is streaming, else as soon as it starts. An
   * already aborted signal sends nothing. */
  ask(text, options) {
    checkText('ask(text)', text);
    const signal = checkSignal('ask(text, options)', options);
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return this.#answer(() => this.#wasm.sendMessage(text), signal);
  }

  /** Sends `text` and returns its reply's tokens as an async iterable:
   * `for await (const token of conn.stream("Hello"))`. Iteration ends when
   * the reply ends (`stream.response` then holds it: check its `status`)
   * and throws what `ask()` would reject with (the request failed, the
   * connection closed or failed, the signal aborted). Tokens arriving
   * before iteration starts are kept; leaving the loop early stops
   * listening, not the reply (use `options.signal` for that). */
  stream(text, options) {
    checkText('stream(text)', text);
    const signal = checkSignal('stream(text, options)', options);
    const reply = signal?.aborted
      ? Promise.reject(abortReason(signal))
      : this.#answer(() => this.#wasm.sendMessage(text), signal);
    return new TokenStream(reply, this.#streamsByRequest, signal);
  }

  /** Sends `text` without waiting; returns the request id (the response's
   * `requestId`). Follow it with `on('token')`/`on('response')`. */
  sendMessage(text) {
    checkText('sendMessage(text)', text);
    return request(() => this.#wasm.sendMessage(text));
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
    const answers = [];
    for (const r of responses) {
      if (r == null || typeof r.toolCallId !== 'string' || typeof r.response !== 'string') throw bad();
      answers.push([r.toolCallId, r.response]);
    }
    return this.#answer(() => {
      for (const [id, output] of answers) this.#wasm.addToolResponse(id, output);
      return this.#wasm.sendToolResponses();
    });
  }

  /** A response by id: streaming, or one of the last 64 completed. */
  response(responseId) {
    if (typeof responseId !== 'string') throw new TypeError(`response(responseId): responseId must be a string, got ${describe(responseId)}`);
    const text = this.#ended ? undefined : call(() => this.#wasm.response(responseId));
    return text === undefined ? undefined : JSON.parse(text);
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

  /** Closes for good: requests already sent reject with `ClosedError`,
   * messages still queued for a connection (never sent) with
   * `ClosedBeforeSentError`; every
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

  #answer(send, signal) {
    return this.#settle(this.#answers, send, signal);
  }

  // The promise carries the request id, so a caller can match the
  // response's events (`response_started.requestId`) while it streams.
  #settle(map, send, signal) {
    let id;
    try {
      id = request(send);
    } catch (e) {
      return Promise.reject(e);
    }
    let off = null;
    const p = new Promise((resolve, reject) => map.set(id, {
      resolve: (v) => { off?.(); resolve(v); },
      reject: (e) => { off?.(); reject(e); },
    }));
    p.requestId = id;
    if (signal) {
      const onAbort = () => {
        const waiter = map.get(id);
        if (!waiter) return;
        map.delete(id);
        waiter.reject(abortReason(signal));
        this.#stopReply(id);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      off = () => signal.removeEventListener('abort', onAbort);
    }
    return p;
  }

  /** The caller gave up on request `id`: stop its reply now if it is
   * streaming, else once it starts. */
  #stopReply(id) {
    if (this.#ended) return;
    if (this.#streaming.has(id)) {
      this.#log(`stopping the reply to request ${id} (its caller aborted)`);
      this.stop().catch(() => {});
    } else {
      this.#stopOnStart.add(id);
    }
  }

  #token(responseId, token) {
    if (this.#streamsByResponse.size !== 0) this.#streamsByResponse.get(responseId)?.push(token);
    const listeners = this.#listeners.get('token');
    if (!listeners?.size && !this.#listeners.get('*')?.size && !this.#iterators.size) return;
    this.#emit({ type: 'token', responseId, token });
  }

  #event(e) {
    switch (e.type) {
      case 'state':
        if (e.cause) e.cause = toError(e.cause);
        this.#state = e.state;
        if (this.#logger) {
          const retry = e.retryIn == null ? '' : ` retry in ${e.retryIn} ms`;
          const cause = e.cause ? `; cause ${describeError(e.cause)}` : '';
          this.#log(`state ${e.state} (attempt ${e.attempt})${retry}${cause}`);
        }
        break;
      case 'connected':
        if (this.#logger) {
          const server = e.server ? `; server ${e.server.name} ${e.server.version}` : '';
          this.#log(`${e.resumed ? 'reconnected, missed notifications replayed' : 'attached'}${server}`);
        }
        break;
      case 'response_started':
        if (e.requestId != null) {
          this.#streaming.set(e.requestId, e.responseId);
          const st = this.#streamsByRequest.get(e.requestId);
          if (st) {
            this.#streamsByRequest.delete(e.requestId);
            this.#streamsByResponse.set(e.responseId, st);
            st.responseId = e.responseId;
          }
          if (this.#stopOnStart.delete(e.requestId)) {
            this.#log(`stopping the reply to request ${e.requestId} (its caller aborted)`);
            this.stop().catch(() => {});
          }
        }
        break;
      case 'request_failed': {
        e.error = toError(e.error);
        this.#stopOnStart.delete(e.requestId);
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
        this.#streaming.delete(e.response.requestId);
        this.#streamsByResponse.delete(e.response.id);
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
        clearTimeout(this.#callTimer);
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
    if (!dead) {
      try {
        this.#finalStats = statsOf(this.#wasm.stats());
      } catch {
        // The module is gone (a crash): the last reading is lost.
      }
    }
    this.#ended = true;
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#callTimer);
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#signal = null;
    this.#life.abort(cause);
    this.#streamsByRequest.clear();
    this.#streamsByResponse.clear();
    this.#stopOnStart.clear();
    this.#log(`ended: ${describeError(cause)}`);
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
    this.#release?.();
    this.#state = 'failed';
    this.#emit({ type: 'error', error });
    this.#emit({ type: 'state', state: 'failed', attempt: 0, retryIn: null, cause: error });
    this.#end(error);
  }
}

/** The tokens of one reply, from `Connection.stream(text)`; iterate it
 * once with `for await`. */
export class TokenStream {
  #state = { queue: [], wake: null, responseId: null, push: null };
  #iterated = false;
  /** The whole reply once iteration has ended, else null. */
  response = null;

  constructor(reply, byRequest, signal) {
    /** The request id of the message sent (the reply's `requestId`). */
    this.requestId = reply.requestId;
    const st = this.#state;
    st.push = (token) => {
      st.queue.push(token);
      if (st.wake) {
        const wake = st.wake;
        st.wake = null;
        wake();
      }
    };
    // Registered before any reply can start (sending is synchronous, the
    // reply comes from the network).
    if (reply.requestId !== undefined) byRequest.set(reply.requestId, st);
    const done = () => {
      byRequest.delete(reply.requestId);
      signal?.removeEventListener('abort', onAbort);
      st.ended = true;
      if (st.wake) {
        const wake = st.wake;
        st.wake = null;
        wake();
      }
    };
    // A failure (or an abort) ends the iteration at once: tokens still
    // unread, or arriving until the server stops, are dropped.
    const fail = (e) => {
      if (st.ended) return;
      st.error = e;
      st.queue.length = 0;
      st.push = () => {};
      done();
    };
    // The abort is seen here synchronously, so not one more token is
    // yielded after it.
    const onAbort = () => fail(abortReason(signal));
    if (signal && !st.ended) signal.addEventListener('abort', onAbort, { once: true });
    st.detach = done;
    reply.then((r) => {
      this.response = r;
      if (!st.ended) done();
    }, fail);
  }

  [Symbol.asyncIterator]() {
    if (this.#iterated) throw new TypeError('a TokenStream can be iterated once');
    this.#iterated = true;
    const st = this.#state;
    const next = async () => {
      for (;;) {
        if (st.queue.length) return { value: st.queue.shift(), done: false };
        if (st.ended) {
          if (st.error !== undefined) throw st.error;
          return { value: undefined, done: true };
        }
        await new Promise((resolve) => { st.wake = resolve; });
      }
    };
    return {
      next,
      // Leaving the loop early: stop listening (the reply goes on).
      return: async () => {
        st.queue.length = 0;
        st.push = () => {};
        if (!st.ended) st.detach();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() { return this; },
    };
  }
}

/** Makes the wasm module panic, for the test suite only (not re-exported
 * by the entries): the panic must reach every connection as an error. */
export function __crashForTests() {
  return call(() => __panicForTests());
}

/** A sample error of every core error kind, as the classes the package
 * throws, for the test suite only (not re-exported by the entries): each
 * kind must have its own class, not the `TokenRelayError` fallback. */
export function __errorKindsForTests() {
  return JSON.parse(call(() => errorKindSamples())).map(toError);
}

function checkText(what, text) {
  if (typeof text !== 'string') throw new TypeError(`${what}: text must be a string, got ${describe(text)}`);
}
