//! The one error type of the crate, and the mapping from what a server says
//! (a WebSocket `result.error`/`result.code`, an HTTP status and JSON body, a
//! close code) to a variant that tells the caller what to do next.

use crate::prelude::*;

use core::time::Duration;

/// Everything that can go wrong, as one enum.
///
/// Each variant says what happened and, in its documentation, what to do
/// about it. Server refusals are boxed so the enum (and every `Result` and
/// event carrying it) stays small. Variants that come from a server carry a [`Rejection`] with the
/// server's own message, its stable `code` (when the server has the
/// `error_codes` extension or speaks REST) and the HTTP status (REST only, or
/// the status found inside a base server's tuple-text error).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The credential was refused: missing, malformed, expired or revoked.
    /// The connection fetches a fresh token once by itself; if you see this
    /// from the admin client, check the API key you configured.
    #[error("unauthorized: {0}")]
    Unauthorized(Box<Rejection>),
    /// The credential is valid but may not do this (wrong org, key scoped to
    /// another context, client key on REST, publishable-key origin mismatch).
    /// Terminal: retrying with another token of the same kind will not help.
    #[error("forbidden: {0}")]
    Forbidden(Box<Rejection>),
    /// The context, agent or key does not exist (any more).
    #[error("not found: {0}")]
    NotFound(Box<Rejection>),
    /// Too many requests. Wait `retry_after` (when the server said) and retry.
    #[error("rate limited: {rejection}{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// What the server said.
        rejection: Box<Rejection>,
        /// How long the server asked us to wait (`retry-after`, or the number
        /// in a 4029 close reason).
        retry_after: Option<Duration>,
        /// The `x-ratelimit-*` headers of a REST answer, when present.
        rate_limit: Option<RateLimit>,
    },
    /// The organisation has no credit left (HTTP 402, `invalid_billing`).
    /// Add credit; retrying will not help until then.
    #[error("payment required: {0}")]
    PaymentRequired(Box<Rejection>),
    /// The request was malformed or conflicts with existing state (HTTP
    /// 400/409, `invalid_params`). Fix the request.
    #[error("invalid request: {0}")]
    InvalidRequest(Box<Rejection>),
    /// Any other failure the server reported (HTTP 5xx, `internal`, or an
    /// error text we cannot classify). Usually transient.
    #[error("server error: {0}")]
    Server(Box<Rejection>),
    /// The peer sent something that is not the protocol. The connection is
    /// kept; the offending frame is dropped.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// No answer arrived in time.
    #[error("timed out after {}ms waiting for {what}", after.as_millis())]
    Timeout {
        /// What we were waiting for (a method name, `connect`, `token`).
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// The socket went away while a request was outstanding; its outcome is
    /// unknown. The connection reconnects by itself; re-send if it is safe.
    #[error("connection lost (close code {}): {reason}", code.map(|c| c.to_string()).unwrap_or_else(|| "none".into()))]
    ConnectionLost {
        /// WebSocket close code, if the peer sent one.
        code: Option<u16>,
        /// Close reason or transport error text.
        reason: String,
    },
    /// The connection was closed (by you, or terminally by the server); it
    /// will not reconnect.
    #[error("the connection is closed")]
    Closed,
    /// The app's token provider failed. The connection retries with backoff.
    #[error("token provider failed: {message}")]
    TokenProvider {
        /// The provider's error, as text.
        message: String,
    },
    /// The token provider returned a token whose JWT `exp` has already
    /// passed (or passes within the skew margin). It was not sent.
    #[error("the token provider returned an expired token (exp {expired_at}); it was not sent")]
    ExpiredToken {
        /// The token's `exp` claim, in unix seconds.
        expired_at: u64,
    },
    /// Opening the socket or talking HTTP failed below the protocol (DNS,
    /// TCP, TLS, HTTP upgrade). The connection retries with backoff.
    #[error("transport error: {message}")]
    Transport {
        /// What the transport said.
        message: String,
    },
    /// The TLS handshake failed: the server's certificate is not trusted
    /// (an unknown issuer: add your CA with `add_root_certificate_pem`),
    /// has expired, or names another host. Before a connection ever
    /// attached this ends it at once (retrying would not change the
    /// certificate); once attached, it is retried with backoff.
    ///
    /// Its [`ErrorKind`] is [`ErrorKind::Transport`]: the bindings show it
    /// as their transport error, with this message.
    #[error("TLS error: {message}")]
    Tls {
        /// What rustls said.
        message: String,
    },
    /// The HTTP proxy refused to open the tunnel (`CONNECT`), or did not
    /// answer like an HTTP proxy. A 407 means the proxy wants credentials
    /// (put them in the proxy URL: `http://user:pass@proxy:3128`); a 407
    /// before a connection ever attached ends it at once, anything else is
    /// retried with backoff.
    ///
    /// Its [`ErrorKind`] is [`ErrorKind::Transport`], as for [`Error::Tls`].
    #[error("proxy error{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Proxy {
        /// The proxy's HTTP status, when it answered with one.
        status: Option<u16>,
        /// What went wrong.
        message: String,
    },
    /// Too many requests are queued while the connection is down; wait for
    /// it to come back (watch the state events) before sending more.
    #[error("{limit} requests are already queued while disconnected")]
    QueueFull {
        /// The configured `max_queued_requests`.
        limit: usize,
    },
    /// A request queued while disconnected waited longer than the
    /// configured `max_queued_age` for a connection and was dropped from
    /// the queue: it was never sent, so the server never saw it. Send it
    /// again (or tell the user) once the connection is back.
    #[error("not sent: queued for {}ms while disconnected, longer than the queue allows", after.as_millis())]
    QueueExpired {
        /// The configured `max_queued_age`.
        after: Duration,
    },
    /// The connection was closed while this request was still queued
    /// (waiting for a connection): it was never sent, so the server never
    /// saw it. Unlike [`Error::Closed`] on a request already sent, its
    /// outcome is known: nothing happened.
    #[error("not sent: the connection was closed while the request was queued")]
    ClosedBeforeSent,
    /// The application did not read events fast enough and the oldest
    /// `count` were dropped. Responses are unaffected: `ask()` and
    /// `response()` still give whole texts.
    #[error("{count} events were dropped because they were not read in time")]
    EventsDropped {
        /// How many events were dropped.
        count: u64,
    },
    /// The client was configured wrongly (a bad URL, a missing setting).
    #[error("invalid configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
}

/// The variants of [`Error`] without their data: what a binding maps to
/// its own exception classes.
///
/// Unlike [`Error`] this enum is deliberately exhaustive: a binding
/// matches it without a `_` arm, so a kind added to the core fails to
/// compile there until the binding gives it a class, instead of falling
/// silently into a catch-all. [`ErrorKind::ALL`] lists every kind for the
/// bindings' tests of their foreign-language tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ErrorKind {
    /// [`Error::Unauthorized`].
    Unauthorized,
    /// [`Error::Forbidden`].
    Forbidden,
    /// [`Error::NotFound`].
    NotFound,
    /// [`Error::RateLimited`].
    RateLimited,
    /// [`Error::PaymentRequired`].
    PaymentRequired,
    /// [`Error::InvalidRequest`].
    InvalidRequest,
    /// [`Error::Server`].
    Server,
    /// [`Error::Protocol`].
    Protocol,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::ConnectionLost`].
    ConnectionLost,
    /// [`Error::Closed`].
    Closed,
    /// [`Error::TokenProvider`].
    TokenProvider,
    /// [`Error::ExpiredToken`].
    ExpiredToken,
    /// [`Error::Transport`], and its finer Rust variants [`Error::Tls`]
    /// and [`Error::Proxy`].
    Transport,
    /// [`Error::QueueFull`].
    QueueFull,
    /// [`Error::QueueExpired`].
    QueueExpired,
    /// [`Error::ClosedBeforeSent`].
    ClosedBeforeSent,
    /// [`Error::EventsDropped`].
    EventsDropped,
    /// [`Error::Config`].
    Config,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 19] = [
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::RateLimited,
        ErrorKind::PaymentRequired,
        ErrorKind::InvalidRequest,
        ErrorKind::Server,
        ErrorKind::Protocol,
        ErrorKind::Timeout,
        ErrorKind::ConnectionLost,
        ErrorKind::Closed,
        ErrorKind::TokenProvider,
        ErrorKind::ExpiredToken,
        ErrorKind::Transport,
        ErrorKind::QueueFull,
        ErrorKind::QueueExpired,
        ErrorKind::ClosedBeforeSent,
        ErrorKind::EventsDropped,
        ErrorKind::Config,
    ];

    /// The stable snake_case name every binding shows (`"unauthorized"`,
    /// `"rate_limited"`, …): Python's `Error.kind`, the JS `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::PaymentRequired => "payment_required",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Server => "server",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ConnectionLost => "connection_lost",
            ErrorKind::Closed => "closed",
            ErrorKind::TokenProvider => "token_provider",
            ErrorKind::ExpiredToken => "expired_token",
            ErrorKind::Transport => "transport",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::QueueExpired => "queue_expired",
            ErrorKind::ClosedBeforeSent => "closed_before_sent",
            ErrorKind::EventsDropped => "events_dropped",
            ErrorKind::Config => "config",
        }
    }

    /// The kind named `name` ([`ErrorKind::as_str`]), if it is one.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// What a binding read off a failed token provider (an exception, a thrown
/// JS value, a Kotlin `Throwable`), for [`Error::from_provider`]. Built
/// with [`ProviderFailure::new`] and the setters, so fields can be added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderFailure {
    /// The failure's text, as the binding shows it (Python prefixes the
    /// exception's type name).
    pub message: String,
    /// The kind, when the provider raised one of this SDK's own errors
    /// (`tokenrelay.ForbiddenError`, `TokenRelayException.Forbidden`, a JS
    /// error whose `code` is a kind name).
    pub kind: Option<ErrorKind>,
    /// The HTTP status the failure carries (`status`, `status_code`,
    /// `response.status`, … as each binding documents).
    pub status: Option<u16>,
    /// A server error code the failure carries (a string `code`).
    pub code: Option<String>,
}

impl ProviderFailure {
    /// A failure with only a message: an [`Error::TokenProvider`].
    pub fn new(message: impl Into<String>) -> Self {
        ProviderFailure {
            message: message.into(),
            ..ProviderFailure::default()
        }
    }

    /// The SDK error kind the provider raised, if it raised one.
    #[must_use]
    pub fn kind(mut self, kind: Option<ErrorKind>) -> Self {
        self.kind = kind;
        self
    }

    /// The HTTP status the failure carries, if any.
    #[must_use]
    pub fn status(mut self, status: Option<u16>) -> Self {
        self.status = status;
        self
    }

    /// The server error code the failure carries, if any.
    #[must_use]
    pub fn code(mut self, code: Option<String>) -> Self {
        self.code = code;
        self
    }
}

/// What a server said when it refused something.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rejection {
    /// The server's human-readable message.
    pub message: String,
    /// The stable snake_case or SCREAMING code, when the server sent one.
    pub code: Option<String>,
    /// The HTTP status (REST, a failed WebSocket upgrade, or the number in a
    /// base server's `"('text', 403)"` error).
    pub status: Option<u16>,
}

impl core::fmt::Display for Rejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(code) = &self.code {
            write!(f, " [{code}]")?;
        }
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        Ok(())
    }
}

/// The `x-ratelimit-limit` / `x-ratelimit-remaining` headers of a REST answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub limit: u64,
    /// Requests left in the current window.
    pub remaining: u64,
}

/// A frame that is not the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The frame is not valid JSON.
    #[error("frame is not valid JSON: {message}")]
    InvalidJson {
        /// The parser's message.
        message: String,
    },
    /// The frame is larger than the configured limit and was not parsed.
    #[error("frame of {size} bytes exceeds the {limit}-byte limit")]
    FrameTooLarge {
        /// Size of the frame.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The frame is JSON but neither a response nor a notification.
    #[error("frame is neither a response nor a notification: {message}")]
    UnexpectedShape {
        /// What was wrong with it.
        message: String,
    },
    /// A known notification arrived with missing or wrongly typed params.
    #[error("`{method}` has invalid params: {message}")]
    InvalidParams {
        /// The notification method.
        method: String,
        /// What was wrong.
        message: String,
    },
    /// A binary WebSocket frame arrived; the protocol is text only.
    #[error("binary frames are not part of the protocol")]
    BinaryFrame,
    /// A `seq` was skipped: notifications were lost between the server and
    /// us. Responses that may have lost tokens end `interrupted`.
    #[error(
        "notification seq {got} arrived where {expected} was expected: notifications were lost"
    )]
    SeqGap {
        /// The next `seq` we expected.
        expected: u64,
        /// The `seq` that arrived.
        got: u64,
    },
    /// A response arrived for a request id we never sent (or already settled).
    #[error("response to unknown request id `{id}`")]
    UnknownRequestId {
        /// The id the server sent.
        id: String,
    },
}

impl Error {
    /// Classifies a server's refusal.
    ///
    /// The `code` wins when present (the `error_codes` extension, REST
    /// bodies, publishable-key errors); then the HTTP status (given, or found
    /// in a base server's tuple text `"('message', 403)"`); then the wording
    /// of the base server's known messages. Unknown failures are
    /// [`Error::Server`].
    pub fn from_server(message: &str, code: Option<&str>, status: Option<u16>) -> Error {
        let (message, tuple_status) = split_tuple_text(message);
        let status = status.or(tuple_status);
        let rejection = Rejection {
            message: message.to_owned(),
            code: code.map(str::to_owned),
            status,
        };
        if let Some(kind) = code.and_then(kind_from_code) {
            return kind.into_error(rejection, None);
        }
        if let Some(kind) = status.and_then(kind_from_status) {
            return kind.into_error(rejection, None);
        }
        kind_from_text(message).into_error(rejection, None)
    }

    /// Classifies a WebSocket close code sent by the server, for callers that
    /// want an error value for it. `None` for codes that are not failures.
    pub fn from_close(code: u16, reason: &str) -> Option<Error> {
        let rejection = Box::new(Rejection {
            message: if reason.is_empty() {
                // Pushed, not `format!`ed (see `Error::push_message`).
                ["closed with code ", &decimal(u64::from(code))].concat()
            } else {
                reason.to_owned()
            },
            code: None,
            status: None,
        });
        match code {
            4001 => Some(Error::Unauthorized(rejection)),
            4003 => Some(Error::Forbidden(rejection)),
            4029 => Some(Error::RateLimited {
                retry_after: parse_retry_seconds(reason),
                rejection,
                rate_limit: None,
            }),
            _ => None,
        }
    }

    /// True when retrying later may succeed (for `Unauthorized`: with a
    /// fresh credential, which is what a connection does by itself).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::RateLimited { .. }
                | Error::Server(_)
                | Error::Timeout { .. }
                | Error::ConnectionLost { .. }
                | Error::TokenProvider { .. }
                | Error::ExpiredToken { .. }
                | Error::Transport { .. }
                | Error::Proxy { .. }
                | Error::Unauthorized(_)
        )
    }

    /// The server's refusal, for the variants that carry one.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Error::Unauthorized(r)
            | Error::Forbidden(r)
            | Error::NotFound(r)
            | Error::PaymentRequired(r)
            | Error::InvalidRequest(r)
            | Error::Server(r) => Some(r),
            Error::RateLimited { rejection, .. } => Some(rejection),
            _ => None,
        }
    }

    /// Which variant this is, as a plain [`ErrorKind`]: what the bindings
    /// pick an exception class or an error `code` property by.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unauthorized(_) => ErrorKind::Unauthorized,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::PaymentRequired(_) => ErrorKind::PaymentRequired,
            Error::InvalidRequest(_) => ErrorKind::InvalidRequest,
            Error::Server(_) => ErrorKind::Server,
            Error::Protocol(_) => ErrorKind::Protocol,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::ConnectionLost { .. } => ErrorKind::ConnectionLost,
            Error::Closed => ErrorKind::Closed,
            Error::TokenProvider { .. } => ErrorKind::TokenProvider,
            Error::ExpiredToken { .. } => ErrorKind::ExpiredToken,
            // Finer than the kind: the bindings show these as their
            // transport error (the message tells which).
            Error::Transport { .. } | Error::Tls { .. } | Error::Proxy { .. } => {
                ErrorKind::Transport
            }
            Error::QueueFull { .. } => ErrorKind::QueueFull,
            Error::QueueExpired { .. } => ErrorKind::QueueExpired,
            Error::ClosedBeforeSent => ErrorKind::ClosedBeforeSent,
            Error::EventsDropped { .. } => ErrorKind::EventsDropped,
            Error::Config { .. } => ErrorKind::Config,
        }
    }

    /// How long the server asked to wait, for [`Error::RateLimited`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Classifies a failed token provider, from what a binding can read off
    /// its host's exception or thrown value. The one rule every binding
    /// uses (docs/decisions.md, "One rule for a failed token provider"):
    ///
    /// 1. One of this SDK's own errors keeps its class when it is a class a
    ///    provider can mean: a server refusal ([`Error::Unauthorized`] …
    ///    [`Error::Server`]), [`Error::Config`] or [`Error::TokenProvider`].
    ///    Any other kind (a `Timeout` or `Transport` raised by a call the
    ///    provider made) is [`Error::TokenProvider`] with its message.
    /// 2. Otherwise the server error `code`, then the HTTP `status`, as
    ///    [`Error::from_server`] reads them (403 is `Forbidden`, 500 is
    ///    `Server`, …). The message text is never guessed from.
    /// 3. Anything else (no status, an unknown code, a timeout or a
    ///    cancellation inside the provider) is [`Error::TokenProvider`].
    ///
    /// `Forbidden`, `NotFound`, `PaymentRequired` and `Config` end the
    /// connection; every other class is retried with backoff.
    pub fn from_provider(failure: ProviderFailure) -> Error {
        let ProviderFailure {
            message,
            kind,
            status,
            code,
        } = failure;
        let class = match kind {
            Some(kind) => match Kind::from_error_kind(kind) {
                Some(class) => Some(class),
                None if kind == ErrorKind::Config => return Error::Config { message },
                None => None,
            },
            None => code
                .as_deref()
                .and_then(kind_from_code)
                .or_else(|| status.and_then(kind_from_status)),
        };
        match class {
            Some(class) => class.into_error(
                Rejection {
                    message,
                    code,
                    status,
                },
                None,
            ),
            None => Error::TokenProvider { message },
        }
    }

    /// A representative error of `kind`, with fixed texts: what the
    /// bindings' tests walk [`ErrorKind::ALL`] with, to check that their
    /// error tables give every kind its own class.
    pub fn sample(kind: ErrorKind) -> Error {
        let rejection = || {
            Box::new(Rejection {
                message: "sample".into(),
                code: None,
                status: None,
            })
        };
        let message = || "sample".to_owned();
        match kind {
            ErrorKind::Unauthorized => Error::Unauthorized(rejection()),
            ErrorKind::Forbidden => Error::Forbidden(rejection()),
            ErrorKind::NotFound => Error::NotFound(rejection()),
            ErrorKind::RateLimited => Error::RateLimited {
                rejection: rejection(),
                retry_after: Some(Duration::from_secs(1)),
                rate_limit: None,
            },
            ErrorKind::PaymentRequired => Error::PaymentRequired(rejection()),
            ErrorKind::InvalidRequest => Error::InvalidRequest(rejection()),
            ErrorKind::Server => Error::Server(rejection()),
            ErrorKind::Protocol => Error::Protocol(ProtocolError::BinaryFrame),
            ErrorKind::Timeout => Error::Timeout {
                what: message(),
                after: Duration::from_secs(1),
            },
            ErrorKind::ConnectionLost => Error::ConnectionLost {
                code: Some(1006),
                reason: message(),
            },
            ErrorKind::Closed => Error::Closed,
            ErrorKind::TokenProvider => Error::TokenProvider { message: message() },
            ErrorKind::ExpiredToken => Error::ExpiredToken { expired_at: 1 },
            ErrorKind::Transport => Error::Transport { message: message() },
            ErrorKind::QueueFull => Error::QueueFull { limit: 1 },
            ErrorKind::QueueExpired => Error::QueueExpired {
                after: Duration::from_secs(1),
            },
            ErrorKind::ClosedBeforeSent => Error::ClosedBeforeSent,
            ErrorKind::EventsDropped => Error::EventsDropped { count: 1 },
            ErrorKind::Config => Error::Config { message: message() },
        }
    }

    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn with_rate_limit(
        self,
        retry_after: Option<Duration>,
        rate_limit: Option<RateLimit>,
    ) -> Error {
        match self {
            Error::RateLimited {
                rejection,
                retry_after: old,
                ..
            } => Error::RateLimited {
                rejection,
                retry_after: retry_after.or(old),
                rate_limit,
            },
            other => other,
        }
    }
}

impl Error {
    /// Appends the same text as `Display` (`to_string()`) to `out`, built
    /// with plain string pushes instead of `core::fmt`. The browser build
    /// uses it so that no formatting code ships in its `.wasm` (see
    /// docs/decisions.md, "The browser bundle carries no formatting"); a
    /// test holds it to `Display` for every variant.
    pub fn push_message(&self, out: &mut String) {
        let (head, rejection) = match self {
            Error::Unauthorized(r) => ("unauthorized: ", r),
            Error::Forbidden(r) => ("forbidden: ", r),
            Error::NotFound(r) => ("not found: ", r),
            Error::PaymentRequired(r) => ("payment required: ", r),
            Error::InvalidRequest(r) => ("invalid request: ", r),
            Error::Server(r) => ("server error: ", r),
            Error::RateLimited {
                rejection,
                retry_after,
                ..
            } => {
                out.push_str("rate limited: ");
                rejection.push_message(out);
                if let Some(d) = retry_after {
                    out.push_str(" (retry after ");
                    push_u64(out, d.as_secs());
                    out.push_str("s)");
                }
                return;
            }
            Error::Protocol(p) => {
                out.push_str("protocol error: ");
                return p.push_message(out);
            }
            Error::Timeout { what, after } => {
                out.push_str("timed out after ");
                push_millis(out, *after);
                out.push_str("ms waiting for ");
                out.push_str(what);
                return;
            }
            Error::ConnectionLost { code, reason } => {
                out.push_str("connection lost (close code ");
                match code {
                    Some(c) => push_u64(out, u64::from(*c)),
                    None => out.push_str("none"),
                }
                out.push_str("): ");
                out.push_str(reason);
                return;
            }
            Error::Closed => return out.push_str("the connection is closed"),
            Error::TokenProvider { message } => {
                return push_all(out, &["token provider failed: ", message]);
            }
            Error::ExpiredToken { expired_at } => {
                out.push_str("the token provider returned an expired token (exp ");
                push_u64(out, *expired_at);
                return out.push_str("); it was not sent");
            }
            Error::Transport { message } => return push_all(out, &["transport error: ", message]),
            Error::Tls { message } => return push_all(out, &["TLS error: ", message]),
            Error::Proxy { status, message } => {
                out.push_str("proxy error");
                if let Some(s) = status {
                    out.push_str(" (HTTP ");
                    push_u64(out, u64::from(*s));
                    out.push(')');
                }
                return push_all(out, &[": ", message]);
            }
            Error::QueueFull { limit } => {
                push_u64(out, *limit as u64);
                return out.push_str(" requests are already queued while disconnected");
            }
            Error::QueueExpired { after } => {
                out.push_str("not sent: queued for ");
                push_millis(out, *after);
                return out.push_str("ms while disconnected, longer than the queue allows");
            }
            Error::ClosedBeforeSent => {
                return out
                    .push_str("not sent: the connection was closed while the request was queued")
            }
            Error::EventsDropped { count } => {
                push_u64(out, *count);
                return out.push_str(" events were dropped because they were not read in time");
            }
            Error::Config { message } => {
                return push_all(out, &["invalid configuration: ", message]);
            }
        };
        out.push_str(head);
        rejection.push_message(out);
    }
}

impl Rejection {
    /// [`Error::push_message`] for a refusal: the same text as `Display`.
    pub fn push_message(&self, out: &mut String) {
        out.push_str(&self.message);
        if let Some(code) = &self.code {
            push_all(out, &[" [", code, "]"]);
        }
        if let Some(status) = self.status {
            out.push_str(" (HTTP ");
            push_u64(out, u64::from(status));
            out.push(')');
        }
    }
}

impl ProtocolError {
    /// [`Error::push_message`] for a protocol error: the same text as
    /// `Display`.
    pub fn push_message(&self, out: &mut String) {
        match self {
            ProtocolError::InvalidJson { message } => {
                push_all(out, &["frame is not valid JSON: ", message])
            }
            ProtocolError::FrameTooLarge { size, limit } => {
                out.push_str("frame of ");
                push_u64(out, *size as u64);
                out.push_str(" bytes exceeds the ");
                push_u64(out, *limit as u64);
                out.push_str("-byte limit");
            }
            ProtocolError::UnexpectedShape { message } => push_all(
                out,
                &["frame is neither a response nor a notification: ", message],
            ),
            ProtocolError::InvalidParams { method, message } => {
                push_all(out, &["`", method, "` has invalid params: ", message])
            }
            ProtocolError::BinaryFrame => {
                out.push_str("binary frames are not part of the protocol")
            }
            ProtocolError::SeqGap { expected, got } => {
                out.push_str("notification seq ");
                push_u64(out, *got);
                out.push_str(" arrived where ");
                push_u64(out, *expected);
                out.push_str(" was expected: notifications were lost");
            }
            ProtocolError::UnknownRequestId { id } => {
                push_all(out, &["response to unknown request id `", id, "`"])
            }
        }
    }
}

fn push_all(out: &mut String, parts: &[&str]) {
    for p in parts {
        out.push_str(p);
    }
}

/// Appends `n` in decimal, as `n.to_string()` writes it, without
/// `core::fmt` (see [`Error::push_message`]).
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// `n` in decimal, as `n.to_string()` writes it, without `core::fmt`: for
/// the browser build, which carries no formatting code (see
/// [`Error::push_message`]).
pub fn decimal(n: u64) -> String {
    let mut s = String::new();
    push_u64(&mut s, n);
    s
}

/// Appends `d.as_millis()` in decimal: the whole seconds, then the
/// milliseconds as three digits (no `u128` arithmetic or formatting).
fn push_millis(out: &mut String, d: Duration) {
    let (secs, ms) = (d.as_secs(), u64::from(d.subsec_millis()));
    if secs == 0 {
        return push_u64(out, ms);
    }
    push_u64(out, secs);
    for unit in [100, 10, 1] {
        out.push(char::from(b'0' + (ms / unit % 10) as u8));
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Unauthorized,
    Forbidden,
    NotFound,
    RateLimited,
    PaymentRequired,
    InvalidRequest,
    Server,
}

impl Kind {
    /// The refusal class of a server-refusal [`ErrorKind`]; `None` for the
    /// kinds that are not a server's refusal.
    fn from_error_kind(kind: ErrorKind) -> Option<Kind> {
        Some(match kind {
            ErrorKind::Unauthorized => Kind::Unauthorized,
            ErrorKind::Forbidden => Kind::Forbidden,
            ErrorKind::NotFound => Kind::NotFound,
            ErrorKind::RateLimited => Kind::RateLimited,
            ErrorKind::PaymentRequired => Kind::PaymentRequired,
            ErrorKind::InvalidRequest => Kind::InvalidRequest,
            ErrorKind::Server => Kind::Server,
            _ => return None,
        })
    }

    fn into_error(self, r: Rejection, retry_after: Option<Duration>) -> Error {
        let r = Box::new(r);
        match self {
            Kind::Unauthorized => Error::Unauthorized(r),
            Kind::Forbidden => Error::Forbidden(r),
            Kind::NotFound => Error::NotFound(r),
            Kind::RateLimited => Error::RateLimited {
                rejection: r,
                retry_after,
                rate_limit: None,
            },
            Kind::PaymentRequired => Error::PaymentRequired(r),
            Kind::InvalidRequest => Error::InvalidRequest(r),
            Kind::Server => Error::Server(r),
        }
    }
}

fn kind_from_code(code: &str) -> Option<Kind> {
    Some(match code {
        "unauthorized" | "token_expired" | "invalid_token" => Kind::Unauthorized,
        "forbidden" | "MISSING_CLIENT_KEY" | "INVALID_CLIENT_KEY" | "CLIENT_KEY_MISMATCH" => {
            Kind::Forbidden
        }
        "not_found" => Kind::NotFound,
        "rate_limited" => Kind::RateLimited,
        "payment_required" | "invalid_billing" => Kind::PaymentRequired,
        "invalid_params" | "conflict" | "not_connected" => Kind::InvalidRequest,
        "internal" | "internal_server_error" => Kind::Server,
        _ => return None,
    })
}

fn kind_from_status(status: u16) -> Option<Kind> {
    Some(match status {
        401 => Kind::Unauthorized,
        403 => Kind::Forbidden,
        404 => Kind::NotFound,
        429 => Kind::RateLimited,
        402 => Kind::PaymentRequired,
        400 | 409 | 422 => Kind::InvalidRequest,
        500..=599 => Kind::Server,
        _ => return None,
    })
}

/// The base server's messages carry no code; these are the texts it is
/// known to send (`docs/protocol.md` §2.3) plus the usual JWT library
/// wording.
fn kind_from_text(message: &str) -> Kind {
    let lower = message.to_ascii_lowercase();
    // A plain byte search: `str::contains` brings the two-way string
    // searcher (~4 KB of wasm) for these few short, rare texts.
    let m = Haystack(lower.as_bytes());
    if m.contains("does not exist") {
        Kind::NotFound
    } else if m.contains("does not belong")
        || m.contains("does not match")
        || m.contains("forbidden")
    {
        Kind::Forbidden
    } else if m.contains("access_token required")
        || m.contains("expired")
        || m.contains("invalid token")
        || m.contains("invalid api key")
        || m.contains("unauthorized")
        || m.contains("signature")
    {
        Kind::Unauthorized
    } else if lower.starts_with("no ") && m.contains("provided") || m.contains("no context set") {
        Kind::InvalidRequest
    } else {
        Kind::Server
    }
}

struct Haystack<'a>(&'a [u8]);

impl Haystack<'_> {
    fn contains(&self, needle: &str) -> bool {
        self.0.windows(needle.len()).any(|w| w == needle.as_bytes())
    }
}

/// Splits the tuple text a base server sometimes sends, such as
/// `('API key client_id does not match context', 403)`, into its message and
/// status. Anything else is returned unchanged.
fn split_tuple_text(text: &str) -> (&str, Option<u16>) {
    let t = text.trim();
    let Some(inner) = t.strip_prefix('(').and_then(|s| s.strip_suffix(')')) else {
        return (text, None);
    };
    let Some((msg, status)) = inner.rsplit_once(',') else {
        return (text, None);
    };
    let Ok(status) = status.trim().parse::<u16>() else {
        return (text, None);
    };
    let msg = msg.trim();
    let msg = msg
        .strip_prefix('\'')
        .and_then(|m| m.strip_suffix('\''))
        .or_else(|| msg.strip_prefix('"').and_then(|m| m.strip_suffix('"')))
        .unwrap_or(msg);
    (msg, Some(status))
}

/// Finds the first number in a close reason such as `"retry after 12"`.
pub(crate) fn parse_retry_seconds(reason: &str) -> Option<Duration> {
    let digits: String = reason
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_text_is_split_and_classified_by_its_status() {
        let e = Error::from_server(
            "('API key client_id does not match context', 403)",
            None,
            None,
        );
        let Error::Forbidden(r) = e else {
            panic!("expected Forbidden, got {e:?}")
        };
        assert_eq!(r.message, "API key client_id does not match context");
        assert_eq!(r.status, Some(403));
    }

    #[test]
    fn code_wins_over_text() {
        let e = Error::from_server("Context with id: x does not exist", Some("forbidden"), None);
        assert!(matches!(e, Error::Forbidden(_)));
    }

    #[test]
    fn base_server_texts_are_classified() {
        assert!(matches!(
            Error::from_server("Context with id: abc does not exist", None, None),
            Error::NotFound(_)
        ));
        assert!(matches!(
            Error::from_server("Context does not belong to user", None, None),
            Error::Forbidden(_)
        ));
        assert!(matches!(
            Error::from_server("access_token required", None, None),
            Error::Unauthorized(_)
        ));
        assert!(matches!(
            Error::from_server("Signature has expired", None, None),
            Error::Unauthorized(_)
        ));
        assert!(matches!(
            Error::from_server("No message provided", None, None),
            Error::InvalidRequest(_)
        ));
        assert!(matches!(
            Error::from_server("something odd", None, None),
            Error::Server(_)
        ));
    }

    #[test]
    fn close_4029_parses_the_delay() {
        let e = Error::from_close(4029, "rate limited, retry after 7 seconds").unwrap();
        assert!(
            matches!(e, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(7))
        );
        assert!(Error::from_close(1001, "").is_none());
        let Some(Error::Unauthorized(r)) = Error::from_close(4001, "") else {
            panic!("4001 is unauthorized")
        };
        assert_eq!(r.message, "closed with code 4001");
    }

    #[test]
    fn push_message_writes_what_display_writes() {
        let r = |code: Option<&str>, status: Option<u16>| {
            Box::new(Rejection {
                message: "no".into(),
                code: code.map(str::to_owned),
                status,
            })
        };
        let protocol = [
            ProtocolError::InvalidJson {
                message: "m".into(),
            },
            ProtocolError::FrameTooLarge {
                size: 1_048_577,
                limit: 0,
            },
            ProtocolError::UnexpectedShape {
                message: "m".into(),
            },
            ProtocolError::InvalidParams {
                method: "on_token".into(),
                message: "m".into(),
            },
            ProtocolError::BinaryFrame,
            ProtocolError::SeqGap {
                expected: 7,
                got: u64::MAX,
            },
            ProtocolError::UnknownRequestId { id: "9".into() },
        ];
        let mut errors = vec![
            Error::Unauthorized(r(None, None)),
            Error::Forbidden(r(Some("forbidden"), Some(403))),
            Error::NotFound(r(None, Some(404))),
            Error::PaymentRequired(r(Some("invalid_billing"), None)),
            Error::InvalidRequest(r(None, None)),
            Error::Server(r(Some("internal"), Some(500))),
            Error::RateLimited {
                rejection: r(None, None),
                retry_after: None,
                rate_limit: None,
            },
            Error::RateLimited {
                rejection: r(Some("rate_limited"), Some(429)),
                retry_after: Some(Duration::from_millis(12_500)),
                rate_limit: None,
            },
            Error::ConnectionLost {
                code: Some(1011),
                reason: "r".into(),
            },
            Error::ConnectionLost {
                code: None,
                reason: String::new(),
            },
            Error::Closed,
            Error::TokenProvider {
                message: "m".into(),
            },
            Error::ExpiredToken { expired_at: 0 },
            Error::Transport {
                message: "m".into(),
            },
            Error::Tls {
                message: "m".into(),
            },
            Error::Proxy {
                status: Some(407),
                message: "m".into(),
            },
            Error::Proxy {
                status: None,
                message: "m".into(),
            },
            Error::QueueFull { limit: 100 },
            Error::QueueExpired {
                after: Duration::from_millis(61_234),
            },
            Error::ClosedBeforeSent,
            Error::EventsDropped { count: 10 },
            Error::Config {
                message: "m".into(),
            },
        ];
        for after in [0, 1, 999, 1_000, 1_001, 30_000, 61_234, u64::MAX] {
            errors.push(Error::Timeout {
                what: "add_message".into(),
                after: Duration::from_millis(after),
            });
        }
        errors.push(Error::Timeout {
            what: "x".into(),
            after: Duration::MAX,
        });
        errors.extend(protocol.into_iter().map(Error::Protocol));
        for e in errors {
            let mut pushed = String::new();
            e.push_message(&mut pushed);
            assert_eq!(pushed, e.to_string());
        }
        for n in [0, 9, 10, 65_535, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    fn provider(f: ProviderFailure) -> (ErrorKind, Option<u16>) {
        let e = Error::from_provider(f);
        (e.kind(), e.rejection().and_then(|r| r.status))
    }

    #[test]
    fn a_failed_provider_is_classified_by_status_then_class() {
        use ErrorKind as K;
        let status = |s| provider(ProviderFailure::new("backend").status(Some(s))).0;
        assert_eq!(status(500), K::Server);
        assert_eq!(status(503), K::Server);
        assert_eq!(status(401), K::Unauthorized);
        assert_eq!(status(403), K::Forbidden);
        assert_eq!(status(404), K::NotFound);
        assert_eq!(status(429), K::RateLimited);
        assert_eq!(status(402), K::PaymentRequired);
        // A status that is not a refusal is still the provider's failure.
        assert_eq!(status(418), K::TokenProvider);
        assert_eq!(status(302), K::TokenProvider);
        // The status is kept on the refusal, and the text is the message.
        let e = Error::from_provider(ProviderFailure::new("db down").status(Some(500)));
        assert_eq!(e.to_string(), "server error: db down (HTTP 500)");
        // A server code wins over the status; an unknown code (a Node
        // `ECONNRESET`) is not a classification.
        let coded =
            |c: &str, s| provider(ProviderFailure::new("m").code(Some(c.into())).status(s)).0;
        assert_eq!(coded("invalid_billing", Some(500)), K::PaymentRequired);
        assert_eq!(coded("ECONNRESET", None), K::TokenProvider);
        assert_eq!(coded("ECONNRESET", Some(403)), K::Forbidden);
    }

    #[test]
    fn a_provider_failure_without_status_is_never_guessed_from_its_text() {
        // These texts would be refusals from a server (`from_server`); from
        // a provider they are whatever the app's code said.
        for text in [
            "token expired",
            "Context does not exist",
            "forbidden",
            "('x', 403)",
            "timed out",
        ] {
            assert_eq!(
                Error::from_provider(ProviderFailure::new(text)),
                Error::TokenProvider {
                    message: text.into()
                }
            );
        }
    }

    #[test]
    fn the_sdks_own_errors_keep_their_class_when_a_provider_can_mean_it() {
        use ErrorKind as K;
        let own = |k| provider(ProviderFailure::new("m").kind(Some(k)));
        for k in [
            K::Unauthorized,
            K::Forbidden,
            K::NotFound,
            K::RateLimited,
            K::PaymentRequired,
            K::InvalidRequest,
            K::Server,
            K::Config,
            K::TokenProvider,
        ] {
            assert_eq!(own(k).0, k);
        }
        // The class wins over a status it carries.
        let e = ProviderFailure::new("m")
            .kind(Some(K::Forbidden))
            .status(Some(500));
        assert_eq!(provider(e), (K::Forbidden, Some(500)));
        // Kinds with data a provider cannot give are the provider failing.
        for k in [
            K::Timeout,
            K::Transport,
            K::Protocol,
            K::ConnectionLost,
            K::Closed,
            K::ExpiredToken,
            K::QueueFull,
            K::QueueExpired,
            K::ClosedBeforeSent,
            K::EventsDropped,
        ] {
            assert_eq!(own(k).0, K::TokenProvider, "{k:?}");
        }
    }

    #[test]
    fn every_kind_is_listed_named_and_sampled() {
        let names: std::collections::HashSet<_> =
            ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(k.as_str()), Some(k));
            assert_eq!(Error::sample(k).kind(), k);
        }
        assert_eq!(ErrorKind::from_name("panic"), None);
    }

    #[test]
    fn messages_say_what_happened() {
        let e = Error::from_server("nope", Some("invalid_billing"), Some(402));
        assert_eq!(
            e.to_string(),
            "payment required: nope [invalid_billing] (HTTP 402)"
        );
    }
}
