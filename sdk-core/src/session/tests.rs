//! The session driven through scripted frames and a fake clock.

use crate::prelude::*;

use core::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::error::Rejection;
use crate::event::ResponseStatus;
use crate::token::test_jwt;

const UNIX_NOW: u64 = 1_700_000_000;

/// Drives a session the way a driver would, recording what it asks for.
struct Harness {
    s: Session,
    now: Timestamp,
    events: Vec<Event>,
    sent: Vec<Value>,
    actions: Vec<Action>,
}

impl Harness {
    /// Refresh-ahead off: these tests count the provider's calls one
    /// connection at a time; `refresh_ahead_*` tests turn it on.
    fn new() -> Self {
        let mut config = SessionConfig::new("ws://relay.test/ws");
        config.refresh_ahead = false;
        Self::with(config)
    }

    /// Default settings (refresh-ahead on), no keepalive: these tests move
    /// the clock by minutes on a quiet socket.
    fn refreshing() -> Self {
        let mut config = SessionConfig::new("ws://relay.test/ws");
        config.ping_interval = None;
        config.idle_timeout = None;
        Self::with(config)
    }

    /// The ids of the token fetches asked for since the last look.
    fn fetches(&mut self) -> Vec<u64> {
        self.take_actions()
            .into_iter()
            .filter_map(|a| match a {
                Action::FetchToken { fetch_id, .. } => Some(fetch_id),
                _ => None,
            })
            .collect()
    }

    fn with(config: SessionConfig) -> Self {
        Harness {
            s: Session::new("ctx", config, 42),
            now: Timestamp::from_millis(1_000),
            events: Vec::new(),
            sent: Vec::new(),
            actions: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
        while let Some(t) = self.s.poll_transmit() {
            self.sent
                .push(serde_json::from_str(&t).expect("the session sends JSON"));
        }
        while let Some(a) = self.s.poll_action() {
            self.actions.push(a);
        }
    }

    fn take_events(&mut self) -> Vec<Event> {
        self.drain();
        core::mem::take(&mut self.events)
    }

    fn take_sent(&mut self) -> Vec<Value> {
        self.drain();
        core::mem::take(&mut self.sent)
    }

    fn take_actions(&mut self) -> Vec<Action> {
        self.drain();
        core::mem::take(&mut self.actions)
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.s.handle_timeout(self.now);
    }

    /// Runs time forward until the session asks for a token; returns its id.
    fn until_fetch(&mut self) -> u64 {
        for _ in 0..10_000 {
            if let Some(id) = self.take_actions().into_iter().find_map(|a| match a {
                Action::FetchToken { fetch_id, .. } => Some(fetch_id),
                _ => None,
            }) {
                return id;
            }
            let next = self
                .s
                .poll_timeout()
                .expect("a waiting session has a deadline");
            self.advance(next.saturating_since(self.now));
        }
        panic!("the session never asked for a token");
    }

    fn give_token(&mut self, fetch: u64, token: &str) {
        self.s.handle_token(
            fetch,
            Ok(Credential::access_token(token)),
            self.now,
            UNIX_NOW,
        );
    }

    /// Token, socket open; returns the connect_to_context request.
    fn open(&mut self) -> Value {
        let fetch = self.until_fetch();
        self.give_token(fetch, &test_jwt(UNIX_NOW + 120));
        assert!(self
            .take_actions()
            .iter()
            .any(|a| matches!(a, Action::OpenSocket { .. })));
        self.s.handle_transport_open(self.now);
        // Earlier frames (sent on the socket that dropped) are discarded.
        let sent = self.take_sent();
        let connect = sent.last().expect("connect_to_context is sent on open");
        assert_eq!(connect["method"], "connect_to_context");
        connect.clone()
    }

    fn answer(&mut self, request: &Value, result: Value) {
        let frame = json!({"id": request["id"], "result": result}).to_string();
        self.s.handle_frame(&frame, self.now);
    }

    /// Connects with the given server capabilities (none: a base server).
    fn connect(&mut self, caps: &[&str]) -> Value {
        if matches!(self.s.state().state, ConnectionState::Idle) {
            self.s.start(self.now);
        }
        let req = self.open();
        let mut result = json!({"success": true, "agent_speaks_first": false,
            "agent": {"agent_id": "a1", "agent_name": "Ada"}});
        if !caps.is_empty() {
            result["server"] = json!({"name": "t", "version": "1", "capabilities": caps});
        }
        if caps.contains(&"seq") {
            result["seq"] = json!(0);
        }
        self.answer(&req, result);
        assert!(self.s.state().is_connected(), "{:?}", self.take_events());
        req
    }

    fn frame(&mut self, text: &str) {
        self.s.handle_frame(text, self.now);
    }

    fn drop_socket(&mut self, code: Option<u16>) {
        self.s.handle_transport_closed(code, "", self.now);
    }
}

fn token(r: &str, t: &str, seq: Option<u64>) -> String {
    let mut p = json!({"token": t, "response_id": r});
    if let Some(s) = seq {
        p["seq"] = s.into();
    }
    json!({"method": "on_token", "params": p}).to_string()
}

fn stop(r: &str, seq: Option<u64>) -> String {
    let mut p = json!({"response_id": r});
    if let Some(s) = seq {
        p["seq"] = s.into();
    }
    json!({"method": "on_stop_token", "params": p}).to_string()
}

fn completed(events: &[Event]) -> Vec<Response> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ResponseComplete(r) => Some((**r).clone()),
            _ => None,
        })
        .collect()
}

fn states(events: &[Event]) -> Vec<ConnectionState> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged(c) => Some(c.state),
            _ => None,
        })
        .collect()
}

fn failed(events: &[Event]) -> Vec<(RequestId, Error)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::RequestFailed { request_id, error } => Some((*request_id, error.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn connects_and_reports_each_state() {
    let mut h = Harness::new();
    let req = h.connect(&[]);
    assert_eq!(req["params"]["context_id"], "ctx");
    assert!(req["params"].get("resume_after_seq").is_none());
    let ev = h.take_events();
    assert_eq!(
        states(&ev),
        [
            ConnectionState::FetchingToken,
            ConnectionState::Connecting,
            ConnectionState::Authenticating,
            ConnectionState::Connected
        ]
    );
    assert!(ev.iter().any(
        |e| matches!(e, Event::Connected { agent: Some(a), resumed: false, .. } if a.agent_name == "Ada")
    ));
}

#[test]
fn every_notification_type_reaches_the_app() {
    let mut h = Harness::new();
    h.connect(&[]);
    let id = h.s.send_message("hi", h.now).unwrap();
    let sent = h.take_sent();
    assert_eq!(sent[0]["method"], "add_message");
    assert_eq!(sent[0]["params"]["message"], "hi");
    assert_eq!(sent[0]["id"], id.to_string());
    h.take_events();
    for f in [
        token("r", "Hel", None),
        json!({"method":"on_tool_call","params":{"tool_call_id":"t","tool_name":"search","tool_input":{"q":1}}}).to_string(),
        json!({"method":"on_tool_response","params":{"tool_call_id":"t","tool_name":"search","tool_output":"ok"}}).to_string(),
        json!({"method":"on_client_side_tool_calls","params":{"tool_calls":[{"tool_call_id":"c1","tool_name":"gps"}],"response_id":"r"}}).to_string(),
        token("r", "lo", None),
        stop("r", None),
        json!({"method":"on_events","params":{"events":[{"type":"x","data":1}],"response_id":"r"}}).to_string(),
        json!({"method":"on_future_thing","params":{"a":1}}).to_string(),
    ] {
        h.frame(&f);
    }
    h.answer(&json!({"id": id.to_string()}), json!({"success": true}));
    let ev = h.take_events();
    let kinds: Vec<&str> = ev
        .iter()
        .map(|e| match e {
            Event::ResponseStarted { .. } => "started",
            Event::Token { .. } => "token",
            Event::ToolCall { .. } => "tool_call",
            Event::ToolResponse { .. } => "tool_response",
            Event::ClientSideToolCalls { .. } => "client_tools",
            Event::ResponseComplete(_) => "complete",
            Event::Events { .. } => "events",
            Event::Unknown { .. } => "unknown",
            Event::RequestAcknowledged { .. } => "ack",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "started",
            "token",
            "tool_call",
            "tool_response",
            "client_tools",
            "token",
            // The server answers after the stream: the reply completes at
            // the answer, with what trailed its stop.
            "events",
            "unknown",
            "complete",
            "ack"
        ]
    );
    let r = h.s.response("r").unwrap();
    assert_eq!(r.text, "Hello");
    assert_eq!(r.request_id, Some(id));
    assert_eq!(r.status, ResponseStatus::Complete);
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_responses.len(), 1);
    assert_eq!(r.client_side_tool_calls.len(), 1);
    assert_eq!(r.events.len(), 1);
    // The hosted server's late add_message result settles the request; no
    // timeout fires afterwards.
    h.advance(Duration::from_secs(600));
    assert!(failed(&h.take_events()).is_empty());
}

#[test]
fn interleaved_responses_bind_to_their_requests_in_order() {
    let mut h = Harness::new();
    h.connect(&[]);
    let a = h.s.send_message("one", h.now).unwrap();
    let b = h.s.send_message("two", h.now).unwrap();
    for f in [
        token("x", "1a", None),
        token("y", "2a", None),
        token("x", "1b", None),
        token("y", "2b", None),
        stop("y", None),
        stop("x", None),
    ] {
        h.frame(&f);
    }
    // Answered after the stream, as the hosted server does.
    h.answer(&json!({"id": b.to_string()}), Value::Null);
    h.answer(&json!({"id": a.to_string()}), Value::Null);
    let done = completed(&h.take_events());
    assert_eq!(done[0].text, "2a2b");
    assert_eq!(done[0].request_id, Some(b));
    assert_eq!(done[1].text, "1a1b");
    assert_eq!(done[1].request_id, Some(a));
}

#[test]
fn messages_sent_while_disconnected_are_queued_and_flushed() {
    let mut h = Harness::new();
    h.s.start(h.now);
    let id = h.s.send_message("early", h.now).unwrap();
    assert!(h.take_sent().is_empty());
    h.open();
    let connect = json!({"id": "2"});
    // The connect request took the next id after the queued message.
    h.answer(&connect, json!({"success": true}));
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["params"]["message"], "early");
    assert_eq!(sent[0]["id"], id.to_string());
}

/// A scripted conversation of one reply: its frames carry seq 1..=n.
fn scripted_reply(words: &[&str]) -> Vec<String> {
    let mut frames: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| token("reply", w, Some(i as u64 + 1)))
        .collect();
    frames.push(stop("reply", Some(words.len() as u64 + 1)));
    frames
}

const WORDS: [&str; 6] = ["The ", "quick ", "brown ", "fox ", "jumps", "."];

#[test]
fn a_drop_after_every_frame_resumes_to_the_exact_text_once() {
    let caps = ["seq", "resume", "error_codes", "stop_reason"];
    let frames = scripted_reply(&WORDS);
    for cut in 0..=frames.len() {
        let mut h = Harness::new();
        h.connect(&caps);
        let id = h.s.send_message("go", h.now).unwrap();
        // Answered at once, as the reference server does.
        h.answer(
            &json!({"id": id.to_string()}),
            json!({"success": true, "response_id": "reply"}),
        );
        for f in &frames[..cut] {
            h.frame(f);
        }
        h.drop_socket(Some(1006));
        let req = h.open();
        assert_eq!(
            req["params"]
                .get("resume_after_seq")
                .and_then(Value::as_u64),
            Some(cut as u64),
            "cut at {cut}"
        );
        h.answer(
            &req,
            json!({"success": true, "resumed": true,
            "server": {"name": "t", "version": "1", "capabilities": caps}}),
        );
        // The server replays from the requested point; throw in a few
        // duplicates from before it as a sloppy server might.
        for f in &frames[cut.saturating_sub(2)..] {
            h.frame(f);
        }
        let ev = h.take_events();
        let done = completed(&ev);
        assert_eq!(done.len(), 1, "cut at {cut}: {ev:?}");
        assert_eq!(done[0].text, WORDS.concat(), "cut at {cut}");
        assert_eq!(done[0].status, ResponseStatus::Complete);
        assert_eq!(done[0].request_id, Some(id));
        assert!(failed(&ev).is_empty(), "cut at {cut}");
    }
}

#[test]
fn stats_count_a_resumed_drop_and_a_cut_one() {
    let caps = ["seq", "resume", "error_codes", "stop_reason"];
    let frames = scripted_reply(&WORDS);
    let mut h = Harness::new();
    h.connect(&caps);
    h.s.send_message("go", h.now).unwrap();
    for f in &frames[..2] {
        h.frame(f);
    }
    h.drop_socket(Some(1006));
    let req = h.open();
    // The context stood at the last frame's seq when the socket attached:
    // the server replays everything above the two applied.
    h.answer(
        &req,
        json!({"success": true, "resumed": true, "seq": frames.len(),
        "server": {"name": "t", "version": "1", "capabilities": caps}}),
    );
    // One duplicate from before the resume point, then the replay.
    for f in &frames[1..] {
        h.frame(f);
    }
    let st = h.s.stats();
    assert_eq!(
        (st.connects, st.reconnects, st.resumes, st.replayed),
        (2, 1, 1, frames.len() as u64 - 2)
    );
    assert_eq!(st.tokens, WORDS.len() as u64, "{st:?}");
    assert_eq!(st.duplicates, 1);
    assert_eq!(st.interrupted, 0);
    assert_eq!(st.token_fetches, 2);
    // Two connect results, two frames, then the replay from frames[1].
    assert_eq!(st.frames_received, 2 + 2 + (frames.len() as u64 - 1));
    let replies = frames.iter().map(String::len).sum::<usize>() + frames[1].len();
    assert!(st.bytes_received > replies as u64, "{st:?}");

    // A drop the server cannot heal cuts the next reply.
    h.s.send_message("again", h.now).unwrap();
    h.frame(&token("second", "x", Some(frames.len() as u64 + 1)));
    h.drop_socket(Some(1006));
    let req = h.open();
    h.answer(
        &req,
        json!({"success": true, "resumed": false,
        "server": {"name": "t", "version": "1", "capabilities": caps}}),
    );
    let st = h.s.stats();
    assert_eq!((st.reconnects, st.resumes, st.interrupted), (2, 1, 1));
    assert_eq!(st.tokens, WORDS.len() as u64 + 1);
}

#[test]
fn a_drop_without_resume_marks_the_response_interrupted() {
    let frames: Vec<String> = WORDS.iter().map(|w| token("reply", w, None)).collect();
    for cut in 1..frames.len() {
        let mut h = Harness::new();
        h.connect(&[]);
        let id = h.s.send_message("go", h.now).unwrap();
        for f in &frames[..cut] {
            h.frame(f);
        }
        h.take_events();
        h.drop_socket(Some(1001));
        let ev = h.take_events();
        let done = completed(&ev);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].status, ResponseStatus::Interrupted);
        assert_eq!(done[0].text, WORDS[..cut].concat());
        let f = failed(&ev);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, id);
        assert!(matches!(
            f[0].1,
            Error::ConnectionLost {
                code: Some(1001),
                ..
            }
        ));
        // Late tokens of the cut response are never appended.
        h.connect(&[]);
        h.frame(&frames[cut]);
        assert_eq!(h.s.response("reply").unwrap().text, WORDS[..cut].concat());
    }
}

#[test]
fn a_message_lost_with_the_socket_fails_soon_and_one_that_arrived_completes() {
    let caps = ["seq", "resume"];
    for reached_server in [false, true] {
        let mut h = Harness::new();
        h.connect(&caps);
        // This server acknowledges invocations as it takes them.
        let first = h.s.send_message("hi", h.now).unwrap();
        let sent = h.take_sent();
        h.answer(&sent[0], json!({"success": true, "response_id": "r0"}));
        h.frame(&token("r0", "hello", Some(1)));
        h.frame(&stop("r0", Some(2)));
        assert_eq!(h.s.response("r0").unwrap().request_id, Some(first));
        let id = h.s.send_message("go", h.now).unwrap();
        h.drop_socket(None); // before any result or token
        let req = h.open();
        h.answer(
            &req,
            json!({"success": true, "resumed": true,
            "server": {"name": "t", "version": "1", "capabilities": caps}}),
        );
        if reached_server {
            h.frame(&token("r", "late but whole", Some(3)));
            h.frame(&stop("r", Some(4)));
        }
        h.take_events();
        h.advance(Duration::from_secs(15));
        let f = failed(&h.take_events());
        if reached_server {
            assert!(f.is_empty(), "{f:?}");
            assert_eq!(h.s.response("r").unwrap().request_id, Some(id));
        } else {
            assert_eq!(f.len(), 1);
            assert!(
                matches!(&f[0].1, Error::ConnectionLost { reason, .. } if reason.contains("never confirmed"))
            );
        }
    }
}

#[test]
fn a_server_that_acknowledges_late_is_given_the_full_inactivity_timeout() {
    let caps = ["seq", "resume"];
    let mut h = Harness::new();
    h.connect(&caps);
    h.s.send_message("go", h.now).unwrap();
    h.drop_socket(None);
    let req = h.open();
    h.answer(
        &req,
        json!({"success": true, "resumed": true,
        "server": {"name": "t", "version": "1", "capabilities": caps}}),
    );
    h.take_events();
    // Well past the request timeout: no acknowledgement was ever seen from
    // this server, so silence proves nothing yet (pings keep it alive).
    for _ in 0..6 {
        h.advance(Duration::from_secs(10));
        h.s.handle_pong(h.now);
    }
    assert!(failed(&h.take_events()).is_empty());
}

#[test]
fn a_resume_the_server_cannot_honour_interrupts() {
    let caps = ["seq", "resume"];
    let mut h = Harness::new();
    h.connect(&caps);
    h.s.send_message("go", h.now).unwrap();
    h.frame(&token("reply", "part", Some(1)));
    h.drop_socket(None);
    h.take_events();
    let req = h.open();
    assert_eq!(req["params"]["resume_after_seq"], 1);
    h.answer(
        &req,
        json!({"success": true, "resumed": false,
        "server": {"name": "t", "version": "1", "capabilities": caps}}),
    );
    let ev = h.take_events();
    assert_eq!(completed(&ev)[0].status, ResponseStatus::Interrupted);
    assert_eq!(failed(&ev).len(), 1);
}

#[test]
fn the_connect_seq_lets_a_silent_client_resume() {
    let caps = ["seq", "resume"];
    let mut h = Harness::new();
    h.s.start(h.now);
    let req = h.open();
    h.answer(
        &req,
        json!({"success": true, "seq": 40,
        "server": {"name": "t", "version": "1", "capabilities": caps}}),
    );
    h.s.send_message("go", h.now).unwrap();
    h.drop_socket(None);
    let req = h.open();
    assert_eq!(req["params"]["resume_after_seq"], 40);
}

#[test]
fn an_expired_token_is_never_sent() {
    let mut h = Harness::new();
    h.s.start(h.now);
    let fetch = h.until_fetch();
    h.give_token(fetch, &test_jwt(UNIX_NOW - 1));
    let actions = h.take_actions();
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::OpenSocket { .. })));
    // Within the skew margin counts as expired too.
    let fetch = h.until_fetch();
    h.give_token(fetch, &test_jwt(UNIX_NOW + 2));
    assert!(!h
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::OpenSocket { .. })));
    let ev = h.take_events();
    assert!(ev.iter().any(|e| matches!(e,
        Event::StateChanged(c) if matches!(**c, StateChange { cause: Some(Error::ExpiredToken { .. }), .. }))));
    let req = h.open();
    assert!(req["params"]["access_token"].as_str().is_some());
}

#[test]
fn a_stale_token_answer_is_ignored() {
    let mut h = Harness::new();
    h.s.start(h.now);
    let first = h.until_fetch();
    h.advance(Duration::from_secs(31)); // the provider timed out
    let second = h.until_fetch();
    assert_ne!(first, second);
    h.give_token(first, "late");
    assert!(h.take_actions().is_empty());
    h.give_token(second, "fresh");
    assert!(matches!(h.take_actions()[..], [Action::OpenSocket { .. }]));
}

#[test]
fn unauthorized_fetches_one_fresh_token_at_once_then_backs_off() {
    // Once a connection has attached, a refusal may be passing.
    let mut h = Harness::new();
    h.connect(&[]);
    h.drop_socket(Some(1001));
    h.drain();
    let req = h.open();
    let before = h.s.state().attempt;
    h.answer(
        &req,
        json!({"success": false, "error": "Token has expired"}),
    );
    let ev = h.take_events();
    assert!(ev.iter().any(|e| matches!(e, Event::StateChanged(c) if matches!(**c, StateChange {
        state: ConnectionState::Reconnecting, retry_in: Some(Duration::ZERO), cause: Some(Error::Unauthorized(_)), .. }))));
    // Immediately asks for a fresh token, no timer involved.
    assert!(h
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::FetchToken { .. })));
    assert_eq!(
        h.s.state().attempt,
        before,
        "the free retry spends no budget"
    );
    h.s.handle_timeout(h.now);
    let fetch = match h.s.state().state {
        ConnectionState::FetchingToken => h.s.next_fetch - 1,
        other => panic!("{other:?}"),
    };
    h.give_token(fetch, "t2");
    h.s.handle_transport_open(h.now);
    let req = h.take_sent().remove(0);
    assert_eq!(req["params"]["access_token"], "t2");
    // A second refusal in a row goes through the backoff schedule.
    h.answer(
        &req,
        json!({"success": false, "error": "Invalid token", "code": "unauthorized"}),
    );
    assert_eq!(h.s.state().attempt, before + 1);
    assert!(!h.s.state().state.is_terminal());
    // And then success.
    let req = h.open();
    h.answer(&req, json!({"success": true}));
    assert!(h.s.state().is_connected());
}

#[test]
fn a_fresh_key_refused_before_any_attachment_fails_the_connection() {
    let mut h = Harness::new();
    h.s.start(h.now);
    h.s.send_message("queued", h.now).unwrap();
    let req = h.open();
    h.answer(&req, json!({"success": false, "error": "Invalid token"}));
    // The first refusal may be a stale key: one fresh key at once.
    assert!(h
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::FetchToken { .. })));
    h.drain();
    let req = h.open();
    h.answer(
        &req,
        json!({"success": false, "error": "('Invalid API key token', 401)"}),
    );
    // The key just minted is refused too: the connection fails with the
    // cause, what was queued fails with it, and nothing asks again.
    assert_eq!(h.s.state().state, ConnectionState::Failed);
    let ev = h.take_events();
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::StateChanged(c) if c.state == ConnectionState::Failed
            && matches!(c.cause, Some(Error::Unauthorized(_))))
        ),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::RequestFailed {
                error: Error::Unauthorized(_),
                ..
            }
        )),
        "{ev:?}"
    );
    h.advance(Duration::from_secs(600));
    assert!(!h
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::FetchToken { .. } | Action::OpenSocket { .. })));
}

#[test]
fn close_4001_reconnects_with_a_fresh_token() {
    let mut h = Harness::new();
    h.connect(&[]);
    h.drop_socket(Some(4001));
    assert!(h
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::FetchToken { .. })));
}

#[test]
fn forbidden_is_terminal() {
    let mut h = Harness::new();
    h.s.start(h.now);
    let req = h.open();
    h.s.send_message("queued", h.now).unwrap();
    h.answer(
        &req,
        json!({"success": false,
        "error": "('API key client_id does not match context', 403)"}),
    );
    let ev = h.take_events();
    let last = ev.iter().rev().find_map(|e| match e {
        Event::StateChanged(c) => Some((**c).clone()),
        _ => None,
    });
    let last = last.unwrap();
    assert_eq!(last.state, ConnectionState::Failed);
    assert!(matches!(last.cause, Some(Error::Forbidden(ref r)) if r.status == Some(403)));
    assert_eq!(failed(&ev).len(), 1, "the queued message fails too");
    assert!(h
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::CloseSocket { .. })));
    assert!(matches!(h.s.send_message("x", h.now), Err(Error::Closed)));
    h.advance(Duration::from_secs(3600));
    assert!(!h
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::FetchToken { .. })));
}

#[test]
fn close_4003_is_terminal_and_4029_waits_as_told() {
    let mut h = Harness::new();
    h.connect(&[]);
    h.drop_socket(Some(4003));
    assert_eq!(h.s.state().state, ConnectionState::Failed);

    let mut h = Harness::new();
    h.connect(&[]);
    h.s.handle_transport_closed(Some(4029), "retry after 9", h.now);
    let ev = h.take_events();
    assert!(ev.iter().any(|e| matches!(e, Event::StateChanged(c)
        if c.retry_in == Some(Duration::from_secs(9)))));
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(9)));
}

#[test]
fn a_healthy_connection_retries_at_once_and_a_flapping_one_backs_off() {
    let mut h = Harness::new();
    h.connect(&[]);
    h.advance(Duration::from_secs(10));
    h.drop_socket(Some(1001));
    assert_eq!(h.s.state().state, ConnectionState::FetchingToken);
    // Connected, then dropped after 1 s, twice: the waits climb.
    let req = h.open();
    h.answer(&req, json!({"success": true}));
    h.advance(Duration::from_secs(1));
    h.drop_socket(Some(1011));
    h.take_events();
    let req = h.open();
    h.answer(&req, json!({"success": true}));
    h.drop_socket(Some(1011));
    let ev = h.take_events();
    let wait = ev.iter().find_map(|e| match e {
        Event::StateChanged(c) if c.state == ConnectionState::Reconnecting => c.retry_in,
        _ => None,
    });
    assert!(wait.unwrap() <= Duration::from_millis(1000), "{ev:?}");
    assert_eq!(h.s.state().attempt, 3);
}

#[test]
fn a_server_that_never_answers_times_out_requests() {
    let mut h = Harness::new();
    h.connect(&[]);
    let stop_id = h.s.stop(h.now).unwrap();
    let msg = h.s.send_message("hello?", h.now).unwrap();
    h.advance(Duration::from_secs(15));
    let f = failed(&h.take_events());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0, stop_id);
    assert!(matches!(&f[0].1, Error::Timeout { what, .. } if what == "stop_invocation"));
    // Pings keep the socket honest; with no pong, the idle timeout fires.
    assert!(h.take_actions().contains(&Action::SendPing));
    h.advance(Duration::from_secs(29));
    assert!(h.take_events().is_empty(), "45 s of silence, not 44");
    assert!(h.s.state().is_connected());
    h.advance(Duration::from_secs(1));
    let ev = h.take_events();
    // The socket is dropped for the silence; a base server cannot replay,
    // so the message still waiting for its reply is lost with it.
    let lost = failed(&ev);
    assert_eq!(lost.len(), 1, "{ev:?}");
    assert_eq!(lost[0].0, msg);
    assert!(
        matches!(&lost[0].1, Error::ConnectionLost { reason, .. }
            if reason.contains("any sign of life from the server")),
        "{:?}",
        lost[0].1
    );
    // The connection had been up a while: it retries at once, saying why.
    let idle = ev
        .iter()
        .find_map(|e| match e {
            Event::StateChanged(c) if c.state == ConnectionState::Reconnecting => Some(c),
            _ => None,
        })
        .expect("a reconnecting state change");
    assert!(
        matches!(&idle.cause, Some(Error::Timeout { what, after })
            if what == "any sign of life from the server" && *after == Duration::from_secs(45)),
        "{idle:?}"
    );
    assert_eq!(idle.retry_in, Some(Duration::ZERO));
    assert_eq!(
        states(&ev),
        [
            ConnectionState::Reconnecting,
            ConnectionState::FetchingToken
        ]
    );
    let actions = h.take_actions();
    assert!(
        actions.contains(&Action::CloseSocket {
            code: 1000,
            reason: "idle timeout".into()
        }),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::FetchToken { .. })),
        "{actions:?}"
    );
    // Replies that keep streaming refresh the invocation's deadline.
    let mut h2 = Harness::new();
    h2.connect(&[]);
    let m2 = h2.s.send_message("slow", h2.now).unwrap();
    for i in 0..20 {
        h2.advance(Duration::from_secs(30));
        h2.frame(&token("r", &i.to_string(), None));
    }
    assert!(failed(&h2.take_events()).is_empty());
    h2.advance(Duration::from_secs(120));
    assert_eq!(failed(&h2.take_events())[0].0, m2);
}

#[test]
fn a_silent_server_is_dropped_by_the_idle_timeout() {
    let mut h = Harness::new();
    h.connect(&[]);
    h.advance(Duration::from_secs(15));
    assert!(h.take_actions().contains(&Action::SendPing));
    h.s.handle_pong(h.now);
    h.advance(Duration::from_secs(44));
    assert!(h.s.state().is_connected());
    h.advance(Duration::from_secs(1));
    assert!(!h.s.state().is_connected());
    assert!(h
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::CloseSocket { .. })));
}

#[test]
fn a_connect_that_never_answers_is_retried() {
    let mut h = Harness::new();
    h.s.start(h.now);
    h.open();
    h.advance(Duration::from_secs(15));
    let ev = h.take_events();
    assert!(ev.iter().any(
        |e| matches!(e, Event::StateChanged(c) if matches!(**c, StateChange {
        cause: Some(Error::Timeout { .. }), .. }))
    ));
    h.open();
}

#[test]
fn garbage_oversized_and_unknown_frames_are_reported_and_survived() {
    let mut config = SessionConfig::new("ws://x/ws");
    config.max_frame_len = 150;
    let mut h = Harness::with(config);
    h.connect(&[]);
    h.take_events();
    h.frame("{not json");
    h.frame(&"x".repeat(151));
    h.frame(r#"{"id":"999","result":{"success":true}}"#);
    h.frame(r#"{"method":"on_token","params":{"token":1}}"#);
    h.frame(r#"{"hello":"there"}"#);
    h.s.handle_binary_frame(h.now);
    let ev = h.take_events();
    let errors: Vec<&Error> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Error(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 6, "{ev:?}");
    assert!(matches!(
        errors[0],
        Error::Protocol(ProtocolError::InvalidJson { .. })
    ));
    assert!(matches!(
        errors[1],
        Error::Protocol(ProtocolError::FrameTooLarge {
            size: 151,
            limit: 150
        })
    ));
    assert!(matches!(
        errors[2],
        Error::Protocol(ProtocolError::UnknownRequestId { .. })
    ));
    assert!(matches!(
        errors[3],
        Error::Protocol(ProtocolError::InvalidParams { .. })
    ));
    assert!(matches!(
        errors[4],
        Error::Protocol(ProtocolError::UnexpectedShape { .. })
    ));
    assert!(matches!(
        errors[5],
        Error::Protocol(ProtocolError::BinaryFrame)
    ));
    assert!(h.s.state().is_connected());
    h.frame(&token("r", "still fine", None));
    assert_eq!(h.s.response("r").unwrap().text, "still fine");
}

#[test]
fn stop_marks_the_response_stopped_on_a_base_server() {
    let mut h = Harness::new();
    h.connect(&[]);
    let id = h.s.send_message("long story", h.now).unwrap();
    h.answer(&json!({"id": id.to_string()}), json!({"success": true}));
    h.frame(&token("r", "Once", None));
    h.s.stop(h.now).unwrap();
    h.frame(&stop("r", None));
    assert_eq!(h.s.response("r").unwrap().status, ResponseStatus::Stopped);
}

#[test]
fn errors_of_commands_reach_their_request() {
    let mut h = Harness::new();
    h.connect(&["error_codes"]);
    let id =
        h.s.set_last_messages("new", Some("old".into()), h.now)
            .unwrap();
    let sent = h.take_sent();
    assert_eq!(sent[0]["method"], "set_last_messages");
    assert_eq!(sent[0]["params"]["ai_message"], "old");
    h.answer(&sent[0], json!({"success": false, "error": "No context set for connection", "code": "not_connected"}));
    let f = failed(&h.take_events());
    assert_eq!(f[0].0, id);
    assert!(matches!(f[0].1, Error::InvalidRequest(_)));
    assert!(h.s.awaiting_responses().is_empty());
}

#[test]
fn tool_responses_are_sent_as_the_protocol_says() {
    let mut h = Harness::new();
    h.connect(&[]);
    h.s.send_tool_responses(
        vec![ToolResponseParam {
            tool_call_id: "c1".into(),
            response: "52.5,13.4".into(),
        }],
        h.now,
    )
    .unwrap();
    let sent = h.take_sent();
    assert_eq!(
        sent[0]["params"],
        json!({"tool_responses": [{"tool_call_id": "c1", "response": "52.5,13.4"}]})
    );
}

#[test]
fn stream_tokens_go_on_the_url_and_not_in_connect() {
    let mut config = SessionConfig::new("ws://x/ws");
    config.client_key = Some("pk_1".into());
    let mut h = Harness::with(config);
    h.s.start(h.now);
    let fetch = h.until_fetch();
    h.s.handle_token(
        fetch,
        Ok(Credential::stream_token("pub_tok_a+b")),
        h.now,
        UNIX_NOW,
    );
    let url = h.take_actions().into_iter().find_map(|a| match a {
        Action::OpenSocket { url } => Some(url),
        _ => None,
    });
    assert_eq!(
        url.unwrap(),
        "ws://x/ws?token=pub_tok_a%2Bb&client_key=pk_1"
    );
    h.s.handle_transport_open(h.now);
    let req = h.take_sent().remove(0);
    assert!(req["params"].get("access_token").is_none());
    assert_eq!(req["params"]["client_key"], "pk_1");
}

#[test]
fn offline_pauses_retries_and_online_retries_at_once() {
    let mut h = Harness::new();
    h.connect(&[]);
    h.s.set_network_available(false, h.now);
    h.drop_socket(None);
    h.take_actions();
    h.advance(Duration::from_secs(3600));
    assert!(h.take_actions().is_empty());
    assert_eq!(h.s.poll_timeout(), None);
    h.s.set_network_available(true, h.now);
    assert!(h
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::FetchToken { .. })));
}

#[test]
fn close_fails_what_is_pending_and_stops_everything() {
    let mut h = Harness::new();
    h.connect(&[]);
    let id = h.s.send_message("bye", h.now).unwrap();
    h.frame(&token("r", "par", None));
    h.s.close();
    let ev = h.take_events();
    assert_eq!(completed(&ev)[0].status, ResponseStatus::Interrupted);
    assert_eq!(failed(&ev), vec![(id, Error::Closed)]);
    assert_eq!(states(&ev).last(), Some(&ConnectionState::Closed));
    assert!(h.take_actions().contains(&Action::CloseSocket {
        code: 1000,
        reason: "client closed".into()
    }));
    h.advance(Duration::from_secs(100));
    assert!(h.take_actions().is_empty());
}

#[test]
fn agent_speaks_first_is_not_taken_for_the_reply() {
    let mut h = Harness::new();
    h.s.start(h.now);
    let id = h.s.send_message("hi", h.now).unwrap();
    let req = h.open();
    h.answer(&req, json!({"success": true, "agent_speaks_first": true}));
    for f in [
        token("greet", "Welcome", None),
        stop("greet", None),
        token("r", "Hi", None),
        stop("r", None),
    ] {
        h.frame(&f);
    }
    // The greeting (no request) completed at its stop; the reply waits for
    // its answer.
    assert_eq!(completed(&h.take_events()).len(), 1);
    h.answer(&json!({"id": id.to_string()}), Value::Null);
    let done = completed(&h.take_events());
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].request_id, Some(id));
    assert_eq!(h.s.response("greet").unwrap().request_id, None);
}

#[test]
fn a_named_response_id_wins_over_order() {
    let mut h = Harness::new();
    h.connect(&[]);
    let a = h.s.send_message("a", h.now).unwrap();
    let sent = h.take_sent();
    h.answer(&sent[0], json!({"success": true, "response_id": "ra"}));
    h.frame(&token("ra", "x", None));
    assert_eq!(h.s.response("ra").unwrap().request_id, Some(a));
}

#[test]
fn a_provider_refusal_that_cannot_change_is_terminal() {
    let mut h = Harness::new();
    h.s.start(h.now);
    let fetch = h.until_fetch();
    let refusal = Error::from_server("not your context", None, Some(403));
    h.s.handle_token(fetch, Err(refusal), h.now, UNIX_NOW);
    assert_eq!(h.s.state().state, ConnectionState::Failed);
    let mut h = Harness::new();
    h.s.start(h.now);
    let fetch = h.until_fetch();
    let transient = Error::from_server("db down", None, Some(503));
    h.s.handle_token(fetch, Err(transient), h.now, UNIX_NOW);
    assert_ne!(h.s.state().state, ConnectionState::Failed);
    h.until_fetch(); // and it asks again
}

#[test]
fn max_attempts_fails_with_the_last_cause() {
    let mut config = SessionConfig::new("ws://x/ws");
    config.reconnect.max_attempts = Some(2);
    let mut h = Harness::with(config);
    h.s.start(h.now);
    for _ in 0..3 {
        let fetch = h.until_fetch();
        let e = Error::TokenProvider {
            message: "backend down".into(),
        };
        h.s.handle_token(fetch, Err(e), h.now, UNIX_NOW);
    }
    assert_eq!(h.s.state().state, ConnectionState::Failed);
    let ev = h.take_events();
    assert!(
        matches!(ev.last(), Some(Event::StateChanged(c)) if matches!(**c, StateChange {
        cause: Some(Error::TokenProvider { .. }), .. }))
    );
}

// -- refresh-ahead ---------------------------------------------------------

/// Connected with `key` on a server with `seq`/`resume`; returns the id of
/// the refresh-ahead fetch the connection started, if any.
fn connected_with(h: &mut Harness, key: &str) -> Option<u64> {
    h.s.start(h.now);
    let fetch = h.until_fetch();
    h.give_token(fetch, key);
    h.s.handle_transport_open(h.now);
    let req = h.take_sent().pop().expect("connect_to_context");
    h.answer(
        &req,
        json!({"success": true, "seq": 0,
            "server": {"name": "t", "version": "1", "capabilities": ["seq", "resume"]}}),
    );
    assert!(h.s.state().is_connected());
    h.take_events();
    let mut fetches = h.fetches();
    assert!(fetches.len() <= 1, "{fetches:?}");
    fetches.pop()
}

/// The `access_token` of the `connect_to_context` just sent.
fn presented(h: &mut Harness) -> String {
    h.s.handle_transport_open(h.now);
    let req = h.take_sent().pop().expect("connect_to_context");
    assert_eq!(req["method"], "connect_to_context");
    req["params"]["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

#[test]
fn refresh_ahead_fetches_the_next_key_once_connected_and_reconnects_without_the_provider() {
    let mut h = Harness::refreshing();
    let first = test_jwt(UNIX_NOW + 900);
    let spare_fetch = connected_with(&mut h, &first).expect("a spare is fetched once connected");
    let spare = test_jwt(UNIX_NOW + 901);
    h.give_token(spare_fetch, &spare);
    // Filling the spare is silent: no state change, no event, no action.
    assert!(h.take_events().is_empty());
    assert!(h.take_actions().is_empty());

    h.drop_socket(Some(1001));
    let actions = h.take_actions();
    assert!(
        matches!(actions[..], [Action::OpenSocket { .. }]),
        "the spare opens the socket at once, no provider call: {actions:?}"
    );
    assert_eq!(presented(&mut h), spare, "the spare, not the used key");
    let req = json!({"id": "2"});
    h.answer(&req, json!({"success": true}));
    assert!(h.s.state().is_connected());
    assert_eq!(h.fetches().len(), 1, "the next spare is asked for");
}

#[test]
fn refresh_ahead_a_drop_during_the_spare_fetch_waits_for_that_fetch() {
    let mut h = Harness::refreshing();
    let spare_fetch = connected_with(&mut h, &test_jwt(UNIX_NOW + 900)).expect("a spare fetch");
    h.drop_socket(Some(1011));
    assert_eq!(h.s.state().state, ConnectionState::FetchingToken);
    assert!(
        h.fetches().is_empty(),
        "no second call while one is running"
    );
    let spare = test_jwt(UNIX_NOW + 902);
    h.give_token(spare_fetch, &spare);
    assert!(matches!(h.take_actions()[..], [Action::OpenSocket { .. }]));
    assert_eq!(presented(&mut h), spare);
}

#[test]
fn refresh_ahead_a_refused_spare_is_replaced_at_once_and_keeps_the_401_retry() {
    let mut h = Harness::refreshing();
    let spare_fetch = connected_with(&mut h, &test_jwt(UNIX_NOW + 900)).expect("a spare fetch");
    h.give_token(spare_fetch, &test_jwt(UNIX_NOW + 903));
    // The key is revoked (4001): the spare is tried at once, and refused.
    h.drop_socket(Some(4001));
    assert!(matches!(h.take_actions()[..], [Action::OpenSocket { .. }]));
    let rejected = || {
        Error::Unauthorized(Box::new(Rejection {
            message: "revoked".into(),
            code: None,
            status: Some(401),
        }))
    };
    h.s.handle_transport_failed(rejected(), h.now);
    assert_eq!(h.fetches().len(), 1, "a fresh key at once");
    assert_eq!(h.s.state().attempt, 0, "no retry budget spent");
    // The fresh key is refused too: the one immediate 401 retry is still
    // there, then the backoff takes over.
    let fetch = h.s.next_fetch - 1;
    h.give_token(fetch, &test_jwt(UNIX_NOW + 904));
    h.s.handle_transport_failed(rejected(), h.now);
    assert_eq!(h.fetches().len(), 1, "the 401 retry");
    let fetch = h.s.next_fetch - 1;
    h.give_token(fetch, &test_jwt(UNIX_NOW + 905));
    h.s.handle_transport_failed(rejected(), h.now);
    assert!(h.fetches().is_empty(), "then the backoff");
    assert_eq!(h.s.state().state, ConnectionState::Reconnecting);
}

#[test]
fn refresh_ahead_refreshes_a_spare_before_it_expires_and_never_sends_an_expired_one() {
    let mut h = Harness::refreshing();
    let spare_fetch = connected_with(&mut h, &test_jwt(UNIX_NOW + 900)).expect("a spare fetch");
    // Usable for 100 s (exp minus the 5 s margin): replaced after 75 s.
    h.give_token(spare_fetch, &test_jwt(UNIX_NOW + 105));
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(75)));
    h.advance(Duration::from_secs(74));
    assert!(h.fetches().is_empty());
    h.advance(Duration::from_secs(1));
    let refresh = h.fetches();
    assert_eq!(refresh.len(), 1, "replaced before it expires");

    // A spare that expired while the session waited out a rate limit is
    // never sent: the provider is asked instead.
    let wall = UNIX_NOW + 75;
    h.s.handle_token(
        refresh[0],
        Ok(Credential::access_token(test_jwt(wall + 25))), // usable 20 s
        h.now,
        wall,
    );
    h.s.handle_transport_closed(Some(4029), "retry after 30", h.now);
    h.advance(Duration::from_secs(30));
    assert_eq!(h.fetches().len(), 1, "the stale spare was dropped");
    assert_eq!(h.s.state().state, ConnectionState::FetchingToken);
}

#[test]
fn refresh_ahead_skips_keys_without_a_known_expiry_and_ignores_a_failed_fetch() {
    // An opaque key (a static provider's) and a stream token: no spare.
    let mut h = Harness::refreshing();
    assert_eq!(connected_with(&mut h, "sk_opaque"), None);
    let mut h = Harness::refreshing();
    h.s.start(h.now);
    let fetch = h.until_fetch();
    h.s.handle_token(
        fetch,
        Ok(Credential::stream_token(test_jwt(UNIX_NOW + 60))),
        h.now,
        UNIX_NOW,
    );
    h.s.handle_transport_open(h.now);
    let req = h.take_sent().pop().expect("connect_to_context");
    h.answer(&req, json!({"success": true}));
    assert!(h.s.state().is_connected());
    assert!(h.fetches().is_empty(), "a single-use token has no spare");

    // A failed refresh is silent; the next reconnect asks as usual.
    let mut h = Harness::refreshing();
    let spare_fetch = connected_with(&mut h, &test_jwt(UNIX_NOW + 900)).expect("a spare fetch");
    h.s.handle_token(
        spare_fetch,
        Err(Error::Transport {
            message: "backend down".into(),
        }),
        h.now,
        UNIX_NOW,
    );
    assert!(h.take_events().is_empty());
    assert!(h.s.state().is_connected());
    h.drop_socket(Some(1001));
    assert_eq!(h.fetches().len(), 1);
}

#[test]
fn refresh_ahead_ends_with_the_session() {
    let mut h = Harness::refreshing();
    let spare_fetch = connected_with(&mut h, &test_jwt(UNIX_NOW + 900)).expect("a spare fetch");
    h.s.close();
    h.give_token(spare_fetch, &test_jwt(UNIX_NOW + 901));
    h.take_events();
    assert!(
        !h.take_actions()
            .iter()
            .any(|a| matches!(a, Action::OpenSocket { .. } | Action::FetchToken { .. })),
        "a late answer opens nothing"
    );
    assert_eq!(h.s.poll_timeout(), None);
}

// -- whole replies (issue #20) ----------------------------------------------

/// The hosted service's order: tokens, `on_stop_token`, then the trailing
/// `on_client_side_tool_calls` and `on_events`, then `"result": null`.
fn hosted_tail(r: &str) -> Vec<String> {
    vec![
        stop(r, None),
        json!({"method":"on_client_side_tool_calls","id":null,"params":{"response_id":r,
            "tool_calls":[{"tool_call_id":"c1","tool_name":"get_location","tool_input":{}}]}})
        .to_string(),
        json!({"method":"on_events","id":null,"params":{"response_id":r,
            "events":[{"type":"x","data":1}]}})
        .to_string(),
    ]
}

#[test]
fn a_reply_from_a_server_that_answers_late_completes_whole_at_the_answer() {
    let mut h = Harness::new();
    h.connect(&[]);
    let id = h.s.send_message("where am I?", h.now).unwrap();
    h.frame(&token("r", "Let me check", None));
    for f in hosted_tail("r") {
        h.frame(&f);
    }
    let ev = h.take_events();
    assert!(
        completed(&ev).is_empty(),
        "not whole before the answer: {ev:?}"
    );
    // What trails the stop is delivered as it arrives.
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::ClientSideToolCalls { .. })));
    h.answer(&json!({"id": id.to_string()}), Value::Null);
    let done = completed(&h.take_events());
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].request_id, Some(id));
    assert_eq!(done[0].text, "Let me check");
    assert_eq!(done[0].status, ResponseStatus::Complete);
    assert_eq!(done[0].client_side_tool_calls.len(), 1);
    assert_eq!(done[0].events.len(), 1);
}

#[test]
fn a_tool_call_only_reply_has_no_tokens_and_still_completes_whole() {
    let mut h = Harness::new();
    h.connect(&[]);
    let id = h.s.send_message("where am I?", h.now).unwrap();
    for f in hosted_tail("r") {
        h.frame(&f);
    }
    h.answer(&json!({"id": id.to_string()}), Value::Null);
    let done = completed(&h.take_events());
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].text, "");
    assert_eq!(done[0].client_side_tool_calls.len(), 1);
    // The continuation is a new reply bound to the tool answer.
    let tools =
        h.s.send_tool_responses(
            vec![ToolResponseParam {
                tool_call_id: "c1".into(),
                response: "Paris".into(),
            }],
            h.now,
        )
        .unwrap();
    h.frame(&token("r2", "You are in Paris", None));
    h.frame(&stop("r2", None));
    h.answer(&json!({"id": tools.to_string()}), Value::Null);
    let done = completed(&h.take_events());
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].request_id, Some(tools));
    assert_eq!(&*done[0].id, "r2");
}

#[test]
fn a_drop_between_the_stop_and_the_answer_ends_the_reply_interrupted_with_its_text() {
    let mut h = Harness::new();
    h.connect(&[]);
    let id = h.s.send_message("hi", h.now).unwrap();
    h.frame(&token("r", "Hello", None));
    h.frame(&stop("r", None));
    h.drop_socket(Some(1006));
    let done = completed(&h.take_events());
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].request_id, Some(id));
    assert_eq!(done[0].text, "Hello", "every token that came is kept");
    assert_eq!(
        done[0].status,
        ResponseStatus::Interrupted,
        "what trails the stop may be lost: the reply says so"
    );
}

#[test]
fn a_reply_whose_answer_never_comes_completes_at_the_request_timeout() {
    let mut h = Harness::new();
    h.connect(&[]);
    h.s.send_message("hi", h.now).unwrap();
    h.frame(&token("r", "Hello", None));
    h.frame(&stop("r", None));
    assert!(completed(&h.take_events()).is_empty());
    h.advance(Duration::from_secs(16));
    let ev = h.take_events();
    let done = completed(&ev);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].status, ResponseStatus::Complete);
    assert!(failed(&ev).is_empty(), "the reply came whole: no failure");
}

#[test]
fn notifications_for_a_reply_already_handed_out_are_still_delivered() {
    // The reference server's order: answer first, trailing notifications
    // before the stop; anything later still reaches the app.
    let mut h = Harness::new();
    h.connect(&[]);
    let id = h.s.send_message("hi", h.now).unwrap();
    h.answer(
        &json!({"id": id.to_string()}),
        json!({"success": true, "response_id": "r"}),
    );
    h.frame(&token("r", "Hi", None));
    h.frame(&stop("r", None));
    assert_eq!(completed(&h.take_events()).len(), 1, "complete at the stop");
    h.frame(
        &json!({"method":"on_events","params":{"response_id":"r","events":[{"type":"late"}]}})
            .to_string(),
    );
    let ev = h.take_events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Events { response_id: Some(r), .. } if &**r == "r")));
    assert_eq!(h.s.response("r").unwrap().events.len(), 1);
}

#[test]
fn what_trails_a_reply_after_it_was_handed_over_still_reaches_the_app() {
    // The hosted order, with the result so late that the reply was handed
    // over at the request timeout: what trails it after that is still
    // delivered as events and attached to the stored copy, never dropped.
    let mut h = Harness::new();
    h.connect(&[]);
    let id = h.s.send_message("where am I?", h.now).unwrap();
    h.frame(&token("r", "Let me check", None));
    let tail = hosted_tail("r");
    h.frame(&tail[0]);
    h.advance(Duration::from_secs(16));
    let done = completed(&h.take_events());
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].request_id, Some(id));
    assert!(done[0].client_side_tool_calls.is_empty());
    for f in &tail[1..] {
        h.frame(f);
    }
    let ev = h.take_events();
    assert!(
        ev.iter().any(|e| matches!(e,
            Event::ClientSideToolCalls { response_id: Some(r), tool_calls }
                if &**r == "r" && tool_calls.len() == 1)),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Events { response_id: Some(r), .. } if &**r == "r")),
        "{ev:?}"
    );
    assert!(completed(&ev).is_empty(), "handed over once: {ev:?}");
    let stored = h.s.response("r").unwrap();
    assert_eq!(stored.client_side_tool_calls.len(), 1);
    assert_eq!(stored.events.len(), 1);
}

#[test]
fn an_invocation_answered_before_its_reply_ended_is_settled_at_the_stop() {
    // The reference server's order: the answer, the reply, its stop. Once
    // the reply is whole nothing of its request is due, so nothing of it is
    // kept: one left per reply would grow a long session for ever.
    let mut h = Harness::new();
    h.connect(&["seq", "resume"]);
    for i in 0..3u64 {
        let id = h.s.send_message("hi", h.now).unwrap();
        let r = format!("r{i}");
        h.answer(
            &json!({"id": id.to_string()}),
            json!({"success": true, "response_id": r}),
        );
        h.frame(&token(&r, "Hi", Some(2 * i + 1)));
        assert_eq!(h.s.pending.0.len(), 1, "guarded while it streams");
        h.frame(&stop(&r, Some(2 * i + 2)));
        let done = completed(&h.take_events());
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].request_id, Some(id));
        assert_eq!(done[0].status, ResponseStatus::Complete);
        assert_eq!(h.s.pending.0.len(), 0, "settled at the stop of reply {i}");
    }
    // A drop now has nothing to fail or complete again.
    h.drop_socket(None);
    let ev = h.take_events();
    assert!(completed(&ev).is_empty(), "{ev:?}");
    assert!(failed(&ev).is_empty(), "{ev:?}");
}

// -- a surrogate pair cut between two tokens (issue #19) --------------------

fn raw_token(r: &str, json_string: &str) -> String {
    format!(r#"{{"method":"on_token","params":{{"token":{json_string},"response_id":"{r}"}}}}"#)
}

fn tokens_of(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Token { token, .. } => Some(token.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_surrogate_pair_cut_between_two_tokens_is_joined() {
    let mut h = Harness::new();
    h.connect(&[]);
    let id = h.s.send_message("hi", h.now).unwrap();
    h.answer(&json!({"id": id.to_string()}), json!({"success": true}));
    for raw in [r#""before ""#, r#""\ud83d""#, r#""\ude00""#, r#"" after""#] {
        h.frame(&raw_token("r", raw));
    }
    h.frame(&stop("r", None));
    let ev = h.take_events();
    assert!(!ev.iter().any(|e| matches!(e, Event::Error(_))), "{ev:?}");
    assert_eq!(tokens_of(&ev), ["before ", "😀", " after"]);
    assert_eq!(completed(&ev)[0].text, "before 😀 after");
}

#[test]
fn a_half_without_its_partner_becomes_a_replacement_character() {
    let mut h = Harness::new();
    h.connect(&[]);
    let id = h.s.send_message("hi", h.now).unwrap();
    h.answer(&json!({"id": id.to_string()}), json!({"success": true}));
    // A high half followed by a plain token, then a low half alone, then a
    // high half that the stop ends.
    for raw in [r#""a\ud83d""#, r#""b""#, r#""\ude00c""#, r#""d\ud83d""#] {
        h.frame(&raw_token("r", raw));
    }
    h.frame(&stop("r", None));
    let ev = h.take_events();
    assert!(!ev.iter().any(|e| matches!(e, Event::Error(_))), "{ev:?}");
    assert_eq!(completed(&ev)[0].text, "a\u{FFFD}b\u{FFFD}cd\u{FFFD}");
    assert_eq!(tokens_of(&ev).concat(), completed(&ev)[0].text);
}

// -- idempotent invocations (issue #17) --------------------------------------

const IDEMPOTENT: [&str; 3] = ["seq", "resume", "idempotency"];

/// Reconnects after a drop, resuming; returns the frames sent after the
/// connect result.
fn reconnect_and_resume(h: &mut Harness, caps: &[&str]) -> Vec<Value> {
    let req = h.open();
    h.answer(
        &req,
        json!({"success": true, "resumed": true,
            "server": {"name": "t", "version": "1", "capabilities": caps}}),
    );
    assert!(h.s.state().is_connected());
    h.take_sent()
}

#[test]
fn an_invocation_the_server_never_confirmed_is_sent_again_with_its_key() {
    let mut h = Harness::new();
    h.connect(&IDEMPOTENT);
    let first = h.s.send_message("one", h.now).unwrap();
    let second = h.s.send_message("two", h.now).unwrap();
    let sent = h.take_sent();
    let key_of = |f: &Value| f["idempotency_key"].as_str().unwrap().to_owned();
    let keys: Vec<String> = sent.iter().map(key_of).collect();
    assert_ne!(keys[0], keys[1], "one key per invocation");
    // The socket dies before either is confirmed.
    h.drop_socket(Some(1006));
    let again = reconnect_and_resume(&mut h, &IDEMPOTENT);
    assert_eq!(again.len(), 2, "both sent again: {again:?}");
    for (frame, (id, key)) in again.iter().zip([(first, &keys[0]), (second, &keys[1])]) {
        assert_eq!(frame["method"], "add_message");
        assert_eq!(frame["id"], id.0.to_string());
        assert_eq!(&key_of(frame), key, "the same key");
    }
    // The server had run the first: it answers with the original response,
    // whose replay then completes the request exactly once.
    h.answer(
        &again[0],
        json!({"success": true, "response_id": "r1", "repeated": true}),
    );
    h.answer(&again[1], json!({"success": true, "response_id": "r2"}));
    for f in [
        token("r1", "a", Some(1)),
        stop("r1", Some(2)),
        token("r2", "b", Some(3)),
        stop("r2", Some(4)),
    ] {
        h.frame(&f);
    }
    let ev = h.take_events();
    let done = completed(&ev);
    assert_eq!(done.len(), 2);
    assert_eq!(
        (done[0].request_id, done[0].text.as_str()),
        (Some(first), "a")
    );
    assert_eq!(
        (done[1].request_id, done[1].text.as_str()),
        (Some(second), "b")
    );
    assert!(failed(&ev).is_empty());
}

#[test]
fn a_confirmed_invocation_is_not_sent_again() {
    let mut h = Harness::new();
    h.connect(&IDEMPOTENT);
    let id = h.s.send_message("one", h.now).unwrap();
    let sent = h.take_sent();
    h.answer(&sent[0], json!({"success": true, "response_id": "r1"}));
    h.frame(&token("r1", "a", Some(1)));
    h.drop_socket(Some(1006));
    assert!(reconnect_and_resume(&mut h, &IDEMPOTENT).is_empty());
    h.frame(&stop("r1", Some(2)));
    let done = completed(&h.take_events());
    assert_eq!(done[0].request_id, Some(id));
}

#[test]
fn without_the_extension_no_key_is_sent_and_nothing_is_sent_again() {
    let mut h = Harness::new();
    h.connect(&["seq", "resume"]);
    h.s.send_message("one", h.now).unwrap();
    let sent = h.take_sent();
    assert!(sent[0].get("idempotency_key").is_none(), "{}", sent[0]);
    h.drop_socket(Some(1006));
    assert!(reconnect_and_resume(&mut h, &["seq", "resume"]).is_empty());
}

// -- the offline queue (issue #17) -------------------------------------------

/// A session that attached once, then lost its socket with the network
/// down: it waits, without a deadline of its own, for the network.
fn offline(config: SessionConfig, caps: &[&str]) -> Harness {
    let mut h = Harness::with(config);
    h.connect(caps);
    h.s.set_network_available(false, h.now);
    h.drop_socket(Some(1006));
    h.take_events();
    h.take_actions();
    assert_eq!(h.s.state().state, ConnectionState::Reconnecting);
    h
}

fn offline_config() -> SessionConfig {
    let mut config = SessionConfig::new("ws://relay.test/ws");
    config.refresh_ahead = false;
    config.ping_interval = None;
    config.idle_timeout = None;
    config
}

#[test]
fn the_queue_is_bounded_by_count_and_counted_as_pending() {
    let mut config = offline_config();
    config.max_queued_requests = 3;
    let mut h = offline(config, &IDEMPOTENT);
    assert_eq!(h.s.pending(), 0);
    let ids: Vec<RequestId> = (0..3)
        .map(|i| h.s.send_message(format!("m{i}"), h.now).unwrap())
        .collect();
    assert_eq!(h.s.pending(), 3);
    assert_eq!(h.s.pending_ids(), ids);
    // One more fails at once, typed, and takes no id nor place.
    assert_eq!(
        h.s.send_message("m3", h.now),
        Err(Error::QueueFull { limit: 3 })
    );
    assert_eq!(h.s.pending(), 3);
    assert!(h.take_sent().is_empty(), "nothing goes out while offline");
    // Back online: sent in order, each with a key, and nothing is pending.
    h.s.set_network_available(true, h.now);
    assert_eq!(reconnect_and_resume(&mut h, &IDEMPOTENT).len(), 3);
    assert_eq!(h.s.pending(), 0);
}

#[test]
fn queued_messages_go_out_in_order_once_attached() {
    let mut h = offline(offline_config(), &IDEMPOTENT);
    let ids: Vec<RequestId> = (0..3)
        .map(|i| h.s.send_message(format!("m{i}"), h.now).unwrap())
        .collect();
    h.s.set_network_available(true, h.now);
    let sent = reconnect_and_resume(&mut h, &IDEMPOTENT);
    let messages: Vec<(&str, &str)> = sent
        .iter()
        .map(|f| {
            (
                f["params"]["message"].as_str().unwrap(),
                f["id"].as_str().unwrap(),
            )
        })
        .collect();
    let expected: Vec<String> = ids.iter().map(|id| id.0.to_string()).collect();
    assert_eq!(
        messages,
        vec![
            ("m0", expected[0].as_str()),
            ("m1", expected[1].as_str()),
            ("m2", expected[2].as_str())
        ]
    );
    assert!(sent.iter().all(|f| f["idempotency_key"].is_string()));
    assert_eq!(h.s.pending(), 0);
}

#[test]
fn a_queued_message_ages_out_when_its_age_passes_without_waiting_for_a_reconnect() {
    let mut config = offline_config();
    config.max_queued_age = Some(Duration::from_secs(60));
    let mut h = offline(config, &IDEMPOTENT);
    let old = h.s.send_message("old", h.now).unwrap();
    h.advance(Duration::from_secs(30));
    let young = h.s.send_message("young", h.now).unwrap();
    // The network stays down: the session's only deadline is the oldest
    // message's age.
    assert_eq!(
        h.s.poll_timeout(),
        Some(h.now + Duration::from_secs(30)),
        "woken when the first message ages out"
    );
    h.advance(Duration::from_secs(30));
    let ev = h.take_events();
    assert_eq!(
        failed(&ev),
        vec![(
            old,
            Error::QueueExpired {
                after: Duration::from_secs(60)
            }
        )]
    );
    assert_eq!(h.s.pending_ids(), vec![young]);
    h.advance(Duration::from_secs(30));
    assert_eq!(failed(&h.take_events())[0].0, young);
    assert_eq!(h.s.pending(), 0);
    assert_eq!(h.s.poll_timeout(), None, "nothing left to wait for");
    // Nothing of them is sent once back.
    h.s.set_network_available(true, h.now);
    assert!(reconnect_and_resume(&mut h, &IDEMPOTENT).is_empty());
}

#[test]
fn close_fails_queued_messages_with_their_own_error_and_sent_ones_with_closed() {
    let mut h = Harness::with(offline_config());
    h.connect(&IDEMPOTENT);
    let sent = h.s.send_message("sent", h.now).unwrap();
    h.take_sent();
    h.s.set_network_available(false, h.now);
    h.drop_socket(Some(1006));
    let queued = h.s.send_message("queued", h.now).unwrap();
    // The one sent and never confirmed waits to be sent again: pending too.
    assert_eq!(h.s.pending_ids(), vec![sent, queued]);
    h.take_events();
    h.s.close();
    let ev = h.take_events();
    assert_eq!(
        failed(&ev),
        vec![(sent, Error::Closed), (queued, Error::ClosedBeforeSent)]
    );
    assert_eq!(
        Error::ClosedBeforeSent.kind().as_str(),
        "closed_before_sent"
    );
    assert_ne!(Error::ClosedBeforeSent, Error::Closed);
    assert_eq!(h.s.pending(), 0);
}

#[test]
fn a_terminal_failure_fails_queued_messages_with_its_cause() {
    let mut h = offline(offline_config(), &[]);
    let queued = h.s.send_message("queued", h.now).unwrap();
    h.s.set_network_available(true, h.now);
    let req = h.open();
    h.answer(
        &req,
        json!({"success": false, "error": "Context does not belong to user", "code": "forbidden"}),
    );
    let ev = h.take_events();
    let f = failed(&ev);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0, queued);
    assert!(matches!(f[0].1, Error::Forbidden(_)), "{:?}", f[0].1);
}
