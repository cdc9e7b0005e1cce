//! The state every handler shares.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{broadcast, watch, Notify, Semaphore};

use crate::admission::{KeyedCounter, OrgSockets};
use crate::auth::Revoked;

use crate::config::Config;
use crate::conversation::Hubs;
use crate::engine::{Engine, WebhookTools};
use crate::jwt::JwtKeys;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::store::Store;

/// Shared server state, behind an `Arc` in every handler.
pub struct ServerState {
    /// Settings.
    pub config: Config,
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// JWT signing and verification.
    pub jwt: JwtKeys,
    /// The agent engine.
    pub engine: Arc<dyn Engine>,
    /// Runs server tools whose definition names a webhook.
    pub webhooks: Arc<WebhookTools>,
    /// `/metrics` counters.
    pub metrics: Metrics,
    /// Token and key route limits.
    pub rate_limiter: RateLimiter,
    /// Live per-context state (sequence numbers, replay, generations).
    pub hubs: Hubs,
    /// Flips to true when the drain starts (shutdown's first phase):
    /// sessions close with 1001, which every SDK reads as "reconnect (to
    /// another instance) and resume".
    pub shutdown: watch::Receiver<bool>,
    /// Flips to true when the drain has ended: the listeners and the
    /// sweeper stop, HTTP connections close after their request.
    pub stop: watch::Receiver<bool>,
    /// Set once the drain starts: no new sockets, no new generations
    /// (both refused with 503); those already running go on.
    pub shutting_down: AtomicBool,
    /// Set once the drain timeout lapsed: running generations are being
    /// stopped (`stop_reason: shutdown`) and queued ones end at once.
    pub generations_cut: AtomicBool,
    /// Open sessions, to wait for them on shutdown.
    pub sessions: SessionTracker,
    /// Argon2 hash verified for unknown users (equal timing).
    pub dummy_password_hash: String,
    /// Slots for password hashing (argon2id costs a core and ~19 MiB).
    pub hash_slots: Semaphore,
    /// Open TCP connections per peer address.
    pub tcp_per_ip: Arc<KeyedCounter>,
    /// Open WebSocket sessions per client address.
    pub sockets_per_ip: Arc<KeyedCounter>,
    /// Sockets attached to an org's contexts (with a Redis hub, counted
    /// for the cluster).
    pub sockets_per_org: OrgSockets,
    /// Credentials revoked while sockets may hold them.
    pub revocations: broadcast::Sender<Revoked>,
}

/// Shorthand used by handlers.
pub type AppState = Arc<ServerState>;

impl ServerState {
    /// Tells open sockets that a credential was revoked. (No receiver is
    /// fine: then no socket holds it.)
    pub fn announce_revoked(&self, revoked: Revoked) {
        let _ = self.revocations.send(revoked);
    }

    /// True once shutdown has begun (the drain included).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// True once the drain timeout lapsed and generations are cut.
    pub fn generations_cut(&self) -> bool {
        self.generations_cut.load(Ordering::SeqCst)
    }
}

/// Counts live WebSocket sessions so shutdown can wait for them to close.
#[derive(Default)]
pub struct SessionTracker {
    count: AtomicUsize,
    idle: Notify,
}

/// Held by a session; dropping it marks the session closed.
pub struct SessionGuard(AppState);

impl SessionTracker {
    /// Reserves a slot if fewer than `max` sessions are open.
    fn try_enter(&self, max: usize) -> bool {
        let mut current = self.count.load(Ordering::SeqCst);
        loop {
            if current >= max {
                return false;
            }
            match self.count.compare_exchange(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until no session is open.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl ServerState {
    /// Reserves a session slot, unless `max_connections` are open.
    pub fn enter_session(self: &Arc<Self>) -> Option<SessionGuard> {
        self.sessions
            .try_enter(self.config.max_connections)
            .then(|| SessionGuard(self.clone()))
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let tracker = &self.0.sessions;
        if tracker.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            tracker.idle.notify_waiters();
        }
    }
}
