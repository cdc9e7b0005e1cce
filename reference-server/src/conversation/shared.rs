//! The seam between a context's live state and where it is kept: the
//! [`Hub`] trait. [`LocalHub`](super::LocalHub) keeps everything in this
//! process (the embedded default); [`RedisHub`](super::redis::RedisHub)
//! keeps in Redis the parts every instance of a cluster (issue #14) must
//! agree on (`seq` numbering, the replay buffer, fan-out to sockets
//! attached anywhere, the generation lock, the running reply, idempotency
//! keys); the methods that talk to it are `async` for that reason,
//! while what only concerns this instance's sockets and tasks
//! (subscriber ids, queued-generation counts) stays synchronous.

use std::any::Any;
use std::borrow::Cow;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use tokenrelay::wire::{Notification, TokenParams};

use super::hub::{Fault, Running, Subscription};

/// A context's invocations in the order they arrived. Each invocation is
/// a task of its own, and the runtime starts tasks in any order, so
/// without this three messages flushed together by a reconnecting client
/// could run 3, 1, 2. An invocation joins the line where it arrives (in the
/// socket's order) and waits for the one before it to have taken its turn.
#[derive(Debug, Default)]
pub struct ArrivalOrder {
    /// Closed when the last invocation to join has taken its turn (or gave
    /// up: a dropped [`Place`] lets the next one go).
    tail: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl ArrivalOrder {
    /// Takes the next place in line. Synchronous: call it where the order
    /// is known, before the invocation's task is spawned.
    pub fn join(&self) -> Place {
        let (done, rx) = tokio::sync::oneshot::channel();
        let before = self
            .tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(rx);
        Place {
            before,
            _done: done,
        }
    }
}

/// One invocation's place in its context's [`ArrivalOrder`]. Drop it once
/// the invocation holds its [`Turn`]: the next one then queues for the turn
/// behind it.
#[derive(Debug)]
pub struct Place {
    before: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Dropping it wakes the next place in line.
    _done: tokio::sync::oneshot::Sender<()>,
}

impl Place {
    /// Waits until every invocation that arrived before this one has taken
    /// its turn.
    pub async fn wait(&mut self) {
        if let Some(before) = self.before.take() {
            // Err means the one before dropped its place: its turn is
            // taken, or it gave up; either way it is this one's go.
            let _ = before.await;
        }
    }
}

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

    /// The line this instance's invocations of the context wait in, so
    /// they take their [`turn`](Hub::turn) in the order they arrived (each
    /// is its own task, and tasks start in any order).
    fn arrival(&self) -> &ArrivalOrder;

    /// Numbers a notification, keeps it for replay and sends it to every
    /// attached socket. Returns the `seq` and how many sockets the frame
    /// was queued for (on this instance).
    async fn publish(&self, notification: Notification<'_>) -> (u64, usize);

    /// Publishes tokens of reply `response_id` that were ready together, in
    /// order, as [`Hub::publish`] would one at a time; returns how many
    /// frames were queued for sockets of this instance, all tokens
    /// together. The Redis hub numbers, keeps and sends them in one script
    /// call, so a reply faster than a round trip to Redis pays one round
    /// trip per batch rather than per token; the default publishes each.
    async fn publish_tokens(&self, response_id: &str, tokens: Vec<String>) -> usize {
        let mut queued = 0;
        for token in tokens {
            let (_, sockets) = self
                .publish(Notification::Token(TokenParams {
                    token: Cow::Owned(token),
                    response_id: Cow::Borrowed(response_id),
                    seq: None,
                }))
                .await;
            queued += sockets;
        }
        queued
    }

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

    /// Stops the running generation, if any, wherever it runs. True if one
    /// was running.
    async fn stop_running(&self) -> bool;

    /// Stops the generation running on this instance, if any (a stopping
    /// instance must not stop another's). True if one was running here.
    fn stop_local(&self) -> bool;

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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::ArrivalOrder;

    /// Tasks started in the reverse of their arrival still take the lock
    /// in arrival order. (Without the line, this runtime polls them in
    /// spawn order, 2, 1, 0.)
    #[tokio::test]
    async fn invocations_take_their_turn_in_arrival_order() {
        let line = ArrivalOrder::default();
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        let ran = Arc::new(Mutex::new(Vec::new()));
        let places: Vec<_> = (0..3).map(|i| (i, line.join())).collect();
        let mut tasks = Vec::new();
        for (i, mut place) in places.into_iter().rev() {
            let turn = turn.clone();
            let ran = ran.clone();
            tasks.push(tokio::spawn(async move {
                place.wait().await;
                let _turn = turn.lock_owned().await;
                drop(place);
                ran.lock().unwrap().push(i);
                // Hold the turn across a few polls of the others.
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*ran.lock().unwrap(), vec![0, 1, 2]);
    }

    /// A place given up (its task dropped) lets the next one go.
    #[tokio::test]
    async fn a_dropped_place_lets_the_next_one_go() {
        let line = ArrivalOrder::default();
        let first = line.join();
        let mut second = line.join();
        drop(first);
        second.wait().await;
    }
}
