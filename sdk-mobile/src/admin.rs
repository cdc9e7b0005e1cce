//! [`AdminClient`]: the REST admin client, for completeness. It holds an
//! org or user API key, so it belongs in server-side code (a JVM backend, a
//! test harness), never in an app shipped to users: apps get client keys
//! from their backend through a [`TokenProvider`](crate::TokenProvider).
//!
//! Agents, contexts and keys cross as records; the less common answers
//! (users, chat, publishable keys) as the JSON the server sent.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokenrelay::rest::{Credentials, GeneratedApiKey, NewContext};
use tokenrelay::wire::Agent;

use crate::error::TokenRelayError;

/// What `create_agent` sends.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NewAgent {
    /// Display name.
    pub agent_name: String,
    /// System prompt.
    pub prompt: String,
    /// What the agent is for.
    #[uniffi(default = "")]
    pub agent_description: String,
    /// Whether anyone may create contexts on it.
    #[uniffi(default = false)]
    pub is_public: bool,
    /// Whether it speaks first when a client connects.
    #[uniffi(default = false)]
    pub agent_speaks_first: bool,
}

/// An agent, as the server describes it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct AgentInfo {
    /// Agent id.
    pub agent_id: String,
    /// Display name.
    pub agent_name: String,
    /// Description.
    pub agent_description: String,
    /// System prompt.
    pub prompt: String,
    /// Whether anyone may create contexts on it.
    pub is_public: bool,
    /// Whether it speaks first on connect.
    pub agent_speaks_first: bool,
    /// The whole answer, as JSON text.
    pub raw_json: String,
}

impl From<Agent> for AgentInfo {
    fn from(a: Agent) -> Self {
        AgentInfo {
            raw_json: json(&a),
            agent_id: a.agent_id,
            agent_name: a.agent_name,
            agent_description: a.agent_description,
            prompt: a.prompt,
            is_public: a.is_public,
            agent_speaks_first: a.agent_speaks_first,
        }
    }
}

/// A conversation context. An object, not a record, for the reason given
/// at [`GeneratedKey`]: `raw_json` may hold a client key (contexts on public
/// agents), which a data class's `toString()` would print.
#[derive(PartialEq, uniffi::Object)]
pub struct ContextInfo {
    context_id: String,
    agent_id: String,
    user_id: String,
    raw_json: String,
}

#[uniffi::export]
impl ContextInfo {
    /// Context id; pass it to `connect`.
    pub fn context_id(&self) -> String {
        self.context_id.clone()
    }

    /// The agent it runs.
    pub fn agent_id(&self) -> String {
        self.agent_id.clone()
    }

    /// Who created it.
    pub fn user_id(&self) -> String {
        self.user_id.clone()
    }

    /// The whole answer (history included, and a client key for a context
    /// on a public agent), as JSON text.
    pub fn raw_json(&self) -> String {
        self.raw_json.clone()
    }
}

impl std::fmt::Debug for ContextInfo {
    // `raw_json` may hold a client key (contexts on public agents).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextInfo")
            .field("context_id", &self.context_id)
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

/// A minted API key. An object, not a record: a record becomes a Kotlin
/// data class (a Swift struct) whose `toString()` (`description`) prints
/// every field, so an app logging the key would log the credential. The
/// token is only reachable through [`GeneratedKey::token`].
#[derive(PartialEq, uniffi::Object)]
pub struct GeneratedKey {
    api_key_id: String,
    org_id: String,
    token: String,
}

#[uniffi::export]
impl GeneratedKey {
    /// Id of the key (revocation is by this id).
    pub fn api_key_id(&self) -> String {
        self.api_key_id.clone()
    }

    /// The org it belongs to.
    pub fn org_id(&self) -> String {
        self.org_id.clone()
    }

    /// The JWT itself: the credential to hand out. Never log it.
    pub fn token(&self) -> String {
        self.token.clone()
    }
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("api_key_id", &self.api_key_id)
            .field("org_id", &self.org_id)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl From<GeneratedApiKey> for GeneratedKey {
    fn from(k: GeneratedApiKey) -> Self {
        GeneratedKey {
            api_key_id: k.api_key_id,
            org_id: k.org_id,
            token: k.token,
        }
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// The REST admin client (org or user API key). Server-side code only.
#[derive(uniffi::Object)]
pub struct AdminClient {
    inner: tokenrelay::AdminClient,
}

#[uniffi::export(async_runtime = "tokio")]
impl AdminClient {
    /// A client for the server at `base_url` (`https://…`) authenticating
    /// with `api_key`; `timeout_ms` bounds each request (default 30 s).
    /// `root_certificate_pem` adds a CA (PEM) to the platform's roots;
    /// `allow_insecure` allows `http://` to a host that is not loopback;
    /// `proxy` (`http://[user:pass@]host:port`) replaces the proxy
    /// environment variables, `no_proxy` ignores them.
    #[uniffi::constructor(default(
        timeout_ms = None,
        root_certificate_pem = None,
        allow_insecure = false,
        proxy = None,
        no_proxy = false
    ))]
    pub fn new(
        base_url: String,
        api_key: String,
        timeout_ms: Option<u64>,
        root_certificate_pem: Option<String>,
        allow_insecure: bool,
        proxy: Option<String>,
        no_proxy: bool,
    ) -> Result<Self, TokenRelayError> {
        let mut b = tokenrelay::AdminClient::builder()
            .base_url(base_url)
            .credential(api_key)
            .network(tokenrelay::NetworkOptions::from_parts(
                root_certificate_pem,
                allow_insecure,
                proxy,
                no_proxy,
            ));
        if let Some(t) = timeout_ms {
            b = b.timeout(Duration::from_millis(t));
        }
        Ok(AdminClient { inner: b.build()? })
    }

    /// Creates an agent.
    pub async fn create_agent(&self, agent: NewAgent) -> Result<AgentInfo, TokenRelayError> {
        let mut body = tokenrelay::rest::NewAgent::new(
            agent.agent_name,
            agent.agent_description,
            agent.prompt,
        );
        body.is_public = agent.is_public;
        body.agent_speaks_first = Some(agent.agent_speaks_first);
        Ok(self.inner.create_agent(&body).await?.into())
    }

    /// One agent.
    pub async fn get_agent(&self, agent_id: String) -> Result<AgentInfo, TokenRelayError> {
        Ok(self.inner.get_agent(&agent_id).await?.into())
    }

    /// The agents the key may see.
    pub async fn list_agents(&self) -> Result<Vec<AgentInfo>, TokenRelayError> {
        let agents = self.inner.list_agents().await?;
        Ok(agents.into_iter().map(Into::into).collect())
    }

    /// Deletes an agent.
    pub async fn delete_agent(&self, agent_id: String) -> Result<(), TokenRelayError> {
        Ok(self.inner.delete_agent(&agent_id).await?)
    }

    /// Creates a context on `agent_id`.
    pub async fn create_context(
        &self,
        agent_id: String,
    ) -> Result<Arc<ContextInfo>, TokenRelayError> {
        let context = self
            .inner
            .create_context(&NewContext::new(agent_id))
            .await?;
        Ok(Arc::new(ContextInfo {
            raw_json: json(&context),
            context_id: context.context_id,
            agent_id: context.agent_id,
            user_id: context.user_id,
        }))
    }

    /// One context, with its history in `raw_json`.
    pub async fn get_context(
        &self,
        context_id: String,
    ) -> Result<Arc<ContextInfo>, TokenRelayError> {
        let context = self.inner.get_context(&context_id).await?;
        Ok(Arc::new(ContextInfo {
            raw_json: json(&context),
            context_id: context.context_id,
            agent_id: context.agent_id,
            user_id: context.user_id,
        }))
    }

    /// Deletes a context.
    pub async fn delete_context(&self, context_id: String) -> Result<(), TokenRelayError> {
        Ok(self.inner.delete_context(&context_id).await?)
    }

    /// One blocking-style chat turn over REST; the reply text.
    pub async fn chat(
        &self,
        context_id: String,
        message: String,
    ) -> Result<String, TokenRelayError> {
        Ok(self.inner.chat(&context_id, &message).await?.message)
    }

    /// Mints a short-lived client key for `org_id`, scoped to `context_id`
    /// when given (what an app's backend hands to the phone).
    #[uniffi::method(default(context_id = None, ttl_seconds = None))]
    pub async fn generate_client_key(
        &self,
        org_id: String,
        context_id: Option<String>,
        ttl_seconds: Option<u64>,
    ) -> Result<Arc<GeneratedKey>, TokenRelayError> {
        let key = self
            .inner
            .generate_client_key(&org_id, context_id.as_deref(), ttl_seconds)
            .await?;
        Ok(Arc::new(key.into()))
    }

    /// A single-use stream token (`pub_tok_…`), for servers with
    /// `stream_token`.
    #[uniffi::method(default(ttl_seconds = None))]
    pub async fn stream_token(&self, ttl_seconds: Option<u32>) -> Result<String, TokenRelayError> {
        Ok(self.inner.stream_token(ttl_seconds).await?.token)
    }

    /// Registers a user (no key needed); the user as JSON.
    pub async fn register(
        &self,
        username: String,
        password: String,
    ) -> Result<String, TokenRelayError> {
        let user = self
            .inner
            .register(&Credentials::new(username, password))
            .await?;
        Ok(json(&user))
    }

    /// The user the key belongs to, as JSON.
    pub async fn me(&self) -> Result<String, TokenRelayError> {
        Ok(json(&self.inner.me().await?))
    }

    /// Creates a publishable client key (`pk_…`) allowed from these origins;
    /// the answer as JSON.
    pub async fn create_publishable_key(
        &self,
        allowed_origins: Vec<String>,
    ) -> Result<String, TokenRelayError> {
        Ok(json(&self.inner.create_client_key(allowed_origins).await?))
    }
}
