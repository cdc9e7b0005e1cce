//! How results and events are printed: for people (short aligned lines),
//! or for scripts (`--json`: one JSON document per command, one JSON line
//! per event).

use std::io::Write;

use serde::Serialize;
use serde_json::{json, Value};
use tokenrelay::{Event, Response};

/// Prints `value` as pretty JSON (scripts) or through `human` (people).
pub(crate) fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T) -> String) {
    if json {
        crate::progress::erase();
        match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot print the answer as JSON: {e}"),
        }
    } else {
        let text = human(value);
        crate::progress::erase();
        if !text.is_empty() {
            println!("{text}");
        }
    }
}

/// Rows of `(label, value)` aligned on the labels.
pub(crate) fn rows(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(label, value)| format!("{label:<width$}  {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One event as a JSON object with a `type`, for `--json` streams.
pub(crate) fn event_json(event: &Event) -> Value {
    match event {
        Event::StateChanged(change) => json!({
            "type": "state",
            "state": change.state.as_str(),
            "attempt": change.attempt,
            "retry_in_ms": change.retry_in.map(|d| d.as_millis() as u64),
            "cause": change.cause.as_ref().map(ToString::to_string),
        }),
        Event::Connected { resumed, .. } => json!({"type": "connected", "resumed": resumed}),
        Event::ResponseStarted {
            response_id,
            request_id,
        } => json!({
            "type": "response_started",
            "response_id": &**response_id,
            "request_id": request_id.map(|r| r.0),
        }),
        Event::Token { response_id, token } => json!({
            "type": "token", "response_id": &**response_id, "token": token.as_str(),
        }),
        Event::ResponseComplete(response) => response_json(response),
        Event::ToolCall { response_id, call } => json!({
            "type": "tool_call",
            "response_id": response_id.as_deref(),
            "tool_call_id": call.tool_call_id,
            "tool_name": call.tool_name,
            "tool_input": call.tool_input,
        }),
        Event::ToolResponse {
            response_id,
            result,
        } => json!({
            "type": "tool_response",
            "response_id": response_id.as_deref(),
            "tool_call_id": result.tool_call_id,
            "tool_name": result.tool_name,
            "tool_output": result.tool_output,
        }),
        Event::Events {
            response_id,
            events,
        } => json!({
            "type": "events",
            "response_id": response_id.as_deref(),
            "events": events.iter().map(|e| json!({"type": e.kind, "data": e.data})).collect::<Vec<_>>(),
        }),
        Event::ClientSideToolCalls {
            response_id,
            tool_calls,
        } => json!({
            "type": "client_side_tool_calls",
            "response_id": response_id.as_deref(),
            "tool_calls": tool_calls,
        }),
        Event::RequestAcknowledged { request_id, .. } => {
            json!({"type": "request_acknowledged", "request_id": request_id.0})
        }
        Event::RequestFailed { request_id, error } => json!({
            "type": "request_failed", "request_id": request_id.0, "error": error.to_string(),
            "kind": error.kind().as_str(),
        }),
        Event::Error(error) => {
            json!({"type": "error", "error": error.to_string(), "kind": error.kind().as_str()})
        }
        Event::Unknown { method, params } => {
            json!({"type": "unknown", "method": method, "params": params})
        }
        // A kind this build does not know yet (the enum grows).
        _ => json!({"type": "other"}),
    }
}

/// A finished reply as a JSON object (`type: "response"`).
pub(crate) fn response_json(response: &Response) -> Value {
    json!({
        "type": "response",
        "response_id": &*response.id,
        "request_id": response.request_id.map(|r| r.0),
        "status": response.status.as_str(),
        "text": response.text,
        "tool_calls": response.tool_calls.iter().map(|c| c.tool_name.clone()).collect::<Vec<_>>(),
        "events": response.events.len(),
        "client_side_tool_calls": response.client_side_tool_calls,
    })
}

/// Writes `text` to stdout now (a token must show as it arrives, not when
/// a line is complete).
pub(crate) fn flush_out(text: &str) {
    crate::progress::erase();
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// A line on stderr for what is not the reply itself: connection status,
/// tool calls, notes. Kept off stdout so that `tokenrelay send … > file`
/// holds only the reply.
pub(crate) fn status(text: &str) {
    crate::progress::erase();
    eprintln!("{text}");
}

/// One history entry of a context, for people.
pub(crate) fn history_line(message: &tokenrelay::rest::ContextMessage) -> String {
    use tokenrelay::rest::ContextMessage;
    match message {
        ContextMessage::Human { message } => format!("  human  {message}"),
        ContextMessage::Ai { message } => format!("  ai     {message}"),
        ContextMessage::ToolCall {
            tool_name,
            tool_input,
            ..
        } => format!("  tool   {tool_name}({tool_input})"),
        ContextMessage::ToolResponse { tool_output, .. } => format!("         -> {tool_output}"),
        ContextMessage::Other(value) => format!("  ?      {value}"),
        // A kind the core learns later: shown as its JSON, like `Other`.
        other => format!(
            "  ?      {}",
            serde_json::to_string(other).unwrap_or_default()
        ),
    }
}
