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
pub mod webhook;

use async_trait::async_trait;
use serde_json::Value;
use tokenrelay::wire::{Agent, AgentEvent, StopReason, ToolResponseParam};
use tokio::sync::mpsc;

pub use openai::{OpenAiConfig, OpenAiEngine};
pub use rounds::{CannedTools, NoTools, RoundsConfig, ToolCall, ToolRunner};
pub use scripted::ScriptedEngine;
pub use webhook::{WebhookConfig, WebhookSecret, WebhookTools};

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
    /// The context the response belongs to (webhook tools receive it).
    pub context_id: String,
    /// The server's webhook tool runtime: a server tool whose definition
    /// names a `webhook` URL runs there (see [`webhook`]). `None`: such
    /// tools answer that they are unavailable.
    pub webhooks: Option<std::sync::Arc<WebhookTools>>,
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

/// What kind of failure an [`EngineError`] is: set where the error is
/// made, read by the `tokenrelay_engine_errors_total{kind}` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EngineErrorKind {
    /// The upstream took too long (to answer, or between two chunks).
    Timeout,
    /// The upstream could not be reached.
    Unreachable,
    /// The upstream answered badly (an HTTP error, a broken stream, an
    /// oversized line or tool call).
    Upstream,
    /// The agent's prompt, filled with the context's arguments, exceeds
    /// `max_prompt_bytes`: nothing was generated.
    PromptTooLarge,
    /// The scripted engine's `fail_after` directive.
    Scripted,
    /// Anything else: a custom engine's failure, or a response that was
    /// stopped while the engine still produced.
    Other,
}

impl EngineErrorKind {
    /// The metric label: `timeout`, `unreachable`, `upstream`,
    /// `prompt_too_large`, `scripted` or `other`. These strings are the
    /// labels dashboards already query; they do not change.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineErrorKind::Timeout => "timeout",
            EngineErrorKind::Unreachable => "unreachable",
            EngineErrorKind::Upstream => "upstream",
            EngineErrorKind::PromptTooLarge => "prompt_too_large",
            EngineErrorKind::Scripted => "scripted",
            EngineErrorKind::Other => "other",
        }
    }
}

/// The engine could not finish the response: a [`EngineErrorKind`] chosen
/// where the failure happened, and a message for the server's log (never
/// sent to clients).
///
/// ```
/// use tokenrelay_server::engine::{EngineError, EngineErrorKind};
/// let e = EngineError::other("my backend is down");
/// assert_eq!(e.kind(), EngineErrorKind::Other);
/// assert_eq!(e.to_string(), "my backend is down");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    kind: EngineErrorKind,
    message: String,
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EngineError {}

impl EngineError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: EngineErrorKind, message: impl Into<String>) -> Self {
        EngineError {
            kind,
            message: message.into(),
        }
    }

    /// A failure of no built-in kind: what a custom engine returns.
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(EngineErrorKind::Other, message)
    }

    /// The upstream took too long.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(EngineErrorKind::Timeout, message)
    }

    /// The upstream could not be reached.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(EngineErrorKind::Unreachable, message)
    }

    /// The upstream answered badly.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(EngineErrorKind::Upstream, message)
    }

    /// The filled prompt is above `max_prompt_bytes`.
    pub fn prompt_too_large(message: impl Into<String>) -> Self {
        Self::new(EngineErrorKind::PromptTooLarge, message)
    }

    /// The scripted engine failed on purpose (`fail_after`).
    pub fn scripted(message: impl Into<String>) -> Self {
        Self::new(EngineErrorKind::Scripted, message)
    }

    /// What kind of failure this is (the `tokenrelay_engine_errors_total`
    /// label is [`EngineErrorKind::as_str`] of it).
    pub fn kind(&self) -> EngineErrorKind {
        self.kind
    }

    /// The message, for the server's log.
    pub fn message(&self) -> &str {
        &self.message
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
            .map_err(|_| EngineError::other("response stopped"))
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

    #[test]
    fn error_kinds_keep_their_metric_labels() {
        for (e, label) in [
            (EngineError::timeout("t"), "timeout"),
            (EngineError::unreachable("u"), "unreachable"),
            (EngineError::upstream("x"), "upstream"),
            (EngineError::prompt_too_large("p"), "prompt_too_large"),
            (EngineError::scripted("s"), "scripted"),
            (EngineError::other("upstream timeout"), "other"),
        ] {
            assert_eq!(e.kind().as_str(), label);
        }
        // The kind is what the error was made as, whatever its words say.
        let e = EngineError::new(EngineErrorKind::Upstream, "scripted failure");
        assert_eq!(e.kind(), EngineErrorKind::Upstream);
        assert_eq!(e.message(), "scripted failure");
    }
}
