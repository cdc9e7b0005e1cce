//! [`Client`] and its builder: the settings every connection of one
//! server shares, and `connect`, which spawns a connection's driver.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::connection::Connection;
use super::driver::{Driver, SocketOptions};
use super::network::{NetworkOptions, ProxyChoice};
use super::proxy::{ProxySetting, ProxyTarget};
use super::queue::EventQueue;

use crate::backoff::ReconnectPolicy;
use crate::error::Error;
use crate::event::{ConnectionState, StateChange};
use crate::provider::{SingleFlight, TokenProvider};
use crate::session::{Session, SessionConfig};

/// Opens [`Connection`]s to contexts of one server with one token provider.
/// Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: SessionConfig,
    provider: Arc<dyn TokenProvider>,
    headers: Vec<(String, String)>,
    event_capacity: usize,
    connect_timeout: Duration,
    /// `Some` for a `wss://` URL: the roots it trusts.
    tls: Option<Arc<rustls::ClientConfig>>,
    proxy: ProxySetting,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("ws_url", &self.inner.config.ws_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts building a client for the WebSocket endpoint `ws_url`
    /// (`ws://…/ws` or `wss://…/ws`).
    pub fn builder(ws_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            config: SessionConfig::new(ws_url),
            provider: None,
            headers: Vec::new(),
            event_capacity: 65_536,
            connect_timeout: Duration::from_secs(30),
            network: NetworkOptions::new(),
        }
    }

    /// Connects to `context_id` and waits until attached.
    ///
    /// Fails at once on a terminal refusal (forbidden, unknown context), or
    /// with the last cause when no attempt succeeded within the connect
    /// timeout. Once connected, the connection reconnects by itself.
    pub async fn connect(&self, context_id: impl Into<String>) -> Result<Connection, Error> {
        let context_id = context_id.into();
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (state_tx, mut state_rx) = watch::channel(StateChange {
            state: ConnectionState::Idle,
            attempt: 0,
            retry_in: None,
            cause: None,
        });
        let (last_cause_tx, last_cause_rx) = watch::channel(None);
        let queue = EventQueue::new(self.inner.event_capacity);
        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stats = Arc::new(std::sync::Mutex::new(crate::Stats::default()));
        let driver = Driver {
            pending: pending.clone(),
            stats: stats.clone(),
            session: Session::new(
                context_id.clone(),
                self.inner.config.clone(),
                fastrand::u64(..),
            ),
            provider: self.inner.provider.clone(),
            queue: queue.clone(),
            state: state_tx,
            last_cause: last_cause_tx,
            options: SocketOptions {
                headers: self.inner.headers.clone(),
                max_message_len: self.inner.config.max_frame_len.saturating_mul(4),
                tls: self.inner.tls.clone(),
                proxy: self.inner.proxy.clone(),
                proxy_timeout: self.inner.connect_timeout,
            },
        };
        // Every log line of the connection's task carries its context (an
        // id, never a credential).
        let span = tracing::info_span!("tokenrelay.connection", context_id = %context_id);
        tokio::spawn(tracing::Instrument::instrument(
            driver.run(commands_rx),
            span,
        ));
        let conn = Connection::new(
            context_id,
            commands_tx,
            queue,
            state_rx.clone(),
            pending,
            stats,
        );
        let wait = async {
            loop {
                let change = state_rx.borrow_and_update().clone();
                match change.state {
                    ConnectionState::Connected => return Ok(()),
                    ConnectionState::Failed => return Err(change.cause.unwrap_or(Error::Closed)),
                    ConnectionState::Closed => return Err(Error::Closed),
                    _ => {}
                }
                if state_rx.changed().await.is_err() {
                    return Err(Error::Closed);
                }
            }
        };
        match tokio::time::timeout(self.inner.connect_timeout, wait).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                // The fetching, connecting and authenticating states carry
                // no cause: a deadline that lands mid-attempt still reports
                // why the earlier attempts failed.
                let cause = conn
                    .state()
                    .cause
                    .or_else(|| last_cause_rx.borrow().clone());
                conn.close().await;
                Err(cause.unwrap_or(Error::Timeout {
                    what: "the first connection".into(),
                    after: self.inner.connect_timeout,
                }))
            }
        }
    }
}

/// Builds a [`Client`]. Only the token provider is required.
#[must_use = "a builder does nothing until `build()`"]
pub struct ClientBuilder {
    config: SessionConfig,
    provider: Option<Arc<dyn TokenProvider>>,
    headers: Vec<(String, String)>,
    event_capacity: usize,
    connect_timeout: Duration,
    network: NetworkOptions,
}

impl ClientBuilder {
    /// Where fresh credentials come from (asked on every connect, never
    /// reused, concurrent asks for one context share a single call).
    pub fn token_provider(mut self, provider: impl TokenProvider) -> Self {
        self.provider = Some(Arc::new(provider));
        self
    }

    /// The app's publishable client key (`pk_…`), sent on every connect.
    pub fn client_key(mut self, key: impl Into<String>) -> Self {
        self.config.client_key = Some(key.into());
        self
    }

    /// Adds a header to every WebSocket upgrade request (an `Origin` for
    /// publishable-key checks, say).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// How long [`Client::connect`] waits for the first attachment. Default 30 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Timeout of `connect_to_context` and `stop`. Default 15 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Inactivity timeout of a request's response. Default 120 s.
    pub fn invocation_timeout(mut self, timeout: Duration) -> Self {
        self.config.invocation_timeout = timeout;
        self
    }

    /// The reconnect schedule.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.config.reconnect = policy;
        self
    }

    /// Largest frame accepted. Default 1 MiB.
    pub fn max_frame_len(mut self, len: usize) -> Self {
        self.config.max_frame_len = len;
        self
    }

    /// Ping cadence and idle timeout (`None` disables either).
    pub fn keepalive(
        mut self,
        ping_interval: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> Self {
        self.config.ping_interval = ping_interval;
        self.config.idle_timeout = idle_timeout;
        self
    }

    /// Ping the server after this much quiet (`None`: never). Default 15 s.
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.ping_interval = interval;
        self
    }

    /// Count the socket dead after this much silence and reconnect
    /// (`None`: never): how fast a connection whose packets just stop is
    /// noticed. Default 45 s.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Refresh ahead (default on): once connected with a JWT client key,
    /// fetch the next connection's key in the background, so a reconnect
    /// does not wait for the token provider. Turn it off to call the
    /// provider only when a socket is needed (one call fewer per
    /// connection).
    pub fn refresh_ahead(mut self, on: bool) -> Self {
        self.config.refresh_ahead = on;
        self
    }

    /// How many requests may wait for a connection while disconnected (sent
    /// in order once attached); one more fails at once with
    /// [`Error::QueueFull`]. Default 256.
    pub fn max_queued(mut self, count: usize) -> Self {
        self.config.max_queued_requests = count;
        self
    }

    /// How long a request may wait for a connection (`None`: no limit).
    /// Past it, it fails unsent with [`Error::QueueExpired`], when its age
    /// passes. Default 5 min.
    pub fn max_queued_age(mut self, age: Option<Duration>) -> Self {
        self.config.max_queued_age = age;
        self
    }

    /// Events kept for a slow reader before the oldest are dropped.
    /// Default 65,536.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Every session setting at once, for what has no builder method.
    pub fn session_config(mut self, edit: impl FnOnce(&mut SessionConfig)) -> Self {
        edit(&mut self.config);
        self
    }

    /// Trusts the CA certificate(s) in `pem` (one or more `BEGIN
    /// CERTIFICATE` sections) for `wss://`, on top of the platform's roots:
    /// for a relay whose certificate a private CA issued. Call it once per
    /// CA. A PEM without a certificate, or not valid, makes
    /// [`build`](Self::build) fail with [`Error::Config`].
    pub fn add_root_certificate_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.network = self.network.add_root_certificate_pem(pem);
        self
    }

    /// Allows a `ws://` URL whose host is not loopback (`localhost`,
    /// 127.0.0.0/8, `::1`). Off by default: over `ws://` every credential
    /// and every message crosses the network unencrypted, so
    /// [`build`](Self::build) refuses it with [`Error::Config`]. Turn it on
    /// only for a network you trust (containers talking on a private
    /// bridge, say).
    pub fn allow_insecure(mut self, allow: bool) -> Self {
        self.network = self.network.allow_insecure(allow);
        self
    }

    /// Opens every socket through this HTTP proxy
    /// (`http://[user:pass@]host:port`), with a `CONNECT` tunnel, whatever
    /// the environment says. Without it, `wss://` sockets follow
    /// `HTTPS_PROXY` (else `ALL_PROXY`) and `NO_PROXY`, lowercase names
    /// too; loopback hosts and `ws://` are then always direct. Only
    /// `http://` proxy URLs are supported; another scheme makes
    /// [`build`](Self::build) fail with [`Error::Config`].
    pub fn proxy(mut self, url: impl AsRef<str>) -> Self {
        self.network = self.network.proxy(url.as_ref());
        self
    }

    /// Connects directly, ignoring the proxy environment variables.
    pub fn no_proxy(mut self) -> Self {
        self.network = self.network.no_proxy();
        self
    }

    /// Every network setting at once (replacing those set before): trusted
    /// roots, `allow_insecure`, the proxy.
    pub fn network(mut self, options: NetworkOptions) -> Self {
        self.network = options;
        self
    }

    /// Builds the client. Fails with [`Error::Config`] without a token
    /// provider, for a URL that is not `ws://` or `wss://`, for `ws://` to
    /// a host that is not loopback without
    /// [`allow_insecure`](Self::allow_insecure), for an invalid custom
    /// root certificate or proxy URL.
    pub fn build(self) -> Result<Client, Error> {
        let provider = self.provider.ok_or_else(|| Error::Config {
            message: "a token provider is required (ClientBuilder::token_provider)".into(),
        })?;
        let url = &self.config.ws_url;
        let Some((scheme, _)) = url
            .split_once("://")
            .filter(|(s, _)| s.eq_ignore_ascii_case("ws") || s.eq_ignore_ascii_case("wss"))
        else {
            return Err(Error::Config {
                message: format!("the WebSocket URL must start with ws:// or wss://, got `{url}`"),
            });
        };
        let uri = url
            .parse::<tokio_tungstenite::tungstenite::http::Uri>()
            .map_err(|e| Error::Config {
                message: format!("invalid WebSocket URL: {e}"),
            })?;
        let host = uri.host().unwrap_or_default();
        super::tls::check_plaintext(
            scheme,
            host,
            self.network.allow_insecure,
            "allow_insecure(true)",
        )?;
        let extra_roots = self.network.extra_roots.checked()?;
        let proxy = match &self.network.proxy {
            ProxyChoice::FromEnv => ProxySetting::FromEnv,
            ProxyChoice::Disabled => ProxySetting::Disabled,
            ProxyChoice::Url(url) => ProxySetting::Explicit(ProxyTarget::parse(url)?),
        };
        let tls = if scheme.eq_ignore_ascii_case("wss") {
            Some(super::tls::tls_config_with(extra_roots)?)
        } else {
            None
        };
        Ok(Client {
            inner: Arc::new(Inner {
                config: self.config,
                provider: Arc::new(SingleFlight::new(provider)),
                headers: self.headers,
                event_capacity: self.event_capacity,
                connect_timeout: self.connect_timeout,
                tls,
                proxy,
            }),
        })
    }
}
