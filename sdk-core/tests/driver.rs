//! The tokio driver against a small fault-injecting WebSocket peer: it drops
//! mid-stream, stalls, refuses and sends garbage, scripted per connection.
//!
//! The peer never asserts: a panic in its task would only show as a hang or
//! as nothing at all. Every frame it reads goes back to the test body first
//! (see [`Peer`]), and the assertions run there. Nothing here asserts that
//! something happened within a window of wall-clock time: every wait is for
//! the thing itself, bounded by [`WAIT`] so a bug fails instead of hanging.

// tungstenite's handshake callback type fixes its (large) error type.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use tokenrelay::ReconnectPolicy;
use tokenrelay::{Client, Connection, ConnectionState, Error, Event, ResponseStatus};

type Ws = WebSocketStream<TcpStream>;

/// Upper bound of any single wait: generous, only there so a bug fails a
/// test in seconds instead of hanging it.
const WAIT: Duration = Duration::from_secs(15);

/// One accepted connection of the fake peer: the `n`-th (0-based). Every
/// frame read through [`recv_json`] is reported to the test body before the
/// script sees it, so whatever the client got an answer to is already
/// reported by the time the client acts on that answer.
struct PeerWs {
    n: usize,
    ws: Ws,
    seen: mpsc::UnboundedSender<(usize, Value)>,
}

impl Deref for PeerWs {
    type Target = Ws;
    fn deref(&self) -> &Ws {
        &self.ws
    }
}

impl DerefMut for PeerWs {
    fn deref_mut(&mut self) -> &mut Ws {
        &mut self.ws
    }
}

/// The fake peer, as the test body sees it.
struct Peer {
    url: String,
    /// The URI of every upgrade request, in order (recorded before the
    /// upgrade is answered).
    uris: Arc<Mutex<Vec<String>>>,
    reports: mpsc::UnboundedReceiver<(usize, Value)>,
    /// Frames reported so far, per connection, in order.
    seen: BTreeMap<usize, Vec<Value>>,
}

impl Peer {
    fn collect(&mut self) {
        while let Ok((n, frame)) = self.reports.try_recv() {
            self.seen.entry(n).or_default().push(frame);
        }
    }

    /// Every frame the peer has read so far, per connection.
    fn seen(&mut self) -> &BTreeMap<usize, Vec<Value>> {
        self.collect();
        &self.seen
    }

    /// The first frame of every connection that sent one, each checked to
    /// be `connect_to_context` (what the peer answers as one).
    fn connects(&mut self) -> BTreeMap<usize, Value> {
        self.seen()
            .iter()
            .map(|(n, frames)| {
                let first = &frames[0];
                assert_eq!(
                    first["method"], "connect_to_context",
                    "connection {n} began with {first}"
                );
                (*n, first.clone())
            })
            .collect()
    }

    /// Waits until the peer has read a frame for which `pred(connection,
    /// frame)` holds, and returns that frame.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(usize, &Value) -> bool) -> Value {
        self.collect();
        let found = self
            .seen
            .iter()
            .find_map(|(n, frames)| frames.iter().find(|f| pred(*n, f)));
        if let Some(frame) = found {
            return frame.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let report = tokio::time::timeout_at(deadline, self.reports.recv()).await;
            let Ok(Some((n, frame))) = report else {
                panic!(
                    "the peer never read {what} (within {WAIT:?}): {:?}",
                    self.seen
                );
            };
            self.seen.entry(n).or_default().push(frame.clone());
            if pred(n, &frame) {
                return frame;
            }
        }
    }
}

/// Accepts connections on 127.0.0.1:0 and hands the n-th (0-based) to
/// `script`, recording each upgrade request's URI.
async fn peer<F, Fut>(script: F) -> Peer
where
    F: Fn(usize, PeerWs) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let uris = Arc::new(Mutex::new(Vec::new()));
    let seen = uris.clone();
    let (reports_tx, reports) = mpsc::unbounded_channel();
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
            let ws = PeerWs {
                n,
                ws,
                seen: reports_tx.clone(),
            };
            tokio::spawn(script(n, ws));
            n += 1;
        }
    });
    Peer {
        url,
        uris,
        reports,
        seen: BTreeMap::new(),
    }
}

/// The next text frame, reported to the test body first (a frame that is
/// not JSON is reported as a string and read as `None`).
async fn recv_json(ws: &mut PeerWs) -> Option<Value> {
    loop {
        match ws.ws.next().await? {
            Ok(Message::Text(t)) => {
                let parsed = serde_json::from_str::<Value>(t.as_str());
                let report = match &parsed {
                    Ok(v) => v.clone(),
                    Err(_) => Value::String(t.as_str().to_owned()),
                };
                let _ = ws.seen.send((ws.n, report));
                return parsed.ok();
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

async fn send(ws: &mut PeerWs, v: Value) {
    let _ = ws.send(Message::text(v.to_string())).await;
}

/// Reads the client's first frame and answers it with `result`; `None` when
/// the socket ended first. The test body checks that the frame was
/// `connect_to_context` ([`Peer::connects`]).
async fn accept_connect(ws: &mut PeerWs, result: Value) -> Option<Value> {
    let req = recv_json(ws).await?;
    send(ws, json!({"id": req["id"], "result": result})).await;
    Some(req)
}

/// The next event for which `pred` holds, skipping the others.
async fn event_where(conn: &mut Connection, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, conn.next_event()).await {
            Ok(Some(ev)) if pred(&ev) => return ev,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the connection ended before {what}"),
            Err(_) => panic!("no {what} within {WAIT:?}"),
        }
    }
}

/// Waits until the connection's driver task has ended. The driver holds the
/// client's token provider, which holds `calls`: once the `Client` is
/// dropped too, only the test holds `calls`.
async fn driver_gone(calls: &Arc<AtomicUsize>) {
    let deadline = Instant::now() + WAIT;
    while Arc::strong_count(calls) > 1 {
        assert!(
            Instant::now() < deadline,
            "the connection's driver still runs after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
    ReconnectPolicy::default()
        .with_min_delay(Duration::from_millis(10))
        .with_max_delay(Duration::from_millis(50))
}

const WORDS: [&str; 5] = ["Hello", ", ", "wor", "ld", "!"];

#[tokio::test]
async fn a_drop_mid_stream_reconnects_with_a_fresh_key_and_resumes() {
    let mut p = peer(|n, mut ws| async move {
        if accept_connect(&mut ws, caps()).await.is_none() {
            return;
        }
        if n == 0 {
            let Some(message) = recv_json(&mut ws).await else {
                return;
            };
            // Answered at once, as the reference server does.
            send(&mut ws, json!({"id": message["id"], "result": {"success": true, "response_id": "r1"}})).await;
            for (i, w) in WORDS[..3].iter().enumerate() {
                send(&mut ws, tok(w, i as u64 + 1)).await;
            }
            drop(ws); // the TCP connection just vanishes
        } else {
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
    let client = Client::builder(&p.url)
        .token_provider(provider)
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let mut conn = client.connect("ctx").await.unwrap();
    let reply = conn.ask("hi").await.unwrap();
    assert_eq!(reply.text, WORDS.concat());
    assert_eq!(reply.status, ResponseStatus::Complete);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // What the peer read, each frame before it answered it.
    let connects = p.connects();
    assert_eq!(connects.len(), 2, "{:?}", p.seen());
    assert_eq!(connects[&0]["params"]["access_token"], "key-0-ctx");
    assert_eq!(p.seen()[&0][1]["method"], "add_message");
    assert_eq!(p.seen()[&0][1]["params"]["message"], "hi");
    assert_eq!(connects[&1]["params"]["access_token"], "key-1-ctx");
    assert_eq!(connects[&1]["params"]["resume_after_seq"], 3);
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
    let mut p = peer(|n, mut ws| async move {
        if accept_connect(&mut ws, json!({"success": true})).await.is_none() {
            return;
        }
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
    let client = Client::builder(&p.url)
        .token_provider(provider)
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let conn = client.connect("ctx").await.unwrap();
    let reply = conn.ask("hi").await.unwrap();
    assert_eq!(reply.status, ResponseStatus::Interrupted);
    assert_eq!(reply.text, "Hel");
    assert!(!p.connects().is_empty());
    assert_eq!(p.seen()[&0][1]["method"], "add_message");
}

#[tokio::test]
async fn garbage_is_reported_and_the_reply_still_completes() {
    let mut p = peer(|_, mut ws| async move {
        if accept_connect(&mut ws, json!({"success": true}))
            .await
            .is_none()
        {
            return;
        }
        let Some(msg) = recv_json(&mut ws).await else {
            return;
        };
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
    let client = Client::builder(&p.url)
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
            Event::Error(e) => errors.push(e.kind().as_str()),
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
    assert_eq!(p.connects().len(), 1);
}

#[tokio::test]
async fn forbidden_fails_connect_and_never_retries() {
    let mut p = peer(|_, mut ws| async move {
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
    let client = Client::builder(&p.url)
        .token_provider(provider)
        .build()
        .unwrap();
    let err = client.connect("ctx").await.unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden(r) if r.status == Some(403)),
        "{err:?}"
    );
    // Not "no retry within some window": the connection's driver has ended,
    // so no retry can ever come.
    drop(client);
    driver_gone(&calls).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(p.uris.lock().unwrap().len(), 1);
    assert_eq!(p.connects().len(), 1);
}

#[tokio::test]
async fn an_expired_key_is_replaced_once_without_backoff() {
    let mut p = peer(|n, mut ws| async move {
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
    let client = Client::builder(&p.url)
        .token_provider(provider)
        .build()
        .unwrap();
    let conn = client.connect("ctx").await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(conn.state().state, ConnectionState::Connected);
    let connects = p.connects();
    assert_eq!(connects.len(), 2);
    assert_eq!(connects[&0]["params"]["access_token"], "key-0-ctx");
    assert_eq!(connects[&1]["params"]["access_token"], "key-1-ctx");
}

#[tokio::test]
async fn a_peer_that_never_answers_times_out() {
    let mut p = peer(|n, mut ws| async move {
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
    let client = Client::builder(&p.url)
        .token_provider(provider)
        .request_timeout(Duration::from_millis(200))
        .invocation_timeout(Duration::from_millis(300))
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let conn = client.connect("ctx").await.unwrap();
    // Connected, so no attempt is under way: every attempt so far fetched
    // a key and opened a socket. Usually that is the stall and one retry;
    // a machine too slow to hear a prompt answer within 200 ms times out a
    // later attempt too, which is still retrying correctly.
    let attempts = p.uris.lock().unwrap().len();
    assert!(attempts >= 2, "the stalled connect was retried");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        attempts,
        "a fresh key for every attempt"
    );
    let stalled = p.wait_for("the stalled connect", |n, _| n == 0).await;
    assert_eq!(stalled["method"], "connect_to_context");
    assert_eq!(stalled["params"]["access_token"], "key-0-ctx");
    // The attempt that succeeded was answered, so it has been reported.
    let last = p.connects()[&(attempts - 1)].clone();
    assert_eq!(
        last["params"]["access_token"],
        format!("key-{}-ctx", attempts - 1)
    );
    let err = conn.ask("anyone?").await.unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { what, after } if what == "add_message"
            && *after == Duration::from_millis(300)),
        "{err:?}"
    );
    // The message did reach the peer: it is the answer that never came.
    p.wait_for("add_message", |_, f| {
        f["method"] == "add_message" && f["params"]["message"] == "anyone?"
    })
    .await;
}

#[tokio::test]
async fn a_silent_socket_is_detected_by_the_idle_timeout() {
    // Sockets stay silent until the test has seen one dropped for it: then
    // even an attempt that went idle before it connected (a slow machine)
    // is followed by a connected one that does.
    let silent = Arc::new(AtomicBool::new(true));
    let s = silent.clone();
    let mut p = peer(move |_, mut ws| {
        let silent = s.clone();
        async move {
            if accept_connect(&mut ws, json!({"success": true}))
                .await
                .is_none()
            {
                return;
            }
            if silent.load(Ordering::SeqCst) {
                // Hold the socket open but never read (so never answer pings).
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(ws);
            } else {
                while recv_json(&mut ws).await.is_some() {}
            }
        }
    })
    .await;
    let (_, provider) = counting_provider();
    let client = Client::builder(&p.url)
        .token_provider(provider)
        .keepalive(
            Some(Duration::from_millis(50)),
            Some(Duration::from_millis(300)),
        )
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let mut conn = client.connect("ctx").await.unwrap();
    event_where(&mut conn, "connected event", |ev| {
        matches!(ev, Event::Connected { .. })
    })
    .await;
    let Event::StateChanged(change) = event_where(
        &mut conn,
        "drop of the silent socket",
        |ev| matches!(ev, Event::StateChanged(c) if c.state == ConnectionState::Reconnecting),
    )
    .await
    else {
        unreachable!()
    };
    assert!(
        matches!(&change.cause, Some(Error::Timeout { what, after })
            if what == "any sign of life from the server"
                && *after == Duration::from_millis(300)),
        "{change:?}"
    );
    silent.store(false, Ordering::SeqCst);
    event_where(&mut conn, "reconnection", |ev| {
        matches!(ev, Event::Connected { .. })
    })
    .await;
    assert!(p.connects().len() >= 2);
}

#[tokio::test]
async fn stream_tokens_open_the_socket_on_the_url() {
    let mut p = peer(|_, mut ws| async move {
        accept_connect(&mut ws, json!({"success": true})).await;
        while recv_json(&mut ws).await.is_some() {}
    })
    .await;
    let client = Client::builder(&p.url)
        .token_provider(|_ctx: String| async move {
            Ok::<_, std::io::Error>(tokenrelay::Credential::stream_token("pub_tok_abc"))
        })
        .build()
        .unwrap();
    let conn = client.connect("ctx").await.unwrap();
    assert_eq!(p.uris.lock().unwrap()[0], "/ws?token=pub_tok_abc");
    let connect = &p.connects()[&0];
    assert!(connect["params"].get("access_token").is_none(), "{connect}");
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

/// A port nobody listens on (bound, then released).
async fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_dead_address_keeps_retrying_until_the_connect_timeout() {
    let port = dead_port().await;
    let (calls, provider) = counting_provider();
    let client = Client::builder(format!("ws://127.0.0.1:{port}/ws"))
        .token_provider(provider)
        // The first retry is immediate, the next one waits up to an hour.
        // So the connect timeout falls while the session waits with the
        // refusal as its cause, never in the middle of an attempt (whose
        // state carries no cause yet), however loaded the machine: only two
        // refused loopback connects must fit in it. (With retries every
        // 10-50 ms the deadline could land mid-attempt and report
        // `Timeout { what: "the first connection" }` instead.)
        .reconnect(
            ReconnectPolicy::default()
                .with_min_delay(Duration::from_secs(3600))
                .with_max_delay(Duration::from_secs(3600)),
        )
        .connect_timeout(Duration::from_secs(3))
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
async fn a_connect_timeout_mid_attempt_reports_the_earlier_failure() {
    // Attempt 1 is refused (dead port); the provider never answers attempt
    // 2, so the deadline lands while the state carries no cause. The error
    // is still why the first attempt failed, not a bare timeout.
    let port = dead_port().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let provider = move |ctx: String| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n > 0 {
                std::future::pending::<()>().await;
            }
            Ok::<_, std::io::Error>(format!("key-{n}-{ctx}"))
        }
    };
    let client = Client::builder(format!("ws://127.0.0.1:{port}/ws"))
        .token_provider(provider)
        .reconnect(fast_policy())
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let err = client.connect("ctx").await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the second attempt was under way"
    );
}

#[tokio::test]
async fn a_dead_address_fails_with_its_cause_once_the_attempts_run_out() {
    let port = dead_port().await;
    let (calls, provider) = counting_provider();
    let client = Client::builder(format!("ws://127.0.0.1:{port}/ws"))
        .token_provider(provider)
        .reconnect(fast_policy().with_max_attempts(Some(3)))
        // Only a bound: the attempts run out long before.
        .connect_timeout(WAIT)
        .build()
        .unwrap();
    let err = client.connect("ctx").await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "the first attempt and three retries, each with a fresh token"
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
