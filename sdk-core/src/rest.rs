//! JSON bodies of the REST surface (`docs/protocol.md` §4), requests and
//! responses, shared by the admin client and the reference server so the two
//! cannot drift.
//!
//! Decoding is tolerant, because the hosted service is not ours: unknown
//! fields are ignored, optional and "obvious" fields default when missing,
//! `null` collections decode as empty, ids may be strings or numbers, and
//! unix timestamps may be integers, floats or numeric strings. Request
//! fields the spec marks as required (an agent's name and prompt, a
//! context's agent id, ...) stay required, so a server decoding a bad body
//! gets a serde error that names the missing field.
//!
//! Types that hold a secret (a token, an API key, a password) have a
//! hand-written `Debug` that prints `<redacted>` instead, so logging a value
//! never leaks a credential.

use crate::prelude::*;

use core::fmt;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::redact::Redacted;
use crate::wire::lenient::{
    any_as_text, null_as_default, opt_string_or_number, string_or_number, unix_seconds,
};
pub use crate::wire::Agent;

// ---------------------------------------------------------------------------
// 4.1 Agents
// ---------------------------------------------------------------------------

/// Body of `POST /agent`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewAgent {
    /// Display name.
    pub agent_name: String,
    /// What the agent is for. Defaults to empty when a client omits it.
    #[serde(default)]
    pub agent_description: String,
    /// System prompt.
    pub prompt: String,
    /// Whether anyone may create contexts on it (such contexts come back
    /// with a `client_api_key`). Defaults to `false` when omitted.
    #[serde(default)]
    pub is_public: bool,
    /// Whether the agent speaks first when a client connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_speaks_first: Option<bool>,
    /// Tools, as names or tool objects; the server defines their shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
}

impl NewAgent {
    /// A private agent with a name, a description and a prompt.
    pub fn new(
        agent_name: impl Into<String>,
        agent_description: impl Into<String>,
        prompt: impl Into<String>,
    ) -> NewAgent {
        NewAgent {
            agent_name: agent_name.into(),
            agent_description: agent_description.into(),
            prompt: prompt.into(),
            ..NewAgent::default()
        }
    }
}

/// Answer of `GET /agents`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentList {
    /// The agents the caller may see.
    #[serde(default, deserialize_with = "null_as_default")]
    pub agents: Vec<Agent>,
}

impl AgentList {
    /// The list `agents`.
    pub fn new(agents: Vec<Agent>) -> AgentList {
        AgentList { agents }
    }
}

// ---------------------------------------------------------------------------
// 4.1 Contexts and chat
// ---------------------------------------------------------------------------

/// Body of `POST /context`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewContext {
    /// The agent the context runs.
    pub agent_id: String,
    /// Ask the agent to produce a first message when the context is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoke_agent_message: Option<bool>,
    /// Values substituted into the agent's prompt template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_args: Option<Map<String, Value>>,
    /// Free-form data the app attaches to the context; returned as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_defined: Option<Map<String, Value>>,
}

impl NewContext {
    /// A context on `agent_id` with no options.
    pub fn new(agent_id: impl Into<String>) -> NewContext {
        NewContext {
            agent_id: agent_id.into(),
            ..NewContext::default()
        }
    }
}

/// A context, as `POST /context` and `GET /context/{id}` return it.
///
/// `Debug` redacts `client_api_key`.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Context {
    /// Context id; pass it to `connect_to_context`.
    #[serde(default, deserialize_with = "string_or_number")]
    pub context_id: String,
    /// The agent it runs.
    #[serde(default, deserialize_with = "string_or_number")]
    pub agent_id: String,
    /// The user (or org key) that created it.
    #[serde(default, deserialize_with = "string_or_number")]
    pub user_id: String,
    /// The history, oldest first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub messages: Vec<ContextMessage>,
    /// What the app attached at creation.
    #[serde(default, deserialize_with = "null_as_default")]
    pub user_defined: Map<String, Value>,
    /// Creation time, unix seconds.
    #[serde(
        default,
        deserialize_with = "unix_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<i64>,
    /// Last change, unix seconds.
    #[serde(
        default,
        deserialize_with = "unix_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<i64>,
    /// For a context on a public agent: a client key scoped to it, ready to
    /// hand to a browser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_api_key: Option<String>,
}

impl Context {
    /// The context `context_id` on `agent_id`, of `user_id`, with an empty
    /// history and no timestamps; set the other fields as needed.
    pub fn new(
        context_id: impl Into<String>,
        agent_id: impl Into<String>,
        user_id: impl Into<String>,
    ) -> Context {
        Context {
            context_id: context_id.into(),
            agent_id: agent_id.into(),
            user_id: user_id.into(),
            ..Context::default()
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("context_id", &self.context_id)
            .field("agent_id", &self.agent_id)
            .field("user_id", &self.user_id)
            .field("messages", &self.messages)
            .field("user_defined", &self.user_defined)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field(
                "client_api_key",
                &self.client_api_key.as_deref().map(Redacted),
            )
            .finish()
    }
}

/// One entry of a context's history.
///
/// On the wire a chat message is `{sender: "human"|"ai", message}` and a tool
/// step is tagged by `type`. Anything else (a kind this client does not know)
/// is kept verbatim in [`ContextMessage::Other`] rather than failing the whole
/// context.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ContextMessage {
    /// `{sender: "human", message}`.
    Human {
        /// What the person said.
        message: String,
    },
    /// `{sender: "ai", message}`.
    Ai {
        /// What the agent said.
        message: String,
    },
    /// `{type: "tool_call", tool_call_id, tool_name, tool_input}`.
    ToolCall {
        /// Id pairing the call with its response.
        tool_call_id: String,
        /// The tool's name.
        tool_name: String,
        /// The arguments, as the agent produced them.
        tool_input: Value,
    },
    /// `{type: "tool_response", tool_call_id, tool_output}`.
    ToolResponse {
        /// The call it answers.
        tool_call_id: String,
        /// The tool's output, as text.
        tool_output: String,
    },
    /// An entry of a shape this client does not know, as received.
    Other(Value),
}

// What the known entries look like on the wire, for decoding; encoding is
// written by hand below so it never clones the entry.
#[derive(Deserialize)]
struct ChatEntry {
    sender: String,
    #[serde(default, deserialize_with = "any_as_text")]
    message: String,
}

#[derive(Deserialize)]
struct ToolCallEntry {
    #[serde(default, deserialize_with = "string_or_number")]
    tool_call_id: String,
    #[serde(default)]
    tool_name: String,
    #[serde(default)]
    tool_input: Value,
}

#[derive(Deserialize)]
struct ToolResponseEntry {
    #[serde(default, deserialize_with = "string_or_number")]
    tool_call_id: String,
    #[serde(default, deserialize_with = "any_as_text")]
    tool_output: String,
}

const TOOL_CALL: &str = "tool_call";
const TOOL_RESPONSE: &str = "tool_response";

impl Serialize for ContextMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ContextMessage::Human { message } => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("sender", "human")?;
                map.serialize_entry("message", message)?;
                map.end()
            }
            ContextMessage::Ai { message } => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("sender", "ai")?;
                map.serialize_entry("message", message)?;
                map.end()
            }
            ContextMessage::ToolCall {
                tool_call_id,
                tool_name,
                tool_input,
            } => {
                let mut map = s.serialize_map(Some(4))?;
                map.serialize_entry("type", TOOL_CALL)?;
                map.serialize_entry("tool_call_id", tool_call_id)?;
                map.serialize_entry("tool_name", tool_name)?;
                map.serialize_entry("tool_input", tool_input)?;
                map.end()
            }
            ContextMessage::ToolResponse {
                tool_call_id,
                tool_output,
            } => {
                let mut map = s.serialize_map(Some(3))?;
                map.serialize_entry("type", TOOL_RESPONSE)?;
                map.serialize_entry("tool_call_id", tool_call_id)?;
                map.serialize_entry("tool_output", tool_output)?;
                map.end()
            }
            ContextMessage::Other(value) => value.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ContextMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(ContextMessage::from_value(value))
    }
}

impl ContextMessage {
    /// Classifies one history entry; never fails (unknown shapes become
    /// [`ContextMessage::Other`]).
    fn from_value(value: Value) -> ContextMessage {
        match value.get("type").and_then(Value::as_str) {
            Some(TOOL_CALL) => {
                if let Ok(e) = ToolCallEntry::deserialize(&value) {
                    return ContextMessage::ToolCall {
                        tool_call_id: e.tool_call_id,
                        tool_name: e.tool_name,
                        tool_input: e.tool_input,
                    };
                }
            }
            Some(TOOL_RESPONSE) => {
                if let Ok(e) = ToolResponseEntry::deserialize(&value) {
                    return ContextMessage::ToolResponse {
                        tool_call_id: e.tool_call_id,
                        tool_output: e.tool_output,
                    };
                }
            }
            _ => {
                if let Ok(e) = ChatEntry::deserialize(&value) {
                    if e.sender.eq_ignore_ascii_case("human") {
                        return ContextMessage::Human { message: e.message };
                    }
                    if e.sender.eq_ignore_ascii_case("ai") {
                        return ContextMessage::Ai { message: e.message };
                    }
                }
            }
        }
        ContextMessage::Other(value)
    }
}

/// Body of `POST /chat`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatRequest {
    /// The context to talk in.
    pub context_id: String,
    /// The human message.
    pub message: String,
}

impl ChatRequest {
    /// `message` for the context `context_id`.
    pub fn new(context_id: impl Into<String>, message: impl Into<String>) -> ChatRequest {
        ChatRequest {
            context_id: context_id.into(),
            message: message.into(),
        }
    }
}

/// Answer of `POST /chat`: the agent's finished reply, not streamed.
///
/// The reference server returns `{success, response_id, message}`. The
/// hosted service does not document this route's answer, so decoding also
/// accepts the reply text under `response`, and a missing `success` counts
/// as true (the HTTP status already said the call succeeded).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatReply {
    /// True on success.
    #[serde(default = "yes")]
    pub success: bool,
    /// Id of the response, the same id `on_token` would have carried.
    #[serde(
        default,
        deserialize_with = "opt_string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_id: Option<String>,
    /// The reply text.
    #[serde(default, alias = "response", deserialize_with = "any_as_text")]
    pub message: String,
}

impl ChatReply {
    /// A reply with `success` and `message`, naming no response.
    pub fn new(success: bool, message: impl Into<String>) -> ChatReply {
        ChatReply {
            success,
            response_id: None,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// 4.1 Org and client API keys
// ---------------------------------------------------------------------------

/// The two kinds of JWT API key of `docs/protocol.md` §1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyType {
    /// Short-lived, for browsers and apps: may only open a WebSocket.
    Client,
    /// Long-lived, for the app's backend: every REST call of its org.
    Org,
    /// A type this client does not know (decoding only; never send it).
    #[serde(other)]
    Other,
}

/// Body of `POST /generate-api-key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GenerateApiKeyRequest {
    /// The org the key belongs to.
    pub org_id: String,
    /// `"client"` or `"org"`, serialized as `type`.
    #[serde(rename = "type")]
    pub kind: KeyType,
    /// Scope a client key to this one context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// Lifetime in seconds (the server's default when absent: 120 s for
    /// client keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

impl GenerateApiKeyRequest {
    /// A client key of `org_id`, unscoped, with the server's default TTL.
    pub fn client(org_id: impl Into<String>) -> GenerateApiKeyRequest {
        GenerateApiKeyRequest {
            org_id: org_id.into(),
            kind: KeyType::Client,
            context_id: None,
            ttl_seconds: None,
        }
    }

    /// An org key of `org_id`.
    pub fn org(org_id: impl Into<String>) -> GenerateApiKeyRequest {
        GenerateApiKeyRequest {
            kind: KeyType::Org,
            ..GenerateApiKeyRequest::client(org_id)
        }
    }
}

/// Answer of `POST /generate-api-key`. `Debug` redacts `token`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GeneratedApiKey {
    /// Id of the key in the server's store (revocation is by this id).
    #[serde(default, deserialize_with = "string_or_number")]
    pub api_key_id: String,
    /// The org it belongs to.
    #[serde(default, deserialize_with = "string_or_number")]
    pub org_id: String,
    /// The JWT itself: the credential to hand out.
    #[serde(default)]
    pub token: String,
    /// Whether the key is currently valid.
    #[serde(default = "yes")]
    pub valid: bool,
    /// Client or org key, `type` on the wire.
    #[serde(rename = "type")]
    pub kind: KeyType,
    /// Who created it.
    #[serde(default, deserialize_with = "string_or_number")]
    pub user_id: String,
    /// Creation time, unix seconds.
    #[serde(
        default,
        deserialize_with = "unix_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<i64>,
    /// Last change, unix seconds.
    #[serde(
        default,
        deserialize_with = "unix_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<i64>,
}

impl GeneratedApiKey {
    /// A valid key of `kind`: its id, its org and the key itself; no user
    /// and no timestamps (set them as needed).
    pub fn new(
        api_key_id: impl Into<String>,
        org_id: impl Into<String>,
        token: impl Into<String>,
        kind: KeyType,
    ) -> GeneratedApiKey {
        GeneratedApiKey {
            api_key_id: api_key_id.into(),
            org_id: org_id.into(),
            token: token.into(),
            valid: true,
            kind,
            user_id: String::new(),
            created_at: None,
            updated_at: None,
        }
    }
}

impl fmt::Debug for GeneratedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedApiKey")
            .field("api_key_id", &self.api_key_id)
            .field("org_id", &self.org_id)
            .field("token", &Redacted(&self.token))
            .field("valid", &self.valid)
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// One key of `GET /api-keys` (reference server): its metadata, never the
/// key itself (keys are not stored, so they cannot be listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiKeyInfo {
    /// Its id (revocation is by this id).
    #[serde(default, deserialize_with = "string_or_number")]
    pub api_key_id: String,
    /// Client or org key, `type` on the wire.
    #[serde(rename = "type")]
    pub kind: KeyType,
    /// The org it belongs to.
    #[serde(default, deserialize_with = "string_or_number")]
    pub org_id: String,
    /// The context a client key is scoped to.
    #[serde(default)]
    pub context_id: Option<String>,
    /// Whether it still works (false once revoked).
    #[serde(default = "yes")]
    pub valid: bool,
    /// Creation time, unix seconds.
    #[serde(default, deserialize_with = "unix_seconds")]
    pub created_at: Option<i64>,
    /// Expiry, unix seconds.
    #[serde(default, deserialize_with = "unix_seconds")]
    pub expires_at: Option<i64>,
    /// The credential that minted it.
    #[serde(default)]
    pub minted_by: Option<String>,
}

impl ApiKeyInfo {
    /// A valid key `api_key_id` of `kind` in `org_id`, unscoped, with no
    /// timestamps and no minter (set them as needed).
    pub fn new(
        api_key_id: impl Into<String>,
        kind: KeyType,
        org_id: impl Into<String>,
    ) -> ApiKeyInfo {
        ApiKeyInfo {
            api_key_id: api_key_id.into(),
            kind,
            org_id: org_id.into(),
            context_id: None,
            valid: true,
            created_at: None,
            expires_at: None,
            minted_by: None,
        }
    }
}

/// Answer of `GET /api-keys`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiKeyList {
    /// The keys, newest first.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyInfo>,
}

impl ApiKeyList {
    /// The list `api_keys`.
    pub fn new(api_keys: Vec<ApiKeyInfo>) -> ApiKeyList {
        ApiKeyList { api_keys }
    }
}

/// Answer of `DELETE /api-key/{id}` (reference server).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RevokedApiKey {
    /// Keys minted by the revoked one (recursively), revoked with it.
    #[serde(default)]
    pub revoked_minted: u64,
}

impl RevokedApiKey {
    /// A revocation that also revoked `revoked_minted` minted keys.
    pub fn new(revoked_minted: u64) -> RevokedApiKey {
        RevokedApiKey { revoked_minted }
    }
}

// ---------------------------------------------------------------------------
// 4.2 People and their API keys
// ---------------------------------------------------------------------------

/// Body of `POST /auth/register` and `POST /auth/login`. `Debug` redacts
/// the password.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Credentials {
    /// Login name.
    pub username: String,
    /// Password, sent only over the request body.
    pub password: String,
}

impl Credentials {
    /// Credentials from a username and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &Redacted(&self.password))
            .finish()
    }
}

/// A person's account, as `register`, `login` and `me` return it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// Account id (a number on some servers; kept as text).
    #[serde(default, deserialize_with = "string_or_number")]
    pub id: String,
    /// Login name.
    #[serde(default)]
    pub username: String,
    /// Creation time, unix seconds, when the server says (a timestamp in
    /// another format decodes as `None`).
    #[serde(
        default,
        alias = "createdAt",
        deserialize_with = "unix_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<i64>,
    /// Last change, unix seconds, when the server says.
    #[serde(
        default,
        alias = "updatedAt",
        deserialize_with = "unix_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<i64>,
    /// The user's personal org (reference server, `docs/protocol.md`
    /// §3.7), which `POST /generate-api-key` needs; `None` from a server
    /// that does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}

impl User {
    /// The user `id` named `username`, with no timestamps and no org (set
    /// them as needed).
    pub fn new(id: impl Into<String>, username: impl Into<String>) -> User {
        User {
            id: id.into(),
            username: username.into(),
            ..User::default()
        }
    }
}

/// Answer of `POST /auth/login`. `Debug` redacts `access_token`.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LoginResponse {
    /// The user access token (a JWT, 15–60 minutes).
    #[serde(default)]
    pub access_token: String,
    /// Always `"bearer"`.
    #[serde(default = "bearer")]
    pub token_type: String,
    /// Seconds until `access_token` expires (0 when the server does not say).
    #[serde(default)]
    pub expires_in: u64,
    /// Who logged in.
    #[serde(default)]
    pub user: User,
}

impl LoginResponse {
    /// A bearer `access_token` valid `expires_in` seconds, for `user`.
    pub fn new(access_token: impl Into<String>, expires_in: u64, user: User) -> LoginResponse {
        LoginResponse {
            access_token: access_token.into(),
            token_type: "bearer".into(),
            expires_in,
            user,
        }
    }
}

impl fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginResponse")
            .field("access_token", &Redacted(&self.access_token))
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish()
    }
}

/// Body of `POST /auth/api-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewUserApiKey {
    /// A label, unique among the user's keys (409 when taken).
    pub nickname: String,
}

impl NewUserApiKey {
    /// A key named `nickname`.
    pub fn new(nickname: impl Into<String>) -> NewUserApiKey {
        NewUserApiKey {
            nickname: nickname.into(),
        }
    }
}

/// Answer of `POST /auth/api-keys`: the only time the key itself is shown.
/// camelCase on the wire. `Debug` redacts `key`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CreatedUserApiKey {
    /// Key id, the handle for deleting it (a number on some servers; kept
    /// as text).
    #[serde(default, deserialize_with = "string_or_number")]
    pub id: String,
    /// The label given at creation.
    #[serde(default)]
    pub nickname: String,
    /// The key (`sk_live_…`). Store it now: the server keeps only a hash.
    #[serde(default)]
    pub key: String,
    /// Creation time, ISO 8601.
    #[serde(default, alias = "created_at", deserialize_with = "any_as_text")]
    pub created_at: String,
    /// Last change, ISO 8601.
    #[serde(default, alias = "updated_at", deserialize_with = "any_as_text")]
    pub updated_at: String,
}

impl CreatedUserApiKey {
    /// The key `key` (id `id`, named `nickname`), with its ISO 8601
    /// creation and update times.
    pub fn new(
        id: impl Into<String>,
        nickname: impl Into<String>,
        key: impl Into<String>,
        created_at: impl Into<String>,
        updated_at: impl Into<String>,
    ) -> CreatedUserApiKey {
        CreatedUserApiKey {
            id: id.into(),
            nickname: nickname.into(),
            key: key.into(),
            created_at: created_at.into(),
            updated_at: updated_at.into(),
        }
    }
}

impl fmt::Debug for CreatedUserApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedUserApiKey")
            .field("id", &self.id)
            .field("nickname", &self.nickname)
            .field("key", &Redacted(&self.key))
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// One entry of `GET /auth/api-keys`: metadata only, never the key.
/// camelCase on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UserApiKey {
    /// Key id (a number on some servers; kept as text).
    #[serde(default, deserialize_with = "string_or_number")]
    pub id: String,
    /// The label given at creation.
    #[serde(default)]
    pub nickname: String,
    /// Creation time, ISO 8601.
    #[serde(default, alias = "created_at", deserialize_with = "any_as_text")]
    pub created_at: String,
    /// Last change, ISO 8601.
    #[serde(default, alias = "updated_at", deserialize_with = "any_as_text")]
    pub updated_at: String,
}

impl UserApiKey {
    /// The key `id` named `nickname`, with its ISO 8601 creation and update
    /// times.
    pub fn new(
        id: impl Into<String>,
        nickname: impl Into<String>,
        created_at: impl Into<String>,
        updated_at: impl Into<String>,
    ) -> UserApiKey {
        UserApiKey {
            id: id.into(),
            nickname: nickname.into(),
            created_at: created_at.into(),
            updated_at: updated_at.into(),
        }
    }
}

/// Answer of `GET /auth/api-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserApiKeyList {
    /// The user's keys, `apiKeys` on the wire.
    #[serde(rename = "apiKeys", default, deserialize_with = "null_as_default")]
    pub api_keys: Vec<UserApiKey>,
}

impl UserApiKeyList {
    /// The list `api_keys`.
    pub fn new(api_keys: Vec<UserApiKey>) -> UserApiKeyList {
        UserApiKeyList { api_keys }
    }
}

/// Answer of `DELETE /auth/api-keys/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeletedMessage {
    /// A confirmation for people.
    #[serde(default, deserialize_with = "any_as_text")]
    pub message: String,
}

impl DeletedMessage {
    /// The confirmation `message`.
    pub fn new(message: impl Into<String>) -> DeletedMessage {
        DeletedMessage {
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// 4.3 Stream tokens, 4.4 publishable keys
// ---------------------------------------------------------------------------

/// Answer of `GET /api/v1/token`. `Debug` redacts `token`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StreamTokenResponse {
    /// True on success.
    #[serde(default = "yes")]
    pub success: bool,
    /// The single-use token (`pub_tok_…`).
    #[serde(default)]
    pub token: String,
    /// Its lifetime in seconds.
    #[serde(default)]
    pub ttl: u32,
}

impl StreamTokenResponse {
    /// A successful mint of `token`, valid `ttl` seconds.
    pub fn new(token: impl Into<String>, ttl: u32) -> StreamTokenResponse {
        StreamTokenResponse {
            success: true,
            token: token.into(),
            ttl,
        }
    }
}

impl fmt::Debug for StreamTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamTokenResponse")
            .field("success", &self.success)
            .field("token", &Redacted(&self.token))
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Body of `POST /client-key`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewClientKey {
    /// Browser origins (`https://app.example`) allowed to use the key.
    #[serde(default, deserialize_with = "null_as_default")]
    pub allowed_origins: Vec<String>,
}

impl NewClientKey {
    /// A key for pages served from `allowed_origins`.
    pub fn new(allowed_origins: Vec<String>) -> NewClientKey {
        NewClientKey { allowed_origins }
    }
}

/// Answer of `POST /client-key`: the org's publishable key.
///
/// The key is public by design (it is embedded in app code), but `Debug`
/// still redacts it, like every other key, so logs never carry one.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PublishableKey {
    /// The key (`pk_…`).
    #[serde(default)]
    pub client_key: String,
    /// Origins allowed to present it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub allowed_origins: Vec<String>,
}

impl PublishableKey {
    /// The key `client_key`, usable from `allowed_origins`.
    pub fn new(client_key: impl Into<String>, allowed_origins: Vec<String>) -> PublishableKey {
        PublishableKey {
            client_key: client_key.into(),
            allowed_origins,
        }
    }
}

impl fmt::Debug for PublishableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishableKey")
            .field("client_key", &Redacted(&self.client_key))
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Generic bodies
// ---------------------------------------------------------------------------

/// `{success: true}`, the answer of the delete routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SuccessBody {
    /// True on success; a missing field counts as true (the status said so).
    #[serde(default = "yes")]
    pub success: bool,
}

impl SuccessBody {
    /// `{"success": success}`.
    pub fn new(success: bool) -> SuccessBody {
        SuccessBody { success }
    }
}

impl Default for SuccessBody {
    fn default() -> Self {
        SuccessBody { success: true }
    }
}

/// The error body of every REST route: `{error, success: false, code}`.
///
/// Decoding also accepts the shapes other servers use: FastAPI's
/// `{"detail": …}`, and `{"error": "INVALID_CLIENT_KEY", "message": …}`
/// where `error` is the code and `message` the text (`docs/protocol.md`
/// §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorBody {
    /// Human-readable message (or, in the publishable-key shape, the code).
    #[serde(default, alias = "detail", deserialize_with = "any_as_text")]
    pub error: String,
    /// Always false.
    #[serde(default)]
    pub success: bool,
    /// Stable code (`invalid_billing`, `not_found`, `INVALID_CLIENT_KEY`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A longer text, when `error` holds a code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ErrorBody {
    /// An error body with a message and a code, as the reference server
    /// sends it.
    pub fn new(error: impl Into<String>, code: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
            success: false,
            code: Some(code.into()),
            message: None,
        }
    }

    /// The typed error this body means, given the HTTP status it came with.
    ///
    /// When there is no `code` but `error` looks like one
    /// (`SCREAMING_SNAKE_CASE`, as in `INVALID_CLIENT_KEY`), `error` is used
    /// as the code and `message` as the text.
    pub fn to_error(&self, status: Option<u16>) -> Error {
        let error_is_code = self.code.is_none() && looks_like_code(&self.error);
        match (&self.code, error_is_code) {
            (Some(code), _) => {
                let text = non_empty(&self.error).or(self.message.as_deref());
                Error::from_server(text.unwrap_or(code), Some(code), status)
            }
            (None, true) => {
                let text = self.message.as_deref().and_then(non_empty);
                Error::from_server(text.unwrap_or(&self.error), Some(&self.error), status)
            }
            (None, false) => {
                let text = non_empty(&self.error).or(self.message.as_deref());
                Error::from_server(
                    text.unwrap_or("request failed without an error message"),
                    None,
                    status,
                )
            }
        }
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.trim().is_empty()).then_some(s)
}

/// `INVALID_CLIENT_KEY`, not `Rate limit exceeded` nor `ERROR`-like words
/// without an underscore (too likely to be plain shouting).
fn looks_like_code(s: &str) -> bool {
    s.contains('_')
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn yes() -> bool {
    true
}

fn bearer() -> String {
    "bearer".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    fn round_trip<T>(value: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        let text = serde_json::to_string(value).unwrap();
        let back: T = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, value, "round trip through {text}");
    }

    // The constructors are how code outside the crate (the reference
    // server, the CLI) builds these non-exhaustive bodies: each must write
    // what a struct literal with the same values wrote.
    #[test]
    fn constructors_write_the_bodies_the_server_answers() {
        let user = User::new("u1", "ann");
        assert_eq!(
            serde_json::to_value(LoginResponse::new("tok", 60, user.clone())).unwrap(),
            json!({"access_token": "tok", "token_type": "bearer", "expires_in": 60,
                   "user": serde_json::to_value(&user).unwrap()}),
        );
        assert_eq!(
            serde_json::to_value(StreamTokenResponse::new("pub_tok_x", 30)).unwrap(),
            json!({"success": true, "token": "pub_tok_x", "ttl": 30}),
        );
        let key = GeneratedApiKey::new("k1", "o1", "jwt", KeyType::Client);
        assert!(key.valid);
        assert_eq!((key.user_id.as_str(), key.created_at), ("", None));
        let mut reply = ChatReply::new(true, "hi");
        assert_eq!(reply.response_id, None);
        reply.response_id = Some("r1".into());
        round_trip(&reply);
        let context = Context::new("c1", "a1", "u1");
        assert!(context.messages.is_empty() && context.client_api_key.is_none());
        round_trip(&context);
        assert_eq!(
            serde_json::to_value(PublishableKey::new("pk_x", vec!["https://a".into()])).unwrap(),
            json!({"client_key": "pk_x", "allowed_origins": ["https://a"]}),
        );
        assert_eq!(ApiKeyInfo::new("k", KeyType::Org, "o").context_id, None);
        assert_eq!(SuccessBody::new(true), SuccessBody { success: true });
    }

    #[test]
    fn new_agent_omits_unset_options_and_requires_name_and_prompt() {
        let agent = NewAgent::new("Helper", "helps", "Be helpful.");
        assert_eq!(
            serde_json::to_value(&agent).unwrap(),
            json!({"agent_name": "Helper", "agent_description": "helps",
                   "prompt": "Be helpful.", "is_public": false})
        );
        round_trip(&NewAgent {
            agent_speaks_first: Some(true),
            tools: Some(vec![json!("web_search"), json!({"name": "calc"})]),
            is_public: true,
            ..agent
        });
        let missing: Result<NewAgent, _> = serde_json::from_value(json!({"agent_name": "x"}));
        assert!(missing.unwrap_err().to_string().contains("prompt"));
    }

    #[test]
    fn agent_list_decodes_agents_with_timestamps() {
        let list: AgentList = serde_json::from_value(json!({
            "agents": [{"agent_id": "a1", "agent_name": "A", "created_at": 1763089120,
                        "updated_at": 1763089121, "new_field": 1}]
        }))
        .unwrap();
        assert_eq!(list.agents[0].agent_id, "a1");
        assert_eq!(list.agents[0].created_at, Some(1763089120));
        let empty: AgentList = serde_json::from_value(json!({"agents": null})).unwrap();
        assert!(empty.agents.is_empty());
        round_trip(&list);
    }

    #[test]
    fn new_context_matches_the_seed_body() {
        // The seed's backend sends exactly `{agent_id}`.
        let ctx: NewContext = serde_json::from_value(json!({"agent_id": "agent-1"})).unwrap();
        assert_eq!(ctx, NewContext::new("agent-1"));
        assert_eq!(
            serde_json::to_string(&ctx).unwrap(),
            r#"{"agent_id":"agent-1"}"#
        );
        let mut args = Map::new();
        args.insert("name".into(), json!("Ada"));
        round_trip(&NewContext {
            invoke_agent_message: Some(true),
            prompt_args: Some(args.clone()),
            user_defined: Some(args),
            ..ctx
        });
    }

    #[test]
    fn context_decodes_every_message_kind() {
        let ctx: Context = serde_json::from_value(json!({
            "context_id": "db5e4da5-f4eb-40d0-a1da-712d17317cce",
            "agent_id": "a1",
            "user_id": "u1",
            "messages": [
                {"sender": "human", "message": "Hi"},
                {"sender": "ai", "message": "Hello, how can I help?"},
                {"type": "tool_call", "tool_call_id": "t1", "tool_name": "web_search",
                 "tool_input": {"query": "weather today"}},
                {"type": "tool_response", "tool_call_id": "t1", "tool_output": "Weather results..."},
                {"type": "tool_response", "tool_call_id": 2, "tool_output": {"temp": 20}},
                {"type": "thinking", "text": "hmm"}
            ],
            "user_defined": null,
            "created_at": 1763089120,
            "updated_at": 1763089120.75,
            "client_api_key": "eyJhbGciOi.secret"
        }))
        .unwrap();
        assert_eq!(
            ctx.messages,
            vec![
                ContextMessage::Human {
                    message: "Hi".into()
                },
                ContextMessage::Ai {
                    message: "Hello, how can I help?".into()
                },
                ContextMessage::ToolCall {
                    tool_call_id: "t1".into(),
                    tool_name: "web_search".into(),
                    tool_input: json!({"query": "weather today"}),
                },
                ContextMessage::ToolResponse {
                    tool_call_id: "t1".into(),
                    tool_output: "Weather results...".into(),
                },
                ContextMessage::ToolResponse {
                    tool_call_id: "2".into(),
                    tool_output: r#"{"temp":20}"#.into(),
                },
                ContextMessage::Other(json!({"type": "thinking", "text": "hmm"})),
            ]
        );
        assert!(ctx.user_defined.is_empty());
        assert_eq!(ctx.updated_at, Some(1763089120));
        round_trip(&ctx);
    }

    #[test]
    fn context_messages_encode_in_the_spec_shapes() {
        let encoded = serde_json::to_value(vec![
            ContextMessage::Human {
                message: "a".into(),
            },
            ContextMessage::Ai {
                message: "b".into(),
            },
            ContextMessage::ToolCall {
                tool_call_id: "t".into(),
                tool_name: "n".into(),
                tool_input: json!({"q": 1}),
            },
            ContextMessage::ToolResponse {
                tool_call_id: "t".into(),
                tool_output: "o".into(),
            },
        ])
        .unwrap();
        assert_eq!(
            encoded,
            json!([
                {"sender": "human", "message": "a"},
                {"sender": "ai", "message": "b"},
                {"type": "tool_call", "tool_call_id": "t", "tool_name": "n", "tool_input": {"q": 1}},
                {"type": "tool_response", "tool_call_id": "t", "tool_output": "o"}
            ])
        );
    }

    #[test]
    fn chat_shapes() {
        let req = ChatRequest {
            context_id: "c".into(),
            message: "hi".into(),
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"context_id": "c", "message": "hi"})
        );
        round_trip(&req);
        let reply: ChatReply = serde_json::from_value(
            json!({"success": true, "response_id": "resp-abc", "message": "Hello"}),
        )
        .unwrap();
        assert_eq!(reply.response_id.as_deref(), Some("resp-abc"));
        assert_eq!(reply.message, "Hello");
        round_trip(&reply);
        let bare: ChatReply = serde_json::from_value(json!({"response": "Hi"})).unwrap();
        assert!(bare.success);
        assert_eq!(bare.message, "Hi");
        assert_eq!(bare.response_id, None);
    }

    #[test]
    fn generate_api_key_matches_the_seed() {
        let req: GenerateApiKeyRequest =
            serde_json::from_str(r#"{"org_id": "your-org-id", "type": "client"}"#).unwrap();
        assert_eq!(req, GenerateApiKeyRequest::client("your-org-id"));
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"org_id":"your-org-id","type":"client"}"#
        );
        round_trip(&GenerateApiKeyRequest {
            context_id: Some("ctx".into()),
            ttl_seconds: Some(60),
            ..GenerateApiKeyRequest::org("o")
        });

        let key: GeneratedApiKey = serde_json::from_str(
            r#"{
              "api_key_id": "b635e90a-af99-4aa1-9872-76cbedb0a8ee",
              "org_id": "8275b112-3323-4d87-bcda-c0f3d6c13cc6",
              "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
              "valid": true,
              "type": "client",
              "user_id": "9f7da0b5-2e5c-42a1-ad8f-61de762c89d1",
              "created_at": 1763089120,
              "updated_at": 1763089120
            }"#,
        )
        .unwrap();
        assert_eq!(key.kind, KeyType::Client);
        assert_eq!(key.created_at, Some(1763089120));
        assert!(key.valid);
        round_trip(&key);
        let debug = format!("{key:?}");
        assert!(!debug.contains("eyJ"), "{debug}");
        assert!(debug.contains("<redacted>"));

        let odd: GeneratedApiKey =
            serde_json::from_value(json!({"type": "admin", "token": "t"})).unwrap();
        assert_eq!(odd.kind, KeyType::Other);
    }

    #[test]
    fn people_shapes() {
        let creds = Credentials::new("ada", "hunter2");
        assert_eq!(
            serde_json::to_value(&creds).unwrap(),
            json!({"username": "ada", "password": "hunter2"})
        );
        round_trip(&creds);
        assert!(!format!("{creds:?}").contains("hunter2"));

        let login: LoginResponse = serde_json::from_value(json!({
            "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
            "token_type": "bearer",
            "expires_in": 900,
            "user": {"id": 7, "username": "ada", "created_at": 1763089120}
        }))
        .unwrap();
        assert_eq!(login.user.id, "7");
        assert_eq!(login.expires_in, 900);
        round_trip(&login);
        assert!(!format!("{login:?}").contains("eyJ"));

        // The seed's login answer carries only `access_token` and `user`.
        let sparse: LoginResponse =
            serde_json::from_value(json!({"access_token": "x", "user": {}})).unwrap();
        assert_eq!(sparse.token_type, "bearer");

        let user: User = serde_json::from_value(
            json!({"id": "u1", "username": "ada", "createdAt": "2024-01-01T00:00:00.000Z"}),
        )
        .unwrap();
        assert_eq!(user.created_at, None);
        round_trip(&user);
    }

    #[test]
    fn user_api_keys_match_the_seed() {
        assert_eq!(
            serde_json::to_string(&NewUserApiKey {
                nickname: "production-agent".into()
            })
            .unwrap(),
            r#"{"nickname":"production-agent"}"#
        );
        let created: CreatedUserApiKey = serde_json::from_str(
            r#"{
              "id": 42,
              "nickname": "production-agent",
              "key": "agk_live_abc123def456...",
              "createdAt": "2024-01-01T00:00:00.000Z",
              "updatedAt": "2024-01-01T00:00:00.000Z"
            }"#,
        )
        .unwrap();
        assert_eq!(created.id, "42");
        assert_eq!(created.created_at, "2024-01-01T00:00:00.000Z");
        let encoded = serde_json::to_value(&created).unwrap();
        assert_eq!(encoded["createdAt"], "2024-01-01T00:00:00.000Z");
        assert_eq!(encoded["updatedAt"], "2024-01-01T00:00:00.000Z");
        round_trip(&created);
        assert!(!format!("{created:?}").contains("agk_live"));

        let list: UserApiKeyList = serde_json::from_str(
            r#"{
              "apiKeys": [
                {"id": 42, "nickname": "production-agent",
                 "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-01T00:00:00.000Z"},
                {"id": 43, "nickname": "staging-agent",
                 "createdAt": "2024-02-01T00:00:00.000Z", "updatedAt": "2024-02-01T00:00:00.000Z"}
              ]
            }"#,
        )
        .unwrap();
        assert_eq!(list.api_keys.len(), 2);
        assert_eq!(list.api_keys[1].nickname, "staging-agent");
        assert!(serde_json::to_value(&list)
            .unwrap()
            .get("apiKeys")
            .is_some());
        round_trip(&list);

        let deleted: DeletedMessage =
            serde_json::from_str(r#"{"message": "API key deleted successfully"}"#).unwrap();
        assert_eq!(deleted.message, "API key deleted successfully");
        round_trip(&deleted);
    }

    #[test]
    fn stream_token_matches_the_seed() {
        let token: StreamTokenResponse = serde_json::from_str(
            r#"{"success": true, "token": "pub_tok_a1b2c3d4e5f6", "ttl": 60}"#,
        )
        .unwrap();
        assert_eq!(token.token, "pub_tok_a1b2c3d4e5f6");
        assert_eq!(token.ttl, 60);
        round_trip(&token);
        assert!(!format!("{token:?}").contains("pub_tok"));
    }

    #[test]
    fn publishable_key_shapes() {
        let new = NewClientKey {
            allowed_origins: vec!["https://app.example".into()],
        };
        round_trip(&new);
        let key: PublishableKey = serde_json::from_value(
            json!({"client_key": "pk_abc", "allowed_origins": ["https://app.example"]}),
        )
        .unwrap();
        assert_eq!(key.allowed_origins, new.allowed_origins);
        round_trip(&key);
        assert!(!format!("{key:?}").contains("pk_abc"));
    }

    #[test]
    fn success_body_defaults_to_true() {
        let body: SuccessBody = serde_json::from_str("{}").unwrap();
        assert!(body.success);
        round_trip(&SuccessBody { success: false });
    }

    #[test]
    fn error_bodies_of_the_seeds_map_to_typed_errors() {
        let billing: ErrorBody = serde_json::from_str(
            r#"{"error": "No credits remaining. Please add credits to continue using the service.",
                "success": false, "code": "invalid_billing"}"#,
        )
        .unwrap();
        round_trip(&billing);
        let Error::PaymentRequired(r) = billing.to_error(Some(402)) else {
            panic!("not payment required")
        };
        assert_eq!(r.code.as_deref(), Some("invalid_billing"));
        assert_eq!(r.status, Some(402));

        let unauthorized: ErrorBody = serde_json::from_str(
            r#"{"error": "Unauthorized. Please provide a valid secret key.", "success": false}"#,
        )
        .unwrap();
        assert!(matches!(
            unauthorized.to_error(Some(401)),
            Error::Unauthorized(_)
        ));

        let rate: ErrorBody =
            serde_json::from_str(r#"{"error": "Rate limit exceeded", "success": false}"#).unwrap();
        assert!(matches!(
            rate.to_error(Some(429)),
            Error::RateLimited { .. }
        ));

        let internal: ErrorBody = serde_json::from_str(
            r#"{"error": "Failed to create token, please try again or contact support.",
                "success": false, "code": "internal_server_error"}"#,
        )
        .unwrap();
        assert!(matches!(internal.to_error(Some(500)), Error::Server(_)));

        // The publishable-key shape: `error` is the code, `message` the text.
        let mismatch: ErrorBody = serde_json::from_str(
            r#"{"error": "CLIENT_KEY_MISMATCH",
                "message": "Client key does not match the specified domain"}"#,
        )
        .unwrap();
        let Error::Forbidden(r) = mismatch.to_error(None) else {
            panic!("not forbidden")
        };
        assert_eq!(r.code.as_deref(), Some("CLIENT_KEY_MISMATCH"));
        assert_eq!(r.message, "Client key does not match the specified domain");

        let fastapi: ErrorBody =
            serde_json::from_str(r#"{"detail": "Not authenticated"}"#).unwrap();
        assert_eq!(fastapi.error, "Not authenticated");

        assert_eq!(
            serde_json::to_value(ErrorBody::new("Context not found", "not_found")).unwrap(),
            json!({"error": "Context not found", "success": false, "code": "not_found"})
        );
    }
}
