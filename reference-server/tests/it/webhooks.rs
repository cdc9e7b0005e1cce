//! Server tools as signed webhooks, against a real receiver served here on
//! `127.0.0.1:0` that checks every call's signature with the same secret
//! (computed with the `hmac` crate directly, not with the server's own
//! code). Scenarios: one tool, two in parallel, a receiver that hangs,
//! fails, redirects or answers too much, and URLs the outbound policy
//! refuses without any connection being made.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use common::{spawn_with, test_builder, Collected, TestServer};
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};
use tokenrelay_server::engine::{WebhookConfig, WebhookSecret};
use tokenrelay_server::ScriptedEngine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "test-webhook-secret-0123456789abcdef";

/// One call the receiver got.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    body: Value,
    signature_ok: bool,
}

#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The two calls of one round meet here: each waits for the other, so
    /// they are answered only if the server runs them at once.
    pair: Arc<tokio::sync::Barrier>,
}

/// The receiver's own check, as a receiver would write it: HMAC-SHA256 of
/// `"{timestamp}.{body}"`, compared in constant time (`verify_slice`),
/// and a timestamp within five minutes of now.
fn signature_ok(headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(ts), Some(sig)) = (
        header("x-tokenrelay-timestamp"),
        header("x-tokenrelay-signature"),
    ) else {
        return false;
    };
    let Ok(ts_num) = ts.parse::<u64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(ts_num) > 300 {
        return false;
    }
    let Some(hex) = sig.strip_prefix("v1=") else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

async fn hook(
    State(r): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature_ok = signature_ok(&headers, &body);
    let call: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        body: call.clone(),
        signature_ok,
    });
    if !signature_ok {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let answer = || {
        axum::Json(json!({
            "output": format!("{} answered {}", call["tool"].as_str().unwrap_or("?"),
                call["input"]["query"].as_str().unwrap_or("?")),
        }))
        .into_response()
    };
    match path.as_str() {
        "ok" => answer(),
        "pair" => {
            r.pair.wait().await;
            answer()
        }
        "hang" => std::future::pending().await,
        "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "redirect" => (StatusCode::TEMPORARY_REDIRECT, [("location", "/hook/ok")]).into_response(),
        "big" => axum::Json(json!({"output": "x".repeat(10_000)})).into_response(),
        // No content-length, and no end: only a cap applied while reading
        // stops it (the call's timeout is long in that test).
        "endless" => {
            let chunk = Bytes::from(vec![b' '; 1024]);
            let stream = futures_util::stream::repeat_with(move || {
                Ok::<_, std::convert::Infallible>(chunk.clone())
            });
            Response::new(Body::from_stream(stream))
        }
        "text" => "plain words".into_response(),
        "error" => axum::Json(json!({"error": "no such order"})).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A receiver on `127.0.0.1:0`; returns its `host:port` and what it saw.
async fn receiver() -> (String, Receiver) {
    let r = Receiver {
        seen: Arc::default(),
        pair: Arc::new(tokio::sync::Barrier::new(2)),
    };
    let app = Router::new()
        .route("/hook/{path}", post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr.to_string(), r)
}

/// Webhook settings for a receiver on loopback over plain http: the
/// allowlist names it, private addresses and http are allowed.
fn local(allow: &[&str], timeout: Duration, max_response_bytes: usize) -> WebhookConfig {
    WebhookConfig {
        secret: Some(WebhookSecret::new(SECRET)),
        allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
        allow_private: true,
        allow_http: true,
        timeout,
        max_response_bytes,
    }
}

async fn server(webhooks: WebhookConfig) -> TestServer {
    spawn_with(test_builder().configure(|c| c.webhooks = webhooks)).await
}

/// Sends `message` on a new context of an agent with `tools` and collects
/// the reply.
async fn reply(t: &TestServer, tools: Value, message: &str) -> (String, String, Collected) {
    let agent = t.agent(json!({ "tools": tools })).await;
    let ctx = t.context(&agent).await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws.request("add_message", json!({"message": message})).await;
    let rid = ack["response_id"].as_str().unwrap().to_owned();
    let got = ws.collect(Some(&rid)).await;
    assert_eq!(
        got.reason.as_deref(),
        Some("complete"),
        "a tool's failure does not end the reply"
    );
    assert_eq!(got.text, ScriptedEngine::expected_reply(message));
    (ctx, rid, got)
}

/// The `tool_output` of every `on_tool_response`, in order.
fn outputs(got: &Collected) -> Vec<String> {
    got.notifications
        .iter()
        .filter(|n| n["method"] == "on_tool_response")
        .map(|n| n["params"]["tool_output"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn one_server_tool_is_called_signed_and_its_answer_fed_back() {
    let (addr, r) = receiver().await;
    let t = server(local(&[&addr], Duration::from_secs(30), 4096)).await;
    let tools = json!([{"name": "lookup", "description": "finds", "webhook": format!("http://{addr}/hook/ok")}]);
    let (ctx, rid, got) = reply(&t, tools, "find [tool=lookup]").await;
    assert_eq!(outputs(&got), ["lookup answered You said: find"]);
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].signature_ok);
    let call = &seen[0].body;
    assert_eq!(call["context_id"], ctx.as_str());
    assert_eq!(call["response_id"], rid.as_str());
    assert_eq!(call["call_id"], format!("{rid}-tool-0"));
    assert_eq!(call["tool"], "lookup");
    assert_eq!(call["input"], json!({"query": "You said: find"}));
    assert!(call["agent_id"].as_str().is_some_and(|a| !a.is_empty()));
    // The answer is in the history the model reads next time.
    let (_, c) = t.get(&format!("/context/{ctx}"), &t.org_key).await;
    assert!(c["messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["tool_output"] == "lookup answered You said: find"));
    assert_eq!(t.server.state().metrics.webhook_calls("ok"), 1);
}

#[tokio::test]
async fn two_tools_of_one_round_run_in_parallel() {
    let (addr, r) = receiver().await;
    // Each call waits at the receiver for the other: run one after the
    // other, the first would wait out this (long) timeout and fail.
    let t = server(local(&[&addr], Duration::from_secs(60), 4096)).await;
    let url = format!("http://{addr}/hook/pair");
    let tools = json!([
        {"name": "a", "webhook": url},
        {"type": "function", "function": {"name": "b"}, "webhook": url},
    ]);
    let (_, _, got) = reply(&t, tools, "both [tool=a tool=b]").await;
    assert_eq!(
        outputs(&got),
        ["a answered You said: both", "b answered You said: both"]
    );
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.signature_ok && s.path == "pair"));
    assert_eq!(t.server.state().metrics.webhook_calls("ok"), 2);
}

#[tokio::test]
async fn a_webhook_that_hangs_fails_or_redirects_answers_an_error_and_the_reply_goes_on() {
    let (addr, r) = receiver().await;
    let t = server(local(&[&addr], Duration::from_millis(500), 4096)).await;
    let url = |p: &str| format!("http://{addr}/hook/{p}");
    let tools = json!([
        {"name": "hang", "webhook": url("hang")},
        {"name": "fail", "webhook": url("fail")},
        {"name": "redirect", "webhook": url("redirect")},
        {"name": "text", "webhook": url("text")},
        {"name": "error", "webhook": url("error")},
        {"name": "ok", "webhook": url("ok")},
    ]);
    let (_, _, got) = reply(
        &t,
        tools,
        "go [tool=hang tool=fail tool=redirect tool=text tool=error tool=ok]",
    )
    .await;
    assert_eq!(
        outputs(&got),
        [
            "error: the tool's webhook did not answer in time",
            "error: the tool's webhook answered HTTP 500",
            "error: the tool's webhook answered HTTP 307",
            "error: the tool's webhook answered something other than JSON with `output`",
            "error: no such order",
            "ok answered You said: go",
        ]
    );
    let metrics = &t.server.state().metrics;
    for (outcome, n) in [
        ("timeout", 1),
        ("http_error", 2),
        ("bad_answer", 1),
        ("tool_error", 1),
        ("ok", 1),
    ] {
        assert_eq!(metrics.webhook_calls(outcome), n, "{outcome}");
    }
    // The redirect was not followed: `ok` was called once, by its own tool.
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|s| s.path == "ok").count(), 1);
    assert!(seen.iter().all(|s| s.signature_ok));
    let text = metrics.render();
    assert!(
        text.contains("tokenrelay_webhook_calls_total{outcome=\"timeout\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn an_answer_above_the_cap_is_refused_while_it_is_read() {
    let (addr, _r) = receiver().await;
    // A long timeout: the endless answer must be cut by the cap, not by
    // the clock.
    let t = server(local(&[&addr], Duration::from_secs(60), 1024)).await;
    let tools = json!([
        {"name": "big", "webhook": format!("http://{addr}/hook/big")},
        {"name": "endless", "webhook": format!("http://{addr}/hook/endless")},
    ]);
    let (_, _, got) = reply(&t, tools, "[tool=big tool=endless]").await;
    assert_eq!(
        outputs(&got),
        ["error: the tool's webhook answered more than 1024 bytes"; 2]
    );
    assert_eq!(t.server.state().metrics.webhook_calls("too_large"), 2);
}

/// A listener nobody accepts on: connections the server made would queue
/// in its backlog. After the reply, a sentinel connection is made and the
/// first connection accepted must be it, so none came before.
async fn assert_never_connected(listener: &tokio::net::TcpListener) {
    let addr = listener.local_addr().unwrap();
    let mut sentinel = tokio::net::TcpStream::connect(addr).await.unwrap();
    sentinel.write_all(b"sentinel").await.unwrap();
    let (mut first, _) = listener.accept().await.unwrap();
    let mut buf = [0u8; 8];
    let n = first.read(&mut buf).await.unwrap();
    assert_eq!(
        &buf[..n],
        b"sentinel",
        "the server connected to the tripwire"
    );
}

#[tokio::test]
async fn refused_urls_are_refused_before_any_connection() {
    let tripwire = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tripwire.local_addr().unwrap().port();
    // Everything allowed but private addresses: the loopback tripwire is
    // on the allowlist under three names, and must still not be reached.
    let config = WebhookConfig {
        allow_private: false,
        ..local(
            &[
                &format!("127.0.0.1:{port}"),
                &format!("localhost:{port}"),
                &format!("[::ffff:127.0.0.1]:{port}"),
            ],
            Duration::from_secs(30),
            4096,
        )
    };
    let t = server(config).await;
    let tools = json!([
        // Not on the allowlist (refused before any lookup).
        {"name": "elsewhere", "webhook": format!("http://127.0.0.2:{port}/x")},
        {"name": "otherport", "webhook": format!("http://127.0.0.1:{}/x", port.wrapping_add(1).max(1))},
        // On it, but loopback: a literal, a name resolving to it, and
        // loopback inside an IPv4-mapped IPv6 address.
        {"name": "literal", "webhook": format!("http://127.0.0.1:{port}/x")},
        {"name": "name", "webhook": format!("http://localhost:{port}/x")},
        {"name": "mapped", "webhook": format!("http://[::ffff:127.0.0.1]:{port}/x")},
    ]);
    let (_, _, got) = reply(
        &t,
        tools,
        "[tool=elsewhere tool=otherport tool=literal tool=name tool=mapped]",
    )
    .await;
    assert_eq!(
        outputs(&got),
        ["error: the server's policy does not allow calls to the tool's webhook host"; 5]
    );
    assert_eq!(t.server.state().metrics.webhook_calls("refused"), 5);
    assert_never_connected(&tripwire).await;
}

#[tokio::test]
async fn without_allow_http_a_plain_http_url_is_refused() {
    let tripwire = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tripwire.local_addr().unwrap();
    let config = WebhookConfig {
        allow_http: false,
        ..local(&[&addr.to_string()], Duration::from_secs(30), 4096)
    };
    let t = server(config).await;
    let tools = json!([{"name": "plain", "webhook": format!("http://{addr}/x")}]);
    let (_, _, got) = reply(&t, tools, "[tool=plain]").await;
    assert_eq!(
        outputs(&got),
        ["error: the tool's webhook URL must use https"]
    );
    assert_never_connected(&tripwire).await;
}

#[tokio::test]
async fn without_a_secret_no_call_is_made() {
    let tripwire = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tripwire.local_addr().unwrap();
    let config = WebhookConfig {
        secret: None,
        ..local(&[&addr.to_string()], Duration::from_secs(30), 4096)
    };
    let t = server(config).await;
    let tools = json!([{"name": "x", "webhook": format!("http://{addr}/x")}]);
    let (_, _, got) = reply(&t, tools, "[tool=x]").await;
    assert_eq!(
        outputs(&got),
        ["error: webhook tools are not configured on this server"]
    );
    assert_never_connected(&tripwire).await;
}

#[tokio::test]
async fn agents_with_malformed_webhooks_are_refused() {
    let t = server(WebhookConfig::default()).await;
    for tools in [
        json!([{"name": "a", "webhook": 7}]),
        json!([{"name": "a", "webhook": "not a url"}]),
        json!([{"name": "a", "webhook": "ftp://h/x"}]),
        json!([{"name": "a", "webhook": "https://user:pw@h/x"}]),
        json!([{"name": "a", "client_side": true, "webhook": "https://h/x"}]),
    ] {
        let (status, body) = t
            .post(
                "/agent",
                &t.org_key,
                json!({"agent_name": "a", "agent_description": "", "prompt": "", "is_public": false, "tools": tools}),
            )
            .await;
        assert_eq!(status, 400, "{tools}: {body}");
    }
    let short = test_builder()
        .configure(|c| c.webhooks.secret = Some(WebhookSecret::new("too short")))
        .spawn()
        .await;
    assert!(
        short.is_err(),
        "a webhook secret under 32 bytes stops the server"
    );
}
