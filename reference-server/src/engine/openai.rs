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
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
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
        OpenAiEngine {
            config,
            http: reqwest::Client::new(),
        }
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
        let response = call
            .send()
            .await
            .map_err(|e| EngineError(format!("upstream unreachable: {e}")))?;
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
            let chunk = chunk.map_err(|e| EngineError(format!("upstream stream failed: {e}")))?;
            buffer.extend_from_slice(&chunk);
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
