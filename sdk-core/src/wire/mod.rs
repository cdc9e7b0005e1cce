//! Wire types of the WebSocket protocol (`docs/protocol.md` §2 and §3), in
//! both directions, so the client and the reference server share one
//! definition and cannot drift.
//!
//! Decoding is tolerant, as the hosted service requires: unknown fields are
//! ignored, `"id": null` marks a notification, numeric ids are accepted, and
//! an unknown notification method decodes to [`Notification::Unknown`].
//! Decoding borrows from the frame wherever the JSON has no escapes, so the
//! `on_token` hot path allocates nothing here.

use std::borrow::Cow;

#[cfg(any(test, feature = "fuzzing"))]
use serde::de::Error as _;
#[cfg(any(test, feature = "fuzzing"))]
use serde::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::ProtocolError;

/// How an `on_token` frame in the canonical layout (the one the reference
/// server and any serde-based server write) begins; its token's text
/// follows at once. The hot-path scanner matches it, and the browser driver
/// uses it to hand a token to JS as a slice of the frame it already holds.
pub const TOKEN_FRAME_PREFIX: &str = r#"{"method":"on_token","params":{"token":""#;

// Used by the session only on wasm32; compiled everywhere so that the
// tests hold it to the serde decoders' meaning.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod compact;
mod float;
pub(crate) mod lenient;
mod scan;
pub(crate) mod surrogates;

/// Every decoder and encoder of this module by name, for the fuzz targets
/// in `fuzz/` (the `fuzzing` feature), which hold each one to the serde
/// reference on arbitrary input. Not API: no stability promise.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use serde_json::Value;

    use super::{ClientRequest, ConnectResult, ServerFrame, TokenParams};
    use crate::error::ProtocolError;

    /// The `on_token` scanner for the exact layout serde writes.
    pub fn scan_canonical(text: &str) -> Option<TokenParams<'_>> {
        super::scan::canonical(text)
    }

    /// The `on_token` scanner for any whitespace and key order.
    pub fn scan_general(text: &str) -> Option<TokenParams<'_>> {
        super::scan::general(text)
    }

    /// Both scanners, as the decoders call them.
    pub fn scan_token_frame(text: &str) -> Option<TokenParams<'_>> {
        super::scan::token_frame(text)
    }

    /// The one-pass serde decoder (`None`: left to the careful one).
    pub fn decode_one_pass(text: &str) -> Option<ServerFrame<'_>> {
        super::decode_server_frame_in_one_pass(text).ok()
    }

    /// The careful two-pass serde decoder: the reference.
    pub fn decode_reference(text: &str) -> Result<ServerFrame<'_>, ProtocolError> {
        super::decode_server_frame_in_two_passes(text)
    }

    /// What native builds use: scanner, one pass, then the careful one.
    pub fn decode_native(text: &str) -> Result<ServerFrame<'_>, ProtocolError> {
        super::decode_server_frame_with_serde(text)
    }

    /// What the browser build uses: scanner, then the compact reader.
    pub fn decode_compact(text: &str) -> Result<ServerFrame<'_>, ProtocolError> {
        super::compact::decode_server_frame(text)
    }

    /// The compact reader's JSON parser.
    pub fn compact_parse(text: &str) -> Result<Value, &'static str> {
        super::compact::parse(text)
    }

    /// The compact writer's JSON text.
    pub fn compact_to_json(value: &Value) -> String {
        super::compact::to_json(value)
    }

    /// A `connect_to_context` result read by the compact reader.
    pub fn compact_connect_result(result: &Value) -> ConnectResult {
        super::compact::connect_result(result)
    }

    /// A request written by the compact writer.
    pub fn compact_encode_request(request: &ClientRequest, id: Option<&str>) -> String {
        super::compact::encode_request(request, id, None)
    }

    /// A request written by serde (the reference).
    pub fn serde_encode_request(request: &ClientRequest, id: Option<&str>) -> String {
        super::encode_request_with_serde(request, id, None)
    }
}

#[cfg(target_arch = "wasm32")]
pub use float::set_host_floats;
pub use float::HostFloats;

/// Extension names a server may advertise in `connect_to_context`'s
/// `server.capabilities` (`docs/protocol.md` §3).
pub mod capability {
    /// Notifications carry a per-context `seq`.
    pub const SEQ: &str = "seq";
    /// `resume_after_seq` replays missed notifications on reconnect.
    pub const RESUME: &str = "resume";
    /// Failures carry a stable `result.code`.
    pub const ERROR_CODES: &str = "error_codes";
    /// `on_stop_token` carries a `reason`.
    pub const STOP_REASON: &str = "stop_reason";
    /// The socket may be opened with a single-use `?token=pub_tok_…`.
    pub const STREAM_TOKEN: &str = "stream_token";
    /// An invocation may carry an `idempotency_key`; the server answers a
    /// repeat with the original outcome instead of running it again.
    pub const IDEMPOTENCY: &str = "idempotency";
    /// Every capability the reference server implements.
    pub const ALL: [&str; 6] = [
        SEQ,
        RESUME,
        ERROR_CODES,
        STOP_REASON,
        STREAM_TOKEN,
        IDEMPOTENCY,
    ];
}

/// Method names, client to server.
pub mod method {
    /// Must come first on a socket.
    pub const CONNECT_TO_CONTEXT: &str = "connect_to_context";
    /// Sends a human message and invokes the agent.
    pub const ADD_MESSAGE: &str = "add_message";
    /// Stops the running generation.
    pub const STOP_INVOCATION: &str = "stop_invocation";
    /// Rewrites the tail of the history, then re-invokes.
    pub const SET_LAST_MESSAGES: &str = "set_last_messages";
    /// Answers client-side tool calls, then re-invokes.
    pub const CLIENT_SIDE_TOOL_RESPONSES: &str = "client_side_tool_responses";
    /// Server to client: one token of a response.
    pub const ON_TOKEN: &str = "on_token";
    /// Server to client: a response is complete.
    pub const ON_STOP_TOKEN: &str = "on_stop_token";
    /// Server to client: the agent called a server-side tool.
    pub const ON_TOOL_CALL: &str = "on_tool_call";
    /// Server to client: a server-side tool answered.
    pub const ON_TOOL_RESPONSE: &str = "on_tool_response";
    /// Server to client: events attached to a completed response.
    pub const ON_EVENTS: &str = "on_events";
    /// Server to client: tools the client must run and answer.
    pub const ON_CLIENT_SIDE_TOOL_CALLS: &str = "on_client_side_tool_calls";
}

// ---------------------------------------------------------------------------
// Client -> server
// ---------------------------------------------------------------------------

/// A request from client to server, with its params. `Debug` redacts the
/// credentials of `connect_to_context` (see [`ConnectParams`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum ClientRequest {
    /// `connect_to_context`.
    ConnectToContext(ConnectParams),
    /// `add_message`.
    AddMessage {
        /// The human message.
        message: String,
    },
    /// `stop_invocation`.
    StopInvocation {},
    /// `set_last_messages`.
    SetLastMessages {
        /// The human message that replaces the tail.
        human_message: String,
        /// The partial AI message the human interrupted, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ai_message: Option<String>,
    },
    /// `client_side_tool_responses`.
    ClientSideToolResponses {
        /// One answer per tool call.
        tool_responses: Vec<ToolResponseParam>,
    },
}

impl ClientRequest {
    /// The wire method name.
    pub fn method(&self) -> &'static str {
        match self {
            ClientRequest::ConnectToContext(_) => method::CONNECT_TO_CONTEXT,
            ClientRequest::AddMessage { .. } => method::ADD_MESSAGE,
            ClientRequest::StopInvocation {} => method::STOP_INVOCATION,
            ClientRequest::SetLastMessages { .. } => method::SET_LAST_MESSAGES,
            ClientRequest::ClientSideToolResponses { .. } => method::CLIENT_SIDE_TOOL_RESPONSES,
        }
    }

    /// True for the methods that make the agent stream a new response.
    pub fn invokes_agent(&self) -> bool {
        matches!(
            self,
            ClientRequest::AddMessage { .. }
                | ClientRequest::SetLastMessages { .. }
                | ClientRequest::ClientSideToolResponses { .. }
        )
    }

    /// Encodes the request as one text frame, with `id` when given.
    pub fn encode(&self, id: Option<&str>) -> String {
        self.encode_with_key(id, None)
    }

    /// [`ClientRequest::encode`], with an `idempotency_key` beside the `id`
    /// (the `idempotency` extension, `docs/protocol.md` §3.8).
    pub fn encode_with_key(&self, id: Option<&str>, key: Option<&str>) -> String {
        compact::encode_request(self, id, key)
    }
}

/// [`ClientRequest::encode`] with serde_json: the reference the compact
/// writer is tested against.
#[cfg(any(test, feature = "fuzzing"))]
fn encode_request_with_serde(
    request: &ClientRequest,
    id: Option<&str>,
    idempotency_key: Option<&str>,
) -> String {
    {
        #[derive(Serialize)]
        struct Framed<'a> {
            #[serde(flatten)]
            request: &'a ClientRequest,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            idempotency_key: Option<&'a str>,
        }
        // Serializing plain strings and maps into a String cannot fail.
        serde_json::to_string(&Framed {
            request,
            id,
            idempotency_key,
        })
        .unwrap_or_default()
    }
}

/// Params of `connect_to_context`. `Debug` redacts `access_token` and
/// `client_key` (so does [`ClientRequest`]'s, which prints these params).
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConnectParams {
    /// The context to attach to.
    #[serde(default)]
    pub context_id: String,
    /// The credential; omitted when the socket was opened with a stream token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// `resume` extension: replay every notification with a higher `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_after_seq: Option<u64>,
    /// Publishable client key (`pk_…`) of the app, `docs/protocol.md` §4.6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

impl std::fmt::Debug for ConnectParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::Redacted;
        f.debug_struct("ConnectParams")
            .field("context_id", &self.context_id)
            .field("access_token", &self.access_token.as_deref().map(Redacted))
            .field("resume_after_seq", &self.resume_after_seq)
            .field("client_key", &self.client_key.as_deref().map(Redacted))
            .finish()
    }
}

/// One answer to a client-side tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResponseParam {
    /// The `tool_call_id` of the call being answered.
    pub tool_call_id: String,
    /// The tool's output, as text.
    pub response: String,
}

/// A client frame decoded on the server side: the request (or why its
/// params are wrong) and its id.
#[derive(Debug)]
pub struct IncomingRequest {
    /// The request id, if the client wants an answer.
    pub id: Option<String>,
    /// The method as sent, also when it is unknown.
    pub method: String,
    /// The decoded request, or the reason it could not be decoded
    /// (unknown method, missing or wrongly typed params).
    pub request: Result<ClientRequest, String>,
    /// The `idempotency` extension's key, beside the `id`.
    pub idempotency_key: Option<String>,
}

/// Decodes a client frame (server side). Invalid JSON or a frame without a
/// `method` is an error; an unknown method or bad params is reported inside
/// [`IncomingRequest::request`] so the server can answer with the id.
pub fn decode_client_frame(text: &str) -> Result<IncomingRequest, ProtocolError> {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(default)]
        method: Option<String>,
        #[serde(default, borrow)]
        params: Option<&'a RawValue>,
        #[serde(default, deserialize_with = "lenient::opt_string_or_number")]
        id: Option<String>,
        #[serde(default)]
        idempotency_key: Option<String>,
    }
    let raw: Raw<'_> = serde_json::from_str(text).map_err(|e| ProtocolError::InvalidJson {
        message: e.to_string(),
    })?;
    let method = raw.method.ok_or_else(|| ProtocolError::UnexpectedShape {
        message: "a request needs a `method`".into(),
    })?;
    let params: &str = raw.params.map(RawValue::get).unwrap_or("{}");
    let params = if params == "null" { "{}" } else { params };
    let request = decode_request_params(&method, params);
    Ok(IncomingRequest {
        id: raw.id,
        method,
        request,
        idempotency_key: raw.idempotency_key,
    })
}

fn decode_request_params(method: &str, params: &str) -> Result<ClientRequest, String> {
    fn parse<'a, T: Deserialize<'a>>(params: &'a str) -> Result<T, String> {
        serde_json::from_str(params).map_err(|e| e.to_string())
    }
    #[derive(Deserialize)]
    struct AddMessage {
        message: String,
    }
    #[derive(Deserialize)]
    struct SetLast {
        human_message: String,
        #[serde(default)]
        ai_message: Option<String>,
    }
    #[derive(Deserialize)]
    struct ToolResponses {
        tool_responses: Vec<ToolResponseParam>,
    }
    Ok(match method {
        method::CONNECT_TO_CONTEXT => ClientRequest::ConnectToContext(parse(params)?),
        method::ADD_MESSAGE => ClientRequest::AddMessage {
            message: parse::<AddMessage>(params)?.message,
        },
        method::STOP_INVOCATION => ClientRequest::StopInvocation {},
        method::SET_LAST_MESSAGES => {
            let p: SetLast = parse(params)?;
            ClientRequest::SetLastMessages {
                human_message: p.human_message,
                ai_message: p.ai_message,
            }
        }
        method::CLIENT_SIDE_TOOL_RESPONSES => ClientRequest::ClientSideToolResponses {
            tool_responses: parse::<ToolResponses>(params)?.tool_responses,
        },
        other => return Err(format!("unknown method `{other}`")),
    })
}

// ---------------------------------------------------------------------------
// Server -> client
// ---------------------------------------------------------------------------

/// A decoded server frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame<'a> {
    /// An answer to one of our requests.
    Response {
        /// The id of the request it answers.
        id: Cow<'a, str>,
        /// The whole `result` object.
        result: Value,
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
        params: Value,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The agent finished.
    Complete,
    /// `stop_invocation` cut it short.
    Stopped,
    /// The agent failed mid-response.
    Error,
    /// A reason this client does not know.
    #[serde(other)]
    Other,
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
    pub tool_input: Value,
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
    pub data: Value,
}

/// Params of `on_client_side_tool_calls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientSideToolCallsParams {
    /// The calls the client must run, as the server sent them (each has at
    /// least a `tool_call_id`).
    #[serde(default)]
    pub tool_calls: Vec<Value>,
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

/// [`decode_server_frame`] with serde_json: the reference (tests and the
/// fuzz targets hold the compact reader to it).
#[cfg(any(test, feature = "fuzzing"))]
fn decode_server_frame_with_serde(text: &str) -> Result<ServerFrame<'_>, ProtocolError> {
    if let Some(params) = scan::token_frame(text) {
        return Ok(ServerFrame::Notification(Notification::Token(params)));
    }
    decode_server_frame_in_one_pass(text).or_else(|_| decode_server_frame_in_two_passes(text))
}

/// A field that is present, whatever its value (`null` included).
#[cfg(any(test, feature = "fuzzing"))]
fn de_present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The careful decoder: the envelope first (keeping `params` raw), then
/// `params` by method.
#[cfg(any(test, feature = "fuzzing"))]
fn decode_server_frame_in_two_passes(text: &str) -> Result<ServerFrame<'_>, ProtocolError> {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(default, borrow)]
        method: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        params: Option<&'a RawValue>,
        #[serde(default, borrow, deserialize_with = "de_id_borrowed")]
        id: Option<Cow<'a, str>>,
        // `"result": null` is an answer (the hosted server's to
        // `add_message`); only a missing `result` is not.
        #[serde(default, deserialize_with = "de_present")]
        result: Option<Value>,
    }
    let raw: Raw<'_> = serde_json::from_str(text).map_err(|e| ProtocolError::InvalidJson {
        message: e.to_string(),
    })?;
    match (raw.method, raw.id, raw.result) {
        // A frame with a method is a notification, whatever its id says
        // (the hosted server sends `"id": null`).
        (Some(method), _, _) => {
            let params = raw.params.map(RawValue::get).unwrap_or("{}");
            decode_notification(method, params).map(ServerFrame::Notification)
        }
        (None, Some(id), Some(result)) => Ok(ServerFrame::Response { id, result }),
        (None, Some(_), None) => Err(ProtocolError::UnexpectedShape {
            message: "a response needs a `result`".into(),
        }),
        (None, None, _) => Err(ProtocolError::UnexpectedShape {
            message: "a frame needs a `method` or an `id`".into(),
        }),
    }
}

/// The `on_token` hot path: one pass over the frame, no allocation when the
/// strings have no escapes. `Err(())` sends the frame to the careful
/// decoder, for the exact error or for a shape this path does not take.
#[cfg(any(test, feature = "fuzzing"))]
fn decode_server_frame_in_one_pass(text: &str) -> Result<ServerFrame<'_>, ()> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

    enum Key {
        Method,
        Params,
        Id,
        Result,
        Other,
    }
    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct KeyVisitor;
            impl Visitor<'_> for KeyVisitor {
                type Value = Key;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a field name")
                }
                fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                    Ok(match key {
                        "method" => Key::Method,
                        "params" => Key::Params,
                        "id" => Key::Id,
                        "result" => Key::Result,
                        _ => Key::Other,
                    })
                }
            }
            d.deserialize_identifier(KeyVisitor)
        }
    }

    /// A string borrowed from the frame when it has no escapes.
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

    #[derive(Default)]
    struct Envelope<'a> {
        method: Option<Cow<'a, str>>,
        /// `params` decoded by method (it came after the method).
        notification: Option<Notification<'a>>,
        /// `params` kept raw (it came before the method).
        raw_params: Option<&'a RawValue>,
        id: Option<Cow<'a, str>>,
        result: Option<Value>,
    }

    struct EnvelopeVisitor;
    impl<'de> Visitor<'de> for EnvelopeVisitor {
        type Value = Envelope<'de>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a frame object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
            let mut e = Envelope::default();
            let (mut saw_method, mut saw_params, mut saw_id, mut saw_result) =
                (false, false, false, false);
            let once = |seen: &mut bool, name: &'static str| {
                if std::mem::replace(seen, true) {
                    Err(A::Error::duplicate_field(name))
                } else {
                    Ok(())
                }
            };
            while let Some(key) = map.next_key::<Key>()? {
                match key {
                    Key::Method => {
                        once(&mut saw_method, "method")?;
                        e.method = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0);
                    }
                    Key::Params => {
                        once(&mut saw_params, "params")?;
                        match e.method.as_deref() {
                            Some(m) => e.notification = Some(map.next_value_seed(ParamsOf(m))?),
                            None => e.raw_params = map.next_value()?,
                        }
                    }
                    Key::Id => {
                        once(&mut saw_id, "id")?;
                        e.id = map.next_value::<Option<Id<'de>>>()?.map(Id::into_cow);
                    }
                    Key::Result => {
                        once(&mut saw_result, "result")?;
                        // `null` included: see the two-pass decoder.
                        e.result = Some(map.next_value::<Value>()?);
                    }
                    Key::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(e)
        }
    }

    /// `params` typed by the method that came before it.
    struct ParamsOf<'m>(&'m str);
    impl<'de> DeserializeSeed<'de> for ParamsOf<'_> {
        type Value = Notification<'de>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            fn typed<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
                match Option::<T>::deserialize(d)? {
                    Some(params) => Ok(params),
                    // `"params": null` reads as `{}`, as in the careful path.
                    None => serde_json::from_str("{}").map_err(D::Error::custom),
                }
            }
            Ok(match self.0 {
                method::ON_TOKEN => Notification::Token(typed(d)?),
                method::ON_STOP_TOKEN => Notification::StopToken(typed(d)?),
                method::ON_TOOL_CALL => Notification::ToolCall(typed(d)?),
                method::ON_TOOL_RESPONSE => Notification::ToolResponse(typed(d)?),
                method::ON_EVENTS => Notification::Events(typed(d)?),
                method::ON_CLIENT_SIDE_TOOL_CALLS => Notification::ClientSideToolCalls(typed(d)?),
                other => Notification::Unknown {
                    method: other.to_owned(),
                    params: typed(d)?,
                },
            })
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    let e = de.deserialize_map(EnvelopeVisitor).map_err(drop)?;
    de.end().map_err(drop)?;
    match (e.method, e.notification, e.id, e.result) {
        (Some(_), Some(n), _, _) => Ok(ServerFrame::Notification(n)),
        (Some(method), None, _, _) => {
            let params = e.raw_params.map(RawValue::get).unwrap_or("{}");
            decode_notification(method, params)
                .map(ServerFrame::Notification)
                .map_err(drop)
        }
        (None, _, Some(id), Some(result)) => Ok(ServerFrame::Response { id, result }),
        _ => Err(()),
    }
}

#[cfg(any(test, feature = "fuzzing"))]
fn decode_notification<'a>(
    method: Cow<'a, str>,
    params: &'a str,
) -> Result<Notification<'a>, ProtocolError> {
    fn parse<'a, T: Deserialize<'a>>(method: &str, params: &'a str) -> Result<T, ProtocolError> {
        serde_json::from_str(params).map_err(|e| ProtocolError::InvalidParams {
            method: method.to_owned(),
            message: e.to_string(),
        })
    }
    let m: &str = &method;
    Ok(match m {
        method::ON_TOKEN => Notification::Token(parse(m, params)?),
        method::ON_STOP_TOKEN => Notification::StopToken(parse(m, params)?),
        method::ON_TOOL_CALL => Notification::ToolCall(parse(m, params)?),
        method::ON_TOOL_RESPONSE => Notification::ToolResponse(parse(m, params)?),
        method::ON_EVENTS => Notification::Events(parse(m, params)?),
        method::ON_CLIENT_SIDE_TOOL_CALLS => Notification::ClientSideToolCalls(parse(m, params)?),
        _ => Notification::Unknown {
            params: serde_json::from_str(params).unwrap_or(Value::Null),
            method: method.into_owned(),
        },
    })
}

/// Encodes a response frame (server side).
pub fn encode_response(id: &str, result: &Value) -> String {
    serde_json::json!({ "id": id, "result": result }).to_string()
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

/// The agent a context runs, as `connect_to_context` and the REST routes
/// return it. Every field is optional on the wire; unknown fields are kept
/// in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Agent {
    /// Agent id.
    #[serde(default, deserialize_with = "lenient::string_or_number")]
    pub agent_id: String,
    /// Display name.
    #[serde(default, deserialize_with = "lenient::any_as_text")]
    pub agent_name: String,
    /// Description.
    #[serde(default, deserialize_with = "lenient::any_as_text")]
    pub agent_description: String,
    /// System prompt.
    #[serde(default, deserialize_with = "lenient::any_as_text")]
    pub prompt: String,
    /// Owning org.
    #[serde(default, deserialize_with = "lenient::any_as_text")]
    pub org_id: String,
    /// Whether anyone may create contexts on it.
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub is_public: bool,
    /// Whether it speaks first on connect.
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub agent_speaks_first: bool,
    /// Its tools, as the server describes them (names or objects).
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub tools: Vec<Value>,
    /// Creation time, unix seconds (REST).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::unix_seconds"
    )]
    pub created_at: Option<i64>,
    /// Last update, unix seconds (REST).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::unix_seconds"
    )]
    pub updated_at: Option<i64>,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `server` object of an extension-capable `connect_to_context` result.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Server name.
    #[serde(default)]
    pub name: String,
    /// Server version.
    #[serde(default)]
    pub version: String,
    /// Advertised extensions (see [`capability`]).
    #[serde(default)]
    pub capabilities: Vec<String>,
}

impl ServerInfo {
    /// True when the server advertised `name`.
    pub fn has(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c == name)
    }
}

/// A successful `connect_to_context` result.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConnectResult {
    /// Always true on success.
    #[serde(default)]
    pub success: bool,
    /// The agent starts a response right away.
    #[serde(default)]
    pub agent_speaks_first: bool,
    /// The context's agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
    /// Extensions, when the server has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerInfo>,
    /// `resume`: whether every missed notification was replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<bool>,
    /// `seq`: the highest `seq` the context had reached when this
    /// connection attached (notifications after it are live). Lets a client
    /// that has seen no notification yet still resume from the right point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// The failure half of a result: `success` is not true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFailure {
    /// `result.error`, as text.
    pub error: String,
    /// `result.code` (`error_codes` extension).
    pub code: Option<String>,
}

/// Splits a `result` object into success or failure. A result counts as a
/// success when `success` is true, or when it has no `error` at all (some
/// servers omit `success` on plain acknowledgements).
pub fn result_failure(result: &Value) -> Option<ResultFailure> {
    let success = result.get("success").and_then(Value::as_bool);
    let error = result.get("error").filter(|e| !e.is_null());
    match (success, error) {
        (Some(true), _) | (None, None) => None,
        (_, error) => Some(ResultFailure {
            error: match error {
                Some(Value::String(s)) => s.clone(),
                Some(other) => json_text(other),
                None => "request failed without an error message".into(),
            },
            code: result
                .get("code")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }),
    }
}

/// What `connect_to_context`'s result says, read leniently: a result that
/// does not fit (a field of the wrong type) reads as the default.
pub fn connect_result(result: Value) -> ConnectResult {
    compact::connect_result(&result)
}

/// A value as compact JSON text.
pub fn json_text(value: &Value) -> String {
    #[cfg(target_arch = "wasm32")]
    return compact::to_json(value);
    #[cfg(not(target_arch = "wasm32"))]
    value.to_string()
}

/// Parses JSON text into a value.
pub fn parse_json(text: &str) -> Option<Value> {
    #[cfg(target_arch = "wasm32")]
    return compact::parse(text).ok();
    #[cfg(not(target_arch = "wasm32"))]
    serde_json::from_str(text).ok()
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A frame id as a server may send it.
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Deserialize)]
#[serde(untagged)]
enum Id<'a> {
    #[serde(borrow)]
    Str(Cow<'a, str>),
    Num(serde_json::Number),
}

#[cfg(any(test, feature = "fuzzing"))]
impl<'a> Id<'a> {
    fn into_cow(self) -> Cow<'a, str> {
        match self {
            Id::Str(s) => s,
            Id::Num(n) => Cow::Owned(n.to_string()),
        }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
fn de_id_borrowed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    Ok(Option::<Id<'de>>::deserialize(d)?.map(Id::into_cow))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_frames_borrow_from_the_input() {
        let frame = r#"{"method":"on_token","params":{"token":"Hi","response_id":"r1","seq":3}}"#;
        let ServerFrame::Notification(Notification::Token(p)) = decode_server_frame(frame).unwrap()
        else {
            panic!("not a token")
        };
        assert!(matches!(p.token, Cow::Borrowed("Hi")));
        assert!(matches!(p.response_id, Cow::Borrowed("r1")));
        assert_eq!(p.seq, Some(3));
    }

    #[test]
    fn the_one_pass_decoder_agrees_with_the_careful_one() {
        let frames = [
            r#"{"method":"on_token","params":{"token":"Hi","response_id":"r1","seq":3}}"#,
            r#"{"params":{"token":"Hi","response_id":"r1"},"method":"on_token"}"#,
            r#"{"id":null,"method":"on_stop_token","params":{"response_id":"r","reason":"stopped"},"x":[1,{"y":2}]}"#,
            r#"{"meth\u006fd":"on_token","params":{"token":"a\"\\\n😀","response_id":"r\u00e9"}}"#,
            r#"{"method":"on_t\u006fken","params":{"token":"x","response_id":"r"}}"#,
            r#"{"method":"on_events","params":null}"#,
            r#"{"method":"on_events"}"#,
            r#"{"method":"on_thinking","params":null}"#,
            r#"{"method":"on_thinking","params":{"x":[1,2]}}"#,
            r#"{"method":"on_tool_call","params":{"tool_call_id":"t","tool_name":"n","tool_input":{"q":1}},"id":7}"#,
            r#"{"method":"on_tool_response","params":{"tool_call_id":"t","tool_output":{"a":1}}}"#,
            r#"{"method":"on_client_side_tool_calls","params":{"tool_calls":[{"tool_call_id":"c"}]}}"#,
            r#"{"id":"4","result":{"success":true}}"#,
            r#"{"result":{"success":false,"error":"no"},"id":12}"#,
            r#"{"id":"4","result":null}"#,
            r#"{"method":null,"id":"4","result":{}}"#,
            // Errors: each must come out exactly as the careful decoder says.
            r#"{"method":"on_token","params":{"token":5}}"#,
            r#"{"method":"on_token","params":null}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r"}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r"}} x"#,
            r#"{"method":"on_token","method":"on_token","params":{}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r"},"params":{}}"#,
            r#"{"method":5}"#,
            r#"{"id":{"a":1},"result":{}}"#,
            r#"{"id":"4"}"#,
            r#"{}"#,
            r#"[1,2]"#,
            "not json",
            "",
        ];
        for f in frames {
            let careful = decode_server_frame_in_two_passes(f);
            // The serde path as a whole (the compact reader, which ships,
            // is held to it in `compact`'s tests, error variants only).
            assert_eq!(decode_server_frame_with_serde(f), careful, "{f}");
            if let Ok(fast) = decode_server_frame_in_one_pass(f) {
                assert_eq!(Ok(fast), careful, "{f}");
            }
        }
        // The hot path takes the frames it is for.
        assert!(decode_server_frame_in_one_pass(frames[0]).is_ok());
        assert!(decode_server_frame_in_one_pass(frames[3]).is_ok());
    }

    #[test]
    fn escaped_tokens_are_unescaped() {
        let frame = r#"{"method":"on_token","params":{"token":"a\nb\u00e9","response_id":"r"}}"#;
        let ServerFrame::Notification(Notification::Token(p)) = decode_server_frame(frame).unwrap()
        else {
            panic!("not a token")
        };
        assert_eq!(p.token, "a\nbé");
    }

    #[test]
    fn null_id_with_method_is_a_notification_and_unknown_fields_are_ignored() {
        let frame =
            r#"{"id":null,"method":"on_stop_token","params":{"response_id":"r","extra":1},"x":2}"#;
        assert!(matches!(
            decode_server_frame(frame).unwrap(),
            ServerFrame::Notification(Notification::StopToken(_))
        ));
    }

    #[test]
    fn numeric_ids_are_accepted() {
        let frame = r#"{"id":7,"result":{"success":true}}"#;
        let ServerFrame::Response { id, .. } = decode_server_frame(frame).unwrap() else {
            panic!()
        };
        assert_eq!(id, "7");
    }

    #[test]
    fn unknown_methods_are_surfaced() {
        let frame = r#"{"method":"on_thinking","params":{"x":1}}"#;
        let ServerFrame::Notification(Notification::Unknown { method, params }) =
            decode_server_frame(frame).unwrap()
        else {
            panic!()
        };
        assert_eq!(method, "on_thinking");
        assert_eq!(params["x"], 1);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            decode_server_frame("not json"),
            Err(ProtocolError::InvalidJson { .. })
        ));
        assert!(matches!(
            decode_server_frame("[1,2]"),
            Err(ProtocolError::InvalidJson { .. })
        ));
        assert!(matches!(
            decode_server_frame("{}"),
            Err(ProtocolError::UnexpectedShape { .. })
        ));
        assert!(matches!(
            decode_server_frame(r#"{"method":"on_token","params":{"token":5}}"#),
            Err(ProtocolError::InvalidParams { .. })
        ));
    }

    #[test]
    fn requests_round_trip() {
        let req = ClientRequest::ConnectToContext(ConnectParams {
            context_id: "c".into(),
            access_token: Some("t".into()),
            resume_after_seq: Some(4),
            client_key: None,
        });
        let text = req.encode(Some("1"));
        assert_eq!(
            text,
            r#"{"method":"connect_to_context","params":{"context_id":"c","access_token":"t","resume_after_seq":4},"id":"1"}"#
        );
        let back = decode_client_frame(&text).unwrap();
        assert_eq!(back.id.as_deref(), Some("1"));
        assert_eq!(back.request.unwrap(), req);
        let stop = ClientRequest::StopInvocation {}.encode(Some("2"));
        assert_eq!(stop, r#"{"method":"stop_invocation","params":{},"id":"2"}"#);
        assert_eq!(
            decode_client_frame(&stop).unwrap().request.unwrap(),
            ClientRequest::StopInvocation {}
        );
    }

    #[test]
    fn debug_never_prints_a_credential() {
        let params = ConnectParams {
            context_id: "ctx-1".into(),
            access_token: Some("sk_secret_token".into()),
            resume_after_seq: Some(3),
            client_key: Some("pk_live_key".into()),
        };
        let request = ClientRequest::ConnectToContext(params.clone());
        for debug in [
            format!("{params:?}"),
            format!("{request:?}"),
            format!("{request:#?}"),
        ] {
            assert!(!debug.contains("sk_secret_token"), "{debug}");
            assert!(!debug.contains("pk_live_key"), "{debug}");
            assert!(debug.contains("<redacted>"), "{debug}");
            assert!(debug.contains("ctx-1"), "{debug}");
        }
        // An absent credential shows as absent, not as redacted.
        let bare = format!("{:?}", ConnectParams::default());
        assert!(bare.contains("access_token: None"), "{bare}");
    }

    #[test]
    fn client_frames_with_bad_params_keep_their_id() {
        let f =
            decode_client_frame(r#"{"method":"add_message","params":{"msg":1},"id":"9"}"#).unwrap();
        assert_eq!(f.id.as_deref(), Some("9"));
        assert!(f.request.is_err());
        let f = decode_client_frame(r#"{"method":"dance","id":3}"#).unwrap();
        assert_eq!(f.id.as_deref(), Some("3"));
        assert_eq!(f.request.unwrap_err(), "unknown method `dance`");
    }

    #[test]
    fn a_null_result_is_an_answer_and_a_missing_one_is_not() {
        // The hosted server answers `add_message` with `"result": null`.
        let frame = decode_server_frame(r#"{"id":"4","result":null}"#).unwrap();
        assert!(
            matches!(frame, ServerFrame::Response { ref id, result: Value::Null } if id == "4")
        );
        assert!(decode_server_frame(r#"{"id":"4"}"#).is_err());
    }

    #[test]
    fn result_failures_accept_tuple_text_and_codes() {
        let r =
            serde_json::json!({"success": false, "error": "('nope', 403)", "code": "forbidden"});
        let f = result_failure(&r).unwrap();
        assert_eq!(f.error, "('nope', 403)");
        assert_eq!(f.code.as_deref(), Some("forbidden"));
        assert!(result_failure(&serde_json::json!({"success": true})).is_none());
        assert!(result_failure(&serde_json::json!({"error": "x"})).is_some());
    }

    #[test]
    fn agents_decode_tolerantly() {
        let a: Agent = serde_json::from_str(
            r#"{"agent_id":7,"agent_name":"A","agent_description":null,"tools":null,
                "is_public":null,"created_at":1700000000.5,"color":"blue"}"#,
        )
        .unwrap();
        assert_eq!(a.agent_id, "7");
        assert_eq!(a.agent_description, "");
        assert!(a.tools.is_empty());
        assert_eq!(a.created_at, Some(1_700_000_000));
        assert_eq!(a.extra["color"], "blue");
    }

    #[test]
    fn notifications_round_trip_through_encode() {
        let n = Notification::Token(TokenParams {
            token: "a\"b".into(),
            response_id: "r".into(),
            seq: Some(1),
        });
        let text = n.encode();
        let ServerFrame::Notification(back) = decode_server_frame(&text).unwrap() else {
            panic!()
        };
        assert_eq!(back, n);
    }
}
