//! Giving up on `connect()` while it is still trying: the future dropped
//! (a task cancelled, a UI that went away). Everything is released: no
//! socket stays open on the server and the token provider is never called
//! again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokenrelay::Client;
use tokenrelay::ReconnectPolicy;
use tokenrelay_e2e::{Harness, WAIT};
use tokio::sync::Notify;

/// The server's count of open WebSocket connections (`GET /health`).
async fn open_sockets(h: &Harness) -> u64 {
    let health: serde_json::Value = reqwest::get(format!("{}/health", h.server.http_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    health["connections"].as_u64().expect("a count")
}

#[tokio::test]
async fn dropping_a_pending_connect_releases_everything() {
    let h = Harness::start().await;
    let ctx = h.context("", false).await;
    // The app's backend is down: every key request fails, transiently, and
    // the client keeps asking on a quick schedule. (A key the server
    // refuses would not do: a fresh key refused before any attachment
    // fails `connect()` at once, tested in flows.rs.)
    let calls = Arc::new(AtomicUsize::new(0));
    let called = Arc::new(Notify::new());
    let (counter, bell) = (calls.clone(), called.clone());
    let client = Client::builder(h.server.ws_url())
        .token_provider(move |_ctx: String| {
            counter.fetch_add(1, Ordering::SeqCst);
            bell.notify_one();
            async move {
                Err::<String, _>(tokenrelay::Error::Transport {
                    message: "the backend is down".into(),
                })
            }
        })
        .reconnect(
            ReconnectPolicy::default()
                .with_min_delay(Duration::from_millis(10))
                .with_max_delay(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    let connecting = tokio::spawn(async move { client.connect(&ctx).await });
    // Trying: several failed attempts.
    let deadline = tokio::time::Instant::now() + WAIT;
    while calls.load(Ordering::SeqCst) < 4 {
        assert!(tokio::time::Instant::now() < deadline, "no retries seen");
        let _ = tokio::time::timeout(Duration::from_millis(100), called.notified()).await;
    }
    connecting.abort();
    assert!(connecting.await.unwrap_err().is_cancelled());
    let after_abort = calls.load(Ordering::SeqCst);

    // The server sees every socket go.
    let deadline = tokio::time::Instant::now() + WAIT;
    while open_sockets(&h).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a socket stayed open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // No call after the abort (one already running may finish): with
    // retries every 10–20 ms, half a second would have seen 25 of them.
    let more = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            called.notified().await;
            if calls.load(Ordering::SeqCst) > after_abort + 1 {
                return;
            }
        }
    })
    .await;
    assert!(
        more.is_err(),
        "the provider was called {} times after the abort",
        calls.load(Ordering::SeqCst) - after_abort
    );
}
