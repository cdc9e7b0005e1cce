//! The session's [`Event`]s, [`Response`]s and [`Error`]s as plain JS
//! objects with camelCase fields, in the shapes `tokenrelay.d.ts` declares.
//!
//! Errors cross as descriptors (`{code, message, …}`); the JS layer turns a
//! descriptor into an instance of the error class its `code` names, so the
//! classes are real JS classes that `instanceof` works with.

use alloc::string::String;
use js_sys::{Array, Object, Reflect, JSON};
use tokenrelay::wire::{self, Agent, AgentEvent, Json, ServerInfo};
use tokenrelay::StateChange;
use tokenrelay::{Error, Event, RequestId, Response, ToolCall, ToolResult};
use wasm_bindgen::JsValue;

/// Sets `key` on `o`. Setting a property on a fresh plain object cannot
/// fail, so the result is ignored.
fn set(o: &Object, key: &str, value: impl Into<JsValue>) {
    set_value(o, key, value.into());
}

/// The one out-of-line body of [`set`]: inlined, each call site repeated
/// the key's string crossing and the `Reflect.set` call.
#[inline(never)]
fn set_value(o: &Object, key: &str, value: JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(key), &value);
}

fn object(kind: &str) -> Object {
    let o = Object::new();
    set(&o, "type", kind);
    o
}

fn opt_str(s: Option<&str>) -> JsValue {
    s.map_or(JsValue::NULL, JsValue::from_str)
}

fn request_id(id: Option<RequestId>) -> JsValue {
    // Request ids count up from 1 per session; far below 2^53.
    id.map_or(JsValue::NULL, |id| JsValue::from_f64(id.0 as f64))
}

/// Any JSON value, read by the host's own `JSON.parse` from the text the
/// frame held (the core keeps it as text in this build: `wire::Json`).
pub fn json(value: &Json) -> JsValue {
    JSON::parse(&wire::json_str(value)).unwrap_or(JsValue::NULL)
}

/// The agent, with the field names of the wire (as `index.d.ts` declares).
fn agent(a: &Agent) -> JsValue {
    let o = Object::new();
    set(&o, "agent_id", a.agent_id.as_str());
    set(&o, "agent_name", a.agent_name.as_str());
    set(&o, "agent_description", a.agent_description.as_str());
    set(&o, "prompt", a.prompt.as_str());
    set(&o, "org_id", a.org_id.as_str());
    set(&o, "is_public", a.is_public);
    set(&o, "agent_speaks_first", a.agent_speaks_first);
    set(&o, "tools", values(&a.tools));
    for (key, at) in [("created_at", a.created_at), ("updated_at", a.updated_at)] {
        if let Some(t) = at {
            set(&o, key, t as f64);
        }
    }
    for (key, value) in &a.extra {
        set(&o, key, json(value));
    }
    o.into()
}

/// The server's name, version and capabilities.
pub fn server(s: &ServerInfo) -> JsValue {
    let o = Object::new();
    set(&o, "name", s.name.as_str());
    set(&o, "version", s.version.as_str());
    let caps = Array::new();
    for c in &s.capabilities {
        caps.push(&JsValue::from_str(c));
    }
    set(&o, "capabilities", caps);
    o.into()
}

/// An error descriptor: `code` is [`Error::kind`]; `serverCode`, `status`,
/// `retryAfterMs` and `closeCode` are there when the error has them.
pub fn error(e: &Error) -> JsValue {
    let o = Object::new();
    set(&o, "code", e.kind().as_str());
    // The text of `Display`, pushed without core::fmt (a `to_string()` here
    // would bring the formatting machinery and every message's format
    // string into the `.wasm`).
    let mut message = String::new();
    e.push_message(&mut message);
    set(&o, "message", message);
    if let Some(r) = e.rejection() {
        set(&o, "serverCode", opt_str(r.code.as_deref()));
        set(&o, "status", r.status.map_or(JsValue::NULL, JsValue::from));
    }
    match e {
        Error::RateLimited {
            retry_after: Some(d),
            ..
        } => set(&o, "retryAfterMs", d.as_millis() as u64 as f64),
        Error::ConnectionLost {
            code: Some(code), ..
        } => set(&o, "closeCode", *code),
        _ => {}
    }
    o.into()
}

fn state(change: &StateChange) -> JsValue {
    let o = object("state");
    set(&o, "state", change.state.as_str());
    set(&o, "attempt", change.attempt);
    set(
        &o,
        "retryIn",
        change.retry_in.map_or(JsValue::NULL, |d| {
            JsValue::from_f64(d.as_millis() as u64 as f64)
        }),
    );
    set(
        &o,
        "cause",
        change.cause.as_ref().map_or(JsValue::NULL, error),
    );
    o.into()
}

fn tool_call(o: &Object, call: &ToolCall) {
    set(o, "toolCallId", call.tool_call_id.as_str());
    set(o, "toolName", call.tool_name.as_str());
    set(o, "toolInput", json(&call.tool_input));
}

fn tool_result(o: &Object, result: &ToolResult) {
    set(o, "toolCallId", result.tool_call_id.as_str());
    set(o, "toolName", result.tool_name.as_str());
    set(o, "toolOutput", result.tool_output.as_str());
}

fn agent_events(events: &[AgentEvent]) -> JsValue {
    let list = Array::new();
    for e in events {
        let o = Object::new();
        set(&o, "type", e.kind.as_str());
        set(&o, "data", json(&e.data));
        list.push(&o);
    }
    list.into()
}

fn values(values: &[Json]) -> JsValue {
    values.iter().map(json).collect::<Array>().into()
}

/// A whole [`Response`].
pub fn response(r: &Response) -> JsValue {
    let o = Object::new();
    set(&o, "id", &*r.id);
    set(&o, "requestId", request_id(r.request_id));
    set(&o, "text", r.text.as_str());
    set(&o, "status", r.status.as_str());
    set(
        &o,
        "stopReason",
        r.stop_reason.map_or(JsValue::NULL, |s| s.as_str().into()),
    );
    let calls = Array::new();
    for c in &r.tool_calls {
        let item = Object::new();
        tool_call(&item, c);
        calls.push(&item);
    }
    set(&o, "toolCalls", calls);
    let results = Array::new();
    for t in &r.tool_responses {
        let item = Object::new();
        tool_result(&item, t);
        results.push(&item);
    }
    set(&o, "toolResponses", results);
    set(&o, "events", agent_events(&r.events));
    set(&o, "clientSideToolCalls", values(&r.client_side_tool_calls));
    o.into()
}

/// Every event but `Token`, which the driver hands over as two strings on
/// its hot path.
pub fn event(e: &Event) -> JsValue {
    match e {
        Event::StateChanged(change) => state(change),
        Event::Connected {
            agent,
            resumed,
            server,
        } => {
            let o = object("connected");
            set(&o, "resumed", *resumed);
            set(
                &o,
                "agent",
                agent.as_deref().map_or(JsValue::NULL, self::agent),
            );
            set(
                &o,
                "server",
                server.as_deref().map_or(JsValue::NULL, self::server),
            );
            o.into()
        }
        Event::ResponseStarted {
            response_id,
            request_id: req,
        } => {
            let o = object("response_started");
            set(&o, "responseId", &**response_id);
            set(&o, "requestId", request_id(*req));
            o.into()
        }
        Event::Token { response_id, token } => {
            let o = object("token");
            set(&o, "responseId", &**response_id);
            set(&o, "token", token.as_str());
            o.into()
        }
        Event::ResponseComplete(r) => {
            let o = object("response");
            set(&o, "response", response(r));
            o.into()
        }
        Event::ToolCall { response_id, call } => {
            let o = object("tool_call");
            set(&o, "responseId", opt_str(response_id.as_deref()));
            tool_call(&o, call);
            o.into()
        }
        Event::ToolResponse {
            response_id,
            result,
        } => {
            let o = object("tool_response");
            set(&o, "responseId", opt_str(response_id.as_deref()));
            tool_result(&o, result);
            o.into()
        }
        Event::Events {
            response_id,
            events,
        } => {
            let o = object("events");
            set(&o, "responseId", opt_str(response_id.as_deref()));
            set(&o, "events", agent_events(events));
            o.into()
        }
        Event::ClientSideToolCalls {
            response_id,
            tool_calls,
        } => {
            let o = object("client_side_tool_calls");
            set(&o, "responseId", opt_str(response_id.as_deref()));
            set(&o, "toolCalls", values(tool_calls));
            o.into()
        }
        Event::RequestAcknowledged {
            request_id: req,
            result,
        } => {
            let o = object("ack");
            set(&o, "requestId", request_id(Some(*req)));
            set(&o, "result", json(result));
            o.into()
        }
        Event::RequestFailed {
            request_id: req,
            error: err,
        } => {
            let o = object("request_failed");
            set(&o, "requestId", request_id(Some(*req)));
            set(&o, "error", error(err));
            o.into()
        }
        Event::Error(err) => {
            let o = object("error");
            set(&o, "error", error(err));
            o.into()
        }
        Event::Unknown { method, params } => {
            let o = object("unknown");
            set(&o, "method", method.as_str());
            set(&o, "params", json(params));
            o.into()
        }
        // `Event` is non-exhaustive: a variant added to the core later is
        // surfaced generically rather than dropped. (Not `Debug`-printed:
        // that would pull float formatting into the bundle.)
        _ => {
            let o = object("unknown");
            set(&o, "method", "");
            set(&o, "params", JsValue::NULL);
            o.into()
        }
    }
}
