//! The hub in Redis (`--hub redis://…`), shared by every instance of a
//! cluster: [`RedisBackend`] is this instance's connection to it (one
//! multiplexed connection for commands, one pub/sub connection for live
//! frames, a watchdog for generations whose instance died), and
//! [`RedisHub`] one context's [`Hub`](super::Hub) on it. What lives where
//! and why: `docs/decisions.md`, "Redis hub".

mod fallback;
mod hub;
mod scripts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;

pub use fallback::{Fallback, SHARED_RETRY, SHARED_TIMEOUT};
use hub::Core;
pub use hub::RedisHub;

/// Prefix of every key and channel the hub uses.
const PREFIX: &str = "tokenrelay";

/// How long a generation's lease lasts unless renewed (a third of it
/// apart), when the config does not say.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);

/// The settings of a Redis hub.
#[derive(Clone)]
pub struct RedisHubConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// A generation's lease: renewed every third of it while the reply
    /// streams; when its instance dies, another takes it over at most
    /// `lease` plus half of it later and ends the reply.
    pub lease: Duration,
    /// Replay stream bound by count (`replay_max_notifications`), trimmed
    /// approximately (`MAXLEN ~`: whole listpack nodes, far cheaper for
    /// Redis than exact trimming), so a stream may keep somewhat more.
    pub replay_len: usize,
    /// Replay stream bound by age (`replay_max_age`).
    pub replay_age: Duration,
    /// Frame as the base protocol does (no `seq`, nothing kept).
    pub base_protocol: bool,
}

// By hand: the URL may carry a password, masked as `print-config` masks it.
impl std::fmt::Debug for RedisHubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHubConfig")
            .field("url", &crate::store::mask_dsn(&self.url))
            .field("lease", &self.lease)
            .field("replay_len", &self.replay_len)
            .field("replay_age", &self.replay_age)
            .field("base_protocol", &self.base_protocol)
            .finish()
    }
}

/// This instance's connection to the shared hub.
pub struct RedisBackend {
    conn: ConnectionManager,
    config: RedisHubConfig,
    /// Unique per process: lease holders are `instance/uuid`.
    instance: String,
    /// The contexts live on this instance, for the pub/sub pump and the
    /// watchdog. Weak: a hub swept from [`Hubs`](super::Hubs) goes.
    live: Mutex<HashMap<String, Weak<Core>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

fn channel_pattern() -> String {
    format!("{PREFIX}:live:*")
}

fn channel_of(context_id: &str) -> String {
    format!("{PREFIX}:live:{context_id}")
}

/// The keys of an org's socket counts (instance → sockets) and of its
/// instances' liveness; `{…}`: one Redis Cluster slot, for one script.
fn org_socket_keys(org_id: &str) -> (String, String) {
    (
        format!("{PREFIX}:{{org:{org_id}}}:sockets"),
        format!("{PREFIX}:{{org:{org_id}}}:alive"),
    )
}

/// A key of a context; `{…}` keeps a context's keys in one Redis Cluster
/// slot, so its scripts may touch them together.
fn key(context_id: &str, what: &str) -> String {
    format!("{PREFIX}:{{{context_id}}}:{what}")
}

/// How the shared connection reconnects. A command sent while Redis is
/// away waits for the manager's reconnection: with the crate's default (six
/// retries, 0.1 s doubling) that was ~9.5 s per command, so a socket
/// attaching while Redis was down hung that long before its close code.
/// Two quick retries (0.1 s, 0.2 s) fail such a command in well under a
/// second; the next command tries again, so recovery needs no retry loop
/// here.
fn manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
        .set_connection_timeout(Some(Duration::from_secs(1)))
}

impl RedisBackend {
    /// Connects (both connections, so a wrong URL fails the start, not the
    /// first socket) and starts the pub/sub pump and the lease watchdog.
    pub async fn connect(config: RedisHubConfig) -> redis::RedisResult<Arc<RedisBackend>> {
        let client = redis::Client::open(config.url.as_str())?;
        let conn = client
            .get_connection_manager_with_config(manager_config())
            .await?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.psubscribe(channel_pattern()).await?;
        let backend = Arc::new(RedisBackend {
            conn,
            config,
            instance: uuid::Uuid::new_v4().to_string(),
            live: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let pump = tokio::spawn(pump(client, pubsub, Arc::downgrade(&backend)));
        let watchdog = tokio::spawn(watchdog(Arc::downgrade(&backend)));
        backend
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend([pump, watchdog]);
        Ok(backend)
    }

    /// Counts one request of rate-limit `key` in a fixed `window` that
    /// every instance on this Redis shares: how many requests the window
    /// has counted (this one included) and how long it has left. The key
    /// is stored hashed (a fixed size, whatever the caller's input).
    pub async fn count_request(
        &self,
        key: &str,
        window: Duration,
    ) -> redis::RedisResult<(u64, Duration)> {
        let window_ms = window.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        let hashed = crate::secret::sha256_hex(key);
        let (count, left_ms): (u64, i64) = scripts::RATE_WINDOW
            .key(format!("{PREFIX}:rate:{}", &hashed[..32]))
            .arg(window_ms)
            .invoke_async(&mut self.conn())
            .await?;
        Ok((count, Duration::from_millis(left_ms.max(0) as u64)))
    }

    /// Counts one more socket of `org_id` on this instance unless the org
    /// already has `max` on the live instances of the cluster (`max == 0`:
    /// no cap): true when counted. Each instance's count stops counting
    /// one lease after its last beat ([`RedisBackend::beat_org_sockets`]),
    /// so a dead instance's sockets free the org's slots by then.
    pub async fn enter_org_socket(&self, org_id: &str, max: usize) -> redis::RedisResult<bool> {
        let (counts, seen) = org_socket_keys(org_id);
        let entered: i64 = scripts::SOCKET_ENTER
            .key(counts)
            .key(seen)
            .arg(&self.instance)
            .arg(max)
            .arg(self.lease_ms())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(entered == 1)
    }

    /// One socket of `org_id` counted by [`RedisBackend::enter_org_socket`]
    /// closed.
    pub async fn leave_org_socket(&self, org_id: &str) -> redis::RedisResult<()> {
        let (counts, _) = org_socket_keys(org_id);
        scripts::SOCKET_LEAVE
            .key(counts)
            .arg(&self.instance)
            .invoke_async::<i64>(&mut self.conn())
            .await?;
        Ok(())
    }

    /// This instance's beat: for each org, its true count of sockets here
    /// (0 removes the instance from the org), alive for one more lease.
    /// One round trip for all of them.
    pub async fn beat_org_sockets(&self, counts: &[(String, usize)]) -> redis::RedisResult<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (org_id, n) in counts {
            let (count_key, seen_key) = org_socket_keys(org_id);
            pipe.cmd("EVAL")
                .arg(scripts::SOCKETS_BEAT)
                .arg(2)
                .arg(count_key)
                .arg(seen_key)
                .arg(&self.instance)
                .arg(*n)
                .arg(self.lease_ms())
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn()).await
    }

    /// The lease that keeps this instance's counts alive, and its beat
    /// (a third of it).
    pub fn lease(&self) -> Duration {
        self.config.lease
    }

    fn lease_ms(&self) -> u64 {
        self.config.lease.as_millis().clamp(1, u128::from(u64::MAX)) as u64
    }

    fn conn(&self) -> ConnectionManager {
        // A clone shares the one multiplexed connection.
        self.conn.clone()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Core>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live_cores(&self) -> Vec<Arc<Core>> {
        self.live().values().filter_map(Weak::upgrade).collect()
    }

    fn core(&self, context_id: &str) -> Option<Arc<Core>> {
        self.live().get(context_id).and_then(Weak::upgrade)
    }

    /// Every socket of this instance is detached: live frames may have been
    /// lost, so their clients reconnect and resume from the stream.
    fn detach_everyone(&self) {
        for core in self.live_cores() {
            core.detach_all();
        }
    }
}

/// Delivers live frames from the pub/sub connection to this instance's
/// sockets. When that connection is lost, frames published meanwhile
/// never arrive: every socket is detached (its client resumes from the
/// replay stream), and the pump reconnects.
async fn pump(client: redis::Client, pubsub: redis::aio::PubSub, backend: Weak<RedisBackend>) {
    let (_sink, mut stream) = pubsub.split();
    let mut backoff = Duration::from_millis(50);
    let live_prefix = format!("{PREFIX}:live:");
    loop {
        while let Some(msg) = stream.next().await {
            let Some(backend) = backend.upgrade() else {
                return;
            };
            let channel = msg.get_channel_name();
            let Some(context_id) = channel.strip_prefix(live_prefix.as_str()) else {
                continue;
            };
            if let Some(core) = backend.core(context_id) {
                core.on_message(msg.get_payload_bytes());
            }
        }
        let Some(b) = backend.upgrade() else {
            return;
        };
        tracing::warn!("lost the Redis pub/sub connection; sockets detached to resume");
        b.detach_everyone();
        drop(b);
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            let next = async {
                let mut p = client.get_async_pubsub().await?;
                p.psubscribe(channel_pattern()).await?;
                Ok::<_, redis::RedisError>(p)
            };
            match next.await {
                Ok(p) => {
                    let (_, s) = p.split();
                    stream = s;
                    backoff = Duration::from_millis(50);
                    // Sockets that attached while it was down missed
                    // frames too.
                    if let Some(b) = backend.upgrade() {
                        b.detach_everyone();
                    }
                    tracing::info!("Redis pub/sub connection back");
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "Redis pub/sub reconnect failed"),
            }
        }
    }
}

/// Every half lease, for each context live here: a reply recorded as
/// running whose lease nobody holds lost its instance; take the lease and
/// end the reply (`reason: error`) so no client waits on it forever.
async fn watchdog(backend: Weak<RedisBackend>) {
    loop {
        let every = match backend.upgrade() {
            Some(b) => b.config.lease / 2,
            None => return,
        };
        tokio::time::sleep(every.max(Duration::from_millis(50))).await;
        let Some(b) = backend.upgrade() else {
            return;
        };
        for core in b.live_cores() {
            if let Err(e) = core.take_over_orphan(&b).await {
                tracing::warn!(context_id = %core.context_id, error = %e, "lease check failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_the_urls_password() {
        let config = RedisHubConfig {
            url: "redis://app:hunter2-secret@10.0.0.5:6379/0".into(),
            lease: DEFAULT_LEASE,
            replay_len: 10,
            replay_age: Duration::from_secs(60),
            base_protocol: false,
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis://app:***@10.0.0.5:6379/0"), "{shown}");
    }
}
