//! Harness of the end-to-end suite: a real reference server on 127.0.0.1:0
//! (in-process, in-memory store, scripted engine, fault injection on), an
//! org with its org key, and the Rust SDK pointed at it the way an app
//! would use it: the org key stays on the "backend" ([`Harness::admin`]),
//! and connections get short-lived client keys from a token provider that
//! mints one per call and counts the calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokenrelay::rest::{NewAgent, NewContext};
use tokenrelay::{AdminClient, Client, ClientBuilder, Error};
use tokenrelay_server::{PasswordHashing, ScriptedEngine, Server, ServerBuilder, ServerHandle};

pub mod balancer;
pub mod process;
pub mod scenario;

/// Upper bound of any single wait, so a bug fails a test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(30);

/// A running server with one org.
pub struct Harness {
    /// The server.
    pub server: ServerHandle,
    /// The org's id.
    pub org_id: String,
    /// The org API key (backend only).
    pub org_key: String,
    /// An admin client holding the org key.
    pub admin: AdminClient,
    /// Other instances of the same cluster (REST base URLs), which share
    /// the org: [`Harness::fault`] asks each of them too, since a fault
    /// reaches only the sockets of the instance it is asked on.
    pub fault_peers: Vec<String>,
}

/// What an app backend's "get client token" endpoint does: a client key
/// scoped to the context, minted with the org key, per call. Usable as a
/// token provider (`Client::builder(..).token_provider(key_minter(..))`).
pub fn key_minter(
    admin: AdminClient,
    org_id: String,
) -> impl Fn(
    String,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, Error>> + Send>>
       + Send
       + Sync
       + Clone
       + 'static {
    move |ctx: String| {
        let (admin, org_id) = (admin.clone(), org_id.clone());
        Box::pin(async move {
            admin
                .generate_client_key(&org_id, Some(&ctx), None)
                .await
                .map(|k| k.token)
        })
    }
}

/// Test defaults: fast password hashing and the fault-injection hook.
pub fn builder() -> ServerBuilder {
    Server::builder()
        .engine(ScriptedEngine::default())
        .configure(|c| {
            c.password_hashing = PasswordHashing::FastInsecure;
            c.fault_injection = true;
            // The server's own abuse suite tests the limits.
            c.limits = tokenrelay_server::Limits::relaxed();
            // A shutdown lets running replies finish for a second, not the
            // default 30 s: the restart tests' replies run for seconds.
            c.drain_timeout = Duration::from_secs(1);
        })
}

impl Harness {
    /// A server with test defaults.
    pub async fn start() -> Harness {
        Harness::start_with(builder()).await
    }

    /// A server from `builder` (start from [`builder`]).
    pub async fn start_with(builder: ServerBuilder) -> Harness {
        // The workspace builds reqwest without a built-in TLS provider; the
        // fault hook's plain client needs one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = builder.spawn().await.expect("the server starts");
        let (org_id, org_key) = server.bootstrap_org("e2e").await.expect("bootstrap");
        let admin = AdminClient::new(server.http_url(), &org_key).expect("admin client");
        Harness {
            server,
            org_id,
            org_key,
            admin,
            fault_peers: Vec::new(),
        }
    }

    /// Creates an agent with `prompt` (which may carry engine directives)
    /// and a context on it; returns the context id.
    pub async fn context(&self, prompt: &str, speaks_first: bool) -> String {
        let mut agent = NewAgent::new("e2e agent", "end-to-end tests", prompt);
        agent.agent_speaks_first = Some(speaks_first);
        let agent = self.admin.create_agent(&agent).await.expect("create agent");
        let context = self
            .admin
            .create_context(&NewContext::new(agent.agent_id))
            .await
            .expect("create context");
        context.context_id
    }

    /// A client builder whose token provider mints a client key scoped to
    /// the context on every call (what the app's "get client token"
    /// endpoint does), counting the calls in the returned counter.
    pub fn client(&self) -> (ClientBuilder, Arc<AtomicUsize>) {
        self.client_at(&self.server.ws_url())
    }

    /// [`Harness::client`] pointed at `ws_url` instead of the server's own
    /// (a relay in front of it, say).
    pub fn client_at(&self, ws_url: &str) -> (ClientBuilder, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let mint = key_minter(self.admin.clone(), self.org_id.clone());
        let builder = Client::builder(ws_url).token_provider(move |ctx: String| {
            counter.fetch_add(1, Ordering::SeqCst);
            mint(ctx)
        });
        (builder, calls)
    }

    /// A client key scoped to `context_id`, minted with the org key.
    pub async fn client_key(&self, context_id: &str) -> String {
        self.admin
            .generate_client_key(&self.org_id, Some(context_id), None)
            .await
            .expect("a client key")
            .token
    }

    /// Injects a transport fault into every socket of `context_id`
    /// (`drop`, `close_1001`, `close_4001`, …) through `POST /debug/faults`.
    pub async fn fault(&self, context_id: &str, fault: &str) -> Result<usize, Error> {
        let mut sockets = self
            .fault_at(&self.server.http_url(), context_id, fault)
            .await?;
        for http in &self.fault_peers {
            sockets += self.fault_at(http, context_id, fault).await?;
        }
        Ok(sockets)
    }

    /// [`Harness::fault`] on the instance at `http`.
    async fn fault_at(&self, http: &str, context_id: &str, fault: &str) -> Result<usize, Error> {
        let response = reqwest::Client::new()
            .post(format!("{http}/debug/faults"))
            .bearer_auth(&self.org_key)
            .json(&json!({"context_id": context_id, "fault": fault}))
            .send()
            .await
            .map_err(|e| Error::Transport {
                message: e.to_string(),
            })?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status != 200 {
            let message = body["error"].as_str().unwrap_or("fault refused");
            return Err(Error::from_server(
                message,
                body["code"].as_str(),
                Some(status),
            ));
        }
        Ok(body["sockets"].as_u64().unwrap_or(0) as usize)
    }
}
