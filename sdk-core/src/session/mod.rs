//! The sans-IO session ([`Session`]); its driver contract is in its docs
//! (this module is private: the crate root re-exports what is public).

use crate::prelude::*;

mod config;
mod spare;

use alloc::collections::VecDeque;
use core::time::Duration;

pub use config::SessionConfig;
use spare::{Spare, Take};

use crate::accumulator::{Accumulator, Activity};
use crate::backoff::Backoff;
use crate::error::{decimal, Error, ProtocolError};
use crate::event::{ConnectionState, Event, RequestId, Response, StateChange};
use crate::stats::Stats;
use crate::time::Timestamp;
use crate::token::{Credential, CredentialKind};
use crate::wire::{
    self, capability, ClientRequest, ConnectParams, ConnectResult, ServerFrame, ServerInfo,
    ToolResponseParam,
};

/// Something the driver must do for the session. `Debug` redacts the
/// query values of [`Action::OpenSocket`]'s URL (a stream token, a client
/// key).
#[derive(Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the token provider for a fresh credential for `context_id`.
    FetchToken {
        /// Echo this to [`Session::handle_token`]; stale answers are ignored.
        fetch_id: u64,
        /// The context the token is for.
        context_id: String,
    },
    /// Open a WebSocket to `url` (it may carry a single-use stream token:
    /// never log it).
    OpenSocket {
        /// The URL.
        url: String,
    },
    /// Close the current socket (or abandon opening it).
    CloseSocket {
        /// WebSocket close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// Send a WebSocket ping on the current socket.
    SendPing,
}

impl core::fmt::Debug for Action {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Action::FetchToken {
                fetch_id,
                context_id,
            } => f
                .debug_struct("FetchToken")
                .field("fetch_id", fetch_id)
                .field("context_id", context_id)
                .finish(),
            Action::OpenSocket { url } => f
                .debug_struct("OpenSocket")
                .field("url", &redact_url(url))
                .finish(),
            Action::CloseSocket { code, reason } => f
                .debug_struct("CloseSocket")
                .field("code", code)
                .field("reason", reason)
                .finish(),
            Action::SendPing => f.write_str("SendPing"),
        }
    }
}

/// A session's part of its idempotency keys: 16 hex digits drawn from
/// `seed` (no `format!`: the browser build carries no formatting).
fn key_prefix(seed: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = fastrand::Rng::with_seed(seed ^ 0x9E37_79B9_7F4A_7C15).u64(..);
    (0..16)
        .map(|i| char::from(HEX[((n >> (60 - 4 * i)) & 0xF) as usize]))
        .collect()
}

/// `url` for `Debug`: every query value (a stream token, a client key) and
/// any user info before the host replaced by `<redacted>`; the scheme, host,
/// path and query keys stay, since they are what one debugs.
fn redact_url(url: &str) -> String {
    const REDACTED: &str = "<redacted>";
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
            match authority.rfind('@') {
                Some(at) => {
                    out.push_str(scheme);
                    out.push_str("://");
                    out.push_str(REDACTED);
                    out.push_str(&rest[at..]);
                }
                None => out.push_str(base),
            }
        }
        None => out.push_str(base),
    }
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let (key, value) = match pair.split_once('=') {
                Some((key, value)) => (Some(key), value),
                None => (None, pair),
            };
            if let Some(key) = key {
                out.push_str(key);
                out.push('=');
            }
            if !value.is_empty() {
                out.push_str(REDACTED);
            }
        }
    }
    out
}

/// Frames waiting to be sent. `Debug` shows only how many: the
/// `connect_to_context` frame carries the access token.
#[derive(Default)]
struct Transmits(VecDeque<String>);

impl core::fmt::Debug for Transmits {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "[{} frame(s), not shown]", self.0.len())
    }
}

/// The current state, with a few questions answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateView {
    /// The state.
    pub state: ConnectionState,
    /// Consecutive failed attempts.
    pub attempt: u32,
}

impl StateView {
    /// True when attached to the context.
    pub fn is_connected(&self) -> bool {
        self.state == ConnectionState::Connected
    }
}

#[derive(Debug)]
enum Phase {
    Idle,
    FetchingToken {
        fetch_id: u64,
        deadline: Timestamp,
    },
    Opening {
        credential: Credential,
        deadline: Timestamp,
    },
    Authenticating {
        request: RequestId,
        resume_requested: bool,
    },
    Connected {
        since: Timestamp,
    },
    /// Waiting to retry; `until` is `None` while the network is known to
    /// be down.
    Waiting {
        until: Option<Timestamp>,
        suspended: bool,
    },
    Closed,
    Failed,
}

impl Phase {
    fn has_socket(&self) -> bool {
        matches!(
            self,
            Phase::Opening { .. } | Phase::Authenticating { .. } | Phase::Connected { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    Connect,
    /// Makes the agent respond; settles when its response completes.
    Invocation,
    Plain,
}

#[derive(Debug)]
struct Pending {
    method: &'static str,
    kind: RequestKind,
    deadline: Timestamp,
    timeout: Duration,
    /// The response of an invocation completed; only its result is awaited.
    response_done: bool,
    /// The server answered it (an invocation answered before its response
    /// ended stays here only until that response ends).
    answered: bool,
    /// The server confirmed it (success result) or its response started.
    confirmed: bool,
    /// Sent on a socket that dropped before any sign the server got it.
    unconfirmed_at_drop: bool,
    /// An invocation sent with an idempotency key: sent again, with the
    /// same id and key, if its socket drops before the server confirms it.
    resend: Option<(ClientRequest, String)>,
}

/// Requests sent and not yet settled, by wire id. Rarely more than a few,
/// and looked up on every token of a bound response, so a vector searched
/// from the newest end beats hashing.
#[derive(Debug, Default)]
struct PendingRequests(Vec<(u64, Pending)>);

impl PendingRequests {
    fn insert(&mut self, id: u64, p: Pending) {
        self.remove(&id);
        self.0.push((id, p));
    }

    fn remove(&mut self, id: &u64) -> Option<Pending> {
        let i = self.0.iter().rposition(|(k, _)| k == id)?;
        Some(self.0.remove(i).1)
    }

    fn get_mut(&mut self, id: &u64) -> Option<&mut Pending> {
        self.0
            .iter_mut()
            .rev()
            .find(|(k, _)| k == id)
            .map(|(_, p)| p)
    }

    fn iter(&self) -> impl Iterator<Item = (&u64, &Pending)> {
        self.0.iter().map(|(k, p)| (k, p))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&u64, &mut Pending)> {
        self.0.iter_mut().map(|(k, p)| (&*k, p))
    }

    fn values(&self) -> impl Iterator<Item = &Pending> {
        self.0.iter().map(|(_, p)| p)
    }

    fn drain(&mut self) -> impl Iterator<Item = (u64, Pending)> + '_ {
        self.0.drain(..)
    }
}

/// The sans-IO session: the whole client side of one connection to one
/// context, as a deterministic state machine.
///
/// It owns no socket, clock or task. A driver feeds it what happened
/// (`handle_*`, plus user commands) and carries out what it asks for
/// (`poll_action`, `poll_transmit`), waking it at `poll_timeout`. Everything
/// hard lives here once, for every driver: request ids and correlation,
/// timeouts, the connection state machine, reconnecting with a fresh token
/// and jittered backoff, `seq` de-duplication and resume, and assembling
/// responses.
///
/// # Driver contract
///
/// * Call [`Session::start`] once, then loop: carry out every
///   [`Session::poll_action`], send every [`Session::poll_transmit`] frame,
///   hand every [`Session::poll_event`] to the application, and sleep until
///   [`Session::poll_timeout`] or the next input, then call
///   [`Session::handle_timeout`].
/// * [`Action::FetchToken`]: call the token provider; report the outcome with
///   [`Session::handle_token`], passing the same `fetch_id`.
/// * [`Action::OpenSocket`]: open a WebSocket to `url`; report
///   [`Session::handle_transport_open`] or [`Session::handle_transport_failed`].
///   Then report each text frame to [`Session::handle_frame`], pongs to
///   [`Session::handle_pong`], and the end of the socket to
///   [`Session::handle_transport_closed`].
/// * [`Action::CloseSocket`]: close the socket with that code; report nothing
///   more about it (the session has already moved on).
///
/// ```
/// use tokenrelay::{Action, Credential, Session, SessionConfig, Timestamp};
///
/// let mut s = Session::new("ctx-1", SessionConfig::new("ws://127.0.0.1:1/ws"), 7);
/// let t0 = Timestamp::ZERO;
/// s.start(t0);
/// let Some(Action::FetchToken { fetch_id, .. }) = s.poll_action() else { unreachable!() };
/// s.handle_token(fetch_id, Ok(Credential::access_token("key")), t0, 1_700_000_000);
/// assert!(matches!(s.poll_action(), Some(Action::OpenSocket { .. })));
/// s.handle_transport_open(t0);
/// let connect = s.poll_transmit().unwrap();
/// assert!(connect.contains(r#""method":"connect_to_context""#));
/// s.handle_frame(r#"{"id":"1","result":{"success":true}}"#, t0);
/// assert!(s.state().is_connected());
/// ```
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    context_id: String,
    phase: Phase,
    backoff: Backoff,
    acc: Accumulator,
    next_request: u64,
    next_fetch: u64,
    pending: PendingRequests,
    /// Requests submitted while no connection was attached, in order,
    /// with when each was queued (for `max_queued_age`).
    outbox: VecDeque<(RequestId, ClientRequest, Timestamp)>,
    transmits: Transmits,
    events: VecDeque<Event>,
    actions: VecDeque<Action>,
    server: Option<ServerInfo>,
    /// The last connection advertised `seq` and `resume`, so a drop may be
    /// healed by a replay and in-flight responses are not cut yet.
    resume_offered: bool,
    /// The one immediate fresh-token retry after a 401 has been used.
    auth_retry_spent: bool,
    /// Some connection of this session has attached. Before that, a fresh
    /// key refused twice is a misconfiguration, not a passing state.
    attached_once: bool,
    /// The server has acknowledged an invocation before its response
    /// ended (the reference server does, at once; the hosted one answers
    /// only after the stream). Only then does a missing acknowledgement
    /// mean the request may have been lost.
    early_acks: bool,
    network_available: bool,
    last_activity: Timestamp,
    last_ping: Timestamp,
    /// The next connection's credential, fetched ahead (see [`spare`]).
    spare: Spare,
    /// The credential of the connection being made is one worth keeping a
    /// spare for (a JWT access token: its expiry is known).
    spare_wanted: bool,
    /// The socket being opened presents a spare. If it is refused, a fresh
    /// key is fetched at once without spending the 401 retry: the spare was
    /// never tried, so its refusal says nothing about the provider.
    from_spare: bool,
    /// This session's part of every idempotency key (random per session;
    /// the request id makes each key unique within it).
    key_prefix: String,
    /// The counters kept here; the accumulator keeps the rest
    /// ([`Session::stats`] puts them together).
    stats: Stats,
}

impl Session {
    /// A session for `context_id`. `seed` seeds the backoff jitter; give
    /// each session a different one (tests give a fixed one).
    pub fn new(context_id: impl Into<String>, config: SessionConfig, seed: u64) -> Self {
        Session {
            backoff: Backoff::new(config.reconnect.clone(), seed),
            acc: Accumulator::new(config.max_retained_responses),
            config,
            context_id: context_id.into(),
            phase: Phase::Idle,
            next_request: 1,
            next_fetch: 1,
            pending: PendingRequests::default(),
            outbox: VecDeque::new(),
            transmits: Transmits::default(),
            events: VecDeque::new(),
            actions: VecDeque::new(),
            server: None,
            resume_offered: false,
            auth_retry_spent: false,
            attached_once: false,
            early_acks: false,
            network_available: true,
            last_activity: Timestamp::ZERO,
            last_ping: Timestamp::ZERO,
            spare: Spare::Empty,
            spare_wanted: false,
            from_spare: false,
            key_prefix: key_prefix(seed),
            stats: Stats::default(),
        }
    }

    // -- outputs -------------------------------------------------------------

    /// The next frame to send on the socket.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.transmits.0.pop_front()
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Moves every pending event to the back of `into` at once (O(1) when
    /// `into` is empty): cheaper than [`Session::poll_event`] one by one
    /// for drivers that hand events on in batches.
    pub fn drain_events(&mut self, into: &mut VecDeque<Event>) {
        if into.is_empty() {
            core::mem::swap(into, &mut self.events);
        } else {
            into.append(&mut self.events);
        }
    }

    /// The next thing the driver must do.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`Session::handle_timeout`] next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let phase = match &self.phase {
            Phase::FetchingToken { deadline, .. } | Phase::Opening { deadline, .. } => {
                Some(*deadline)
            }
            Phase::Waiting { until, .. } => *until,
            _ => None,
        };
        let requests = self.pending.values().map(|p| p.deadline).min();
        // The queue is in submission order: the front ages out first.
        let queued = self
            .config
            .max_queued_age
            .and_then(|age| Some(self.outbox.front()?.2 + age));
        let keepalive = if self.phase.has_socket() && !matches!(self.phase, Phase::Opening { .. }) {
            let ping = self
                .config
                .ping_interval
                .map(|i| self.last_activity.max(self.last_ping) + i);
            let idle = self.config.idle_timeout.map(|i| self.last_activity + i);
            [ping, idle].into_iter().flatten().min()
        } else {
            None
        };
        let spare = match self.phase {
            Phase::Connected { .. } if self.config.refresh_ahead => self.spare.refresh_at(),
            _ => None,
        };
        [phase, requests, queued, keepalive, spare]
            .into_iter()
            .flatten()
            .min()
    }

    // -- queries -------------------------------------------------------------

    /// The current state.
    pub fn state(&self) -> StateView {
        StateView {
            state: self.connection_state(),
            attempt: self.backoff.attempt(),
        }
    }

    /// What this session has done so far: attachments, reconnects,
    /// resumes, tokens, bytes received (see [`Stats`]). Cheap: a copy of
    /// a few counters.
    pub fn stats(&self) -> Stats {
        Stats {
            tokens: self.acc.tokens,
            duplicates: self.acc.duplicates,
            interrupted: self.acc.interrupted,
            ..self.stats
        }
    }

    /// The context this session is attached to.
    pub fn context_id(&self) -> &str {
        &self.context_id
    }

    /// The server's name, version and capabilities, once connected to a
    /// server that has extensions.
    pub fn server(&self) -> Option<&ServerInfo> {
        self.server.as_ref()
    }

    /// A response by id: streaming, or one of the last
    /// `max_retained_responses` completed ones.
    pub fn response(&self, response_id: &str) -> Option<&Response> {
        self.acc.response(response_id)
    }

    /// How many requests are waiting for a connection to be sent: those
    /// queued while disconnected, and the invocations sent on a socket that
    /// died before the server confirmed them, which are sent again (with
    /// their idempotency key) once attached. Nonzero only while no
    /// connection is attached; what a chat UI shows as "sending…".
    pub fn pending(&self) -> usize {
        let resend = self.idempotent();
        self.outbox.len()
            + self
                .pending
                .values()
                .filter(|p| resend && p.unconfirmed_at_drop && p.resend.is_some())
                .count()
    }

    /// The ids of the requests [`Session::pending`] counts, in the order
    /// they will be sent.
    pub fn pending_ids(&self) -> Vec<RequestId> {
        let resend = self.idempotent();
        let mut ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| resend && p.unconfirmed_at_drop && p.resend.is_some())
            .map(|(id, _)| *id)
            .collect();
        ids.extend(self.outbox.iter().map(|(id, _, _)| id.0));
        sort_ids(&mut ids);
        ids.into_iter().map(RequestId).collect()
    }

    /// The highest `seq` applied so far.
    pub fn last_seq(&self) -> Option<u64> {
        self.acc.last_seq()
    }

    // -- lifecycle -----------------------------------------------------------

    /// Starts connecting. Does nothing unless the session is idle.
    pub fn start(&mut self, now: Timestamp) {
        if matches!(self.phase, Phase::Idle) {
            self.begin_connect(now);
        }
    }

    /// Tells the session whether the network is up (a browser's
    /// `online`/`offline` events, a phone's reachability). While it is down
    /// no retry is attempted; when it comes back a waiting session retries
    /// at once.
    pub fn set_network_available(&mut self, available: bool, now: Timestamp) {
        self.network_available = available;
        if available {
            if let Phase::Waiting { .. } = self.phase {
                self.begin_connect(now);
            }
        } else if let Phase::Waiting { until, .. } = &mut self.phase {
            *until = None;
        }
    }

    /// Retries at once if the session is waiting to reconnect (a tab came
    /// back to the foreground, the user pressed "retry").
    pub fn reconnect_now(&mut self, now: Timestamp) {
        if let Phase::Waiting { .. } = self.phase {
            self.begin_connect(now);
        }
    }

    /// Closes the connection for good. Requests already sent fail with
    /// [`Error::Closed`] (their outcome is unknown), requests still queued
    /// for a connection with [`Error::ClosedBeforeSent`] (never sent);
    /// streaming responses end `interrupted`.
    pub fn close(&mut self) {
        if matches!(self.phase, Phase::Closed | Phase::Failed) {
            return;
        }
        if self.phase.has_socket() {
            self.actions.push_back(Action::CloseSocket {
                code: 1000,
                reason: "client closed".into(),
            });
        }
        self.fail_everything(&Error::Closed, &Error::ClosedBeforeSent);
        self.spare = Spare::Empty;
        self.phase = Phase::Closed;
        self.emit_state(ConnectionState::Closed, None, None);
    }

    // -- commands ------------------------------------------------------------

    /// Sends a human message (`add_message`); the agent streams a response
    /// whose [`Response::request_id`] is the returned id. Queued while
    /// disconnected.
    pub fn send_message(
        &mut self,
        message: impl Into<String>,
        now: Timestamp,
    ) -> Result<RequestId, Error> {
        self.submit(
            ClientRequest::AddMessage {
                message: message.into(),
            },
            now,
        )
    }

    /// Stops the running generation (`stop_invocation`); the partial response
    /// is kept and ends `stopped`.
    pub fn stop(&mut self, now: Timestamp) -> Result<RequestId, Error> {
        self.submit(ClientRequest::StopInvocation {}, now)
    }

    /// Rewrites the tail of the history and re-invokes the agent
    /// (`set_last_messages`, for voice barge-in).
    pub fn set_last_messages(
        &mut self,
        human_message: impl Into<String>,
        ai_message: Option<String>,
        now: Timestamp,
    ) -> Result<RequestId, Error> {
        self.submit(
            ClientRequest::SetLastMessages {
                human_message: human_message.into(),
                ai_message,
            },
            now,
        )
    }

    /// Answers client-side tool calls (`client_side_tool_responses`); the
    /// agent continues with a new response.
    pub fn send_tool_responses(
        &mut self,
        tool_responses: Vec<ToolResponseParam>,
        now: Timestamp,
    ) -> Result<RequestId, Error> {
        self.submit(
            ClientRequest::ClientSideToolResponses { tool_responses },
            now,
        )
    }

    fn submit(&mut self, request: ClientRequest, now: Timestamp) -> Result<RequestId, Error> {
        if matches!(self.phase, Phase::Closed | Phase::Failed) {
            return Err(Error::Closed);
        }
        let id = RequestId(self.next_request);
        if matches!(self.phase, Phase::Connected { .. }) {
            self.next_request += 1;
            self.transmit(id, &request, now);
        } else {
            if self.outbox.len() >= self.config.max_queued_requests {
                return Err(Error::QueueFull {
                    limit: self.config.max_queued_requests,
                });
            }
            self.next_request += 1;
            self.outbox.push_back((id, request, now));
        }
        Ok(id)
    }

    fn transmit(&mut self, id: RequestId, request: &ClientRequest, now: Timestamp) {
        // With the `idempotency` extension an invocation carries a key, so
        // it can be sent again after a drop without running twice.
        let key = (request.invokes_agent() && self.idempotent()).then(|| {
            let mut key = self.key_prefix.clone();
            key.push('-');
            crate::error::push_u64(&mut key, id.0);
            key
        });
        self.transmits
            .0
            .push_back(request.encode_with_key(Some(&decimal(id.0)), key.as_deref()));
        let resend = key.map(|k| (request.clone(), k));
        let (kind, timeout) = if request.invokes_agent() {
            self.acc.expect_response(id);
            (RequestKind::Invocation, self.config.invocation_timeout)
        } else {
            if let ClientRequest::StopInvocation {} = request {
                self.acc.stop_requested();
            }
            (RequestKind::Plain, self.config.request_timeout)
        };
        self.pending.insert(
            id.0,
            Pending {
                method: request.method(),
                kind,
                deadline: now + timeout,
                timeout,
                response_done: false,
                answered: false,
                confirmed: false,
                unconfirmed_at_drop: false,
                resend,
            },
        );
    }

    /// The server of the current connection takes idempotency keys.
    fn idempotent(&self) -> bool {
        self.server
            .as_ref()
            .is_some_and(|s| s.has(capability::IDEMPOTENCY))
    }

    /// Sends again every invocation that may have died with the last
    /// socket, in the order they were first sent, with their ids and keys:
    /// the server runs the ones it never got and answers the others with
    /// their original outcome (their replies come through the replay).
    fn resend_unconfirmed(&mut self, now: Timestamp) {
        if !self.idempotent() {
            return;
        }
        let mut ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.unconfirmed_at_drop && p.resend.is_some())
            .map(|(id, _)| *id)
            .collect();
        sort_ids(&mut ids);
        for id in ids {
            let Some(p) = self.pending.get_mut(&id) else {
                continue;
            };
            let Some((request, key)) = &p.resend else {
                continue;
            };
            let frame = request.encode_with_key(Some(&decimal(id)), Some(key));
            p.unconfirmed_at_drop = false;
            p.deadline = now + p.timeout;
            self.transmits.0.push_back(frame);
        }
    }

    // -- inputs --------------------------------------------------------------

    /// The token provider answered `fetch_id`. `unix_now` is the wall clock
    /// in unix seconds, to check the token's JWT `exp`.
    ///
    /// A provider failure is retried with backoff, except a refusal that
    /// retrying cannot fix ([`Error::Forbidden`], [`Error::NotFound`],
    /// [`Error::PaymentRequired`], [`Error::Config`]: the app's backend says
    /// this user may not have this context), which fails the session.
    pub fn handle_token(
        &mut self,
        fetch_id: u64,
        result: Result<Credential, Error>,
        now: Timestamp,
        unix_now: u64,
    ) {
        if self.spare.is_fetching(fetch_id) {
            // A refresh-ahead answer. A failure is not reported: the next
            // reconnect asks the provider again and reports it then.
            let margin = self.config.token_expiry_margin;
            return self.spare.fill(result.ok(), margin, now, unix_now);
        }
        match self.phase {
            Phase::FetchingToken { fetch_id: f, .. } if f == fetch_id => {}
            _ => return, // stale: a timeout already moved on
        }
        let credential = match result {
            Ok(c) => c,
            Err(
                e @ (Error::Forbidden(_)
                | Error::NotFound(_)
                | Error::PaymentRequired(_)
                | Error::Config { .. }),
            ) => return self.fail(e),
            Err(e) => return self.retry(e, None, now),
        };
        let margin = self.config.token_expiry_margin.as_secs();
        if let Some(exp) = credential.expires_at() {
            if exp <= unix_now.saturating_add(margin) {
                return self.retry(Error::ExpiredToken { expired_at: exp }, None, now);
            }
        }
        self.spare_wanted = spare::worth_keeping(&credential);
        self.from_spare = false;
        self.open_with(credential, now);
    }

    fn open_with(&mut self, credential: Credential, now: Timestamp) {
        let url = self.socket_url(&credential);
        self.phase = Phase::Opening {
            credential,
            deadline: now + self.config.open_timeout,
        };
        self.actions.push_back(Action::OpenSocket { url });
        self.emit_state(ConnectionState::Connecting, None, None);
    }

    /// The socket asked for by [`Action::OpenSocket`] is open.
    pub fn handle_transport_open(&mut self, now: Timestamp) {
        let Phase::Opening { credential, .. } = &self.phase else {
            return;
        };
        let resume_after_seq = if self.config.resume && self.resume_offered {
            self.acc.last_seq()
        } else {
            None
        };
        let request = ClientRequest::ConnectToContext(ConnectParams {
            context_id: self.context_id.clone(),
            access_token: match credential.kind() {
                CredentialKind::AccessToken => Some(credential.secret().to_owned()),
                CredentialKind::StreamToken => None,
            },
            resume_after_seq,
            client_key: self.config.client_key.clone(),
        });
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.transmits
            .0
            .push_back(request.encode(Some(&decimal(id.0))));
        self.pending.insert(
            id.0,
            Pending {
                method: request.method(),
                kind: RequestKind::Connect,
                deadline: now + self.config.request_timeout,
                timeout: self.config.request_timeout,
                response_done: false,
                answered: false,
                confirmed: false,
                unconfirmed_at_drop: false,
                resend: None,
            },
        );
        self.phase = Phase::Authenticating {
            request: id,
            resume_requested: resume_after_seq.is_some(),
        };
        self.last_activity = now;
        self.last_ping = now;
        self.emit_state(ConnectionState::Authenticating, None, None);
    }

    /// The socket could not be opened, or failed with an error instead of a
    /// close frame. Use [`Error::Unauthorized`]/[`Error::Forbidden`] for an
    /// HTTP 401/403 answer to the upgrade, [`Error::Transport`] otherwise.
    pub fn handle_transport_failed(&mut self, error: Error, now: Timestamp) {
        if !self.phase.has_socket() {
            return;
        }
        self.lose_socket(&error, now);
        self.after_refusal(error, now);
    }

    /// The socket closed; `code` is the close code if a close frame came.
    pub fn handle_transport_closed(&mut self, code: Option<u16>, reason: &str, now: Timestamp) {
        if !self.phase.has_socket() {
            return;
        }
        let error = code
            .and_then(|c| Error::from_close(c, reason))
            .unwrap_or_else(|| Error::ConnectionLost {
                code,
                reason: reason.to_owned(),
            });
        self.lose_socket(&error, now);
        self.after_refusal(error, now);
    }

    /// A pong (or any sign of life below the protocol) arrived.
    pub fn handle_pong(&mut self, now: Timestamp) {
        self.last_activity = now;
    }

    /// A text frame arrived.
    pub fn handle_frame(&mut self, text: &str, now: Timestamp) {
        if !self.phase.has_socket() {
            return;
        }
        self.last_activity = now;
        self.stats.frames_received += 1;
        self.stats.bytes_received += text.len() as u64;
        if text.len() > self.config.max_frame_len {
            let e = ProtocolError::FrameTooLarge {
                size: text.len(),
                limit: self.config.max_frame_len,
            };
            self.events.push_back(Event::Error(e.into()));
            return;
        }
        // The hot path: a plain `on_token` frame (nearly every frame of a
        // stream) goes straight to the accumulator, without the general
        // `ServerFrame` around it. `decode_server_frame` tries the same
        // scanner first, so the outcome is the one it would give. (Not in
        // the browser build, held to a size budget: there the same frames
        // take the general way, which reaches the same code.)
        //
        // The canonical layout's parts go on as borrowed `&str`s
        // (`wire::Plain`), never as a `TokenParams` moved through memory.
        #[cfg(target_arch = "wasm32")]
        self.handle_other_frame(text, now);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let activity = if let Some(p) = wire::scan_canonical_token(text) {
                self.acc.apply_plain_token(p, &mut self.events)
            } else if let Some(p) = wire::scan_general_token(text) {
                self.acc.apply_token(p, &mut self.events)
            } else {
                return self.handle_other_frame(text, now);
            };
            if let Some(activity) = activity {
                self.note_activity(activity, now);
            }
        }
    }

    /// Every frame but a plain `on_token` (on `wasm32`, every frame).
    fn handle_other_frame(&mut self, text: &str, now: Timestamp) {
        match wire::decode_server_frame(text) {
            Err(e) => {
                // A token cut inside a surrogate pair (wire::surrogates).
                if let Some(repaired) = wire::surrogates::repair(text) {
                    if let Ok(ServerFrame::Notification(wire::Notification::Token(p))) =
                        wire::decode_server_frame(&repaired)
                    {
                        if let Some(activity) = self.acc.apply_repaired_token(p, &mut self.events) {
                            self.note_activity(activity, now);
                        }
                        return;
                    }
                }
                self.events.push_back(Event::Error(e.into()))
            }
            Ok(ServerFrame::Response { id, result }) => self.handle_response(&id, result, now),
            Ok(ServerFrame::Notification(n)) => {
                if let Some(activity) = self.acc.apply(n, &mut self.events) {
                    self.note_activity(activity, now);
                }
            }
        }
    }

    /// A binary frame arrived; the protocol has none. Reported, not fatal.
    pub fn handle_binary_frame(&mut self, now: Timestamp) {
        if self.phase.has_socket() {
            self.last_activity = now;
            self.events
                .push_back(Event::Error(ProtocolError::BinaryFrame.into()));
        }
    }

    /// Time passed; act on every deadline that is due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        // First, whatever the phase: an aged-out request fails when its age
        // passes, not when the next connection comes.
        self.expire_queued(now);
        match self.phase {
            Phase::FetchingToken { deadline, .. } if now >= deadline => {
                let e = Error::Timeout {
                    what: "the token provider".into(),
                    after: self.config.token_timeout,
                };
                return self.retry(e, None, now);
            }
            Phase::Opening { deadline, .. } if now >= deadline => {
                let e = Error::Timeout {
                    what: "the socket to open".into(),
                    after: self.config.open_timeout,
                };
                self.close_socket(1000, "open timeout");
                self.lose_socket(&e, now);
                return self.retry(e, None, now);
            }
            Phase::Waiting { until: Some(t), .. } if now >= t && self.network_available => {
                return self.begin_connect(now);
            }
            _ => {}
        }
        self.expire_requests(now);
        if self.phase.has_socket() && !matches!(self.phase, Phase::Opening { .. }) {
            self.keepalive(now);
        }
        if matches!(self.phase, Phase::Connected { .. })
            && self.config.refresh_ahead
            && self.spare.refresh_at().is_some_and(|t| now >= t)
        {
            // The spare nears its expiry while the connection stays up.
            self.fetch_spare();
        }
    }

    /// Fails, unsent, the queued requests older than `max_queued_age`.
    fn expire_queued(&mut self, now: Timestamp) {
        let Some(age) = self.config.max_queued_age else {
            return;
        };
        while self
            .outbox
            .front()
            .is_some_and(|(_, _, at)| *at + age <= now)
        {
            let Some((id, _, _)) = self.outbox.pop_front() else {
                break;
            };
            self.events.push_back(Event::RequestFailed {
                request_id: id,
                error: Error::QueueExpired { after: age },
            });
        }
    }

    fn expire_requests(&mut self, now: Timestamp) {
        let mut due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        sort_ids(&mut due);
        for id in due {
            let Some(mut p) = self.pending.remove(&id) else {
                continue;
            };
            // The server may have queued it behind a response still
            // streaming (its answer then comes when that one ends), and no
            // sign can come while disconnected: only a quiet, connected
            // request timeout counts as lost.
            let quiet =
                matches!(self.phase, Phase::Connected { .. }) && self.acc.streaming_count() == 0;
            if p.unconfirmed_at_drop && !quiet {
                p.deadline = now + self.config.request_timeout;
                self.pending.insert(id, p);
                continue;
            }
            let error = if p.unconfirmed_at_drop {
                Error::ConnectionLost {
                    code: None,
                    // Pushed, not `format!`ed: no formatting code in the
                    // browser build (see `Error::push_message`).
                    reason: [
                        "`",
                        p.method,
                        "` was sent just before the connection dropped and the server \
                         never confirmed it; re-send it if that is safe",
                    ]
                    .concat(),
                }
            } else {
                Error::Timeout {
                    what: p.method.to_owned(),
                    after: p.timeout,
                }
            };
            match p.kind {
                RequestKind::Connect => {
                    self.close_socket(1000, "connect_to_context timed out");
                    self.lose_socket(&error, now);
                    return self.retry(error, None, now);
                }
                // The response stopped; its result never came. Complete the
                // reply with what trailed it so far.
                RequestKind::Invocation if p.response_done => {
                    self.acc.answered(RequestId(id), &mut self.events);
                }
                RequestKind::Invocation | RequestKind::Plain => {
                    self.acc.abandon(RequestId(id));
                    self.events.push_back(Event::RequestFailed {
                        request_id: RequestId(id),
                        error,
                    });
                }
            }
        }
    }

    fn keepalive(&mut self, now: Timestamp) {
        if let Some(idle) = self.config.idle_timeout {
            if now.saturating_since(self.last_activity) >= idle {
                let e = Error::Timeout {
                    what: "any sign of life from the server".into(),
                    after: idle,
                };
                self.close_socket(1000, "idle timeout");
                self.lose_socket(&e, now);
                return self.retry(e, None, now);
            }
        }
        if let Some(interval) = self.config.ping_interval {
            if now.saturating_since(self.last_activity.max(self.last_ping)) >= interval {
                self.actions.push_back(Action::SendPing);
                self.last_ping = now;
            }
        }
    }

    // -- responses -----------------------------------------------------------

    fn handle_response(&mut self, id: &str, result: wire::Json, now: Timestamp) {
        let pending = id
            .parse::<u64>()
            .ok()
            .and_then(|n| self.pending.remove(&n).map(|p| (n, p)));
        let Some((n, p)) = pending else {
            let e = ProtocolError::UnknownRequestId { id: id.to_owned() };
            self.events.push_back(Event::Error(e.into()));
            return;
        };
        let request_id = RequestId(n);
        if p.kind == RequestKind::Connect {
            return self.handle_connect_result(request_id, result, now);
        }
        if let Some(f) = wire::result_failure(&result) {
            self.acc.abandon(request_id);
            let error = Error::from_server(&f.error, f.code.as_deref(), None);
            self.events
                .push_back(Event::RequestFailed { request_id, error });
            return;
        }
        let p_kind_invocation = p.kind == RequestKind::Invocation;
        if p.kind == RequestKind::Invocation && !p.response_done {
            if let Some(rid) = wire::result_response_id(&result) {
                self.acc.name_response(request_id, &rid);
            }
            let mut p = p;
            self.early_acks = true;
            p.answered = true;
            p.confirmed = true;
            p.unconfirmed_at_drop = false;
            // Keep guarding the response with the inactivity timeout.
            self.pending.insert(n, p);
        }
        if p_kind_invocation {
            // The reply completes at the later of its stop and this answer.
            self.acc.answered(request_id, &mut self.events);
        }
        self.events
            .push_back(Event::RequestAcknowledged { request_id, result });
    }

    fn handle_connect_result(&mut self, request: RequestId, result: wire::Json, now: Timestamp) {
        let Phase::Authenticating {
            request: expected,
            resume_requested,
        } = self.phase
        else {
            return;
        };
        if expected != request {
            return;
        }
        if let Some(f) = wire::result_failure(&result) {
            let error = Error::from_server(&f.error, f.code.as_deref(), None);
            self.close_socket(1000, "connect_to_context refused");
            self.lose_socket(&error, now);
            return self.after_refusal(error, now);
        }
        let connect: ConnectResult = wire::connect_result(result);
        let server = connect.server.clone();
        let has = |cap: &str| server.as_ref().is_some_and(|s| s.has(cap));
        let resumed = resume_requested && has(capability::RESUME) && connect.resumed != Some(false);
        self.stats.connects += 1;
        if self.attached_once {
            self.stats.reconnects += 1;
        }
        if resumed {
            self.stats.resumes += 1;
            if let (Some(applied), Some(seq)) = (self.acc.last_seq(), connect.seq) {
                self.stats.replayed += seq.saturating_sub(applied);
            }
        }
        if !resumed {
            // Nothing can be replayed: what was in flight is cut, and seq
            // numbering starts over for de-duplication purposes.
            self.cut_in_flight(&Error::ConnectionLost {
                code: None,
                reason: "the server could not replay what was missed".into(),
            });
            self.acc.forget_seq();
        }
        if let (None, Some(seq)) = (self.acc.last_seq(), connect.seq) {
            // Nothing applied yet: resume from where the context stood.
            self.acc.set_seq_baseline(seq);
        }
        self.resume_offered = has(capability::SEQ) && has(capability::RESUME);
        self.server = server.clone();
        self.phase = Phase::Connected { since: now };
        self.auth_retry_spent = false;
        self.attached_once = true;
        self.from_spare = false;
        if self.config.refresh_ahead && self.spare_wanted && matches!(self.spare, Spare::Empty) {
            self.fetch_spare();
        }
        if connect.agent_speaks_first {
            self.acc.expect_unsolicited();
        }
        self.emit_state(ConnectionState::Connected, None, None);
        self.events.push_back(Event::Connected {
            agent: connect.agent.map(Box::new),
            resumed,
            server: server.map(Box::new),
        });
        // Invocations that may have died with the last socket are sent
        // again when the server de-duplicates them; the others get one
        // quiet request timeout from now to show a sign of life.
        self.resend_unconfirmed(now);
        let quiet_until = now + self.config.request_timeout;
        for (_, p) in self.pending.iter_mut() {
            if p.unconfirmed_at_drop {
                p.deadline = p.deadline.min(quiet_until);
            }
        }
        while let Some((id, request, _)) = self.outbox.pop_front() {
            self.transmit(id, &request, now);
        }
    }

    fn note_activity(&mut self, activity: Activity, now: Timestamp) {
        let Some(p) = self.pending.get_mut(&activity.request.0) else {
            return;
        };
        if activity.completed && p.answered {
            // Answered, then its response ended: nothing more is due. (Kept,
            // it would reach `expire_requests` and be "answered" again,
            // leaving the accumulator a stale entry per reply.)
            self.pending.remove(&activity.request.0);
            return;
        }
        p.confirmed = true;
        p.unconfirmed_at_drop = false;
        if activity.completed {
            p.response_done = true;
            p.deadline = now + self.config.request_timeout;
        } else {
            p.deadline = now + p.timeout;
        }
    }

    // -- connection life -----------------------------------------------------

    fn begin_connect(&mut self, now: Timestamp) {
        let (fetch_id, adopted) = match self.spare.take(now) {
            Take::Use(credential) => {
                self.spare_wanted = true;
                self.from_spare = true;
                return self.open_with(credential, now);
            }
            // The refresh-ahead fetch becomes this connection's fetch.
            Take::Await(fetch_id) => (fetch_id, true),
            Take::Fetch => {
                self.next_fetch += 1;
                (self.next_fetch - 1, false)
            }
        };
        self.phase = Phase::FetchingToken {
            fetch_id,
            deadline: now + self.config.token_timeout,
        };
        if !adopted {
            self.stats.token_fetches += 1;
            self.actions.push_back(Action::FetchToken {
                fetch_id,
                context_id: self.context_id.clone(),
            });
        }
        self.emit_state(ConnectionState::FetchingToken, None, None);
    }

    /// Asks the provider for the next connection's credential.
    fn fetch_spare(&mut self) {
        let fetch_id = self.next_fetch;
        self.next_fetch += 1;
        self.spare = Spare::Fetching { fetch_id };
        self.stats.token_fetches += 1;
        self.actions.push_back(Action::FetchToken {
            fetch_id,
            context_id: self.context_id.clone(),
        });
    }

    /// Bookkeeping when the socket is gone, whatever the reason.
    fn lose_socket(&mut self, cause: &Error, now: Timestamp) {
        if let Phase::Connected { since } = self.phase {
            self.backoff.connection_ended(now.saturating_since(since));
        }
        // Results of requests sent on this socket can never arrive.
        let lost: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.kind != RequestKind::Invocation)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some(p) = self.pending.remove(&id) {
                if p.kind == RequestKind::Plain {
                    self.events.push_back(Event::RequestFailed {
                        request_id: RequestId(id),
                        error: lost_with(cause),
                    });
                }
            }
        }
        // Invocations survive only if the server can replay their responses.
        if !(self.resume_offered && self.config.resume) {
            self.cut_in_flight(cause);
        } else if self.early_acks || self.idempotent() {
            // An invocation the server never confirmed may have died with the
            // socket. If it reached the server, its response shows up in the
            // replay or after the responses ahead of it; if nothing shows for
            // a quiet request timeout once reconnected, it fails as lost
            // (re-sending blindly could say it twice).
            for (_, p) in self.pending.iter_mut() {
                if p.kind == RequestKind::Invocation && !p.confirmed {
                    p.unconfirmed_at_drop = true;
                }
            }
        }
        if self.resume_offered && self.config.resume {
            // An answer that was due on this socket will never come (results
            // are not replayed), except to an invocation sent again with its
            // key: the others' replies are whole at their stop from now on.
            let resent = self.idempotent();
            let unanswerable: Vec<u64> = self
                .pending
                .iter()
                .filter(|(_, p)| {
                    p.kind == RequestKind::Invocation
                        && !(resent && p.unconfirmed_at_drop && p.resend.is_some())
                })
                .map(|(id, _)| *id)
                .collect();
            for id in unanswerable {
                self.acc.answered(RequestId(id), &mut self.events);
            }
        }
        self.phase = Phase::Waiting {
            until: None,
            suspended: false,
        };
    }

    /// Ends every streaming response as interrupted and fails every
    /// invocation still in flight.
    fn cut_in_flight(&mut self, cause: &Error) {
        self.acc.interrupt_all(&mut self.events);
        let mut cut: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.kind == RequestKind::Invocation)
            .map(|(id, _)| *id)
            .collect();
        sort_ids(&mut cut);
        for id in cut {
            let done = self.pending.remove(&id).is_some_and(|p| p.response_done);
            self.acc.abandon(RequestId(id));
            if !done {
                self.events.push_back(Event::RequestFailed {
                    request_id: RequestId(id),
                    error: lost_with(cause),
                });
            }
        }
    }

    /// Decides what follows a refusal or a lost socket.
    fn after_refusal(&mut self, error: Error, now: Timestamp) {
        match error {
            Error::Unauthorized(_) if self.from_spare || !self.auth_retry_spent => {
                // An expired or revoked key: one fresh token at once, without
                // spending the network retry budget (nor the one 401 retry
                // when the refused key was a spare fetched ahead).
                if !core::mem::take(&mut self.from_spare) {
                    self.auth_retry_spent = true;
                }
                self.emit_state(
                    ConnectionState::Reconnecting,
                    Some(Duration::ZERO),
                    Some(error),
                );
                self.begin_connect(now);
            }
            // The key the provider has just minted was refused too, before
            // any connection ever attached: no retry will fix a provider
            // minting keys the server does not take (wrong org, wrong
            // secret, wrong server), so `connect()` fails at once with the
            // cause instead of spinning until its deadline. Once attached,
            // a refusal may be passing (a key revoked and re-issued, a
            // server restarting with new secrets): it backs off and retries.
            Error::Unauthorized(_) if !self.attached_once => self.fail(error),
            // Likewise an untrusted certificate or a proxy asking for
            // credentials before the first attachment: the next attempt
            // meets the same certificate, the same proxy.
            Error::Tls { .. }
            | Error::Proxy {
                status: Some(407), ..
            } if !self.attached_once => self.fail(error),
            Error::RateLimited { retry_after, .. } => self.retry(error, retry_after, now),
            Error::Forbidden(_)
            | Error::NotFound(_)
            | Error::PaymentRequired(_)
            | Error::InvalidRequest(_)
            | Error::Config { .. } => self.fail(error),
            _ => self.retry(error, None, now),
        }
    }

    fn retry(&mut self, cause: Error, floor: Option<Duration>, now: Timestamp) {
        if self.phase.has_socket() {
            self.close_socket(1000, "retrying");
            self.lose_socket(&cause, now);
        }
        let Some(retry) = self.backoff.next_retry(now, floor) else {
            return self.fail(cause);
        };
        let until = self.network_available.then(|| now + retry.delay);
        self.phase = Phase::Waiting {
            until,
            suspended: retry.suspended,
        };
        let state = if retry.suspended {
            ConnectionState::Suspended
        } else {
            ConnectionState::Reconnecting
        };
        self.emit_state(state, Some(retry.delay), Some(cause));
        if retry.delay.is_zero() && self.network_available {
            self.begin_connect(now);
        }
    }

    fn fail(&mut self, cause: Error) {
        if self.phase.has_socket() {
            self.close_socket(1000, "failed");
        }
        self.fail_everything(&cause, &cause);
        self.spare = Spare::Empty;
        self.phase = Phase::Failed;
        self.emit_state(ConnectionState::Failed, None, Some(cause));
    }

    /// Fails every request: those sent with `sent`, those still queued
    /// (never sent) with `queued`, all in request order.
    fn fail_everything(&mut self, sent: &Error, queued: &Error) {
        self.acc.interrupt_all(&mut self.events);
        let mut ids: Vec<(u64, bool)> = self.pending.drain().map(|(id, _)| (id, true)).collect();
        ids.extend(self.outbox.drain(..).map(|(id, _, _)| (id.0, false)));
        #[cfg(not(target_arch = "wasm32"))]
        ids.sort_unstable();
        #[cfg(target_arch = "wasm32")]
        for i in 1..ids.len() {
            // A handful of ids: see `sort_ids`.
            let mut j = i;
            while j > 0 && ids[j - 1].0 > ids[j].0 {
                ids.swap(j - 1, j);
                j -= 1;
            }
        }
        for (id, was_sent) in ids {
            self.events.push_back(Event::RequestFailed {
                request_id: RequestId(id),
                error: if was_sent { sent } else { queued }.clone(),
            });
        }
    }

    fn close_socket(&mut self, code: u16, reason: &str) {
        self.actions.push_back(Action::CloseSocket {
            code,
            reason: reason.to_owned(),
        });
    }

    fn socket_url(&self, credential: &Credential) -> String {
        let mut url = self.config.ws_url.clone();
        let mut add = |key: &str, value: &str| {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(key);
            url.push('=');
            percent_encode_into(value, &mut url);
        };
        if credential.kind() == CredentialKind::StreamToken {
            add("token", credential.secret());
        }
        if let Some(key) = &self.config.client_key {
            add("client_key", key);
        }
        url
    }

    fn connection_state(&self) -> ConnectionState {
        match self.phase {
            Phase::Idle => ConnectionState::Idle,
            Phase::FetchingToken { .. } => ConnectionState::FetchingToken,
            Phase::Opening { .. } => ConnectionState::Connecting,
            Phase::Authenticating { .. } => ConnectionState::Authenticating,
            Phase::Connected { .. } => ConnectionState::Connected,
            Phase::Waiting {
                suspended: true, ..
            } => ConnectionState::Suspended,
            Phase::Waiting { .. } => ConnectionState::Reconnecting,
            Phase::Closed => ConnectionState::Closed,
            Phase::Failed => ConnectionState::Failed,
        }
    }

    fn emit_state(
        &mut self,
        state: ConnectionState,
        retry_in: Option<Duration>,
        cause: Option<Error>,
    ) {
        let attempt = if state == ConnectionState::Connected {
            0
        } else {
            self.backoff.attempt()
        };
        self.events
            .push_back(Event::StateChanged(Box::new(StateChange {
                state,
                attempt,
                retry_in,
                cause,
            })));
    }

    /// Number of responses still streaming.
    pub fn streaming_responses(&self) -> usize {
        self.acc.streaming_count()
    }

    /// Requests sent whose response has not started yet.
    pub fn awaiting_responses(&self) -> Vec<RequestId> {
        self.acc.awaiting().collect()
    }
}

/// Sorts request ids. The browser build uses an insertion sort (a handful
/// of ids; the standard sorts are ~4 KB of wasm); the result is the same.
fn sort_ids(ids: &mut [u64]) {
    #[cfg(not(target_arch = "wasm32"))]
    ids.sort_unstable();
    #[cfg(target_arch = "wasm32")]
    for i in 1..ids.len() {
        let mut j = i;
        while j > 0 && ids[j - 1] > ids[j] {
            ids.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// The error a request gets when its socket went away under it.
fn lost_with(cause: &Error) -> Error {
    match cause {
        Error::ConnectionLost { .. } => cause.clone(),
        other => {
            let mut reason = String::new();
            other.push_message(&mut reason); // `to_string()`, without core::fmt
            Error::ConnectionLost { code: None, reason }
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode_into(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(
                char::from_digit(u32::from(b >> 4), 16)
                    .unwrap_or('0')
                    .to_ascii_uppercase(),
            );
            out.push(
                char::from_digit(u32::from(b & 15), 16)
                    .unwrap_or('0')
                    .to_ascii_uppercase(),
            );
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn debug_never_prints_a_credential() {
        let mut config = SessionConfig::new("wss://relay.test/ws");
        config.client_key = Some("pk_live_key".into());
        let mut s = Session::new("ctx", config, 1);
        let t = Timestamp::ZERO;
        s.start(t);
        let Some(Action::FetchToken { fetch_id, .. }) = s.poll_action() else {
            panic!("no token fetch")
        };
        s.handle_token(
            fetch_id,
            Ok(Credential::stream_token("pub_tok_secret")),
            t,
            0,
        );
        let open = s.poll_action().expect("open the socket");
        let Action::OpenSocket { url } = &open else {
            panic!("{open:?}")
        };
        assert!(
            url.contains("pub_tok_secret"),
            "the driver gets the real URL"
        );
        let debug = format!("{open:?}");
        assert_eq!(
            debug,
            r#"OpenSocket { url: "wss://relay.test/ws?token=<redacted>&client_key=<redacted>" }"#
        );
        s.handle_transport_open(t);
        // The connect frame is queued, and the session's own Debug shows it.
        for debug in [format!("{s:?}"), format!("{s:#?}")] {
            assert!(!debug.contains("pub_tok_secret"), "{debug}");
            assert!(!debug.contains("pk_live_key"), "{debug}");
        }

        let mut s = Session::new("ctx", SessionConfig::new("ws://x/ws"), 1);
        s.start(t);
        let Some(Action::FetchToken { fetch_id, .. }) = s.poll_action() else {
            panic!("no token fetch")
        };
        s.handle_token(fetch_id, Ok(Credential::access_token("sk_secret")), t, 0);
        s.handle_transport_open(t);
        assert!(!format!("{s:?}").contains("sk_secret"));
        assert!(s.poll_transmit().unwrap().contains("sk_secret"));
    }

    #[test]
    fn urls_keep_what_is_worth_debugging() {
        for (url, shown) in [
            ("ws://h/ws", "ws://h/ws"),
            ("ws://h/ws?", "ws://h/ws?"),
            ("ws://h/ws?a=1&b", "ws://h/ws?a=<redacted>&<redacted>"),
            ("ws://h/ws?a=&&b=2", "ws://h/ws?a=&&b=<redacted>"),
            (
                "wss://u:p@h:1/ws?t=x",
                "wss://<redacted>@h:1/ws?t=<redacted>",
            ),
            ("wss://h/p@th", "wss://h/p@th"),
            ("nonsense", "nonsense"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
