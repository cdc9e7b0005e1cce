//! One context's live state, kept in this process: [`LocalHub`], the
//! embedded default implementation of [`Hub`]. See the module docs of
//! `conversation`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use tokenrelay::wire::Notification;
use tokio::sync::{mpsc, Notify};

use async_trait::async_trait;

use super::replay::ReplayBuffer;
use super::shared::{ArrivalOrder, Hub, Turn};
use crate::metrics::ReplayGauge;

/// What the hub sends to an attached socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// A sequenced notification frame.
    Frame(Utf8Bytes),
    /// A fault injected by the test hook (`POST /debug/faults`).
    Fault(Fault),
}

/// A transport fault the test hook can inject into a context's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Abort the TCP connection without a close frame.
    Drop,
    /// Close with this code.
    Close(u16),
    /// Take the next invocation, then drop the connection before answering
    /// it (the server got it; the client cannot know).
    DropBeforeAnswer,
    /// Drop the connection right after writing the next `on_stop_token`,
    /// before anything that trails it (on a base-protocol server: the
    /// reply's client-side tool calls, its events and the request's
    /// result). Armed until a stop comes.
    DropAfterStop,
}

impl Fault {
    /// Parses the scenario files' names: `drop`, `drop_before_answer`,
    /// `drop_after_stop`, `close_1001`, `close_1011`, `close_4001` (any
    /// `close_NNNN` in 1000..=4999).
    pub fn parse(name: &str) -> Option<Fault> {
        match name {
            "drop" => return Some(Fault::Drop),
            "drop_before_answer" => return Some(Fault::DropBeforeAnswer),
            "drop_after_stop" => return Some(Fault::DropAfterStop),
            _ => {}
        }
        let code: u16 = name.strip_prefix("close_")?.parse().ok()?;
        (1000..=4999).contains(&code).then_some(Fault::Close(code))
    }
}

/// The faults of the test hook that wait for their moment on one socket
/// (`drop_before_answer`, `drop_after_stop`), shared by the hub and the
/// socket's task. They are armed here at once, not queued, so the hook
/// answers only once they are in force: a message the test sends next
/// cannot reach the socket's task ahead of its fault.
#[derive(Debug, Default)]
pub struct Armed {
    before_answer: AtomicBool,
    after_stop: AtomicBool,
}

impl Armed {
    /// Arms `fault` if it is one that waits; false if it acts at once
    /// (those are queued behind the socket's frames instead).
    pub fn arm(&self, fault: Fault) -> bool {
        let flag = match fault {
            Fault::DropBeforeAnswer => &self.before_answer,
            Fault::DropAfterStop => &self.after_stop,
            Fault::Drop | Fault::Close(_) => return false,
        };
        flag.store(true, Ordering::Relaxed);
        true
    }

    /// `drop_before_answer` is armed: drop the socket once the next
    /// invocation has been taken, before answering it.
    pub fn before_answer(&self) -> bool {
        self.before_answer.load(Ordering::Relaxed)
    }

    /// `drop_after_stop` is armed: drop the socket right after writing the
    /// next `on_stop_token`, before what trails it.
    pub fn after_stop(&self) -> bool {
        self.after_stop.load(Ordering::Relaxed)
    }
}

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Outbound>,
    armed: Arc<Armed>,
}

/// The generation that is streaming now.
pub struct Running {
    /// The response it streams.
    pub response_id: String,
    /// Notified to stop it (a permit is kept if it is not waiting).
    pub stop: Arc<Notify>,
}

/// An invocation's idempotency key and the response it started.
struct Remembered {
    key: String,
    response_id: String,
    at: Instant,
}

struct Inner {
    /// Idempotency keys, oldest first (bounded by count and age).
    keys: std::collections::VecDeque<Remembered>,
    next_seq: u64,
    replay: ReplayBuffer,
    subscribers: Vec<Subscriber>,
    next_subscriber: u64,
    running: Option<Running>,
    greeted: bool,
}

/// A context's live state, in this process's memory.
pub struct LocalHub {
    /// The context.
    pub context_id: String,
    /// Its org.
    pub org_id: String,
    inner: Mutex<Inner>,
    /// Generations of one context run one at a time, in arrival order
    /// (tokio's mutex is fair), each seeing the history the previous left.
    generation_lock: Arc<tokio::sync::Mutex<()>>,
    /// Generations queued or running, so an idle sweep leaves them alone.
    pub(crate) pending: AtomicUsize,
    /// Invocations of this context waiting for their turn, in order.
    arrival: ArrivalOrder,
    /// Frame notifications as the base protocol does: no `seq` (nothing is
    /// kept for replay), `"id": null`.
    pub(crate) base_protocol: bool,
}

/// What attaching a socket to a hub gives it.
pub struct Subscription {
    /// Subscriber id, for [`Hub::unsubscribe`].
    pub id: u64,
    /// Live frames, in `seq` order. Closed when the socket was too slow
    /// (or a Redis hub lost Redis).
    pub rx: mpsc::Receiver<Outbound>,
    /// Frames to send first (resume), in `seq` order.
    pub replay: Vec<Utf8Bytes>,
    /// `Some` when the client asked to resume: whether nothing was lost.
    pub resumed: Option<bool>,
    /// The highest `seq` issued when the socket attached: replayed frames
    /// end there, live ones start after it.
    pub seq: u64,
    /// The test hook's waiting faults for this socket.
    pub armed: Arc<Armed>,
}

impl LocalHub {
    pub(crate) fn new(
        context_id: String,
        org_id: String,
        last_seq: u64,
        replay_len: usize,
        replay_age: Duration,
        replay_gauge: ReplayGauge,
    ) -> Self {
        LocalHub {
            context_id,
            org_id,
            inner: Mutex::new(Inner {
                keys: std::collections::VecDeque::new(),
                next_seq: last_seq + 1,
                replay: ReplayBuffer::new(replay_len, replay_age, replay_gauge),
                subscribers: Vec::new(),
                next_subscriber: 0,
                running: None,
                greeted: false,
            }),
            generation_lock: Arc::new(tokio::sync::Mutex::new(())),
            pending: AtomicUsize::new(0),
            arrival: ArrivalOrder::default(),
            base_protocol: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers a notification, keeps it for replay and sends it to every
    /// attached socket. A socket whose queue is full is detached (its
    /// channel closes, the session closes it with 1011, and the client
    /// resumes from the buffer). Returns the `seq` and how many sockets
    /// the frame was queued for.
    pub fn publish(&self, mut notification: Notification<'_>) -> (u64, usize) {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let frame = if self.base_protocol {
            // The hosted service's framing: `{"id": null, "method", "params"}`.
            let encoded = notification.encode();
            Utf8Bytes::from(format!(r#"{{"id":null,{}"#, &encoded[1..]))
        } else {
            notification.set_seq(seq);
            let frame = Utf8Bytes::from(notification.encode());
            inner.replay.push(seq, frame.clone(), Instant::now());
            frame
        };
        inner
            .subscribers
            .retain(|s| s.tx.try_send(Outbound::Frame(frame.clone())).is_ok());
        (seq, inner.subscribers.len())
    }

    /// Claims idempotency `key` for a new response `response_id`. `None`
    /// when the key is new (it is now remembered: at most `max` keys, each
    /// for `ttl`); else the response the key started before. One lock, so
    /// two sockets repeating a key at once cannot both run it.
    pub fn claim_key(
        &self,
        key: &str,
        response_id: &str,
        max: usize,
        ttl: Duration,
    ) -> Option<String> {
        let now = Instant::now();
        let mut inner = self.lock();
        while inner
            .keys
            .front()
            .is_some_and(|k| now.duration_since(k.at) > ttl)
        {
            inner.keys.pop_front();
        }
        if let Some(seen) = inner.keys.iter().find(|k| k.key == key) {
            return Some(seen.response_id.clone());
        }
        if max == 0 {
            return None;
        }
        while inner.keys.len() >= max {
            inner.keys.pop_front();
        }
        inner.keys.push_back(Remembered {
            key: key.to_owned(),
            response_id: response_id.to_owned(),
            at: now,
        });
        None
    }

    /// Forgets `key` (its invocation was refused, so a retry may run).
    pub fn release_key(&self, key: &str) {
        self.lock().keys.retain(|k| k.key != key);
    }

    /// Queues `frame` for one attached socket, after the notifications
    /// already queued for it (the base protocol's late results go this
    /// way, so they follow the reply they answer). False when that socket
    /// is gone or too far behind.
    pub fn send_to(&self, subscriber: u64, frame: Utf8Bytes) -> bool {
        let inner = self.lock();
        inner
            .subscribers
            .iter()
            .find(|s| s.id == subscriber)
            .is_some_and(|s| s.tx.try_send(Outbound::Frame(frame)).is_ok())
    }

    /// Delivers a fault to every attached socket: one that waits is armed
    /// at once, one that acts is queued after the frames already queued.
    /// Returns how many sockets got it.
    pub fn inject_fault(&self, fault: Fault) -> usize {
        let mut inner = self.lock();
        // A socket whose queue is full is detached instead (it closes 1011,
        // which a test sees as a fault all the same).
        inner
            .subscribers
            .retain(|s| s.armed.arm(fault) || s.tx.try_send(Outbound::Fault(fault)).is_ok());
        inner.subscribers.len()
    }

    /// Attaches a socket. With `resume_after`, the frames it missed come
    /// back in [`Subscription::replay`]; done under the same lock as
    /// publishing, so nothing falls between replay and live frames.
    pub fn subscribe(&self, resume_after: Option<u64>, queue: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(queue.max(16));
        let mut inner = self.lock();
        inner.replay.evict_old(Instant::now());
        let (replay, resumed) = match resume_after {
            None => (Vec::new(), None),
            Some(after) => match inner.replay.since(after, inner.next_seq) {
                Some(frames) => (frames, Some(true)),
                None => {
                    // The client saw numbers this hub never issued (the
                    // server restarted mid-response): continue above them
                    // so its de-duplication does not drop new frames.
                    if after >= inner.next_seq {
                        inner.next_seq = after.saturating_add(1);
                    }
                    (Vec::new(), Some(false))
                }
            },
        };
        let id = inner.next_subscriber;
        inner.next_subscriber += 1;
        let armed = Arc::new(Armed::default());
        inner.subscribers.push(Subscriber {
            id,
            tx,
            armed: armed.clone(),
        });
        Subscription {
            id,
            rx,
            replay,
            resumed,
            seq: inner.next_seq.saturating_sub(1),
            armed,
        }
    }

    /// Detaches a socket.
    pub fn unsubscribe(&self, id: u64) {
        self.lock().subscribers.retain(|s| s.id != id);
    }

    /// Stops the running generation, if any. True if one was running.
    pub fn stop_running(&self) -> bool {
        match &self.lock().running {
            Some(running) => {
                // notify_one keeps a permit if the generation is not
                // waiting at this instant, so the stop is never lost.
                running.stop.notify_one();
                true
            }
            None => false,
        }
    }

    /// Id of the response streaming now.
    pub fn running_response(&self) -> Option<String> {
        self.lock().running.as_ref().map(|r| r.response_id.clone())
    }

    pub(crate) fn set_running(&self, running: Option<Running>) {
        self.lock().running = running;
    }

    /// The highest `seq` issued.
    pub fn last_seq(&self) -> u64 {
        self.lock().next_seq.saturating_sub(1)
    }

    /// Marks the greeting as started; false if it already was.
    pub fn mark_greeted(&self) -> bool {
        !std::mem::replace(&mut self.lock().greeted, true)
    }

    pub(crate) fn is_idle(&self, now: Instant) -> bool {
        if self.pending.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let mut inner = self.lock();
        inner.replay.evict_old(now);
        inner.subscribers.is_empty() && inner.running.is_none() && inner.replay.is_empty()
    }
}

// The trait's methods are the inherent ones: nothing here waits on
// another process, so the `async` ones complete at once.
#[async_trait]
impl Hub for LocalHub {
    fn context_id(&self) -> &str {
        &self.context_id
    }

    fn org_id(&self) -> &str {
        &self.org_id
    }

    fn arrival(&self) -> &ArrivalOrder {
        &self.arrival
    }

    fn pending(&self) -> &AtomicUsize {
        &self.pending
    }

    async fn publish(&self, notification: Notification<'_>) -> (u64, usize) {
        LocalHub::publish(self, notification)
    }

    async fn subscribe(&self, resume_after: Option<u64>, queue: usize) -> Subscription {
        LocalHub::subscribe(self, resume_after, queue)
    }

    fn unsubscribe(&self, id: u64) {
        LocalHub::unsubscribe(self, id)
    }

    fn send_to(&self, subscriber: u64, frame: Utf8Bytes) -> bool {
        LocalHub::send_to(self, subscriber, frame)
    }

    fn inject_fault(&self, fault: Fault) -> usize {
        LocalHub::inject_fault(self, fault)
    }

    async fn turn(&self) -> Turn {
        Box::new(self.generation_lock.clone().lock_owned().await)
    }

    async fn set_running(&self, running: Option<Running>) {
        LocalHub::set_running(self, running)
    }

    async fn stop_running(&self) -> bool {
        LocalHub::stop_running(self)
    }

    fn stop_local(&self) -> bool {
        LocalHub::stop_running(self)
    }

    async fn running_response(&self) -> Option<String> {
        LocalHub::running_response(self)
    }

    async fn last_seq(&self) -> u64 {
        LocalHub::last_seq(self)
    }

    async fn mark_greeted(&self) -> bool {
        LocalHub::mark_greeted(self)
    }

    async fn claim_key(
        &self,
        key: &str,
        response_id: &str,
        max: usize,
        ttl: Duration,
    ) -> Option<String> {
        LocalHub::claim_key(self, key, response_id, max, ttl)
    }

    async fn release_key(&self, key: &str) {
        LocalHub::release_key(self, key)
    }

    fn is_idle(&self) -> bool {
        LocalHub::is_idle(self, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use tokenrelay::wire::TokenParams;

    fn token(i: usize) -> Notification<'static> {
        Notification::Token(TokenParams {
            token: Cow::Owned(format!("t{i}")),
            response_id: Cow::Borrowed("r"),
            seq: None,
        })
    }

    fn hub(last_seq: u64) -> LocalHub {
        LocalHub::new(
            "c".into(),
            "o".into(),
            last_seq,
            100,
            Duration::from_secs(60),
            ReplayGauge::default(),
        )
    }

    #[tokio::test]
    async fn a_socket_that_falls_behind_is_detached_after_its_queue() {
        let hub = hub(0);
        let mut sub = hub.subscribe(None, 16);
        for i in 0..40 {
            hub.publish(token(i));
        }
        let mut received = 0;
        while let Some(Outbound::Frame(_)) = sub.rx.recv().await {
            received += 1;
        }
        // The first 16 were queued; then the channel was closed.
        assert_eq!(received, 16);
        // The buffer still has everything, so the client can resume.
        let again = hub.subscribe(Some(16), 16);
        assert_eq!(again.replay.len(), 24);
        assert_eq!(again.resumed, Some(true));
    }

    #[tokio::test]
    async fn seq_continues_from_the_stored_value_and_faults_reach_sockets() {
        let hub = hub(41);
        let mut sub = hub.subscribe(None, 16);
        assert_eq!(sub.seq, 41);
        assert_eq!(hub.publish(token(0)), (42, 1));
        assert_eq!(hub.inject_fault(Fault::Close(4001)), 1);
        assert!(matches!(sub.rx.recv().await, Some(Outbound::Frame(_))));
        assert_eq!(
            sub.rx.recv().await,
            Some(Outbound::Fault(Fault::Close(4001)))
        );
        assert_eq!(Fault::parse("drop"), Some(Fault::Drop));
        assert_eq!(Fault::parse("close_1011"), Some(Fault::Close(1011)));
        assert_eq!(
            Fault::parse("drop_before_answer"),
            Some(Fault::DropBeforeAnswer)
        );
        assert_eq!(Fault::parse("drop_after_stop"), Some(Fault::DropAfterStop));
        assert_eq!(Fault::parse("close_99"), None);
        assert_eq!(Fault::parse("boom"), None);
    }

    #[test]
    fn a_fault_that_waits_is_armed_before_the_hook_answers() {
        let hub = hub(0);
        let mut sub = hub.subscribe(None, 16);
        assert!(!sub.armed.before_answer() && !sub.armed.after_stop());
        assert_eq!(hub.inject_fault(Fault::DropBeforeAnswer), 1);
        assert!(sub.armed.before_answer(), "armed at once");
        assert!(!sub.armed.after_stop());
        assert_eq!(hub.inject_fault(Fault::DropAfterStop), 1);
        assert!(sub.armed.after_stop());
        // Nothing went through the queue, which only acting faults use.
        assert!(sub.rx.try_recv().is_err());
        assert_eq!(hub.inject_fault(Fault::Drop), 1);
        assert_eq!(sub.rx.try_recv(), Ok(Outbound::Fault(Fault::Drop)));
    }

    #[test]
    fn idle_hubs_are_swept_only_when_nothing_needs_them() {
        let hub = hub(0);
        assert!(hub.is_idle(Instant::now()));
        let sub = hub.subscribe(None, 16);
        assert!(!hub.is_idle(Instant::now()));
        hub.unsubscribe(sub.id);
        hub.publish(token(0));
        // Still in the replay window.
        assert!(!hub.is_idle(Instant::now()));
        assert!(hub.is_idle(Instant::now() + Duration::from_secs(61)));
        assert!(hub.mark_greeted());
        assert!(!hub.mark_greeted());
    }
}
