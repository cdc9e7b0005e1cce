//! Shared helpers of the server's integration tests: a real server on
//! 127.0.0.1:0 with a bootstrapped org, a raw WebSocket client, REST calls.
//! Kept free of assertions about timing so the suites stay deterministic.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokenrelay_server::{
    Limits, PasswordHashing, ScriptedEngine, Server, ServerBuilder, ServerHandle,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound of any single wait in a test: generous, only there so a
/// bug hangs a test for seconds, not forever.
pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// A running server with one org, its org key and an HTTP client.
pub(crate) struct TestServer {
    pub server: ServerHandle,
    pub org_id: String,
    pub org_key: String,
    pub http: reqwest::Client,
}

/// Test defaults: in-memory store, fast password hashing, instant tokens.
pub(crate) fn test_builder() -> ServerBuilder {
    Server::builder()
        .engine(ScriptedEngine::default())
        .configure(|c| {
            c.password_hashing = PasswordHashing::FastInsecure;
            // Limits stay out of the way of functional tests; the abuse
            // suite lowers the one it tries to exceed.
            c.limits = Limits::relaxed();
        })
}

/// A server with default test settings.
pub(crate) async fn spawn() -> TestServer {
    spawn_with(test_builder()).await
}

/// A server from a builder (start from [`test_builder`]).
pub(crate) async fn spawn_with(builder: ServerBuilder) -> TestServer {
    // reqwest is built without a default TLS provider (workspace choice).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = builder.spawn().await.expect("server starts");
    let (org_id, org_key) = server.bootstrap_org("test-org").await.expect("bootstrap");
    TestServer {
        server,
        org_id,
        org_key,
        http: reqwest::Client::new(),
    }
}

/// A server on an existing SQLite file whose org is already bootstrapped
/// (a restart, a restored backup).
#[allow(dead_code)] // not every test binary reopens a store
pub(crate) async fn reopen(
    path: std::path::PathBuf,
    org_id: String,
    org_key: String,
) -> TestServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = test_builder()
        .store(tokenrelay_server::StoreConfig::Sqlite(path))
        .spawn()
        .await
        .expect("server starts");
    TestServer {
        server,
        org_id,
        org_key,
        http: reqwest::Client::new(),
    }
}

impl TestServer {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.http_url())
    }

    pub(crate) fn ws_url(&self) -> String {
        self.server.ws_url()
    }

    /// A request with `Authorization: Bearer <cred>` (or none when empty).
    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        cred: &str,
    ) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        if cred.is_empty() {
            r
        } else {
            r.header("authorization", format!("Bearer {cred}"))
        }
    }

    pub(crate) async fn post(&self, path: &str, cred: &str, body: Value) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::POST, path, cred)
            .json(&body)
            .send()
            .await
            .expect("http");
        status_json(r).await
    }

    pub(crate) async fn get(&self, path: &str, cred: &str) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::GET, path, cred)
            .send()
            .await
            .expect("http");
        status_json(r).await
    }

    pub(crate) async fn delete(&self, path: &str, cred: &str) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::DELETE, path, cred)
            .send()
            .await
            .expect("http");
        status_json(r).await
    }

    /// Creates an agent with the org key; returns its id.
    pub(crate) async fn agent(&self, body: Value) -> String {
        let mut full = json!({
            "agent_name": "Test agent",
            "agent_description": "for tests",
            "prompt": "",
            "is_public": false,
        });
        if let (Some(full), Some(extra)) = (full.as_object_mut(), body.as_object()) {
            for (k, v) in extra {
                full.insert(k.clone(), v.clone());
            }
        }
        let (status, agent) = self.post("/agent", &self.org_key, full).await;
        assert_eq!(status, 200, "{agent}");
        agent["agent_id"].as_str().expect("agent_id").to_owned()
    }

    /// Creates a context on `agent_id` with the org key; returns its id.
    pub(crate) async fn context(&self, agent_id: &str) -> String {
        let (status, ctx) = self
            .post("/context", &self.org_key, json!({ "agent_id": agent_id }))
            .await;
        assert_eq!(status, 200, "{ctx}");
        ctx["context_id"].as_str().expect("context_id").to_owned()
    }

    /// A plain agent and a context on it.
    pub(crate) async fn agent_and_context(&self) -> (String, String) {
        let agent = self.agent(json!({})).await;
        let ctx = self.context(&agent).await;
        (agent, ctx)
    }

    /// Mints a client key over REST (the seed's endpoint 2).
    pub(crate) async fn client_key(&self, context_id: Option<&str>, ttl: Option<u64>) -> String {
        let mut body = json!({ "org_id": self.org_id, "type": "client" });
        if let Some(c) = context_id {
            body["context_id"] = json!(c);
        }
        if let Some(t) = ttl {
            body["ttl_seconds"] = json!(t);
        }
        let (status, key) = self.post("/generate-api-key", &self.org_key, body).await;
        assert_eq!(status, 200, "{key}");
        key["token"].as_str().expect("token").to_owned()
    }

    /// Opens a socket and connects it to `context_id` with a fresh client key.
    pub(crate) async fn connected(&self, context_id: &str) -> Ws {
        let key = self.client_key(Some(context_id), None).await;
        let mut ws = Ws::open(&self.ws_url()).await;
        let result = ws.connect(context_id, Some(&key), None).await;
        assert_eq!(result["success"], true, "{result}");
        ws
    }
}

pub(crate) async fn status_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A raw protocol client over tokio-tungstenite.
pub(crate) struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Notifications received while waiting for a response.
    pending: VecDeque<Value>,
    /// Responses to other ids seen while waiting for a response.
    pub other_responses: Vec<Value>,
    next_id: u64,
}

/// Everything of one response, as received.
#[derive(Debug, Default, Clone)]
pub(crate) struct Collected {
    pub text: String,
    pub reason: Option<String>,
    pub notifications: Vec<Value>,
}

impl Collected {
    pub(crate) fn methods(&self) -> Vec<String> {
        self.notifications
            .iter()
            .map(|n| n["method"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Ws {
    pub(crate) async fn open(url: &str) -> Ws {
        Self::open_request(url, None)
            .await
            .expect("websocket opens")
    }

    /// Opens with an `Origin` header (browser-like).
    /// Opens `url` (a stream token in its query) and asks to attach to
    /// `context_id` with no other credential: whether the server let it
    /// in. The stream-token race tests run two of these at once.
    pub(crate) async fn attaches_with_stream_token(url: String, context_id: String) -> bool {
        let mut ws = Ws::open(&url).await;
        ws.send_json(
            json!({"method": "connect_to_context", "params": {"context_id": context_id}, "id": "c"}),
        )
        .await;
        match ws.next_json().await {
            Some(v) => v["result"]["success"] == true,
            None => false,
        }
    }

    pub(crate) async fn open_with_origin(url: &str, origin: &str) -> Ws {
        Self::open_request(url, Some(origin))
            .await
            .expect("websocket opens")
    }

    pub(crate) async fn open_request(
        url: &str,
        origin: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request()?;
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("origin header"));
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Ws {
            stream,
            pending: VecDeque::new(),
            other_responses: Vec::new(),
            next_id: 0,
        })
    }

    pub(crate) async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    /// Sends, reporting a failure (the server closed the socket) instead
    /// of panicking.
    pub(crate) async fn try_send_text(&mut self, text: &str) -> Result<(), ()> {
        self.stream
            .send(Message::text(text.to_owned()))
            .await
            .map_err(drop)
    }

    pub(crate) async fn send_raw(&mut self, m: Message) {
        self.stream.send(m).await.expect("send");
    }

    /// [`Ws::send_raw`], reporting a failure (the server closed the
    /// socket) instead of panicking.
    pub(crate) async fn try_send_raw(&mut self, m: Message) -> Result<(), ()> {
        self.stream.send(m).await.map_err(drop)
    }

    pub(crate) async fn send_json(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// The next frame from the server; `None` when the socket closed.
    pub(crate) async fn next_raw(&mut self) -> Option<Message> {
        match tokio::time::timeout(WAIT, self.stream.next()).await {
            Ok(Some(Ok(m))) => Some(m),
            Ok(_) => None,
            Err(_) => panic!("no frame from the server within {WAIT:?}"),
        }
    }

    /// The next JSON frame (pending notifications first).
    pub(crate) async fn next_json(&mut self) -> Option<Value> {
        if let Some(v) = self.pending.pop_front() {
            return Some(v);
        }
        loop {
            match self.next_raw().await? {
                Message::Text(t) => return Some(serde_json::from_str(t.as_str()).expect("json")),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Sends a request and waits for its response's `result`; the
    /// notifications that arrive meanwhile are kept for later reads.
    pub(crate) async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = format!("req-{}", self.next_id);
        self.send_json(json!({ "method": method, "params": params, "id": id }))
            .await;
        self.response_to(&id).await
    }

    /// [`Ws::request`], reporting the server's close (code and reason)
    /// instead of panicking when the socket ends before the answer.
    pub(crate) async fn try_request(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<Value, (u16, String)> {
        self.next_id += 1;
        let id = format!("req-{}", self.next_id);
        let frame = json!({ "method": method, "params": params, "id": id });
        if self.try_send_text(&frame.to_string()).await.is_err() {
            return Err(self.closed().await);
        }
        loop {
            match self.next_raw().await {
                Some(Message::Text(t)) => {
                    let frame: Value = serde_json::from_str(t.as_str()).expect("json");
                    if frame.get("method").is_some() {
                        self.pending.push_back(frame);
                    } else if frame["id"] == id {
                        return Ok(frame["result"].clone());
                    } else {
                        self.other_responses.push(frame);
                    }
                }
                Some(Message::Close(Some(c))) => {
                    return Err((u16::from(c.code), c.reason.to_string()))
                }
                Some(Message::Close(None)) | None => {
                    return Err((u16::from(CloseCode::Status), String::new()))
                }
                Some(_) => continue,
            }
        }
    }

    /// Waits for the response with `id`.
    pub(crate) async fn response_to(&mut self, id: &str) -> Value {
        loop {
            let frame = match self.next_raw().await {
                Some(Message::Text(t)) => serde_json::from_str::<Value>(t.as_str()).expect("json"),
                Some(Message::Close(c)) => panic!("closed while waiting for {id}: {c:?}"),
                Some(_) => continue,
                None => panic!("socket ended while waiting for {id}"),
            };
            if frame.get("method").is_some() {
                self.pending.push_back(frame);
            } else if frame["id"] == id {
                return frame["result"].clone();
            } else {
                // An answer to something else (an error for a frame that
                // had no usable id, say): kept for inspection, not fatal.
                self.other_responses.push(frame);
            }
        }
    }

    /// `connect_to_context`; returns the result.
    pub(crate) async fn connect(
        &mut self,
        context_id: &str,
        token: Option<&str>,
        resume_after: Option<u64>,
    ) -> Value {
        let mut params = json!({ "context_id": context_id });
        if let Some(t) = token {
            params["access_token"] = json!(t);
        }
        if let Some(n) = resume_after {
            params["resume_after_seq"] = json!(n);
        }
        self.request("connect_to_context", params).await
    }

    /// Reads notifications until `on_stop_token` of `response_id` (or of
    /// the first response seen, when `None`).
    pub(crate) async fn collect(&mut self, response_id: Option<&str>) -> Collected {
        let mut out = Collected::default();
        let mut rid = response_id.map(str::to_owned);
        loop {
            let n = self
                .next_json()
                .await
                .expect("socket open while collecting");
            let params = &n["params"];
            let this = params["response_id"].as_str().map(str::to_owned);
            if rid.is_none() {
                rid = this.clone();
            }
            if this.is_some() && this != rid {
                continue;
            }
            match n["method"].as_str() {
                Some("on_token") => out
                    .text
                    .push_str(params["token"].as_str().unwrap_or_default()),
                Some("on_stop_token") => {
                    out.reason = params["reason"].as_str().map(str::to_owned);
                    out.notifications.push(n);
                    return out;
                }
                _ => {}
            }
            out.notifications.push(n);
        }
    }

    /// The next notification, or the server's close (code and reason)
    /// when the socket ends first. Notifications kept by an earlier
    /// `request` come first; a response frame is kept aside.
    pub(crate) async fn next_or_close(&mut self) -> Result<Value, (u16, String)> {
        if let Some(v) = self.pending.pop_front() {
            return Ok(v);
        }
        loop {
            match self.next_raw().await {
                Some(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("json");
                    if v.get("method").is_some() {
                        return Ok(v);
                    }
                    self.other_responses.push(v);
                }
                Some(Message::Close(Some(frame))) => {
                    return Err((u16::from(frame.code), frame.reason.to_string()))
                }
                Some(Message::Close(None)) | None => {
                    return Err((u16::from(CloseCode::Status), String::new()))
                }
                Some(_) => continue,
            }
        }
    }

    /// Waits for the server to close the socket; returns code and reason.
    pub(crate) async fn closed(&mut self) -> (u16, String) {
        loop {
            match self.next_raw().await {
                Some(Message::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Some(Message::Close(None)) | None => {
                    return (u16::from(CloseCode::Status), String::new())
                }
                Some(_) => continue,
            }
        }
    }

    pub(crate) async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// Drops the TCP connection without a close handshake (a network cut).
    pub(crate) fn cut(self) {
        drop(self);
    }
}

/// `seq` of a notification.
pub(crate) fn seq(n: &Value) -> u64 {
    n["params"]["seq"].as_u64().expect("seq")
}
