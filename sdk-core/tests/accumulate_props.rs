//! Property tests of response accumulation, through the public API of the
//! sans-IO [`Session`] only: random interleavings of up to four responses,
//! random duplicate deliveries and random socket drops must never change
//! what the application ends up with.
//!
//! * With `seq` + `resume`, every response completes exactly once, with
//!   exactly its original text, however the frames were duplicated or the
//!   socket dropped, and every reconnect asks to resume after the highest
//!   `seq` the session applied.
//! * With a base server, a drop cuts the responses in flight: they end
//!   `interrupted` with exactly the prefix that arrived, and late frames are
//!   never appended to them.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};
use tokenrelay::{Action, Session, SessionConfig};
use tokenrelay::{Credential, Event, RequestId, Response, ResponseStatus, Timestamp};

const UNIX_NOW: u64 = 1_700_000_000;
const MAX_RESPONSES: usize = 4;
const MAX_TOKENS: usize = 30;
const CAPS: [&str; 2] = ["seq", "resume"];

// ---------------------------------------------------------------------------
// A driver with a fake clock
// ---------------------------------------------------------------------------

/// Drives a session as a real driver would, with a fake clock, keeping every
/// event it emits.
struct Driver {
    s: Session,
    now: Timestamp,
    events: Vec<Event>,
}

impl Driver {
    fn new() -> Self {
        let mut config = SessionConfig::new("ws://relay.test/ws");
        // Many drops in one case add up to minutes of simulated backoff; this
        // property is about accumulation, so keep invocations from timing out.
        config.invocation_timeout = Duration::from_secs(24 * 3600);
        let mut s = Session::new("ctx", config, 7);
        let now = Timestamp::from_millis(1_000);
        s.start(now);
        Driver {
            s,
            now,
            events: Vec::new(),
        }
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
    }

    fn take_transmits(&mut self) -> Vec<Value> {
        let mut sent = Vec::new();
        while let Some(t) = self.s.poll_transmit() {
            sent.push(serde_json::from_str(&t).expect("the session sends JSON"));
        }
        sent
    }

    fn take_actions(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some(a) = self.s.poll_action() {
            actions.push(a);
        }
        actions
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.s.handle_timeout(self.now);
        self.drain_events();
    }

    /// Runs the clock until the session asks for a token, gives it one and
    /// opens the socket. Returns the `connect_to_context` request it sends.
    fn open(&mut self) -> Value {
        let mut fetch = None;
        for _ in 0..1_000 {
            fetch = self.take_actions().into_iter().find_map(|a| match a {
                Action::FetchToken { fetch_id, .. } => Some(fetch_id),
                _ => None,
            });
            if fetch.is_some() {
                break;
            }
            let next = self
                .s
                .poll_timeout()
                .expect("a session waiting to reconnect has a deadline");
            self.advance(next.saturating_since(self.now));
        }
        let fetch_id = fetch.expect("the session never asked for a token");
        self.s.handle_token(
            fetch_id,
            Ok(Credential::access_token("sk_test_key")),
            self.now,
            UNIX_NOW,
        );
        assert!(self
            .take_actions()
            .iter()
            .any(|a| matches!(a, Action::OpenSocket { .. })));
        // Frames queued for a socket that is gone are never sent.
        self.take_transmits();
        self.s.handle_transport_open(self.now);
        self.drain_events();
        let sent = self.take_transmits();
        let connect = sent.last().expect("connect_to_context is sent on open");
        assert_eq!(connect["method"], "connect_to_context");
        connect.clone()
    }

    fn answer(&mut self, request: &Value, result: Value) {
        self.frame(&json!({"id": request["id"], "result": result}).to_string());
    }

    fn frame(&mut self, text: &str) {
        self.s.handle_frame(text, self.now);
        self.drain_events();
    }

    fn drop_socket(&mut self, code: Option<u16>) {
        self.s.handle_transport_closed(code, "", self.now);
        self.drain_events();
    }

    /// The first connection, to a server with `caps` (none: a base server).
    fn connect_first(&mut self, caps: &[&str]) {
        let req = self.open();
        assert!(req["params"].get("resume_after_seq").is_none());
        let mut result = json!({"success": true, "agent_speaks_first": false});
        if !caps.is_empty() {
            result["server"] = json!({"name": "t", "version": "1", "capabilities": caps});
            result["seq"] = json!(0);
        }
        self.answer(&req, result);
        assert!(self.s.state().is_connected(), "{:?}", self.events);
    }

    /// Sends one message per response, as the app would; the responses
    /// bind to them in the order they start. The server answers each at
    /// once, as the reference server does, so a reply is whole at its stop
    /// (a server that answers after the stream is the session tests' case).
    fn send_messages(&mut self, n: usize) -> Vec<RequestId> {
        let ids: Vec<RequestId> = (0..n)
            .map(|i| self.s.send_message(format!("q{i}"), self.now).unwrap())
            .collect();
        for sent in self.take_transmits() {
            self.answer(&sent, json!({"success": true}));
        }
        ids
    }

    fn completed(&self) -> Vec<&Response> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ResponseComplete(r) => Some(&**r),
                _ => None,
            })
            .collect()
    }

    /// Every token event's text, concatenated per response.
    fn streamed(&self) -> HashMap<&str, String> {
        let mut out: HashMap<&str, String> = HashMap::new();
        for e in &self.events {
            if let Event::Token { response_id, token } = e {
                out.entry(response_id).or_default().push_str(token);
            }
        }
        out
    }

    fn failed_requests(&self) -> Vec<RequestId> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::RequestFailed { request_id, .. } => Some(*request_id),
                _ => None,
            })
            .collect()
    }

    fn errors(&self) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Error(_)))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Conversations
// ---------------------------------------------------------------------------

/// Up to four responses and one interleaving of their notifications.
#[derive(Debug, Clone)]
struct Conversation {
    ids: Vec<String>,
    tokens: Vec<Vec<String>>,
    /// Delivery order: (response index, token index, or `None` for the stop).
    frames: Vec<(usize, Option<usize>)>,
}

impl Conversation {
    fn new(ids: Vec<String>, tokens: Vec<Vec<String>>, picks: &[Index]) -> Self {
        // Each response's own order is kept; which response goes next is
        // picked among those with frames left.
        let mut next = vec![0usize; tokens.len()];
        let total: usize = tokens.iter().map(|t| t.len() + 1).sum();
        let mut frames = Vec::with_capacity(total);
        for pick in &picks[..total] {
            let open: Vec<usize> = (0..tokens.len())
                .filter(|&r| next[r] <= tokens[r].len())
                .collect();
            let r = open[pick.index(open.len())];
            let k = next[r];
            next[r] += 1;
            frames.push((r, (k < tokens[r].len()).then_some(k)));
        }
        Conversation {
            ids,
            tokens,
            frames,
        }
    }

    fn text(&self, r: usize) -> String {
        self.tokens[r].concat()
    }

    /// Frame `i` of the delivery order, with `seq` i + 1 when `with_seq`.
    fn encode(&self, i: usize, with_seq: bool) -> String {
        let (r, k) = self.frames[i];
        let mut params = json!({"response_id": self.ids[r]});
        let method = match k {
            Some(k) => {
                params["token"] = json!(self.tokens[r][k]);
                "on_token"
            }
            None => "on_stop_token",
        };
        if with_seq {
            params["seq"] = json!(i as u64 + 1);
        }
        json!({"method": method, "params": params}).to_string()
    }

    /// Responses in the order their first frame arrives, which is the order
    /// they bind to the requests waiting for them.
    fn start_order(&self, frames: &[(usize, Option<usize>)]) -> Vec<usize> {
        let mut order = Vec::new();
        for (r, _) in frames {
            if !order.contains(r) {
                order.push(*r);
            }
        }
        order
    }
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z ,.']{1,8}",
        2 => "\\PC{0,6}",
        2 => prop::sample::select(vec![
            "\"", "\\", "\n", "\\n", "\\\"", "\r\n", "\t", "😀", "👩‍👩‍👧‍👦", "é", "e\u{301}",
            "\u{2028}", "\u{0}", "\u{1b}[0m", "{\"a\":[1]}", "", " ", "\u{feff}", "</script>",
        ])
        .prop_map(String::from),
        1 => prop::collection::vec(any::<char>(), 0..4).prop_map(|c| c.into_iter().collect()),
    ]
}

fn conversation() -> impl Strategy<Value = Conversation> {
    (
        prop::collection::vec(
            prop::collection::vec(token(), 0..=MAX_TOKENS),
            1..=MAX_RESPONSES,
        ),
        prop::collection::vec(any::<Index>(), MAX_RESPONSES * (MAX_TOKENS + 1)),
        any::<bool>(),
    )
        .prop_map(|(tokens, picks, fancy_ids)| {
            let ids = (0..tokens.len())
                .map(|i| {
                    if fancy_ids {
                        // Ids that need escaping take the non-borrowing path.
                        format!("résp \"{i}\"\\")
                    } else {
                        format!("resp-{i}")
                    }
                })
                .collect();
            Conversation::new(ids, tokens, &picks)
        })
}

// ---------------------------------------------------------------------------
// Delivery with seq + resume
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    /// The next `n` notifications, live.
    Live(usize),
    /// Re-send up to `len` notifications already delivered, from an
    /// arbitrary earlier point, as an overlapping resume replay would.
    Replay { start: Index, len: usize },
    /// The socket drops and the session reconnects and resumes.
    Drop {
        close_code: Option<u16>,
        /// Connected long enough to count as healthy before the drop.
        stable: bool,
        /// The new socket drops too, before the connect result.
        again_before_result: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1usize..=6).prop_map(Step::Live),
        2 => (any::<Index>(), 1usize..=40).prop_map(|(start, len)| Step::Replay { start, len }),
        2 => (
            prop::sample::select(vec![None, Some(1006), Some(1001), Some(1011), Some(4001)]),
            any::<bool>(),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(close_code, stable, again_before_result)| Step::Drop {
                close_code,
                stable,
                again_before_result,
            }),
    ]
}

/// Reopens after a drop, checking the resume point, and answers with a
/// resumed connection.
fn resume(d: &mut Driver, highest_applied: u64, again_before_result: bool) {
    let mut req = d.open();
    assert_eq!(
        req["params"]["resume_after_seq"].as_u64(),
        Some(highest_applied),
        "{req}"
    );
    if again_before_result {
        d.drop_socket(Some(1006));
        req = d.open();
        assert_eq!(
            req["params"]["resume_after_seq"].as_u64(),
            Some(highest_applied),
            "{req}"
        );
    }
    let connected_before = d.events.len();
    d.answer(
        &req,
        json!({"success": true, "resumed": true,
            "server": {"name": "t", "version": "1", "capabilities": CAPS}}),
    );
    assert!(d.s.state().is_connected());
    assert!(d.events[connected_before..]
        .iter()
        .any(|e| matches!(e, Event::Connected { resumed: true, .. })));
}

fn check_resumed_delivery(c: &Conversation, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut d = Driver::new();
    d.connect_first(&CAPS);
    let requests = d.send_messages(c.ids.len());
    let frames: Vec<String> = (0..c.frames.len()).map(|i| c.encode(i, true)).collect();
    // `delivered` frames (seq 1..=delivered) have reached the session.
    let mut delivered = 0usize;
    for step in steps {
        match step {
            Step::Live(n) => {
                let end = (delivered + n).min(frames.len());
                for f in &frames[delivered..end] {
                    d.frame(f);
                }
                delivered = end;
            }
            Step::Replay { start, len } if delivered > 0 => {
                let from = start.index(delivered);
                let to = (from + len).min(delivered);
                for f in &frames[from..to] {
                    d.frame(f);
                }
            }
            Step::Replay { .. } => {}
            Step::Drop {
                close_code,
                stable,
                again_before_result,
            } => {
                if *stable {
                    d.advance(Duration::from_secs(6));
                }
                d.drop_socket(*close_code);
                resume(&mut d, delivered as u64, *again_before_result);
            }
        }
        prop_assert_eq!(d.s.last_seq(), Some(delivered as u64));
    }
    for f in &frames[delivered..] {
        d.frame(f);
    }

    prop_assert!(d.errors().is_empty(), "{:?}", d.errors());
    prop_assert!(d.failed_requests().is_empty(), "{:?}", d.failed_requests());
    prop_assert_eq!(d.s.streaming_responses(), 0);
    prop_assert_eq!(d.s.last_seq(), Some(frames.len() as u64));

    let completed = d.completed();
    prop_assert_eq!(completed.len(), c.ids.len(), "{:?}", completed);
    let streamed = d.streamed();
    for (nth, r) in c.start_order(&c.frames).into_iter().enumerate() {
        let id = c.ids[r].as_str();
        let done: Vec<_> = completed.iter().filter(|x| &*x.id == id).collect();
        prop_assert_eq!(done.len(), 1, "{} completed {} times", id, done.len());
        prop_assert_eq!(&done[0].text, &c.text(r));
        prop_assert_eq!(done[0].status, ResponseStatus::Complete);
        prop_assert_eq!(done[0].request_id, Some(requests[nth]));
        // The app, reading token events, saw each token exactly once.
        let tokens = streamed.get(id).map(String::as_str).unwrap_or("");
        prop_assert_eq!(tokens, c.text(r));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// A base server: no seq, no resume
// ---------------------------------------------------------------------------

fn check_base_server_drop(
    c: &Conversation,
    cut: Index,
    close_code: Option<u16>,
) -> Result<(), TestCaseError> {
    let mut d = Driver::new();
    d.connect_first(&[]);
    let requests = d.send_messages(c.ids.len());
    let frames: Vec<String> = (0..c.frames.len()).map(|i| c.encode(i, false)).collect();
    let cut = cut.index(frames.len() + 1);
    for f in &frames[..cut] {
        d.frame(f);
    }
    d.drop_socket(close_code);

    let before = &c.frames[..cut];
    let started = |r: usize| before.iter().any(|(x, _)| *x == r);
    let stopped = |r: usize| before.contains(&(r, None));
    // What had arrived of each response before the drop.
    let arrived = |r: usize| -> String {
        before
            .iter()
            .filter_map(|&(x, k)| k.filter(|_| x == r))
            .map(|k| c.tokens[r][k].as_str())
            .collect()
    };

    let completed = d.completed();
    prop_assert_eq!(
        completed.len(),
        (0..c.ids.len()).filter(|&r| started(r)).count()
    );
    let order = c.start_order(before);
    let mut expect_failed = Vec::new();
    for (nth, &request) in requests.iter().enumerate() {
        let Some(&r) = order.get(nth) else {
            // No response started for it: it is cut too.
            expect_failed.push(request);
            continue;
        };
        let id = c.ids[r].as_str();
        let done: Vec<_> = completed.iter().filter(|x| &*x.id == id).collect();
        prop_assert_eq!(done.len(), 1);
        prop_assert_eq!(done[0].request_id, Some(request));
        if stopped(r) {
            prop_assert_eq!(done[0].status, ResponseStatus::Complete);
            prop_assert_eq!(&done[0].text, &c.text(r));
        } else {
            prop_assert_eq!(done[0].status, ResponseStatus::Interrupted);
            // Exactly what arrived: a prefix of the original, no gap.
            prop_assert_eq!(&done[0].text, &arrived(r));
            prop_assert!(c.text(r).starts_with(done[0].text.as_str()));
            expect_failed.push(request);
        }
    }
    prop_assert_eq!(d.failed_requests(), expect_failed);
    prop_assert_eq!(d.s.streaming_responses(), 0);

    // Reconnect: a base server cannot resume, and its late frames for the
    // cut responses are dropped, never appended.
    let before_reconnect = d.events.len();
    let req = d.open();
    prop_assert!(req["params"].get("resume_after_seq").is_none());
    d.answer(&req, json!({"success": true}));
    prop_assert!(d.s.state().is_connected());
    let reconnected = d.events[before_reconnect..]
        .iter()
        .any(|e| matches!(e, Event::Connected { resumed: false, .. }));
    prop_assert!(reconnected);
    for f in &frames[cut..] {
        d.frame(f);
    }
    let late = &d.events[before_reconnect..];
    for r in 0..c.ids.len() {
        let id = c.ids[r].as_str();
        let response = d.s.response(id);
        let late_tokens: String = late
            .iter()
            .filter_map(|e| match e {
                Event::Token { response_id, token } if &**response_id == id => Some(token.as_str()),
                _ => None,
            })
            .collect();
        let late_done = late
            .iter()
            .filter(|e| matches!(e, Event::ResponseComplete(x) if &*x.id == id))
            .count();
        if started(r) {
            let expected = if stopped(r) { c.text(r) } else { arrived(r) };
            prop_assert_eq!(&response.unwrap().text, &expected);
            prop_assert_eq!(late_tokens, "");
            prop_assert_eq!(late_done, 0);
        } else {
            // Started after the reconnect: whole, and not bound to a request
            // (those were all failed).
            let response = response.unwrap();
            prop_assert_eq!(&response.text, &c.text(r));
            prop_assert_eq!(response.status, ResponseStatus::Complete);
            prop_assert_eq!(response.request_id, None);
            prop_assert_eq!(late_tokens, c.text(r));
            prop_assert_eq!(late_done, 1);
        }
    }
    prop_assert!(d.errors().is_empty(), "{:?}", d.errors());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn resumed_delivery_reassembles_every_response_exactly_once(
        c in conversation(),
        steps in prop::collection::vec(step(), 0..24),
    ) {
        check_resumed_delivery(&c, &steps)?;
    }

    #[test]
    fn a_base_server_drop_leaves_gapless_prefixes(
        c in conversation(),
        cut in any::<Index>(),
        close_code in prop::sample::select(vec![None, Some(1006), Some(1001), Some(1011)]),
    ) {
        check_base_server_drop(&c, cut, close_code)?;
    }
}
