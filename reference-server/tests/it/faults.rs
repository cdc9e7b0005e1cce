//! The fault-injection hook the cross-language scenarios use.

use crate::common;

use common::{seq, spawn, spawn_with, test_builder, TestServer, Ws};
use serde_json::{json, Value};
use tokenrelay_server::ScriptedEngine;
use tokio_tungstenite::tungstenite::Message;

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
            Some(Message::Close(_)) => {
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

/// A reply with text, a client-side tool call and events: something trails
/// its stop on a base-protocol server.
const TRAILED: &str = "[client_tool=get_location events=2] where am I?";

/// Every frame until the socket ends, which must be without a close frame.
async fn frames_until_dropped(ws: &mut Ws) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        match ws.next_raw().await {
            None => return frames,
            Some(Message::Close(c)) => panic!("a drop sends no close frame: {c:?}"),
            Some(Message::Text(t)) => frames.push(serde_json::from_str(t.as_str()).expect("json")),
            Some(_) => {}
        }
    }
}

/// What each frame is: its method, or `result` for an answer.
fn kinds(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| f["method"].as_str().unwrap_or("result"))
        .collect()
}

async fn arm_drop_after_stop(t: &TestServer, ctx: &str) {
    let (status, body) = t
        .post(
            "/debug/faults",
            &t.org_key,
            json!({"context_id": ctx, "fault": "drop_after_stop"}),
        )
        .await;
    assert_eq!((status, body["sockets"].as_u64()), (200, Some(1)), "{body}");
}

#[tokio::test]
async fn drop_after_stop_cuts_a_base_reply_between_its_stop_and_what_trails_it() {
    let t = spawn_with(test_builder().configure(|c| {
        c.fault_injection = true;
        c.base_protocol = true;
    }))
    .await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;

    // Without the fault: the stop, then what trails it, the result last.
    ws.send_json(json!({"method": "add_message", "params": {"message": TRAILED}, "id": "m1"}))
        .await;
    let mut whole = Vec::new();
    loop {
        let frame = ws.next_json().await.expect("the socket stays open");
        let done = frame["id"] == "m1";
        whole.push(frame);
        if done {
            break;
        }
    }
    let whole = kinds(&whole);
    assert!(
        whole.ends_with(&[
            "on_stop_token",
            "on_client_side_tool_calls",
            "on_events",
            "result"
        ]),
        "{whole:?}"
    );

    // With it, armed before the message: the text and the stop come, then
    // the socket ends, and nothing that trails the stop was written.
    arm_drop_after_stop(&t, &ctx).await;
    ws.send_json(json!({"method": "add_message", "params": {"message": TRAILED}, "id": "m2"}))
        .await;
    let frames = frames_until_dropped(&mut ws).await;
    let cut = kinds(&frames);
    assert_eq!(cut.last(), Some(&"on_stop_token"), "{cut:?}");
    let text: String = frames
        .iter()
        .filter(|f| f["method"] == "on_token")
        .map(|f| f["params"]["token"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(text, ScriptedEngine::expected_reply(TRAILED));
}

#[tokio::test]
async fn drop_after_stop_waits_for_the_stop_and_a_resume_loses_nothing() {
    let t = spawn_with(test_builder().configure(|c| c.fault_injection = true)).await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    // Armed while nothing streams: it waits for the next reply's stop.
    arm_drop_after_stop(&t, &ctx).await;
    ws.send_json(json!({"method": "add_message", "params": {"message": TRAILED}, "id": "m1"}))
        .await;
    let frames = frames_until_dropped(&mut ws).await;
    // The reference server answers first and sends what trails a reply
    // before its stop: all of it came.
    let got = kinds(&frames);
    assert_eq!(got.first(), Some(&"result"), "{got:?}");
    assert!(
        got.ends_with(&["on_events", "on_client_side_tool_calls", "on_stop_token"]),
        "{got:?}"
    );
    let last = seq(frames.last().expect("frames"));

    // Resume from the stop: nothing is missing, and the fault is spent.
    let key = t.client_key(Some(&ctx), None).await;
    let mut ws = Ws::open(&t.ws_url()).await;
    assert_eq!(
        ws.connect(&ctx, Some(&key), Some(last)).await["resumed"],
        true
    );
    let ack = ws
        .request("add_message", json!({"message": "[echo] again"}))
        .await;
    assert_eq!(ack["success"], true, "{ack}");
    let reply = ws.collect(None).await;
    assert_eq!(reply.text, "again");
    assert_eq!(
        seq(&reply.notifications[0]),
        last + 1,
        "nothing was published between the stop and the next reply"
    );
    ws.request("add_message", json!({"message": "[echo] and again"}))
        .await;
    assert_eq!(ws.collect(None).await.text, "and again", "the socket stays");
}
