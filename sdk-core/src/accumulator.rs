//! Assembles notifications into [`Response`]s by `response_id`, drops `seq`
//! duplicates, and binds each new response to the request that caused it.
//!
//! Memory stays bounded: responses still streaming are few (usually one or
//! two, so they live in a small vector searched by id, which beats hashing
//! on the token hot path), and completed responses are kept for lookup up to
//! a configurable count, oldest evicted first.
//!
//! # When a reply is whole
//!
//! A reply completes when both its `on_stop_token` and its request's result
//! have arrived, whichever comes last. The reference server answers a
//! request before the first token and sends what trails a reply (tool
//! calls, events) before `on_stop_token`, so its replies complete at the
//! stop. The hosted service answers only after the stream, and sends
//! `on_client_side_tool_calls` and `on_events` *after* `on_stop_token`:
//! there a stopped reply is *held* until the result, collecting what
//! trails it, so the [`Response`] handed to the app carries its client-side
//! tool calls. A reply with no request (the agent speaking first)
//! completes at its stop. Notifications for a reply already handed out are
//! still delivered as events and attached to the stored copy.

use crate::prelude::*;

use alloc::collections::VecDeque;

use crate::error::ProtocolError;
use crate::event::{Event, RequestId, Response, ResponseId, ResponseStatus, ToolCall, ToolResult};
use crate::token_text::TokenText;
use crate::wire::{Notification, StopReason, TokenParams};

/// What applying a notification did to a response bound to a request, so
/// the session can refresh or settle that request's timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Activity {
    pub request: RequestId,
    pub completed: bool,
}

/// What the `seq` check says to do with a notification.
enum SeqStep {
    Apply,
    /// Already applied (a replay).
    Duplicate,
    /// Notifications from `expected` up to this one's were missed.
    Gap {
        expected: u64,
    },
}

/// Tool calls or client-side calls that arrived while no response was
/// streaming; they join the next response that starts.
#[derive(Debug)]
enum Orphan {
    ToolCall(ToolCall),
    ToolResult(ToolResult),
    ClientSideToolCalls(Vec<crate::wire::Json>),
}

/// How many ended response ids are remembered (ids only: a few KiB).
const ENDED_IDS: usize = 1024;

#[derive(Debug)]
pub(crate) struct Accumulator {
    streaming: Vec<Response>,
    completed: VecDeque<Response>,
    max_completed: usize,
    /// Highest `seq` applied on this context (resets when a connection
    /// could not resume, since nothing can then be replayed twice).
    last_seq: Option<u64>,
    /// Requests whose responses have not started yet, oldest first.
    awaiting: VecDeque<RequestId>,
    /// `response_id`s a server named in a request's result before the
    /// response's first notification arrived.
    named: Vec<(String, RequestId)>,
    /// The agent will start a response on its own (agent_speaks_first); the
    /// next new response is not bound to a request.
    unsolicited_next: bool,
    /// Responses streaming when `stop` was sent (a base server sends no
    /// stop reason, so this is how `stopped` is told from `complete`).
    stopping: Vec<ResponseId>,
    /// Ids of responses that ended, kept longer than the responses
    /// themselves so late notifications never restart one with a gap.
    ended: VecDeque<ResponseId>,
    orphans: Vec<Orphan>,
    /// Stopped replies whose request has not been answered yet (a server
    /// that acknowledges after the stream): complete at the answer, with
    /// the status their stop gave them (until then they read `streaming`:
    /// not handed to the app yet).
    held: Vec<(Response, ResponseStatus)>,
    /// Requests answered before their reply stopped.
    answered: Vec<RequestId>,
    /// High surrogate halves that ended a token, by response, waiting for
    /// the low half that starts the next (`wire::surrogates`).
    split_high: Vec<(ResponseId, u16)>,
    /// What [`crate::Stats`] reads from here: tokens handed out,
    /// duplicates dropped, replies ended `interrupted`.
    pub(crate) tokens: u64,
    pub(crate) duplicates: u64,
    pub(crate) interrupted: u64,
}

impl Accumulator {
    pub(crate) fn new(max_completed: usize) -> Self {
        Accumulator {
            streaming: Vec::new(),
            completed: VecDeque::new(),
            max_completed,
            last_seq: None,
            awaiting: VecDeque::new(),
            named: Vec::new(),
            unsolicited_next: false,
            stopping: Vec::new(),
            ended: VecDeque::new(),
            orphans: Vec::new(),
            held: Vec::new(),
            answered: Vec::new(),
            split_high: Vec::new(),
            tokens: 0,
            duplicates: 0,
            interrupted: 0,
        }
    }

    pub(crate) fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    pub(crate) fn forget_seq(&mut self) {
        self.last_seq = None;
    }

    pub(crate) fn set_seq_baseline(&mut self, seq: u64) {
        self.last_seq = Some(seq);
    }

    /// A request that makes the agent respond was sent.
    pub(crate) fn expect_response(&mut self, request: RequestId) {
        self.awaiting.push_back(request);
    }

    /// The agent will speak first on this connection.
    pub(crate) fn expect_unsolicited(&mut self) {
        self.unsolicited_next = true;
    }

    /// `stop` was sent: responses streaming now end as `stopped`.
    pub(crate) fn stop_requested(&mut self) {
        self.stopping = self.streaming.iter().map(|r| r.id.clone()).collect();
    }

    /// Stops waiting for `request`'s response (it failed or timed out).
    pub(crate) fn abandon(&mut self, request: RequestId) {
        self.awaiting.retain(|r| *r != request);
        self.named.retain(|(_, r)| *r != request);
        self.answered.retain(|r| *r != request);
    }

    /// The server answered `request` (or will not: its result timed out
    /// after the reply stopped). A reply held for that answer completes now,
    /// with whatever trailed it; otherwise the reply completes at its stop.
    pub(crate) fn answered(&mut self, request: RequestId, events: &mut VecDeque<Event>) {
        if let Some(i) = self
            .held
            .iter()
            .position(|(r, _)| r.request_id == Some(request))
        {
            let (mut r, status) = self.held.remove(i);
            r.status = status;
            self.finish(r, events);
        } else if !self.answered.contains(&request) {
            self.answered.push(request);
        }
    }

    /// Requests still waiting for their response to start.
    pub(crate) fn awaiting(&self) -> impl Iterator<Item = RequestId> + '_ {
        self.awaiting.iter().copied()
    }

    /// A result named the response a request started.
    pub(crate) fn name_response(&mut self, request: RequestId, response_id: &str) {
        if let Some(r) = self.find_mut(response_id) {
            // It started already; if FIFO binding gave it to another request,
            // the server's word wins and that request waits again.
            if r.request_id != Some(request) {
                if let Some(other) = r.request_id.replace(request) {
                    self.awaiting.push_front(other);
                }
            }
            self.awaiting.retain(|q| *q != request);
            return;
        }
        self.awaiting.retain(|q| *q != request);
        self.named.push((response_id.to_owned(), request));
    }

    pub(crate) fn response(&self, id: &str) -> Option<&Response> {
        self.streaming
            .iter()
            .chain(self.held.iter().map(|(r, _)| r))
            .chain(self.completed.iter().rev())
            .find(|r| &*r.id == id)
    }

    pub(crate) fn streaming_count(&self) -> usize {
        // A held reply is not the app's yet: it still counts.
        self.streaming.len() + self.held.len()
    }

    /// The `seq` check every notification passes first: a replayed
    /// duplicate is dropped, a gap reported, anything else applied.
    fn seq_step(&mut self, seq: Option<u64>) -> SeqStep {
        if let Some(seq) = seq {
            match self.last_seq {
                // A replayed duplicate: already applied.
                Some(last) if seq <= last => {
                    self.duplicates += 1;
                    return SeqStep::Duplicate;
                }
                Some(last) if seq > last + 1 => {
                    self.last_seq = Some(seq);
                    return SeqStep::Gap { expected: last + 1 };
                }
                _ => self.last_seq = Some(seq),
            }
        }
        SeqStep::Apply
    }

    /// Applies one `on_token`: what [`Accumulator::apply`] does with a
    /// [`Notification::Token`], for the hot path, which has the params
    /// without the notification around them.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn apply_token(
        &mut self,
        p: TokenParams<'_>,
        events: &mut VecDeque<Event>,
    ) -> Option<Activity> {
        match self.seq_step(p.seq) {
            SeqStep::Apply => self.token(&p.response_id, &p.token, events),
            SeqStep::Duplicate => None,
            SeqStep::Gap { expected } => self.gap(expected, Notification::Token(p), events),
        }
    }

    /// [`Accumulator::apply_token`] for a canonical frame's borrowed parts:
    /// the frame handler's hot path (see [`crate::wire::Plain`]).
    #[cfg(not(target_arch = "wasm32"))]
    #[inline]
    pub(crate) fn apply_plain_token(
        &mut self,
        p: crate::wire::Plain<'_>,
        events: &mut VecDeque<Event>,
    ) -> Option<Activity> {
        match self.seq_step(p.seq) {
            SeqStep::Apply => self.token(p.response_id, p.token, events),
            SeqStep::Duplicate => None,
            SeqStep::Gap { expected } => self.gap(expected, Notification::Token(p.into()), events),
        }
    }

    /// Applies one notification, pushing the events it produces.
    pub(crate) fn apply(
        &mut self,
        notification: Notification<'_>,
        events: &mut VecDeque<Event>,
    ) -> Option<Activity> {
        match self.seq_step(notification.seq()) {
            SeqStep::Apply => {}
            SeqStep::Duplicate => return None,
            SeqStep::Gap { expected } => return self.gap(expected, notification, events),
        }
        match notification {
            Notification::Token(p) => self.token(&p.response_id, &p.token, events),
            Notification::StopToken(p) => {
                let idx = self.streaming_index(&p.response_id, events)?;
                if !self.split_high.is_empty() {
                    self.flush_split_high(idx, events);
                }
                let mut r = self.streaming.swap_remove(idx);
                r.stop_reason = p.reason;
                r.status = match p.reason {
                    // The server cut the agent short at its round limit:
                    // what came is kept, as for a stop.
                    Some(StopReason::Stopped | StopReason::RoundLimit) => ResponseStatus::Stopped,
                    // The tool answers came too late to continue, or the
                    // server (or the cluster instance generating it) went
                    // away mid-reply: what came is a prefix.
                    Some(
                        StopReason::ToolTimeout | StopReason::Shutdown | StopReason::InstanceLost,
                    ) => ResponseStatus::Interrupted,
                    Some(StopReason::Error) => ResponseStatus::Failed,
                    Some(StopReason::Complete) => ResponseStatus::Complete,
                    None | Some(StopReason::Other) if self.stopping.contains(&r.id) => {
                        ResponseStatus::Stopped
                    }
                    None | Some(StopReason::Other) => ResponseStatus::Complete,
                };
                self.stopping.retain(|id| *id != r.id);
                let activity = r.request_id.map(|request| Activity {
                    request,
                    completed: true,
                });
                match r.request_id {
                    // Not answered yet: what trails the stop may still come.
                    Some(request) if !self.answered.contains(&request) => {
                        self.ended.push_back(r.id.clone());
                        let status = core::mem::replace(&mut r.status, ResponseStatus::Streaming);
                        self.held.push((r, status));
                    }
                    _ => self.finish(r, events),
                }
                activity
            }
            Notification::ToolCall(p) => {
                let call = ToolCall {
                    tool_call_id: p.tool_call_id,
                    tool_name: p.tool_name,
                    tool_input: p.tool_input,
                };
                let target = self.attach_target(p.response_id.as_deref());
                events.push_back(Event::ToolCall {
                    response_id: target.as_ref().map(|(id, _)| id.clone()),
                    call: Box::new(call.clone()),
                });
                self.attach(target, Orphan::ToolCall(call))
            }
            Notification::ToolResponse(p) => {
                let result = ToolResult {
                    tool_call_id: p.tool_call_id,
                    tool_name: p.tool_name,
                    tool_output: p.tool_output,
                };
                let target = self.attach_target(p.response_id.as_deref());
                events.push_back(Event::ToolResponse {
                    response_id: target.as_ref().map(|(id, _)| id.clone()),
                    result: Box::new(result.clone()),
                });
                self.attach(target, Orphan::ToolResult(result))
            }
            Notification::ClientSideToolCalls(p) => {
                let target = self.attach_target(p.response_id.as_deref());
                events.push_back(Event::ClientSideToolCalls {
                    response_id: target.as_ref().map(|(id, _)| id.clone()),
                    tool_calls: p.tool_calls.clone(),
                });
                self.attach(target, Orphan::ClientSideToolCalls(p.tool_calls))
            }
            Notification::Events(p) => {
                // Events come after the response completed; they attach to
                // it wherever it is kept.
                let response = p.response_id.as_deref().and_then(|id| self.find_mut(id));
                let response_id = response.as_ref().map(|r| r.id.clone());
                if let Some(r) = response {
                    r.events.extend(p.events.iter().cloned());
                }
                events.push_back(Event::Events {
                    response_id,
                    events: p.events,
                });
                None
            }
            Notification::Unknown { method, params } => {
                events.push_back(Event::Unknown { method, params });
                None
            }
        }
    }

    /// A token that passed the `seq` check: appended to its response's
    /// text and handed out as an event.
    #[inline]
    fn token(
        &mut self,
        response_id: &str,
        token: &str,
        events: &mut VecDeque<Event>,
    ) -> Option<Activity> {
        let idx = self.streaming_index(response_id, events)?;
        if !self.split_high.is_empty() {
            // A high half was waiting and this token does not start
            // with its low half: the half is lost.
            self.flush_split_high(idx, events);
        }
        let r = &mut self.streaming[idx];
        r.text.push_str(token);
        self.tokens += 1;
        events.push_back(Event::Token {
            response_id: r.id.clone(),
            token: TokenText::new(token),
        });
        r.request_id.map(|request| Activity {
            request,
            completed: false,
        })
    }

    /// An `on_token` whose frame held a lone surrogate escape and was
    /// decoded after [`crate::wire::surrogates::repair`]: a high half that
    /// ends it waits for the next token of the response; a low half that
    /// starts it joins the half waiting. A token left empty emits no event.
    pub(crate) fn apply_repaired_token(
        &mut self,
        mut p: TokenParams<'_>,
        events: &mut VecDeque<Event>,
    ) -> Option<Activity> {
        use crate::wire::surrogates::{join, split_token};
        let (lead, body, trail) = split_token(&p.token);
        let waiting = self
            .split_high
            .iter()
            .position(|(id, _)| **id == *p.response_id)
            .map(|i| self.split_high.swap_remove(i).1);
        let mut text = String::with_capacity(body.len() + 8);
        match (waiting, lead) {
            (Some(high), Some(low)) => text.push(join(high, low)),
            (None, None) => {}
            // A half without its partner.
            _ => text.push(char::REPLACEMENT_CHARACTER),
        }
        text.push_str(&body);
        p.token = text.into();
        let empty = p.token.is_empty();
        let response_id: ResponseId = (*p.response_id).into();
        let before = events.len();
        let activity = self.apply(Notification::Token(p), events);
        if let Some(high) = trail {
            self.split_high.push((response_id, high));
        }
        // Only the half of a character came: nothing to show yet.
        if empty && events.len() == before + 1 {
            if let Some(Event::Token { token, .. }) = events.back() {
                if token.is_empty() {
                    events.pop_back();
                    self.tokens -= 1;
                }
            }
        }
        activity
    }

    /// A high half waiting for response `idx` will never be joined: it
    /// becomes U+FFFD in the text and as a token.
    fn flush_split_high(&mut self, idx: usize, events: &mut VecDeque<Event>) {
        let r = &mut self.streaming[idx];
        let Some(i) = self.split_high.iter().position(|(id, _)| *id == r.id) else {
            return;
        };
        self.split_high.swap_remove(i);
        r.text.push(char::REPLACEMENT_CHARACTER);
        self.tokens += 1;
        events.push_back(Event::Token {
            response_id: r.id.clone(),
            token: TokenText::from(char::REPLACEMENT_CHARACTER),
        });
    }

    /// Notifications from `expected` up to the one at hand were lost. What
    /// was streaming may miss tokens, and a response that starts now may
    /// have lost its beginning: all of them end `interrupted` rather than
    /// complete with a hole. Tool calls and events are still delivered.
    fn gap(
        &mut self,
        expected: u64,
        notification: Notification<'_>,
        events: &mut VecDeque<Event>,
    ) -> Option<Activity> {
        let got = self.last_seq.unwrap_or(expected);
        events.push_back(Event::Error(ProtocolError::SeqGap { expected, got }.into()));
        self.interrupt_all(events);
        let id = match &notification {
            Notification::Token(p) => Some(p.response_id.as_ref()),
            Notification::StopToken(p) => Some(p.response_id.as_ref()),
            _ => None,
        };
        match id {
            Some(id) if !self.ended.iter().any(|e| &**e == id) => {
                let request = self.bind_new(id);
                let mut r = Response::new(id.into(), request);
                r.status = ResponseStatus::Interrupted;
                events.push_back(Event::ResponseStarted {
                    response_id: r.id.clone(),
                    request_id: request,
                });
                self.finish(r, events);
                None
            }
            Some(_) => None,
            None => self.apply(notification, events),
        }
    }

    /// The connection was lost for good: every streaming response ends as
    /// `interrupted`. Returns the requests whose responses were cut.
    pub(crate) fn interrupt_all(&mut self, events: &mut VecDeque<Event>) -> Vec<RequestId> {
        let mut cut = Vec::new();
        // A held reply has all its text, but what trails it may be lost
        // with the socket: it ends `interrupted`, which says so.
        let held = core::mem::take(&mut self.held).into_iter().map(|(r, _)| r);
        for mut r in held.chain(core::mem::take(&mut self.streaming)) {
            r.status = ResponseStatus::Interrupted;
            cut.extend(r.request_id);
            self.finish(r, events);
        }
        self.stopping.clear();
        self.unsolicited_next = false;
        self.orphans.clear();
        self.split_high.clear();
        cut
    }

    /// Index of the streaming response `id`, starting it if it is new.
    /// `None` when the id belongs to a response that already ended (late
    /// tokens of an interrupted response are dropped, never appended).
    fn streaming_index(&mut self, id: &str, events: &mut VecDeque<Event>) -> Option<usize> {
        if let Some(i) = self.streaming.iter().position(|r| &*r.id == id) {
            return Some(i);
        }
        if self.ended.iter().any(|e| &**e == id) {
            return None;
        }
        let request = self.bind_new(id);
        let response_id: ResponseId = id.into();
        let mut r = Response::new(response_id.clone(), request);
        for orphan in self.orphans.drain(..) {
            match orphan {
                Orphan::ToolCall(c) => r.tool_calls.push(c),
                Orphan::ToolResult(t) => r.tool_responses.push(t),
                Orphan::ClientSideToolCalls(c) => r.client_side_tool_calls.extend(c),
            }
        }
        events.push_back(Event::ResponseStarted {
            response_id,
            request_id: request,
        });
        self.streaming.push(r);
        Some(self.streaming.len() - 1)
    }

    /// Which request a response seen for the first time answers: the one a
    /// result named, else none if the agent speaks first, else the oldest
    /// request still waiting (the server answers requests in order).
    fn bind_new(&mut self, id: &str) -> Option<RequestId> {
        if let Some(i) = self.named.iter().position(|(named, _)| named == id) {
            return Some(self.named.swap_remove(i).1);
        }
        if self.unsolicited_next {
            self.unsolicited_next = false;
            return None;
        }
        self.awaiting.pop_front()
    }

    /// The response a tool call or similar belongs to: the one it names,
    /// else the most recent streaming response.
    fn attach_target(&self, named: Option<&str>) -> Option<(ResponseId, Option<RequestId>)> {
        let r = match named {
            Some(id) => self
                .streaming
                .iter()
                .chain(self.held.iter().map(|(r, _)| r))
                .chain(self.completed.iter())
                .find(|r| &*r.id == id),
            None => self.streaming.last().or(self.held.last().map(|(r, _)| r)),
        };
        r.map(|r| (r.id.clone(), r.request_id))
    }

    fn attach(
        &mut self,
        target: Option<(ResponseId, Option<RequestId>)>,
        item: Orphan,
    ) -> Option<Activity> {
        let Some((id, request)) = target else {
            self.orphans.push(item);
            return None;
        };
        let r = self.find_mut(&id)?;
        match item {
            Orphan::ToolCall(c) => r.tool_calls.push(c),
            Orphan::ToolResult(t) => r.tool_responses.push(t),
            Orphan::ClientSideToolCalls(c) => r.client_side_tool_calls.extend(c),
        }
        request.map(|request| Activity {
            request,
            completed: false,
        })
    }

    fn find_mut(&mut self, id: &str) -> Option<&mut Response> {
        if let Some(i) = self.streaming.iter().position(|r| &*r.id == id) {
            return Some(&mut self.streaming[i]);
        }
        if let Some(i) = self.held.iter().position(|(r, _)| &*r.id == id) {
            return Some(&mut self.held[i].0);
        }
        self.completed.iter_mut().rev().find(|r| &*r.id == id)
    }

    fn finish(&mut self, r: Response, events: &mut VecDeque<Event>) {
        if r.status == ResponseStatus::Interrupted {
            self.interrupted += 1;
        }
        events.push_back(Event::ResponseComplete(Box::new(r.clone())));
        if let Some(request) = r.request_id {
            self.answered.retain(|q| *q != request);
        }
        if !self.ended.contains(&r.id) {
            self.ended.push_back(r.id.clone());
        }
        while self.ended.len() > ENDED_IDS {
            self.ended.pop_front();
        }
        self.completed.push_back(r);
        while self.completed.len() > self.max_completed {
            self.completed.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_server_frame, ServerFrame};

    fn feed(acc: &mut Accumulator, frames: &[String]) -> VecDeque<Event> {
        let mut events = VecDeque::new();
        for f in frames {
            let ServerFrame::Notification(n) = decode_server_frame(f).unwrap() else {
                panic!("not a notification: {f}")
            };
            acc.apply(n, &mut events);
        }
        events
    }

    fn token(r: &str, t: &str, seq: Option<u64>) -> String {
        let seq = seq.map(|s| format!(r#","seq":{s}"#)).unwrap_or_default();
        format!(r#"{{"method":"on_token","params":{{"token":"{t}","response_id":"{r}"{seq}}}}}"#)
    }

    fn stop(r: &str, seq: Option<u64>) -> String {
        let seq = seq.map(|s| format!(r#","seq":{s}"#)).unwrap_or_default();
        format!(r#"{{"method":"on_stop_token","params":{{"response_id":"{r}"{seq}}}}}"#)
    }

    #[test]
    fn interleaved_responses_assemble_separately() {
        let mut acc = Accumulator::new(8);
        acc.expect_response(RequestId(1));
        acc.expect_response(RequestId(2));
        // Both answered at once (the reference server's way), so each reply
        // is whole at its stop.
        let mut answers = VecDeque::new();
        acc.answered(RequestId(1), &mut answers);
        acc.answered(RequestId(2), &mut answers);
        feed(
            &mut acc,
            &[
                token("a", "He", None),
                token("b", "Wo", None),
                token("a", "llo", None),
                token("b", "rld", None),
                stop("b", None),
                stop("a", None),
            ],
        );
        let a = acc.response("a").unwrap();
        assert_eq!(a.text, "Hello");
        assert_eq!(a.request_id, Some(RequestId(1)));
        assert_eq!(a.status, ResponseStatus::Complete);
        assert_eq!(acc.response("b").unwrap().text, "World");
        assert_eq!(acc.response("b").unwrap().request_id, Some(RequestId(2)));
    }

    #[test]
    fn duplicates_by_seq_are_dropped() {
        let mut acc = Accumulator::new(8);
        feed(
            &mut acc,
            &[
                token("a", "x", Some(1)),
                token("a", "y", Some(2)),
                token("a", "x", Some(1)),
                token("a", "y", Some(2)),
                token("a", "z", Some(3)),
            ],
        );
        assert_eq!(acc.response("a").unwrap().text, "xyz");
    }

    #[test]
    fn completed_responses_are_evicted_beyond_the_limit() {
        let mut acc = Accumulator::new(2);
        for id in ["a", "b", "c"] {
            feed(&mut acc, &[token(id, "t", None), stop(id, None)]);
        }
        assert!(acc.response("a").is_none());
        assert!(acc.response("b").is_some());
        assert!(acc.response("c").is_some());
    }

    #[test]
    fn tool_calls_attach_to_the_streaming_response_and_orphans_to_the_next() {
        let mut acc = Accumulator::new(8);
        let call = r#"{"method":"on_tool_call","params":{"tool_call_id":"t1","tool_name":"web_search","tool_input":{"q":"x"}}}"#;
        let answer = r#"{"method":"on_tool_response","params":{"tool_call_id":"t1","tool_name":"web_search","tool_output":"sunny"}}"#;
        feed(
            &mut acc,
            &[
                call.into(),
                token("a", "hi", None),
                answer.into(),
                stop("a", None),
            ],
        );
        let a = acc.response("a").unwrap();
        assert_eq!(a.tool_calls[0].tool_name, "web_search");
        assert_eq!(a.tool_responses[0].tool_output, "sunny");
    }

    #[test]
    fn events_attach_to_the_completed_response() {
        let mut acc = Accumulator::new(8);
        let ev = r#"{"method":"on_events","params":{"events":[{"type":"citation","data":{"url":"u"}}],"response_id":"a"}}"#;
        feed(
            &mut acc,
            &[token("a", "hi", None), stop("a", None), ev.into()],
        );
        assert_eq!(acc.response("a").unwrap().events[0].kind, "citation");
    }

    #[test]
    fn a_seq_gap_interrupts_instead_of_completing_with_a_hole() {
        let mut acc = Accumulator::new(8);
        let ev = feed(
            &mut acc,
            &[
                token("a", "x", Some(1)),
                token("a", "z", Some(3)),
                token("b", "late start", Some(5)),
                token("b", "more", Some(6)),
            ],
        );
        assert!(ev.iter().any(|e| matches!(
            e,
            Event::Error(crate::Error::Protocol(ProtocolError::SeqGap {
                expected: 2,
                got: 3
            }))
        )));
        let a = acc.response("a").unwrap();
        assert_eq!(
            (a.status, a.text.as_str()),
            (ResponseStatus::Interrupted, "x")
        );
        let b = acc.response("b").unwrap();
        assert_eq!(
            (b.status, b.text.as_str()),
            (ResponseStatus::Interrupted, "")
        );
    }

    /// Every stop reason the protocol names, and one it does not, against
    /// the status a reply cut after `"par"` ends with (and the reason kept
    /// on the response, written back as the server sent it).
    #[test]
    fn each_stop_reason_ends_a_reply_with_its_status() {
        let table = [
            ("complete", StopReason::Complete, ResponseStatus::Complete),
            ("stopped", StopReason::Stopped, ResponseStatus::Stopped),
            (
                "round_limit",
                StopReason::RoundLimit,
                ResponseStatus::Stopped,
            ),
            (
                "tool_timeout",
                StopReason::ToolTimeout,
                ResponseStatus::Interrupted,
            ),
            (
                "shutdown",
                StopReason::Shutdown,
                ResponseStatus::Interrupted,
            ),
            (
                "instance_lost",
                StopReason::InstanceLost,
                ResponseStatus::Interrupted,
            ),
            ("error", StopReason::Error, ResponseStatus::Failed),
            (
                "a_reason_from_the_future",
                StopReason::Other,
                ResponseStatus::Complete,
            ),
        ];
        for (wire, reason, status) in table {
            let mut acc = Accumulator::new(8);
            let cut = format!(
                r#"{{"method":"on_stop_token","params":{{"response_id":"a","reason":"{wire}"}}}}"#
            );
            feed(&mut acc, &[token("a", "par", None), cut]);
            let a = acc.response("a").unwrap();
            assert_eq!(
                (a.status, a.text.as_str(), a.stop_reason),
                (status, "par", Some(reason)),
                "{wire}"
            );
            if reason != StopReason::Other {
                assert_eq!(reason.as_str(), wire);
            }
        }
    }

    #[test]
    fn stop_only_affects_what_was_streaming() {
        let mut acc = Accumulator::new(8);
        let mut events = feed(&mut acc, &[token("a", "x", None)]);
        acc.stop_requested();
        events.extend(feed(
            &mut acc,
            &[token("b", "y", None), stop("b", None), stop("a", None)],
        ));
        assert_eq!(acc.response("a").unwrap().status, ResponseStatus::Stopped);
        assert_eq!(acc.response("b").unwrap().status, ResponseStatus::Complete);
    }

    #[test]
    fn ended_ids_outlive_retained_responses() {
        let mut acc = Accumulator::new(1);
        let mut events = feed(&mut acc, &[token("a", "par", None)]);
        acc.interrupt_all(&mut events);
        for id in ["b", "c", "d"] {
            feed(&mut acc, &[token(id, "t", None), stop(id, None)]);
        }
        assert!(acc.response("a").is_none(), "evicted");
        feed(&mut acc, &[token("a", "tial", None)]);
        assert!(
            acc.response("a").is_none(),
            "a late token never restarts it"
        );
    }

    #[test]
    fn interrupted_responses_ignore_late_tokens() {
        let mut acc = Accumulator::new(8);
        let mut events = feed(&mut acc, &[token("a", "par", None)]);
        acc.interrupt_all(&mut events);
        feed(&mut acc, &[token("a", "tial", None)]);
        let a = acc.response("a").unwrap();
        assert_eq!(a.status, ResponseStatus::Interrupted);
        assert_eq!(a.text, "par");
    }

    #[test]
    fn a_named_response_binds_to_its_request_even_out_of_order() {
        let mut acc = Accumulator::new(8);
        acc.expect_response(RequestId(1));
        acc.expect_response(RequestId(2));
        acc.name_response(RequestId(2), "b");
        feed(&mut acc, &[token("b", "x", None), token("a", "y", None)]);
        assert_eq!(acc.response("b").unwrap().request_id, Some(RequestId(2)));
        assert_eq!(acc.response("a").unwrap().request_id, Some(RequestId(1)));
    }

    #[test]
    fn agent_speaks_first_is_not_bound_to_a_request() {
        let mut acc = Accumulator::new(8);
        acc.expect_unsolicited();
        acc.expect_response(RequestId(5));
        feed(
            &mut acc,
            &[token("greet", "Hi", None), token("reply", "Yo", None)],
        );
        assert_eq!(acc.response("greet").unwrap().request_id, None);
        assert_eq!(
            acc.response("reply").unwrap().request_id,
            Some(RequestId(5))
        );
    }
}
