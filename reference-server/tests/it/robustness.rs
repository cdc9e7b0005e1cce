//! Bad input never kills a connection; limits close the ones they must;
//! health, metrics and graceful shutdown.

use crate::common;

use std::time::Duration;

use common::{spawn, spawn_with, test_builder, TestServer, Ws};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn malformed_frames_get_clear_errors_and_the_connection_survives() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = Ws::open(&t.ws_url()).await;

    // Before connecting: methods need a context.
    let r = ws.request("add_message", json!({"message": "x"})).await;
    assert_eq!(r["error"], "No context set for connection");
    assert_eq!(r["code"], "not_connected");

    ws.send_text("this is not json").await;
    let f = ws.next_json().await.unwrap();
    assert_eq!(f["id"], serde_json::Value::Null);
    assert_eq!(f["result"]["success"], false);
    assert_eq!(f["result"]["code"], "invalid_params");

    ws.send_text(r#"{"params": {}, "id": "x"}"#).await;
    let f = ws.next_json().await.unwrap();
    assert_eq!(f["result"]["code"], "invalid_params");

    let r = ws.request("dance", json!({})).await;
    assert_eq!(r["error"], "Unknown method: dance");
    assert_eq!(r["code"], "invalid_params");

    let r = ws.request("connect_to_context", json!({})).await;
    assert_eq!(r["error"], "No context_id provided");
    let r = ws
        .request(
            "connect_to_context",
            json!({"context_id": 5, "access_token": "x"}),
        )
        .await;
    assert_eq!(r["code"], "invalid_params");
    let key = t.client_key(None, None).await;
    let r = ws.connect("no-such-context", Some(&key), None).await;
    assert_eq!(
        r["error"],
        "Context with id: no-such-context does not exist"
    );
    assert_eq!(r["code"], "not_found");

    assert_eq!(ws.connect(&ctx, Some(&key), None).await["success"], true);
    let r = ws.request("add_message", json!({})).await;
    assert_eq!(r["error"], "No message provided");
    let r = ws.request("add_message", json!({"message": 42})).await;
    assert_eq!(r["code"], "invalid_params");
    let r = ws.request("add_message", json!({"message": ""})).await;
    assert_eq!(r["error"], "No message provided");
    let r = ws.request("set_last_messages", json!({})).await;
    assert_eq!(r["code"], "invalid_params");
    let r = ws
        .request(
            "client_side_tool_responses",
            json!({"tool_responses": "nope"}),
        )
        .await;
    assert_eq!(r["code"], "invalid_params");
    ws.send_text(r#"{"method": "add_message", "params": null, "id": 7}"#)
        .await;
    let f = ws.next_json().await.unwrap();
    assert_eq!(f["id"], "7");
    assert_eq!(f["result"]["code"], "invalid_params");

    // A notification (no id) with bad params gets no answer; a binary
    // frame gets an error; neither closes the socket.
    ws.send_json(json!({"method": "add_message", "params": {}}))
        .await;
    ws.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    let f = ws.next_json().await.unwrap();
    assert_eq!(f["result"]["code"], "invalid_params");

    // Still fully usable.
    let ack = ws.request("add_message", json!({"message": "alive"})).await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "You said: alive");
}

#[tokio::test]
async fn a_socket_without_connect_to_context_is_closed_4008() {
    // Long enough for the server to answer a request and a connect (a few
    // ms) however loaded the machine; the test waits for the close itself,
    // never for a window to pass.
    let handshake = Duration::from_secs(2);
    let t = spawn_with(test_builder().configure(|c| c.handshake_timeout = handshake)).await;
    let (_, ctx) = t.agent_and_context().await;
    // Opened first, so its handshake deadline passes first.
    let mut connected = t.connected(&ctx).await;
    let mut bare = Ws::open(&t.ws_url()).await;
    // Bad requests do not count as a handshake: answered, then closed.
    let r = bare.request("dance", json!({})).await;
    assert_eq!(r["code"], "invalid_params", "{r}");
    let (code, reason) = bare.closed().await;
    assert_eq!(code, 4008, "{reason}");
    assert!(reason.contains("connect_to_context"), "{reason}");
    // A connected socket is not affected: its deadline passed before the
    // bare socket's did.
    let ack = connected
        .request("add_message", json!({"message": "x"}))
        .await;
    assert_eq!(ack["success"], true);
}

#[tokio::test]
async fn max_connections_closes_the_extra_socket_4008() {
    let t = spawn_with(test_builder().configure(|c| c.max_connections = 1)).await;
    let (_, ctx) = t.agent_and_context().await;
    let mut first = t.connected(&ctx).await;
    let mut second = Ws::open(&t.ws_url()).await;
    assert_eq!(second.closed().await.0, 4008);
    let ack = first.request("add_message", json!({"message": "x"})).await;
    assert_eq!(ack["success"], true);
}

#[tokio::test]
async fn oversized_frames_close_the_socket() {
    let t = spawn_with(test_builder().configure(|c| c.max_frame_bytes = 1024)).await;
    let mut ws = Ws::open(&t.ws_url()).await;
    let big = "x".repeat(4096);
    ws.send_json(json!({"method": "add_message", "params": {"message": big}, "id": "1"}))
        .await;
    let (code, _) = ws.closed().await;
    assert_eq!(code, 1009);
}

#[tokio::test]
async fn rest_errors_have_the_documented_shape() {
    let t = spawn().await;
    let r = t
        .request(reqwest::Method::POST, "/agent", &t.org_key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = common::status_json(r).await;
    assert_eq!(status, 400);
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], "invalid_params");
    assert!(body["error"].is_string());
    let (status, body) = t.get("/no/such/route", &t.org_key).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = t.get("/context/unknown", &t.org_key).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
}

/// The server's `/metrics` text, from its separate metrics listener.
async fn metrics_text(t: &TestServer) -> String {
    let metrics = t.server.metrics_addr().expect("metrics listener");
    let response = t.http.get(format!("http://{metrics}/metrics")).send();
    response.await.unwrap().text().await.unwrap()
}

/// Reads the value of the series line starting with `series ` (0 when
/// absent).
fn value_of(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().expect("a number"))
}

#[tokio::test]
async fn alerting_metrics_after_a_real_flow() {
    let t =
        spawn_with(test_builder().configure(|c| c.metrics_bind = Some("127.0.0.1:0".into()))).await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request("add_message", json!({"message": "[tokens=5]"}))
        .await;
    ws.collect(ack["response_id"].as_str()).await;
    let ack = ws
        .request("add_message", json!({"message": "[tokens=5 fail_after=2]"}))
        .await;
    ws.collect(ack["response_id"].as_str()).await;
    let refused = ws.request("add_message", json!({})).await;
    assert_eq!(refused["code"], "invalid_params", "{refused}");
    // A socket resuming from the buffer's start is served; one asking past
    // anything issued is refused (its replies would end interrupted).
    let key = t.client_key(Some(&ctx), None).await;
    let mut served = Ws::open(&t.ws_url()).await;
    let r = served.connect(&ctx, Some(&key), Some(0)).await;
    assert_eq!(r["resumed"], true, "{r}");
    let key = t.client_key(Some(&ctx), None).await;
    let mut past = Ws::open(&t.ws_url()).await;
    let r = past.connect(&ctx, Some(&key), Some(1_000_000)).await;
    assert_eq!(r["resumed"], false, "{r}");

    let text = metrics_text(&t).await;
    for (series, want) in [
        ("tokenrelay_resumes_total{outcome=\"served\"}", 1.0),
        ("tokenrelay_resumes_total{outcome=\"refused\"}", 1.0),
        ("tokenrelay_replies_total{reason=\"complete\"}", 1.0),
        ("tokenrelay_replies_total{reason=\"error\"}", 1.0),
        ("tokenrelay_engine_errors_total{kind=\"scripted\"}", 1.0),
        (
            "tokenrelay_ws_request_refusals_total{code=\"invalid_params\"}",
            1.0,
        ),
        ("tokenrelay_time_to_first_token_seconds_count", 2.0),
        (
            "tokenrelay_time_to_first_token_seconds_bucket{le=\"+Inf\"}",
            2.0,
        ),
    ] {
        assert_eq!(value_of(&text, series), want, "{series} in\n{text}");
    }
    assert!(text.contains("# TYPE tokenrelay_time_to_first_token_seconds histogram"));
    // This server's buffers only (each server counts its own): this
    // context's notifications, 5 + 2 tokens and two stops.
    assert_eq!(
        value_of(&text, "tokenrelay_replay_buffer_notifications"),
        9.0,
        "{text}"
    );
}

#[tokio::test]
async fn health_and_metrics() {
    // /metrics lives on its own address (Info finding of the review: on
    // the main port it told strangers the traffic and failure rates).
    let t =
        spawn_with(test_builder().configure(|c| c.metrics_bind = Some("127.0.0.1:0".into()))).await;
    let (status, _) = t.get("/metrics", "").await;
    assert_eq!(status, 404, "not on the main port");
    let (status, health) = t.get("/health", "").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request("add_message", json!({"message": "[tokens=7]"}))
        .await;
    ws.collect(ack["response_id"].as_str()).await;
    t.get("/agents", "bad").await;
    let text = metrics_text(&t).await;
    assert!(text.contains("tokenrelay_ws_connections 1"), "{text}");
    assert!(
        text.contains("tokenrelay_tokens_generated_total 7"),
        "{text}"
    );
    assert!(
        text.contains("tokenrelay_auth_failures_total{reason=\"malformed\"} 1"),
        "{text}"
    );
    assert!(text.contains("tokenrelay_http_request_duration_seconds_count{route=\"/agents\"}"));
    // No secret ever shows up in metrics.
    assert!(!text.contains(&t.org_key));
}

#[tokio::test]
async fn graceful_shutdown_closes_sockets_with_1001() {
    // No drain: the reply of minutes is cut at once (the drain has its
    // own tests, in `durability` and `cluster`).
    let t = spawn_with(test_builder().configure(|c| c.drain_timeout = Duration::ZERO)).await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request(
            "add_message",
            json!({"message": "[tokens=100000 pace_ms=5]"}),
        )
        .await;
    assert_eq!(ack["success"], true);
    let shutdown = tokio::spawn(t.server.shutdown());
    assert_eq!(ws.closed().await.0, 1001);
    shutdown.await.unwrap();
}

#[tokio::test]
async fn a_corpus_of_hostile_frames_never_kills_the_connection() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_obj = format!(
        r#"{{"method":"add_message","params":{}1{},"id":"d"}}"#,
        r#"{"a":"#.repeat(2000),
        "}".repeat(2000)
    );
    let corpus: Vec<String> = vec![
        String::new(),
        " ".into(),
        "null".into(),
        "[]".into(),
        "42".into(),
        "\"string\"".into(),
        "{".into(),
        "{}".into(),
        r#"{"method":null}"#.into(),
        r#"{"method":42,"id":"a"}"#.into(),
        r#"{"method":"add_message","params":[],"id":"b"}"#.into(),
        r#"{"method":"add_message","params":{"message":"x"},"id":{}}"#.into(),
        r#"{"method":"add_message","params":{"message":"x"},"id":[1]}"#.into(),
        r#"{"method":"connect_to_context","params":{"context_id":"x","resume_after_seq":-1},"id":"c"}"#
            .into(),
        r#"{"method":"connect_to_context","params":{"context_id":"x","resume_after_seq":1e400},"id":"c"}"#
            .into(),
        r#"{"method":"client_side_tool_responses","params":{"tool_responses":[{"tool_call_id":1}]},"id":"e"}"#
            .into(),
        "\u{0}\u{1}\u{7f}".into(),
        "\u{feff}{}".into(),
        r#"{"method":"add_message","params":{"message":"\ud800"},"id":"f"}"#.into(),
        deep,
        deep_obj,
    ];
    for frame in &corpus {
        ws.send_text(frame).await;
    }
    // Every bad frame was answered or ignored; the socket still works.
    let ack = ws
        .request("add_message", json!({"message": "survived"}))
        .await;
    assert_eq!(ack["success"], true, "{ack}");
    assert!(ws
        .other_responses
        .iter()
        .all(|r| r["result"]["success"] == false && r["result"]["code"].is_string()));
    assert!(ws.other_responses.len() >= 10, "errors were answered");
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "You said: survived");
}
