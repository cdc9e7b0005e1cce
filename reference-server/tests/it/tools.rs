//! Tool rounds with the scripted engine (no upstream): several server-tool
//! rounds in one response, the round limit, client-side tools asked for
//! several times, answers that come too late, and a reconnect in the
//! middle of the rounds (every frame exactly once).

use crate::common;

use std::time::Duration;

use common::{seq, spawn, spawn_with, test_builder, Collected, Ws};
use serde_json::{json, Value};
use tokenrelay_server::{RoundsConfig, ScriptedEngine};

fn of<'a>(got: &'a Collected, method: &str) -> Vec<&'a Value> {
    got.notifications
        .iter()
        .filter(|n| n["method"] == method)
        .map(|n| &n["params"])
        .collect()
}

async fn spawn_rounds(rounds: RoundsConfig) -> common::TestServer {
    spawn_with(test_builder().engine(ScriptedEngine::default().with_rounds(rounds))).await
}

#[tokio::test]
async fn server_tool_rounds_share_one_response() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let message = "look [tool=web_search tool=clock rounds=3]";
    let ack = ws.request("add_message", json!({"message": message})).await;
    let rid = ack["response_id"].as_str().unwrap();
    let got = ws.collect(Some(rid)).await;
    assert_eq!(got.reason.as_deref(), Some("complete"));
    assert_eq!(got.text, ScriptedEngine::expected_reply(message));
    let calls = of(&got, "on_tool_call");
    let answers = of(&got, "on_tool_response");
    assert_eq!((calls.len(), answers.len()), (6, 6));
    let ids: Vec<&str> = calls
        .iter()
        .map(|c| c["tool_call_id"].as_str().unwrap())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "every round's calls have their own ids");
    assert_eq!(ids[0], format!("{rid}-tool-0"));
    assert_eq!(ids[5], format!("{rid}-r2-tool-1"));
    assert!(got
        .notifications
        .iter()
        .all(|n| n["params"]["response_id"] == rid));
    // Both calls of a round are announced before they run.
    assert_eq!(
        &got.methods()[..4],
        [
            "on_tool_call",
            "on_tool_call",
            "on_tool_response",
            "on_tool_response"
        ]
    );
    // The history keeps every round once.
    let (_, c) = t.get(&format!("/context/{ctx}"), &t.org_key).await;
    let kinds: Vec<&str> = c["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().or(m["sender"].as_str()).unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "tool_call").count(), 6);
    assert_eq!(kinds.iter().filter(|k| **k == "tool_response").count(), 6);
    assert_eq!(kinds.last(), Some(&"ai"));
}

#[tokio::test]
async fn the_round_limit_is_a_stop_reason() {
    let t = spawn_rounds(RoundsConfig {
        max_rounds: 2,
        ..RoundsConfig::default()
    })
    .await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request("add_message", json!({"message": "[tool=a rounds=2]"}))
        .await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(
        got.reason.as_deref(),
        Some("complete"),
        "at the limit is fine"
    );
    let ack = ws
        .request("add_message", json!({"message": "[tool=a rounds=3]"}))
        .await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.reason.as_deref(), Some("round_limit"));
    assert_eq!(got.text, "");
    assert_eq!(of(&got, "on_tool_call").len(), 2);
}

#[tokio::test]
async fn client_side_tools_asked_several_times() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request(
            "add_message",
            json!({"message": "where? [client_tool=get_location rounds=2]"}),
        )
        .await;
    let mut rid = ack["response_id"].as_str().unwrap().to_owned();
    let mut answered = Vec::new();
    loop {
        let got = ws.collect(Some(&rid)).await;
        assert_eq!(got.reason.as_deref(), Some("complete"));
        let calls = of(&got, "on_client_side_tool_calls");
        let Some(calls) = calls.first() else {
            assert_eq!(
                got.text,
                format!("Tool results: {}=here", answered.last().unwrap())
            );
            break;
        };
        let id = calls["tool_calls"][0]["tool_call_id"]
            .as_str()
            .unwrap()
            .to_owned();
        answered.push(id.clone());
        let ack = ws
            .request(
                "client_side_tool_responses",
                json!({"tool_responses": [{"tool_call_id": id, "response": "here"}]}),
            )
            .await;
        rid = ack["response_id"].as_str().unwrap().to_owned();
    }
    assert_eq!(answered.len(), 2, "asked twice, then answered");
}

#[tokio::test]
async fn answers_after_the_timeout_end_the_continuation_with_tool_timeout() {
    let t = spawn_rounds(RoundsConfig {
        client_tool_timeout: Duration::from_millis(20),
        ..RoundsConfig::default()
    })
    .await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request("add_message", json!({"message": "[client_tool=get_time]"}))
        .await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    let id = of(&got, "on_client_side_tool_calls")[0]["tool_calls"][0]["tool_call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The client never answers in time (the wait only has to exceed the
    // timeout; a longer one changes nothing).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ack = ws
        .request(
            "client_side_tool_responses",
            json!({"tool_responses": [{"tool_call_id": id, "response": "noon"}]}),
        )
        .await;
    assert_eq!(ack["success"], true);
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.reason.as_deref(), Some("tool_timeout"));
    assert_eq!(got.text, "");
    // The conversation goes on.
    let ack = ws.request("add_message", json!({"message": "hi"})).await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "You said: hi");
}

#[tokio::test]
async fn a_reconnect_mid_rounds_sees_every_frame_exactly_once() {
    let t = spawn().await;
    let message = "[tool=web_search rounds=4 tokens=30 pace_ms=1]";
    for cut_after in [1usize, 3, 8] {
        let (_, ctx) = t.agent_and_context().await;
        let mut ws = t.connected(&ctx).await;
        ws.request("add_message", json!({"message": message})).await;
        let mut frames: Vec<Value> = Vec::new();
        let mut last = 0;
        for _ in 0..cut_after {
            let f = ws.next_json().await.expect("open");
            last = seq(&f);
            frames.push(f);
        }
        ws.cut();
        let key = t.client_key(Some(&ctx), None).await;
        let mut ws = Ws::open(&t.ws_url()).await;
        let result = ws.connect(&ctx, Some(&key), Some(last)).await;
        assert_eq!(result["resumed"], true);
        loop {
            let f = ws.next_json().await.expect("open");
            let done = f["method"] == "on_stop_token";
            frames.push(f);
            if done {
                break;
            }
        }
        let seqs: Vec<u64> = frames.iter().map(seq).collect();
        let first = seqs[0];
        assert_eq!(
            seqs,
            (first..first + seqs.len() as u64).collect::<Vec<_>>(),
            "cut after {cut_after}: no gap, no duplicate"
        );
        let count = |m: &str| frames.iter().filter(|f| f["method"] == m).count();
        assert_eq!((count("on_tool_call"), count("on_tool_response")), (4, 4));
        let text: String = frames
            .iter()
            .filter(|f| f["method"] == "on_token")
            .map(|f| f["params"]["token"].as_str().unwrap())
            .collect();
        assert_eq!(text, ScriptedEngine::expected_reply(message));
    }
}
