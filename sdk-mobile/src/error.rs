//! [`TokenRelayError`]: the core's [`tokenrelay::Error`] as one uniffi error
//! enum. Kotlin sees a sealed `TokenRelayException` hierarchy
//! (`TokenRelayException.Forbidden`, …), Swift an `Error` enum.

use std::time::Duration;

use tokenrelay::{Error, Rejection};

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
        use TokenRelayError as E;
        let detail = e.to_string();
        let (code, status) = match e.rejection() {
            Some(r) => (r.code.clone(), r.status),
            None => (None, None),
        };
        match e {
            Error::Unauthorized(_) => E::Unauthorized {
                detail,
                code,
                status,
            },
            Error::Forbidden(_) => E::Forbidden {
                detail,
                code,
                status,
            },
            Error::NotFound(_) => E::NotFound {
                detail,
                code,
                status,
            },
            Error::RateLimited { retry_after, .. } => E::RateLimited {
                detail,
                code,
                status,
                retry_after_ms: retry_after.map(millis),
            },
            Error::PaymentRequired(_) => E::PaymentRequired {
                detail,
                code,
                status,
            },
            Error::InvalidRequest(_) => E::InvalidRequest {
                detail,
                code,
                status,
            },
            Error::Server(_) => E::Server {
                detail,
                code,
                status,
            },
            Error::Protocol(_) => E::Protocol { detail },
            Error::Timeout { after, .. } => E::Timeout {
                detail,
                after_ms: millis(after),
            },
            Error::ConnectionLost { code, .. } => E::ConnectionLost {
                detail,
                close_code: code,
            },
            Error::Closed => E::Closed { detail },
            Error::TokenProvider { .. } => E::TokenProvider { detail },
            Error::ExpiredToken { expired_at } => E::ExpiredToken { detail, expired_at },
            Error::Transport { .. } => E::Transport { detail },
            Error::QueueFull { limit } => E::QueueFull {
                detail,
                limit: limit as u64,
            },
            Error::QueueExpired { after } => E::QueueExpired {
                detail,
                after_ms: millis(after),
            },
            Error::ClosedBeforeSent => E::ClosedBeforeSent { detail },
            Error::EventsDropped { count } => E::EventsDropped { detail, count },
            Error::Config { .. } => E::Config { detail },
            // `Error` is non-exhaustive: a kind added to the core later is
            // reported as a server-side failure with its full text until the
            // binding learns it.
            _ => E::Server {
                detail,
                code,
                status,
            },
        }
    }
}

/// A foreign implementation of a callback threw something that is not a
/// `TokenRelayException` / `TokenRelayError`.
impl From<uniffi::UnexpectedUniFFICallbackError> for TokenRelayError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        TokenRelayError::TokenProvider { detail: e.reason }
    }
}

/// What a foreign token provider threw, as the core's error. The classes
/// that mean "this user may not have this context" keep their class so the
/// connection ends instead of retrying; anything else is a transient
/// provider failure.
impl From<TokenRelayError> for Error {
    fn from(e: TokenRelayError) -> Self {
        use TokenRelayError as E;
        let rejection = |detail: String, code: Option<String>, status: Option<u16>| {
            Box::new(Rejection {
                message: detail,
                code,
                status,
            })
        };
        match e {
            E::Unauthorized {
                detail,
                code,
                status,
            } => Error::Unauthorized(rejection(detail, code, status)),
            E::Forbidden {
                detail,
                code,
                status,
            } => Error::Forbidden(rejection(detail, code, status)),
            E::NotFound {
                detail,
                code,
                status,
            } => Error::NotFound(rejection(detail, code, status)),
            E::PaymentRequired {
                detail,
                code,
                status,
            } => Error::PaymentRequired(rejection(detail, code, status)),
            other => Error::TokenProvider {
                message: other.detail().to_owned(),
            },
        }
    }
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
