//! The machine-readable contracts in `docs/contracts/` held against the
//! real server, so they cannot drift from it:
//!
//! * `openapi.json` (OpenAPI 3.1): every route the server defines is in
//!   it, every operation in it is called here, and every answer (successes
//!   and the failures provoked) validates against the schema the document
//!   gives for its status;
//! * `frames.schema.json` (JSON Schema 2020-12): every frame of every
//!   scenario in `tests/scenarios/`, played by the Rust SDK against a
//!   normal and a `--base-protocol` server, and every error frame a raw
//!   client provokes, validates; the frames are read off the wire by a
//!   small WebSocket relay between the SDK and the server.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokenrelay_e2e::{builder, scenario, Harness, WAIT};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read_json(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON document compiled for validation: `check(pointer, value)`
/// validates `value` against the schema at `#pointer` of the document.
struct Contract {
    url: &'static str,
    compiler: boon::Compiler,
    schemas: boon::Schemas,
}

impl Contract {
    fn load(path: &str, url: &'static str) -> Contract {
        let mut compiler = boon::Compiler::new();
        // The OpenAPI document is not itself a schema; its schemas are
        // JSON Schema 2020-12 (OpenAPI 3.1), as is the frame schema.
        compiler.set_default_draft(boon::Draft::V2020_12);
        compiler
            .add_resource(url, read_json(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        Contract {
            url,
            compiler,
            schemas: boon::Schemas::new(),
        }
    }

    fn check(&mut self, pointer: &str, value: &Value) -> Result<(), String> {
        let location = format!("{}#{pointer}", self.url);
        let index = self
            .compiler
            .compile(&location, &mut self.schemas)
            .map_err(|e| format!("the schema at {location} does not compile: {e:#}"))?;
        self.schemas
            .validate(value, index)
            .map_err(|e| format!("{value} does not match {pointer}: {e:#}"))
    }
}

// ---------------------------------------------------------------- OpenAPI

/// The routes `reference-server/src/rest/mod.rs` defines, as
/// `(METHOD, /path/{param})`. Read from the source because axum cannot list
/// a router's routes; the router is written as `.route("/p", get(..)...)`
/// calls, so the scan is exact for it (a route built another way would be
/// missed, and the comparison below would say so the first time a
/// documented route is not found).
fn server_routes() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(repo_file("reference-server/src/rest/mod.rs"))
        .expect("reference-server/src/rest/mod.rs");
    let mut routes = BTreeSet::new();
    for (at, _) in source.match_indices(".route(") {
        let rest = &source[at + ".route(".len()..];
        let open = rest.find('"').expect("a path literal");
        let close = open + 1 + rest[open + 1..].find('"').expect("the path's end");
        let path = &rest[open + 1..close];
        // The handlers: up to this call's closing parenthesis.
        let mut depth = 1usize;
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let handlers = &rest[close..end];
        for method in ["get", "post", "delete", "put", "patch"] {
            if handlers.contains(&format!("{method}(")) {
                routes.insert((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    routes
}

fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "delete", "put", "patch"] {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

#[test]
fn every_route_of_the_server_is_in_the_openapi_document_and_no_other() {
    let routes = server_routes();
    assert!(routes.len() > 20, "the scan found only {routes:?}");
    let documented = documented_operations(&read_json("docs/contracts/openapi.json"));
    let missing: Vec<_> = routes.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "openapi.json names routes the server lacks: {stale:?}"
    );
}

/// Calls the server and validates each answer against the document.
struct Probe {
    http: reqwest::Client,
    base: String,
    doc: Value,
    contract: Contract,
    /// `(METHOD, template, status)` of every call made.
    called: BTreeSet<(String, String, u16)>,
}

impl Probe {
    /// `method` on `path` (the concrete path; `template` is its entry in
    /// the document), with an optional bearer credential and JSON body.
    /// Validates the answer against the schema of its status and returns
    /// it (`Value::Null` for a body that is not JSON).
    async fn call(
        &mut self,
        method: Method,
        template: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("a body");
        let what = format!("{method} {path} -> {status}");
        let answer = &self.doc["paths"][template][method.as_str().to_lowercase()]["responses"]
            [status.as_str()];
        assert!(
            !answer.is_null(),
            "{what}: openapi.json has no response {status} for {method} {template}: {text}"
        );
        let media = resolve(&self.doc, answer)["content"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let value = if content_type.starts_with("application/json") {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"))
        } else {
            Value::Null
        };
        if let Some(json_media) = media.get("application/json") {
            assert!(
                content_type.starts_with("application/json"),
                "{what}: documented as JSON, served as {content_type:?}: {text}"
            );
            let pointer = schema_pointer(&json_media["schema"]);
            if let Err(e) = self.contract.check(&pointer, &value) {
                panic!("{what}: {e}");
            }
        } else if let Some((media_type, _)) = media.iter().next() {
            assert!(
                content_type.starts_with(media_type.as_str()),
                "{what}: documented as {media_type}, served as {content_type:?}"
            );
        }
        self.called.insert((
            method.as_str().to_owned(),
            template.to_owned(),
            status.as_u16(),
        ));
        (status, value)
    }
}

/// Follows a `$ref` to `#/components/...` once.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling reference {reference}")),
        None => node,
    }
}

/// The JSON pointer of a schema object that is a `$ref` (every response
/// schema in the document is).
fn schema_pointer(schema: &Value) -> String {
    schema["$ref"]
        .as_str()
        .expect("response schemas are references to components")
        .trim_start_matches('#')
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rest_answer_matches_the_openapi_document() {
    let h = Harness::start_with(builder().configure(|c| {
        c.limits.open_registration = true;
        c.metrics_public = true;
    }))
    .await;
    let doc = read_json("docs/contracts/openapi.json");
    let mut p = Probe {
        http: reqwest::Client::new(),
        base: h.server.http_url(),
        doc: doc.clone(),
        contract: Contract::load(
            "docs/contracts/openapi.json",
            "https://tokenrelay.test/openapi.json",
        ),
        called: BTreeSet::new(),
    };
    let org = h.org_key.clone();
    let org_id = h.org_id.clone();
    let key = Some(org.as_str());

    // Operations.
    p.call(Method::GET, "/health", "/health", None, None).await;
    p.call(Method::GET, "/ready", "/ready", None, None).await;
    p.call(Method::GET, "/metrics", "/metrics", None, None)
        .await;

    // Agents and contexts, and their failures.
    let (_, agent) = p
        .call(
            Method::POST,
            "/agent",
            "/agent",
            key,
            Some(json!({
                "agent_name": "contracts", "agent_description": "openapi", "prompt": "[tokens=3]",
                "is_public": false, "agent_speaks_first": false
            })),
        )
        .await;
    let agent_id = agent["agent_id"].as_str().expect("agent_id").to_owned();
    p.call(
        Method::POST,
        "/agent",
        "/agent",
        key,
        Some(json!({"agent_name": 3})),
    )
    .await;
    p.call(Method::POST, "/agent", "/agent", None, Some(json!({})))
        .await;
    p.call(
        Method::GET,
        "/agent/{id}",
        &format!("/agent/{agent_id}"),
        key,
        None,
    )
    .await;
    p.call(Method::GET, "/agent/{id}", "/agent/nope", key, None)
        .await;
    p.call(Method::GET, "/agents", "/agents", key, None).await;
    let (_, context) = p
        .call(
            Method::POST,
            "/context",
            "/context",
            key,
            Some(json!({"agent_id": agent_id})),
        )
        .await;
    let context_id = context["context_id"]
        .as_str()
        .expect("context_id")
        .to_owned();
    p.call(
        Method::POST,
        "/chat",
        "/chat",
        key,
        Some(json!({
            "context_id": context_id, "message": "hello"
        })),
    )
    .await;
    let (_, with_history) = p
        .call(
            Method::GET,
            "/context/{id}",
            &format!("/context/{context_id}"),
            key,
            None,
        )
        .await;
    assert!(
        with_history["messages"]
            .as_array()
            .is_some_and(|m| m.len() >= 2),
        "the chat is in the history: {with_history}"
    );
    p.call(Method::GET, "/context/{id}", "/context/nope", key, None)
        .await;

    // Org and client keys; a client key is refused on REST.
    let (_, minted) = p
        .call(
            Method::POST,
            "/generate-api-key",
            "/generate-api-key",
            key,
            Some(json!({
                "org_id": org_id, "type": "client", "context_id": context_id, "ttl_seconds": 60
            })),
        )
        .await;
    let client_key = minted["token"].as_str().expect("token").to_owned();
    p.call(Method::GET, "/agents", "/agents", Some(&client_key), None)
        .await;
    p.call(
        Method::POST,
        "/generate-api-key",
        "/generate-api-key",
        key,
        Some(json!({
            "org_id": org_id, "type": "org", "context_id": context_id
        })),
    )
    .await;
    let (_, org_key) = p
        .call(
            Method::POST,
            "/generate-api-key",
            "/generate-api-key",
            key,
            Some(json!({
                "org_id": org_id, "type": "org", "ttl_seconds": 3600
            })),
        )
        .await;
    p.call(
        Method::GET,
        "/api-keys",
        "/api-keys?kind=client&limit=10",
        key,
        None,
    )
    .await;
    p.call(
        Method::GET,
        "/api-keys",
        "/api-keys?kind=sideways",
        key,
        None,
    )
    .await;
    let org_key_id = org_key["api_key_id"].as_str().expect("api_key_id");
    p.call(
        Method::DELETE,
        "/api-key/{id}",
        &format!("/api-key/{org_key_id}"),
        key,
        None,
    )
    .await;
    p.call(Method::DELETE, "/api-key/{id}", "/api-key/nope", key, None)
        .await;

    // Stream tokens.
    p.call(
        Method::GET,
        "/api/v1/token",
        "/api/v1/token?ttl=30",
        key,
        None,
    )
    .await;
    p.call(
        Method::GET,
        "/api/v1/token",
        "/api/v1/token?ttl=301",
        key,
        None,
    )
    .await;

    // People.
    let alice = json!({"username": "alice", "password": "correct horse battery"});
    p.call(
        Method::POST,
        "/auth/register",
        "/auth/register",
        None,
        Some(alice.clone()),
    )
    .await;
    p.call(
        Method::POST,
        "/auth/register",
        "/auth/register",
        None,
        Some(alice.clone()),
    )
    .await;
    p.call(
        Method::POST,
        "/auth/login",
        "/auth/login",
        None,
        Some(json!({
            "username": "alice", "password": "wrong wrong wrong"
        })),
    )
    .await;
    let (_, login) = p
        .call(
            Method::POST,
            "/auth/login",
            "/auth/login",
            None,
            Some(alice),
        )
        .await;
    let user = login["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let user = Some(user.as_str());
    p.call(Method::GET, "/auth/me", "/auth/me", user, None)
        .await;
    p.call(Method::GET, "/auth/me", "/auth/me", key, None).await;
    let (_, created) = p
        .call(
            Method::POST,
            "/auth/api-keys",
            "/auth/api-keys",
            user,
            Some(json!({"nickname": "ci"})),
        )
        .await;
    p.call(
        Method::POST,
        "/auth/api-keys",
        "/auth/api-keys",
        user,
        Some(json!({"nickname": "ci"})),
    )
    .await;
    p.call(Method::GET, "/auth/api-keys", "/auth/api-keys", user, None)
        .await;
    let user_key_id = created["id"].as_str().expect("id");
    p.call(
        Method::DELETE,
        "/auth/api-keys/{id}",
        &format!("/auth/api-keys/{user_key_id}"),
        user,
        None,
    )
    .await;
    p.call(
        Method::DELETE,
        "/auth/api-keys/{id}",
        "/auth/api-keys/nope",
        user,
        None,
    )
    .await;

    // Fault injection (the harness enables it).
    p.call(
        Method::POST,
        "/debug/faults",
        "/debug/faults",
        key,
        Some(json!({
            "context_id": context_id, "fault": "drop"
        })),
    )
    .await;
    p.call(
        Method::POST,
        "/debug/faults",
        "/debug/faults",
        key,
        Some(json!({
            "context_id": context_id, "fault": "sideways"
        })),
    )
    .await;

    // The WebSocket endpoint, asked without an upgrade.
    p.call(Method::GET, "/ws", "/ws", None, None).await;

    // Deleting, last (a publishable key changes how sockets of the org
    // must connect, so it comes after everything that opens one).
    p.call(
        Method::POST,
        "/client-key",
        "/client-key",
        key,
        Some(json!({
            "allowed_origins": ["https://app.example"]
        })),
    )
    .await;
    p.call(Method::DELETE, "/client-key", "/client-key", key, None)
        .await;
    p.call(Method::DELETE, "/client-key", "/client-key", key, None)
        .await;
    p.call(
        Method::DELETE,
        "/context/{id}",
        &format!("/context/{context_id}"),
        key,
        None,
    )
    .await;
    p.call(
        Method::DELETE,
        "/agent/{id}",
        &format!("/agent/{agent_id}"),
        key,
        None,
    )
    .await;

    // An unknown route answers the document's error body.
    let unknown = p
        .http
        .get(format!("{}/no/such/route", p.base))
        .send()
        .await
        .expect("an answer");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.expect("JSON");
    p.contract
        .check("/components/schemas/Error", &body)
        .expect("the fallback's body is an Error");

    // Every documented operation was called and answered with success
    // (the WebSocket's 101 is the frame test's business, below).
    for (method, template) in documented_operations(&doc) {
        let succeeded = p
            .called
            .iter()
            .any(|(m, t, s)| *m == method && *t == template && (200..300).contains(s));
        assert!(
            succeeded || template == "/ws",
            "{method} {template} was never called with success here"
        );
    }
    h.server.shutdown().await;
}

// ---------------------------------------------------------------- frames

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Direction {
    ToServer,
    ToClient,
}

/// A WebSocket relay on 127.0.0.1:0 between an SDK and the server that
/// records every text frame in both directions. Pings and pongs are left
/// to each hop (tungstenite answers them), closes are passed on, and when
/// either side ends abruptly the relay drops the other side the same way.
struct Tap {
    url: String,
    frames: Arc<Mutex<Vec<(Direction, String)>>>,
}

impl Tap {
    async fn start(upstream: String) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/ws", listener.local_addr().expect("address"));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let record = frames.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(relay(stream, upstream.clone(), record.clone()));
            }
        });
        Tap { url, frames }
    }

    fn take(&self) -> Vec<(Direction, String)> {
        std::mem::take(&mut self.frames.lock().expect("frames"))
    }
}

// The handshake callback's error type is tungstenite's HTTP response,
// which is large; the callback never fails.
#[allow(clippy::result_large_err)]
async fn relay(
    stream: tokio::net::TcpStream,
    upstream: String,
    frames: Arc<Mutex<Vec<(Direction, String)>>>,
) {
    let uri = Arc::new(Mutex::new(String::new()));
    let seen = uri.clone();
    let callback = move |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                         response| {
        *seen.lock().expect("uri") = request.uri().to_string();
        Ok(response)
    };
    let Ok(client) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let target = format!("{upstream}{}", uri.lock().expect("uri"));
    let Ok((server, _)) = tokio_tungstenite::connect_async(target).await else {
        return;
    };
    let (mut to_client, mut from_client) = client.split();
    let (mut to_server, mut from_server) = server.split();
    let record = |direction: Direction, message: &Message| {
        if let Message::Text(text) = message {
            frames
                .lock()
                .expect("frames")
                .push((direction, text.as_str().to_owned()));
        }
    };
    let up = async {
        while let Some(Ok(message)) = from_client.next().await {
            if matches!(message, Message::Ping(_) | Message::Pong(_)) {
                continue;
            }
            record(Direction::ToServer, &message);
            if to_server.send(message).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        while let Some(Ok(message)) = from_server.next().await {
            if matches!(message, Message::Ping(_) | Message::Pong(_)) {
                continue;
            }
            record(Direction::ToClient, &message);
            if to_client.send(message).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Validates every recorded frame; returns the methods seen, per direction.
fn check_frames(
    contract: &mut Contract,
    frames: &[(Direction, String)],
    base_protocol: bool,
    what: &str,
) -> BTreeSet<String> {
    let mut methods = BTreeSet::new();
    for (direction, text) in frames {
        let frame: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
        let pointer = match direction {
            Direction::ToServer => "/$defs/ClientFrame",
            Direction::ToClient => "/$defs/ServerFrame",
        };
        if let Err(e) = contract.check(pointer, &frame) {
            panic!("{what} ({direction:?}): {e}");
        }
        if *direction == Direction::ToServer && base_protocol {
            // A base server refuses what it does not know, and advertised
            // nothing: the SDK must not have used an extension.
            assert!(
                frame.get("idempotency_key").is_none()
                    && frame["params"].get("resume_after_seq").is_none(),
                "{what}: an extension sent to a base server: {text}"
            );
        }
        if let Some(method) = frame["method"].as_str() {
            methods.insert(format!("{direction:?} {method}"));
        } else {
            methods.insert(format!("{direction:?} response"));
        }
    }
    methods
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_of_every_scenario_matches_the_frame_schema() {
    let mut contract = Contract::load(
        "docs/contracts/frames.schema.json",
        "https://tokenrelay.test/frames.schema.json",
    );
    let mut seen = BTreeSet::new();
    let mut played = 0;
    for base_protocol in [false, true] {
        for (path, s) in scenario::all() {
            if base_protocol && !s.needs.is_empty() {
                continue;
            }
            let what = format!(
                "{} ({})",
                path.display(),
                if base_protocol { "base" } else { "full" }
            );
            let tap = scenario::run_through(&s, base_protocol, |upstream| async move {
                let tap = Tap::start(upstream).await;
                (tap.url.clone(), tap)
            })
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            let recorded = tap.take();
            assert!(
                !recorded.is_empty(),
                "{what}: no frame went through the relay"
            );
            seen.extend(check_frames(&mut contract, &recorded, base_protocol, &what));
            played += 1;
        }
    }
    assert!(played >= 8, "only {played} scenario runs");

    // set_last_messages is in no scenario; one through the SDK here.
    let h = Harness::start().await;
    let context_id = h.context("[tokens=3]", false).await;
    let tap = Tap::start(h.server.ws_url().trim_end_matches("/ws").to_owned()).await;
    let (client, _) = h.client_at(&tap.url);
    let client = client.build().expect("client");
    let conn = client.connect(&context_id).await.expect("connect");
    conn.ask("[tokens=2]").await.expect("a reply");
    conn.set_last_messages("[tokens=2] instead", Some("t0".into()))
        .await
        .expect("set_last_messages");
    // Frames go out in order: once this reply is in, the one before it
    // has been relayed too.
    conn.ask("[tokens=1]").await.expect("a reply after it");
    conn.close().await;
    seen.extend(check_frames(
        &mut contract,
        &tap.take(),
        false,
        "set_last_messages",
    ));

    // The failures a raw client provokes: every answer is a Failure.
    let (mut ws, _) = tokio_tungstenite::connect_async(h.server.ws_url())
        .await
        .expect("a socket");
    let provoked = [
        "not json".to_owned(),
        json!({"method": "add_message", "params": {"message": "hi"}, "id": "1"}).to_string(),
        json!({"method": "no_such_method", "params": {}, "id": "2"}).to_string(),
        json!({"method": "connect_to_context", "params": {"context_id": context_id, "access_token": "forged"}, "id": "3"}).to_string(),
        json!({"method": "connect_to_context", "params": {"context_id": "nope"}, "id": "4"}).to_string(),
    ];
    let mut answers = Vec::new();
    for frame in &provoked {
        ws.send(Message::text(frame.clone())).await.expect("sent");
        loop {
            let message = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("an answer in time")
                .expect("open")
                .expect("a frame");
            if let Message::Text(text) = message {
                answers.push((Direction::ToClient, text.as_str().to_owned()));
                break;
            }
        }
    }
    check_frames(&mut contract, &answers, false, "provoked failures");
    for (_, text) in &answers {
        let frame: Value = serde_json::from_str(text).expect("JSON");
        contract
            .check("/$defs/Failure", &frame["result"])
            .unwrap_or_else(|e| panic!("a provoked failure: {e}"));
    }
    h.server.shutdown().await;

    // The test saw every kind of frame the schema describes.
    for expected in [
        "ToServer connect_to_context",
        "ToServer add_message",
        "ToServer stop_invocation",
        "ToServer set_last_messages",
        "ToServer client_side_tool_responses",
        "ToClient response",
        "ToClient on_token",
        "ToClient on_stop_token",
        "ToClient on_tool_call",
        "ToClient on_tool_response",
        "ToClient on_events",
        "ToClient on_client_side_tool_calls",
    ] {
        assert!(
            seen.contains(expected),
            "no {expected} frame was checked: {seen:?}"
        );
    }
}

/// The schemas themselves reject what they must: a test of the test.
#[test]
fn the_frame_schema_refuses_frames_that_break_the_protocol() {
    let mut c = Contract::load(
        "docs/contracts/frames.schema.json",
        "https://tokenrelay.test/frames.schema.json",
    );
    let client = "/$defs/ClientFrame";
    let server = "/$defs/ServerFrame";
    for bad in [
        json!({"method": "add_message", "params": {"message": ""}, "id": "1"}),
        json!({"method": "add_message", "params": {"message": "hi", "extra": 1}}),
        json!({"method": "connect_to_context", "params": {}}),
        json!({"method": "connect_to_context", "params": {"context_id": "c", "resume_after_seq": -1}}),
        json!({"method": "stop_invocation", "params": {}, "idempotency_key": "k"}),
        json!({"method": "no_such", "params": {}}),
    ] {
        assert!(c.check(client, &bad).is_err(), "accepted {bad}");
    }
    for bad in [
        json!({"method": "on_token", "params": {"response_id": "r"}}),
        json!({"method": "on_token", "params": {"token": "a", "response_id": "r", "seq": -1}}),
        json!({"id": "1", "result": {"error": 3}}),
        json!({"id": "1"}),
        json!({"method": "on_client_side_tool_calls", "params": {"response_id": "r", "tool_calls": [{}]}}),
    ] {
        assert!(c.check(server, &bad).is_err(), "accepted {bad}");
    }
    for good in [
        json!({"method": "on_agent_status", "params": {"anything": true}, "id": null}),
        json!({"id": "1", "result": null}),
        json!({"id": null, "result": {"error": "('Invalid API key token', 401)"}}),
        json!({"method": "on_token", "params": {"token": "a", "response_id": "r", "seq": 9007199254740991u64}}),
    ] {
        c.check(server, &good)
            .unwrap_or_else(|e| panic!("refused {good}: {e}"));
    }
}
