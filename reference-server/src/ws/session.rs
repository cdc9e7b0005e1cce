//! One WebSocket connection: the handshake (`connect_to_context`), the
//! request loop, and the fan-in of the context's live frames.
//!
//! Every frame from the client is answered or ignored, never fatal: bad
//! JSON, unknown methods and bad params get a `result.error` with a
//! `result.code`. The credential is checked at `connect_to_context`; the
//! connection outlives the key's expiry but not its revocation (the socket
//! closes with 4001 when it is revoked, and every invocation checks again).
//!
//! What one socket may spend is bounded (`Limits`): frames per second (a
//! token bucket; a client far over it is closed 4008), sockets per client
//! address and per org, invocations queued per context, the size of each
//! message, and time: the server pings every `ping_interval`, closes a
//! socket silent for `idle_timeout` (1001) and drops one whose writes stall
//! for `write_timeout` (its reader stopped reading).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokenrelay::wire::{
    capability, decode_client_frame, encode_response, ClientRequest, ConnectParams, ConnectResult,
    ServerInfo,
};
use tokio::sync::{broadcast, mpsc};

use super::{close, WsQuery};
use crate::admission::OrgSlot;
use crate::auth::{authenticate, still_valid, Principal, Revoked};
use crate::conversation::{invoke, invoke_as, Armed, Fault, Hub, Invocation, Outbound};
use crate::error::ApiError;
use crate::jwt::TYPE_PUBLISHABLE;
use crate::ratelimit::TokenBucket;
use crate::rest::check_size;
use crate::rest::client_keys::canonical_origin;
use crate::secret::{sha256_hex, PUBLISHABLE_KEY_PREFIX};
use crate::state::AppState;
use crate::time::unix_now_ms;

/// Longest `idempotency_key` accepted, bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// Name the server advertises in `connect_to_context`.
pub const SERVER_NAME: &str = "tokenrelay-server";

/// Most live frames written before one flush, so a fast stream is sent in
/// batches without starving the read side.
const WRITE_BATCH: usize = 256;

/// Highest `resume_after_seq` accepted: 2^53 - 1, the largest integer
/// every SDK's JSON reads exactly (JavaScript's `Number`). `seq` never gets
/// near it; a bigger value is an attack on the counter (it would wrap).
pub const MAX_SEQ: u64 = (1 << 53) - 1;

type Sink = SplitSink<WebSocket, Message>;

struct Session {
    state: AppState,
    /// Set by a stream token at upgrade, or by `connect_to_context`.
    stream_principal: Option<Principal>,
    query_client_key: Option<String>,
    origin: Option<String>,
    hub: Option<Arc<dyn Hub>>,
    subscription_id: Option<u64>,
    live: Option<mpsc::Receiver<Outbound>>,
    /// The credential of the attached context, re-checked on every
    /// invocation and compared with each revocation.
    principal: Option<Principal>,
    /// This socket's place under its org's cap, while attached.
    org_slot: Option<OrgSlot>,
    /// Frames this socket may still send.
    bucket: TokenBucket,
    /// Frames refused by the bucket since it last had room.
    over_rate: u32,
    /// Set when a reply must be followed by closing the socket.
    close_after: Option<(u16, &'static str)>,
    /// The last request started an agent response.
    invoked: bool,
    /// Faults of the test hook waiting for their moment: the attached
    /// subscription's, which the hook arms directly.
    armed: Arc<Armed>,
}

/// Whether `frame` is an `on_stop_token` notification (read only while
/// `drop_after_stop` is armed, so the parse costs nothing otherwise).
fn is_stop_token(frame: &str) -> bool {
    serde_json::from_str::<Value>(frame)
        .ok()
        .is_some_and(|v| v.get("method").and_then(Value::as_str) == Some("on_stop_token"))
}

/// What the frame-rate bucket says of one client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Within the rate.
    Admit,
    /// Over it: refused, the socket stays.
    Refuse,
    /// Far over it: the socket closes (4008).
    Close,
}

/// A sink operation that must finish within the write timeout: a peer
/// that stops reading fills its TCP window and would otherwise park this
/// session (and its slot) forever.
async fn timed<E>(limit: Duration, op: impl Future<Output = Result<(), E>>) -> Result<(), ()> {
    match tokio::time::timeout(limit, op).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            tracing::info!("socket dropped: writes stalled (the peer stopped reading)");
            Err(())
        }
    }
}

/// The longest a close handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

async fn send_close(sink: &mut Sink, code: u16, reason: &str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }));
    if timed(CLOSE_TIMEOUT, sink.send(frame)).await.is_ok() {
        let _ = timed(CLOSE_TIMEOUT, sink.close()).await;
    }
}

async fn next_revocation(
    rx: &mut broadcast::Receiver<Revoked>,
) -> Result<Revoked, broadcast::error::RecvError> {
    rx.recv().await
}

async fn next_live(live: &mut Option<mpsc::Receiver<Outbound>>) -> Option<Outbound> {
    match live {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs a session until the socket closes or the server shuts down.
/// `client_ip` keys the per-address cap.
pub async fn run(
    state: AppState,
    socket: WebSocket,
    query: WsQuery,
    origin: Option<String>,
    client_ip: String,
) {
    let (mut sink, mut stream) = socket.split();
    let Some(_slot) = state.enter_session() else {
        tracing::warn!("connection refused: max_connections reached");
        state.metrics.refused("max_connections");
        send_close(&mut sink, close::POLICY, "too many connections").await;
        return;
    };
    let limits = state.config.limits.clone();
    let Some(_ip_slot) = state
        .sockets_per_ip
        .try_enter(&client_ip, limits.max_sockets_per_ip)
    else {
        tracing::info!("connection refused: max_sockets_per_ip reached");
        state.metrics.refused("sockets_per_ip");
        send_close(
            &mut sink,
            close::POLICY,
            "too many connections from this address",
        )
        .await;
        return;
    };
    state.metrics.connection_opened();
    let _open = scopeguard(&state);

    let mut session = Session {
        state: state.clone(),
        stream_principal: None,
        query_client_key: query.client_key,
        origin,
        hub: None,
        subscription_id: None,
        live: None,
        principal: None,
        org_slot: None,
        bucket: TokenBucket::new(limits.socket_frame_burst, limits.socket_frames_per_sec),
        over_rate: 0,
        close_after: None,
        invoked: false,
        armed: Arc::default(),
    };

    if let Some(token) = query.token {
        match state
            .store
            .consume_stream_token(&sha256_hex(&token), unix_now_ms())
            .await
        {
            Ok(Some(record)) => {
                tracing::info!(org_id = %record.org_id, "socket opened with a stream token");
                session.stream_principal = Some(Principal::StreamToken {
                    org_id: record.org_id,
                });
            }
            Ok(None) => {
                state.metrics.auth_failure("stream_token_invalid");
                send_close(
                    &mut sink,
                    close::UNAUTHORIZED,
                    "stream token invalid, expired or already used",
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "stream token lookup failed");
                send_close(&mut sink, close::INTERNAL, "internal error").await;
                return;
            }
        }
    }

    let handshake_deadline = tokio::time::Instant::now() + state.config.handshake_timeout;
    let mut shutdown = state.shutdown.clone();
    if *shutdown.borrow() {
        send_close(&mut sink, close::GOING_AWAY, "server shutting down").await;
        return;
    }
    let mut revocations = state.revocations.subscribe();
    let mut pings = tokio::time::interval_at(
        tokio::time::Instant::now() + limits.ping_interval,
        limits.ping_interval,
    );
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let write_timeout = limits.write_timeout;
    loop {
        // Biased, because what is ready at once must not be handled in a
        // coin toss's order. A revoked credential ends the socket before
        // another batch of live frames goes out on it, or another of its
        // frames is taken. The client's frames come before the timers, so
        // a socket whose frames waited in the buffer through a pause is
        // neither refused for a late handshake nor closed as idle. Live
        // frames come last: a reply that streams without a pause must
        // starve neither the reads nor the pings (a ping is due once per
        // interval, so it cannot starve the reply either).
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                send_close(&mut sink, close::GOING_AWAY, "server shutting down").await;
                break;
            }
            revoked = next_revocation(&mut revocations), if session.principal.is_some() => {
                let still_good = match revoked {
                    Ok(revoked) => !session.principal.as_ref().is_some_and(|p| p.is_revoked_by(&revoked)),
                    // Missed some: ask the store, the source of truth.
                    Err(broadcast::error::RecvError::Lagged(_)) => match &session.principal {
                        Some(p) => still_valid(&state, p).await.is_ok(),
                        None => true,
                    },
                    Err(broadcast::error::RecvError::Closed) => true,
                };
                if !still_good {
                    tracing::info!("socket closed: its credential was revoked");
                    send_close(&mut sink, close::UNAUTHORIZED, "credential revoked").await;
                    break;
                }
            }
            incoming = stream.next() => {
                last_heard = Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let replies = session.handle(text.as_str()).await;
                        if std::mem::take(&mut session.invoked) && session.armed.before_answer() {
                            // Test hook: the server took the invocation and
                            // the connection dies before the answer.
                            tracing::info!("injecting fault: drop before the answer");
                            break;
                        }
                        let mut failed = false;
                        for reply in replies {
                            if timed(write_timeout, sink.feed(Message::Text(reply))).await.is_err() {
                                failed = true;
                                break;
                            }
                        }
                        if failed || timed(write_timeout, sink.flush()).await.is_err() {
                            break;
                        }
                        if let Some((code, reason)) = session.close_after.take() {
                            send_close(&mut sink, code, reason).await;
                            break;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        if session.admit_frame() == Admission::Close {
                            send_close(&mut sink, close::POLICY, "too many frames").await;
                            break;
                        }
                        let e = ApiError::invalid_params("binary frames are not part of the protocol; send JSON text");
                        session.state.metrics.request_refused(e.code);
                        if timed(write_timeout, sink.send(Message::Text(error_frame(None, &e, session.state.config.base_protocol)))).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => break,
                    // Pings (answered by the library) and pongs count
                    // against the frame rate like any frame: a flood of
                    // them would otherwise keep this branch, which comes
                    // first, always ready, and the timers below (the
                    // handshake deadline) would never be reached.
                    Some(Ok(_)) => {
                        if session.admit_frame() == Admission::Close {
                            send_close(&mut sink, close::POLICY, "too many frames").await;
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        // The library reports an oversized message only as
                        // error text; answer it with the close code that says
                        // so instead of a bare TCP drop.
                        let text = e.to_string();
                        tracing::debug!(error = %text, "socket read failed");
                        if text.contains("Space limit exceeded") || text.contains("too long") {
                            send_close(&mut sink, close::TOO_BIG, "message too big").await;
                        }
                        break;
                    }
                }
            },
            _ = tokio::time::sleep_until(handshake_deadline), if session.hub.is_none() => {
                send_close(&mut sink, close::POLICY, "no connect_to_context in time").await;
                break;
            }
            _ = pings.tick() => {
                if last_heard.elapsed() >= limits.idle_timeout {
                    tracing::info!("socket closed: idle (no frame or pong) for idle_timeout");
                    state.metrics.refused("idle_timeout");
                    send_close(&mut sink, close::GOING_AWAY, "idle timeout").await;
                    break;
                }
                if timed(write_timeout, sink.send(Message::Ping(Default::default()))).await.is_err() {
                    break;
                }
            }
            frame = next_live(&mut session.live) => match frame {
                Some(Outbound::Frame(frame)) => {
                    match write_live(&mut sink, &mut session, frame).await {
                        Ok(None) => {}
                        Ok(Some(fault)) => {
                            apply_fault(&mut sink, fault).await;
                            break;
                        }
                        Err(()) => break,
                    }
                }
                // Only faults that act come through the queue (the hub
                // arms those that wait).
                Some(Outbound::Fault(fault)) => {
                    apply_fault(&mut sink, fault).await;
                    break;
                }
                None => {
                    // The hub detached us: we fell too far behind, or (a
                    // Redis hub) it lost Redis and cannot promise this
                    // socket every frame. Either way the client resumes.
                    send_close(&mut sink, close::INTERNAL, "live stream lost; reconnect and resume").await;
                    break;
                }
            },
        }
    }
    session.detach();
}

/// Counts the socket as closed when the session ends, however it ends.
fn scopeguard(state: &AppState) -> impl Drop + '_ {
    struct Closed<'a>(&'a AppState);
    impl Drop for Closed<'_> {
        fn drop(&mut self) {
            self.0.metrics.connection_closed();
        }
    }
    Closed(state)
}

/// Writes `first` and whatever else is queued (up to a batch), then
/// flushes. Returns a fault met in the queue (or one armed earlier that is
/// due now), which ends the session.
async fn write_live(
    sink: &mut Sink,
    session: &mut Session,
    first: Utf8Bytes,
) -> Result<Option<Fault>, ()> {
    let mut sent = 0u64;
    let mut fault = None;
    let limit = session.state.config.limits.write_timeout;
    let mut next = Some(first);
    while let Some(frame) = next.take() {
        let stop_due = session.armed.after_stop() && is_stop_token(&frame);
        timed(limit, sink.feed(Message::Text(frame))).await?;
        sent += 1;
        if stop_due {
            // Test hook: the stop goes out, what trails it does not.
            tracing::info!("injecting fault: drop after on_stop_token");
            fault = Some(Fault::Drop);
            break;
        }
        if sent as usize >= WRITE_BATCH {
            break;
        }
        let Some(rx) = session.live.as_mut() else {
            break;
        };
        next = match rx.try_recv() {
            Ok(Outbound::Frame(frame)) => Some(frame),
            Ok(Outbound::Fault(f)) => {
                fault = Some(f);
                None
            }
            Err(_) => None,
        };
    }
    session.state.metrics.frames_sent(sent);
    timed(limit, sink.flush()).await?;
    Ok(fault)
}

/// Carries out an injected fault (test hook only).
async fn apply_fault(sink: &mut Sink, fault: Fault) {
    tracing::info!(?fault, "injecting fault");
    match fault {
        // Returning drops the socket: the TCP connection ends with no
        // close frame, like a network cut.
        Fault::Drop | Fault::DropBeforeAnswer | Fault::DropAfterStop => {}
        Fault::Close(code) => send_close(sink, code, "fault injected").await,
    }
}

fn error_frame(id: Option<&str>, error: &ApiError, base: bool) -> Utf8Bytes {
    let result = if base {
        base_error(error)
    } else {
        error.ws_result()
    };
    let frame = match id {
        Some(id) => encode_response(id, &result),
        None => json!({ "id": Value::Null, "result": result }).to_string(),
    };
    Utf8Bytes::from(frame)
}

/// An error as the hosted service words it: only `result.error`, and a
/// refused credential as the text of a Python tuple with its status.
fn base_error(error: &ApiError) -> Value {
    let text = match error.code {
        "unauthorized" | "forbidden" => {
            format!("('{}', {})", error.message, error.status.as_u16())
        }
        _ => error.message.clone(),
    };
    json!({ "error": text })
}

/// The parameters each method's handler takes on the hosted service, which
/// calls it with `**params`: anything else is a `TypeError` there.
fn base_params(method: &str) -> Option<&'static [&'static str]> {
    Some(match method {
        "connect_to_context" => &["context_id", "access_token"],
        "add_message" => &["message"],
        "stop_invocation" => &[],
        "set_last_messages" => &["human_message", "ai_message"],
        "client_side_tool_responses" => &["tool_responses"],
        _ => return None,
    })
}

/// The first parameter of `text`'s request that the base protocol's
/// handler does not take, with its method.
fn unknown_base_param(text: &str) -> Option<(String, String)> {
    let frame: Value = serde_json::from_str(text).ok()?;
    let method = frame.get("method")?.as_str()?;
    let known = base_params(method)?;
    let params = frame.get("params")?.as_object()?;
    params
        .keys()
        .find(|k| !known.contains(&k.as_str()))
        .map(|k| (method.to_owned(), k.clone()))
}

/// What a request's handler answers.
enum Answer {
    /// This result, now.
    Now(Value),
    /// `"result": null` once this reply has been sent whole (the base
    /// protocol's invocations).
    AfterReply(tokio::sync::oneshot::Receiver<crate::conversation::Outcome>),
}

fn ok_frame(id: &str, result: Value) -> Utf8Bytes {
    Utf8Bytes::from(encode_response(id, &result))
}

impl Session {
    fn detach(&mut self) {
        if let (Some(hub), Some(id)) = (&self.hub, self.subscription_id) {
            hub.unsubscribe(id);
        }
        self.hub = None;
        self.subscription_id = None;
        self.live = None;
        self.org_slot = None;
    }

    /// Takes one frame from the socket's bucket.
    fn admit_frame(&mut self) -> Admission {
        if self.bucket.take(Instant::now()) {
            self.over_rate = 0;
            return Admission::Admit;
        }
        self.over_rate = self.over_rate.saturating_add(1);
        self.state.metrics.refused("socket_frame_rate");
        // A client that keeps sending through a whole burst of refusals is
        // not pacing itself: close it rather than decode its every frame.
        if self.over_rate > self.state.config.limits.socket_frame_burst.max(1) {
            Admission::Close
        } else {
            Admission::Refuse
        }
    }

    /// A refusal of a frame: counted by its code, and answered with an
    /// error frame (`id` set for a request, `None` for a frame that could
    /// not be read) when `answer`; a notification gets no answer.
    fn refuse(&self, id: Option<&str>, error: &ApiError, answer: bool) -> Vec<Utf8Bytes> {
        self.state.metrics.request_refused(error.code);
        if answer {
            vec![error_frame(id, error, self.state.config.base_protocol)]
        } else {
            Vec::new()
        }
    }

    /// Handles one text frame; returns the frames to send, in order.
    async fn handle(&mut self, text: &str) -> Vec<Utf8Bytes> {
        let base = self.state.config.base_protocol;
        let admission = self.admit_frame();
        if admission != Admission::Admit {
            if admission == Admission::Close {
                self.close_after = Some((close::POLICY, "too many frames"));
            }
            // Over the rate: a request gets a refusal it can retry after;
            // a notification is dropped. Nothing else is decoded or run.
            let error = ApiError::rate_limited(self.bucket.retry_after_secs());
            let id = decode_client_frame(text).ok().and_then(|f| f.id);
            return self.refuse(id.as_deref(), &error, id.is_some());
        }
        let incoming = match decode_client_frame(text) {
            Ok(incoming) => incoming,
            Err(e) => {
                let error = ApiError::invalid_params(e.to_string());
                return self.refuse(None, &error, true);
            }
        };
        let id = incoming.id;
        if base {
            if let Some((method, param)) = unknown_base_param(text) {
                let error = ApiError::invalid_params(format!(
                    "{method}() got an unexpected keyword argument '{param}'"
                ));
                return self.refuse(id.as_deref(), &error, id.is_some());
            }
        }
        let request = match incoming.request {
            Ok(request) => request,
            Err(reason) => {
                let message = if reason.starts_with("unknown method") {
                    format!("Unknown method: {}", incoming.method)
                } else if incoming.method == "add_message" && reason.contains("`message`") {
                    "No message provided".to_owned()
                } else if incoming.method == "set_last_messages"
                    && reason.contains("`human_message`")
                {
                    "No human_message provided".to_owned()
                } else {
                    format!("Invalid params for {}: {reason}", incoming.method)
                };
                let error = ApiError::invalid_params(message);
                return self.refuse(id.as_deref(), &error, id.is_some());
            }
        };
        let method = request.method();
        let outcome = match request {
            ClientRequest::ConnectToContext(params) => self
                .connect(params)
                .await
                .map(|(r, extra)| (Answer::Now(r), extra)),
            other => self
                .call(other, incoming.idempotency_key.as_deref())
                .await
                .map(|r| (r, Vec::new())),
        };
        match (outcome, id) {
            (Ok((Answer::Now(result), extra)), Some(id)) => {
                let mut frames = vec![ok_frame(&id, result)];
                frames.extend(extra);
                frames
            }
            (Ok((Answer::AfterReply(done), extra)), Some(id)) => {
                // Queued behind the reply's last notification for this
                // socket, as the hosted service answers.
                if let (Some(hub), Some(subscriber)) = (self.hub.clone(), self.subscription_id) {
                    tokio::spawn(async move {
                        if done.await.is_ok() {
                            hub.send_to(subscriber, ok_frame(&id, Value::Null));
                        }
                    });
                }
                extra
            }
            (Ok((_, extra)), None) => extra,
            (Err(error), id) => {
                tracing::debug!(method, code = error.code, request = id.is_some(), "refused");
                self.refuse(id.as_deref(), &error, id.is_some())
            }
        }
    }

    /// `connect_to_context`: authenticate, authorize, attach, maybe greet.
    /// Returns the result and the replayed frames that must follow it.
    async fn connect(&mut self, p: ConnectParams) -> Result<(Value, Vec<Utf8Bytes>), ApiError> {
        if p.context_id.is_empty() {
            return Err(ApiError::invalid_params("No context_id provided"));
        }
        if p.resume_after_seq.is_some_and(|seq| seq > MAX_SEQ) {
            return Err(ApiError::invalid_params(format!(
                "resume_after_seq must be at most {MAX_SEQ}"
            )));
        }
        let principal = match (&p.access_token, &self.stream_principal) {
            (Some(token), _) if !token.is_empty() => {
                let credential = crate::auth::credential_from_header(token);
                authenticate(&self.state, credential)
                    .await
                    .map_err(|f| f.error)?
            }
            (_, Some(principal)) => principal.clone(),
            _ => {
                self.state.metrics.auth_failure("missing");
                return Err(ApiError::unauthorized("access_token required"));
            }
        };
        let store = &self.state.store;
        let context = store.get_context(&p.context_id).await?.ok_or_else(|| {
            ApiError::not_found(format!("Context with id: {} does not exist", p.context_id))
        })?;
        if principal.org_id() != context.org_id {
            self.state.metrics.auth_failure("wrong_org");
            return Err(ApiError::forbidden("Context does not belong to user"));
        }
        if let Principal::ClientKey {
            context_id: Some(scope),
            ..
        } = &principal
        {
            if *scope != context.context_id {
                self.state.metrics.auth_failure("wrong_context");
                return Err(ApiError::forbidden("API key is scoped to another context"));
            }
        }
        if principal.is_browser_credential() {
            self.check_publishable_key(&context.org_id, p.client_key.as_deref())
                .await?;
        }
        let agent = store
            .get_agent(&context.agent_id)
            .await?
            .unwrap_or_default();
        // A public agent's socket may be held by anyone: they get what a
        // stranger may see of the agent, not its prompt.
        let agent = if agent.is_public && principal.is_browser_credential() {
            crate::rest::agents::public_view(&agent)
        } else {
            agent
        };

        // Re-connecting on the same socket moves it to the new context
        // (the rule of docs/security.md: each `connect_to_context` is
        // authorised on its own, with the credential it carries).
        let same_org = self
            .principal
            .as_ref()
            .is_some_and(|p| p.org_id() == context.org_id);
        let org_slot = match self.org_slot.take().filter(|_| same_org) {
            Some(slot) => slot,
            None => {
                let max = self.state.config.limits.max_sockets_per_org;
                let Some(slot) = self.state.sockets_per_org.enter(&context.org_id, max).await
                else {
                    self.state.metrics.refused("sockets_per_org");
                    return Err(ApiError::rate_limited(1)
                        .with_message("This organisation has the most sockets open that it may"));
                };
                slot
            }
        };
        self.detach();
        self.org_slot = Some(org_slot);
        self.principal = Some(principal.clone());
        let hub = self.state.hubs.get_or_create(&context);
        let subscription = hub
            .subscribe(p.resume_after_seq, self.state.config.outbound_queue)
            .await;
        if let Some(served) = subscription.resumed {
            self.state.metrics.resume(served);
        }
        self.subscription_id = Some(subscription.id);
        self.armed = subscription.armed;
        self.live = Some(subscription.rx);
        self.hub = Some(hub.clone());
        tracing::info!(
            context_id = %context.context_id,
            credential = principal.kind(),
            resume_after_seq = ?p.resume_after_seq,
            resumed = ?subscription.resumed,
            replayed = subscription.replay.len(),
            "connected to context"
        );

        let speaks_first = agent.agent_speaks_first;
        // A base server advertises nothing: no extensions, no `seq`.
        let extensions = !self.state.config.base_protocol;
        let result = ConnectResult {
            success: true,
            agent_speaks_first: speaks_first,
            agent: Some(agent),
            server: extensions.then(|| ServerInfo {
                name: SERVER_NAME.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                capabilities: capability::ALL.iter().map(|c| (*c).to_owned()).collect(),
            }),
            resumed: subscription.resumed.filter(|_| extensions),
            seq: extensions.then_some(subscription.seq),
        };
        if speaks_first && context.messages.is_empty() && hub.mark_greeted().await {
            if let Err(e) = invoke(&self.state, &hub, Invocation::SpeakFirst).await {
                tracing::warn!(context_id = %context.context_id, code = e.code, "greeting not started");
            }
        }
        let value = serde_json::to_value(&result).map_err(|_| ApiError::internal())?;
        Ok((value, subscription.replay))
    }

    async fn check_publishable_key(
        &self,
        org_id: &str,
        from_params: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(record) = self.state.store.get_publishable_key(org_id).await? else {
            return Ok(());
        };
        let presented = from_params.or(self.query_client_key.as_deref());
        let Some(presented) = presented.filter(|k| !k.is_empty()) else {
            self.state.metrics.auth_failure("missing_client_key");
            return Err(ApiError::missing_client_key());
        };
        let valid = presented
            .strip_prefix(PUBLISHABLE_KEY_PREFIX)
            .and_then(|jwt| self.state.jwt.verify(jwt).ok())
            .is_some_and(|c| {
                c.kind == TYPE_PUBLISHABLE
                    && c.org_id == record.org_id
                    && c.api_key_id.as_deref() == Some(record.key_id.as_str())
            });
        if !valid {
            self.state.metrics.auth_failure("invalid_client_key");
            return Err(ApiError::invalid_client_key());
        }
        // Both sides in their one spelling (keys stored before origins
        // were normalised are compared fairly too).
        let origin_allowed = self
            .origin
            .as_deref()
            .and_then(canonical_origin)
            .is_some_and(|o| {
                record
                    .allowed_origins
                    .iter()
                    .any(|a| canonical_origin(a).is_some_and(|a| a == o))
            });
        if !origin_allowed {
            self.state.metrics.auth_failure("client_key_mismatch");
            return Err(ApiError::client_key_mismatch());
        }
        Ok(())
    }

    /// Every method after the handshake.
    async fn call(
        &mut self,
        request: ClientRequest,
        key: Option<&str>,
    ) -> Result<Answer, ApiError> {
        let hub = self.hub.clone().ok_or_else(ApiError::not_connected)?;
        let invocation = match request {
            ClientRequest::ConnectToContext(_) => return Err(ApiError::internal()),
            ClientRequest::StopInvocation {} => {
                let running = hub.running_response().await;
                hub.stop_running().await;
                return Ok(Answer::Now(
                    json!({ "success": true, "response_id": running }),
                ));
            }
            ClientRequest::AddMessage { message } => {
                if message.is_empty() {
                    return Err(ApiError::invalid_params("No message provided"));
                }
                check_size(
                    "message",
                    message.len(),
                    self.state.config.limits.max_message_bytes,
                )?;
                Invocation::Message(message)
            }
            ClientRequest::SetLastMessages {
                human_message,
                ai_message,
            } => {
                if human_message.is_empty() {
                    return Err(ApiError::invalid_params("No human_message provided"));
                }
                check_size(
                    "message",
                    human_message.len() + ai_message.as_ref().map_or(0, String::len),
                    self.state.config.limits.max_message_bytes,
                )?;
                // Barge-in: the running response is cut where the human
                // interrupted it; the rewrite runs right after it stops.
                hub.stop_running().await;
                Invocation::SetLastMessages {
                    human: human_message,
                    ai: ai_message,
                }
            }
            ClientRequest::ClientSideToolResponses { tool_responses } => {
                if tool_responses.is_empty() {
                    return Err(ApiError::invalid_params("No tool_responses provided"));
                }
                let size = serde_json::to_string(&tool_responses).map_or(usize::MAX, |t| t.len());
                check_size(
                    "tool_responses",
                    size,
                    self.state.config.limits.max_message_bytes,
                )?;
                Invocation::ToolResponses(tool_responses)
            }
        };
        // The credential may have been revoked since the socket attached
        // (on this instance or another: the store is the one truth).
        if let Some(principal) = &self.principal {
            if let Err(e) = still_valid(&self.state, principal).await {
                if e.code == "unauthorized" {
                    self.close_after = Some((close::UNAUTHORIZED, "credential revoked"));
                }
                return Err(e);
            }
        }
        if self
            .state
            .store
            .context_org(hub.context_id())
            .await?
            .is_none()
        {
            return Err(ApiError::not_found(format!(
                "Context with id: {} does not exist",
                hub.context_id()
            )));
        }
        // The `idempotency` extension: a key seen before answers with the
        // response it started (its frames come through the replay), and
        // runs nothing. A base server has no such extension.
        let key = key.filter(|_| !self.state.config.base_protocol);
        let response_id = uuid::Uuid::new_v4().to_string();
        if let Some(key) = key {
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
                return Err(ApiError::invalid_params(format!(
                    "idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} bytes"
                )));
            }
            let limits = &self.state.config.limits;
            if let Some(original) = hub
                .claim_key(
                    key,
                    &response_id,
                    limits.idempotency_keys,
                    limits.idempotency_ttl,
                )
                .await
            {
                tracing::debug!(context_id = %hub.context_id(), response_id = %original, "repeated invocation");
                return Ok(Answer::Now(json!({
                    "success": true,
                    "response_id": original,
                    "repeated": true,
                })));
            }
        }
        let (response_id, done) = match invoke_as(&self.state, &hub, invocation, response_id).await
        {
            Ok(started) => started,
            Err(e) => {
                // Refused (busy, no credits): a retry with the key may run.
                if let Some(key) = key {
                    hub.release_key(key).await;
                }
                return Err(e);
            }
        };
        self.invoked = true;
        if self.state.config.base_protocol {
            return Ok(Answer::AfterReply(done));
        }
        Ok(Answer::Now(
            json!({ "success": true, "response_id": response_id }),
        ))
    }
}
