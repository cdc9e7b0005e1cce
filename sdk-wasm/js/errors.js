// Error classes of the package. The wasm side describes an error as
// `{code, message, serverCode?, status?, retryAfterMs?, closeCode?}` where
// `code` is the core's `Error::kind()`; `toError` picks the class.

/** Base of every error the package throws or reports. */
export class TokenRelayError extends Error {
  constructor(message, details = {}) {
    // `cause` (ES2022): the error behind this one, such as the last failed
    // attempt behind a connect() timeout.
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    /** Stable snake_case code (`"unauthorized"`, `"timeout"`, …). */
    this.code = details.code ?? 'unknown';
    /** The server's own code (`error_codes` extension), when it sent one. */
    this.serverCode = details.serverCode ?? null;
    /** HTTP status, when there was one. */
    this.status = details.status ?? null;
  }
}

// One class per code, named after it. Built from a table so the bundle
// carries the names once.
const table = {
  unauthorized: 'UnauthorizedError',
  forbidden: 'ForbiddenError',
  not_found: 'NotFoundError',
  rate_limited: 'RateLimitedError',
  payment_required: 'PaymentRequiredError',
  invalid_request: 'InvalidRequestError',
  server: 'ServerError',
  protocol: 'ProtocolError',
  timeout: 'TimeoutError',
  connection_lost: 'ConnectionLostError',
  closed: 'ClosedError',
  token_provider: 'TokenProviderError',
  expired_token: 'ExpiredTokenError',
  transport: 'TransportError',
  queue_full: 'QueueFullError',
  queue_expired: 'QueueExpiredError',
  closed_before_sent: 'ClosedBeforeSentError',
  config: 'ConfigError',
  events_dropped: 'EventsDroppedError',
  panic: 'PanicError',
};

const classes = {};
for (const [code, name] of Object.entries(table)) {
  // A computed class name through an object literal keeps `.name` right
  // without repeating `class X extends …` eighteen times.
  classes[code] = { [name]: class extends TokenRelayError {
    constructor(message, details = {}) {
      super(message, { ...details, code });
      if (details.retryAfterMs != null) this.retryAfterMs = details.retryAfterMs;
      if (details.closeCode != null) this.closeCode = details.closeCode;
    }
  } }[name];
}

export const UnauthorizedError = classes.unauthorized;
export const ForbiddenError = classes.forbidden;
export const NotFoundError = classes.not_found;
export const RateLimitedError = classes.rate_limited;
export const PaymentRequiredError = classes.payment_required;
export const InvalidRequestError = classes.invalid_request;
export const ServerError = classes.server;
export const ProtocolError = classes.protocol;
export const TimeoutError = classes.timeout;
export const ConnectionLostError = classes.connection_lost;
export const ClosedError = classes.closed;
export const TokenProviderError = classes.token_provider;
export const ExpiredTokenError = classes.expired_token;
export const TransportError = classes.transport;
export const QueueFullError = classes.queue_full;
export const QueueExpiredError = classes.queue_expired;
export const ClosedBeforeSentError = classes.closed_before_sent;
export const ConfigError = classes.config;
export const EventsDroppedError = classes.events_dropped;
export const PanicError = classes.panic;

/** The error instance a wasm descriptor stands for. */
export function toError(d) {
  if (d instanceof Error) return d;
  if (d == null || typeof d !== 'object') return new TokenRelayError(String(d));
  const C = classes[d.code] ?? TokenRelayError;
  return new C(d.message ?? d.code, d);
}
