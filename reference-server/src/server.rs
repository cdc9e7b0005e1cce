//! The in-process API: build, spawn, drive and stop a server.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tokenrelay_server::{ScriptedEngine, Server, StoreConfig};
//! let server = Server::builder()
//!     .store(StoreConfig::Memory)
//!     .engine(ScriptedEngine::default())
//!     .bind("127.0.0.1:0")
//!     .spawn()
//!     .await?;
//! let (org_id, org_key) = server.bootstrap_org("acme").await?;
//! println!("{} {} {org_id}", server.http_url(), server.ws_url());
//! # drop(org_key);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admission::{KeyedCounter, OrgSockets, PeerAddr};
use crate::auth::mint_api_key;
use crate::config::Config;
use crate::conversation::redis::{RedisBackend, RedisHubConfig};
use crate::conversation::Hubs;
use crate::engine::{Engine, ScriptedEngine, WebhookTools};
use crate::jwt::JwtKeys;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::secret::SecretString;
use crate::state::{AppState, ServerState, SessionTracker};
use crate::store::{self, KeyKind, OrgRecord, Store, StoreConfig};
use crate::time::unix_now;

/// Store setting holding the generated JWT secret.
const JWT_SECRET_SETTING: &str = "jwt_secret";
/// Shortest JWT secret accepted: HS256 keys shorter than its 32-byte
/// output can be brute-forced offline from any client key a browser holds.
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// How often expired keys and stream tokens are purged, and idle hubs swept.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// How long shutdown waits for each of its steps that should be quick
/// (sockets closing, generations already told to stop, REST requests in
/// flight). The drain itself is bounded by `Config::drain_timeout`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How often shutdown looks whether the generations have ended.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Entry point of the in-process API.
pub struct Server;

impl Server {
    /// A builder with defaults: in-memory store, scripted engine,
    /// `127.0.0.1:0`.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            config: Config::default(),
            store: StoreConfig::Memory,
            engine: None,
            bind: "127.0.0.1:0".into(),
        }
    }
}

/// Configures a server before it starts.
pub struct ServerBuilder {
    config: Config,
    store: StoreConfig,
    engine: Option<Arc<dyn Engine>>,
    bind: String,
}

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl ServerBuilder {
    /// Where data lives (default: in memory).
    pub fn store(mut self, store: StoreConfig) -> Self {
        self.store = store;
        self
    }

    /// The agent engine (default: [`ScriptedEngine`]).
    pub fn engine(mut self, engine: impl Engine) -> Self {
        self.engine = Some(Arc::new(engine));
        self
    }

    /// The agent engine, already shared.
    pub fn engine_arc(mut self, engine: Arc<dyn Engine>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Listen address (default `127.0.0.1:0`: a free port).
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.bind = addr.into();
        self
    }

    /// Replaces every setting.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adjusts settings in place.
    pub fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// The HS256 secret (default: generated once and kept in the store).
    pub fn jwt_secret(mut self, secret: impl Into<String>) -> Self {
        self.config.jwt_secret = Some(SecretString::new(secret));
        self
    }

    /// Opens the store and builds the shared state, without listening
    /// (the binary's `bootstrap` subcommand uses this).
    pub async fn build_state(self) -> io::Result<(AppState, ShutdownSignals)> {
        let store = store::open(&self.store).await.map_err(io_error)?;
        let secret = resolve_jwt_secret(store.as_ref(), &self.config).await?;
        for previous in &self.config.jwt_previous_secrets {
            check_secret_length(previous.expose())?;
        }
        let previous: Vec<&[u8]> = self
            .config
            .jwt_previous_secrets
            .iter()
            .map(|s| s.expose().as_bytes())
            .collect();
        let jwt = JwtKeys::rotating(secret.as_bytes(), &previous)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (drain_tx, drain_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let config = self.config;
        let dummy_password_hash = crate::password::dummy_hash(config.password_hashing);
        let limits = &config.limits;
        let metrics = Metrics::default();
        let hubs = Hubs::new(
            config.replay_max_notifications,
            config.replay_max_age,
            config.base_protocol,
            metrics.replay_gauge(),
        );
        let rate_limiter = RateLimiter::new(
            config.rate_limit_requests,
            config.rate_limit_window,
            limits.rate_limiter_capacity,
        );
        let (hubs, rate_limiter, sockets_per_org) = match &config.hub {
            None => (hubs, rate_limiter, OrgSockets::local()),
            Some(url) => {
                let backend = RedisBackend::connect(RedisHubConfig {
                    url: url.clone(),
                    lease: config.hub_lease,
                    replay_len: config.replay_max_notifications,
                    replay_age: config.replay_max_age,
                    base_protocol: config.base_protocol,
                })
                .await
                // The error names the host, never the password.
                .map_err(|e| io::Error::other(format!("Redis hub: {e}")))?;
                tracing::info!("hub: Redis (shared by every instance on it)");
                // The REST rate limits hold for the cluster, not per instance.
                let rate_limiter = rate_limiter.shared_through(backend.clone());
                // So do the socket caps per org.
                let sockets_per_org = OrgSockets::shared_through(backend.clone());
                (hubs.with_redis(backend), rate_limiter, sockets_per_org)
            }
        };
        if let Some(secret) = &config.webhooks.secret {
            if secret.len() < crate::engine::webhook::MIN_SECRET_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the webhook secret must be at least {} bytes \
                         (e.g. `openssl rand -base64 48`)",
                        crate::engine::webhook::MIN_SECRET_BYTES
                    ),
                ));
            }
        }
        let webhooks = Arc::new(WebhookTools::new(
            config.webhooks.clone(),
            metrics.webhook_counter(),
        ));
        let state = Arc::new(ServerState {
            jwt,
            store,
            engine: self
                .engine
                .unwrap_or_else(|| Arc::new(ScriptedEngine::default())),
            metrics,
            webhooks,
            rate_limiter,
            hubs,
            shutdown: drain_rx,
            stop: stop_rx,
            shutting_down: AtomicBool::new(false),
            generations_cut: AtomicBool::new(false),
            sessions: SessionTracker::default(),
            dummy_password_hash,
            hash_slots: tokio::sync::Semaphore::new(limits.password_hash_concurrency.max(1)),
            tcp_per_ip: Arc::new(KeyedCounter::default()),
            sockets_per_ip: Arc::new(KeyedCounter::default()),
            sockets_per_org,
            revocations: tokio::sync::broadcast::channel(1024).0,
            config,
        });
        Ok((
            state,
            ShutdownSignals {
                drain: drain_tx,
                stop: stop_tx,
            },
        ))
    }

    /// Binds, starts serving in the background, and returns a handle.
    pub async fn spawn(self) -> io::Result<ServerHandle> {
        let bind = self.bind.clone();
        let (state, signals) = self.build_state().await?;
        let listener = tokio::net::TcpListener::bind(&bind).await?;
        let addr = listener.local_addr()?;
        let app = crate::rest::router(state.clone());
        let server = tokio::spawn(accept_loop(listener, app, state.clone()));
        let metrics_addr = match &state.config.metrics_bind {
            Some(bind) => {
                let listener = tokio::net::TcpListener::bind(bind).await?;
                let metrics_addr = listener.local_addr()?;
                let app = crate::rest::metrics_router(state.clone());
                // Served through the drain, so it can be watched.
                let mut stop = state.stop.clone();
                tokio::spawn(async move {
                    let graceful = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    if let Err(e) = axum::serve(listener, app)
                        .with_graceful_shutdown(graceful)
                        .await
                    {
                        tracing::error!(error = %e, "metrics listener stopped with an error");
                    }
                });
                tracing::info!(%metrics_addr, "metrics listening");
                Some(metrics_addr)
            }
            None => None,
        };
        let sweeper_state = state.clone();
        let sweeper = tokio::spawn(async move {
            let mut stop = sweeper_state.stop.clone();
            loop {
                tokio::select! {
                    _ = stopped(&mut stop) => break,
                    _ = tokio::time::sleep(SWEEP_EVERY) => {
                        sweeper_state.hubs.sweep();
                        match sweeper_state.store.purge_expired(unix_now()).await {
                            Ok(0) => {}
                            Ok(n) => tracing::debug!(rows = n, "purged expired keys and tokens"),
                            Err(e) => tracing::warn!(error = %e, "purge of expired keys failed"),
                        }
                    }
                }
            }
        });
        tracing::info!(%addr, "tokenrelay server listening");
        Ok(ServerHandle {
            addr,
            metrics_addr,
            state,
            signals,
            server,
            sweeper,
        })
    }
}

/// The two phases of a shutdown, as signals to the tasks of a server:
/// [`ServerState::shutdown`](crate::state::ServerState::shutdown) (the
/// drain begins) and [`ServerState::stop`](crate::state::ServerState::stop)
/// (it has ended). [`ServerHandle::shutdown`] sends them; whoever holds
/// them from [`ServerBuilder::build_state`] keeps them while the state
/// serves, since dropping them reads, to every task, as both signals.
#[derive(Debug)]
pub struct ShutdownSignals {
    drain: watch::Sender<bool>,
    stop: watch::Sender<bool>,
}

/// Resolves once `stop` flips to true. (The guard `wait_for` returns is
/// dropped in here: it is not `Send`, and a `select!` would hold it across
/// its branch's awaits.)
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn check_secret_length(secret: &str) -> io::Result<()> {
    if secret.len() < MIN_JWT_SECRET_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a JWT secret must be at least {MIN_JWT_SECRET_BYTES} bytes \
                 (e.g. `openssl rand -base64 48`)"
            ),
        ));
    }
    Ok(())
}

fn generate_secret() -> String {
    let bytes: [u8; 48] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The signing secret: configured, else from its file (created with a
/// fresh secret, mode 0600, when missing), else from the store (generated
/// and saved there on first start).
async fn resolve_jwt_secret(store: &dyn Store, config: &Config) -> io::Result<String> {
    let configured = config.jwt_secret.as_ref().map(SecretString::expose);
    if let Some(secret) = configured.filter(|s| !s.is_empty()) {
        check_secret_length(secret)?;
        return Ok(secret.to_owned());
    }
    if let Some(path) = &config.jwt_secret_file {
        return secret_from_file(path);
    }
    if let Some(secret) = store
        .get_setting(JWT_SECRET_SETTING)
        .await
        .map_err(io_error)?
    {
        check_secret_length(&secret)?;
        return Ok(secret);
    }
    // Set once: instances starting together on a fresh shared store
    // (PostgreSQL) all end up signing with whichever secret was written
    // first.
    let generated = generate_secret();
    let secret = store
        .put_setting_if_absent(JWT_SECRET_SETTING, &generated)
        .await
        .map_err(io_error)?;
    if secret == generated {
        tracing::info!("generated a JWT secret and saved it in the store");
    }
    check_secret_length(&secret)?;
    Ok(secret)
}

fn secret_from_file(path: &std::path::Path) -> io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim().to_owned();
            check_secret_length(&secret)?;
            Ok(secret)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let secret = generate_secret();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path)?;
            io::Write::write_all(&mut file, secret.as_bytes())?;
            tracing::info!(path = %path.display(), "generated a JWT secret in its file");
            Ok(secret)
        }
        Err(e) => Err(e),
    }
}

/// Accepts TCP connections and serves HTTP/1.1 (with WebSocket upgrades)
/// on each. Written out instead of `axum::serve` for what that one does
/// not set: `TCP_NODELAY` (a token is one small write; Nagle's algorithm
/// would hold it back for the peer's delayed ACK), a deadline for request
/// headers (slowloris), a per-address connection cap, and the peer
/// address on every request for per-IP limits.
async fn accept_loop(listener: tokio::net::TcpListener, app: axum::Router, state: AppState) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    // Until the drain has ended, not when it begins: meanwhile REST keeps
    // answering (reads, and a 503 for what would start a generation or a
    // socket).
    let mut stop = state.stop.clone();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, most likely: the sockets
                    // that hold them must close first, so wait a moment
                    // instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let limits = &state.config.limits;
        let Some(slot) = state
            .tcp_per_ip
            .try_enter(&peer.ip().to_string(), limits.max_tcp_connections_per_ip)
        else {
            state.metrics.refused("tcp_per_ip");
            tracing::debug!(%peer, "connection refused: max_tcp_connections_per_ip");
            continue;
        };
        if let Err(e) = stream.set_nodelay(state.config.tcp_nodelay) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(PeerAddr(peer));
            app.clone().oneshot(request)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.http_header_timeout);
        let mut stop = state.stop.clone();
        tokio::spawn(async move {
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::trace!(error = %e, "connection ended with an error");
                    }
                }
                _ = stopped(&mut stop) => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            // An upgraded connection ends here too: from now on the
            // WebSocket session counts it (per-IP and per-org caps).
            drop(slot);
        });
    }
}

/// Creates an org and its first org API key. Returns `(org_id, org_key)`.
pub async fn bootstrap_org(state: &AppState, name: &str) -> io::Result<(String, String)> {
    let org = OrgRecord {
        org_id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        credits: None,
        created_at: unix_now(),
    };
    state.store.create_org(&org).await.map_err(io_error)?;
    let key = mint_api_key(
        state,
        &org.org_id,
        KeyKind::Org,
        None,
        None,
        state.config.org_key_ttl_secs,
        None,
    )
    .await
    .map_err(io_error)?;
    tracing::info!(org_id = %org.org_id, api_key_id = %key.record.api_key_id, "org bootstrapped");
    Ok((org.org_id, key.token))
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: AppState,
    signals: ShutdownSignals,
    server: JoinHandle<()>,
    sweeper: JoinHandle<()>,
}

impl ServerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served when `metrics_bind` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// `http://ADDR`, the base of every REST route.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://ADDR/ws`, the WebSocket endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The shared state (store, metrics, config), for tests and tools.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Creates an org and its first org API key: `(org_id, org_key)`.
    pub async fn bootstrap_org(&self, name: &str) -> io::Result<(String, String)> {
        bootstrap_org(&self.state, name).await
    }

    /// Mints a client key without going through REST (tests, demos).
    pub async fn mint_client_key(
        &self,
        org_id: &str,
        context_id: Option<&str>,
        ttl_secs: u64,
    ) -> io::Result<String> {
        mint_api_key(
            &self.state,
            org_id,
            KeyKind::Client,
            None,
            context_id.map(str::to_owned),
            ttl_secs,
            None,
        )
        .await
        .map(|k| k.token)
        .map_err(io_error)
    }

    /// Sets an org's credit balance (`None` = unlimited).
    pub async fn set_credits(&self, org_id: &str, credits: Option<i64>) -> io::Result<()> {
        self.state
            .store
            .set_credits(org_id, credits)
            .await
            .map_err(io_error)
    }

    /// Stops the server without losing a reply, in two phases.
    ///
    /// **The drain.** New sockets and new generations are refused (HTTP
    /// 503), `/ready` answers 503, and every socket is closed with 1001,
    /// which every SDK reads as "reconnect and resume" (behind a balancer:
    /// on another instance). Generations already queued or running go on:
    /// their notifications still reach the hub, so with a Redis hub a
    /// client that resumed elsewhere gets the rest of the reply exactly,
    /// and with either hub the finished reply is saved in the history.
    /// Whatever is still running after `Config::drain_timeout` is cut: it
    /// ends with `stop_reason: shutdown` (SDKs: `interrupted`), its partial
    /// text saved.
    ///
    /// **The stop.** The listeners close, REST requests in flight finish,
    /// the store is flushed. Returns when all of that is done.
    pub async fn shutdown(self) {
        let state = self.state;
        let began = std::time::Instant::now();
        let drain_timeout = state.config.drain_timeout;
        state.shutting_down.store(true, Ordering::SeqCst);
        let in_flight = generations_in_flight(&state);
        tracing::info!(
            generations = in_flight,
            sockets = state.sessions.open(),
            drain_timeout_secs = drain_timeout.as_secs_f64(),
            "drain started: refusing new sockets and generations, sockets told to reconnect elsewhere (1001)"
        );
        let _ = self.signals.drain.send(true);
        let finished_in_time = tokio::time::timeout(drain_timeout, generations_ended(&state))
            .await
            .is_ok();
        // Sockets closed at the drain's start; wait for them before any
        // cut, so a client sees its socket go away (and resumes) rather
        // than a stop arriving on a socket about to close.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, state.sessions.wait_idle()).await;
        let cut = if finished_in_time {
            0
        } else {
            let cut = generations_in_flight(&state);
            state.generations_cut.store(true, Ordering::SeqCst);
            tracing::warn!(
                generations = cut,
                "drain timeout lapsed: cutting the generations still in flight (stop_reason shutdown)"
            );
            // Again on every poll: a queued generation that took its turn
            // just before the flag was set starts running after this.
            let cutting = async {
                while generations_in_flight(&state) > 0 {
                    for hub in state.hubs.all() {
                        hub.stop_local();
                    }
                    tokio::time::sleep(DRAIN_POLL).await;
                }
            };
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, cutting).await;
            cut
        };
        let finished = in_flight.saturating_sub(cut);
        state.metrics.drain_ended(finished as u64, cut as u64);
        tracing::info!(
            finished,
            cut,
            secs = began.elapsed().as_secs_f64(),
            "drain ended"
        );

        let _ = self.signals.stop.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.server).await;
        // REST requests in flight finish (each connection closes after
        // its current request once the stop began).
        let http_drained = async {
            while state.tcp_per_ip.keys() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, http_drained).await;
        self.sweeper.abort();
        if let Err(e) = state.store.flush().await {
            tracing::error!(error = %e, "store flush failed");
        }
        tracing::info!("tokenrelay server stopped");
    }
}

/// Generations of this instance queued or running, over every hub.
fn generations_in_flight(state: &AppState) -> usize {
    state
        .hubs
        .all()
        .iter()
        .map(|h| h.pending().load(Ordering::SeqCst))
        .sum()
}

/// Resolves once this instance has no generation queued or running. (A
/// poll: generations end rarely and the drain's bound is seconds, so a
/// notification per hub would buy nothing.)
async fn generations_ended(state: &AppState) {
    while generations_in_flight(state) > 0 {
        tokio::time::sleep(DRAIN_POLL).await;
    }
}
