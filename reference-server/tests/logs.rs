//! Logs never contain a secret: every credential kind goes through the
//! server with the server's logs at `trace`, and none appears in them.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{spawn_with, test_builder, Ws};
use serde_json::json;
use tokenrelay_server::engine::{WebhookConfig, WebhookSecret};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_credential_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "tokenrelay_server=trace,info",
        ))
        .with_writer(move || writer.clone())
        .init();

    let webhook_secret = "the webhook secret, 32 bytes or more";
    let t = spawn_with(test_builder().configure(|c| {
        c.webhooks = WebhookConfig {
            secret: Some(WebhookSecret::new(webhook_secret)),
            allow: vec!["127.0.0.1:1".parse().unwrap()],
            allow_private: true,
            allow_http: true,
            ..WebhookConfig::default()
        };
    }))
    .await;
    let (agent, ctx) = t.agent_and_context().await;
    // A webhook tool that fails (nothing listens on port 1): its failure
    // is logged with the host, never the secret nor the URL's query.
    let hook_token = "token-in-the-webhook-query";
    let hooked = t
        .agent(json!({"tools": [{"name": "hook", "webhook": format!("http://127.0.0.1:1/x?t={hook_token}")}]}))
        .await;
    let hooked_ctx = t.context(&hooked).await;
    let (_, chat) = t
        .post(
            "/chat",
            &t.org_key,
            json!({"context_id": hooked_ctx, "message": "[tool=hook]"}),
        )
        .await;
    assert_eq!(chat["success"], true, "{chat}");
    let client_key = t.client_key(Some(&ctx), None).await;
    let mut ws = Ws::open(&t.ws_url()).await;
    ws.connect(&ctx, Some(&client_key), None).await;
    let ack = ws.request("add_message", json!({"message": "hello"})).await;
    ws.collect(ack["response_id"].as_str()).await;
    let password = "a very secret password";
    t.post(
        "/auth/register",
        "",
        json!({"username": "ann", "password": password}),
    )
    .await;
    let (_, login) = t
        .post(
            "/auth/login",
            "",
            json!({"username": "ann", "password": password}),
        )
        .await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let (_, sk) = t
        .post("/auth/api-keys", &access, json!({"nickname": "n"}))
        .await;
    let sk = sk["key"].as_str().unwrap().to_owned();
    let (_, stream) = t.get("/api/v1/token", &sk).await;
    let stream = stream["token"].as_str().unwrap().to_owned();
    let mut ws = Ws::open(&format!("{}?token={stream}", t.ws_url())).await;
    ws.request("connect_to_context", json!({"context_id": ctx}))
        .await;
    let (_, pk) = t
        .post(
            "/client-key",
            &t.org_key,
            json!({"allowed_origins": ["https://a.example"]}),
        )
        .await;
    let pk = pk["client_key"].as_str().unwrap().to_owned();
    // Refusals are logged too: a bad key and a reused stream token.
    t.get("/agents", "garbage-credential").await;
    Ws::open(&format!("{}?token={stream}", t.ws_url()))
        .await
        .closed()
        .await;
    drop(agent);
    t.server.shutdown().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("connected to context"), "logs were captured");
    assert!(
        logs.contains("webhook tool failed"),
        "the webhook failure was logged"
    );
    for (what, secret) in [
        ("org key", t.org_key.as_str()),
        ("client key", client_key.as_str()),
        ("access token", access.as_str()),
        ("user api key", sk.as_str()),
        ("stream token", stream.as_str()),
        ("publishable key", pk.as_str()),
        ("password", password),
        ("bad credential", "garbage-credential"),
        ("webhook secret", webhook_secret),
        ("webhook URL query", hook_token),
    ] {
        assert!(!logs.contains(secret), "the {what} appears in the logs");
    }
}
