// Types of the `tokenrelay` package, written by hand (not generated) so that
// events are a discriminated union and nothing is `any`.

/** Where a connection is in its life. */
export type ConnectionState =
  | 'idle'
  | 'fetching_token'
  | 'connecting'
  | 'authenticating'
  | 'connected'
  | 'reconnecting'
  | 'suspended'
  | 'closed'
  | 'failed';

/** A JSON value, as the server sent it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What `getToken` may resolve to: a client API key (or any bearer token),
 * or a single-use stream token (`pub_tok_…`, sent on the socket URL). */
export type TokenResult = string | { accessToken: string } | { streamToken: string };

export interface ClientOptions {
  /** The WebSocket endpoint, `wss://…/ws`. */
  wsUrl: string;
  /** Called for a fresh token on every (re)connect, one call at a time
   * (and, with `refreshAhead`, once while connected for the next one).
   * Reject with an error whose `code` is `"forbidden"`, `"not_found"` or
   * `"payment_required"` (or whose `status` is 403/404/402) to stop
   * reconnecting; any other rejection is retried with backoff. */
  getToken: (contextId: string, options: GetTokenOptions) => TokenResult | Promise<TokenResult>;
  /** The app's publishable key (`pk_…`), when the org has one. */
  clientKey?: string;
  /** A WebSocket constructor to use instead of the global one (Node < 22:
   * the `ws` package). */
  WebSocket?: new (url: string) => unknown;
  /** Refresh ahead (default `true`): once connected with a JWT client key,
   * fetch the next connection's key in the background, so a reconnect
   * does not wait for `getToken`. `false` calls `getToken` only when a
   * socket is needed (one call fewer per connection). */
  refreshAhead?: boolean;
  /** How long `connect()` waits for the first attachment, in milliseconds
   * (default 30,000). Past it, `connect()` rejects with the last attempt's
   * error (or a `TimeoutError`) and the connection is closed. */
  connectTimeoutMs?: number;
  /** How long `connect_to_context` and `stop` may wait for the server's
   * answer, in milliseconds (default 15,000). */
  requestTimeoutMs?: number;
  /** How long a reply may go without any sign of progress before its
   * request fails with a `TimeoutError`, in milliseconds (default 120,000;
   * every token restarts it). */
  invocationTimeoutMs?: number;
  /** The reconnect schedule's first delay envelope, in milliseconds
   * (default 500; full jitter, doubling per attempt). */
  reconnectMinDelayMs?: number;
  /** The cap of the reconnect delay, in milliseconds (default 20,000). */
  reconnectMaxDelayMs?: number;
  /** Give up (state `failed`) after this many failed attempts in a row
   * (default: never). */
  maxReconnectAttempts?: number;
  /** How many messages may wait for a connection while disconnected (sent
   * in order once attached; default 256). One more throws a
   * `QueueFullError` at once. */
  maxQueued?: number;
  /** How long a message may wait for a connection, in milliseconds
   * (default 300,000; 0: no limit). Past it, its request rejects with a
   * `QueueExpiredError` when its age passes, without waiting for a
   * reconnect. */
  maxQueuedAgeMs?: number;
  /** Receives debug lines: state changes, reconnects, why a connection
   * ended. Never a key or token. `console` works. */
  logger?: Logger;
}

/** Where debug lines go (`console` is one). */
export interface Logger {
  debug(message: string): void;
}

/** The second argument of `getToken`: aborted once the connection ends
 * (closed, failed, its connect() aborted or timed out), so a `fetch` for
 * the token can be cancelled with it. */
export interface GetTokenOptions {
  signal: AbortSignal;
}

/** Options of `client.connect()`. */
export interface ConnectOptions {
  /** Cancels the connect (it rejects with `signal.reason`, an `AbortError`
   * DOMException by default); aborting after it resolved closes the
   * connection. Retries, timers and `getToken` calls stop. */
  signal?: AbortSignal;
  /** Bounds this call, in milliseconds: past it connect() rejects with a
   * `TimeoutError` (its `cause`: the last attempt's error) and stops. */
  timeout?: number;
}

/** Options of `ask()` and `stream()`. */
export interface RequestOptions {
  /** Gives up on the reply: the promise (or the iteration) rejects with
   * `signal.reason` and the reply is stopped on the server. */
  signal?: AbortSignal;
}

export interface ToolCall {
  toolCallId: string;
  toolName: string;
  toolInput: Json;
}

export interface ToolResult {
  toolCallId: string;
  toolName: string;
  toolOutput: string;
}

export interface AgentEvent {
  type: string;
  data: Json;
}

/** A client-side tool call as the server sent it (answer it with
 * `sendToolResponses`, using its `tool_call_id`). */
export interface ClientSideToolCall {
  tool_call_id: string;
  tool_name: string;
  [key: string]: Json;
}

export type ResponseStatus = 'streaming' | 'complete' | 'stopped' | 'failed' | 'interrupted';

/** One agent response, assembled from its notifications. (Not named
 * `Response`, which would shadow the DOM's in files importing it.) */
export interface AgentResponse {
  id: string;
  /** The request that caused it; null for one the agent started itself. */
  requestId: number | null;
  /** Every token, in order. */
  text: string;
  /** `interrupted`: the connection dropped and the rest could not be
   * replayed; the text is a prefix. Never silently gapped. */
  status: ResponseStatus;
  stopReason: 'complete' | 'stopped' | 'error' | null;
  toolCalls: ToolCall[];
  toolResponses: ToolResult[];
  events: AgentEvent[];
  clientSideToolCalls: ClientSideToolCall[];
}

/** Counters of one connection's life (`Connection.stats()`); each only
 * grows. */
export interface ConnectionStats {
  /** Times a socket attached (the first included). */
  readonly connects: number;
  /** Attachments after the first: connections restored after a drop. */
  readonly reconnects: number;
  /** Reconnects that resumed (the server replayed what the drop missed). */
  readonly resumes: number;
  /** Notifications replayed on those resumes. */
  readonly replayed: number;
  /** Tokens handed to the app (replayed duplicates excluded). */
  readonly tokens: number;
  /** Notifications dropped as already applied. */
  readonly duplicates: number;
  /** Replies that ended `"interrupted"`. */
  readonly interrupted: number;
  readonly framesReceived: number;
  /** UTF-8 bytes of the text frames received. */
  readonly bytesReceived: number;
  /** Keys asked of `getToken`, refresh-ahead included. */
  readonly tokenFetches: number;
}

export interface ServerInfo {
  name: string;
  version: string;
  capabilities: string[];
}

export interface StateEvent {
  type: 'state';
  state: ConnectionState;
  /** Consecutive failed attempts (0 once connected). */
  attempt: number;
  /** In `reconnecting`/`suspended`: milliseconds until the next attempt. */
  retryIn: number | null;
  /** What caused the change, when it was a failure. */
  cause: TokenRelayError | null;
}
export interface ConnectedEvent {
  type: 'connected';
  /** Missed notifications were replayed (the server's `resume`). */
  resumed: boolean;
  agent: { [key: string]: Json } | null;
  server: ServerInfo | null;
}
export interface ResponseStartedEvent { type: 'response_started'; responseId: string; requestId: number | null }
export interface TokenEvent { type: 'token'; responseId: string; token: string }
export interface ResponseEvent { type: 'response'; response: AgentResponse }
export interface ToolCallEvent extends ToolCall { type: 'tool_call'; responseId: string | null }
export interface ToolResponseEvent extends ToolResult { type: 'tool_response'; responseId: string | null }
export interface EventsEvent { type: 'events'; responseId: string | null; events: AgentEvent[] }
export interface ClientSideToolCallsEvent { type: 'client_side_tool_calls'; responseId: string | null; toolCalls: ClientSideToolCall[] }
export interface AckEvent { type: 'ack'; requestId: number; result: { [key: string]: Json } }
export interface RequestFailedEvent { type: 'request_failed'; requestId: number; error: TokenRelayError }
export interface ConnectionErrorEvent { type: 'error'; error: TokenRelayError }
export interface UnknownEvent { type: 'unknown'; method: string; params: Json }

/** Every event of a connection, told apart by `type`. (Not named `Event`,
 * which would shadow the DOM's.) */
export type ConnectionEvent =
  | StateEvent
  | ConnectedEvent
  | ResponseStartedEvent
  | TokenEvent
  | ResponseEvent
  | ToolCallEvent
  | ToolResponseEvent
  | EventsEvent
  | ClientSideToolCallsEvent
  | AckEvent
  | RequestFailedEvent
  | ConnectionErrorEvent
  | UnknownEvent;

export type EventType = ConnectionEvent['type'];
export type EventOf<T extends EventType> = Extract<ConnectionEvent, { type: T }>;

/** @deprecated Use `AgentResponse` (this name shadows the DOM's `Response`). */
export type Response = AgentResponse;
/** @deprecated Use `ConnectionEvent` (this name shadows the DOM's `Event`). */
export type Event = ConnectionEvent;
/** @deprecated Use `ConnectionErrorEvent` (this name shadows the DOM's `ErrorEvent`). */
export type ErrorEvent = ConnectionErrorEvent;

/** A promise of the response a request causes, carrying the request id so
 * its events can be matched while it streams. */
export type Reply = Promise<AgentResponse> & { readonly requestId: number };

/** The tokens of one reply (`conn.stream(text)`): iterate it once with
 * `for await`. Iteration ends when the reply ends and throws what `ask()`
 * would reject with. */
export declare class TokenStream implements AsyncIterable<string> {
  private constructor();
  /** The request id of the message sent. */
  readonly requestId: number;
  /** The whole reply once iteration has ended (check its `status`). */
  readonly response: AgentResponse | null;
  [Symbol.asyncIterator](): AsyncIterator<string>;
}

/** Where the wasm module comes from, for `init()`: a compiled module, the
 * `.wasm` bytes, a `Response` (or a promise of one, e.g. `fetch(url)`), or
 * its URL. */
export type WasmSource =
  | WebAssembly.Module
  | BufferSource
  | globalThis.Response
  | PromiseLike<globalThis.Response>
  | URL
  | string;

/** Loads the wasm module now, from `options.module`, or by the entry's
 * default (next to the package's JS; from disk in Node). Optional: the
 * first `connect()` loads it otherwise. The first load wins. */
export declare function init(options?: { module?: WasmSource }): Promise<void>;
/** Loads the wasm module synchronously from a compiled module or its
 * bytes (a no-op once loaded). */
export declare function initSync(options: { module: WebAssembly.Module | BufferSource }): void;

export declare class Client {
  /** @throws TypeError when an option has the wrong type. */
  constructor(options: ClientOptions);
  /** Resolves once attached to the context; rejects with the cause if the
   * connection fails for good first (ForbiddenError, NotFoundError, …),
   * with `signal.reason` when `options.signal` aborts, and with a
   * `TimeoutError` past `options.timeout` ms. */
  connect(contextId: string, options?: ConnectOptions): Promise<Connection>;
}

export declare class Connection implements AsyncIterable<ConnectionEvent> {
  private constructor();
  readonly contextId: string;
  readonly state: ConnectionState;
  /** Messages waiting for a connection to be sent (queued while
   * disconnected, or to be sent again after a drop): show them as
   * "sending…". Nonzero only while disconnected. */
  readonly pending: number;
  readonly server: ServerInfo | null;
  /** What this connection has done since it started (counted by the
   * core; still readable after it ended). */
  stats(): ConnectionStats;
  /** Returns a function that removes the listener. */
  on<T extends EventType>(type: T, listener: (event: EventOf<T>) => void): () => void;
  on(type: '*', listener: (event: ConnectionEvent) => void): () => void;
  off<T extends EventType>(type: T | '*', listener: (event: EventOf<T>) => void): void;
  /** Sends a message and resolves with the whole reply. An aborted
   * `options.signal` rejects it and stops the reply. */
  ask(text: string, options?: RequestOptions): Reply;
  /** Sends a message and yields its reply's tokens:
   * `for await (const token of conn.stream("Hello"))`. */
  stream(text: string, options?: RequestOptions): TokenStream;
  /** Sends a message; returns its request id. Queued while reconnecting. */
  sendMessage(text: string): number;
  /** Stops the running reply; resolves with the server's acknowledgement. */
  stop(): Promise<{ [key: string]: Json }>;
  setLastMessages(humanMessage: string, aiMessage?: string): Reply;
  /** Answers a reply's client-side tool calls and resolves with the agent's
   * whole continuation (a new response, which may ask for tools again). */
  sendToolResponses(responses: ReadonlyArray<{ toolCallId: string; response: string }>): Reply;
  /** A streaming or recently completed response. */
  response(responseId: string): AgentResponse | undefined;
  setNetworkAvailable(available: boolean): void;
  reconnectNow(): void;
  /** Closes for good and releases every socket, timer and listener. */
  close(): void;
  [Symbol.asyncIterator](): AsyncIterator<ConnectionEvent>;
}

/** Base of every error of the package. */
export declare class TokenRelayError extends Error {
  constructor(message: string, details?: { code?: ErrorCode; serverCode?: string | null; status?: number | null; cause?: unknown });
  readonly code: ErrorCode;
  /** The server's own code (`error_codes` extension), when sent. */
  readonly serverCode: string | null;
  readonly status: number | null;
}

export type ErrorCode =
  | 'unauthorized' | 'forbidden' | 'not_found' | 'rate_limited' | 'payment_required'
  | 'invalid_request' | 'server' | 'protocol' | 'timeout' | 'connection_lost' | 'closed'
  | 'token_provider' | 'expired_token' | 'transport' | 'queue_full' | 'queue_expired'
  | 'closed_before_sent' | 'config'
  | 'events_dropped' | 'panic' | 'unknown';

export declare class UnauthorizedError extends TokenRelayError { readonly code: 'unauthorized' }
export declare class ForbiddenError extends TokenRelayError { readonly code: 'forbidden' }
export declare class NotFoundError extends TokenRelayError { readonly code: 'not_found' }
export declare class RateLimitedError extends TokenRelayError { readonly code: 'rate_limited'; readonly retryAfterMs?: number }
export declare class PaymentRequiredError extends TokenRelayError { readonly code: 'payment_required' }
export declare class InvalidRequestError extends TokenRelayError { readonly code: 'invalid_request' }
export declare class ServerError extends TokenRelayError { readonly code: 'server' }
export declare class ProtocolError extends TokenRelayError { readonly code: 'protocol' }
export declare class TimeoutError extends TokenRelayError { readonly code: 'timeout' }
export declare class ConnectionLostError extends TokenRelayError { readonly code: 'connection_lost'; readonly closeCode?: number }
export declare class ClosedError extends TokenRelayError { readonly code: 'closed' }
export declare class TokenProviderError extends TokenRelayError { readonly code: 'token_provider' }
export declare class ExpiredTokenError extends TokenRelayError { readonly code: 'expired_token' }
export declare class TransportError extends TokenRelayError { readonly code: 'transport' }
export declare class QueueFullError extends TokenRelayError { readonly code: 'queue_full' }
/** A message queued while disconnected waited longer than `maxQueuedAgeMs`
 * for a connection: it was never sent. */
export declare class QueueExpiredError extends TokenRelayError { readonly code: 'queue_expired' }
/** `close()` was called while the message was still queued for a
 * connection: it was never sent (unlike `ClosedError` on a request already
 * sent, whose outcome is unknown). */
export declare class ClosedBeforeSentError extends TokenRelayError { readonly code: 'closed_before_sent' }
export declare class ConfigError extends TokenRelayError { readonly code: 'config' }
export declare class EventsDroppedError extends TokenRelayError { readonly code: 'events_dropped' }
/** The wasm module crashed (a bug); every connection failed with it. */
export declare class PanicError extends TokenRelayError { readonly code: 'panic' }

/** Turns an error descriptor into its class (used internally). */
export declare function toError(descriptor: unknown): TokenRelayError;
