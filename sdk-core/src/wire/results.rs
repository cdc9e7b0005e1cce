//! The typed `result`s of server answers: `connect_to_context`'s (with the
//! context's agent and the server's extensions) and the failure half every
//! result may have.

use crate::prelude::*;

use serde::{Deserialize, Serialize};

use super::json::{json_str, members, Scalar};
use super::{compact, lenient, Json, JsonMap};

/// The agent a context runs, as `connect_to_context` and the REST routes
/// return it. Every field is optional on the wire; unknown fields are kept
/// in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
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
    pub tools: Vec<Json>,
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
    pub extra: JsonMap,
}

impl Agent {
    /// The agent `agent_id`, every other field empty or default (set them
    /// as needed). Non-exhaustive: a field may be added in a minor release.
    pub fn new(agent_id: impl Into<String>) -> Agent {
        Agent {
            agent_id: agent_id.into(),
            ..Agent::default()
        }
    }
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
    /// Advertised extensions (see [`capability`](super::capability)).
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
/// servers omit `success` on plain acknowledgements). Read from the value's
/// text, as [`connect_result`] is.
pub fn result_failure(result: &Json) -> Option<ResultFailure> {
    let (mut success, mut error, mut code) = (None, None, None);
    // A result that is not an object has none of the three.
    let _ = members(&json_str(result), |key, r| {
        match key {
            "success" => success = r.scalar()?.as_bool(),
            "error" => {
                error = match r.scalar()? {
                    Scalar::Null => None,
                    other => Some(other.into_text()),
                }
            }
            "code" => code = r.scalar()?.into_string(),
            _ => r.skip()?,
        }
        Ok(())
    });
    match (success, error) {
        (Some(true), _) | (None, None) => None,
        (_, error) => Some(ResultFailure {
            error: error.unwrap_or_else(|| "request failed without an error message".into()),
            code,
        }),
    }
}

/// The `response_id` a `result` names (the answer to `add_message` on a
/// server that numbers replies), if it is a string.
pub(crate) fn result_response_id(result: &Json) -> Option<String> {
    let mut id = None;
    let _ = members(&json_str(result), |key, r| {
        if key != "response_id" {
            return r.skip();
        }
        id = r.scalar()?.into_string();
        Ok(())
    });
    id
}

/// What `connect_to_context`'s result says, read leniently: a result that
/// does not fit (a field of the wrong type) reads as the default.
pub fn connect_result(result: Json) -> ConnectResult {
    compact::connect_result(&result)
}
