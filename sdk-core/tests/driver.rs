//! The tokio driver against a small fault-injecting WebSocket peer: it drops
//! mid-stream, stalls, refuses and sends garbage, scripted per connection.

// tungstenite's handshake callback type fixes its (large) error type.
#![allow(clippy::result_large_err)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use tokenrelay::backoff::ReconnectPolicy;
use tokenrelay::{Client, ConnectionState, Error, Event, ResponseStatus};

type Ws = WebSocketStream<TcpStream>;

/// Accepts connections on 127.0.0.1:0 and hands the n-th (0-based) to
/// `script`, recording each upgrade request's URI.
async fn peer<F, Fut>(script: F) -> (String, Arc<Mutex<Vec<String>>>)
where
    F: Fn(usize, Ws) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let uris = Arc::new(Mutex::new(Vec::new()));
    let seen = uris.clone();
    let script = Arc::new(script);
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            let cb = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                           resp| {
                seen.lock().unwrap().push(req.uri().to_string());
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await else {
                continue;
            };
            tokio::spawn(script(n, ws));
            n += 1;
        }
    });
    (url, uris)
}

async fn recv_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    let _ = ws.send(Message::text(v.to_string())).await;
}

/// Reads connect_to_context and answers it with `result`.
async fn accept_connect(ws: &mut Ws, result: Value) -> Value {
    let req = recv_json(ws).await.expect("connect_to_context");
    assert_eq!(req["method"], "connect_to_context");
    send(ws, json!({"id": req["id"], "result": result})).await;
    req
}

fn caps() -> Value {
    json!({"success": true, "seq": 0, "server": {"name": "fake", "version": "0",
        "capabilities": ["seq", "resume", "stop_reason"]}})
}

fn tok(text: &str, seq: u64) -> Value {
    json!({"method": "on_token", "params": {"token": text, "response_id": "r1", "seq": seq}})
}

/// A provider that counts its calls and hands out distinct keys.
fn counting_provider() -> (Arc<AtomicUsize>, impl tokenrelay::TokenProvider) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let provider = move |ctx: String| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, std::io::Error>(format!("key-{n}-{ctx}")) }
    };
    (calls, provider)
}

fn fast_policy() -> ReconnectPolicy {
    ReconnectPolicy {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..ReconnectPolicy::default()
    }
}

const WORDS: [&str; 5] = ["Hello", ", ", "wor", "ld", "!"];

#[tokio::test]
async fn a_drop_mid_stream_reconnects_with_a_fresh_key_and_resumes() {
    let (url, _) = peer(|n, mut ws| async move {
        let connect = accept_connect(&mut ws, caps()).await;
        if n == 0 {
            assert_eq!(connect["params"]["access_token"], "key-0-ctx");
            let msg = recv_json(&mut ws).await.unwrap();
            assert_eq!(msg["method"], "add_message");
            for (i, w) in WORDS[..3].iter().enumerate() {
                send(&mut ws, tok(w, i as u64 + 1)).await;
            }
            drop(ws); // the TCP connection just vanishes
        } else {
            assert_eq!(connect["params"]["access_token"], "key-1-ctx");
            assert_eq!(connect["params"]["resume_after_seq"], 3);
            // Replay from 2 (a duplicate the client must drop), then live.
            for (i, w) in WORDS.iter().enumerate().skip(1) {
                send(&mut ws, tok(w, i as u64 + 1)).await;
            }
            send(&mut ws, json!({"method": "on_stop_token", "params": {"response_id": "r1", "seq": 6, "reason": "complete"}})).await;
            while recv_json(&mut ws).await.is_some() {}
        }
    })
    .await;
    let (calls, provider) = counting_provider();
    let client = Client::builder(url)
        .token_provider(provider)
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let mut conn = client.connect("ctx").await.unwrap();
    let reply = conn.ask("hi").await.unwrap();
    assert_eq!(reply.text, WORDS.concat());
    assert_eq!(reply.status, ResponseStatus::Complete);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The event stream saw every token exactly once, and the reconnect.
    let mut tokens = String::new();
    let mut saw_reconnect = false;
    while let Some(ev) = tokio::time::timeout(Duration::from_millis(200), conn.next_event())
        .await
        .ok()
        .flatten()
    {
        match ev {
            Event::Token { token, .. } => tokens.push_str(&token),
            Event::StateChanged(c) if c.state == ConnectionState::Reconnecting => {
                saw_reconnect = true
            }
            _ => {}
        }
    }
    assert_eq!(tokens, WORDS.concat());
    assert!(saw_reconnect);
    conn.close().await;
}

#[tokio::test]
async fn a_base_server_drop_interrupts_the_reply() {
    let (url, _) = peer(|n, mut ws| async move {
        accept_connect(&mut ws, json!({"success": true})).await;
        if n == 0 {
            recv_json(&mut ws).await;
            send(&mut ws, json!({"method": "on_token", "id": null, "params": {"token": "Hel", "response_id": "r"}})).await;
            let _ = ws.close(None).await;
        } else {
            while recv_json(&mut ws).await.is_some() {}
        }
    })
    .await;
    let (_, provider) = counting_provider();
    let client = Client::builder(url)
        .token_provider(provider)
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let conn = client.connect("ctx").await.unwrap();
    let reply = conn.ask("hi").await.unwrap();
    assert_eq!(reply.status, ResponseStatus::Interrupted);
    assert_eq!(reply.text, "Hel");
}

#[tokio::test]
async fn garbage_is_reported_and_the_reply_still_completes() {
    let (url, _) = peer(|_, mut ws| async move {
        accept_connect(&mut ws, json!({"success": true})).await;
        let msg = recv_json(&mut ws).await.unwrap();
        let _ = ws.send(Message::text("{garbage")).await;
        let _ = ws.send(Message::text("x".repeat(2 * 1024 * 1024))).await;
        let _ = ws.send(Message::binary(vec![1u8, 2, 3])).await;
        send(&mut ws, json!({"method": "on_mystery", "params": {"x": 1}})).await;
        send(
            &mut ws,
            json!({"method": "on_token", "params": {"token": "ok", "response_id": "r"}}),
        )
        .await;
        send(
            &mut ws,
            json!({"method": "on_stop_token", "params": {"response_id": "r"}}),
        )
        .await;
        send(
            &mut ws,
            json!({"id": msg["id"], "result": {"success": true}}),
        )
        .await;
        while recv_json(&mut ws).await.is_some() {}
    })
    .await;
    let (calls, provider) = counting_provider();
    let client = Client::builder(url)
        .token_provider(provider)
        .build()
        .unwrap();
    let mut conn = client.connect("ctx").await.unwrap();
    let reply = conn.ask("hi").await.unwrap();
    assert_eq!(reply.text, "ok");
    let mut errors = Vec::new();
    let mut unknown = 0;
    while let Ok(Some(ev)) =
        tokio::time::timeout(Duration::from_millis(100), conn.next_event()).await
    {
        match ev {
            Event::Error(e) => errors.push(e.kind()),
            Event::Unknown { method, .. } if method == "on_mystery" => unknown += 1,
            _ => {}
        }
    }
    assert_eq!(errors, ["protocol", "protocol", "protocol"]);
    assert_eq!(unknown, 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "garbage never costs a reconnect"
    );
}

#[tokio::test]
async fn forbidden_fails_connect_and_never_retries() {
    let (url, uris) = peer(|_, mut ws| async move {
        accept_connect(
            &mut ws,
            json!({"success": false,
            "error": "('API key client_id does not match context', 403)"}),
        )
        .await;
        while recv_json(&mut ws).await.is_some() {}
    })
    .await;
    let (calls, provider) = counting_provider();
    let client = Client::builder(url)
        .token_provider(provider)
        .build()
        .unwrap();
    let err = client.connect("ctx").await.unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden(r) if r.status == Some(403)),
        "{err:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(uris.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_expired_key_is_replaced_once_without_backoff() {
    let (url, _) = peer(|n, mut ws| async move {
        if n == 0 {
            accept_connect(
                &mut ws,
                json!({"success": false, "error": "Token has expired", "code": "token_expired"}),
            )
            .await;
        } else {
            accept_connect(&mut ws, json!({"success": true})).await;
        }
        while recv_json(&mut ws).await.is_some() {}
    })
    .await;
    let (calls, provider) = counting_provider();
    let client = Client::builder(url)
        .token_provider(provider)
        .build()
        .unwrap();
    let conn = client.connect("ctx").await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(conn.state().state, ConnectionState::Connected);
}

#[tokio::test]
async fn a_peer_that_never_answers_times_out() {
    let (url, _) = peer(|n, mut ws| async move {
        if n == 0 {
            // Stall: read connect_to_context, answer nothing.
            recv_json(&mut ws).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        } else {
            accept_connect(&mut ws, json!({"success": true})).await;
            // Swallow add_message; never reply.
            while recv_json(&mut ws).await.is_some() {}
        }
    })
    .await;
    let (calls, provider) = counting_provider();
    let client = Client::builder(url)
        .token_provider(provider)
        .request_timeout(Duration::from_millis(200))
        .invocation_timeout(Duration::from_millis(300))
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let conn = client.connect("ctx").await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the stalled connect was retried"
    );
    let err = conn.ask("anyone?").await.unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { what, .. } if what == "add_message"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_silent_socket_is_detected_by_the_idle_timeout() {
    let (url, _) = peer(|n, mut ws| async move {
        accept_connect(&mut ws, json!({"success": true})).await;
        if n == 0 {
            // Hold the socket open but never read (so never answer pings).
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(ws);
        } else {
            while recv_json(&mut ws).await.is_some() {}
        }
    })
    .await;
    let (calls, provider) = counting_provider();
    let client = Client::builder(url)
        .token_provider(provider)
        .keepalive(
            Some(Duration::from_millis(50)),
            Some(Duration::from_millis(300)),
        )
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let mut conn = client.connect("ctx").await.unwrap();
    let mut reconnected = false;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), conn.next_event()).await {
        if let Event::Connected { .. } = ev {
            if calls.load(Ordering::SeqCst) == 2 {
                reconnected = true;
                break;
            }
        }
    }
    assert!(reconnected);
}

#[tokio::test]
async fn stream_tokens_open_the_socket_on_the_url() {
    let (url, uris) = peer(|_, mut ws| async move {
        let connect = accept_connect(&mut ws, json!({"success": true})).await;
        assert!(connect["params"].get("access_token").is_none());
        while recv_json(&mut ws).await.is_some() {}
    })
    .await;
    let client = Client::builder(url)
        .token_provider(|_ctx: String| async move {
            Ok::<_, std::io::Error>(tokenrelay::Credential::stream_token("pub_tok_abc"))
        })
        .build()
        .unwrap();
    let conn = client.connect("ctx").await.unwrap();
    assert_eq!(uris.lock().unwrap()[0], "/ws?token=pub_tok_abc");
    conn.close().await;
}

#[tokio::test]
async fn a_refused_upgrade_keeps_its_status() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 2048];
            let _ = tcp.read(&mut buf).await;
            let body =
                r#"{"error":"origin not allowed","code":"CLIENT_KEY_MISMATCH","success":false}"#;
            let resp = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(resp.as_bytes()).await;
        }
    });
    let (_, provider) = counting_provider();
    let client = Client::builder(url)
        .token_provider(provider)
        .build()
        .unwrap();
    let err = client.connect("ctx").await.unwrap_err();
    let Error::Forbidden(r) = err else {
        panic!("{err:?}")
    };
    assert_eq!(r.code.as_deref(), Some("CLIENT_KEY_MISMATCH"));
    assert_eq!(r.status, Some(403));
}

#[tokio::test]
async fn a_dead_address_keeps_retrying_until_the_connect_timeout() {
    // Bind and drop to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (calls, provider) = counting_provider();
    let client = Client::builder(format!("ws://127.0.0.1:{port}/ws"))
        .token_provider(provider)
        .reconnect(fast_policy())
        // Retries come every 10-50 ms; the margin is for a loaded CI box,
        // where a 500 ms window once saw a single attempt.
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = client.connect("ctx").await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "each attempt asks for a fresh token"
    );
}

#[tokio::test]
async fn the_builder_refuses_bad_configuration() {
    assert!(matches!(
        Client::builder("http://x/ws")
            .token_provider(counting_provider().1)
            .build(),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        Client::builder("ws://x/ws").build(),
        Err(Error::Config { .. })
    ));
}
