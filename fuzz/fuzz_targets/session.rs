//! The sans-IO session (`sdk-core/src/session`) driven like a driver would,
//! by a structured input: server frames (well-formed notifications and
//! results with fuzzed fields, and raw text), token answers, socket events,
//! the clock, and user commands, in any order.
//!
//! A model beside the session checks, after every step:
//! * events are well-formed: a response starts once, tokens and its end
//!   come only while it streams, its final text is exactly its tokens, it
//!   never ends `streaming`; tool calls and events name known responses;
//!   requests are acknowledged or failed only if issued, fail at most once,
//!   and are never acknowledged after failing; `Connected` follows a
//!   `StateChanged(Connected)` (attempt 0); the last state event is the
//!   session's state; a closed or failed session emits nothing more;
//! * what the session says matches: as many responses stream as the model
//!   has open, each with the model's text;
//! * `seq` de-duplication never goes backwards: `last_seq` only decreases
//!   at a (re)connect; a notification at or below it changes nothing; one
//!   above it is applied;
//! * every frame sent is a request the server decodes, with an id never
//!   sent before (nothing is re-sent); `connect_to_context` carries the
//!   credential it was given (and none for a stream token), the client key,
//!   and `resume_after_seq` only as the highest `seq` applied;
//! * actions: fetch ids increase, the socket URL is the configured one,
//!   a stale token answer changes nothing;
//! * `Debug` of the session and of its actions never shows a credential.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tokenrelay::wire::{decode_client_frame, ClientRequest, ServerFrame};
use tokenrelay::{Action, ReconnectPolicy, Session, SessionConfig};
use tokenrelay::{ConnectionState, Credential, Error, Event, Rejection, ResponseStatus, Timestamp};

const WS_URL: &str = "ws://relay.test/ws";
const ACCESS: &str = "sk_fuzz_SECRET_access";
const STREAM: &str = "pub_tok_fuzz_SECRET_stream";
const CLIENT_KEY: &str = "pk_fuzz_SECRET_client";
/// A JWT whose `exp` (1) is long past.
const EXPIRED: &str = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.sig";
const UNIX_NOW: u64 = 1_700_000_000;
const MAX_OPS: usize = 300;

#[derive(Arbitrary, Debug)]
struct Input {
    resume: bool,
    client_key: bool,
    keepalive: bool,
    small_frames: bool,
    max_attempts: Option<u8>,
    max_retained: u8,
    max_queued: u8,
    seed: u64,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Frame(Frame),
    Raw(String),
    Token(TokenAnswer),
    Open,
    Closed { code: Option<u16>, reason: String },
    Failed(Failure),
    Advance(u16),
    Deadline,
    Send(String),
    Stop,
    SetLast(String, Option<String>),
    ToolResponses(Vec<(String, String)>),
    Close,
    Network(bool),
    ReconnectNow,
    Pong,
    Binary,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum TokenAnswer {
    Access,
    Stream,
    Expired,
    Stale,
    Transport,
    Unauthorized,
    Forbidden,
    NotFound,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Failure {
    Transport,
    Unauthorized,
    Forbidden,
    RateLimited,
}

/// A response id out of a few, so responses interleave and repeat.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Rid(u8);

impl Rid {
    fn text(self) -> String {
        format!("r{}", self.0 % 6)
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Seq {
    Small(u8),
    NearMax(u8),
}

impl Seq {
    fn value(self) -> u64 {
        match self {
            Seq::Small(n) => u64::from(n),
            Seq::NearMax(n) => u64::MAX - u64::from(n),
        }
    }
}

/// Which request a result answers.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum ReqRef {
    /// The last one sent, minus this many.
    Back(u8),
    Literal(u64),
}

#[derive(Arbitrary, Debug)]
enum Frame {
    Token {
        rid: Rid,
        text: String,
        seq: Option<Seq>,
    },
    Stop {
        rid: Rid,
        reason: Option<u8>,
        seq: Option<Seq>,
    },
    ToolCall {
        rid: Option<Rid>,
        call: u8,
        seq: Option<Seq>,
    },
    ToolResponse {
        rid: Option<Rid>,
        call: u8,
        seq: Option<Seq>,
    },
    Events {
        rid: Option<Rid>,
        count: u8,
        seq: Option<Seq>,
    },
    ClientSideToolCalls {
        rid: Option<Rid>,
        seq: Option<Seq>,
    },
    Unknown,
    Success {
        to: ReqRef,
        caps: u8,
        resumed: Option<bool>,
        seq: Option<Seq>,
        speaks_first: bool,
        response_id: Option<Rid>,
    },
    Refusal {
        to: ReqRef,
        code: u8,
        text: String,
    },
}

fn seq_field(params: &mut Value, seq: Option<Seq>) {
    if let Some(seq) = seq {
        params["seq"] = json!(seq.value());
    }
}

fn rid_field(params: &mut Value, rid: Option<Rid>) {
    if let Some(rid) = rid {
        params["response_id"] = json!(rid.text());
    }
}

impl Frame {
    fn text(&self, last_sent: u64) -> String {
        let request = |to: ReqRef| match to {
            ReqRef::Back(n) => last_sent.saturating_sub(u64::from(n)).to_string(),
            ReqRef::Literal(n) => n.to_string(),
        };
        let notification =
            |method: &str, params: Value| json!({"method": method, "params": params}).to_string();
        match self {
            Frame::Token { rid, text, seq } => {
                let mut p = json!({"token": text, "response_id": rid.text()});
                seq_field(&mut p, *seq);
                notification("on_token", p)
            }
            Frame::Stop { rid, reason, seq } => {
                let mut p = json!({"response_id": rid.text()});
                if let Some(r) = reason {
                    p["reason"] = json!(["complete", "stopped", "error", "other"][*r as usize % 4]);
                }
                seq_field(&mut p, *seq);
                notification("on_stop_token", p)
            }
            Frame::ToolCall { rid, call, seq } => {
                let mut p = json!({"tool_call_id": format!("t{call}"), "tool_name": "search",
                    "tool_input": {"q": call}});
                rid_field(&mut p, *rid);
                seq_field(&mut p, *seq);
                notification("on_tool_call", p)
            }
            Frame::ToolResponse { rid, call, seq } => {
                let mut p = json!({"tool_call_id": format!("t{call}"), "tool_name": "search",
                    "tool_output": "ok"});
                rid_field(&mut p, *rid);
                seq_field(&mut p, *seq);
                notification("on_tool_response", p)
            }
            Frame::Events { rid, count, seq } => {
                let events: Vec<Value> = (0..count % 4)
                    .map(|i| json!({"type": "citation", "data": {"i": i}}))
                    .collect();
                let mut p = json!({ "events": events });
                rid_field(&mut p, *rid);
                seq_field(&mut p, *seq);
                notification("on_events", p)
            }
            Frame::ClientSideToolCalls { rid, seq } => {
                let mut p = json!({"tool_calls": [{"tool_call_id": "c1", "tool_name": "gps"}]});
                rid_field(&mut p, *rid);
                seq_field(&mut p, *seq);
                notification("on_client_side_tool_calls", p)
            }
            Frame::Unknown => notification("on_thinking", json!({"x": 1})),
            Frame::Success {
                to,
                caps,
                resumed,
                seq,
                speaks_first,
                response_id,
            } => {
                let names = [
                    "seq",
                    "resume",
                    "error_codes",
                    "stop_reason",
                    "stream_token",
                ];
                let capabilities: Vec<&str> = names
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| caps & (1 << i) != 0)
                    .map(|(_, n)| *n)
                    .collect();
                let mut r = json!({"success": true, "agent_speaks_first": speaks_first});
                if caps & 0x80 != 0 {
                    r["server"] =
                        json!({"name": "fuzz", "version": "1", "capabilities": capabilities});
                }
                if let Some(resumed) = resumed {
                    r["resumed"] = json!(resumed);
                }
                seq_field(&mut r, *seq);
                rid_field(&mut r, *response_id);
                json!({"id": request(*to), "result": r}).to_string()
            }
            Frame::Refusal { to, code, text } => {
                let codes = [
                    "unauthorized",
                    "forbidden",
                    "not_found",
                    "rate_limited",
                    "invalid_params",
                    "internal",
                    "invalid_billing",
                ];
                let mut r = json!({"success": false, "error": text});
                if let Some(c) = codes.get(*code as usize % 9) {
                    r["code"] = json!(c);
                }
                json!({"id": request(*to), "result": r}).to_string()
            }
        }
    }
}

/// What the model knows, from outside the session.
struct Model {
    config_resume: bool,
    client_key: Option<&'static str>,
    /// Responses streaming, with their text so far.
    open: HashMap<String, String>,
    ended: HashSet<String>,
    ended_count: usize,
    issued: HashSet<u64>,
    failed: HashSet<u64>,
    acknowledged: HashSet<u64>,
    sent: HashSet<u64>,
    last_sent: u64,
    last_fetch: Option<u64>,
    last_state: Option<ConnectionState>,
    /// The last credential handed to the session, and the one it opened
    /// the current socket with.
    offered: Option<Credential>,
    credential: Option<Credential>,
}

fn terminal(state: ConnectionState) -> bool {
    matches!(state, ConnectionState::Closed | ConnectionState::Failed)
}

fn rejection() -> Box<Rejection> {
    Box::new(Rejection {
        message: "no".into(),
        ..Rejection::default()
    })
}

fuzz_target!(|input: Input| run(input));

fn run(input: Input) {
    let mut config = SessionConfig::new(WS_URL);
    config.resume = input.resume;
    config.client_key = input.client_key.then(|| CLIENT_KEY.to_owned());
    if !input.keepalive {
        config.ping_interval = None;
        config.idle_timeout = None;
    }
    if input.small_frames {
        config.max_frame_len = 200;
    }
    config.max_retained_responses = usize::from(input.max_retained % 8);
    config.max_queued_requests = usize::from(input.max_queued % 8);
    config.reconnect =
        ReconnectPolicy::default().with_max_attempts(input.max_attempts.map(|n| u32::from(n % 8)));
    let max_frame_len = config.max_frame_len;
    let mut s = Session::new("ctx", config, input.seed);
    let mut m = Model {
        config_resume: input.resume,
        client_key: input.client_key.then_some(CLIENT_KEY),
        open: HashMap::new(),
        ended: HashSet::new(),
        ended_count: 0,
        issued: HashSet::new(),
        failed: HashSet::new(),
        acknowledged: HashSet::new(),
        sent: HashSet::new(),
        last_sent: 0,
        last_fetch: None,
        last_state: None,
        offered: None,
        credential: None,
    };
    let mut now = Timestamp::from_millis(1_000);
    s.start(now);
    step(&mut s, &mut m, None, false);

    for op in input.ops.iter().take(MAX_OPS) {
        let before_seq = s.last_seq();
        let before_state = s.state().state;
        let had_socket = matches!(
            before_state,
            ConnectionState::Connecting
                | ConnectionState::Authenticating
                | ConnectionState::Connected
        );
        // The seq of a notification fed now, when the session reads it.
        let mut fed_seq = None;
        let mut quiet = false;
        let mut frame = |s: &mut Session, text: &str, now| {
            if had_socket && text.len() <= max_frame_len {
                if let Ok(ServerFrame::Notification(n)) =
                    tokenrelay::wire::decode_server_frame(text)
                {
                    fed_seq = n.seq();
                }
            }
            s.handle_frame(text, now);
        };
        match op {
            Op::Frame(f) => frame(&mut s, &f.text(m.last_sent), now),
            Op::Raw(text) => frame(&mut s, text, now),
            Op::Token(answer) => {
                let fetch_id = m.last_fetch.unwrap_or(0);
                let result = match answer {
                    TokenAnswer::Access => Ok(Credential::access_token(ACCESS)),
                    TokenAnswer::Stream => Ok(Credential::stream_token(STREAM)),
                    TokenAnswer::Expired => Ok(Credential::access_token(EXPIRED)),
                    TokenAnswer::Stale => Ok(Credential::access_token(ACCESS)),
                    TokenAnswer::Transport => Err(Error::Transport {
                        message: "refused".into(),
                    }),
                    TokenAnswer::Unauthorized => Err(Error::Unauthorized(rejection())),
                    TokenAnswer::Forbidden => Err(Error::Forbidden(rejection())),
                    TokenAnswer::NotFound => Err(Error::NotFound(rejection())),
                };
                if let TokenAnswer::Stale = answer {
                    // Always an id before the current one: ignored.
                    s.handle_token(fetch_id.wrapping_sub(1), result, now, UNIX_NOW);
                    quiet = true;
                } else {
                    if let Ok(c) = &result {
                        m.offered = Some(c.clone());
                    }
                    s.handle_token(fetch_id, result, now, UNIX_NOW);
                }
            }
            Op::Open => s.handle_transport_open(now),
            Op::Closed { code, reason } => s.handle_transport_closed(*code, reason, now),
            Op::Failed(f) => {
                let e = match f {
                    Failure::Transport => Error::Transport {
                        message: "reset".into(),
                    },
                    Failure::Unauthorized => Error::Unauthorized(rejection()),
                    Failure::Forbidden => Error::Forbidden(rejection()),
                    Failure::RateLimited => Error::RateLimited {
                        rejection: rejection(),
                        retry_after: Some(Duration::from_secs(3)),
                        rate_limit: None,
                    },
                };
                s.handle_transport_failed(e, now);
            }
            Op::Advance(ms) => {
                now = now + Duration::from_millis(u64::from(*ms) * 10);
                s.handle_timeout(now);
            }
            Op::Deadline => {
                if let Some(t) = s.poll_timeout() {
                    now = now.max(t);
                }
                s.handle_timeout(now);
            }
            Op::Send(text) => command(&mut s, &mut m, before_state, |s| {
                s.send_message(text.clone(), now)
            }),
            Op::Stop => command(&mut s, &mut m, before_state, |s| s.stop(now)),
            Op::SetLast(human, ai) => command(&mut s, &mut m, before_state, |s| {
                s.set_last_messages(human.clone(), ai.clone(), now)
            }),
            Op::ToolResponses(answers) => command(&mut s, &mut m, before_state, |s| {
                let answers = answers
                    .iter()
                    .map(|(id, response)| tokenrelay::wire::ToolResponseParam {
                        tool_call_id: id.clone(),
                        response: response.clone(),
                    })
                    .collect();
                s.send_tool_responses(answers, now)
            }),
            Op::Close => s.close(),
            Op::Network(up) => s.set_network_available(*up, now),
            Op::ReconnectNow => s.reconnect_now(now),
            Op::Pong => s.handle_pong(now),
            Op::Binary => s.handle_binary_frame(now),
        }
        let emitted = step(&mut s, &mut m, Some(before_state), quiet);

        // seq de-duplication never goes backwards, except at a reconnect.
        let after_seq = s.last_seq();
        if after_seq < before_seq {
            assert!(
                emitted.reconnected,
                "last_seq went back from {before_seq:?} to {after_seq:?} on {op:?}"
            );
        }
        if let Some(seq) = fed_seq {
            match before_seq {
                Some(last) if seq <= last => assert_eq!(
                    emitted.events, 0,
                    "a duplicate (seq {seq} <= {last}) changed something: {op:?}"
                ),
                _ => assert_eq!(after_seq, Some(seq), "seq {seq} was not applied: {op:?}"),
            }
        }
    }

    // Nothing a credential was given as shows in Debug (unless the input
    // itself carried it, which a fuzzer can manage).
    let shown = format!("{s:?}");
    let fed = format!("{input:?}");
    for secret in [ACCESS, STREAM, CLIENT_KEY] {
        assert!(
            !shown.contains(secret) || fed.contains(secret),
            "Debug shows {secret}: {shown}"
        );
    }
}

/// A user command: its id is fresh, and it is refused only when the session
/// is over or the queue is full while disconnected.
fn command(
    s: &mut Session,
    m: &mut Model,
    state: ConnectionState,
    f: impl FnOnce(&mut Session) -> Result<tokenrelay::RequestId, Error>,
) {
    match f(s) {
        Ok(id) => {
            assert!(!terminal(state), "a command was taken in state {state:?}");
            assert!(m.issued.insert(id.0), "request id {} issued twice", id.0);
        }
        Err(Error::Closed) => assert!(terminal(state), "refused as closed in {state:?}"),
        Err(Error::QueueFull { .. }) => {
            assert_ne!(
                state,
                ConnectionState::Connected,
                "queue full while connected"
            )
        }
        Err(other) => panic!("unexpected command error {other:?}"),
    }
}

#[derive(Default)]
struct Emitted {
    events: usize,
    reconnected: bool,
}

/// Drains the session's outputs and checks them against the model.
fn step(s: &mut Session, m: &mut Model, before: Option<ConnectionState>, quiet: bool) -> Emitted {
    let mut out = Emitted::default();
    let mut previous_was_connected_state = false;

    while let Some(t) = s.poll_transmit() {
        out.events += 1;
        let incoming = decode_client_frame(&t).expect("the session sends frames the server reads");
        let id: u64 = incoming
            .id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .expect("every request has a numeric id");
        assert!(m.sent.insert(id), "request {id} sent twice: {t}");
        m.issued.insert(id);
        m.last_sent = m.last_sent.max(id);
        match incoming.request.expect("the session sends known requests") {
            ClientRequest::ConnectToContext(p) => {
                assert_eq!(p.context_id, "ctx");
                let c = m.credential.as_ref().expect("connect without a credential");
                match c.kind() {
                    tokenrelay::CredentialKind::AccessToken => {
                        assert_eq!(p.access_token.as_deref(), Some(c.secret()))
                    }
                    tokenrelay::CredentialKind::StreamToken => assert_eq!(p.access_token, None),
                }
                assert_eq!(p.client_key.as_deref(), m.client_key);
                if let Some(after) = p.resume_after_seq {
                    assert!(m.config_resume, "resume asked for with resume off");
                    assert_eq!(Some(after), s.last_seq(), "resume from the wrong seq");
                }
            }
            _ => {}
        }
    }

    while let Some(a) = s.poll_action() {
        out.events += 1;
        let shown = format!("{a:?}");
        for secret in [ACCESS, STREAM, CLIENT_KEY] {
            assert!(!shown.contains(secret), "{shown}");
        }
        match a {
            Action::FetchToken {
                fetch_id,
                context_id,
            } => {
                assert_eq!(context_id, "ctx");
                assert!(
                    m.last_fetch.is_none_or(|last| fetch_id > last),
                    "fetch ids go back"
                );
                m.last_fetch = Some(fetch_id);
            }
            Action::OpenSocket { url } => {
                assert!(url.starts_with(WS_URL), "{url}");
                m.credential = m.offered.clone();
                let stream = m
                    .credential
                    .as_ref()
                    .is_some_and(|c| c.kind() == tokenrelay::CredentialKind::StreamToken);
                assert_eq!(url.contains("token=pub_tok_fuzz"), stream, "{url}");
            }
            Action::CloseSocket { .. } | Action::SendPing => {}
        }
    }

    while let Some(e) = s.poll_event() {
        out.events += 1;
        if let Some(b) = before {
            assert!(!terminal(b), "an event after the session ended: {e:?}");
        }
        let was_connected_state = std::mem::take(&mut previous_was_connected_state);
        match &e {
            Event::StateChanged(c) => {
                if c.state == ConnectionState::Connected {
                    assert_eq!(c.attempt, 0);
                    previous_was_connected_state = true;
                }
                m.last_state = Some(c.state);
            }
            Event::Connected { .. } => {
                assert!(was_connected_state, "Connected without its state change");
                out.reconnected = true;
            }
            Event::ResponseStarted { response_id, .. } => {
                let id = response_id.to_string();
                assert!(!m.open.contains_key(&id), "{id} started twice");
                // The session remembers the last 1024 ended ids.
                if m.ended_count < 1000 {
                    assert!(!m.ended.contains(&id), "{id} started again after it ended");
                }
                m.open.insert(id, String::new());
            }
            Event::Token { response_id, token } => {
                let text = m
                    .open
                    .get_mut(&**response_id)
                    .unwrap_or_else(|| panic!("a token for {response_id}, not streaming"));
                text.push_str(token);
            }
            Event::ResponseComplete(r) => {
                let text = m
                    .open
                    .remove(&*r.id)
                    .unwrap_or_else(|| panic!("{} ended but was not streaming", r.id));
                assert_eq!(r.text, text, "{}: text is not its tokens", r.id);
                assert_ne!(r.status, ResponseStatus::Streaming);
                m.ended.insert(r.id.to_string());
                m.ended_count += 1;
            }
            Event::ToolCall { response_id, .. }
            | Event::ToolResponse { response_id, .. }
            | Event::Events { response_id, .. }
            | Event::ClientSideToolCalls { response_id, .. } => {
                if let Some(id) = response_id {
                    assert!(
                        m.open.contains_key(&**id) || m.ended.contains(&**id),
                        "attached to unknown response {id}"
                    );
                }
            }
            Event::RequestAcknowledged { request_id, .. } => {
                assert!(
                    m.issued.contains(&request_id.0),
                    "{request_id:?} never issued"
                );
                assert!(
                    !m.failed.contains(&request_id.0),
                    "{request_id:?} acked after failing"
                );
                m.acknowledged.insert(request_id.0);
            }
            Event::RequestFailed { request_id, .. } => {
                assert!(
                    m.issued.contains(&request_id.0),
                    "{request_id:?} never issued"
                );
                assert!(m.failed.insert(request_id.0), "{request_id:?} failed twice");
            }
            _ => {}
        }
    }

    if quiet {
        assert_eq!(out.events, 0, "a stale token answer changed something");
    }
    let state = s.state().state;
    if let Some(last) = m.last_state {
        assert_eq!(last, state, "the last state event is not the state");
    }
    if terminal(state) {
        assert!(m.open.is_empty(), "responses stream in state {state:?}");
    }
    assert_eq!(s.streaming_responses(), m.open.len(), "streaming count");
    for (id, text) in &m.open {
        let r = s
            .response(id)
            .unwrap_or_else(|| panic!("{id} streams but is unknown"));
        assert_eq!(r.status, ResponseStatus::Streaming);
        assert_eq!(&r.text, text);
    }
    out
}
