//! No message lost, none said twice: the `idempotency` extension against
//! the real server. The socket is cut at every point around an
//! `add_message` (before it is written, while it is on the way, after the
//! server took it and before it answered, mid-reply), many rounds; each
//! time the app gets exactly one complete reply, and the context's history
//! holds each message exactly once.

use std::time::Duration;

use tokenrelay::rest::ContextMessage;
use tokenrelay::ReconnectPolicy;
use tokenrelay::{Connection, ResponseStatus};
use tokenrelay_e2e::{Harness, WAIT};

/// Where the cut falls.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// The server takes the message, then the connection dies before the
    /// answer (`drop_before_answer`): the client cannot know it arrived.
    AfterTheServerTookIt,
    /// The socket is dropped just before the message is sent: it goes into
    /// a dying socket, or waits for the next one.
    JustBefore,
    /// The drop and the send race.
    Racing,
    /// After the reply's first tokens.
    MidReply,
}

async fn ask(conn: &Connection, text: &str) -> tokenrelay::Response {
    tokio::time::timeout(WAIT, conn.ask(text))
        .await
        .expect("a reply in time")
        .expect("exactly one reply, not a failure")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_answered_exactly_once_whatever_the_cut() {
    let h = Harness::start().await;
    let ctx = h.context("", false).await;
    let (builder, _) = h.client();
    let conn = builder
        .reconnect(
            ReconnectPolicy::default()
                .with_min_delay(Duration::from_millis(5))
                .with_max_delay(Duration::from_millis(20))
                .with_stable_after(Duration::ZERO),
        )
        .build()
        .unwrap()
        .connect(&ctx)
        .await
        .unwrap();
    let cuts = [
        Cut::AfterTheServerTookIt,
        Cut::JustBefore,
        Cut::Racing,
        Cut::MidReply,
    ];
    let rounds = 40;
    for round in 0..rounds {
        let cut = cuts[round % cuts.len()];
        let text = format!("m{round}");
        let reply = match cut {
            Cut::AfterTheServerTookIt => {
                let reconnects = conn.stats().reconnects;
                // Armed on the one socket before the hook answers, so
                // this message meets it; a reconnect follows.
                assert_eq!(h.fault(&ctx, "drop_before_answer").await.unwrap(), 1);
                let reply = ask(&conn, &format!("[echo] {text}")).await;
                assert!(
                    conn.stats().reconnects > reconnects,
                    "round {round}: not cut"
                );
                reply
            }
            Cut::JustBefore => {
                h.fault(&ctx, "drop").await.unwrap();
                ask(&conn, &format!("[echo] {text}")).await
            }
            Cut::Racing => {
                let (h2, ctx2) = (h.server.http_url(), ctx.clone());
                let key = h.org_key.clone();
                let fault = tokio::spawn(async move {
                    let _ = reqwest::Client::new()
                        .post(format!("{h2}/debug/faults"))
                        .bearer_auth(key)
                        .json(&serde_json::json!({"context_id": ctx2, "fault": "drop"}))
                        .send()
                        .await;
                });
                let reply = ask(&conn, &format!("[echo] {text}")).await;
                fault.await.unwrap();
                reply
            }
            Cut::MidReply => {
                let conn2 = conn.clone_handle();
                let message = format!("[echo] [pace_ms=5] {text} and more words to stream");
                let asking = tokio::spawn(async move { ask(&conn2, &message).await });
                // A cut while the reply streams (resume heals it).
                tokio::time::sleep(Duration::from_millis(10)).await;
                h.fault(&ctx, "drop").await.unwrap();
                let reply = asking.await.unwrap();
                assert!(reply.text.starts_with(&text), "{cut:?}: {}", reply.text);
                reply
            }
        };
        assert_eq!(
            reply.status,
            ResponseStatus::Complete,
            "{cut:?} round {round}"
        );
        if !matches!(cut, Cut::MidReply) {
            assert_eq!(reply.text, text, "{cut:?} round {round}");
        }
    }
    // The history: every message once, every reply once, in order. The
    // last reply is saved just after its stop went out: wait for it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let history = loop {
        let history = h.admin.get_context(&ctx).await.unwrap().messages;
        let saved = history
            .iter()
            .filter(|m| matches!(m, ContextMessage::Ai { .. }))
            .count();
        if saved >= rounds || tokio::time::Instant::now() > deadline {
            break history;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let humans: Vec<&str> = history
        .iter()
        .filter_map(|m| match m {
            ContextMessage::Human { message } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    let ais = history
        .iter()
        .filter(|m| matches!(m, ContextMessage::Ai { .. }))
        .count();
    assert_eq!(humans.len(), rounds, "{humans:?}");
    for (round, human) in humans.iter().enumerate() {
        assert!(
            human.contains(&format!("m{round}")),
            "round {round}: {human}"
        );
    }
    assert_eq!(ais, rounds);
}

/// A repeat of a key the server remembers runs nothing and names the
/// original response; the window is bounded by count (the oldest key is
/// forgotten first).
#[tokio::test]
async fn the_server_remembers_a_bounded_number_of_keys() {
    use futures_util::{SinkExt, StreamExt};
    use serde_json::{json, Value};
    use tokio_tungstenite::tungstenite::Message;

    let h =
        Harness::start_with(tokenrelay_e2e::builder().configure(|c| c.limits.idempotency_keys = 2))
            .await;
    let ctx = h.context("", false).await;
    let key = h.client_key(&ctx).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(h.server.ws_url())
        .await
        .unwrap();
    let mut call = async |frame: Value| -> Value {
        let id = frame["id"].clone();
        ws.send(Message::text(frame.to_string())).await.unwrap();
        loop {
            let m = tokio::time::timeout(WAIT, ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v.get("method").is_none() && v["id"] == id {
                    return v["result"].clone();
                }
            }
        }
    };
    let attached = call(json!({"id": "c", "method": "connect_to_context",
        "params": {"context_id": ctx, "access_token": key}}))
    .await;
    let caps = attached["server"]["capabilities"].as_array().unwrap();
    assert!(caps.iter().any(|c| c == "idempotency"), "{caps:?}");
    let send = |id: &str, k: &str| {
        json!({"id": id, "method": "add_message", "params": {"message": "[echo] hi"},
            "idempotency_key": k})
    };
    let first = call(send("1", "k1")).await;
    assert!(first.get("repeated").is_none(), "{first}");
    let repeat = call(send("2", "k1")).await;
    assert_eq!(repeat["repeated"], true);
    assert_eq!(repeat["response_id"], first["response_id"]);
    // Two more keys push k1 out of a window of 2: it runs again.
    call(send("3", "k2")).await;
    call(send("4", "k3")).await;
    let forgotten = call(send("5", "k1")).await;
    assert!(forgotten.get("repeated").is_none(), "{forgotten}");
    assert_ne!(forgotten["response_id"], first["response_id"]);
    // A key too long is refused.
    let long = call(send("6", &"x".repeat(129))).await;
    assert_eq!(long["success"], false, "{long}");
    assert_eq!(long["code"], "invalid_params");
}
