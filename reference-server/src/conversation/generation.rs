//! Running one agent response on a hub: edit the history, drive the
//! engine, publish its output as notifications, persist the result.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};
use tokenrelay::wire::{
    Agent, ClientSideToolCallsParams, EventsParams, Notification, StopReason, StopTokenParams,
    ToolCallParams, ToolResponseParam, ToolResponseParams,
};
use tokio::sync::{oneshot, Notify};

use super::hub::Running;
use super::shared::{Hub, Place};
use crate::engine::{EngineEvent, EngineSink, GenerateRequest, Trigger};
use crate::error::ApiError;
use crate::state::AppState;

/// What to do to the history before the agent responds.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// Append a human message.
    Message(String),
    /// Rewrite the tail (voice barge-in), then respond to `human`.
    SetLastMessages {
        /// The new human message.
        human: String,
        /// The part of the AI message the human heard before interrupting.
        ai: Option<String>,
    },
    /// Record the client's tool answers, then respond.
    ToolResponses(Vec<ToolResponseParam>),
    /// The agent speaks first.
    SpeakFirst,
}

/// How a response ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Its id.
    pub response_id: String,
    /// Its whole text.
    pub text: String,
    /// Why it ended.
    pub reason: StopReason,
}

/// Queues a response on the hub and returns its id at once, plus a
/// receiver for its outcome. Charges the org's credits first.
pub async fn invoke(
    state: &AppState,
    hub: &Arc<dyn Hub>,
    invocation: Invocation,
) -> Result<(String, oneshot::Receiver<Outcome>), ApiError> {
    invoke_as(state, hub, invocation, uuid::Uuid::new_v4().to_string()).await
}

/// [`invoke`] with the response id chosen by the caller (an idempotency
/// key was claimed for it first).
pub async fn invoke_as(
    state: &AppState,
    hub: &Arc<dyn Hub>,
    invocation: Invocation,
    response_id: String,
) -> Result<(String, oneshot::Receiver<Outcome>), ApiError> {
    if state.is_shutting_down() {
        // Draining: what runs here finishes, nothing new starts. 503 tells
        // the caller (and a balancer) to go to another instance.
        state.metrics.refused("draining");
        return Err(ApiError::unavailable(
            "the server is shutting down; retry on another instance",
        ));
    }
    // Reserve a place in the context's queue before anything is charged:
    // every queued invocation is a task and, later, an engine run, so the
    // queue is bounded however fast a client sends.
    let max = state.config.limits.max_pending_invocations;
    if hub
        .pending()
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < max).then_some(n + 1)
        })
        .is_err()
    {
        state.metrics.refused("context_busy");
        return Err(ApiError::context_busy());
    }
    let cost = state.config.credits_per_response;
    if cost > 0 {
        match state.store.charge_credits(hub.org_id(), cost).await {
            Ok(true) => {}
            Ok(false) => {
                hub.pending().fetch_sub(1, Ordering::SeqCst);
                return Err(ApiError::payment_required());
            }
            Err(e) => {
                hub.pending().fetch_sub(1, Ordering::SeqCst);
                return Err(e.into());
            }
        }
    }
    let (done_tx, done_rx) = oneshot::channel();
    let state = state.clone();
    let hub = hub.clone();
    let id = response_id.clone();
    // The place in line is taken here, in the order the caller invokes;
    // the task may start after a later invocation's task.
    let place = hub.arrival().join();
    tokio::spawn(async move {
        let outcome = run(&state, &hub, invocation, id, place).await;
        hub.pending().fetch_sub(1, Ordering::SeqCst);
        if let Some(outcome) = outcome {
            let _ = done_tx.send(outcome);
        }
    });
    Ok((response_id, done_rx))
}

fn sender_index(history: &[Value], sender: &str) -> Option<usize> {
    history
        .iter()
        .rposition(|m| m.get("sender").and_then(Value::as_str) == Some(sender))
}

/// Applies `set_last_messages` to a history (both documented scenarios).
pub fn set_last_messages(history: &mut Vec<Value>, human: &str, ai: Option<&str>) {
    match ai {
        // Barge-in: the human interrupted the agent; keep only what was
        // heard of its last message, then the interruption.
        Some(ai) => {
            match sender_index(history, "ai") {
                Some(i) => history[i] = json!({"sender": "ai", "message": ai}),
                None => history.push(json!({"sender": "ai", "message": ai})),
            }
            history.push(json!({"sender": "human", "message": human}));
        }
        // Correction: replace the last human turn and everything after it.
        None => {
            if let Some(i) = sender_index(history, "human") {
                history.truncate(i);
            }
            history.push(json!({"sender": "human", "message": human}));
        }
    }
}

/// A filled prompt would exceed its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptTooLarge;

/// Substitutes the context's `prompt_args` into the agent's prompt:
/// `{name}` becomes the argument's value (strings as is, anything else as
/// JSON). Unknown placeholders stay as they are.
///
/// One pass over the prompt: text that came from an argument is never
/// scanned again, so an argument holding `{other}` stays literal and the
/// output is at most `prompt + one value per placeholder`, never the
/// product of the arguments (a replace per argument, rescanning what the
/// previous ones inserted, let 12 KB of arguments ask for terabytes).
/// The output is also capped at `max_bytes`.
pub fn fill_prompt(prompt: &str, args: &Value, max_bytes: usize) -> Result<String, PromptTooLarge> {
    let Some(args) = args.as_object().filter(|a| !a.is_empty()) else {
        return if prompt.len() > max_bytes {
            Err(PromptTooLarge)
        } else {
            Ok(prompt.to_owned())
        };
    };
    let mut out = String::with_capacity(prompt.len().min(max_bytes));
    let mut rest = prompt;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        // The name runs to the next `}`; a `{` before it means this brace
        // opens no placeholder, so it is copied and the scan goes on.
        let value = after
            .find('}')
            .filter(|close| !after[..*close].contains('{'))
            .and_then(|close| args.get(&after[..close]).map(|v| (close, v)));
        match value {
            Some((close, value)) => {
                match value {
                    Value::String(s) => out.push_str(s),
                    other => out.push_str(&other.to_string()),
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
        if out.len() > max_bytes {
            return Err(PromptTooLarge);
        }
    }
    out.push_str(rest);
    if out.len() > max_bytes {
        return Err(PromptTooLarge);
    }
    Ok(out)
}

/// Keeps a history within its bounds by dropping its oldest entries: at
/// most `max_entries`, and at most `max_bytes` of JSON. The newest entry
/// always stays, so the engine sees what it must answer.
pub fn trim_history(history: &mut Vec<Value>, max_entries: usize, max_bytes: usize) {
    let mut keep_from = history.len().saturating_sub(max_entries.max(1));
    let mut bytes = 0usize;
    for (i, entry) in history.iter().enumerate().rev() {
        if i < keep_from {
            break;
        }
        bytes = bytes.saturating_add(entry.to_string().len());
        if bytes > max_bytes && i + 1 < history.len() {
            keep_from = i + 1;
            break;
        }
    }
    if keep_from > 0 {
        history.drain(..keep_from);
    }
}

/// Most tokens published in one step: bounds the frames one Redis script
/// call carries (and the time the reply waits on it).
const MAX_TOKEN_BATCH: usize = 64;

/// The next engine event: the one held back behind a batch of tokens, else
/// the next from the engine. Cancel-safe (the held event is taken only when
/// it is returned), as `select!` needs.
async fn next_event(
    held: &mut Option<EngineEvent>,
    rx: &mut tokio::sync::mpsc::Receiver<EngineEvent>,
) -> Option<EngineEvent> {
    match held.take() {
        Some(event) => Some(event),
        None => rx.recv().await,
    }
}

async fn run(
    state: &AppState,
    hub: &Arc<dyn Hub>,
    invocation: Invocation,
    response_id: String,
    mut place: Place,
) -> Option<Outcome> {
    place.wait().await;
    let _turn = hub.turn().await;
    // Holding the turn, this invocation lets the next one queue behind it
    // (the turn's lock serves its waiters first come, first served).
    drop(place);
    if state.generations_cut() {
        // Queued before the drain, still waiting when its timeout lapsed:
        // it ends at once, visibly, so a client that resumed elsewhere is
        // not left waiting for a reply that will never come.
        return Some(cut_before_start(state, hub, response_id).await);
    }
    let context = match state.store.get_context(hub.context_id()).await {
        Ok(Some(c)) => c,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(context_id = %hub.context_id(), error = %e, "cannot load context");
            return None;
        }
    };
    let agent = state
        .store
        .get_agent(&context.agent_id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| Agent::new(context.agent_id.clone()));
    let limits = &state.config.limits;
    let filled = fill_prompt(&agent.prompt, &context.prompt_args, limits.max_prompt_bytes);
    let mut history = context.messages;
    let trigger = match invocation {
        Invocation::Message(m) => {
            history.push(json!({"sender": "human", "message": m}));
            Trigger::Message(m)
        }
        Invocation::SetLastMessages { human, ai } => {
            set_last_messages(&mut history, &human, ai.as_deref());
            Trigger::Message(human)
        }
        Invocation::ToolResponses(responses) => {
            for r in &responses {
                history.push(json!({
                    "type": "tool_response",
                    "tool_call_id": r.tool_call_id,
                    "tool_output": r.response,
                }));
            }
            Trigger::ToolResponses(responses)
        }
        Invocation::SpeakFirst => Trigger::SpeakFirst,
    };
    trim_history(
        &mut history,
        limits.max_history_messages,
        limits.max_history_bytes,
    );

    let stop = Arc::new(Notify::new());
    hub.set_running(Some(Running {
        response_id: response_id.clone(),
        stop: stop.clone(),
    }))
    .await;
    tracing::debug!(context_id = %hub.context_id(), response_id = %response_id, "generation started");
    if state.config.base_protocol {
        // The hosted service sends notifications no client knows; clients
        // must ignore them (docs/protocol.md §2).
        hub.publish(Notification::Unknown {
            method: "on_agent_status".into(),
            params: json!({"status": "thinking", "response_id": response_id}),
        })
        .await;
    }

    let (sink, mut rx) = EngineSink::channel(256);
    let engine = state.engine.clone();
    let request = GenerateRequest {
        agent,
        history: history.clone(),
        trigger,
        response_id: response_id.clone(),
        context_id: hub.context_id().to_owned(),
        webhooks: Some(state.webhooks.clone()),
    };
    let mut task = tokio::spawn(async move {
        match filled {
            Ok(prompt) => {
                let mut request = request;
                request.agent.prompt = prompt;
                engine.generate(request, sink).await
            }
            // The agent's prompt was changed after the context was created
            // and no longer fits with its arguments: nothing is generated.
            Err(PromptTooLarge) => Err(crate::engine::EngineError::prompt_too_large(
                "the filled prompt exceeds max_prompt_bytes",
            )),
        }
    });

    let rid = response_id.as_str();
    let mut text = String::new();
    let mut events = Vec::new();
    let mut client_calls = Vec::new();
    let mut ended = None;
    // For time to first token: from here, where the engine runs.
    let started = std::time::Instant::now();
    let mut first_token = true;
    // An event read behind a batch of tokens, handled next.
    let mut held = None;
    let reason = loop {
        tokio::select! {
            biased;
            _ = stop.notified() => {
                task.abort();
                // The only stop that is nobody's request: the drain
                // timeout lapsed (server::ServerHandle::shutdown).
                break if state.generations_cut() {
                    StopReason::Shutdown
                } else {
                    StopReason::Stopped
                };
            }
            event = next_event(&mut held, &mut rx) => match event {
                Some(EngineEvent::Token(token)) => {
                    if std::mem::take(&mut first_token) {
                        state.metrics.first_token(started.elapsed());
                    }
                    // The tokens the engine has already queued behind this
                    // one go with it, in one step of the hub's (one round
                    // trip to Redis, not one each); none is waited for.
                    let mut batch = vec![token];
                    while batch.len() < MAX_TOKEN_BATCH {
                        match rx.try_recv() {
                            Ok(EngineEvent::Token(token)) => batch.push(token),
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    for token in &batch {
                        text.push_str(token);
                        state.metrics.token_generated();
                    }
                    let sockets = hub.publish_tokens(rid, batch).await;
                    state.metrics.tokens_sent(sockets as u64);
                }
                Some(EngineEvent::ToolCall { tool_call_id, tool_name, tool_input }) => {
                    history.push(json!({
                        "type": "tool_call",
                        "tool_call_id": tool_call_id,
                        "tool_name": tool_name,
                        "tool_input": tool_input,
                    }));
                    hub.publish(Notification::ToolCall(ToolCallParams {
                        tool_call_id,
                        tool_name,
                        tool_input,
                        response_id: Some(response_id.clone()),
                        seq: None,
                    })).await;
                }
                Some(EngineEvent::ToolResponse { tool_call_id, tool_name, tool_output }) => {
                    history.push(json!({
                        "type": "tool_response",
                        "tool_call_id": tool_call_id,
                        "tool_name": tool_name,
                        "tool_output": tool_output,
                    }));
                    hub.publish(Notification::ToolResponse(ToolResponseParams {
                        tool_call_id,
                        tool_name,
                        tool_output,
                        response_id: Some(response_id.clone()),
                        seq: None,
                    })).await;
                }
                Some(EngineEvent::ClientSideToolCalls(calls)) => client_calls.extend(calls),
                Some(EngineEvent::Events(evs)) => events.extend(evs),
                Some(EngineEvent::End(reason)) => ended = Some(reason),
                // The engine dropped its sink: it returned.
                None => break match (&mut task).await {
                    Ok(Ok(())) => ended.unwrap_or(StopReason::Complete),
                    Ok(Err(e)) => {
                        tracing::warn!(context_id = %hub.context_id(), response_id = %rid, error = %e, "engine failed");
                        state.metrics.engine_error(e.kind().as_str());
                        StopReason::Error
                    }
                    Err(_) => {
                        // The engine's task panicked.
                        state.metrics.engine_error("panic");
                        StopReason::Error
                    }
                },
            },
        }
    };
    state.metrics.reply_ended(reason.as_str());

    if !text.is_empty() {
        history.push(json!({"sender": "ai", "message": text}));
    }
    trim_history(
        &mut history,
        limits.max_history_messages,
        limits.max_history_bytes,
    );
    let base = state.config.base_protocol;
    if base {
        // The hosted service ends a reply with `on_stop_token` (no reason:
        // that is an extension), then what trails it.
        hub.publish(Notification::StopToken(StopTokenParams {
            response_id: Cow::Borrowed(rid),
            reason: None,
            seq: None,
        }))
        .await;
    }
    if reason == StopReason::Complete {
        if !client_calls.is_empty() {
            // `asked_at_ms` (unix milliseconds) lets the continuation
            // tell answers that came too late (engine::rounds).
            history.push(json!({
                "type": "client_side_tool_calls",
                "tool_calls": client_calls.clone(),
                "asked_at_ms": crate::time::unix_now_ms(),
            }));
        }
        // The reference server's order puts them before the stop, so a
        // client sees the reply whole at its stop; the base order (the
        // hosted one) is client-side calls, then events, after it.
        let calls = (!client_calls.is_empty()).then(|| {
            Notification::ClientSideToolCalls(ClientSideToolCallsParams {
                tool_calls: client_calls,
                response_id: Some(response_id.clone()),
                seq: None,
            })
        });
        let events = (!events.is_empty()).then(|| {
            Notification::Events(EventsParams {
                events,
                response_id: Some(response_id.clone()),
                seq: None,
            })
        });
        let trailing = if base {
            [calls, events]
        } else {
            [events, calls]
        };
        for notification in trailing.into_iter().flatten() {
            hub.publish(notification).await;
        }
    }
    if !base {
        hub.publish(Notification::StopToken(StopTokenParams {
            response_id: Cow::Borrowed(rid),
            reason: Some(reason),
            seq: None,
        }))
        .await;
    }
    hub.set_running(None).await;
    if let Err(e) = state
        .store
        .save_context_history(hub.context_id(), &history, hub.last_seq().await)
        .await
    {
        tracing::error!(context_id = %hub.context_id(), error = %e, "cannot save history");
    }
    tracing::debug!(context_id = %hub.context_id(), response_id = %rid, ?reason, "generation ended");
    Some(Outcome {
        response_id,
        text,
        reason,
    })
}

/// Ends a response that never started because the server's drain timeout
/// lapsed while it was queued: an empty `on_stop_token` with
/// `reason: shutdown` (SDKs report it `interrupted`). The history is left
/// as it was.
async fn cut_before_start(state: &AppState, hub: &Arc<dyn Hub>, response_id: String) -> Outcome {
    let reason = StopReason::Shutdown;
    state.metrics.reply_ended(reason.as_str());
    hub.publish(Notification::StopToken(StopTokenParams {
        response_id: Cow::Borrowed(&response_id),
        reason: (!state.config.base_protocol).then_some(reason),
        seq: None,
    }))
    .await;
    tracing::debug!(context_id = %hub.context_id(), response_id = %response_id, "queued generation cut by the drain timeout");
    Outcome {
        response_id,
        text: String::new(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_args_fill_placeholders() {
        let args = json!({"name": "Ann", "n": 3});
        let fill = |p: &str, a: &Value| fill_prompt(p, a, 1 << 20).unwrap();
        assert_eq!(fill("Hi {name}, {n} {other}", &args), "Hi Ann, 3 {other}");
        assert_eq!(fill("Hi {name}", &json!({})), "Hi {name}");
        assert_eq!(fill("{{name}} {", &args), "{Ann} {");
        assert_eq!(fill("{na{name}}", &args), "{naAnn}");
    }

    #[test]
    fn inserted_text_is_never_rescanned() {
        // The review's amplification: each level multiplied the text by a
        // thousand when every pass rescanned the previous one's output.
        let args = json!({
            "a": "{b}".repeat(1000),
            "b": "{c}".repeat(1000),
            "c": "x".repeat(100),
        });
        let filled = fill_prompt("P:{a}", &args, 1 << 20).unwrap();
        assert_eq!(filled, format!("P:{}", "{b}".repeat(1000)));
        assert_eq!(
            fill_prompt("{c}{c}", &args, 150),
            Err(PromptTooLarge),
            "the output bound holds"
        );
        assert_eq!(fill_prompt("long", &json!({}), 3), Err(PromptTooLarge));
    }

    #[test]
    fn history_keeps_its_newest_entries_within_both_bounds() {
        let entry = |i: usize| json!({"sender": "human", "message": format!("m{i:04}")});
        let mut h: Vec<Value> = (0..10).map(entry).collect();
        trim_history(&mut h, 4, 1 << 20);
        assert_eq!(h, (6..10).map(entry).collect::<Vec<_>>());
        let one = entry(0).to_string().len();
        let mut h: Vec<Value> = (0..10).map(entry).collect();
        trim_history(&mut h, 100, one * 3);
        assert_eq!(h, (7..10).map(entry).collect::<Vec<_>>());
        // The newest entry survives even when it alone is too big.
        let mut h: Vec<Value> = (0..3).map(entry).collect();
        trim_history(&mut h, 100, 1);
        assert_eq!(h, vec![entry(2)]);
    }

    #[test]
    fn set_last_messages_scenarios() {
        let base = vec![
            json!({"sender": "human", "message": "a"}),
            json!({"sender": "ai", "message": "long answer"}),
        ];
        let mut h = base.clone();
        set_last_messages(&mut h, "b", Some("long"));
        assert_eq!(h[1]["message"], "long");
        assert_eq!(h[2]["message"], "b");
        let mut h = base.clone();
        set_last_messages(&mut h, "a2", None);
        assert_eq!(h, vec![json!({"sender": "human", "message": "a2"})]);
    }
}
