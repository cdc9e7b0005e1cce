//! The fault-injection hook the cross-language scenarios use.

mod common;

use common::{seq, spawn, spawn_with, test_builder, Ws};
use serde_json::json;
use tokenrelay_server::ScriptedEngine;

#[tokio::test]
async fn the_hook_is_absent_unless_enabled() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let (status, _) = t
        .post(
            "/debug/faults",
            &t.org_key,
            json!({"context_id": ctx, "fault": "drop"}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn faults_close_or_drop_the_contexts_sockets_and_resume_works() {
    let t = spawn_with(test_builder().configure(|c| c.fault_injection = true)).await;
    let (_, ctx) = t.agent_and_context().await;
    let (status, _) = t
        .post(
            "/debug/faults",
            &t.org_key,
            json!({"context_id": ctx, "fault": "explode"}),
        )
        .await;
    assert_eq!(status, 400);
    let (_, key_b) = t.server.bootstrap_org("b").await.unwrap();
    let (status, _) = t
        .post(
            "/debug/faults",
            &key_b,
            json!({"context_id": ctx, "fault": "drop"}),
        )
        .await;
    assert_eq!(status, 403);

    for (fault, code) in [
        ("close_4001", 4001),
        ("close_1011", 1011),
        ("close_1001", 1001),
    ] {
        let mut ws = t.connected(&ctx).await;
        let (status, body) = t
            .post(
                "/debug/faults",
                &t.org_key,
                json!({"context_id": ctx, "fault": fault}),
            )
            .await;
        assert_eq!((status, body["sockets"].as_u64()), (200, Some(1)));
        assert_eq!(ws.closed().await.0, code, "{fault}");
    }

    // A drop mid-reply: no close frame, then resume completes the reply.
    let message = "[tokens=40 pace_ms=2]";
    let mut ws = t.connected(&ctx).await;
    ws.request("add_message", json!({"message": message})).await;
    let mut text = String::new();
    let mut last = 0;
    for _ in 0..5 {
        let n = ws.next_json().await.unwrap();
        last = seq(&n);
        text.push_str(n["params"]["token"].as_str().unwrap());
    }
    t.post(
        "/debug/faults",
        &t.org_key,
        json!({"context_id": ctx, "fault": "drop"}),
    )
    .await;
    loop {
        match ws.next_raw().await {
            None => break,
            Some(tokio_tungstenite::tungstenite::Message::Close(_)) => {
                panic!("a drop sends no close frame")
            }
            Some(_) => continue,
        }
    }
    let key = t.client_key(Some(&ctx), None).await;
    let mut ws = Ws::open(&t.ws_url()).await;
    assert_eq!(
        ws.connect(&ctx, Some(&key), Some(last)).await["resumed"],
        true
    );
    loop {
        let n = ws.next_json().await.unwrap();
        assert_eq!(seq(&n), last + 1);
        last += 1;
        if n["method"] == "on_stop_token" {
            break;
        }
        text.push_str(n["params"]["token"].as_str().unwrap());
    }
    assert_eq!(text, ScriptedEngine::expected_reply(message));
}
