//! An OpenAI-compatible chat-completions upstream, streamed (SSE).
//!
//! Content deltas become tokens; tool-call deltas are assembled (their
//! `arguments` arrive in pieces). Each upstream call is one round of the
//! shared loop ([`super::rounds`]): server tools run through the engine's
//! [`ToolRunner`] and their answers go back to the model as `tool`
//! messages (with their `tool_call_id`) for the next round; tools the
//! agent marks `"client_side": true` go to the client.
//!
//! The transcript sent upstream is rebuilt from the context's history
//! (human and AI messages, tool calls and their answers), so a
//! continuation after client-side tools, or a later turn, shows the model
//! every earlier round.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::rounds::{run_rounds, NoTools, RoundModel, RoundsConfig, ToolCall, ToolRunner};
use super::{Engine, EngineError, EngineSink, GenerateRequest};

/// Where the upstream is and how to call it.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// Base URL, e.g. `https://api.openai.com/v1` (`/chat/completions` is
    /// appended).
    pub base_url: String,
    /// Bearer key; never logged.
    pub api_key: Option<String>,
    /// Model name.
    pub model: String,
    /// Connecting to the upstream may take this long.
    pub connect_timeout: std::time::Duration,
    /// An upstream that sends nothing for this long (before its answer
    /// starts, or between two chunks of it) ends the response with
    /// `stop_reason: error`: a hung upstream must not hold the context's
    /// generation lock forever.
    pub read_timeout: std::time::Duration,
}

impl OpenAiConfig {
    /// A config with the default timeouts (10 s to connect, 60 s of
    /// silence).
    pub fn new(
        base_url: impl Into<String>,
        api_key: Option<String>,
        model: impl Into<String>,
    ) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            api_key,
            model: model.into(),
            connect_timeout: std::time::Duration::from_secs(10),
            read_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Longest SSE line kept while waiting for its newline; an upstream that
/// never sends one cannot grow the buffer past it.
const MAX_SSE_LINE: usize = 1024 * 1024;
/// Most bytes of one tool call's arguments assembled from deltas.
const MAX_TOOL_ARGUMENTS: usize = 256 * 1024;

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

/// The upstream engine.
#[derive(Clone)]
pub struct OpenAiEngine {
    config: OpenAiConfig,
    http: reqwest::Client,
    rounds: RoundsConfig,
    tools: Arc<dyn ToolRunner>,
}

impl std::fmt::Debug for OpenAiEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEngine")
            .field("config", &self.config)
            .field("rounds", &self.rounds)
            .finish_non_exhaustive()
    }
}

impl OpenAiEngine {
    /// An engine for `config`.
    pub fn new(config: OpenAiConfig) -> Self {
        // reqwest is built without a default TLS provider; install ring once
        // (an error only means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .build()
            .unwrap_or_else(|e| {
                // Only a broken TLS setup fails here; without timeouts the
                // engine still works, so say so and go on.
                tracing::error!(error = %e, "cannot build the upstream client with timeouts");
                reqwest::Client::new()
            });
        OpenAiEngine {
            config,
            http,
            rounds: RoundsConfig::default(),
            tools: Arc::new(NoTools),
        }
    }

    /// The same engine with other round bounds.
    pub fn with_rounds(mut self, rounds: RoundsConfig) -> Self {
        self.rounds = rounds;
        self
    }

    /// The same engine running server tools with `tools` (by default none
    /// is available: each answers an error the model sees).
    pub fn with_tools(mut self, tools: Arc<dyn ToolRunner>) -> Self {
        self.tools = tools;
        self
    }

    /// The transcript for the upstream: the system prompt, then the
    /// history as chat messages. Consecutive tool calls become one
    /// assistant message with `tool_calls`, answers become `tool` messages;
    /// a call the history never answered gets an answer saying so, and an
    /// answer to no known call becomes a user message, so the transcript
    /// stays one the upstream accepts.
    fn messages(request: &GenerateRequest) -> Vec<Value> {
        let mut messages = vec![json!({"role": "system", "content": request.agent.prompt})];
        // Calls of the latest assistant tool message not answered yet.
        let mut open: Vec<String> = Vec::new();
        let mut in_calls = false;
        let close_open = |messages: &mut Vec<Value>, open: &mut Vec<String>| {
            for id in open.drain(..) {
                messages.push(json!({
                    "role": "tool",
                    "tool_call_id": id,
                    "content": "error: no answer",
                }));
            }
        };
        for m in &request.history {
            let kind = m.get("type").and_then(Value::as_str);
            let sender = m.get("sender").and_then(Value::as_str);
            match (kind, sender) {
                (Some("tool_call"), _) => {
                    let call = function_call(m);
                    let id = m
                        .get("tool_call_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let continues = in_calls
                        && messages
                            .last()
                            .is_some_and(|l| l.get("tool_calls").is_some());
                    if !continues {
                        close_open(&mut messages, &mut open);
                        messages
                            .push(json!({"role": "assistant", "content": null, "tool_calls": []}));
                    }
                    if let Some(Value::Array(calls)) =
                        messages.last_mut().and_then(|l| l.get_mut("tool_calls"))
                    {
                        calls.push(call);
                    }
                    open.push(id.to_owned());
                    in_calls = true;
                    continue;
                }
                (Some("client_side_tool_calls"), _) => {
                    close_open(&mut messages, &mut open);
                    let calls: Vec<Value> = m
                        .get("tool_calls")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(function_call)
                        .collect();
                    open.extend(
                        calls
                            .iter()
                            .filter_map(|c| c["id"].as_str().map(str::to_owned)),
                    );
                    if !calls.is_empty() {
                        messages.push(
                            json!({"role": "assistant", "content": null, "tool_calls": calls}),
                        );
                    }
                }
                (Some("tool_response"), _) => {
                    let id = m
                        .get("tool_call_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let output = text_of(m.get("tool_output"));
                    match open.iter().position(|o| o == id) {
                        Some(i) => {
                            open.remove(i);
                            messages.push(json!({
                                "role": "tool",
                                "tool_call_id": id,
                                "content": output,
                            }));
                        }
                        None => messages.push(json!({
                            "role": "user",
                            "content": format!("Tool {id} returned: {output}"),
                        })),
                    }
                }
                (_, Some("human")) => {
                    close_open(&mut messages, &mut open);
                    messages.push(json!({"role": "user", "content": m.get("message")}));
                }
                (_, Some("ai")) => {
                    close_open(&mut messages, &mut open);
                    messages.push(json!({"role": "assistant", "content": m.get("message")}));
                }
                _ => {}
            }
            in_calls = false;
        }
        close_open(&mut messages, &mut open);
        messages
    }

    /// The names of the agent's tools marked `"client_side": true`.
    fn client_side_names(request: &GenerateRequest) -> HashSet<String> {
        request
            .agent
            .tools
            .iter()
            .filter(|t| t.get("client_side").and_then(Value::as_bool) == Some(true))
            .filter_map(|t| {
                t.get("name")
                    .or_else(|| t.pointer("/function/name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect()
    }

    fn tools(request: &GenerateRequest) -> Vec<Value> {
        request
            .agent
            .tools
            .iter()
            .filter_map(|t| match t {
                Value::String(name) => Some(json!({
                    "type": "function",
                    "function": {"name": name, "parameters": {"type": "object", "properties": {}}},
                })),
                // The upstream gets the OpenAI shape only: our markers
                // stay here.
                Value::Object(o) if o.contains_key("function") => {
                    let mut o = o.clone();
                    o.remove("client_side");
                    // The webhook URL is the operator's, not the model's.
                    o.remove("webhook");
                    Some(Value::Object(o))
                }
                Value::Object(o) => o.get("name").map(|name| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": name,
                            "description": o.get("description").cloned().unwrap_or(Value::Null),
                            "parameters": o.get("parameters").cloned()
                                .unwrap_or(json!({"type": "object", "properties": {}})),
                        },
                    })
                }),
                _ => None,
            })
            .collect()
    }
}

/// A tool call being assembled from deltas.
#[derive(Default)]
struct PendingCall {
    id: String,
    name: String,
    arguments: String,
}

/// A tool call of the history (`tool_call` entry or one of a
/// `client_side_tool_calls` entry) as an OpenAI `tool_calls` item.
fn function_call(m: &Value) -> Value {
    let input = m.get("tool_input").cloned().unwrap_or(json!({}));
    json!({
        "id": m.get("tool_call_id").and_then(Value::as_str).unwrap_or_default(),
        "type": "function",
        "function": {
            "name": m.get("tool_name").and_then(Value::as_str).unwrap_or_default(),
            "arguments": input.to_string(),
        },
    })
}

/// A tool output as text (the history holds strings; anything else is
/// sent as JSON).
fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

#[async_trait]
impl Engine for OpenAiEngine {
    async fn generate(&self, request: GenerateRequest, out: EngineSink) -> Result<(), EngineError> {
        let mut model = OpenAiRounds {
            engine: self,
            messages: Self::messages(&request),
            tools: Self::tools(&request),
            client_side: Self::client_side_names(&request),
            response_id: &request.response_id,
        };
        run_rounds(&mut model, &*self.tools, &self.rounds, &request, &out).await
    }
}

/// One response's conversation with the upstream, round after round.
struct OpenAiRounds<'a> {
    engine: &'a OpenAiEngine,
    messages: Vec<Value>,
    tools: Vec<Value>,
    client_side: HashSet<String>,
    response_id: &'a str,
}

#[async_trait]
impl RoundModel for OpenAiRounds<'_> {
    async fn round(
        &mut self,
        index: usize,
        out: &EngineSink,
    ) -> Result<Vec<ToolCall>, EngineError> {
        let config = &self.engine.config;
        let mut body = json!({
            "model": config.model,
            "stream": true,
            "messages": self.messages,
        });
        if !self.tools.is_empty() {
            body["tools"] = Value::Array(self.tools.clone());
        }
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let mut call = self.engine.http.post(&url).json(&body);
        if let Some(key) = &config.api_key {
            call = call.bearer_auth(key);
        }
        // `read_timeout` covers each read, not the wait for the answer's
        // headers: bound that too.
        let response = tokio::time::timeout(config.read_timeout, call.send())
            .await
            .map_err(|_| EngineError::timeout("upstream timeout: no answer"))?
            .map_err(|e| {
                if e.is_timeout() {
                    EngineError::timeout("upstream timeout")
                } else {
                    EngineError::unreachable(format!("upstream unreachable: {e}"))
                }
            })?;
        if !response.status().is_success() {
            return Err(EngineError::upstream(format!(
                "upstream answered HTTP {}",
                response.status()
            )));
        }

        let mut said = String::new();
        let mut calls: Vec<PendingCall> = Vec::new();
        let mut buffer: Vec<u8> = Vec::new();
        let mut stream = response.bytes_stream();
        'outer: while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                if e.is_timeout() {
                    EngineError::timeout("upstream timeout: the stream went silent")
                } else {
                    EngineError::upstream(format!("upstream stream failed: {e}"))
                }
            })?;
            buffer.extend_from_slice(&chunk);
            if buffer.len() > MAX_SSE_LINE && !buffer.contains(&b'\n') {
                return Err(EngineError::upstream("upstream sent an oversized line"));
            }
            while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(data) = line.trim().strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    break 'outer;
                }
                let Ok(event) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                let Some(delta) = event.pointer("/choices/0/delta") else {
                    continue;
                };
                if let Some(text) = delta.get("content").and_then(Value::as_str) {
                    if !text.is_empty() {
                        said.push_str(text);
                        out.token(text).await?;
                    }
                }
                for tc in delta
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let index = tc.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                    if index > 64 {
                        continue;
                    }
                    while calls.len() <= index {
                        calls.push(PendingCall::default());
                    }
                    let pending = &mut calls[index];
                    if let Some(id) = tc.get("id").and_then(Value::as_str) {
                        pending.id = id.to_owned();
                    }
                    if let Some(f) = tc.get("function") {
                        if let Some(name) = f.get("name").and_then(Value::as_str) {
                            pending.name.push_str(name);
                        }
                        if let Some(args) = f.get("arguments").and_then(Value::as_str) {
                            if pending.arguments.len() + args.len() > MAX_TOOL_ARGUMENTS {
                                return Err(EngineError::upstream("upstream tool call too large"));
                            }
                            pending.arguments.push_str(args);
                        }
                    }
                }
            }
        }
        let calls: Vec<ToolCall> = calls
            .into_iter()
            .enumerate()
            .filter(|(_, c)| !c.name.is_empty())
            .map(|(i, c)| {
                let input = serde_json::from_str::<Value>(&c.arguments)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({ "arguments": c.arguments }));
                let id = if c.id.is_empty() {
                    format!("{}-r{index}-tool-{i}", self.response_id)
                } else {
                    c.id
                };
                ToolCall {
                    client_side: self.client_side.contains(&c.name),
                    id,
                    name: c.name,
                    input,
                }
            })
            .collect();
        // The model's turn goes into the transcript as it said it, so the
        // next round's request carries it before the tool answers.
        let mut turn = json!({
            "role": "assistant",
            "content": if said.is_empty() { Value::Null } else { Value::String(said) },
        });
        if !calls.is_empty() {
            turn["tool_calls"] = calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.input.to_string()},
                    })
                })
                .collect();
        }
        self.messages.push(turn);
        Ok(calls)
    }

    fn feed_results(&mut self, calls: &[ToolCall], outputs: &[String]) {
        for (call, output) in calls.iter().zip(outputs) {
            self.messages.push(json!({
                "role": "tool",
                "tool_call_id": call.id,
                "content": output,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Trigger;
    use tokenrelay::wire::Agent;

    #[test]
    fn webhook_urls_and_client_side_markers_never_go_upstream() {
        let mut agent = Agent::default();
        agent.tools = vec![
            json!({"name": "a", "webhook": "https://internal.example/a"}),
            json!({"type": "function", "function": {"name": "b"}, "webhook": "https://internal.example/b", "client_side": false}),
        ];
        let request = GenerateRequest {
            agent,
            history: Vec::new(),
            trigger: Trigger::SpeakFirst,
            response_id: "r".into(),
            context_id: "c".into(),
            webhooks: None,
        };
        let tools = Value::Array(OpenAiEngine::tools(&request)).to_string();
        assert!(!tools.contains("internal.example"), "{tools}");
        assert!(!tools.contains("client_side"), "{tools}");
        assert!(tools.contains("\"name\":\"a\"") && tools.contains("\"name\":\"b\""));
    }
}
