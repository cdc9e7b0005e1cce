//! The `resume` extension: cut the socket mid-response at many points,
//! reconnect with a fresh key and `resume_after_seq`, and get exactly the
//! missed notifications; past the replay window, `resumed: false`.

use crate::common;

use std::time::Duration;

use common::{seq, spawn, spawn_with, test_builder, TestServer, Ws};
use serde_json::{json, Value};
use tokenrelay_server::ScriptedEngine;

/// Reads up to `n` notifications of the response; returns text so far,
/// the highest seq seen and whether the response already ended.
async fn read_some(ws: &mut Ws, n: usize, text: &mut String, last: &mut u64) -> bool {
    for _ in 0..n {
        let frame = ws.next_json().await.expect("open");
        let s = seq(&frame);
        assert_eq!(s, *last + 1, "no gap, no duplicate: {frame}");
        *last = s;
        match frame["method"].as_str() {
            Some("on_token") => text.push_str(frame["params"]["token"].as_str().unwrap()),
            Some("on_stop_token") => return true,
            _ => {}
        }
    }
    false
}

async fn resume(t: &TestServer, ctx: &str, after: u64) -> (Ws, Value) {
    let key = t.client_key(Some(ctx), None).await;
    let mut ws = Ws::open(&t.ws_url()).await;
    let result = ws.connect(ctx, Some(&key), Some(after)).await;
    (ws, result)
}

async fn wait_for_history(t: &TestServer, ctx: &str, len: usize) -> Value {
    for _ in 0..2000 {
        let (_, c) = t.get(&format!("/context/{ctx}"), &t.org_key).await;
        if c["messages"].as_array().map(Vec::len) == Some(len) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("history never reached {len} messages");
}

#[tokio::test]
async fn cut_at_many_points_and_resume_exactly() {
    let t = spawn().await;
    let message = "[tokens=60 pace_ms=1]";
    let expected = ScriptedEngine::expected_reply(message);
    for cut_after in [1usize, 2, 7, 30, 59, 60] {
        let (_, ctx) = t.agent_and_context().await;
        let mut ws = t.connected(&ctx).await;
        let ack = ws.request("add_message", json!({"message": message})).await;
        assert_eq!(ack["success"], true);
        let mut text = String::new();
        let mut last = 0;
        let done = read_some(&mut ws, cut_after, &mut text, &mut last).await;
        assert!(!done);
        ws.cut();

        let (mut ws, result) = resume(&t, &ctx, last).await;
        assert_eq!(result["success"], true);
        assert_eq!(result["resumed"], true, "cut after {cut_after}");
        while !read_some(&mut ws, 1, &mut text, &mut last).await {}
        assert_eq!(text, expected, "cut after {cut_after}");
    }
}

#[tokio::test]
async fn several_cuts_in_one_response() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let message = "[tokens=80 pace_ms=1]";
    let mut ws = t.connected(&ctx).await;
    ws.request("add_message", json!({"message": message})).await;
    let mut text = String::new();
    let mut last = 0;
    for _ in 0..5 {
        if read_some(&mut ws, 9, &mut text, &mut last).await {
            break;
        }
        ws.cut();
        let (next, result) = resume(&t, &ctx, last).await;
        assert_eq!(result["resumed"], true);
        ws = next;
    }
    while !read_some(&mut ws, 1, &mut text, &mut last).await {}
    assert_eq!(text, ScriptedEngine::expected_reply(message));
}

#[tokio::test]
async fn the_agent_keeps_generating_while_no_client_is_connected() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let message = "[tokens=40 pace_ms=1 events]";
    let mut ws = t.connected(&ctx).await;
    ws.request("add_message", json!({"message": message})).await;
    let mut text = String::new();
    let mut last = 0;
    read_some(&mut ws, 1, &mut text, &mut last).await;
    ws.cut();
    // Nobody is connected; the response still completes and is saved.
    let c = wait_for_history(&t, &ctx, 2).await;
    assert_eq!(
        c["messages"][1]["message"],
        ScriptedEngine::expected_reply(message)
    );
    // Everything missed is replayed, the events and the stop included.
    let (mut ws, result) = resume(&t, &ctx, last).await;
    assert_eq!(result["resumed"], true);
    let mut methods = Vec::new();
    loop {
        let frame = ws.next_json().await.unwrap();
        assert_eq!(seq(&frame), last + 1);
        last += 1;
        methods.push(frame["method"].as_str().unwrap().to_owned());
        if let Some(t) = frame["params"]["token"].as_str() {
            text.push_str(t);
        }
        if frame["method"] == "on_stop_token" {
            assert_eq!(frame["params"]["reason"], "complete");
            break;
        }
    }
    assert_eq!(text, ScriptedEngine::expected_reply(message));
    assert_eq!(methods[methods.len() - 2], "on_events");
    assert_eq!(result["seq"].as_u64().unwrap(), last);
}

#[tokio::test]
async fn resuming_with_nothing_missed_replays_nothing() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws.request("add_message", json!({"message": "hi"})).await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    let last = seq(got.notifications.last().unwrap());
    ws.cut();
    let (mut ws, result) = resume(&t, &ctx, last).await;
    assert_eq!(result["resumed"], true);
    assert_eq!(result["seq"].as_u64(), Some(last));
    let ack = ws.request("add_message", json!({"message": "next"})).await;
    let got = ws.collect(None).await;
    assert_eq!(
        got.notifications[0]["params"]["response_id"],
        ack["response_id"]
    );
    assert_eq!(seq(&got.notifications[0]), last + 1);
    // A first connect (no notification seen yet) can resume from seq 0.
    let (_, fresh) = t.agent_and_context().await;
    let (_, result) = resume(&t, &fresh, 0).await;
    assert_eq!(result["resumed"], true);
}

#[tokio::test]
async fn past_the_replay_window_resumed_is_false() {
    let t = spawn_with(test_builder().configure(|c| c.replay_max_notifications = 5)).await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    ws.request("add_message", json!({"message": "[tokens=50 pace_ms=1]"}))
        .await;
    let mut text = String::new();
    let mut last = 0;
    read_some(&mut ws, 2, &mut text, &mut last).await;
    ws.cut();
    wait_for_history(&t, &ctx, 2).await;
    let (mut ws, result) = resume(&t, &ctx, last).await;
    assert_eq!(result["success"], true);
    assert_eq!(result["resumed"], false);
    // Nothing stale is replayed: the next frame belongs to a new response.
    let ack = ws.request("add_message", json!({"message": "after"})).await;
    let got = ws.collect(None).await;
    assert_eq!(
        got.notifications[0]["params"]["response_id"],
        ack["response_id"]
    );
    assert_eq!(got.text, "You said: after");
}

#[tokio::test]
async fn a_client_ahead_of_the_server_gets_resumed_false_and_higher_seqs() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    // As after a server restart mid-response: the client saw seq 1000.
    let (mut ws, result) = resume(&t, &ctx, 1000).await;
    assert_eq!(result["resumed"], false);
    let ack = ws.request("add_message", json!({"message": "x"})).await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(seq(&got.notifications[0]), 1001);
}
