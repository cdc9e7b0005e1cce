//! Property test of the `idempotency` extension, through the public API of
//! the sans-IO [`Session`] only, against a simulated server that
//! de-duplicates on keys and replays on resume (as the reference server
//! does): random invocations, random delivery of frames each way, and
//! random socket cuts that lose whatever was in flight.
//!
//! * Every invocation the app sent resolves exactly once: one complete
//!   reply bound to its request, never a failure.
//! * The messages the server ran, in order, are exactly the messages the
//!   app sent, each once.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};
use tokenrelay::{Action, Session, SessionConfig};
use tokenrelay::{Credential, Event, RequestId, ResponseStatus, Timestamp};

const UNIX_NOW: u64 = 1_700_000_000;
const CAPS: [&str; 3] = ["seq", "resume", "idempotency"];

/// The server: a history, the keys it has seen, and every notification it
/// sent (its replay buffer, never trimmed here).
#[derive(Default)]
struct Server {
    ran: Vec<String>,
    keys: Vec<(String, String)>,
    notifications: Vec<String>,
    /// Frames on their way to the client on the current socket.
    to_client: VecDeque<String>,
}

impl Server {
    /// Takes one client frame off the current socket.
    fn take(&mut self, frame: &Value) {
        let id = frame["id"].clone();
        match frame["method"].as_str() {
            Some("add_message") => {
                let key = frame["idempotency_key"]
                    .as_str()
                    .expect("every invocation carries a key")
                    .to_owned();
                if let Some((_, rid)) = self.keys.iter().find(|(k, _)| *k == key) {
                    let answer = json!({"id": id, "result": {"success": true,
                        "response_id": rid, "repeated": true}});
                    self.to_client.push_back(answer.to_string());
                    return;
                }
                let message = frame["params"]["message"].as_str().unwrap().to_owned();
                let rid = format!("r{}", self.ran.len());
                self.keys.push((key, rid.clone()));
                self.ran.push(message.clone());
                let answer = json!({"id": id, "result": {"success": true, "response_id": rid}});
                self.to_client.push_back(answer.to_string());
                for n in [
                    json!({"method": "on_token", "params": {"token": message, "response_id": rid}}),
                    json!({"method": "on_stop_token", "params": {"response_id": rid}}),
                ] {
                    let mut n = n;
                    let seq = self.notifications.len() as u64 + 1;
                    n["params"]["seq"] = json!(seq);
                    self.notifications.push(n.to_string());
                    self.to_client.push_back(n.to_string());
                }
            }
            other => panic!("unexpected request {other:?}"),
        }
    }
}

/// What happens next.
#[derive(Debug, Clone)]
enum Step {
    /// The app sends a message.
    Send,
    /// The next client frame reaches the server.
    ToServer,
    /// The next server frame reaches the client.
    ToClient,
    /// The socket dies: everything in flight either way is lost.
    Cut,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Send),
        3 => Just(Step::ToServer),
        4 => Just(Step::ToClient),
        1 => Just(Step::Cut),
    ]
}

struct World {
    s: Session,
    now: Timestamp,
    server: Server,
    /// Client frames on their way to the server on the current socket.
    to_server: VecDeque<Value>,
    events: Vec<Event>,
    sent: Vec<(RequestId, String)>,
}

impl World {
    fn new() -> Self {
        let mut config = SessionConfig::new("ws://relay.test/ws");
        config.refresh_ahead = false;
        config.ping_interval = None;
        config.idle_timeout = None;
        config.request_timeout = Duration::from_secs(3600);
        config.invocation_timeout = Duration::from_secs(3600);
        let mut w = World {
            s: Session::new("ctx", config, 11),
            now: Timestamp::from_millis(1_000),
            server: Server::default(),
            to_server: VecDeque::new(),
            events: Vec::new(),
            sent: Vec::new(),
        };
        w.s.start(w.now);
        w.attach();
        w
    }

    fn pump(&mut self) {
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
        while let Some(t) = self.s.poll_transmit() {
            self.to_server
                .push_back(serde_json::from_str(&t).expect("JSON"));
        }
    }

    /// Token, socket, `connect_to_context` answered (resuming after the
    /// client's last `seq`, replaying what it missed).
    fn attach(&mut self) {
        for _ in 0..100 {
            let fetch = std::iter::from_fn(|| self.s.poll_action()).find_map(|a| match a {
                Action::FetchToken { fetch_id, .. } => Some(fetch_id),
                _ => None,
            });
            if let Some(fetch) = fetch {
                self.s
                    .handle_token(fetch, Ok(Credential::access_token("k")), self.now, UNIX_NOW);
                break;
            }
            let next = self.s.poll_timeout().expect("a deadline while waiting");
            self.now = next;
            self.s.handle_timeout(self.now);
        }
        while self.s.poll_action().is_some() {}
        self.s.handle_transport_open(self.now);
        let connect = self.s.poll_transmit().expect("connect_to_context");
        let connect: Value = serde_json::from_str(&connect).unwrap();
        let after = connect["params"]["resume_after_seq"].as_u64().unwrap_or(0) as usize;
        let result = json!({"id": connect["id"], "result": {"success": true, "resumed": true,
            "seq": self.server.notifications.len(),
            "server": {"name": "t", "version": "1", "capabilities": CAPS}}});
        self.s.handle_frame(&result.to_string(), self.now);
        let from = after.min(self.server.notifications.len());
        for n in &self.server.notifications[from..] {
            self.s.handle_frame(n, self.now);
        }
        self.pump();
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Send => {
                let text = format!("m{}", self.sent.len());
                let id = self.s.send_message(text.clone(), self.now).unwrap();
                self.sent.push((id, text));
            }
            Step::ToServer => {
                if let Some(f) = self.to_server.pop_front() {
                    self.server.take(&f);
                }
            }
            Step::ToClient => {
                if let Some(f) = self.server.to_client.pop_front() {
                    self.s.handle_frame(&f, self.now);
                }
            }
            Step::Cut => {
                self.to_server.clear();
                self.server.to_client.clear();
                self.s.handle_transport_closed(Some(1006), "", self.now);
                self.pump();
                self.attach();
            }
        }
        self.pump();
    }

    /// Everything in flight is delivered, both ways, until nothing moves.
    fn settle(&mut self) {
        while !self.to_server.is_empty() || !self.server.to_client.is_empty() {
            self.apply(&Step::ToServer);
            self.apply(&Step::ToClient);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_invocation_resolves_exactly_once_and_runs_exactly_once(
        steps in prop::collection::vec(step(), 1..60),
    ) {
        let mut w = World::new();
        for step in &steps {
            w.apply(step);
        }
        w.settle();

        let failed: Vec<_> = w.events.iter().filter(|e| matches!(e, Event::RequestFailed { .. })).collect();
        prop_assert!(failed.is_empty(), "{:?}", failed);
        for (id, text) in &w.sent {
            let done: Vec<_> = w
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::ResponseComplete(r) if r.request_id == Some(*id) => Some(r),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(done.len(), 1, "{} resolved {} times", text, done.len());
            prop_assert_eq!(done[0].status, ResponseStatus::Complete);
            prop_assert_eq!(&done[0].text, text);
        }
        let app: Vec<&String> = w.sent.iter().map(|(_, t)| t).collect();
        let ran: Vec<&String> = w.server.ran.iter().collect();
        prop_assert_eq!(ran, app, "the server ran each message once, in order");
    }
}
