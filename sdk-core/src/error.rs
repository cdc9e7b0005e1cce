//! The one error type of the crate, and the mapping from what a server says
//! (a WebSocket `result.error`/`result.code`, an HTTP status and JSON body, a
//! close code) to a variant that tells the caller what to do next.

use std::time::Duration;

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
    /// Too many requests are queued while the connection is down; wait for
    /// it to come back (watch the state events) before sending more.
    #[error("{limit} requests are already queued while disconnected")]
    QueueFull {
        /// The configured `max_queued_requests`.
        limit: usize,
    },
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

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
                format!("closed with code {code}")
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

    /// A stable snake_case name for the variant, used by the bindings to
    /// pick an exception class or an error `code` property.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::RateLimited { .. } => "rate_limited",
            Error::PaymentRequired(_) => "payment_required",
            Error::InvalidRequest(_) => "invalid_request",
            Error::Server(_) => "server",
            Error::Protocol(_) => "protocol",
            Error::Timeout { .. } => "timeout",
            Error::ConnectionLost { .. } => "connection_lost",
            Error::Closed => "closed",
            Error::TokenProvider { .. } => "token_provider",
            Error::ExpiredToken { .. } => "expired_token",
            Error::Transport { .. } => "transport",
            Error::QueueFull { .. } => "queue_full",
            Error::EventsDropped { .. } => "events_dropped",
            Error::Config { .. } => "config",
        }
    }

    #[cfg_attr(not(feature = "client"), allow(dead_code))]
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
    let m = message.to_ascii_lowercase();
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
    } else if m.starts_with("no ") && m.contains("provided") || m.contains("no context set") {
        Kind::InvalidRequest
    } else {
        Kind::Server
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
