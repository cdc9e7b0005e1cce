//! The server-side client-frame decoder (`tokenrelay::wire::
//! decode_client_frame`, what the reference server runs on every frame a
//! client sends), and the two request writers.
//!
//! Invariants:
//! * only `InvalidJson` and `UnexpectedShape` are returned as errors, and
//!   only `UnexpectedShape` for JSON without a `method`;
//! * an accepted frame is a JSON object (or, as serde reads a struct, an
//!   array of the fields in order); `method` and `id` (string, number or
//!   null) are what it says;
//! * an unknown method is reported inside the request, with the id kept;
//! * a decoded request encodes (with its id) to a frame that decodes to the
//!   same request, and the compact writer (browser) writes it byte for byte
//!   as serde does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokenrelay::wire::{decode_client_frame, fuzzing, method};
use tokenrelay::ProtocolError;

const KNOWN: [&str; 5] = [
    method::CONNECT_TO_CONTEXT,
    method::ADD_MESSAGE,
    method::STOP_INVOCATION,
    method::SET_LAST_MESSAGES,
    method::CLIENT_SIDE_TOOL_RESPONSES,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let decoded = decode_client_frame(text);
    // Where serde_json's value parser reads the whole frame (it also checks
    // what the decoder skips: an unknown field, an unknown method's params),
    // the frame must say what was decoded. serde reads a struct from an
    // object, or from an array of its fields in order: method, params, id.
    let value: Option<Value> = serde_json::from_str(text).ok();
    let field = |name: &str, index: usize| -> Value {
        match &value {
            Some(Value::Object(o)) => o.get(name).cloned().unwrap_or(Value::Null),
            Some(Value::Array(a)) => a.get(index).cloned().unwrap_or(Value::Null),
            Some(other) => panic!("{other} accepted as a frame"),
            None => Value::Null,
        }
    };
    let incoming = match decoded {
        Ok(incoming) => incoming,
        Err(ProtocolError::InvalidJson { .. }) => return,
        Err(ProtocolError::UnexpectedShape { .. }) => {
            if value.is_some() {
                assert!(field("method", 0).is_null(), "{text:?}");
            }
            return;
        }
        Err(other) => panic!("{text:?}: unexpected error {other:?}"),
    };
    if value.is_some() {
        assert_eq!(field("method", 0).as_str(), Some(incoming.method.as_str()));
        let id = match field("id", 2) {
            Value::Null => None,
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            other => panic!("id {other} accepted in {text:?}"),
        };
        assert_eq!(incoming.id, id, "{text:?}");
    }
    let request = match &incoming.request {
        Ok(request) => request,
        Err(message) => {
            if !KNOWN.contains(&incoming.method.as_str()) {
                assert_eq!(*message, format!("unknown method `{}`", incoming.method));
            }
            return;
        }
    };
    assert_eq!(request.method(), incoming.method, "{text:?}");
    let id = incoming.id.as_deref();
    let encoded = request.encode(id);
    assert_eq!(encoded, fuzzing::serde_encode_request(request, id));
    assert_eq!(
        fuzzing::compact_encode_request(request, id),
        encoded,
        "the compact writer differs on {text:?}"
    );
    let again = decode_client_frame(&encoded).expect("an encoded request decodes");
    assert_eq!(again.id.as_deref(), id, "{encoded:?}");
    assert_eq!(again.method, incoming.method, "{encoded:?}");
    assert_eq!(again.request.as_ref(), Ok(request), "{encoded:?}");
});
