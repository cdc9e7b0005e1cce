//! Client-to-server frames: the requests a client sends, how it writes
//! them, and how a server reads them back.

use crate::prelude::*;

use serde::{Deserialize, Serialize};
#[cfg(any(test, feature = "server"))]
use serde_json::value::RawValue;

#[cfg(any(test, feature = "server"))]
use super::lenient;
use super::{compact, method};
#[cfg(any(test, feature = "server"))]
use crate::error::ProtocolError;

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

impl core::fmt::Debug for ConnectParams {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
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
#[cfg(any(test, feature = "server"))]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
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
#[cfg(any(test, feature = "server"))]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
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

#[cfg(any(test, feature = "server"))]
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
