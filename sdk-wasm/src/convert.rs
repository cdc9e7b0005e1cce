//! The session's [`Event`]s, [`Response`]s and [`Error`]s as JSON text
//! with camelCase fields, in the shapes `index.d.ts` declares; the JS layer
//! reads each with `JSON.parse`.
//!
//! Text rather than JS objects built field by field: each field set from
//! wasm was a key string crossing and a `Reflect.set` call, code repeated
//! per field, where writing text is one small writer, and `JSON.parse` is
//! the host's fastest way to make the object. JSON values the frame carried
//! (`toolInput`, event `data`, `result`, …) are spliced in as the text the
//! core kept of them (`wire::Json`), so they are read once, by the page.
//!
//! Errors cross as descriptors (`{code, message, …}`); the JS layer turns a
//! descriptor into an instance of the error class its `code` names, so the
//! classes are real JS classes that `instanceof` works with.

use alloc::string::String;
use tokenrelay::wire::{self, push_json_str, Agent, AgentEvent, Json, ServerInfo};
use tokenrelay::StateChange;
use tokenrelay::{Error, Event, RequestId, Response, ToolCall, ToolResult};

/// Starts the member `key` of the object (or the next item of the array)
/// being written: a comma unless it is the first. Keys are this module's
/// own ASCII names, written as they are.
fn key(out: &mut String, key: &str) {
    comma(out);
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
}

/// A comma before the next member or item, unless it is the first.
fn comma(out: &mut String) {
    if !matches!(out.as_bytes().last(), Some(b'{' | b'[') | None) {
        out.push(',');
    }
}

fn str(out: &mut String, name: &str, value: &str) {
    key(out, name);
    push_json_str(out, value);
}

fn opt_str(out: &mut String, name: &str, value: Option<&str>) {
    match value {
        Some(v) => str(out, name, v),
        None => raw(out, name, "null"),
    }
}

/// A member whose value is already JSON text.
fn raw(out: &mut String, name: &str, value: &str) {
    key(out, name);
    out.push_str(value);
}

fn num(out: &mut String, name: &str, value: u64) {
    key(out, name);
    wire::push_u64(out, value);
}

fn boolean(out: &mut String, name: &str, value: bool) {
    raw(out, name, if value { "true" } else { "false" });
}

fn json(out: &mut String, name: &str, value: &Json) {
    raw(out, name, &wire::json_str(value));
}

fn request_id(out: &mut String, name: &str, id: Option<RequestId>) {
    // Request ids count up from 1 per session; far below 2^53.
    match id {
        Some(id) => num(out, name, id.0),
        None => raw(out, name, "null"),
    }
}

/// `[f(item), …]` as the member `name`.
fn list<T>(out: &mut String, name: &str, items: &[T], mut f: impl FnMut(&mut String, &T)) {
    key(out, name);
    out.push('[');
    for item in items {
        comma(out);
        f(out, item);
    }
    out.push(']');
}

fn values(out: &mut String, name: &str, items: &[Json]) {
    list(out, name, items, |out, v| out.push_str(&wire::json_str(v)));
}

/// The agent, with the field names of the wire (as `index.d.ts` declares),
/// and its extra fields after them (a later duplicate key wins in
/// `JSON.parse`, as the field set last did when objects were built here).
fn agent(out: &mut String, a: &Agent) {
    out.push('{');
    str(out, "agent_id", &a.agent_id);
    str(out, "agent_name", &a.agent_name);
    str(out, "agent_description", &a.agent_description);
    str(out, "prompt", &a.prompt);
    str(out, "org_id", &a.org_id);
    boolean(out, "is_public", a.is_public);
    boolean(out, "agent_speaks_first", a.agent_speaks_first);
    values(out, "tools", &a.tools);
    for (name, at) in [("created_at", a.created_at), ("updated_at", a.updated_at)] {
        if let Some(t) = at {
            key(out, name);
            wire::push_i64(out, t);
        }
    }
    for (name, value) in &a.extra {
        comma(out);
        push_json_str(out, name);
        out.push(':');
        out.push_str(&wire::json_str(value));
    }
    out.push('}');
}

/// The server's name, version and capabilities, as an object.
pub fn push_server(out: &mut String, s: &ServerInfo) {
    out.push('{');
    str(out, "name", &s.name);
    str(out, "version", &s.version);
    list(out, "capabilities", &s.capabilities, |out, c| {
        push_json_str(out, c)
    });
    out.push('}');
}

/// An error descriptor: `code` is [`Error::kind`]; `serverCode`, `status`,
/// `retryAfterMs` and `closeCode` are there when the error has them.
pub fn push_error(out: &mut String, e: &Error) {
    out.push('{');
    str(out, "code", e.kind().as_str());
    // The text of `Display`, pushed without core::fmt (a `to_string()` here
    // would bring the formatting machinery and every message's format
    // string into the `.wasm`).
    let mut message = String::new();
    e.push_message(&mut message);
    str(out, "message", &message);
    if let Some(r) = e.rejection() {
        opt_str(out, "serverCode", r.code.as_deref());
        match r.status {
            Some(status) => num(out, "status", u64::from(status)),
            None => raw(out, "status", "null"),
        }
    }
    match e {
        Error::RateLimited {
            retry_after: Some(d),
            ..
        } => num(out, "retryAfterMs", d.as_millis() as u64),
        Error::ConnectionLost {
            code: Some(code), ..
        } => num(out, "closeCode", u64::from(*code)),
        _ => {}
    }
    out.push('}');
}

/// What `push` writes, on its own.
pub fn text<T: ?Sized>(value: &T, push: fn(&mut String, &T)) -> String {
    let mut out = String::new();
    push(&mut out, value);
    out
}

/// [`push_error`] on its own.
pub fn error(e: &Error) -> String {
    text(e, push_error)
}

fn cause(out: &mut String, name: &str, e: Option<&Error>) {
    key(out, name);
    match e {
        Some(e) => push_error(out, e),
        None => out.push_str("null"),
    }
}

fn state(out: &mut String, change: &StateChange) {
    str(out, "state", change.state.as_str());
    num(out, "attempt", u64::from(change.attempt));
    match change.retry_in {
        Some(d) => num(out, "retryIn", d.as_millis() as u64),
        None => raw(out, "retryIn", "null"),
    }
    cause(out, "cause", change.cause.as_ref());
}

fn tool_call(out: &mut String, call: &ToolCall) {
    str(out, "toolCallId", &call.tool_call_id);
    str(out, "toolName", &call.tool_name);
    json(out, "toolInput", &call.tool_input);
}

fn tool_result(out: &mut String, result: &ToolResult) {
    str(out, "toolCallId", &result.tool_call_id);
    str(out, "toolName", &result.tool_name);
    str(out, "toolOutput", &result.tool_output);
}

fn agent_events(out: &mut String, name: &str, events: &[AgentEvent]) {
    list(out, name, events, |out, e| {
        out.push('{');
        str(out, "type", &e.kind);
        json(out, "data", &e.data);
        out.push('}');
    });
}

/// A whole [`Response`], as an object.
pub fn push_response(out: &mut String, r: &Response) {
    out.push('{');
    str(out, "id", &r.id);
    request_id(out, "requestId", r.request_id);
    str(out, "text", &r.text);
    str(out, "status", r.status.as_str());
    opt_str(out, "stopReason", r.stop_reason.map(|s| s.as_str()));
    list(out, "toolCalls", &r.tool_calls, |out, c| {
        out.push('{');
        tool_call(out, c);
        out.push('}');
    });
    list(out, "toolResponses", &r.tool_responses, |out, t| {
        out.push('{');
        tool_result(out, t);
        out.push('}');
    });
    agent_events(out, "events", &r.events);
    values(out, "clientSideToolCalls", &r.client_side_tool_calls);
    out.push('}');
}

/// Every event but `Token` (which the driver hands over as two strings on
/// its hot path; written here too, for completeness), as an object whose
/// `type` names it.
pub fn event(e: &Event) -> String {
    let mut out = String::from("{");
    let o = &mut out;
    match e {
        Event::StateChanged(change) => {
            str(o, "type", "state");
            state(o, change);
        }
        Event::Connected {
            agent,
            resumed,
            server,
        } => {
            str(o, "type", "connected");
            boolean(o, "resumed", *resumed);
            key(o, "agent");
            match agent {
                Some(a) => self::agent(o, a),
                None => o.push_str("null"),
            }
            key(o, "server");
            match server {
                Some(s) => push_server(o, s),
                None => o.push_str("null"),
            }
        }
        Event::ResponseStarted {
            response_id,
            request_id: req,
        } => {
            str(o, "type", "response_started");
            str(o, "responseId", response_id);
            request_id(o, "requestId", *req);
        }
        Event::Token { response_id, token } => {
            str(o, "type", "token");
            str(o, "responseId", response_id);
            str(o, "token", token);
        }
        Event::ResponseComplete(r) => {
            str(o, "type", "response");
            key(o, "response");
            push_response(o, r);
        }
        Event::ToolCall { response_id, call } => {
            str(o, "type", "tool_call");
            opt_str(o, "responseId", response_id.as_deref());
            tool_call(o, call);
        }
        Event::ToolResponse {
            response_id,
            result,
        } => {
            str(o, "type", "tool_response");
            opt_str(o, "responseId", response_id.as_deref());
            tool_result(o, result);
        }
        Event::Events {
            response_id,
            events,
        } => {
            str(o, "type", "events");
            opt_str(o, "responseId", response_id.as_deref());
            agent_events(o, "events", events);
        }
        Event::ClientSideToolCalls {
            response_id,
            tool_calls,
        } => {
            str(o, "type", "client_side_tool_calls");
            opt_str(o, "responseId", response_id.as_deref());
            values(o, "toolCalls", tool_calls);
        }
        Event::RequestAcknowledged {
            request_id: req,
            result,
        } => {
            str(o, "type", "ack");
            request_id(o, "requestId", Some(*req));
            json(o, "result", result);
        }
        Event::RequestFailed {
            request_id: req,
            error: err,
        } => {
            str(o, "type", "request_failed");
            request_id(o, "requestId", Some(*req));
            cause(o, "error", Some(err));
        }
        Event::Error(err) => {
            str(o, "type", "error");
            cause(o, "error", Some(err));
        }
        Event::Unknown { method, params } => {
            str(o, "type", "unknown");
            str(o, "method", method);
            json(o, "params", params);
        }
        // `Event` is non-exhaustive: a variant added to the core later is
        // surfaced generically rather than dropped. (Not `Debug`-printed:
        // that would pull float formatting into the bundle.)
        _ => {
            str(o, "type", "unknown");
            str(o, "method", "");
            raw(o, "params", "null");
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    //! The text written here must be JSON that reads (`JSON.parse`, here
    //! serde_json) as the objects `index.d.ts` declares. The JS tests check
    //! the same shapes end to end against the reference server; these
    //! reach what a server rarely sends (escapes, control characters,
    //! negative times, every error kind, extra agent fields). On the host
    //! `Json` is a `serde_json::Value`; the browser build's `RawJson` (the
    //! frame's own text, spliced in) is checked end to end by
    //! `tests/json-values.test.js`.
    use super::*;
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use alloc::vec;
    use core::time::Duration;
    use serde_json::{json, Value};
    use tokenrelay::wire::AgentEvent;
    use tokenrelay::{ConnectionState, ErrorKind, ResponseStatus};

    fn read(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    const ODD: &str = "a \"quote\", a \\ backslash, \n\r\t\u{8}\u{c}\u{1}\u{1f} and é ✓ 😀";

    #[test]
    fn every_error_kind_is_a_descriptor_with_its_code_and_message() {
        for kind in ErrorKind::ALL {
            let e = Error::sample(kind);
            let d = read(&error(&e));
            assert_eq!(d["code"], kind.as_str());
            let mut message = String::new();
            e.push_message(&mut message);
            assert_eq!(d["message"], message.as_str());
            if let Some(r) = e.rejection() {
                assert_eq!(d["serverCode"], json!(r.code));
                assert_eq!(d["status"], json!(r.status));
            }
            let retry_after = match &e {
                Error::RateLimited { retry_after, .. } => retry_after.map(|d| d.as_millis()),
                _ => None,
            };
            assert_eq!(d["retryAfterMs"], json!(retry_after), "{kind:?}");
            let close_code = match &e {
                Error::ConnectionLost { code, .. } => *code,
                _ => None,
            };
            assert_eq!(d["closeCode"], json!(close_code), "{kind:?}");
        }
        let all = read(&crate::js_api::error_kinds_for_tests());
        assert_eq!(all.as_array().map(Vec::len), Some(ErrorKind::ALL.len()));
    }

    #[test]
    fn strings_are_escaped_and_numbers_are_integers() {
        let mut change = StateChange::new(ConnectionState::Reconnecting);
        change.attempt = 3;
        change.retry_in = Some(Duration::from_millis(1_500));
        change.cause = Some(Error::Transport {
            message: ODD.into(),
        });
        let e = read(&event(&Event::StateChanged(Box::new(change))));
        assert_eq!(
            e,
            json!({"type": "state", "state": "reconnecting", "attempt": 3, "retryIn": 1500,
                "cause": {"code": "transport", "message": format!("transport error: {ODD}")}})
        );
        let e = read(&event(&Event::StateChanged(Box::new(StateChange::new(
            ConnectionState::Connected,
        )))));
        assert_eq!(e["retryIn"], Value::Null);
        assert_eq!(e["cause"], Value::Null);
    }

    #[test]
    fn the_agent_keeps_its_fields_tools_and_extras() {
        let mut agent = Agent::default();
        agent.agent_id = "a1".into();
        agent.agent_name = ODD.into();
        agent.is_public = true;
        agent.created_at = Some(-5);
        agent.updated_at = Some(1_700_000_000);
        agent.tools = vec![json!({"name": "t", "n": [1, 2.5, null]})];
        agent.extra.insert("x\"y".into(), json!({"deep": [true]}));
        let server = ServerInfo {
            name: "s".into(),
            version: "1".into(),
            capabilities: vec!["seq".into(), "resume".into()],
        };
        let e = read(&event(&Event::Connected {
            agent: Some(Box::new(agent)),
            resumed: true,
            server: Some(Box::new(server)),
        }));
        assert_eq!(
            e,
            json!({"type": "connected", "resumed": true,
                "agent": {"agent_id": "a1", "agent_name": ODD, "agent_description": "",
                    "prompt": "", "org_id": "", "is_public": true, "agent_speaks_first": false,
                    "tools": [{"name": "t", "n": [1, 2.5, null]}], "created_at": -5,
                    "updated_at": 1_700_000_000, "x\"y": {"deep": [true]}},
                "server": {"name": "s", "version": "1", "capabilities": ["seq", "resume"]}})
        );
        let e = read(&event(&Event::Connected {
            agent: None,
            resumed: false,
            server: None,
        }));
        assert_eq!(
            e,
            json!({"type": "connected", "resumed": false, "agent": null, "server": null})
        );
    }

    #[test]
    fn a_response_has_every_list() {
        let id: tokenrelay::ResponseId = Arc::from("r\"1");
        let mut r = Response::new(id.clone(), Some(RequestId(7)));
        r.text = ODD.into();
        r.status = ResponseStatus::Complete;
        r.stop_reason = Some(wire::StopReason::Complete);
        r.tool_calls = vec![ToolCall::new("c1", "search", json!({"q": ODD}))];
        r.tool_responses = vec![ToolResult::new("c1", "search", "found")];
        r.events = vec![AgentEvent {
            kind: "progress".into(),
            data: json!({"pct": 50}),
        }];
        r.client_side_tool_calls = vec![json!({"id": "k"}), json!([])];
        let mut text = String::new();
        push_response(&mut text, &r);
        let expected = json!({"id": "r\"1", "requestId": 7, "text": ODD, "status": "complete",
            "stopReason": "complete",
            "toolCalls": [{"toolCallId": "c1", "toolName": "search", "toolInput": {"q": ODD}}],
            "toolResponses": [{"toolCallId": "c1", "toolName": "search", "toolOutput": "found"}],
            "events": [{"type": "progress", "data": {"pct": 50}}],
            "clientSideToolCalls": [{"id": "k"}, []]});
        assert_eq!(read(&text), expected);
        let e = read(&event(&Event::ResponseComplete(Box::new(r))));
        assert_eq!(e, json!({"type": "response", "response": expected}));
        let empty = Response::new(id, None);
        let mut text = String::new();
        push_response(&mut text, &empty);
        let e = read(&text);
        assert_eq!(e["requestId"], Value::Null);
        assert_eq!(e["stopReason"], Value::Null);
        assert_eq!(e["toolCalls"], json!([]));
    }

    #[test]
    fn every_other_event_has_its_type_and_fields() {
        let rid: tokenrelay::ResponseId = Arc::from("r1");
        let cases = [
            (
                Event::ResponseStarted {
                    response_id: rid.clone(),
                    request_id: None,
                },
                json!({"type": "response_started", "responseId": "r1", "requestId": null}),
            ),
            (
                Event::Token {
                    response_id: rid.clone(),
                    token: ODD.into(),
                },
                json!({"type": "token", "responseId": "r1", "token": ODD}),
            ),
            (
                Event::ToolCall {
                    response_id: None,
                    call: Box::new(ToolCall::new("c", "n", json!(null))),
                },
                json!({"type": "tool_call", "responseId": null, "toolCallId": "c",
                    "toolName": "n", "toolInput": null}),
            ),
            (
                Event::ToolResponse {
                    response_id: Some(rid.clone()),
                    result: Box::new(ToolResult::new("c", "n", ODD)),
                },
                json!({"type": "tool_response", "responseId": "r1", "toolCallId": "c",
                    "toolName": "n", "toolOutput": ODD}),
            ),
            (
                Event::Events {
                    response_id: Some(rid.clone()),
                    events: vec![],
                },
                json!({"type": "events", "responseId": "r1", "events": []}),
            ),
            (
                Event::ClientSideToolCalls {
                    response_id: None,
                    tool_calls: vec![json!({"a": 1.5e300})],
                },
                json!({"type": "client_side_tool_calls", "responseId": null,
                    "toolCalls": [{"a": 1.5e300}]}),
            ),
            (
                Event::RequestAcknowledged {
                    request_id: RequestId(9_007_199_254_740_991),
                    result: json!({"success": true}),
                },
                json!({"type": "ack", "requestId": 9_007_199_254_740_991_u64,
                    "result": {"success": true}}),
            ),
            (
                Event::Unknown {
                    method: "on_new".into(),
                    params: json!([1, "x"]),
                },
                json!({"type": "unknown", "method": "on_new", "params": [1, "x"]}),
            ),
        ];
        for (e, expected) in cases {
            assert_eq!(read(&event(&e)), expected);
        }
        let failed = read(&event(&Event::RequestFailed {
            request_id: RequestId(2),
            error: Error::sample(ErrorKind::RateLimited),
        }));
        assert_eq!(failed["type"], "request_failed");
        assert_eq!(failed["requestId"], 2);
        assert_eq!(failed["error"]["code"], "rate_limited");
        let error = read(&event(&Event::Error(Error::sample(ErrorKind::Protocol))));
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["code"], "protocol");
    }
}
