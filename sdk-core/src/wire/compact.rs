//! The compact codec: the typed messages of the client side of the wire
//! read and written with the hand-written JSON reader and writer of
//! `json.rs`, the one decoder of server frames on every target. It was written for `wasm32` (the browser package), where every
//! byte of code is downloaded by a page: serde's generated visitors,
//! monomorphised per type and per deserializer, were about a third of the
//! browser bundle; on native it is as fast (`benches/decoders.rs`).
//!
//! It gives frames the same meaning as the serde decoders in `super`, which
//! stay the reference (compiled for tests and fuzzing only): the same values, and
//! the same [`ProtocolError`] variant for every frame either refuses. The
//! differential tests at the end of this file (a fixed corpus and a
//! property test over generated frames) hold the two together. Error *wording* differs:
//! these messages are fixed strings, since formatting code is size too.
//!
//! Numbers are read exactly; serde_json (built without `float_roundtrip`)
//! may read a long decimal 1 ulp off. Like serde, it also reads a struct from a JSON array of its fields in
//! declaration order (`"params": ["hi", "r1"]`). One difference is left:
//! a `connect_to_context` result in that array form reads as the default.

use crate::prelude::*;

use alloc::borrow::Cow;

use super::json::{
    json_str, members, number_text, parse_json_value, push_json_str, Fail, Fields, Reader, Scalar,
};
use super::{
    AgentEvent, ClientRequest, ClientSideToolCallsParams, ConnectResult, EventsParams, Json,
    Notification, ServerFrame, ServerInfo, StopReason, StopTokenParams, ToolCallParams,
    ToolResponseParams,
};
use crate::error::ProtocolError;

/// [`super::decode_server_frame`] for the compact build.
pub(crate) fn decode_server_frame(text: &str) -> Result<ServerFrame<'_>, ProtocolError> {
    if let Some(params) = super::scan::token_frame(text) {
        return Ok(ServerFrame::Notification(Notification::Token(params)));
    }
    let invalid = |message: Fail| ProtocolError::InvalidJson {
        message: message.into(),
    };
    let mut r = Reader::new(text);
    let (mut method, mut params, mut id, mut result) = (None, None, None, None);
    r.fields(&["method", "params", "id", "result"], &mut |r, field| {
        match field {
            0 => method = if r.null() { None } else { Some(r.string()?) },
            1 => params = if r.null() { None } else { Some(r.raw()?) },
            2 => {
                id = if r.null() {
                    None
                } else if r.peek() == Some(b'"') {
                    Some(r.string()?)
                } else {
                    Some(Cow::Owned(number_text(&r.number()?)))
                }
            }
            // `"result": null` is an answer (the hosted server's to
            // `add_message`); only a missing `result` is not.
            _ => result = Some(r.json()?),
        }
        Ok(())
    })
    .and_then(|()| r.end())
    .map_err(invalid)?;
    match (method, id, result) {
        (Some(method), _, _) => {
            decode_notification(method, params.unwrap_or("{}")).map(ServerFrame::Notification)
        }
        (None, Some(id), Some(result)) => Ok(ServerFrame::Response { id, result }),
        (None, Some(_), None) => Err(ProtocolError::UnexpectedShape {
            message: "a response needs a `result`".into(),
        }),
        (None, None, _) => Err(ProtocolError::UnexpectedShape {
            message: "a frame needs a `method` or an `id`".into(),
        }),
    }
}

fn decode_notification<'a>(
    method: Cow<'a, str>,
    params: &'a str,
) -> Result<Notification<'a>, ProtocolError> {
    let mut r = Reader::new(params);
    let typed = match &*method {
        super::method::ON_TOKEN => token(&mut r).map(Notification::Token),
        super::method::ON_STOP_TOKEN => stop_token(&mut r).map(Notification::StopToken),
        super::method::ON_TOOL_CALL => tool_call(&mut r).map(Notification::ToolCall),
        super::method::ON_TOOL_RESPONSE => tool_response(&mut r).map(Notification::ToolResponse),
        super::method::ON_EVENTS => events(&mut r).map(Notification::Events),
        super::method::ON_CLIENT_SIDE_TOOL_CALLS => {
            client_side_tool_calls(&mut r).map(Notification::ClientSideToolCalls)
        }
        _ => {
            return Ok(Notification::Unknown {
                params: parse_json_value(params).unwrap_or_default(),
                method: method.into_owned(),
            })
        }
    };
    typed
        .and_then(|n| r.end().map(|()| n))
        .map_err(|message| ProtocolError::InvalidParams {
            method: method.into_owned(),
            message: message.into(),
        })
}

fn token<'a>(r: &mut Reader<'a>) -> Result<super::TokenParams<'a>, Fail> {
    let (mut token, mut response_id, mut seq) = (None, None, None);
    r.fields(&["token", "response_id", "seq"], &mut |r, field| {
        match field {
            0 => token = Some(r.string()?),
            1 => response_id = Some(r.string()?),
            _ => seq = r.opt_u64()?,
        }
        Ok(())
    })?;
    Ok(super::TokenParams {
        token: token.ok_or("missing field `token`")?,
        response_id: response_id.ok_or("missing field `response_id`")?,
        seq,
    })
}

fn stop_token<'a>(r: &mut Reader<'a>) -> Result<StopTokenParams<'a>, Fail> {
    let (mut response_id, mut reason, mut seq) = (None, None, None);
    r.fields(&["response_id", "reason", "seq"], &mut |r, field| {
        match field {
            0 => response_id = Some(r.string()?),
            1 => {
                reason = if r.null() {
                    None
                } else {
                    Some(StopReason::from_wire(&r.string()?))
                }
            }
            _ => seq = r.opt_u64()?,
        }
        Ok(())
    })?;
    Ok(StopTokenParams {
        response_id: response_id.ok_or("missing field `response_id`")?,
        reason,
        seq,
    })
}

fn tool_call(r: &mut Reader<'_>) -> Result<ToolCallParams, Fail> {
    let (mut tool_call_id, mut tool_name, mut tool_input) = (None, None, Json::default());
    let (mut response_id, mut seq) = (None, None);
    let names = [
        "tool_call_id",
        "tool_name",
        "tool_input",
        "response_id",
        "seq",
    ];
    r.fields(&names, &mut |r, field| {
        match field {
            0 => tool_call_id = Some(r.string()?.into_owned()),
            1 => tool_name = Some(r.string()?.into_owned()),
            2 => tool_input = r.json()?,
            3 => response_id = r.opt_string()?,
            _ => seq = r.opt_u64()?,
        }
        Ok(())
    })?;
    Ok(ToolCallParams {
        tool_call_id: tool_call_id.ok_or("missing field `tool_call_id`")?,
        tool_name: tool_name.ok_or("missing field `tool_name`")?,
        tool_input,
        response_id,
        seq,
    })
}

fn tool_response(r: &mut Reader<'_>) -> Result<ToolResponseParams, Fail> {
    let (mut tool_call_id, mut tool_name, mut tool_output) = (None, String::new(), String::new());
    let (mut response_id, mut seq) = (None, None);
    let names = [
        "tool_call_id",
        "tool_name",
        "tool_output",
        "response_id",
        "seq",
    ];
    r.fields(&names, &mut |r, field| {
        match field {
            0 => tool_call_id = Some(r.string()?.into_owned()),
            1 => tool_name = r.string()?.into_owned(),
            2 => tool_output = r.text_of_any()?,
            3 => response_id = r.opt_string()?,
            _ => seq = r.opt_u64()?,
        }
        Ok(())
    })?;
    Ok(ToolResponseParams {
        tool_call_id: tool_call_id.ok_or("missing field `tool_call_id`")?,
        tool_name,
        tool_output,
        response_id,
        seq,
    })
}

fn events(r: &mut Reader<'_>) -> Result<EventsParams, Fail> {
    let (mut events, mut response_id, mut seq) = (Vec::new(), None, None);
    r.fields(&["events", "response_id", "seq"], &mut |r, field| {
        match field {
            0 => r.array(|r| {
                events.push(agent_event(r)?);
                Ok(())
            })?,
            1 => response_id = r.opt_string()?,
            _ => seq = r.opt_u64()?,
        }
        Ok(())
    })?;
    Ok(EventsParams {
        events,
        response_id,
        seq,
    })
}

fn agent_event(r: &mut Reader<'_>) -> Result<AgentEvent, Fail> {
    let (mut kind, mut data) = (String::new(), Json::default());
    r.fields(&["type", "data"], &mut |r, field| {
        match field {
            0 => kind = r.string()?.into_owned(),
            _ => data = r.json()?,
        }
        Ok(())
    })?;
    Ok(AgentEvent { kind, data })
}

fn client_side_tool_calls(r: &mut Reader<'_>) -> Result<ClientSideToolCallsParams, Fail> {
    let (mut tool_calls, mut response_id, mut seq) = (Vec::new(), None, None);
    r.fields(&["tool_calls", "response_id", "seq"], &mut |r, field| {
        match field {
            0 => r.array(|r| {
                tool_calls.push(r.json()?);
                Ok(())
            })?,
            1 => response_id = r.opt_string()?,
            _ => seq = r.opt_u64()?,
        }
        Ok(())
    })?;
    Ok(ClientSideToolCallsParams {
        tool_calls,
        response_id,
        seq,
    })
}

/// [`ConnectResult`] from the `connect_to_context` result, as
/// `serde_json::from_value(..).unwrap_or_default()` reads it: a field of the
/// wrong type makes the whole result the default. Read from the value's
/// text (written out compact natively, as received in the browser build),
/// so that the browser build needs no `Value` tree for it.
pub(crate) fn connect_result(result: &Json) -> ConnectResult {
    let mut c = ConnectResult::default();
    let read = members(&json_str(result), |key, r| {
        match key {
            "success" => c.success = boolean(r)?,
            "agent_speaks_first" => c.agent_speaks_first = boolean(r)?,
            "resumed" => {
                c.resumed = match r.scalar()? {
                    Scalar::Null => None,
                    Scalar::Bool(b) => Some(b),
                    _ => return Err(WRONG_TYPE),
                }
            }
            "seq" => c.seq = r.opt_u64()?,
            "server" => {
                c.server = if r.null() {
                    None
                } else {
                    Some(server_info(r)?)
                }
            }
            "agent" => c.agent = if r.null() { None } else { Some(agent(r)?) },
            _ => r.skip()?,
        }
        Ok(())
    });
    read.map_or_else(|_| ConnectResult::default(), |()| c)
}

/// Why a field of a result is refused (the result then reads as the
/// default, so the text is never shown).
const WRONG_TYPE: Fail = "a field of the wrong type";

/// A boolean member of the result: present, it must be one (serde's
/// `bool` with `#[serde(default)]` refuses `null`).
fn boolean(r: &mut Reader<'_>) -> Result<bool, Fail> {
    r.scalar()?.as_bool().ok_or(WRONG_TYPE)
}

/// An agent's flag: `null` reads as `false` (`lenient::null_as_default`).
fn flag(r: &mut Reader<'_>) -> Result<bool, Fail> {
    match r.scalar()? {
        Scalar::Null => Ok(false),
        Scalar::Bool(b) => Ok(b),
        _ => Err(WRONG_TYPE),
    }
}

fn server_info(r: &mut Reader<'_>) -> Result<ServerInfo, Fail> {
    let mut info = ServerInfo::default();
    let text = |r: &mut Reader<'_>| r.scalar()?.into_string().ok_or(WRONG_TYPE);
    r.object(|r, key| {
        match &*key {
            "name" => info.name = text(r)?,
            "version" => info.version = text(r)?,
            "capabilities" => {
                let mut caps = Vec::new();
                r.array(|r| {
                    caps.push(text(r)?);
                    Ok(())
                })?;
                info.capabilities = caps;
            }
            _ => r.skip()?,
        }
        Ok(())
    })?;
    Ok(info)
}

/// Unix seconds, leniently (`lenient::unix_seconds`): a number (a float
/// truncated) or a string holding one; anything else is `None`, not an
/// error.
fn seconds(r: &mut Reader<'_>) -> Result<Option<i64>, Fail> {
    let whole = |t: &str| {
        t.parse::<i64>().ok().or_else(|| {
            super::float::parse(t)
                .filter(|f| f.is_finite())
                .map(|f| f as i64)
        })
    };
    Ok(match r.scalar()? {
        Scalar::Number(t) => whole(t),
        Scalar::Str(s) => whole(s.trim()),
        _ => None,
    })
}

/// [`super::Agent`], with the leniency of its serde attributes
/// (`super::lenient`'s `string_or_number`, `any_as_text`, `null_as_default`,
/// `unix_seconds`); unknown fields are kept in `extra`.
fn agent(r: &mut Reader<'_>) -> Result<super::Agent, Fail> {
    let mut a = super::Agent::default();
    r.object(|r, key| {
        match &*key {
            "agent_id" => {
                a.agent_id = match r.scalar()? {
                    Scalar::Null => String::new(),
                    Scalar::Str(s) => s.into_owned(),
                    Scalar::Number(t) => t.into(),
                    _ => return Err(WRONG_TYPE),
                }
            }
            "agent_name" => a.agent_name = r.scalar()?.into_text(),
            "agent_description" => a.agent_description = r.scalar()?.into_text(),
            "prompt" => a.prompt = r.scalar()?.into_text(),
            "org_id" => a.org_id = r.scalar()?.into_text(),
            "is_public" => a.is_public = flag(r)?,
            "agent_speaks_first" => a.agent_speaks_first = flag(r)?,
            "tools" => {
                a.tools = Vec::new();
                if !r.null() {
                    r.array(|r| {
                        a.tools.push(r.json()?);
                        Ok(())
                    })?;
                }
            }
            "created_at" => a.created_at = seconds(r)?,
            "updated_at" => a.updated_at = seconds(r)?,
            _ => {
                a.extra.insert(key.into_owned(), r.json()?);
            }
        }
        Ok(())
    })?;
    Ok(a)
}

/// [`ClientRequest::encode`] for the compact build: byte for byte what
/// serde_json writes.
pub(crate) fn encode_request(
    request: &ClientRequest,
    id: Option<&str>,
    idempotency_key: Option<&str>,
) -> String {
    let mut out = String::with_capacity(64);
    out.push_str("{\"method\":");
    push_json_str(&mut out, request.method());
    out.push_str(",\"params\":{");
    let mut fields = Fields {
        out: &mut out,
        first: true,
    };
    match request {
        ClientRequest::ConnectToContext(p) => {
            fields.str("context_id", Some(&p.context_id));
            fields.str("access_token", p.access_token.as_deref());
            if let Some(seq) = p.resume_after_seq {
                fields.key("resume_after_seq");
                crate::error::push_u64(fields.out, seq);
            }
            fields.str("client_key", p.client_key.as_deref());
        }
        ClientRequest::AddMessage { message } => fields.str("message", Some(message)),
        ClientRequest::StopInvocation {} => {}
        ClientRequest::SetLastMessages {
            human_message,
            ai_message,
        } => {
            fields.str("human_message", Some(human_message));
            fields.str("ai_message", ai_message.as_deref());
        }
        ClientRequest::ClientSideToolResponses { tool_responses } => {
            fields.key("tool_responses");
            fields.out.push('[');
            for (i, t) in tool_responses.iter().enumerate() {
                if i > 0 {
                    fields.out.push(',');
                }
                fields.out.push_str("{\"tool_call_id\":");
                push_json_str(fields.out, &t.tool_call_id);
                fields.out.push_str(",\"response\":");
                push_json_str(fields.out, &t.response);
                fields.out.push('}');
            }
            fields.out.push(']');
        }
    }
    out.push('}');
    if let Some(id) = id {
        out.push_str(",\"id\":");
        push_json_str(&mut out, id);
    }
    if let Some(key) = idempotency_key {
        out.push_str(",\"idempotency_key\":");
        push_json_str(&mut out, key);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::super::json::{parse, to_json};
    use super::*;
    use serde_json::Value;

    /// The serde decoder's verdict and this one's: equal values, or the
    /// same error variant.
    pub(crate) fn agree(text: &str) {
        let reference = super::super::reference::decode_server_frame_with_serde(text);
        let compact = decode_server_frame(text);
        let frame: String = text.chars().take(200).collect();
        match (&reference, &compact) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{frame}"),
            (Err(a), Err(b)) => assert_eq!(
                core::mem::discriminant(a),
                core::mem::discriminant(b),
                "{frame}: {a:?} vs {b:?}"
            ),
            _ => panic!("{frame}: serde {reference:?}, compact {compact:?}"),
        }
    }

    #[test]
    fn frames_mean_the_same_as_with_serde() {
        let frames = [
            r#"{"method":"on_token","params":{"token":"Hi","response_id":"r1","seq":3}}"#,
            r#"{"params":{"token":"Hi","response_id":"r1"},"method":"on_token"}"#,
            r#"{"id":null,"method":"on_stop_token","params":{"response_id":"r","reason":"stopped"},"x":[1,{"y":2}]}"#,
            // Found by the generator: serde's derived enum took a one-key
            // object as an unknown reason; both refuse it now.
            r#"{"params":["r1",{"tool_name":null}],"method":"on_stop_token"}"#,
            r#"{"params":{"response_id":"r1","reason":{"x":null}},"method":"on_stop_token"}"#,
            r#"{"method":"on_stop_token","params":{"response_id":"r","reason":"weird","seq":null}}"#,
            r#"{"method":"on_stop_token","params":{"response_id":"r","reason":5}}"#,
            r#"{"meth\u006fd":"on_token","params":{"token":"a\"\\\n😀\ud83d\ude00","response_id":"r\u00e9"}}"#,
            r#"{"method":"on_t\u006fken","params":{"token":"x","response_id":"r"}}"#,
            r#"{"method":"on_events","params":null}"#,
            r#"{"method":"on_events"}"#,
            r#"{"method":"on_events","params":{"events":[{"type":"a","data":{"k":[1,2.5,-3,true,null]}},{}],"response_id":"r","seq":9}}"#,
            r#"{"method":"on_events","params":{"events":null}}"#,
            r#"{"method":"on_events","params":{"events":[{"type":null}]}}"#,
            r#"{"method":"on_thinking","params":null}"#,
            r#"{"method":"on_thinking","params":{"x":[1,2]}}"#,
            r#"{"method":"on_tool_call","params":{"tool_call_id":"t","tool_name":"n","tool_input":{"q":1}},"id":7}"#,
            r#"{"method":"on_tool_call","params":{"tool_call_id":"t","tool_name":"n","tool_input":null,"response_id":null}}"#,
            r#"{"method":"on_tool_call","params":{"tool_call_id":"t"}}"#,
            r#"{"method":"on_tool_response","params":{"tool_call_id":"t","tool_output":{"a":1,"b":[1.5,1e21,-0,"x"]}}}"#,
            r#"{"method":"on_tool_response","params":{"tool_call_id":"t","tool_output":null,"tool_name":"n"}}"#,
            r#"{"method":"on_tool_response","params":{"tool_call_id":"t","tool_name":null}}"#,
            r#"{"method":"on_client_side_tool_calls","params":{"tool_calls":[{"tool_call_id":"c"}]}}"#,
            r#"{"method":"on_client_side_tool_calls","params":{"tool_calls":{}}}"#,
            r#"{"id":"4","result":{"success":true}}"#,
            r#"{"result":{"success":false,"error":"no"},"id":12}"#,
            r#"{"result":{},"id":-0}"#,
            r#"{"result":{},"id":1.50}"#,
            r#"{"result":{},"id":18446744073709551616}"#,
            r#"{"id":"4","result":null}"#,
            r#"{"method":null,"id":"4","result":{}}"#,
            " {\"id\" : \"4\" ,\n\"result\":[] } ",
            r#"{"method":"on_token","params":{"token":5}}"#,
            r#"{"method":"on_token","params":null}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r","seq":-1}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r","seq":1.0}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r","seq":"1"}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r","token":"b"}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r"}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r"}} x"#,
            r#"{"method":"on_token","method":"on_token","params":{}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r"},"params":{}}"#,
            r#"{"method":"on_token","params":{"token":"\ud800","response_id":"r"}}"#,
            r#"{"method":"on_token","params":{"token":"\x","response_id":"r"}}"#,
            r#"{"method":"on_token","params":{"token":"a	b","response_id":"r"}}"#,
            r#"{"method":5}"#,
            r#"{"id":{"a":1},"result":{}}"#,
            r#"{"id":true,"result":{}}"#,
            r#"{"id":"4"}"#,
            r#"{"id":01,"result":{}}"#,
            r#"{"id":1.,"result":{}}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#""text""#,
            "not json",
            "",
            "{",
            r#"{"a":tru}"#,
        ];
        for f in frames {
            agree(f);
        }
    }

    mod generated {
        use proptest::prelude::*;
        use serde_json::{json, Value};

        fn scalar() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                // Eighths: serde_json (without `float_roundtrip`) may read
                // long decimals 1 ulp off, which the exact reader here does
                // not; values both read exactly keep the comparison strict.
                (-1e9f64..1e9).prop_map(|f| Value::from((f * 8.0).round() / 8.0)),
                "[a-z\\\\\"\\n\\u{1}é😀]{0,6}".prop_map(Value::from),
                prop::sample::select(vec!["complete", "stopped", "error", "r1", "t"])
                    .prop_map(Value::from),
            ]
        }

        fn any_json() -> impl Strategy<Value = Value> {
            scalar().prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(key(), inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn key() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                "token",
                "response_id",
                "seq",
                "reason",
                "tool_call_id",
                "tool_name",
                "tool_input",
                "tool_output",
                "events",
                "type",
                "data",
                "tool_calls",
                "x",
            ])
            .prop_map(str::to_owned)
        }

        /// Params objects mostly made of the fields the methods know, with
        /// values of every type (right and wrong).
        fn params() -> impl Strategy<Value = Value> {
            prop_oneof![
                3 => prop::collection::btree_map(key(), any_json(), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                1 => any_json(),
            ]
        }

        fn frame() -> impl Strategy<Value = String> {
            let method = prop::sample::select(vec![
                "on_token",
                "on_stop_token",
                "on_tool_call",
                "on_tool_response",
                "on_events",
                "on_client_side_tool_calls",
                "on_thinking",
            ]);
            (
                prop::option::of(method),
                prop::option::of(params()),
                prop::option::of(scalar()),
                prop::option::of(any_json()),
                0usize..4,
            )
                .prop_map(|(method, params, id, result, order)| {
                    let mut fields = vec![];
                    if let Some(m) = method {
                        fields.push(format!("\"method\":{}", json!(m)));
                    }
                    if let Some(p) = params {
                        fields.push(format!("\"params\":{p}"));
                    }
                    if let Some(id) = id {
                        fields.push(format!("\"id\":{id}"));
                    }
                    if let Some(r) = result {
                        fields.push(format!("\"result\":{r}"));
                    }
                    let n = fields.len().max(1);
                    fields.rotate_left(order % n);
                    format!("{{{}}}", fields.join(","))
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn frames_mean_the_same_as_with_serde(frame in frame()) {
                super::agree(&frame);
            }

            #[test]
            fn cut_frames_mean_the_same_as_with_serde(frame in frame(), cut in 0usize..200) {
                let mut cut = cut.min(frame.len());
                while !frame.is_char_boundary(cut) {
                    cut -= 1;
                }
                super::agree(&frame[..cut]);
            }
        }
    }

    /// Found by `fuzz/` (decode_compact): a number too large for an `f64`
    /// in a field nobody reads made the browser build refuse a frame that
    /// serde, which checks only the grammar of what it skips, accepts.
    #[test]
    fn out_of_range_numbers_are_skipped_as_serde_skips_them() {
        for frame in [
            r#"{"method":"on_tool_response","params":{"tool_call_id":"t","x":{"b":[1.5,1e2888888888888881,-0]}}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r","x":-1e400},"y":1E+999}"#,
            r#"{"method":"on_thinking","params":[1e400]}"#,
            r#"{"method":"on_thinking","params":{"x":1e400}}"#,
            r#"{"id":"1","x":1e400,"result":{}}"#,
            // Read, not skipped: refused by both.
            r#"{"id":"1","result":{"x":1e400}}"#,
            r#"{"method":"on_tool_response","params":{"tool_call_id":"t","tool_output":1e400}}"#,
            // Malformed, skipped or not: refused by both.
            r#"{"id":"1","x":1e,"result":{}}"#,
            r#"{"id":"1","x":01,"result":{}}"#,
            r#"{"id":"1","x":-,"result":{}}"#,
        ] {
            agree(frame);
        }
        assert!(decode_server_frame(r#"{"id":"1","x":1e400,"result":{}}"#).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let (open, close) = ("[".repeat(100_000), "]".repeat(100_000));
        // Skipped values may nest at any depth, as with serde_json; values
        // that are read are refused past 128 levels.
        for deep in [
            format!(r#"{{"method":"on_thinking","params":{open}{close}}}"#),
            format!(r#"{{"x":{open}{close},"id":"1","result":{{}}}}"#),
            format!(r#"{{"id":"1","result":{open}{close}}}"#),
            format!(r#"{{"method":"on_tool_call","params":{{"tool_input":{open}{close}}}}}"#),
            format!(r#"{{"method":"on_events","params":{{"x":{open}{close}}}}}"#),
        ] {
            agree(&deep);
        }
        assert!(decode_server_frame(&format!(r#"{{"id":"1","result":{open}{close}}}"#)).is_err());
        let nested_ok = format!(
            r#"{{"id":"1","result":{}{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        agree(&nested_ok);
    }

    #[test]
    fn requests_are_written_byte_for_byte_as_serde_writes_them() {
        use super::super::{ConnectParams, ToolResponseParam};
        let requests = [
            ClientRequest::ConnectToContext(ConnectParams {
                context_id: "c\"1".into(),
                access_token: Some("t".into()),
                resume_after_seq: Some(18_446_744_073_709_551_615),
                client_key: Some("pk_\u{1}\u{7f}é".into()),
            }),
            ClientRequest::ConnectToContext(ConnectParams::default()),
            ClientRequest::AddMessage {
                message: "line\nbreak\ttab\\ \u{8}\u{c}\r\u{1f} 😀".into(),
            },
            ClientRequest::StopInvocation {},
            ClientRequest::SetLastMessages {
                human_message: "h".into(),
                ai_message: None,
            },
            ClientRequest::SetLastMessages {
                human_message: "h".into(),
                ai_message: Some("a".into()),
            },
            ClientRequest::ClientSideToolResponses {
                tool_responses: vec![],
            },
            ClientRequest::ClientSideToolResponses {
                tool_responses: vec![
                    ToolResponseParam {
                        tool_call_id: "1".into(),
                        response: "{\"x\":1}".into(),
                    },
                    ToolResponseParam {
                        tool_call_id: "2".into(),
                        response: String::new(),
                    },
                ],
            },
        ];
        for r in &requests {
            for id in [None, Some("17")] {
                for key in [None, Some("5f3a-17")] {
                    assert_eq!(
                        encode_request(r, id, key),
                        super::super::reference::encode_request_with_serde(r, id, key)
                    );
                }
            }
        }
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let v: Value = serde_json::from_str(
            r#"{"b":[1,-2,2.5,1e21,1e-7,0.1,-0.0,true,null,"q\"\u0001"],"a":{"z":{}},"":[]}"#,
        )
        .unwrap();
        assert_eq!(to_json(&v), serde_json::to_string(&v).unwrap());
        assert_eq!(parse(&serde_json::to_string(&v).unwrap()), Ok(v));
    }

    #[test]
    fn connect_results_read_as_serde_reads_them() {
        let results = [
            r#"{"success":true,"agent_speaks_first":false,"seq":4,"resumed":true,"server":{"name":"s","version":"1","capabilities":["seq","resume"]}}"#,
            r#"{"success":true,"agent":{"agent_id":42,"agent_name":null,"prompt":{"x":1},"is_public":null,"tools":null,"created_at":"1700000000.5","updated_at":1.7e9,"color":"blue"}}"#,
            r#"{"success":true,"agent":{"agent_id":"a","created_at":"yesterday","tools":[{"n":1}]}}"#,
            r#"{"success":"yes"}"#,
            r#"{"success":true,"seq":-1}"#,
            r#"{"success":true,"server":{"capabilities":[1]}}"#,
            r#"{"success":true,"server":{"name":null}}"#,
            r#"{"success":true,"agent":{"agent_id":true}}"#,
            r#"{"success":true,"agent":{"is_public":"no"}}"#,
            r#"{"success":null}"#,
            r#"[]"#,
            r#"null"#,
        ];
        for r in results {
            let v: Value = serde_json::from_str(r).unwrap();
            let reference: ConnectResult = serde_json::from_value(v.clone()).unwrap_or_default();
            assert_eq!(connect_result(&v), reference, "{r}");
        }
    }
}
