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
use tokenrelay_server::{OpenAiConfig, OpenAiEngine, RoundsConfig, ToolCall, ToolRunner};

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

/// The fake model. It answers the last user message:
/// * `fail…`: HTTP 500;
/// * `…tools=N…` (or `…tool…`, N = 1): N rounds of tool calls, then a
///   final answer. Round k streams `Round k. ` in pieces, then calls
///   `web_search` (arguments split across deltas); with `parallel` also
///   `clock` in the same round; with `ask` the client-side
///   `get_location` instead;
/// * anything else: `Hello, world`.
async fn completions(
    State(up): State<Upstream>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let user_at = messages
        .iter()
        .rposition(|m| m["role"] == "user")
        .unwrap_or_default();
    let last = messages[user_at]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Rounds already run for this user message.
    let done = messages[user_at..]
        .iter()
        .filter(|m| m["role"] == "assistant" && m.get("tool_calls").is_some())
        .count();
    up.requests.lock().unwrap().push((auth, body));
    if last.contains("fail") {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom".to_owned()).into_response();
    }
    let wanted = match last.split_once("tools=") {
        Some((_, n)) => n
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        None if last.contains("tool") => 1,
        None => 0,
    };
    let delta = |d: Value| json!({"choices": [{"index": 0, "delta": d}]});
    let chunks = if done < wanted {
        let mut chunks = vec![
            delta(json!({"role": "assistant", "content": "Round "})),
            delta(json!({"content": format!("{done}. ")})),
        ];
        let first = if last.contains("ask") {
            "get_location"
        } else {
            "web_search"
        };
        chunks.push(delta(
            json!({"tool_calls": [{"index": 0, "id": format!("call_{done}_a"),
            "type": "function", "function": {"name": first, "arguments": "{\"que"}}]}),
        ));
        if last.contains("parallel") {
            chunks.push(delta(
                json!({"tool_calls": [{"index": 1, "id": format!("call_{done}_b"),
                "type": "function", "function": {"name": "clock", "arguments": "{\"tz\":"}}]}),
            ));
            chunks.push(delta(
                json!({"tool_calls": [{"index": 1, "function": {"arguments": " \"UTC\"}"}}]}),
            ));
        }
        chunks.push(delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": format!("ry\": \"q{done}\"}}")}}]}),
        ));
        chunks.push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}));
        chunks
    } else if wanted > 0 {
        vec![
            delta(json!({"content": "Done after "})),
            delta(json!({"content": format!("{done} rounds.")})),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
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
    // Without a tool runtime the server tool answers an error the model
    // sees; the model then finishes.
    assert_eq!(got.text, "Round 0. Done after 1 rounds.");
    assert_eq!(got.reason.as_deref(), Some("complete"));
    let call = got
        .notifications
        .iter()
        .find(|n| n["method"] == "on_tool_call")
        .expect("a tool call");
    assert_eq!(call["params"]["tool_call_id"], "call_0_a");
    assert_eq!(call["params"]["tool_name"], "web_search");
    assert_eq!(call["params"]["tool_input"], json!({"query": "q0"}));
    assert_eq!(call["params"]["response_id"], ack["response_id"]);
    let answer = got
        .notifications
        .iter()
        .find(|n| n["method"] == "on_tool_response")
        .expect("a tool response");
    assert_eq!(
        answer["params"]["tool_output"],
        "error: the tool `web_search` is not available on this server"
    );
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

/// Answers `<name>:<input>`; with a barrier, every call of a round must
/// be running at once before any answers (a sequential loop would hang).
struct EchoTools {
    barrier: Option<tokio::sync::Barrier>,
}

#[async_trait::async_trait]
impl ToolRunner for EchoTools {
    async fn run(&self, call: &ToolCall) -> String {
        if let Some(b) = &self.barrier {
            b.wait().await;
        }
        format!("{}:{}", call.name, call.input)
    }
}

fn engine_with(url: String, tools: EchoTools, max_rounds: usize) -> OpenAiEngine {
    OpenAiEngine::new(OpenAiConfig::new(url, None, "fake-model"))
        .with_tools(Arc::new(tools))
        .with_rounds(RoundsConfig {
            max_rounds,
            ..RoundsConfig::default()
        })
}

fn of<'a>(got: &'a common::Collected, method: &str) -> Vec<&'a Value> {
    got.notifications
        .iter()
        .filter(|n| n["method"] == method)
        .map(|n| &n["params"])
        .collect()
}

#[tokio::test]
async fn tool_rounds_feed_results_back_until_the_model_answers() {
    let (url, upstream) = fake_upstream().await;
    let engine = engine_with(url, EchoTools { barrier: None }, 8);
    let t = spawn_with(test_builder().engine(engine)).await;
    let agent = t
        .agent(json!({"prompt": "p", "tools": ["web_search"]}))
        .await;
    let ctx = t.context(&agent).await;
    let mut ws = t.connected(&ctx).await;

    let ack = ws
        .request("add_message", json!({"message": "tools=3"}))
        .await;
    let rid = ack["response_id"].as_str().unwrap();
    let got = ws.collect(Some(rid)).await;
    assert_eq!(got.reason.as_deref(), Some("complete"));
    assert_eq!(got.text, "Round 0. Round 1. Round 2. Done after 3 rounds.");
    // Every round on the wire, in order, under the one response id.
    let kinds: Vec<String> = got
        .methods()
        .into_iter()
        .filter(|m| m != "on_token")
        .collect();
    assert_eq!(
        kinds,
        [
            "on_tool_call",
            "on_tool_response",
            "on_tool_call",
            "on_tool_response",
            "on_tool_call",
            "on_tool_response",
            "on_stop_token"
        ]
    );
    assert!(got
        .notifications
        .iter()
        .all(|n| n["params"]["response_id"] == rid));
    let answers = of(&got, "on_tool_response");
    assert_eq!(answers[2]["tool_call_id"], "call_2_a");
    assert_eq!(answers[2]["tool_output"], r#"web_search:{"query":"q2"}"#);

    // The model saw each round's call and its answer as a `tool` message.
    {
        let requests = upstream.requests.lock().unwrap();
        assert_eq!(requests.len(), 4);
        let last = requests[3].1["messages"].as_array().unwrap().clone();
        assert_eq!(last[2]["role"], "assistant");
        assert_eq!(last[2]["content"], "Round 0. ");
        assert_eq!(last[2]["tool_calls"][0]["id"], "call_0_a");
        assert_eq!(
            last[2]["tool_calls"][0]["function"]["arguments"],
            r#"{"query":"q0"}"#
        );
        assert_eq!(
            last[3],
            json!({"role": "tool", "tool_call_id": "call_0_a", "content": r#"web_search:{"query":"q0"}"#})
        );
        assert_eq!(last.len(), 8, "system, user, 3 × (assistant, tool)");
    }

    // A later turn sends the whole reply back, rebuilt from the history,
    // as a transcript the upstream accepts: every call answered.
    let ack = ws.request("add_message", json!({"message": "hi"})).await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "Hello, world");
    let requests = upstream.requests.lock().unwrap();
    let messages = requests[4].1["messages"].as_array().unwrap().clone();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "assistant",
            "user"
        ]
    );
    assert_eq!(messages[7]["tool_call_id"], "call_2_a");
    assert_eq!(
        messages[8]["content"],
        "Round 0. Round 1. Round 2. Done after 3 rounds."
    );
}

#[tokio::test]
async fn two_tool_calls_of_one_round_run_in_parallel() {
    let (url, upstream) = fake_upstream().await;
    let tools = EchoTools {
        barrier: Some(tokio::sync::Barrier::new(2)),
    };
    let t = spawn_with(test_builder().engine(engine_with(url, tools, 8))).await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request("add_message", json!({"message": "tools=1 parallel"}))
        .await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.reason.as_deref(), Some("complete"));
    let calls = of(&got, "on_tool_call");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["tool_name"], "clock");
    assert_eq!(calls[1]["tool_input"], json!({"tz": "UTC"}));
    let answers: Vec<&Value> = of(&got, "on_tool_response")
        .into_iter()
        .map(|a| &a["tool_output"])
        .collect();
    assert_eq!(
        answers,
        [
            &json!(r#"web_search:{"query":"q0"}"#),
            &json!(r#"clock:{"tz":"UTC"}"#)
        ]
    );
    let requests = upstream.requests.lock().unwrap();
    let second = requests[1].1["messages"].as_array().unwrap().clone();
    assert_eq!(second[2]["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(second[3]["tool_call_id"], "call_0_a");
    assert_eq!(second[4]["tool_call_id"], "call_0_b");
}

#[tokio::test]
async fn the_round_limit_ends_the_reply_with_round_limit() {
    let (url, upstream) = fake_upstream().await;
    let engine = engine_with(url, EchoTools { barrier: None }, 2);
    let t = spawn_with(test_builder().engine(engine)).await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request("add_message", json!({"message": "tools=5"}))
        .await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.reason.as_deref(), Some("round_limit"));
    assert_eq!(got.text, "Round 0. Round 1. Round 2. ");
    // The third round's call was neither run nor shown.
    assert_eq!(of(&got, "on_tool_call").len(), 2);
    assert_eq!(of(&got, "on_tool_response").len(), 2);
    assert_eq!(upstream.requests.lock().unwrap().len(), 3);
    // The context is free for the next turn.
    let ack = ws.request("add_message", json!({"message": "hi"})).await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "Hello, world");
}

#[tokio::test]
async fn client_side_tools_go_to_the_client_and_the_model_continues() {
    let (url, upstream) = fake_upstream().await;
    let engine = engine_with(url, EchoTools { barrier: None }, 8);
    let t = spawn_with(test_builder().engine(engine)).await;
    let agent = t
        .agent(json!({"prompt": "p", "tools": [
            {"name": "get_location", "client_side": true},
            "web_search"
        ]}))
        .await;
    let ctx = t.context(&agent).await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request("add_message", json!({"message": "tools=1 ask"}))
        .await;
    let first = ack["response_id"].as_str().unwrap().to_owned();
    let got = ws.collect(Some(&first)).await;
    assert_eq!(got.reason.as_deref(), Some("complete"));
    assert_eq!(got.text, "Round 0. ");
    assert!(of(&got, "on_tool_call").is_empty(), "not a server tool");
    let calls = of(&got, "on_client_side_tool_calls");
    assert_eq!(
        calls[0]["tool_calls"],
        json!([{"tool_call_id": "call_0_a", "tool_name": "get_location", "tool_input": {"query": "q0"}}])
    );
    // The marker stays on the server: the upstream gets OpenAI's shape.
    assert_eq!(
        upstream.requests.lock().unwrap()[0].1["tools"][0],
        json!({"type": "function", "function": {"name": "get_location", "description": null,
            "parameters": {"type": "object", "properties": {}}}})
    );

    let ack = ws
        .request(
            "client_side_tool_responses",
            json!({"tool_responses": [{"tool_call_id": "call_0_a", "response": "Paris"}]}),
        )
        .await;
    let next = ack["response_id"].as_str().unwrap();
    assert_ne!(next, first, "the continuation is a new response");
    let got = ws.collect(Some(next)).await;
    assert_eq!(got.reason.as_deref(), Some("complete"));
    assert_eq!(got.text, "Done after 1 rounds.");
    let requests = upstream.requests.lock().unwrap();
    let messages = requests[1].1["messages"].as_array().unwrap().clone();
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": "Round 0. "})
    );
    assert_eq!(messages[3]["tool_calls"][0]["id"], "call_0_a");
    assert_eq!(
        messages[4],
        json!({"role": "tool", "tool_call_id": "call_0_a", "content": "Paris"})
    );
}
