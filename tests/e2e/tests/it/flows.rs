//! The end-to-end suite: the Rust SDK against the real reference server,
//! through the flows and refusals an app meets.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokenrelay::rest::{ContextMessage, NewAgent};
use tokenrelay::ReconnectPolicy;
use tokenrelay::{AdminClient, Client, ConnectionState, Credential, Error, Event, ResponseStatus};
use tokenrelay::{StaticToken, StreamTokenProvider};
use tokenrelay_e2e::{builder, Harness, WAIT};

/// `t0 t1 … t{n-1}`, what `[tokens=n]` replies.
fn numbered(n: usize) -> String {
    (0..n)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends `text`, injects `fault` after `cut` tokens of the reply, and
/// returns the completed response plus the concatenated token events.
async fn ask_with_fault(
    h: &Harness,
    conn: &mut tokenrelay::Connection,
    context_id: &str,
    text: &str,
    cut: usize,
    fault: &str,
) -> (tokenrelay::Response, String) {
    let request = conn.send_message(text).await.unwrap();
    let mut mine = None;
    let mut streamed = String::new();
    let mut tokens = 0;
    loop {
        let event = tokio::time::timeout(WAIT, conn.next_event())
            .await
            .expect("the reply keeps coming")
            .expect("the connection is open");
        match event {
            Event::ResponseStarted {
                response_id,
                request_id,
            } if request_id == Some(request) => mine = Some(response_id),
            Event::Token { response_id, token } if Some(&response_id) == mine.as_ref() => {
                streamed.push_str(&token);
                tokens += 1;
                if tokens == cut {
                    h.fault(context_id, fault).await.unwrap();
                }
            }
            Event::ResponseComplete(r) if r.request_id == Some(request) => return (*r, streamed),
            _ => {}
        }
    }
}

#[tokio::test]
async fn the_two_endpoint_flow_survives_a_drop_with_history_intact() {
    let h = Harness::start().await;
    // Backend, endpoint 1: create the context with the org key.
    let context_id = h.context("", false).await;
    // Browser: get a client key from endpoint 2 (the provider), connect, stream.
    let (builder, fetches) = h.client();
    let client = builder.build().unwrap();
    let mut conn = client.connect(&context_id).await.unwrap();
    let (first, streamed) = ask_with_fault(
        &h,
        &mut conn,
        &context_id,
        "[tokens=30 pace_ms=2] one",
        10,
        "drop",
    )
    .await;
    assert_eq!(first.text, numbered(30));
    assert_eq!(streamed, first.text, "every token exactly once");
    assert!(
        fetches.load(Ordering::SeqCst) >= 2,
        "a fresh key for the reconnect"
    );
    let second = conn.ask("[echo] two").await.unwrap();
    assert_eq!(second.text, "two");
    conn.close().await;

    let context = h.admin.get_context(&context_id).await.unwrap();
    let said: Vec<String> = context
        .messages
        .iter()
        .filter_map(|m| match m {
            ContextMessage::Human { message } | ContextMessage::Ai { message } => {
                Some(message.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        said,
        [
            "[tokens=30 pace_ms=2] one",
            &numbered(30),
            "[echo] two",
            "two"
        ]
    );
}

#[tokio::test]
async fn resume_is_exact_at_every_cut_point() {
    let h = Harness::start().await;
    for cut in [1, 2, 7, 19, 38] {
        for fault in ["drop", "close_1011", "close_4001"] {
            let context_id = h.context("", false).await;
            let (builder, fetches) = h.client();
            let mut conn = builder.build().unwrap().connect(&context_id).await.unwrap();
            let (r, streamed) = ask_with_fault(
                &h,
                &mut conn,
                &context_id,
                "[tokens=40 pace_ms=1] go",
                cut,
                fault,
            )
            .await;
            assert_eq!(r.status, ResponseStatus::Complete, "{fault} at {cut}");
            assert_eq!(r.text, numbered(40), "{fault} at {cut}");
            assert_eq!(streamed, r.text, "{fault} at {cut}: no duplicate, no gap");
            assert!(fetches.load(Ordering::SeqCst) >= 2);
            conn.close().await;
        }
    }
}

/// The next event, or a failure naming `what` was awaited.
async fn next_event(conn: &mut tokenrelay::Connection, what: &str) -> Event {
    tokio::time::timeout(WAIT, conn.next_event())
        .await
        .unwrap_or_else(|_| panic!("no event within {WAIT:?} while waiting for {what}"))
        .unwrap_or_else(|| panic!("the connection ended while waiting for {what}"))
}

#[tokio::test]
async fn a_reply_whose_replay_window_has_passed_is_interrupted() {
    let h = Harness::start_with(builder().configure(|c| c.replay_max_notifications = 4)).await;
    let context_id = h.context("", false).await;
    let (builder, _) = h.client();
    let mut conn = builder.build().unwrap().connect(&context_id).await.unwrap();
    // Paced so the drop below lands long before the reply's last tokens
    // (checked, not assumed: see `before_drop`).
    let request = conn
        .send_message("[tokens=60 pace_ms=20] long")
        .await
        .unwrap();
    // Go "offline" after the first tokens, cut the socket, and stay away
    // until the agent has finished and the buffer has moved past us.
    let mut tokens = 0;
    while tokens < 3 {
        match next_event(&mut conn, "the first tokens").await {
            Event::Token { .. } => tokens += 1,
            Event::ResponseComplete(r) if r.request_id == Some(request) => {
                panic!("the reply ended before its third token: {r:?}")
            }
            _ => {}
        }
    }
    conn.set_network_available(false);
    assert_eq!(h.fault(&context_id, "drop").await.unwrap(), 1);
    // The drop itself, and how much of the reply had arrived before it.
    let before_drop = loop {
        match next_event(&mut conn, "the drop").await {
            Event::Token { .. } => tokens += 1,
            Event::StateChanged(c) if c.state == ConnectionState::Reconnecting => break tokens,
            Event::ResponseComplete(r) if r.request_id == Some(request) => {
                panic!("the reply ended before the drop landed: {r:?}")
            }
            _ => {}
        }
    };
    // The buffer keeps the last 4 of the reply's 61 notifications (60
    // tokens and the stop): resuming must need more than that.
    assert!(
        before_drop + 4 < 60,
        "the drop landed after {before_drop} tokens, inside the replay window"
    );
    // The agent has finished once its reply is in the history (saved after
    // the last notification went out).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let context = h.admin.get_context(&context_id).await.unwrap();
        let finished = context
            .messages
            .iter()
            .any(|m| matches!(m, ContextMessage::Ai { message } if *message == numbered(60)));
        if finished {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent did not finish its reply within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    conn.set_network_available(true);
    let r = loop {
        match next_event(&mut conn, "the end of the reply").await {
            Event::ResponseComplete(r) if r.request_id == Some(request) => break r,
            _ => {}
        }
    };
    assert_eq!(r.status, ResponseStatus::Interrupted);
    assert!(numbered(60).starts_with(&r.text), "a prefix, never a gap");
    assert!(r.text.len() < numbered(60).len());
    // The connection itself is fine.
    assert_eq!(
        conn.ask("[echo] still here").await.unwrap().text,
        "still here"
    );
}

#[tokio::test]
async fn an_open_connection_outlives_its_key() {
    let h = Harness::start().await;
    let context_id = h.context("", false).await;
    let key = h
        .admin
        .generate_client_key(&h.org_id, Some(&context_id), Some(1))
        .await
        .unwrap();
    let client = Client::builder(h.server.ws_url())
        .token_provider(StaticToken(Credential::access_token(key.token)))
        .session_config(|c| c.token_expiry_margin = Duration::ZERO)
        .build()
        .unwrap();
    let conn = client.connect(&context_id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        conn.ask("[echo] after expiry").await.unwrap().text,
        "after expiry"
    );
}

#[tokio::test]
async fn a_key_of_another_org_is_refused_for_good() {
    let h = Harness::start().await;
    let context_id = h.context("", false).await;
    let (other_org, other_key) = h.server.bootstrap_org("other").await.unwrap();
    let other = AdminClient::new(h.server.http_url(), other_key).unwrap();
    let key = other
        .generate_client_key(&other_org, None, None)
        .await
        .unwrap();
    let client = Client::builder(h.server.ws_url())
        .token_provider(StaticToken(Credential::access_token(key.token)))
        .build()
        .unwrap();
    let err = client.connect(&context_id).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
}

#[tokio::test]
async fn a_key_scoped_to_another_context_is_refused() {
    let h = Harness::start().await;
    let mine = h.context("", false).await;
    let other = h.context("", false).await;
    let key = h
        .admin
        .generate_client_key(&h.org_id, Some(&other), None)
        .await
        .unwrap();
    let client = Client::builder(h.server.ws_url())
        .token_provider(StaticToken(Credential::access_token(key.token)))
        .build()
        .unwrap();
    assert!(matches!(
        client.connect(&mine).await,
        Err(Error::Forbidden(_))
    ));
}

#[tokio::test]
async fn an_unknown_context_is_refused_for_good() {
    let h = Harness::start().await;
    let (builder, fetches) = h.client();
    let err = builder
        .build()
        .unwrap()
        .connect("no-such-context")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "no retry");
}

/// A backend whose fresh keys the server never takes (signed with another
/// secret, say): `connect()` fails at once with the refusal, after the
/// first key and one fresh one, against the reference server and against
/// a base-protocol one (the refusal as plain tuple text), and the provider
/// is never asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_key_always_refused_fails_connect_at_once() {
    for base_protocol in [false, true] {
        let h = Harness::start_with(builder().configure(move |c| c.base_protocol = base_protocol))
            .await;
        let ctx = h.context("", false).await;
        let forged = {
            let key = h.client_key(&ctx).await;
            let (head, _) = key.rsplit_once('.').expect("a JWT");
            format!("{head}.AAAA")
        };
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let client = Client::builder(h.server.ws_url())
            .token_provider(move |_ctx: String| {
                counter.fetch_add(1, Ordering::SeqCst);
                let key = forged.clone();
                async move { Ok::<_, Error>(key) }
            })
            .build()
            .unwrap();
        // The default connect timeout is 30 s: the bound only catches a
        // connect that waits for it.
        let err = tokio::time::timeout(Duration::from_secs(10), client.connect(&ctx))
            .await
            .expect("connect settles before its deadline")
            .unwrap_err();
        assert!(matches!(err, Error::Unauthorized(_)), "{err:?}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "the first key and one fresh one (base protocol: {base_protocol})"
        );
        // Nothing retries behind the failed connect: with the server still
        // up, wait past the first retry's envelope (0.5 s by default) and
        // the provider has still been asked twice.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "nothing asks again");
        h.server.shutdown().await;
    }
}

#[tokio::test]
async fn a_client_key_opens_a_socket_and_nothing_else() {
    let h = Harness::start().await;
    let key = h
        .admin
        .generate_client_key(&h.org_id, None, None)
        .await
        .unwrap();
    let as_client = AdminClient::new(h.server.http_url(), key.token).unwrap();
    let err = as_client
        .create_agent(&NewAgent::new("x", "y", "z"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Forbidden(_) | Error::Unauthorized(_)),
        "{err:?}"
    );
    assert!(as_client.list_agents().await.is_err());
}

#[tokio::test]
async fn stream_tokens_open_one_socket_once() {
    let h = Harness::start().await;
    let context_id = h.context("", false).await;
    // The ready-made provider fetches a fresh single-use token per connect.
    let client = Client::builder(h.server.ws_url())
        .token_provider(StreamTokenProvider::new(h.admin.clone()).ttl(30))
        .build()
        .unwrap();
    let conn = client.connect(&context_id).await.unwrap();
    assert_eq!(
        conn.ask("[echo] via stream token").await.unwrap().text,
        "via stream token"
    );
    conn.close().await;

    // One token, two racing sockets: exactly one wins.
    let token = h.admin.stream_token(Some(30)).await.unwrap().token;
    // The loser gives up on its own (the one fresh-token retry a refused
    // key gets, no network retries) rather than at a connect timeout that
    // could fall mid-attempt and report a timeout instead of its refusal.
    let racer = || {
        Client::builder(h.server.ws_url())
            .token_provider(StaticToken(Credential::stream_token(token.clone())))
            .reconnect(ReconnectPolicy::default().with_max_attempts(Some(0)))
            .connect_timeout(WAIT)
            .build()
            .unwrap()
    };
    let (a, b) = (racer(), racer());
    let (ra, rb) = tokio::join!(a.connect(&context_id), b.connect(&context_id));
    let wins = [ra.is_ok(), rb.is_ok()].iter().filter(|w| **w).count();
    assert_eq!(wins, 1, "{ra:?} / {rb:?}");
    let loser = match (ra, rb) {
        (Err(e), _) | (_, Err(e)) => e,
        (Ok(_), Ok(_)) => unreachable!("exactly one won"),
    };
    assert!(matches!(loser, Error::Unauthorized(_)), "{loser:?}");
}

#[tokio::test]
async fn publishable_keys_are_bound_to_their_origins() {
    let h = Harness::start().await;
    let context_id = h.context("", false).await;
    let pk = h
        .admin
        .create_client_key(["https://app.example"])
        .await
        .unwrap()
        .client_key;
    let connect = |origin: &str, with_key: bool| {
        let (mut b, _) = h.client();
        b = b.header("Origin", origin);
        if with_key {
            b = b.client_key(pk.clone());
        }
        let client = b.build().unwrap();
        let ctx = context_id.clone();
        async move { client.connect(ctx).await }
    };
    let ok = connect("https://app.example", true).await.unwrap();
    ok.close().await;
    let err = connect("https://evil.example", true).await.unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden(r) if r.code.as_deref() == Some("CLIENT_KEY_MISMATCH")),
        "{err:?}"
    );
    let err = connect("https://app.example", false).await.unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden(r) if r.code.as_deref() == Some("MISSING_CLIENT_KEY")),
        "{err:?}"
    );
}

/// Refresh-ahead against the real server: the provider answers its first
/// two calls (the connection's key, then the spare fetched once attached)
/// and never again. A reconnect after the server closes the socket must
/// not need it: the spare opens the next socket and the reply resumes
/// whole. Without refresh-ahead the reconnect would wait on the provider
/// forever and this test would time out.
#[tokio::test]
async fn a_reconnect_uses_the_key_fetched_ahead_not_the_provider() {
    let h = Harness::start().await;
    let context_id = h.context("", false).await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (mint, counter) = (
        tokenrelay_e2e::key_minter(h.admin.clone(), h.org_id.clone()),
        calls.clone(),
    );
    let client = Client::builder(h.server.ws_url())
        .token_provider(move |ctx: String| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let key = mint(ctx);
            async move {
                if n >= 2 {
                    // A backend that has stopped answering.
                    std::future::pending::<()>().await;
                }
                key.await
            }
        })
        .build()
        .unwrap();
    let mut conn = client.connect(&context_id).await.unwrap();
    // The spare is fetched in the background once attached.
    wait_for_calls(&calls, 2).await;
    let (r, streamed) =
        ask_with_fault(&h, &mut conn, &context_id, "[tokens=30]", 10, "close_1001").await;
    assert_eq!(r.status, ResponseStatus::Complete);
    assert_eq!(r.text, numbered(30));
    assert_eq!(streamed, r.text, "no duplicate, no gap");
    // Attached again, the session asks for the next spare (which this
    // provider never answers: a further cut would wait on it).
    wait_for_calls(&calls, 3).await;
}

/// Waits (bounded) until the provider has been called `n` times.
async fn wait_for_calls(calls: &std::sync::atomic::AtomicUsize, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while calls.load(Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the provider was called {} times, not {n}",
            calls.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
