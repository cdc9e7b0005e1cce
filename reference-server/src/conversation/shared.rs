//! The seam between a context's live state and where it is kept: the
//! [`Hub`] trait. Today one implementation, [`LocalHub`](super::LocalHub),
//! keeps everything in this process (the embedded default). A cluster
//! (issue #14) needs the parts every instance must agree on (`seq`
//! numbering, the replay buffer, fan-out to sockets attached anywhere,
//! the generation lock, the running reply, idempotency keys) in a shared
//! service; the methods that would talk to it are `async` for that reason,
//! while what only concerns this instance's sockets and tasks
//! (subscriber ids, queued-generation counts) stays synchronous.

use std::any::Any;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use tokenrelay::wire::Notification;

use super::hub::{Fault, Running, Subscription};

/// Holding one lets a generation run; dropping it lets the next one in.
/// Opaque, so an implementation can make it a lease it renews.
pub type Turn = Box<dyn Any + Send + Sync>;

/// One context's live state, wherever it is kept. See the module docs of
/// `conversation`.
#[async_trait]
pub trait Hub: Send + Sync + 'static {
    /// The context.
    fn context_id(&self) -> &str;

    /// Its org.
    fn org_id(&self) -> &str;

    /// Generations queued or running on this instance (bounded by
    /// `max_pending_invocations`; an idle sweep leaves the hub alone while
    /// it is above zero).
    fn pending(&self) -> &AtomicUsize;

    /// Numbers a notification, keeps it for replay and sends it to every
    /// attached socket. Returns the `seq` and how many sockets the frame
    /// was queued for (on this instance).
    async fn publish(&self, notification: Notification<'_>) -> (u64, usize);

    /// Attaches a socket with a queue of `queue` frames; with
    /// `resume_after`, the frames it missed come first, and nothing falls
    /// between them and the live ones.
    async fn subscribe(&self, resume_after: Option<u64>, queue: usize) -> Subscription;

    /// Detaches a socket of this instance.
    fn unsubscribe(&self, id: u64);

    /// Queues `frame` for one socket of this instance, after what is
    /// already queued for it. False when it is gone or too far behind.
    fn send_to(&self, subscriber: u64, frame: Utf8Bytes) -> bool;

    /// Delivers a test fault to the sockets of this instance; how many.
    fn inject_fault(&self, fault: Fault) -> usize;

    /// Waits for the context's generation turn (generations of one context
    /// run one at a time, in arrival order).
    async fn turn(&self) -> Turn;

    /// Records the generation streaming now (`None` when it ended).
    async fn set_running(&self, running: Option<Running>);

    /// Stops the running generation, if any. True if one was running.
    async fn stop_running(&self) -> bool;

    /// Id of the response streaming now.
    async fn running_response(&self) -> Option<String>;

    /// The highest `seq` issued.
    async fn last_seq(&self) -> u64;

    /// Marks the greeting as started; false if it already was.
    async fn mark_greeted(&self) -> bool;

    /// Claims idempotency `key` for a new response `response_id`: `None`
    /// when the key is new (now remembered: at most `max` keys, each for
    /// `ttl`), else the response the key started before. Atomic: two
    /// sockets repeating a key at once cannot both run it.
    async fn claim_key(
        &self,
        key: &str,
        response_id: &str,
        max: usize,
        ttl: Duration,
    ) -> Option<String>;

    /// Forgets `key` (its invocation was refused, so a retry may run).
    async fn release_key(&self, key: &str);

    /// True when nothing needs this hub kept in memory: no socket, no
    /// generation, nothing this instance must still replay.
    fn is_idle(&self) -> bool;
}
