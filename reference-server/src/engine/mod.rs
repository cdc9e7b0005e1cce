//! The agent engine: what produces a response's tokens, tool calls and
//! events. The conversation layer drives an [`Engine`] and turns what it
//! emits into protocol notifications, so an engine knows nothing of
//! sockets, `seq` or replay.
//!
//! Two engines ship: [`ScriptedEngine`] (deterministic, driven by
//! directives in the message text; the default, see `ENGINE.md`) and
//! [`OpenAiEngine`] (an OpenAI-compatible streaming chat-completions
//! upstream). Both run their tool rounds through the same loop,
//! [`rounds::run_rounds`].

pub mod openai;
pub mod rounds;
pub mod scripted;

use async_trait::async_trait;
use serde_json::Value;
use tokenrelay::wire::{Agent, AgentEvent, StopReason, ToolResponseParam};
use tokio::sync::mpsc;

pub use openai::{OpenAiConfig, OpenAiEngine};
pub use rounds::{CannedTools, NoTools, RoundsConfig, ToolCall, ToolRunner};
pub use scripted::ScriptedEngine;

/// What made the agent respond.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A human message (`add_message`, `set_last_messages`, `POST /chat`).
    Message(String),
    /// The agent speaks first on connect.
    SpeakFirst,
    /// The client answered client-side tool calls.
    ToolResponses(Vec<ToolResponseParam>),
}

/// Everything an engine gets to produce one response.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The context's agent (prompt, tools).
    pub agent: Agent,
    /// History before this response, including the triggering human
    /// message when there is one.
    pub history: Vec<Value>,
    /// Why it runs.
    pub trigger: Trigger,
    /// Id of the response being produced.
    pub response_id: String,
}

/// One thing an engine produced, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// A piece of the response text.
    Token(String),
    /// The agent called a server-side tool.
    ToolCall {
        /// Id the tool response will carry.
        tool_call_id: String,
        /// Tool name.
        tool_name: String,
        /// Tool input.
        tool_input: Value,
    },
    /// A server-side tool answered.
    ToolResponse {
        /// The call it answers.
        tool_call_id: String,
        /// Tool name.
        tool_name: String,
        /// Tool output.
        tool_output: String,
    },
    /// Tools the client must run (sent when the response ends).
    ClientSideToolCalls(Vec<Value>),
    /// Events attached to the response (sent when it ends).
    Events(Vec<AgentEvent>),
    /// The response ends for this reason rather than `complete` when the
    /// engine returns `Ok` (the round limit, late tool answers).
    End(StopReason),
}

/// The engine could not finish the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError(pub String);

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EngineError {}

impl EngineError {
    /// What kind of failure this is, as a fixed label for the
    /// `tokenrelay_engine_errors_total` metric: `timeout`, `unreachable`,
    /// `upstream` (the upstream answered badly), `prompt_too_large`,
    /// `scripted` (the scripted engine's `[fail]`), or `other` (a custom
    /// engine's words). Read from the message the built-in engines write.
    pub fn kind(&self) -> &'static str {
        let m = self.0.as_str();
        if m.starts_with("upstream timeout") {
            "timeout"
        } else if m.starts_with("upstream unreachable") {
            "unreachable"
        } else if m.starts_with("upstream") {
            "upstream"
        } else if m.contains("max_prompt_bytes") {
            "prompt_too_large"
        } else if m.starts_with("scripted failure") {
            "scripted"
        } else {
            "other"
        }
    }
}

/// Where an engine sends what it produces. Sending fails once the
/// response was stopped; the engine should then return.
#[derive(Debug, Clone)]
pub struct EngineSink {
    tx: mpsc::Sender<EngineEvent>,
}

impl EngineSink {
    /// A sink and the receiver the conversation layer reads.
    pub fn channel(capacity: usize) -> (EngineSink, mpsc::Receiver<EngineEvent>) {
        let (tx, rx) = mpsc::channel(capacity);
        (EngineSink { tx }, rx)
    }

    /// Emits one event; `Err` when nobody listens any more (stopped).
    pub async fn send(&self, event: EngineEvent) -> Result<(), EngineError> {
        self.tx
            .send(event)
            .await
            .map_err(|_| EngineError("response stopped".into()))
    }

    /// Emits a token.
    pub async fn token(&self, text: impl Into<String>) -> Result<(), EngineError> {
        self.send(EngineEvent::Token(text.into())).await
    }
}

/// An agent engine. `generate` streams one response into `out` and returns
/// when it is complete; returning `Err` ends the response with
/// `reason: "error"`. It may be cancelled at any await point (stop).
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Produces one response.
    async fn generate(&self, request: GenerateRequest, out: EngineSink) -> Result<(), EngineError>;
}

/// Splits text into tokens of one word each, whitespace kept with the word
/// before it, so concatenating the tokens gives the text back exactly.
pub fn split_words(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for ch in text.chars() {
        if !ch.is_whitespace() && in_space {
            tokens.push(std::mem::take(&mut current));
            in_space = false;
        }
        if ch.is_whitespace() {
            in_space = true;
        }
        current.push(ch);
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_words_round_trips() {
        for text in ["", "a", "hello world", " lead", "trail ", "a  b\nc"] {
            assert_eq!(split_words(text).concat(), text);
        }
        assert_eq!(split_words("hi there you"), vec!["hi ", "there ", "you"]);
    }
}
