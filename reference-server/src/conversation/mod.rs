//! Live state of conversations, independent of any socket: per context a
//! [`Hub`] (in this process: a [`LocalHub`]; with `--hub redis://…`, a
//! [`redis::RedisHub`] several instances share) numbers notifications (`seq`), keeps the replay buffer, fans
//! frames out to the sockets attached to it, and runs generations one at a
//! time. A generation belongs to the hub, not to the socket that asked for
//! it, so it keeps going (into the replay buffer) while no client is
//! connected.

pub mod generation;
pub mod hub;
pub mod redis;
pub mod replay;
pub mod shared;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use generation::{invoke, invoke_as, Invocation, Outcome};
pub use hub::{Armed, Fault, LocalHub, Outbound, Subscription};
pub use shared::{ArrivalOrder, Hub, Place, Turn};

use crate::metrics::ReplayGauge;
use crate::store::ContextRecord;

/// Every live hub, by context id.
pub struct Hubs {
    map: Mutex<HashMap<String, Arc<dyn Hub>>>,
    replay_len: usize,
    replay_age: Duration,
    base_protocol: bool,
    /// The server's count of notifications its local hubs buffer.
    replay_gauge: ReplayGauge,
    /// `Some`: hubs live in Redis (`--hub`), shared with other instances.
    redis: Option<Arc<redis::RedisBackend>>,
}

impl Hubs {
    /// An empty registry whose hubs keep `replay_len` notifications for
    /// `replay_age`, and frame them as the base protocol does when
    /// `base_protocol` (see [`Hub::publish`]), counting what those buffers
    /// hold in `replay_gauge` (the server's [`Metrics::replay_gauge`]).
    ///
    /// [`Metrics::replay_gauge`]: crate::metrics::Metrics::replay_gauge
    pub fn new(
        replay_len: usize,
        replay_age: Duration,
        base_protocol: bool,
        replay_gauge: ReplayGauge,
    ) -> Self {
        Hubs {
            map: Mutex::new(HashMap::new()),
            replay_len,
            replay_age,
            base_protocol,
            replay_gauge,
            redis: None,
        }
    }

    /// The same registry, its hubs kept in Redis (see [`redis`]).
    pub fn with_redis(mut self, backend: Arc<redis::RedisBackend>) -> Self {
        self.redis = Some(backend);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<dyn Hub>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hub of a context, created from its record if it is not live.
    pub fn get_or_create(&self, context: &ContextRecord) -> Arc<dyn Hub> {
        self.lock()
            .entry(context.context_id.clone())
            .or_insert_with(|| {
                if let Some(backend) = &self.redis {
                    return Arc::new(redis::RedisHub::new(backend.clone(), context))
                        as Arc<dyn Hub>;
                }
                let mut hub = LocalHub::new(
                    context.context_id.clone(),
                    context.org_id.clone(),
                    context.last_seq,
                    self.replay_len,
                    self.replay_age,
                    self.replay_gauge.clone(),
                );
                hub.base_protocol = self.base_protocol;
                Arc::new(hub) as Arc<dyn Hub>
            })
            .clone()
    }

    /// The hub of a context, if live.
    pub fn get(&self, context_id: &str) -> Option<Arc<dyn Hub>> {
        self.lock().get(context_id).cloned()
    }

    /// Forgets a hub (its context was deleted) and stops its generation.
    pub async fn remove(&self, context_id: &str) {
        let hub = self.lock().remove(context_id);
        if let Some(hub) = hub {
            hub.stop_running().await;
        }
    }

    /// Every live hub.
    pub fn all(&self) -> Vec<Arc<dyn Hub>> {
        self.lock().values().cloned().collect()
    }

    /// Drops hubs nobody needs: no socket, no generation, nothing left in
    /// the replay window. Their `seq` is in the store, so a later hub
    /// continues the numbering.
    pub fn sweep(&self) {
        self.lock().retain(|_, hub| !hub.is_idle());
    }
}
