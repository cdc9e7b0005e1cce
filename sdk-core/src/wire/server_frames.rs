//! Server-to-client frames: the notifications and answers a server
//! sends, how a client reads them (the compact decoder) and how a server
//! writes them.

use crate::prelude::*;

use alloc::borrow::Cow;

use super::Json;
use serde::{Deserialize, Serialize};

use super::{compact, lenient, method};
use crate::error::ProtocolError;

/// A decoded server frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame<'a> {
    /// An answer to one of our requests.
    Response {
        /// The id of the request it answers.
        id: Cow<'a, str>,
        /// The whole `result` object.
        result: Json,
    },
    /// A notification.
    Notification(Notification<'a>),
}

/// A server notification, borrowing from the frame it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification<'a> {
    /// `on_token`.
    Token(TokenParams<'a>),
    /// `on_stop_token`.
    StopToken(StopTokenParams<'a>),
    /// `on_tool_call`.
    ToolCall(ToolCallParams),
    /// `on_tool_response`.
    ToolResponse(ToolResponseParams),
    /// `on_events`.
    Events(EventsParams),
    /// `on_client_side_tool_calls`.
    ClientSideToolCalls(ClientSideToolCallsParams),
    /// A method this client does not know; surfaced, never fatal.
    Unknown {
        /// The method name.
        method: String,
        /// The params, as sent.
        params: Json,
    },
}

impl Notification<'_> {
    /// The `seq` of the notification, when the server sent one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Notification::Token(p) => p.seq,
            Notification::StopToken(p) => p.seq,
            Notification::ToolCall(p) => p.seq,
            Notification::ToolResponse(p) => p.seq,
            Notification::Events(p) => p.seq,
            Notification::ClientSideToolCalls(p) => p.seq,
            Notification::Unknown { .. } => None,
        }
    }

    /// The wire method name.
    pub fn method(&self) -> &str {
        match self {
            Notification::Token(_) => method::ON_TOKEN,
            Notification::StopToken(_) => method::ON_STOP_TOKEN,
            Notification::ToolCall(_) => method::ON_TOOL_CALL,
            Notification::ToolResponse(_) => method::ON_TOOL_RESPONSE,
            Notification::Events(_) => method::ON_EVENTS,
            Notification::ClientSideToolCalls(_) => method::ON_CLIENT_SIDE_TOOL_CALLS,
            Notification::Unknown { method, .. } => method,
        }
    }

    /// Encodes the notification as one text frame (server side).
    #[cfg(any(test, feature = "server"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "server")))]
    pub fn encode(&self) -> String {
        fn frame<P: Serialize>(method: &str, params: &P) -> String {
            #[derive(Serialize)]
            struct Framed<'a, P> {
                method: &'a str,
                params: &'a P,
            }
            serde_json::to_string(&Framed { method, params }).unwrap_or_default()
        }
        match self {
            Notification::Token(p) => frame(method::ON_TOKEN, p),
            Notification::StopToken(p) => frame(method::ON_STOP_TOKEN, p),
            Notification::ToolCall(p) => frame(method::ON_TOOL_CALL, p),
            Notification::ToolResponse(p) => frame(method::ON_TOOL_RESPONSE, p),
            Notification::Events(p) => frame(method::ON_EVENTS, p),
            Notification::ClientSideToolCalls(p) => frame(method::ON_CLIENT_SIDE_TOOL_CALLS, p),
            Notification::Unknown { method, params } => frame(method, params),
        }
    }

    /// Copies every borrowed string, for keeping the notification (the
    /// server's replay buffer does).
    #[cfg(any(test, feature = "server"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "server")))]
    pub fn into_owned(self) -> Notification<'static> {
        match self {
            Notification::Token(p) => Notification::Token(TokenParams {
                token: Cow::Owned(p.token.into_owned()),
                response_id: Cow::Owned(p.response_id.into_owned()),
                seq: p.seq,
            }),
            Notification::StopToken(p) => Notification::StopToken(StopTokenParams {
                response_id: Cow::Owned(p.response_id.into_owned()),
                reason: p.reason,
                seq: p.seq,
            }),
            Notification::ToolCall(p) => Notification::ToolCall(p),
            Notification::ToolResponse(p) => Notification::ToolResponse(p),
            Notification::Events(p) => Notification::Events(p),
            Notification::ClientSideToolCalls(p) => Notification::ClientSideToolCalls(p),
            Notification::Unknown { method, params } => Notification::Unknown { method, params },
        }
    }

    /// Sets `seq` on every notification kind that carries one (server side).
    #[cfg(any(test, feature = "server"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "server")))]
    pub fn set_seq(&mut self, seq: u64) {
        match self {
            Notification::Token(p) => p.seq = Some(seq),
            Notification::StopToken(p) => p.seq = Some(seq),
            Notification::ToolCall(p) => p.seq = Some(seq),
            Notification::ToolResponse(p) => p.seq = Some(seq),
            Notification::Events(p) => p.seq = Some(seq),
            Notification::ClientSideToolCalls(p) => p.seq = Some(seq),
            Notification::Unknown { .. } => {}
        }
    }
}

/// Params of `on_token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenParams<'a> {
    /// The token text.
    #[serde(borrow)]
    pub token: Cow<'a, str>,
    /// The response it belongs to.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// `seq` extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// Params of `on_stop_token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopTokenParams<'a> {
    /// The response that is complete.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// `stop_reason` extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<StopReason>,
    /// `seq` extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// Why a response ended (`stop_reason` extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StopReason {
    /// The agent finished.
    Complete,
    /// `stop_invocation` cut it short.
    Stopped,
    /// The agent failed mid-response.
    Error,
    /// The agent still asked for tools after the server's round limit
    /// (reference server, `--max-tool-rounds`).
    RoundLimit,
    /// The client answered client-side tool calls after the server's
    /// timeout (reference server, `--client-tool-timeout-secs`).
    ToolTimeout,
    /// The server shut down before the response finished: its drain
    /// timeout lapsed (reference server, `--drain-timeout-secs`). The text
    /// is a prefix of what the agent would have said.
    Shutdown,
    /// The server instance generating the response died (a cluster: its
    /// lease lapsed and another instance ended the response). The text is
    /// a prefix of what the agent would have said.
    InstanceLost,
    /// A reason this client does not know.
    Other,
}

impl StopReason {
    /// The reason a `reason` string names; [`StopReason::Other`] for one
    /// this client does not know.
    pub(crate) fn from_wire(reason: &str) -> Self {
        match reason {
            "complete" => Self::Complete,
            "stopped" => Self::Stopped,
            "error" => Self::Error,
            "round_limit" => Self::RoundLimit,
            "tool_timeout" => Self::ToolTimeout,
            "shutdown" => Self::Shutdown,
            "instance_lost" => Self::InstanceLost,
            _ => Self::Other,
        }
    }

    /// The reason's name on the wire (`"round_limit"`); `"other"` for
    /// [`StopReason::Other`], a reason this client does not know.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Stopped => "stopped",
            Self::Error => "error",
            Self::RoundLimit => "round_limit",
            Self::ToolTimeout => "tool_timeout",
            Self::Shutdown => "shutdown",
            Self::InstanceLost => "instance_lost",
            Self::Other => "other",
        }
    }
}

// By hand, not derived: a derived enum with `#[serde(other)]` also takes a
// one-key object (`{"anything": null}` reads as `Other`), where the
// protocol has only strings; the frame decoder refuses such an object and
// the serde reference it is tested against must agree.
impl<'de> Deserialize<'de> for StopReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_wire(&Cow::<'de, str>::deserialize(d)?))
    }
}

/// Params of `on_tool_call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallParams {
    /// Id that the matching tool response will carry.
    pub tool_call_id: String,
    /// The tool's name.
    pub tool_name: String,
    /// The tool's input.
    #[serde(default)]
    pub tool_input: Json,
    /// The response it belongs to. Not in the base protocol; when absent the
    /// call attaches to the response that is streaming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// `seq` extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// Params of `on_tool_response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResponseParams {
    /// The call it answers.
    pub tool_call_id: String,
    /// The tool's name.
    #[serde(default)]
    pub tool_name: String,
    /// The tool's output.
    #[serde(default, deserialize_with = "lenient::any_as_text")]
    pub tool_output: String,
    /// As in [`ToolCallParams::response_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// `seq` extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// Params of `on_events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsParams {
    /// The events.
    #[serde(default)]
    pub events: Vec<AgentEvent>,
    /// The response they belong to.
    #[serde(default)]
    pub response_id: Option<String>,
    /// `seq` extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// One event of `on_events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentEvent {
    /// The event type, as the agent named it.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Its payload.
    #[serde(default)]
    pub data: Json,
}

/// Params of `on_client_side_tool_calls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientSideToolCallsParams {
    /// The calls the client must run, as the server sent them (each has at
    /// least a `tool_call_id`).
    #[serde(default)]
    pub tool_calls: Vec<Json>,
    /// The response that asked for them.
    #[serde(default)]
    pub response_id: Option<String>,
    /// `seq` extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// Decodes one server frame. Never panics; everything that is not the
/// protocol is a [`ProtocolError`].
pub fn decode_server_frame(text: &str) -> Result<ServerFrame<'_>, ProtocolError> {
    // One decoder on every target: the `on_token` scanners, then the
    // compact reader (`benches/decoders.rs`: as fast as the serde decoders
    // it replaced on native, a third of the browser bundle smaller). The
    // serde decoders below stay as the reference it is tested against.
    compact::decode_server_frame(text)
}

/// Encodes a response frame (server side).
#[cfg(any(test, feature = "server"))]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub fn encode_response(id: &str, result: &serde_json::Value) -> String {
    serde_json::json!({ "id": id, "result": result }).to_string()
}
