//! Settings of a [`Session`](super::Session).

use crate::prelude::*;

use core::time::Duration;

use crate::backoff::ReconnectPolicy;

/// Settings of a session. Build with [`SessionConfig::new`] and adjust the
/// public fields; every one has a default that suits a browser or phone.
/// `Debug` redacts `client_key`, like every other key.
///
/// Non-exhaustive: a setting can be added in a minor release, so code
/// outside this crate builds it with `new` and assigns fields, never with
/// a struct literal.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The WebSocket endpoint, e.g. `wss://relay.example.com/ws`.
    pub ws_url: String,
    /// Publishable client key (`pk_…`) of the app, sent with every
    /// `connect_to_context` when set (`docs/protocol.md` §4.6).
    pub client_key: Option<String>,
    /// How long to wait for the result of `connect_to_context` and
    /// `stop_invocation`. Default 15 s.
    pub request_timeout: Duration,
    /// How long a request that makes the agent respond (`add_message`, …)
    /// may go without any sign of its response. The hosted server answers
    /// `add_message` only after the whole response has streamed, so this is
    /// an inactivity timeout, refreshed by every notification of the
    /// response. Default 120 s.
    pub invocation_timeout: Duration,
    /// How long opening the socket may take. Default 15 s.
    pub open_timeout: Duration,
    /// How long the token provider may take. Default 30 s.
    pub token_timeout: Duration,
    /// A token whose JWT `exp` is this close (or past) is not sent; a fresh
    /// one is asked for. Default 5 s.
    pub token_expiry_margin: Duration,
    /// Frames longer than this are refused with a protocol error and not
    /// parsed. Default 1 MiB.
    pub max_frame_len: usize,
    /// Completed responses kept for [`Session::response`](super::Session::response).
    /// Default 64.
    pub max_retained_responses: usize,
    /// Requests queued while disconnected, sent in order on reconnect.
    /// One more fails at once with [`Error::QueueFull`](crate::Error::QueueFull).
    /// Default 256.
    pub max_queued_requests: usize,
    /// How long a request may wait in that queue for a connection. Past
    /// it, the request leaves the queue unsent and fails with
    /// [`Error::QueueExpired`](crate::Error::QueueExpired) at that moment,
    /// without waiting for a reconnect (a chat message is worth sending a
    /// few minutes late, not an hour). `None`: no limit. Default 5 min.
    pub max_queued_age: Option<Duration>,
    /// Send a WebSocket ping when the socket has been quiet this long.
    /// `None` disables pings (browsers cannot send them). Default 15 s.
    pub ping_interval: Option<Duration>,
    /// Treat the socket as dead when nothing (frame or pong) has arrived for
    /// this long, and reconnect. `None` disables it. Default 45 s.
    pub idle_timeout: Option<Duration>,
    /// Ask the server to replay missed notifications on reconnect when it
    /// offers `resume`. Default true.
    pub resume: bool,
    /// The reconnect schedule.
    pub reconnect: ReconnectPolicy,
    /// Refresh ahead: once connected with a key whose expiry is known (a
    /// JWT client key), fetch the next connection's key in the background,
    /// so a reconnect does not wait for the token provider. Costs one
    /// provider call per connection. Default true.
    pub refresh_ahead: bool,
}

impl SessionConfig {
    /// Defaults for a server at `ws_url`.
    pub fn new(ws_url: impl Into<String>) -> Self {
        SessionConfig {
            ws_url: ws_url.into(),
            client_key: None,
            request_timeout: Duration::from_secs(15),
            invocation_timeout: Duration::from_secs(120),
            open_timeout: Duration::from_secs(15),
            token_timeout: Duration::from_secs(30),
            token_expiry_margin: Duration::from_secs(5),
            max_frame_len: 1024 * 1024,
            max_retained_responses: 64,
            max_queued_requests: 256,
            max_queued_age: Some(Duration::from_secs(300)),
            ping_interval: Some(Duration::from_secs(15)),
            idle_timeout: Some(Duration::from_secs(45)),
            resume: true,
            reconnect: ReconnectPolicy::default(),
            refresh_ahead: true,
        }
    }
}

impl core::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use crate::redact::Redacted;
        f.debug_struct("SessionConfig")
            .field("ws_url", &self.ws_url)
            .field("client_key", &self.client_key.as_deref().map(Redacted))
            .field("request_timeout", &self.request_timeout)
            .field("invocation_timeout", &self.invocation_timeout)
            .field("open_timeout", &self.open_timeout)
            .field("token_timeout", &self.token_timeout)
            .field("token_expiry_margin", &self.token_expiry_margin)
            .field("max_frame_len", &self.max_frame_len)
            .field("max_retained_responses", &self.max_retained_responses)
            .field("max_queued_requests", &self.max_queued_requests)
            .field("max_queued_age", &self.max_queued_age)
            .field("ping_interval", &self.ping_interval)
            .field("idle_timeout", &self.idle_timeout)
            .field("resume", &self.resume)
            .field("reconnect", &self.reconnect)
            .field("refresh_ahead", &self.refresh_ahead)
            .finish()
    }
}
