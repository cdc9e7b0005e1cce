//! A restart on the same SQLite file keeps orgs, agents, contexts with
//! their history, every kind of key, users, and the `seq` numbering.

use crate::common;

use std::time::Duration;

use common::{reopen, seq, spawn_with, test_builder, TestServer, Ws};
use serde_json::json;
use tokenrelay_server::ScriptedEngine;
use tokenrelay_server::StoreConfig;

#[tokio::test]
async fn a_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.sqlite3");
    let t = spawn_with(test_builder().store(StoreConfig::Sqlite(path.clone()))).await;
    let (agent, ctx) = t.agent_and_context().await;
    let client_key = t.client_key(Some(&ctx), Some(600)).await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request("add_message", json!({"message": "remember me"}))
        .await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    let last_seq = seq(got.notifications.last().unwrap());
    t.post(
        "/auth/register",
        "",
        json!({"username": "ann", "password": "password123"}),
    )
    .await;
    let (_, login) = t
        .post(
            "/auth/login",
            "",
            json!({"username": "ann", "password": "password123"}),
        )
        .await;
    let (_, sk) = t
        .post(
            "/auth/api-keys",
            login["access_token"].as_str().unwrap(),
            json!({"nickname": "cli"}),
        )
        .await;
    let sk = sk["key"].as_str().unwrap().to_owned();
    let (org_id, org_key) = (t.org_id.clone(), t.org_key.clone());
    ws.close().await;
    t.server.shutdown().await;

    // Same file, no secret configured: the one saved in the store is used.
    let server = test_builder()
        .store(StoreConfig::Sqlite(path))
        .spawn()
        .await
        .unwrap();
    let t = TestServer {
        server,
        org_id,
        org_key,
        http: reqwest::Client::new(),
    };
    let (status, a) = t.get(&format!("/agent/{agent}"), &t.org_key).await;
    assert_eq!(
        (status, a["agent_id"].as_str()),
        (200, Some(agent.as_str()))
    );
    let (status, c) = t.get(&format!("/context/{ctx}"), &t.org_key).await;
    assert_eq!(status, 200);
    assert_eq!(
        c["messages"],
        json!([
            {"sender": "human", "message": "remember me"},
            {"sender": "ai", "message": "You said: remember me"},
        ])
    );
    assert_eq!(t.get("/auth/me", &sk).await.0, 200);
    // The client key minted before the restart still connects, and seq
    // continues where it stopped.
    let mut ws = Ws::open(&t.ws_url()).await;
    let r = ws.connect(&ctx, Some(&client_key), None).await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["seq"].as_u64(), Some(last_seq));
    let ack = ws.request("add_message", json!({"message": "again"})).await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(seq(&got.notifications[0]), last_seq + 1);
    t.server.shutdown().await;
}

#[tokio::test]
async fn a_reply_running_at_shutdown_finishes_and_is_in_the_history_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.sqlite3");
    // A drain timeout far beyond the reply: the reply finishing ends the
    // drain, not the timeout.
    let t = spawn_with(
        test_builder()
            .store(StoreConfig::Sqlite(path.clone()))
            .configure(|c| c.drain_timeout = Duration::from_secs(120)),
    )
    .await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let message = "[tokens=200 pace_ms=5]";
    let ack = ws.request("add_message", json!({"message": message})).await;
    assert_eq!(ack["success"], true, "{ack}");
    // The reply is streaming when the server is told to stop.
    let first = ws.next_json().await.expect("a token");
    assert_eq!(first["method"], "on_token", "{first}");
    let state = t.server.state().clone();
    let (org_id, org_key) = (t.org_id.clone(), t.org_key.clone());
    let shutdown = tokio::spawn(t.server.shutdown());
    assert_eq!(ws.closed().await.0, 1001, "told to reconnect");
    shutdown.await.unwrap();
    let drained = state.metrics.render();
    assert!(
        drained.contains("tokenrelay_drain_generations_total{outcome=\"finished\"} 1"),
        "{drained}"
    );
    assert!(drained.contains("tokenrelay_replies_total{reason=\"complete\"} 1"));

    // The client comes back after the restart: the reply is in the
    // history, whole.
    let t = reopen(path, org_id, org_key).await;
    let (status, context) = t.get(&format!("/context/{ctx}"), &t.org_key).await;
    assert_eq!(status, 200, "{context}");
    assert_eq!(
        context["messages"],
        json!([
            {"sender": "human", "message": message},
            {"sender": "ai", "message": ScriptedEngine::expected_reply(message)},
        ])
    );
    t.server.shutdown().await;
}
