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

use crate::auth::mint_api_key;
use crate::config::Config;
use crate::conversation::Hubs;
use crate::engine::{Engine, ScriptedEngine};
use crate::jwt::JwtKeys;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::state::{AppState, ServerState, SessionTracker};
use crate::store::{self, KeyKind, OrgRecord, Store, StoreConfig};
use crate::time::unix_now;

/// Store setting holding the generated JWT secret.
const JWT_SECRET_SETTING: &str = "jwt_secret";
/// How long shutdown waits for sockets and generations to wind down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
        self.config.jwt_secret = Some(secret.into());
        self
    }

    /// Opens the store and builds the shared state, without listening
    /// (the binary's `bootstrap` subcommand uses this).
    pub async fn build_state(self) -> io::Result<(AppState, watch::Sender<bool>)> {
        let store = store::open(&self.store).map_err(io_error)?;
        let secret = resolve_jwt_secret(store.as_ref(), self.config.jwt_secret.as_deref()).await?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let config = self.config;
        let dummy_password_hash = crate::password::dummy_hash(config.password_hashing);
        let state = Arc::new(ServerState {
            jwt: JwtKeys::new(secret.as_bytes()),
            store,
            engine: self
                .engine
                .unwrap_or_else(|| Arc::new(ScriptedEngine::default())),
            metrics: Metrics::default(),
            rate_limiter: RateLimiter::new(config.rate_limit_requests, config.rate_limit_window),
            hubs: Hubs::new(config.replay_max_notifications, config.replay_max_age),
            shutdown: shutdown_rx,
            shutting_down: AtomicBool::new(false),
            sessions: SessionTracker::default(),
            dummy_password_hash,
            config,
        });
        Ok((state, shutdown_tx))
    }

    /// Binds, starts serving in the background, and returns a handle.
    pub async fn spawn(self) -> io::Result<ServerHandle> {
        let bind = self.bind.clone();
        let (state, shutdown_tx) = self.build_state().await?;
        let listener = tokio::net::TcpListener::bind(&bind).await?;
        let addr = listener.local_addr()?;
        let app = crate::rest::router(state.clone());
        let mut stop = state.shutdown.clone();
        let server = tokio::spawn(async move {
            let graceful = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await
            {
                tracing::error!(error = %e, "server stopped with an error");
            }
        });
        let sweeper_state = state.clone();
        let sweeper = tokio::spawn(async move {
            let mut stop = sweeper_state.shutdown.clone();
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(Duration::from_secs(30)) => sweeper_state.hubs.sweep(),
                }
            }
        });
        tracing::info!(%addr, "tokenrelay server listening");
        Ok(ServerHandle {
            addr,
            state,
            shutdown_tx,
            server,
            sweeper,
        })
    }
}

async fn resolve_jwt_secret(store: &dyn Store, configured: Option<&str>) -> io::Result<String> {
    if let Some(secret) = configured.filter(|s| !s.is_empty()) {
        return Ok(secret.to_owned());
    }
    if let Some(secret) = store
        .get_setting(JWT_SECRET_SETTING)
        .await
        .map_err(io_error)?
    {
        return Ok(secret);
    }
    let bytes: [u8; 48] = rand::random();
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    store
        .put_setting(JWT_SECRET_SETTING, &secret)
        .await
        .map_err(io_error)?;
    tracing::info!("generated a JWT secret and saved it in the store");
    Ok(secret)
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
    )
    .await
    .map_err(io_error)?;
    tracing::info!(org_id = %org.org_id, api_key_id = %key.record.api_key_id, "org bootstrapped");
    Ok((org.org_id, key.token))
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    server: JoinHandle<()>,
    sweeper: JoinHandle<()>,
}

impl ServerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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

    /// Stops the server: sockets close with 1001, running responses stop
    /// (their partial text is saved), the store is flushed.
    pub async fn shutdown(self) {
        let state = self.state;
        state.shutting_down.store(true, Ordering::SeqCst);
        let _ = self.shutdown_tx.send(true);
        for hub in state.hubs.all() {
            hub.stop_running();
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, state.sessions.wait_idle()).await;
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.server).await;
        self.sweeper.abort();
        let drained = async {
            while state
                .hubs
                .all()
                .iter()
                .any(|h| h.pending.load(Ordering::SeqCst) > 0)
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, drained).await;
        if let Err(e) = state.store.flush().await {
            tracing::error!(error = %e, "store flush failed");
        }
        tracing::info!("tokenrelay server stopped");
    }
}
