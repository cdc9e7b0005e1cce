//! What the session tells the application: one [`Event`] enum that every
//! binding adapts to its language, and the [`Response`] that tokens
//! assemble into.

use crate::prelude::*;

use alloc::sync::Arc;
use core::time::Duration;

use crate::wire::Json;

use crate::error::Error;
use crate::token_text::TokenText;
use crate::wire::{Agent, AgentEvent, ServerInfo, StopReason};

/// The id the server gave a response (`response_id`). Shared, because every
/// token event of a response carries it.
pub type ResponseId = Arc<str>;

/// The id of a request this client sent. Its decimal form is the wire `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

impl core::fmt::Display for RequestId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where the connection is in its life.
///
/// ```text
///  idle ─start─▶ fetching_token ─token─▶ connecting ─open─▶ authenticating ─ok─▶ connected
///                     ▲                                           │                │
///                     │             refused (401: once at once)   │     drop/close │
///                     └──────────── reconnecting / suspended ◀────┴────────────────┘
///   403, not found, max attempts ─▶ failed          close() ─▶ closed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ConnectionState {
    /// Not started.
    Idle,
    /// Waiting for the token provider.
    FetchingToken,
    /// Opening the socket.
    Connecting,
    /// `connect_to_context` sent, waiting for its result.
    Authenticating,
    /// Attached to the context; messages flow.
    Connected,
    /// Waiting before the next attempt (see `attempt` and `retry_in`).
    Reconnecting,
    /// Failing for long: retrying at the slow suspended cadence.
    Suspended,
    /// Closed by the application. Terminal.
    Closed,
    /// Refused for good (forbidden, context gone, attempts exhausted).
    /// Terminal; the cause says why.
    Failed,
}

impl ConnectionState {
    /// The lower-case name used by every binding (`"connected"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Idle => "idle",
            ConnectionState::FetchingToken => "fetching_token",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Authenticating => "authenticating",
            ConnectionState::Connected => "connected",
            ConnectionState::Reconnecting => "reconnecting",
            ConnectionState::Suspended => "suspended",
            ConnectionState::Closed => "closed",
            ConnectionState::Failed => "failed",
        }
    }

    /// True for `closed` and `failed`, after which nothing happens.
    pub fn is_terminal(self) -> bool {
        matches!(self, ConnectionState::Closed | ConnectionState::Failed)
    }
}

/// A change of [`ConnectionState`], with why and what comes next.
///
/// Non-exhaustive: fields may be added in a minor release; build it with
/// [`StateChange::new`] and read or assign the fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StateChange {
    /// The new state.
    pub state: ConnectionState,
    /// Consecutive failed attempts (0 once connected).
    pub attempt: u32,
    /// In `reconnecting`/`suspended`: how long until the next attempt.
    pub retry_in: Option<Duration>,
    /// What caused the change, when it was a failure.
    pub cause: Option<Error>,
}

impl StateChange {
    /// A change to `state` with no failed attempt, no retry and no cause;
    /// set the other fields for a retry or a failure.
    pub fn new(state: ConnectionState) -> Self {
        StateChange {
            state,
            attempt: 0,
            retry_in: None,
            cause: None,
        }
    }
}

/// How a response ended, or that it has not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ResponseStatus {
    /// Tokens are still arriving.
    Streaming,
    /// The agent finished.
    Complete,
    /// `stop` (or the server's tool-round limit, `stop_reason:
    /// round_limit`) cut it short; the text is what arrived before.
    Stopped,
    /// The agent failed mid-response (`stop_reason: error`).
    Failed,
    /// The connection dropped and the missed part could not be replayed:
    /// the text is a prefix of what the agent said. Never silently gapped.
    /// Also a continuation whose tool answers came after the server's
    /// timeout (`stop_reason: tool_timeout`), a reply the server cut when
    /// it shut down (`stop_reason: shutdown`), and one whose cluster
    /// instance died while generating it (`stop_reason: instance_lost`).
    Interrupted,
}

impl ResponseStatus {
    /// The lower-case name used by every binding.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::Streaming => "streaming",
            ResponseStatus::Complete => "complete",
            ResponseStatus::Stopped => "stopped",
            ResponseStatus::Failed => "failed",
            ResponseStatus::Interrupted => "interrupted",
        }
    }
}

/// A server-side tool call (`on_tool_call`).
///
/// Non-exhaustive: fields may be added in a minor release; build it with
/// [`ToolCall::new`] and read or assign the fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ToolCall {
    /// Id that its [`ToolResult`] will carry.
    pub tool_call_id: String,
    /// The tool's name.
    pub tool_name: String,
    /// Its input.
    pub tool_input: Json,
}

impl ToolCall {
    /// A call of `tool_name` with `tool_input`, answered under `tool_call_id`.
    pub fn new(
        tool_call_id: impl Into<String>,
        tool_name: impl Into<String>,
        tool_input: Json,
    ) -> Self {
        ToolCall {
            tool_call_id: tool_call_id.into(),
            tool_name: tool_name.into(),
            tool_input,
        }
    }
}

/// A server-side tool's answer (`on_tool_response`).
///
/// Non-exhaustive: fields may be added in a minor release; build it with
/// [`ToolResult::new`] and read or assign the fields.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[non_exhaustive]
pub struct ToolResult {
    /// The call it answers.
    pub tool_call_id: String,
    /// The tool's name.
    pub tool_name: String,
    /// The tool's output.
    pub tool_output: String,
}

impl ToolResult {
    /// The answer `tool_output` of `tool_name` to the call `tool_call_id`.
    pub fn new(
        tool_call_id: impl Into<String>,
        tool_name: impl Into<String>,
        tool_output: impl Into<String>,
    ) -> Self {
        ToolResult {
            tool_call_id: tool_call_id.into(),
            tool_name: tool_name.into(),
            tool_output: tool_output.into(),
        }
    }
}

/// One agent response, assembled from its notifications.
///
/// Non-exhaustive: fields may be added in a minor release; build it with
/// [`Response::new`] and read or assign the fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Response {
    /// The server's `response_id`.
    pub id: ResponseId,
    /// The request that made the agent produce it (`None` for a response
    /// the agent started by itself, such as `agent_speaks_first`).
    pub request_id: Option<RequestId>,
    /// The text so far: every token in arrival order.
    pub text: String,
    /// Server-side tool calls made while producing it.
    pub tool_calls: Vec<ToolCall>,
    /// Their answers.
    pub tool_responses: Vec<ToolResult>,
    /// `on_events` payloads attached to it.
    pub events: Vec<AgentEvent>,
    /// Tools the agent asked this client to run (answer them with
    /// `send_tool_responses`).
    pub client_side_tool_calls: Vec<Json>,
    /// Streaming, or how it ended.
    pub status: ResponseStatus,
    /// The server's `stop_reason`, when it sent one.
    pub stop_reason: Option<StopReason>,
}

impl Response {
    /// A response that has just started: no text yet, `Streaming`.
    pub fn new(id: ResponseId, request_id: Option<RequestId>) -> Self {
        Response {
            id,
            request_id,
            text: String::new(),
            tool_calls: Vec::new(),
            tool_responses: Vec::new(),
            events: Vec::new(),
            client_side_tool_calls: Vec::new(),
            status: ResponseStatus::Streaming,
            stop_reason: None,
        }
    }
}

/// Everything the session tells the application, in order.
///
/// Large payloads are boxed so that the frequent `Token` event stays small
/// and cheap to move through queues.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The connection changed state.
    StateChanged(Box<StateChange>),
    /// Attached to the context (first time or again).
    Connected {
        /// The context's agent, as the server described it.
        agent: Option<Box<Agent>>,
        /// True when missed notifications were replayed (`resume`).
        resumed: bool,
        /// The server's extensions, if it has any.
        server: Option<Box<ServerInfo>>,
    },
    /// A new response began.
    ResponseStarted {
        /// Its id.
        response_id: ResponseId,
        /// The request it answers, when known.
        request_id: Option<RequestId>,
    },
    /// One token of a response.
    Token {
        /// The response it belongs to.
        response_id: ResponseId,
        /// The token text (inline when short: no allocation per token).
        token: TokenText,
    },
    /// A response ended (complete, stopped, failed or interrupted).
    ResponseComplete(Box<Response>),
    /// The agent called a server-side tool.
    ToolCall {
        /// The response it belongs to, when known.
        response_id: Option<ResponseId>,
        /// The call.
        call: Box<ToolCall>,
    },
    /// A server-side tool answered.
    ToolResponse {
        /// The response it belongs to, when known.
        response_id: Option<ResponseId>,
        /// The answer.
        result: Box<ToolResult>,
    },
    /// Events attached to a response (`on_events`).
    Events {
        /// The response they belong to, when known.
        response_id: Option<ResponseId>,
        /// The events.
        events: Vec<AgentEvent>,
    },
    /// The agent asks this client to run tools; answer with
    /// `send_tool_responses`.
    ClientSideToolCalls {
        /// The response that asked, when known.
        response_id: Option<ResponseId>,
        /// The calls, as the server sent them.
        tool_calls: Vec<Json>,
    },
    /// The server accepted a request.
    RequestAcknowledged {
        /// The request.
        request_id: RequestId,
        /// Its `result` object.
        result: Json,
    },
    /// A request failed (refused, timed out, lost with the socket, or the
    /// connection closed).
    RequestFailed {
        /// The request.
        request_id: RequestId,
        /// Why.
        error: Error,
    },
    /// Something went wrong that is not tied to a request (a malformed
    /// frame, say). The connection carries on.
    Error(Error),
    /// A notification method this client does not know.
    Unknown {
        /// The method.
        method: String,
        /// Its params.
        params: Json,
    },
}
