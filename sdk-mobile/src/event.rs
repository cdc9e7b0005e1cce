//! The core's event model as uniffi types: [`Event`] is a sealed class in
//! Kotlin and an enum in Swift; JSON payloads the protocol leaves open
//! (tool inputs, event data, agent extras) cross as JSON text, which each
//! app decodes with the JSON library it already uses.
//!
//! [`ConnectionState`], [`ResponseStatus`] and [`ToolResult`] are the
//! core's own types, exported by its `uniffi` feature. The types declared
//! here cannot be exported as the core has them, and convert mechanically
//! (a `From` impl each): [`ToolCall`], [`AgentEvent`], [`ClientToolCall`]
//! and [`Response`] hold `serde_json::Value`s (crossed as JSON text) and
//! shared `Arc<str>` ids; [`StateChange`] and [`Event`] hold the core's
//! `Error` (crossed as [`TokenRelayError`], see error.rs), boxed payloads
//! and `Duration`s the mobile API gives in milliseconds.

use serde_json::Value;
use tokenrelay::wire::Agent;
pub use tokenrelay::{ConnectionState, ResponseStatus, ToolResult};

use crate::error::TokenRelayError;

/// A change of [`ConnectionState`], with why and what comes next.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct StateChange {
    /// The new state.
    pub state: ConnectionState,
    /// Consecutive failed attempts (0 once connected).
    pub attempt: u32,
    /// In `Reconnecting`/`Suspended`: milliseconds until the next attempt.
    pub retry_in_ms: Option<u64>,
    /// What caused the change, when it was a failure.
    pub cause: Option<TokenRelayError>,
}

impl From<&tokenrelay::StateChange> for StateChange {
    fn from(s: &tokenrelay::StateChange) -> Self {
        StateChange {
            state: s.state,
            attempt: s.attempt,
            retry_in_ms: s
                .retry_in
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            cause: s.cause.clone().map(Into::into),
        }
    }
}

/// A server-side tool call.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ToolCall {
    /// Id that its [`ToolResult`] carries.
    pub tool_call_id: String,
    /// The tool's name.
    pub tool_name: String,
    /// Its input, as JSON text.
    pub tool_input_json: String,
}

impl From<&tokenrelay::ToolCall> for ToolCall {
    fn from(c: &tokenrelay::ToolCall) -> Self {
        ToolCall {
            tool_call_id: c.tool_call_id.clone(),
            tool_name: c.tool_name.clone(),
            tool_input_json: c.tool_input.to_string(),
        }
    }
}

/// One `on_events` event.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct AgentEvent {
    /// The event type, as the agent named it.
    pub kind: String,
    /// Its payload, as JSON text.
    pub data_json: String,
}

impl From<&tokenrelay::wire::AgentEvent> for AgentEvent {
    fn from(e: &tokenrelay::wire::AgentEvent) -> Self {
        AgentEvent {
            kind: e.kind.clone(),
            data_json: e.data.to_string(),
        }
    }
}

/// A tool the agent asks this client to run; answer it with
/// `sendToolResponses`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ClientToolCall {
    /// The id to answer with.
    pub tool_call_id: String,
    /// The tool's name (empty when the server sent none).
    pub tool_name: String,
    /// Its input (`tool_input`, `input` or `args`), as JSON text; `null`
    /// when the server sent none.
    pub input_json: String,
    /// The call exactly as the server sent it, as JSON text.
    pub raw_json: String,
}

impl From<&Value> for ClientToolCall {
    fn from(v: &Value) -> Self {
        // Ids are strings on the wire; a server that sends a number still
        // gets its id back as the same digits.
        let text = |key: &str| match v.get(key) {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(other) => other.to_string(),
        };
        let input = ["tool_input", "input", "args"]
            .iter()
            .find_map(|k| v.get(*k))
            .unwrap_or(&Value::Null);
        ClientToolCall {
            tool_call_id: text("tool_call_id"),
            tool_name: text("tool_name"),
            input_json: input.to_string(),
            raw_json: v.to_string(),
        }
    }
}

/// One agent response, assembled from its notifications.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Response {
    /// The server's `response_id`.
    pub id: String,
    /// The request that caused it (`None` when the agent spoke first).
    pub request_id: Option<u64>,
    /// Every token, in order.
    pub text: String,
    /// Server-side tool calls made while producing it.
    pub tool_calls: Vec<ToolCall>,
    /// Their answers.
    pub tool_responses: Vec<ToolResult>,
    /// `on_events` payloads attached to it.
    pub events: Vec<AgentEvent>,
    /// Tools the agent asked this client to run.
    pub client_side_tool_calls: Vec<ClientToolCall>,
    /// Streaming, or how it ended.
    pub status: ResponseStatus,
    /// The server's `stop_reason` (`complete`, `stopped`, `error`), when sent.
    pub stop_reason: Option<String>,
}

impl From<&tokenrelay::Response> for Response {
    fn from(r: &tokenrelay::Response) -> Self {
        Response {
            id: r.id.to_string(),
            request_id: r.request_id.map(|id| id.0),
            text: r.text.clone(),
            tool_calls: r.tool_calls.iter().map(Into::into).collect(),
            tool_responses: r.tool_responses.clone(),
            events: r.events.iter().map(Into::into).collect(),
            client_side_tool_calls: r.client_side_tool_calls.iter().map(Into::into).collect(),
            status: r.status,
            stop_reason: r.stop_reason.map(|s| {
                serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "other".into())
            }),
        }
    }
}

/// The context's agent, as the server described it on connect.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ConnectedAgent {
    /// Agent id.
    pub agent_id: String,
    /// Display name.
    pub agent_name: String,
    /// Whether it speaks first on connect.
    pub agent_speaks_first: bool,
    /// Everything the server said about it, as JSON text.
    pub raw_json: String,
}

impl From<&Agent> for ConnectedAgent {
    fn from(a: &Agent) -> Self {
        ConnectedAgent {
            agent_id: a.agent_id.clone(),
            agent_name: a.agent_name.clone(),
            agent_speaks_first: a.agent_speaks_first,
            raw_json: serde_json::to_string(a).unwrap_or_else(|_| "{}".into()),
        }
    }
}

/// Everything the connection tells the app, in order.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum Event {
    /// The connection changed state.
    StateChanged {
        /// The change.
        change: StateChange,
    },
    /// Attached to the context (first time or again).
    Connected {
        /// The context's agent, when the server described it.
        agent: Option<ConnectedAgent>,
        /// True when missed notifications were replayed (resume).
        resumed: bool,
        /// The server's advertised extensions (empty for a base server).
        capabilities: Vec<String>,
    },
    /// A new response began.
    ResponseStarted {
        /// Its id.
        response_id: String,
        /// The request it answers, when known.
        request_id: Option<u64>,
    },
    /// One token of a response.
    Token {
        /// The response it belongs to.
        response_id: String,
        /// The token text.
        token: String,
    },
    /// A response ended (complete, stopped, failed or interrupted).
    ResponseComplete {
        /// The whole response.
        response: Response,
    },
    /// The agent called a server-side tool.
    ToolCallEvent {
        /// The response it belongs to, when known.
        response_id: Option<String>,
        /// The call.
        call: ToolCall,
    },
    /// A server-side tool answered.
    ToolResponseEvent {
        /// The response it belongs to, when known.
        response_id: Option<String>,
        /// The answer.
        result: ToolResult,
    },
    /// Events attached to a response (`on_events`).
    AgentEvents {
        /// The response they belong to, when known.
        response_id: Option<String>,
        /// The events.
        events: Vec<AgentEvent>,
    },
    /// The agent asks this client to run tools.
    ClientSideToolCalls {
        /// The response that asked, when known.
        response_id: Option<String>,
        /// The calls.
        tool_calls: Vec<ClientToolCall>,
    },
    /// The server accepted a request.
    RequestAcknowledged {
        /// The request.
        request_id: u64,
        /// Its `result` object, as JSON text.
        result_json: String,
    },
    /// A request failed (refused, timed out, lost with the socket, closed).
    RequestFailed {
        /// The request.
        request_id: u64,
        /// Why.
        error: TokenRelayError,
    },
    /// Something went wrong that is not tied to a request; the connection
    /// carries on.
    ErrorEvent {
        /// What.
        error: TokenRelayError,
    },
    /// A notification this client does not know.
    Unknown {
        /// The method.
        method: String,
        /// Its params, as JSON text.
        params_json: String,
    },
}

fn opt_id(id: &Option<tokenrelay::ResponseId>) -> Option<String> {
    id.as_ref().map(|s| s.to_string())
}

impl From<tokenrelay::Event> for Event {
    fn from(e: tokenrelay::Event) -> Self {
        use tokenrelay::Event as E;
        match e {
            E::Token { response_id, token } => Event::Token {
                response_id: response_id.to_string(),
                token: token.into_string(),
            },
            E::StateChanged(s) => Event::StateChanged {
                change: (&*s).into(),
            },
            E::Connected {
                agent,
                resumed,
                server,
            } => Event::Connected {
                agent: agent.as_deref().map(Into::into),
                resumed,
                capabilities: server.map(|s| s.capabilities).unwrap_or_default(),
            },
            E::ResponseStarted {
                response_id,
                request_id,
            } => Event::ResponseStarted {
                response_id: response_id.to_string(),
                request_id: request_id.map(|id| id.0),
            },
            E::ResponseComplete(r) => Event::ResponseComplete {
                response: (&*r).into(),
            },
            E::ToolCall { response_id, call } => Event::ToolCallEvent {
                response_id: opt_id(&response_id),
                call: (&*call).into(),
            },
            E::ToolResponse {
                response_id,
                result,
            } => Event::ToolResponseEvent {
                response_id: opt_id(&response_id),
                result: *result,
            },
            E::Events {
                response_id,
                events,
            } => Event::AgentEvents {
                response_id: opt_id(&response_id),
                events: events.iter().map(Into::into).collect(),
            },
            E::ClientSideToolCalls {
                response_id,
                tool_calls,
            } => Event::ClientSideToolCalls {
                response_id: opt_id(&response_id),
                tool_calls: tool_calls.iter().map(Into::into).collect(),
            },
            E::RequestAcknowledged { request_id, result } => Event::RequestAcknowledged {
                request_id: request_id.0,
                result_json: result.to_string(),
            },
            E::RequestFailed { request_id, error } => Event::RequestFailed {
                request_id: request_id.0,
                error: error.into(),
            },
            E::Error(error) => Event::ErrorEvent {
                error: error.into(),
            },
            E::Unknown { method, params } => Event::Unknown {
                method,
                params_json: params.to_string(),
            },
            // `Event` is non-exhaustive: a variant added to the core later
            // shows up as `Unknown` until the binding learns it.
            other => Event::Unknown {
                method: format!("{other:?}"),
                params_json: "null".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_tool_calls_expose_id_name_and_input() {
        let raw = json!({"tool_call_id": "c1", "tool_name": "get_location", "tool_input": {"precise": true}});
        let call = ClientToolCall::from(&raw);
        assert_eq!(call.tool_call_id, "c1");
        assert_eq!(call.tool_name, "get_location");
        assert_eq!(call.input_json, r#"{"precise":true}"#);
        let bare = ClientToolCall::from(&json!({"tool_call_id": 7}));
        assert_eq!(
            (
                bare.tool_call_id.as_str(),
                bare.tool_name.as_str(),
                bare.input_json.as_str()
            ),
            ("7", "", "null")
        );
    }

    #[test]
    fn tokens_and_failures_convert() {
        let e = Event::from(tokenrelay::Event::Token {
            response_id: "r1".into(),
            token: "hi".into(),
        });
        assert_eq!(
            e,
            Event::Token {
                response_id: "r1".into(),
                token: "hi".into()
            }
        );
        let failed = Event::from(tokenrelay::Event::RequestFailed {
            request_id: tokenrelay::RequestId(3),
            error: tokenrelay::Error::Closed,
        });
        assert!(matches!(
            failed,
            Event::RequestFailed {
                request_id: 3,
                error: TokenRelayError::Closed { .. }
            }
        ));
    }
}
