//! [`ClientConfig`] and [`NativeClient`]: settings and the factory of
//! connections. The Kotlin and Swift `Client` classes wrap `NativeClient`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokenrelay::Client;
use tokenrelay::ReconnectPolicy;

use crate::connection::NativeConnection;
use crate::error::TokenRelayError;
use crate::logging::{self, LogLevel, Logger, Registration};
use crate::provider::{ForeignProvider, TokenProvider};

/// How a [`NativeClient`] connects. Only `ws_url` is required; every
/// `None` keeps the core's default.
#[derive(Clone, uniffi::Record)]
pub struct ClientConfig {
    /// The WebSocket endpoint, `wss://…/ws` (or `ws://` for local tests).
    pub ws_url: String,
    /// The app's publishable client key (`pk_…`), sent on every connect.
    #[uniffi(default = None)]
    pub client_key: Option<String>,
    /// Extra headers for the WebSocket upgrade request.
    #[uniffi(default = None)]
    pub headers: Option<HashMap<String, String>>,
    /// How long `connect` waits for the first attachment (default 30 s).
    #[uniffi(default = None)]
    pub connect_timeout_ms: Option<u64>,
    /// Timeout of `connect_to_context` and `stop` (default 15 s).
    #[uniffi(default = None)]
    pub request_timeout_ms: Option<u64>,
    /// Inactivity timeout of a reply (default 120 s).
    #[uniffi(default = None)]
    pub invocation_timeout_ms: Option<u64>,
    /// First reconnect delay envelope (default 500 ms; full jitter).
    #[uniffi(default = None)]
    pub reconnect_min_delay_ms: Option<u64>,
    /// Cap of the reconnect delay (default 20 s).
    #[uniffi(default = None)]
    pub reconnect_max_delay_ms: Option<u64>,
    /// Give up (state `Failed`) after this many failed attempts in a row
    /// (default: never).
    #[uniffi(default = None)]
    pub max_reconnect_attempts: Option<u32>,
    /// Events kept for a slow reader (default 65,536).
    #[uniffi(default = None)]
    pub event_capacity: Option<u32>,
    /// Refresh ahead (default true): once connected with a JWT client key,
    /// fetch the next connection's key in the background, so a reconnect
    /// does not wait for the token provider. False calls the provider only
    /// when a socket is needed (one call fewer per connection).
    #[uniffi(default = None)]
    pub refresh_ahead: Option<bool>,
    /// Ping the server after this much quiet (default 15 s; 0 turns pings
    /// off).
    #[uniffi(default = None)]
    pub ping_interval_ms: Option<u64>,
    /// Count the socket dead after this much silence and reconnect: how fast
    /// a connection whose packets just stop is noticed (default 45 s; 0
    /// turns it off).
    #[uniffi(default = None)]
    pub idle_timeout_ms: Option<u64>,
    /// How many messages may wait for a connection while disconnected
    /// (sent in order once attached; default 256). One more fails at once
    /// with `QueueFull`.
    #[uniffi(default = None)]
    pub max_queued: Option<u32>,
    /// How long a message may wait for a connection (default 300 s; 0: no
    /// limit). Past it, it fails unsent with `QueueExpired` when its age
    /// passes, without waiting for a reconnect.
    #[uniffi(default = None)]
    pub max_queued_age_ms: Option<u64>,
    /// Receives the SDK's log records (connections attached, lost with
    /// their cause and the delay before the next attempt, resumed, closed
    /// with their stats; never a key) at `log_level` and above, while this
    /// client or one of its connections is open. Default: none.
    #[uniffi(default = None)]
    pub logger: Option<Arc<dyn Logger>>,
    /// The most detailed records `logger` receives (default `Info`).
    #[uniffi(default = None)]
    pub log_level: Option<LogLevel>,
    /// A CA certificate (PEM text; several `BEGIN CERTIFICATE` sections
    /// allowed) trusted for `wss://` on top of the platform's roots (the
    /// system store where it can be read, else the compiled-in Mozilla
    /// list), for a relay whose certificate a private CA issued. An
    /// invalid PEM fails the constructor with `Config`.
    #[uniffi(default = None)]
    pub root_certificate_pem: Option<String>,
    /// Allow `ws://` to a host that is not loopback (default false: such a
    /// URL fails the constructor with `Config`, credentials would cross
    /// the network unencrypted).
    #[uniffi(default = None)]
    pub allow_insecure: Option<bool>,
    /// An `http://[user:pass@]host:port` proxy for every socket (a
    /// `CONNECT` tunnel), whatever the environment says. By default
    /// `HTTPS_PROXY`/`ALL_PROXY` and `NO_PROXY` are followed (desktop
    /// JVMs and macOS; an Android or iOS app sets it from the system's
    /// proxy settings if it needs one).
    #[uniffi(default = None)]
    pub proxy: Option<String>,
    /// Connect directly, ignoring the proxy environment variables (default
    /// false).
    #[uniffi(default = None)]
    pub no_proxy: Option<bool>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The app's logger has no `Debug`; the other settings are enough
        // to recognise a config by.
        f.debug_struct("ClientConfig")
            .field("ws_url", &self.ws_url)
            .field("client_key", &self.client_key)
            .field("logger", &self.logger.is_some())
            .field("log_level", &self.log_level)
            .field("allow_insecure", &self.allow_insecure)
            .finish_non_exhaustive()
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Opens connections to contexts of one server with one token provider.
/// Wrapped by the Kotlin/Swift `Client`.
#[derive(uniffi::Object)]
pub struct NativeClient {
    inner: Client,
    /// The config's logger, registered while this client or one of its
    /// connections lives.
    logs: Option<Arc<Registration>>,
}

#[uniffi::export(async_runtime = "tokio")]
impl NativeClient {
    /// A client for `config.ws_url` that asks `token_provider` for a fresh
    /// key on every (re)connect. Fails on a bad URL.
    #[uniffi::constructor]
    pub fn new(
        config: ClientConfig,
        token_provider: Arc<dyn TokenProvider>,
    ) -> Result<Arc<Self>, TokenRelayError> {
        let mut b = Client::builder(config.ws_url).token_provider(ForeignProvider(token_provider));
        if let Some(k) = config.client_key {
            b = b.client_key(k);
        }
        for (name, value) in config.headers.unwrap_or_default() {
            b = b.header(name, value);
        }
        if let Some(t) = config.connect_timeout_ms {
            b = b.connect_timeout(ms(t));
        }
        if let Some(t) = config.request_timeout_ms {
            b = b.request_timeout(ms(t));
        }
        if let Some(t) = config.invocation_timeout_ms {
            b = b.invocation_timeout(ms(t));
        }
        if let Some(on) = config.refresh_ahead {
            b = b.refresh_ahead(on);
        }
        // `None` keeps the core's default; 0 turns the timer off.
        let timer = |t: u64| (t > 0).then(|| ms(t));
        if let Some(t) = config.ping_interval_ms {
            b = b.ping_interval(timer(t));
        }
        if let Some(t) = config.idle_timeout_ms {
            b = b.idle_timeout(timer(t));
        }
        if let Some(n) = config.max_queued {
            b = b.max_queued(n as usize);
        }
        if let Some(t) = config.max_queued_age_ms {
            b = b.max_queued_age(timer(t));
        }
        if let Some(n) = config.event_capacity {
            b = b.event_capacity(n.max(1) as usize);
        }
        let mut policy = ReconnectPolicy::default();
        if let Some(t) = config.reconnect_min_delay_ms {
            policy.min_delay = ms(t);
        }
        if let Some(t) = config.reconnect_max_delay_ms {
            policy.max_delay = ms(t);
        }
        policy.max_attempts = config.max_reconnect_attempts;
        let inner = b
            .network(tokenrelay::NetworkOptions::from_parts(
                config.root_certificate_pem,
                config.allow_insecure.unwrap_or(false),
                config.proxy,
                config.no_proxy == Some(true),
            ))
            .reconnect(policy)
            .build()?;
        let logs = config.logger.map(|logger| {
            let level = config.log_level.unwrap_or(LogLevel::Info);
            Arc::new(logging::register(logger, level))
        });
        Ok(Arc::new(NativeClient { inner, logs }))
    }

    /// Connects to `context_id` and waits until attached. Fails at once on a
    /// terminal refusal (forbidden, unknown context), or with the last cause
    /// when the connect timeout passes. Once connected, the connection
    /// reconnects by itself.
    pub async fn connect(
        &self,
        context_id: String,
    ) -> Result<Arc<NativeConnection>, TokenRelayError> {
        let conn = self.inner.connect(context_id).await?;
        Ok(Arc::new(NativeConnection::new(conn, self.logs.clone())))
    }
}
