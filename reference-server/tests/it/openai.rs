//! The OpenAI-compatible engine against a fake upstream served here (no
//! network leaves the machine): streamed content becomes `on_token`,
//! streamed tool calls become `on_tool_call`, upstream failures end the
//! response with `reason: "error"`.

use crate::common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use common::{spawn_with, test_builder};
use serde_json::{json, Value};
use tokenrelay_server::{OpenAiConfig, OpenAiEngine};

/// One request the fake upstream saw: its `Authorization` and its body.
type Seen = (Option<String>, Value);

#[derive(Clone, Default)]
struct Upstream {
    requests: Arc<Mutex<Vec<Seen>>>,
}

fn sse(chunks: &[Value]) -> String {
    let mut body = String::new();
    for c in chunks {
        body.push_str(&format!("data: {c}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    body
}

async fn completions(
    State(up): State<Upstream>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    up.requests.lock().unwrap().push((auth, body));
    if last.contains("fail") {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom".to_owned()).into_response();
    }
    let delta = |d: Value| json!({"choices": [{"index": 0, "delta": d}]});
    let chunks = if last.contains("tool") {
        vec![
            delta(json!({"role": "assistant", "content": "Let me check."})),
            delta(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "web_search", "arguments": "{\"que"}}]}),
            ),
            delta(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "ry\": \"weather\"}"}}]}),
            ),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        ]
    } else {
        vec![
            delta(json!({"role": "assistant", "content": ""})),
            delta(json!({"content": "Hel"})),
            delta(json!({"content": "lo, "})),
            delta(json!({"content": "world"})),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        ]
    };
    ([("content-type", "text/event-stream")], sse(&chunks)).into_response()
}

async fn fake_upstream() -> (String, Upstream) {
    let up = Upstream::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1"), up)
}

#[tokio::test]
async fn streams_tokens_and_maps_tool_calls() {
    let (url, upstream) = fake_upstream().await;
    let engine = OpenAiEngine::new(OpenAiConfig::new(
        url,
        Some("test-key".into()),
        "fake-model",
    ));
    let t = spawn_with(test_builder().engine(engine)).await;
    let agent = t
        .agent(json!({"prompt": "You are terse.", "tools": ["web_search"]}))
        .await;
    let ctx = t.context(&agent).await;
    let mut ws = t.connected(&ctx).await;

    let ack = ws.request("add_message", json!({"message": "hi"})).await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "Hello, world");
    assert_eq!(got.reason.as_deref(), Some("complete"));
    {
        let requests = upstream.requests.lock().unwrap();
        let (auth, body) = &requests[0];
        assert_eq!(auth.as_deref(), Some("Bearer test-key"));
        assert_eq!(body["model"], "fake-model");
        assert_eq!(body["stream"], true);
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "You are terse."})
        );
        assert_eq!(
            body["messages"][1],
            json!({"role": "user", "content": "hi"})
        );
        assert_eq!(body["tools"][0]["function"]["name"], "web_search");
    }

    let ack = ws
        .request("add_message", json!({"message": "use a tool"}))
        .await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "Let me check.");
    let call = got
        .notifications
        .iter()
        .find(|n| n["method"] == "on_tool_call")
        .expect("a tool call");
    assert_eq!(call["params"]["tool_call_id"], "call_1");
    assert_eq!(call["params"]["tool_name"], "web_search");
    assert_eq!(call["params"]["tool_input"], json!({"query": "weather"}));
    assert_eq!(call["params"]["response_id"], ack["response_id"]);
    // History sent upstream the second time includes the first exchange.
    assert_eq!(
        upstream.requests.lock().unwrap()[1].1["messages"][2],
        json!({"role": "assistant", "content": "Hello, world"})
    );

    let ack = ws
        .request("add_message", json!({"message": "fail please"}))
        .await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.reason.as_deref(), Some("error"));
}

#[tokio::test]
async fn an_unreachable_upstream_is_an_error_not_a_crash() {
    let engine = OpenAiEngine::new(OpenAiConfig::new("http://127.0.0.1:9/v1", None, "m"));
    let t = spawn_with(test_builder().engine(engine)).await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws.request("add_message", json!({"message": "hi"})).await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.reason.as_deref(), Some("error"));
    assert_eq!(got.text, "");
}

/// L6 of the security review: an upstream that accepts the connection and
/// then says nothing held the context's generation lock forever.
#[tokio::test]
async fn a_hung_upstream_ends_the_response_and_frees_the_context() {
    // Accepts connections, reads nothing, answers nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut config = OpenAiConfig::new(format!("http://{addr}/v1"), None, "m");
    config.read_timeout = std::time::Duration::from_millis(300);
    let t = spawn_with(test_builder().engine(OpenAiEngine::new(config))).await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    for _ in 0..2 {
        // The second turn only starts once the first released the lock.
        let ack = ws.request("add_message", json!({"message": "hi"})).await;
        let got = ws.collect(ack["response_id"].as_str()).await;
        assert_eq!(got.reason.as_deref(), Some("error"));
    }
}
