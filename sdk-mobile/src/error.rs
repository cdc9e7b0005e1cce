//! [`TokenRelayError`]: the core's [`tokenrelay::Error`] as one uniffi error
//! enum. Kotlin sees a sealed `TokenRelayException` hierarchy
//! (`TokenRelayException.Forbidden`, …), Swift an `Error` enum
//! (`TokenRelayError.forbidden`, …: `swift/generate.sh` gives its cases
//! lowerCamelCase).
//!
//! This is the one type the binding still declares itself rather than
//! deriving in the core (docs/decisions.md, "The mobile binding derives
//! from the core"): the core's `Error` boxes its refusals, nests
//! `ProtocolError` and carries `Duration`s and rate-limit headers, none of
//! which cross uniffi as they are, and a mobile app wants one flat
//! `detail`/`code`/`status` per class. The conversion is mechanical: one
//! variant per [`ErrorKind`], chosen by an exhaustive `match`, so a kind
//! added to the core does not compile here until it has a variant.

use std::time::Duration;

use tokenrelay::{Error, ErrorKind, ProviderFailure};

/// Everything that can go wrong, one variant per kind of the core's error.
///
/// `detail` is the core's full message (the server's words, its code and
/// HTTP status when it sent them). Server refusals also carry `code` and
/// `status` separately so an app can branch on them.
#[derive(Debug, Clone, PartialEq, uniffi::Error)]
pub enum TokenRelayError {
    /// The credential was refused (missing, expired, revoked). A connection
    /// fetches a fresh token by itself; from the admin client, check the key.
    Unauthorized {
        /// What happened.
        detail: String,
        /// The server's stable error code, when it sent one.
        code: Option<String>,
        /// The HTTP status, when there was one.
        status: Option<u16>,
    },
    /// The credential may not do this (wrong org, key scoped to another
    /// context). Terminal for a connection.
    Forbidden {
        /// What happened.
        detail: String,
        /// The server's stable error code, when it sent one.
        code: Option<String>,
        /// The HTTP status, when there was one.
        status: Option<u16>,
    },
    /// The context, agent or key does not exist (any more). Terminal.
    NotFound {
        /// What happened.
        detail: String,
        /// The server's stable error code, when it sent one.
        code: Option<String>,
        /// The HTTP status, when there was one.
        status: Option<u16>,
    },
    /// Too many requests; wait `retry_after_ms` when the server said.
    RateLimited {
        /// What happened.
        detail: String,
        /// The server's stable error code, when it sent one.
        code: Option<String>,
        /// The HTTP status, when there was one.
        status: Option<u16>,
        /// How long the server asked to wait, in milliseconds.
        retry_after_ms: Option<u64>,
    },
    /// The organisation has no credit left.
    PaymentRequired {
        /// What happened.
        detail: String,
        /// The server's stable error code, when it sent one.
        code: Option<String>,
        /// The HTTP status, when there was one.
        status: Option<u16>,
    },
    /// The request was malformed or conflicts with existing state.
    InvalidRequest {
        /// What happened.
        detail: String,
        /// The server's stable error code, when it sent one.
        code: Option<String>,
        /// The HTTP status, when there was one.
        status: Option<u16>,
    },
    /// Any other failure the server reported. Usually transient.
    Server {
        /// What happened.
        detail: String,
        /// The server's stable error code, when it sent one.
        code: Option<String>,
        /// The HTTP status, when there was one.
        status: Option<u16>,
    },
    /// The peer sent something that is not the protocol (the frame was
    /// dropped; the connection carries on).
    Protocol {
        /// What was wrong.
        detail: String,
    },
    /// No answer arrived in time.
    Timeout {
        /// What was waited for, and how long.
        detail: String,
        /// How long, in milliseconds.
        after_ms: u64,
    },
    /// The socket went away while a request was outstanding; its outcome is
    /// unknown. The connection reconnects by itself.
    ConnectionLost {
        /// The close reason or transport error.
        detail: String,
        /// The WebSocket close code, when the peer sent one.
        close_code: Option<u16>,
    },
    /// The connection was closed (by the app, or terminally by the server).
    Closed {
        /// What happened.
        detail: String,
    },
    /// The app's token provider failed (threw). The connection retries with
    /// backoff, unless the provider threw `Forbidden` or `NotFound`.
    TokenProvider {
        /// The provider's error, as text.
        detail: String,
    },
    /// The token provider returned an already expired JWT; it was not sent.
    ExpiredToken {
        /// What happened.
        detail: String,
        /// The token's `exp`, unix seconds.
        expired_at: u64,
    },
    /// DNS, TCP, TLS or the HTTP upgrade failed. Retried with backoff.
    Transport {
        /// What the transport said.
        detail: String,
    },
    /// Too many requests are queued while disconnected.
    QueueFull {
        /// What happened.
        detail: String,
        /// The configured limit.
        limit: u64,
    },
    /// A message queued while disconnected waited longer than
    /// `max_queued_age_ms` for a connection: it was never sent.
    QueueExpired {
        /// What happened.
        detail: String,
        /// The configured age limit, in milliseconds.
        after_ms: u64,
    },
    /// The connection was closed while the message was still queued for a
    /// connection: it was never sent (unlike `Closed` on a request already
    /// sent, whose outcome is unknown).
    ClosedBeforeSent {
        /// What happened.
        detail: String,
    },
    /// Events were not read fast enough and the oldest were dropped
    /// (responses are unaffected).
    EventsDropped {
        /// What happened.
        detail: String,
        /// How many were dropped.
        count: u64,
    },
    /// The client was configured wrongly (a bad URL, say).
    Config {
        /// What is wrong.
        detail: String,
    },
}

impl std::fmt::Display for TokenRelayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.detail())
    }
}

impl std::error::Error for TokenRelayError {}

impl TokenRelayError {
    /// The human-readable text of any variant.
    pub fn detail(&self) -> &str {
        use TokenRelayError as E;
        match self {
            E::Unauthorized { detail, .. }
            | E::Forbidden { detail, .. }
            | E::NotFound { detail, .. }
            | E::RateLimited { detail, .. }
            | E::PaymentRequired { detail, .. }
            | E::InvalidRequest { detail, .. }
            | E::Server { detail, .. }
            | E::Protocol { detail }
            | E::Timeout { detail, .. }
            | E::ConnectionLost { detail, .. }
            | E::Closed { detail }
            | E::TokenProvider { detail }
            | E::ExpiredToken { detail, .. }
            | E::Transport { detail }
            | E::QueueFull { detail, .. }
            | E::QueueExpired { detail, .. }
            | E::ClosedBeforeSent { detail }
            | E::EventsDropped { detail, .. }
            | E::Config { detail } => detail,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<Error> for TokenRelayError {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        TokenRelayError::with_detail(e, detail)
    }
}

impl TokenRelayError {
    /// The variant of `e`'s kind, with `detail` as its text.
    fn with_detail(e: Error, detail: String) -> Self {
        use TokenRelayError as E;
        let (code, status) = match e.rejection() {
            Some(r) => (r.code.clone(), r.status),
            None => (None, None),
        };
        // The variant's data the flat enum keeps, read by accessor or by a
        // pattern of its own: `Error` is non-exhaustive, `ErrorKind` is not.
        match e.kind() {
            ErrorKind::Unauthorized => E::Unauthorized {
                detail,
                code,
                status,
            },
            ErrorKind::Forbidden => E::Forbidden {
                detail,
                code,
                status,
            },
            ErrorKind::NotFound => E::NotFound {
                detail,
                code,
                status,
            },
            ErrorKind::RateLimited => E::RateLimited {
                detail,
                code,
                status,
                retry_after_ms: e.retry_after().map(millis),
            },
            ErrorKind::PaymentRequired => E::PaymentRequired {
                detail,
                code,
                status,
            },
            ErrorKind::InvalidRequest => E::InvalidRequest {
                detail,
                code,
                status,
            },
            ErrorKind::Server => E::Server {
                detail,
                code,
                status,
            },
            ErrorKind::Protocol => E::Protocol { detail },
            ErrorKind::Timeout => E::Timeout {
                detail,
                after_ms: match e {
                    Error::Timeout { after, .. } => millis(after),
                    _ => 0,
                },
            },
            ErrorKind::ConnectionLost => E::ConnectionLost {
                detail,
                close_code: match e {
                    Error::ConnectionLost { code, .. } => code,
                    _ => None,
                },
            },
            ErrorKind::Closed => E::Closed { detail },
            ErrorKind::TokenProvider => E::TokenProvider { detail },
            ErrorKind::ExpiredToken => E::ExpiredToken {
                detail,
                expired_at: match e {
                    Error::ExpiredToken { expired_at } => expired_at,
                    _ => 0,
                },
            },
            ErrorKind::Transport => E::Transport { detail },
            ErrorKind::QueueFull => E::QueueFull {
                detail,
                limit: match e {
                    Error::QueueFull { limit } => limit as u64,
                    _ => 0,
                },
            },
            ErrorKind::QueueExpired => E::QueueExpired {
                detail,
                after_ms: match e {
                    Error::QueueExpired { after } => millis(after),
                    _ => 0,
                },
            },
            ErrorKind::ClosedBeforeSent => E::ClosedBeforeSent { detail },
            ErrorKind::EventsDropped => E::EventsDropped {
                detail,
                count: match e {
                    Error::EventsDropped { count } => count,
                    _ => 0,
                },
            },
            ErrorKind::Config => E::Config { detail },
        }
    }
}

impl TokenRelayError {
    /// The core's kind of this error: which variant it is.
    pub fn kind(&self) -> ErrorKind {
        use TokenRelayError as E;
        match self {
            E::Unauthorized { .. } => ErrorKind::Unauthorized,
            E::Forbidden { .. } => ErrorKind::Forbidden,
            E::NotFound { .. } => ErrorKind::NotFound,
            E::RateLimited { .. } => ErrorKind::RateLimited,
            E::PaymentRequired { .. } => ErrorKind::PaymentRequired,
            E::InvalidRequest { .. } => ErrorKind::InvalidRequest,
            E::Server { .. } => ErrorKind::Server,
            E::Protocol { .. } => ErrorKind::Protocol,
            E::Timeout { .. } => ErrorKind::Timeout,
            E::ConnectionLost { .. } => ErrorKind::ConnectionLost,
            E::Closed { .. } => ErrorKind::Closed,
            E::TokenProvider { .. } => ErrorKind::TokenProvider,
            E::ExpiredToken { .. } => ErrorKind::ExpiredToken,
            E::Transport { .. } => ErrorKind::Transport,
            E::QueueFull { .. } => ErrorKind::QueueFull,
            E::QueueExpired { .. } => ErrorKind::QueueExpired,
            E::ClosedBeforeSent { .. } => ErrorKind::ClosedBeforeSent,
            E::EventsDropped { .. } => ErrorKind::EventsDropped,
            E::Config { .. } => ErrorKind::Config,
        }
    }

    /// The server's code and HTTP status, for the variants that carry them.
    fn code_and_status(&self) -> (Option<String>, Option<u16>) {
        use TokenRelayError as E;
        match self {
            E::Unauthorized { code, status, .. }
            | E::Forbidden { code, status, .. }
            | E::NotFound { code, status, .. }
            | E::RateLimited { code, status, .. }
            | E::PaymentRequired { code, status, .. }
            | E::InvalidRequest { code, status, .. }
            | E::Server { code, status, .. } => (code.clone(), *status),
            _ => (None, None),
        }
    }
}

/// A foreign implementation of a callback threw something that is not a
/// `TokenRelayException` / `TokenRelayError` (a Swift provider's own error;
/// the Kotlin layer classifies its exceptions with [`provider_failure`]
/// first). uniffi hands over its text only: a provider failure.
impl From<uniffi::UnexpectedUniFFICallbackError> for TokenRelayError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Error::from_provider(ProviderFailure::new(e.reason)).into()
    }
}

/// What a foreign token provider threw, as the core's error: classified by
/// the core's one rule for failed providers ([`Error::from_provider`]),
/// which keeps the classes a provider can mean (`Forbidden` and `NotFound`
/// end the connection).
impl From<TokenRelayError> for Error {
    fn from(e: TokenRelayError) -> Self {
        let (code, status) = e.code_and_status();
        let kind = e.kind();
        Error::from_provider(
            ProviderFailure::new(e.detail().to_owned())
                .kind(Some(kind))
                .status(status)
                .code(code),
        )
    }
}

/// The class the core gives a token provider's failure that carries an
/// HTTP `status` and/or a server error `code` (either may be absent), as
/// the exception to throw. The Kotlin and Swift layers call it for an
/// exception of their own (an HTTP client's) thrown by an app's provider,
/// so that a 500, a 403 or a timeout is the same class as in Python and
/// the browser.
#[uniffi::export]
pub fn provider_failure(
    message: String,
    status: Option<u16>,
    code: Option<String>,
) -> TokenRelayError {
    let class = Error::from_provider(
        ProviderFailure::new(message.clone())
            .status(status)
            .code(code),
    );
    // The detail is the provider's own message, not the class's whole text:
    // thrown back through the provider, it becomes the core's error again
    // (`From<TokenRelayError> for Error`), whose text then says it once.
    TokenRelayError::with_detail(class, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_refusals_keep_code_and_status() {
        let e = TokenRelayError::from(Error::from_server(
            "nope",
            Some("invalid_billing"),
            Some(402),
        ));
        assert_eq!(
            e,
            TokenRelayError::PaymentRequired {
                detail: "payment required: nope [invalid_billing] (HTTP 402)".into(),
                code: Some("invalid_billing".into()),
                status: Some(402),
            }
        );
    }

    #[test]
    fn a_provider_that_throws_forbidden_ends_the_connection() {
        let thrown = TokenRelayError::Forbidden {
            detail: "logged out".into(),
            code: None,
            status: None,
        };
        assert!(matches!(Error::from(thrown), Error::Forbidden(r) if r.message == "logged out"));
        let other = TokenRelayError::Transport {
            detail: "offline".into(),
        };
        assert!(
            matches!(Error::from(other), Error::TokenProvider { message } if message == "offline")
        );
    }

    #[test]
    fn a_classified_provider_failure_thrown_back_keeps_its_class_and_text() {
        let thrown = provider_failure("HttpFailure: backend down".into(), Some(500), None);
        assert_eq!(thrown.kind(), ErrorKind::Server);
        let e = Error::from(thrown);
        assert_eq!(
            e.to_string(),
            "server error: HttpFailure: backend down (HTTP 500)"
        );
        let plain = Error::from(provider_failure("IOException: x".into(), None, None));
        assert_eq!(plain.to_string(), "token provider failed: IOException: x");
    }

    #[test]
    fn rate_limits_carry_the_delay_in_millis() {
        let e = Error::from_close(4029, "retry after 7").unwrap_or(Error::Closed);
        assert!(matches!(
            TokenRelayError::from(e),
            TokenRelayError::RateLimited {
                retry_after_ms: Some(7000),
                ..
            }
        ));
    }
}
