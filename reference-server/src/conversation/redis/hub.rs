//! One context's [`Hub`] on Redis: [`RedisHub`], and the part of it the
//! pub/sub pump and the watchdog reach, [`Core`].

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::ws::Utf8Bytes;
use redis::AsyncCommands;
use tokenrelay::wire::{Notification, StopReason, StopTokenParams, TokenParams};
use tokio::sync::mpsc;

use super::{channel_of, key, scripts, RedisBackend};
use crate::conversation::hub::{Armed, Fault, Outbound, Running, Subscription};
use crate::conversation::shared::{ArrivalOrder, Hub, Turn};
use crate::store::ContextRecord;

/// How long a greeting is remembered as started.
const GREETED_TTL_SECS: u64 = 24 * 3600;

/// The `seq` no notification reaches: encoded in its place, then cut out
/// and replaced by the number Redis assigns.
const SEQ_MARK: u64 = u64::MAX;

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Outbound>,
    /// `None` while attaching (the replay is being read): live frames
    /// wait in `early`. Then the highest `seq` the replay covered; live
    /// frames at or below it are dropped (the replay had them).
    after: Option<u64>,
    early: Vec<(u64, Utf8Bytes)>,
    /// Bound of `early` (the socket's queue).
    queue: usize,
    /// The test hook's waiting faults for this socket.
    armed: Arc<Armed>,
}

#[derive(Default)]
struct Local {
    subscribers: Vec<Subscriber>,
    next_subscriber: u64,
    /// The generation streaming on this instance.
    running: Option<Running>,
}

/// What of a context the pump and the watchdog need.
pub(super) struct Core {
    pub(super) context_id: String,
    /// `seq` this instance knows was issued (the store's, at least): the
    /// counter never goes below it, even if Redis lost its data.
    floor: AtomicU64,
    local: Mutex<Local>,
}

/// Sends to a subscriber; false when it is gone or too far behind.
fn offer(s: &mut Subscriber, seq: u64, frame: &Utf8Bytes) -> bool {
    match s.after {
        None => {
            s.early.push((seq, frame.clone()));
            s.early.len() <= s.queue
        }
        // `seq` 0: the base protocol's frames carry none; each is new.
        Some(after) if seq == 0 || seq > after => {
            s.tx.try_send(Outbound::Frame(frame.clone())).is_ok()
        }
        Some(_) => true,
    }
}

impl Core {
    fn lock(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A message on the context's channel: `"<seq> <frame>"`, or `stop`.
    pub(super) fn on_message(&self, payload: &[u8]) {
        if payload == b"stop" {
            if let Some(running) = &self.lock().running {
                running.stop.notify_one();
            }
            return;
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        // One copy of the message; each frame is a slice of it (no
        // allocation and copy per frame, a batch holding up to 64).
        let shared = Bytes::copy_from_slice(payload);
        // One `seq frame` per line: one frame, or a batch of a reply's
        // tokens (scripts::PUBLISH_MANY).
        let mut local = self.lock();
        let mut at = 0;
        for line in text.split('\n') {
            let start = at;
            at += line.len() + 1;
            let Some((seq, frame)) = line.split_once(' ') else {
                continue;
            };
            let Ok(seq_n) = seq.parse::<u64>() else {
                continue;
            };
            self.raise_floor(seq_n);
            let from = start + seq.len() + 1;
            let Ok(frame) = Utf8Bytes::try_from(shared.slice(from..from + frame.len())) else {
                continue;
            };
            local.subscribers.retain_mut(|s| offer(s, seq_n, &frame));
        }
    }

    pub(super) fn detach_all(&self) {
        self.lock().subscribers.clear();
    }

    fn raise_floor(&self, seq: u64) {
        self.floor.fetch_max(seq, Ordering::SeqCst);
    }

    /// `n` frames could not be published (Redis failed): their numbers are
    /// spent all the same, so that the next frame that goes out leaves a
    /// gap in `seq` where they were. A client sees the gap and ends the
    /// reply as interrupted (its text a true prefix) instead of joining the
    /// text around a hole: with Redis restarted empty, the counter would
    /// otherwise give the next frame the number right after the last one
    /// delivered. (If the script did run and only its answer was lost, the
    /// counter is already past the floor and no gap appears.)
    fn lost(&self, n: u64) {
        self.floor.fetch_add(n, Ordering::SeqCst);
    }

    fn floor(&self) -> u64 {
        self.floor.load(Ordering::SeqCst)
    }

    /// Publishes a notification: numbered, kept in the replay stream and
    /// sent on the live channel in one script. Returns its `seq` (0 when
    /// unsequenced or Redis failed).
    async fn publish(&self, backend: &RedisBackend, mut notification: Notification<'_>) -> u64 {
        let mut conn = backend.conn();
        let channel = channel_of(&self.context_id);
        if backend.config.base_protocol {
            // The hosted service's framing: no `seq`, nothing kept.
            let encoded = notification.encode();
            let frame = format!(r#"0 {{"id":null,{}"#, &encoded[1..]);
            if let Err(e) = conn.publish::<_, _, i64>(&channel, frame).await {
                tracing::error!(context_id = %self.context_id, error = %e, "cannot publish to Redis");
            }
            return 0;
        }
        let (prefix, suffix) = split_at_seq(&mut notification);
        let result: redis::RedisResult<(u64, i64)> = scripts::PUBLISH
            .key(key(&self.context_id, "seq"))
            .key(key(&self.context_id, "log"))
            .arg(prefix)
            .arg(suffix)
            .arg(self.floor())
            .arg(backend.config.replay_len.max(1))
            .arg(backend.config.replay_age.as_millis().max(1) as u64)
            .arg(channel)
            .invoke_async(&mut conn)
            .await;
        match result {
            Ok((seq, _)) => {
                self.raise_floor(seq);
                seq
            }
            Err(e) => {
                tracing::error!(context_id = %self.context_id, error = %e, "cannot publish to Redis");
                self.lost(1);
                0
            }
        }
    }

    /// Publishes tokens of `response_id` in one script call, each as
    /// [`Core::publish`] would. Returns the last `seq` (0 when unsequenced
    /// or Redis failed).
    async fn publish_tokens(
        &self,
        backend: &RedisBackend,
        response_id: &str,
        tokens: Vec<String>,
    ) -> u64 {
        if backend.config.base_protocol {
            // Unsequenced and not kept: nothing to number together.
            for token in tokens {
                self.publish(backend, token_notification(response_id, token))
                    .await;
            }
            return 0;
        }
        let mut script = scripts::PUBLISH_MANY.prepare_invoke();
        script
            .key(key(&self.context_id, "seq"))
            .key(key(&self.context_id, "log"))
            .arg(self.floor())
            .arg(backend.config.replay_len.max(1))
            .arg(backend.config.replay_age.as_millis().max(1) as u64)
            .arg(channel_of(&self.context_id));
        // Numbers these frames would have spent if Redis refuses them.
        let lost = tokens.len() as u64;
        for token in tokens {
            let (prefix, suffix) = split_at_seq(&mut token_notification(response_id, token));
            script.arg(prefix).arg(suffix);
        }
        let result: redis::RedisResult<(u64, i64)> = script.invoke_async(&mut backend.conn()).await;
        match result {
            Ok((seq, _)) => {
                self.raise_floor(seq);
                seq
            }
            Err(e) => {
                tracing::error!(context_id = %self.context_id, error = %e, "cannot publish to Redis");
                self.lost(lost);
                0
            }
        }
    }

    /// Ends a reply whose generator is gone: its stop, `reason:
    /// instance_lost` (the SDKs report it interrupted: the text is a
    /// prefix, and no fault of the agent's).
    async fn end_orphan(&self, backend: &RedisBackend, response_id: &str) {
        tracing::warn!(
            context_id = %self.context_id,
            response_id,
            "generation lease lapsed: its instance is gone; reply ended"
        );
        let reason = (!backend.config.base_protocol).then_some(StopReason::InstanceLost);
        self.publish(
            backend,
            Notification::StopToken(StopTokenParams {
                response_id: Cow::Borrowed(response_id),
                reason,
                seq: None,
            }),
        )
        .await;
        let mut conn = backend.conn();
        let _: redis::RedisResult<i64> = conn.del(key(&self.context_id, "run")).await;
    }

    /// The watchdog's check (see [`super::watchdog`]).
    pub(super) async fn take_over_orphan(&self, backend: &RedisBackend) -> redis::RedisResult<()> {
        let token = format!("{}/{}", backend.instance, uuid::Uuid::new_v4());
        let lock = key(&self.context_id, "lock");
        let mut conn = backend.conn();
        let orphan: Option<String> = scripts::TAKE_OVER
            .key(&lock)
            .key(key(&self.context_id, "run"))
            .arg(&token)
            .arg(backend.config.lease.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        if let Some(response_id) = orphan {
            self.end_orphan(backend, &response_id).await;
            let _: i64 = scripts::RELEASE
                .key(&lock)
                .arg(&token)
                .invoke_async(&mut conn)
                .await?;
        }
        Ok(())
    }
}

/// A reply's token as a notification, to be numbered.
fn token_notification(response_id: &str, token: String) -> Notification<'_> {
    Notification::Token(TokenParams {
        token: Cow::Owned(token),
        response_id: Cow::Borrowed(response_id),
        seq: None,
    })
}

/// The notification encoded, split where its `seq` goes: the part before
/// the number and the part after (the script puts the number between).
fn split_at_seq(notification: &mut Notification<'_>) -> (String, String) {
    notification.set_seq(SEQ_MARK);
    let encoded = notification.encode();
    let mark = format!("\"seq\":{SEQ_MARK}");
    // `seq` is the params' last field, so the last match is it (a token's
    // text holding the same characters is escaped, `\"seq\"`).
    match encoded.rfind(&mark) {
        Some(at) => (
            format!("{}\"seq\":", &encoded[..at]),
            encoded[at + mark.len()..].to_owned(),
        ),
        None => (encoded, String::new()),
    }
}

/// A context's live state in Redis; the sockets attached to it here and
/// the generation it runs here stay in this process.
pub struct RedisHub {
    core: Arc<Core>,
    backend: Arc<RedisBackend>,
    org_id: String,
    pending: AtomicUsize,
    arrival: ArrivalOrder,
    /// This instance's generations queue here first (fairly, in arrival
    /// order), so only one of them at a time competes for the lease.
    local_turn: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for RedisHub {
    fn drop(&mut self) {
        let mut live = self.backend.live();
        let mine = live
            .get(&self.core.context_id)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.core)));
        if mine {
            live.remove(&self.core.context_id);
        }
    }
}

impl RedisHub {
    /// The hub of `context` on `backend`, registered for its live frames.
    pub fn new(backend: Arc<RedisBackend>, context: &ContextRecord) -> RedisHub {
        let core = Arc::new(Core {
            context_id: context.context_id.clone(),
            floor: AtomicU64::new(context.last_seq),
            local: Mutex::new(Local::default()),
        });
        backend
            .live()
            .insert(context.context_id.clone(), Arc::downgrade(&core));
        RedisHub {
            core,
            backend,
            org_id: context.org_id.clone(),
            pending: AtomicUsize::new(0),
            arrival: ArrivalOrder::default(),
            local_turn: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn key(&self, what: &str) -> String {
        key(&self.core.context_id, what)
    }

    /// Reads what a socket attaching needs; see [`scripts::ATTACH`].
    async fn read_attach(
        &self,
        resume_after: Option<u64>,
    ) -> Result<(u64, Vec<Utf8Bytes>, Option<bool>), String> {
        let mut conn = self.backend.conn();
        let reply: Vec<redis::Value> = scripts::ATTACH
            .key(self.key("seq"))
            .key(self.key("log"))
            .arg(self.core.floor())
            .arg(resume_after.map(|n| n.to_string()).unwrap_or_default())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let int = |v: &redis::Value| -> u64 { redis::from_redis_value_ref(v).unwrap_or(0) };
        let (Some(cur), Some(now), Some(bumped)) = (reply.first(), reply.get(1), reply.get(2))
        else {
            return Err("short attach reply".into());
        };
        let (cur, now, bumped) = (int(cur), int(now), int(bumped) == 1);
        self.core.raise_floor(cur);
        let Some(after) = resume_after else {
            return Ok((cur, Vec::new(), None));
        };
        if bumped {
            return Ok((cur, Vec::new(), Some(false)));
        }
        let oldest = now.saturating_sub(self.backend.config.replay_age.as_millis() as u64);
        let mut frames = Vec::new();
        let mut first = None;
        for entry in reply[3..].chunks_exact(3) {
            let id: String = redis::from_redis_value_ref(&entry[0]).map_err(|e| e.to_string())?;
            let seq: u64 = id
                .split('-')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let at: String = redis::from_redis_value_ref(&entry[1]).map_err(|e| e.to_string())?;
            if at.parse::<u64>().unwrap_or(0) < oldest {
                // Older than the replay window: as good as trimmed.
                continue;
            }
            first.get_or_insert(seq);
            let frame: String =
                redis::from_redis_value_ref(&entry[2]).map_err(|e| e.to_string())?;
            frames.push(Utf8Bytes::from(frame));
        }
        if after == cur {
            return Ok((cur, Vec::new(), Some(true)));
        }
        if first != Some(after + 1) {
            // What the client missed is gone.
            return Ok((cur, Vec::new(), Some(false)));
        }
        Ok((cur, frames, Some(true)))
    }
}

/// Holding the generation turn: this instance's local turn, and the
/// context's lease in Redis, renewed until dropped, then released.
struct Lease {
    renew: tokio::task::JoinHandle<()>,
    release: Option<(
        tokio::sync::OwnedMutexGuard<()>,
        redis::aio::ConnectionManager,
        String,
        String,
    )>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
        if let Some((local, mut conn, lock, token)) = self.release.take() {
            // Released before the next local generation may compete for
            // it: the local turn goes with the release.
            let release = async move {
                let released: redis::RedisResult<i64> = scripts::RELEASE
                    .key(&lock)
                    .arg(&token)
                    .invoke_async(&mut conn)
                    .await;
                if let Err(e) = released {
                    tracing::warn!(error = %e, "cannot release a generation lease; it lapses");
                }
                drop(local);
            };
            // No runtime (the process is ending): the lease lapses.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(release);
            }
        }
    }
}

#[async_trait]
impl Hub for RedisHub {
    fn context_id(&self) -> &str {
        &self.core.context_id
    }

    fn org_id(&self) -> &str {
        &self.org_id
    }

    fn pending(&self) -> &AtomicUsize {
        &self.pending
    }

    fn arrival(&self) -> &ArrivalOrder {
        &self.arrival
    }

    async fn publish(&self, notification: Notification<'_>) -> (u64, usize) {
        let seq = self.core.publish(&self.backend, notification).await;
        // The frame reaches this instance's sockets through the pump; the
        // count is theirs as of now.
        (seq, self.core.lock().subscribers.len())
    }

    async fn publish_tokens(&self, response_id: &str, tokens: Vec<String>) -> usize {
        let n = tokens.len();
        self.core
            .publish_tokens(&self.backend, response_id, tokens)
            .await;
        // As for `publish`: this instance's sockets as of now, per token.
        n * self.core.lock().subscribers.len()
    }

    async fn subscribe(&self, resume_after: Option<u64>, queue: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(queue.max(16));
        let armed = Arc::new(Armed::default());
        let id = {
            let mut local = self.core.lock();
            let id = local.next_subscriber;
            local.next_subscriber += 1;
            // Registered before the replay is read: a frame published
            // meanwhile waits in `early`, so none falls in between.
            local.subscribers.push(Subscriber {
                id,
                tx,
                after: None,
                early: Vec::new(),
                queue: queue.max(16),
                armed: armed.clone(),
            });
            id
        };
        match self.read_attach(resume_after).await {
            Ok((seq, replay, resumed)) => {
                let mut local = self.core.lock();
                if let Some(s) = local.subscribers.iter_mut().find(|s| s.id == id) {
                    s.after = Some(seq);
                    let early = std::mem::take(&mut s.early);
                    let kept = early.iter().all(|(n, frame)| offer(s, *n, frame));
                    if !kept {
                        local.subscribers.retain(|s| s.id != id);
                    }
                }
                Subscription {
                    id,
                    rx,
                    replay,
                    resumed,
                    seq,
                    armed,
                }
            }
            Err(e) => {
                tracing::error!(context_id = %self.core.context_id, error = %e, "Redis unavailable: socket detached");
                // Its queue closes: the session closes the socket 1011
                // and the client reconnects later.
                self.core.lock().subscribers.retain(|s| s.id != id);
                Subscription {
                    id,
                    rx,
                    replay: Vec::new(),
                    resumed: resume_after.map(|_| false),
                    seq: self.core.floor(),
                    armed,
                }
            }
        }
    }

    fn unsubscribe(&self, id: u64) {
        self.core.lock().subscribers.retain(|s| s.id != id);
    }

    fn send_to(&self, subscriber: u64, frame: Utf8Bytes) -> bool {
        self.core
            .lock()
            .subscribers
            .iter()
            .find(|s| s.id == subscriber)
            .is_some_and(|s| s.tx.try_send(Outbound::Frame(frame)).is_ok())
    }

    fn inject_fault(&self, fault: Fault) -> usize {
        let mut local = self.core.lock();
        local
            .subscribers
            .retain(|s| s.armed.arm(fault) || s.tx.try_send(Outbound::Fault(fault)).is_ok());
        local.subscribers.len()
    }

    async fn turn(&self) -> Turn {
        let local = self.local_turn.clone().lock_owned().await;
        let lock = self.key("lock");
        let token = format!("{}/{}", self.backend.instance, uuid::Uuid::new_v4());
        let lease_ms = self.backend.config.lease.as_millis().max(1) as u64;
        let mut conn = self.backend.conn();
        let mut wait = Duration::from_millis(5);
        loop {
            let taken: redis::RedisResult<Option<String>> = redis::cmd("SET")
                .arg(&lock)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(lease_ms)
                .query_async(&mut conn)
                .await;
            match taken {
                Ok(Some(_)) => break,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(context_id = %self.core.context_id, error = %e, "cannot take the generation lease")
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(100));
        }
        // A reply still recorded as running lost its instance while no
        // watchdog saw it yet: end it before the next one starts.
        let orphan: redis::RedisResult<Option<String>> = conn.get(self.key("run")).await;
        if let Ok(Some(response_id)) = orphan {
            self.core.end_orphan(&self.backend, &response_id).await;
        }
        let renew = {
            let (mut conn, lock, token) = (conn.clone(), lock.clone(), token.clone());
            let core = self.core.clone();
            let every = self.backend.config.lease / 3;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let renewed: redis::RedisResult<i64> = scripts::RENEW
                        .key(&lock)
                        .arg(&token)
                        .arg(lease_ms)
                        .invoke_async(&mut conn)
                        .await;
                    match renewed {
                        Ok(1) => {}
                        // Lost (another instance took it over): this
                        // generation stops rather than run beside another.
                        Ok(_) => {
                            tracing::warn!(context_id = %core.context_id, "generation lease lost; stopping the reply");
                            if let Some(running) = &core.lock().running {
                                running.stop.notify_one();
                            }
                            return;
                        }
                        // Redis away: try again; the lease may lapse.
                        Err(e) => {
                            tracing::warn!(context_id = %core.context_id, error = %e, "cannot renew the generation lease")
                        }
                    }
                }
            })
        };
        Box::new(Lease {
            renew,
            release: Some((local, conn, lock, token)),
        })
    }

    async fn set_running(&self, running: Option<Running>) {
        let mut conn = self.backend.conn();
        let result: redis::RedisResult<()> = match &running {
            Some(r) => conn.set(self.key("run"), &r.response_id).await,
            None => conn.del(self.key("run")).await,
        };
        if let Err(e) = result {
            tracing::warn!(context_id = %self.core.context_id, error = %e, "cannot record the running reply");
        }
        self.core.lock().running = running;
    }

    async fn stop_running(&self) -> bool {
        if let Some(running) = &self.core.lock().running {
            running.stop.notify_one();
            return true;
        }
        let mut conn = self.backend.conn();
        let stopped: redis::RedisResult<i64> = scripts::STOP
            .key(self.key("run"))
            .arg(channel_of(&self.core.context_id))
            .invoke_async(&mut conn)
            .await;
        stopped.is_ok_and(|n| n == 1)
    }

    fn stop_local(&self) -> bool {
        match &self.core.lock().running {
            Some(running) => {
                running.stop.notify_one();
                true
            }
            None => false,
        }
    }

    async fn running_response(&self) -> Option<String> {
        if let Some(running) = &self.core.lock().running {
            return Some(running.response_id.clone());
        }
        let mut conn = self.backend.conn();
        conn.get(self.key("run")).await.ok().flatten()
    }

    async fn last_seq(&self) -> u64 {
        let mut conn = self.backend.conn();
        let seq: Option<u64> = conn.get(self.key("seq")).await.ok().flatten();
        seq.unwrap_or(0).max(self.core.floor())
    }

    async fn mark_greeted(&self) -> bool {
        let mut conn = self.backend.conn();
        let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(self.key("greeted"))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(GREETED_TTL_SECS)
            .query_async(&mut conn)
            .await;
        // Redis away: no greeting rather than two.
        matches!(set, Ok(Some(_)))
    }

    async fn claim_key(
        &self,
        key: &str,
        response_id: &str,
        max: usize,
        ttl: Duration,
    ) -> Option<String> {
        if max == 0 {
            return None;
        }
        let mut conn = self.backend.conn();
        let claimed: redis::RedisResult<Option<String>> = scripts::CLAIM
            .key(self.key(&format!("idem:{key}")))
            .arg(response_id)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await;
        claimed.unwrap_or_else(|e| {
            tracing::warn!(context_id = %self.core.context_id, error = %e, "cannot claim an idempotency key");
            None
        })
    }

    async fn release_key(&self, key: &str) {
        let mut conn = self.backend.conn();
        let _: redis::RedisResult<i64> = conn.del(self.key(&format!("idem:{key}"))).await;
    }

    fn is_idle(&self) -> bool {
        if self.pending.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let local = self.core.lock();
        local.subscribers.is_empty() && local.running.is_none()
    }
}
