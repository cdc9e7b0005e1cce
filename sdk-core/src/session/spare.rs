//! Refresh-ahead: the credential for the next connection, fetched while the
//! current one is up, so that a reconnect does not wait for the app's
//! backend.
//!
//! A reconnect must present a fresh client key (`docs/protocol.md` §2.6).
//! Asking the token provider for it only once the socket has died puts the
//! backend's round trip (often 50–300 ms: an HTTP call, a database lookup,
//! a signature) on the path of the next token. So once a connection is
//! attached, the session asks for the next key in the background and keeps
//! it here, unused, until the socket drops. The key is still fresh when it
//! is used (no socket has ever presented it); it only waits.
//!
//! Only credentials whose lifetime is known take part: a JWT access token
//! with an `exp` claim. A stream token is single-use and short-lived, and an
//! opaque key from a static provider would be the same key again, so for
//! those the session fetches on reconnect as before.
//!
//! Cost: one extra provider call per connection (the spare for the next
//! one), plus one each time a spare nears its expiry while the connection
//! stays up (at three quarters of its usable life).

use core::time::Duration;

use crate::time::Timestamp;
use crate::token::{Credential, CredentialKind};

/// A spare shorter-lived than this is not kept (nor refreshed): a provider
/// that hands out keys about to expire would otherwise be called in a loop.
const MIN_USABLE: Duration = Duration::from_secs(10);

/// The next connection's credential, if any.
#[derive(Debug, Default)]
pub(super) enum Spare {
    /// None wanted or none yet.
    #[default]
    Empty,
    /// Asked for; the provider has not answered `fetch_id` yet.
    Fetching { fetch_id: u64 },
    /// Ready for the next connection.
    Ready {
        credential: Credential,
        /// After this the key is within the expiry margin: never sent.
        usable_until: Timestamp,
        /// While connected, fetch a replacement from here on.
        refresh_at: Timestamp,
    },
}

/// What the next connection should do about its credential.
pub(super) enum Take {
    /// Use this one: no provider call needed.
    Use(Credential),
    /// The provider is already working on it: wait for `fetch_id`.
    Await(u64),
    /// Ask the provider.
    Fetch,
}

/// True when a connection made with `credential` should keep a spare: its
/// expiry is known, and it is a reusable kind of key.
pub(super) fn worth_keeping(credential: &Credential) -> bool {
    credential.kind() == CredentialKind::AccessToken && credential.expires_at().is_some()
}

impl Spare {
    /// The spare for a connection starting at `now`, leaving `Empty`.
    pub(super) fn take(&mut self, now: Timestamp) -> Take {
        match core::mem::take(self) {
            Spare::Ready {
                credential,
                usable_until,
                ..
            } if now < usable_until => Take::Use(credential),
            Spare::Fetching { fetch_id } => Take::Await(fetch_id),
            _ => Take::Fetch,
        }
    }

    /// The fetch `fetch_id` is this spare's.
    pub(super) fn is_fetching(&self, fetch_id: u64) -> bool {
        matches!(self, Spare::Fetching { fetch_id: f } if *f == fetch_id)
    }

    /// The provider answered the spare's fetch with `credential` at `now`
    /// (`unix_now` on the wall clock). Keeps it if it will stay usable long
    /// enough to be worth it; a failed or short-lived answer leaves the
    /// spare empty, and the next reconnect asks the provider as usual.
    pub(super) fn fill(
        &mut self,
        credential: Option<Credential>,
        margin: Duration,
        now: Timestamp,
        unix_now: u64,
    ) {
        *self = Spare::Empty;
        let Some(credential) = credential else { return };
        let Some(exp) = credential.expires_at() else {
            return;
        };
        let usable =
            Duration::from_secs(exp.saturating_sub(unix_now.saturating_add(margin.as_secs())));
        if usable < MIN_USABLE {
            return;
        }
        *self = Spare::Ready {
            credential,
            usable_until: now + usable,
            refresh_at: now + usable / 4 * 3,
        };
    }

    /// When a ready spare should be replaced.
    pub(super) fn refresh_at(&self) -> Option<Timestamp> {
        match self {
            Spare::Ready { refresh_at, .. } => Some(*refresh_at),
            _ => None,
        }
    }
}
