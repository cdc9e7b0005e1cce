//! One WebSocket connection: the handshake (`connect_to_context`), the
//! request loop, and the fan-in of the context's live frames.
//!
//! Every frame from the client is answered or ignored, never fatal: bad
//! JSON, unknown methods and bad params get a `result.error` with a
//! `result.code`. The credential is checked once, at `connect_to_context`;
//! the connection outlives the key's expiry.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokenrelay::wire::{
    capability, decode_client_frame, encode_response, ClientRequest, ConnectParams, ConnectResult,
    ServerInfo,
};
use tokio::sync::mpsc;

use super::{close, WsQuery};
use crate::auth::{authenticate, Principal};
use crate::conversation::{invoke, Fault, Hub, Invocation, Outbound};
use crate::error::ApiError;
use crate::jwt::TYPE_PUBLISHABLE;
use crate::secret::{sha256_hex, PUBLISHABLE_KEY_PREFIX};
use crate::state::AppState;
use crate::time::unix_now_ms;

/// Name the server advertises in `connect_to_context`.
pub const SERVER_NAME: &str = "tokenrelay-server";

/// Most live frames written before one flush, so a fast stream is sent in
/// batches without starving the read side.
const WRITE_BATCH: usize = 256;

type Sink = SplitSink<WebSocket, Message>;

struct Session {
    state: AppState,
    /// Set by a stream token at upgrade, or by `connect_to_context`.
    stream_principal: Option<Principal>,
    query_client_key: Option<String>,
    origin: Option<String>,
    hub: Option<Arc<Hub>>,
    subscription_id: Option<u64>,
    live: Option<mpsc::Receiver<Outbound>>,
}

async fn send_close(sink: &mut Sink, code: u16, reason: &str) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        })))
        .await;
    let _ = sink.close().await;
}

async fn next_live(live: &mut Option<mpsc::Receiver<Outbound>>) -> Option<Outbound> {
    match live {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs a session until the socket closes or the server shuts down.
pub async fn run(state: AppState, socket: WebSocket, query: WsQuery, origin: Option<String>) {
    let (mut sink, mut stream) = socket.split();
    let Some(_slot) = state.enter_session() else {
        tracing::warn!("connection refused: max_connections reached");
        send_close(&mut sink, close::POLICY, "too many connections").await;
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
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                send_close(&mut sink, close::GOING_AWAY, "server shutting down").await;
                break;
            }
            _ = tokio::time::sleep_until(handshake_deadline), if session.hub.is_none() => {
                send_close(&mut sink, close::POLICY, "no connect_to_context in time").await;
                break;
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
                Some(Outbound::Fault(fault)) => {
                    apply_fault(&mut sink, fault).await;
                    break;
                }
                None => {
                    // The hub detached us: we fell too far behind.
                    send_close(&mut sink, close::INTERNAL, "client too slow; reconnect and resume").await;
                    break;
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let replies = session.handle(text.as_str()).await;
                    let mut failed = false;
                    for reply in replies {
                        if sink.feed(Message::Text(reply)).await.is_err() {
                            failed = true;
                            break;
                        }
                    }
                    if failed || sink.flush().await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let e = ApiError::invalid_params("binary frames are not part of the protocol; send JSON text");
                    if sink.send(Message::Text(error_frame(None, &e))).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {} // ping/pong: answered by the library
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
/// flushes. Returns a fault met in the queue, which ends the session.
async fn write_live(
    sink: &mut Sink,
    session: &mut Session,
    first: Utf8Bytes,
) -> Result<Option<Fault>, ()> {
    let mut sent = 1u64;
    let mut fault = None;
    sink.feed(Message::Text(first)).await.map_err(drop)?;
    if let Some(rx) = session.live.as_mut() {
        while (sent as usize) < WRITE_BATCH {
            match rx.try_recv() {
                Ok(Outbound::Frame(frame)) => {
                    sink.feed(Message::Text(frame)).await.map_err(drop)?;
                    sent += 1;
                }
                Ok(Outbound::Fault(f)) => {
                    fault = Some(f);
                    break;
                }
                Err(_) => break,
            }
        }
    }
    session.state.metrics.frames_sent(sent);
    sink.flush().await.map_err(drop)?;
    Ok(fault)
}

/// Carries out an injected fault (test hook only).
async fn apply_fault(sink: &mut Sink, fault: Fault) {
    tracing::info!(?fault, "injecting fault");
    match fault {
        // Returning drops the socket: the TCP connection ends with no
        // close frame, like a network cut.
        Fault::Drop => {}
        Fault::Close(code) => send_close(sink, code, "fault injected").await,
    }
}

fn error_frame(id: Option<&str>, error: &ApiError) -> Utf8Bytes {
    let frame = match id {
        Some(id) => encode_response(id, &error.ws_result()),
        None => json!({ "id": Value::Null, "result": error.ws_result() }).to_string(),
    };
    Utf8Bytes::from(frame)
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
    }

    /// Handles one text frame; returns the frames to send, in order.
    async fn handle(&mut self, text: &str) -> Vec<Utf8Bytes> {
        let incoming = match decode_client_frame(text) {
            Ok(incoming) => incoming,
            Err(e) => {
                let error = ApiError::invalid_params(e.to_string());
                return vec![error_frame(None, &error)];
            }
        };
        let id = incoming.id;
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
                return match id {
                    Some(id) => vec![error_frame(Some(&id), &error)],
                    None => Vec::new(),
                };
            }
        };
        let method = request.method();
        let outcome = match request {
            ClientRequest::ConnectToContext(params) => self.connect(params).await,
            other => self.call(other).await.map(|r| (r, Vec::new())),
        };
        match (outcome, id) {
            (Ok((result, extra)), Some(id)) => {
                let mut frames = vec![ok_frame(&id, result)];
                frames.extend(extra);
                frames
            }
            (Ok((_, extra)), None) => extra,
            (Err(error), Some(id)) => {
                tracing::debug!(method, code = error.code, "request refused");
                vec![error_frame(Some(&id), &error)]
            }
            (Err(error), None) => {
                tracing::debug!(method, code = error.code, "notification refused");
                Vec::new()
            }
        }
    }

    /// `connect_to_context`: authenticate, authorize, attach, maybe greet.
    /// Returns the result and the replayed frames that must follow it.
    async fn connect(&mut self, p: ConnectParams) -> Result<(Value, Vec<Utf8Bytes>), ApiError> {
        if p.context_id.is_empty() {
            return Err(ApiError::invalid_params("No context_id provided"));
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

        // Re-connecting on the same socket moves it to the new context.
        self.detach();
        let hub = self.state.hubs.get_or_create(&context);
        let subscription = hub.subscribe(p.resume_after_seq, self.state.config.outbound_queue);
        self.subscription_id = Some(subscription.id);
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
        let result = ConnectResult {
            success: true,
            agent_speaks_first: speaks_first,
            agent: Some(agent),
            server: Some(ServerInfo {
                name: SERVER_NAME.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                capabilities: capability::ALL.iter().map(|c| (*c).to_owned()).collect(),
            }),
            resumed: subscription.resumed,
            seq: Some(subscription.seq),
        };
        if speaks_first && context.messages.is_empty() && hub.mark_greeted() {
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
        let origin_allowed = self
            .origin
            .as_deref()
            .is_some_and(|o| record.allowed_origins.iter().any(|a| a == o));
        if !origin_allowed {
            self.state.metrics.auth_failure("client_key_mismatch");
            return Err(ApiError::client_key_mismatch());
        }
        Ok(())
    }

    /// Every method after the handshake.
    async fn call(&mut self, request: ClientRequest) -> Result<Value, ApiError> {
        let hub = self.hub.clone().ok_or_else(ApiError::not_connected)?;
        let invocation = match request {
            ClientRequest::ConnectToContext(_) => return Err(ApiError::internal()),
            ClientRequest::StopInvocation {} => {
                let running = hub.running_response();
                hub.stop_running();
                return Ok(json!({ "success": true, "response_id": running }));
            }
            ClientRequest::AddMessage { message } => {
                if message.is_empty() {
                    return Err(ApiError::invalid_params("No message provided"));
                }
                Invocation::Message(message)
            }
            ClientRequest::SetLastMessages {
                human_message,
                ai_message,
            } => {
                if human_message.is_empty() {
                    return Err(ApiError::invalid_params("No human_message provided"));
                }
                // Barge-in: the running response is cut where the human
                // interrupted it; the rewrite runs right after it stops.
                hub.stop_running();
                Invocation::SetLastMessages {
                    human: human_message,
                    ai: ai_message,
                }
            }
            ClientRequest::ClientSideToolResponses { tool_responses } => {
                if tool_responses.is_empty() {
                    return Err(ApiError::invalid_params("No tool_responses provided"));
                }
                Invocation::ToolResponses(tool_responses)
            }
        };
        if self
            .state
            .store
            .get_context(&hub.context_id)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found(format!(
                "Context with id: {} does not exist",
                hub.context_id
            )));
        }
        let (response_id, _done) = invoke(&self.state, &hub, invocation).await?;
        Ok(json!({ "success": true, "response_id": response_id }))
    }
}
