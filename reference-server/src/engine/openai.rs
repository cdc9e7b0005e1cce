//! An OpenAI-compatible chat-completions upstream, streamed (SSE).
//!
//! Content deltas become tokens; tool-call deltas are assembled (their
//! `arguments` arrive in pieces) and become `on_tool_call` notifications
//! when the upstream finishes. The reference server has no tool runtime, so
//! the response ends there; a client that owns the tools answers them.

use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::{Engine, EngineError, EngineEvent, EngineSink, GenerateRequest, Trigger};

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
#[derive(Debug, Clone)]
pub struct OpenAiEngine {
    config: OpenAiConfig,
    http: reqwest::Client,
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
        OpenAiEngine { config, http }
    }

    fn messages(request: &GenerateRequest) -> Vec<Value> {
        let mut messages = vec![json!({"role": "system", "content": request.agent.prompt})];
        for m in &request.history {
            match (m.get("sender").and_then(Value::as_str), m.get("message")) {
                (Some("human"), Some(text)) => {
                    messages.push(json!({"role": "user", "content": text}))
                }
                (Some("ai"), Some(text)) => {
                    messages.push(json!({"role": "assistant", "content": text}))
                }
                _ => {}
            }
        }
        if let Trigger::ToolResponses(responses) = &request.trigger {
            for r in responses {
                messages.push(json!({
                    "role": "user",
                    "content": format!("Tool {} returned: {}", r.tool_call_id, r.response),
                }));
            }
        }
        messages
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
                Value::Object(o) if o.contains_key("function") => Some(t.clone()),
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

#[async_trait]
impl Engine for OpenAiEngine {
    async fn generate(&self, request: GenerateRequest, out: EngineSink) -> Result<(), EngineError> {
        let mut body = json!({
            "model": self.config.model,
            "stream": true,
            "messages": Self::messages(&request),
        });
        let tools = Self::tools(&request);
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools);
        }
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let mut call = self.http.post(&url).json(&body);
        if let Some(key) = &self.config.api_key {
            call = call.bearer_auth(key);
        }
        // `read_timeout` covers each read, not the wait for the answer's
        // headers: bound that too.
        let response = tokio::time::timeout(self.config.read_timeout, call.send())
            .await
            .map_err(|_| EngineError("upstream timeout: no answer".into()))?
            .map_err(|e| {
                if e.is_timeout() {
                    EngineError("upstream timeout".into())
                } else {
                    EngineError(format!("upstream unreachable: {e}"))
                }
            })?;
        if !response.status().is_success() {
            return Err(EngineError(format!(
                "upstream answered HTTP {}",
                response.status()
            )));
        }

        let mut calls: Vec<PendingCall> = Vec::new();
        let mut buffer: Vec<u8> = Vec::new();
        let mut stream = response.bytes_stream();
        'outer: while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                if e.is_timeout() {
                    EngineError("upstream timeout: the stream went silent".into())
                } else {
                    EngineError(format!("upstream stream failed: {e}"))
                }
            })?;
            buffer.extend_from_slice(&chunk);
            if buffer.len() > MAX_SSE_LINE && !buffer.contains(&b'\n') {
                return Err(EngineError("upstream sent an oversized line".into()));
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
                                return Err(EngineError("upstream tool call too large".into()));
                            }
                            pending.arguments.push_str(args);
                        }
                    }
                }
            }
        }
        for (i, c) in calls.into_iter().enumerate() {
            let tool_input = serde_json::from_str(&c.arguments)
                .unwrap_or_else(|_| json!({ "arguments": c.arguments }));
            let tool_call_id = if c.id.is_empty() {
                format!("{}-tool-{i}", request.response_id)
            } else {
                c.id
            };
            out.send(EngineEvent::ToolCall {
                tool_call_id,
                tool_name: c.name,
                tool_input,
            })
            .await?;
        }
        Ok(())
    }
}
