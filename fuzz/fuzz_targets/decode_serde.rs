//! The serde decoders of server frames (`sdk-core/src/wire/mod.rs`): the
//! one-pass hot path and the full native path, against the careful
//! two-pass decoder, which is the reference.
//!
//! Invariants:
//! * the serde path as native builds used it until issue #12 (scanner,
//!   one pass, then two passes) gives exactly the reference's result,
//!   error wording included (`decode_server_frame` itself is now the
//!   compact reader on every target: the `decode_compact` target holds it
//!   to the reference);
//! * whatever the one-pass decoder accepts, the reference reads the same;
//! * a frame the reference accepts is a JSON object (or, as serde reads a
//!   struct, an array of the envelope's fields in order) whose `method`
//!   (or `id` and `result`) are what the decoded frame says (checked where
//!   serde_json's value parser reads the whole frame, see below);
//! * what the reference accepts, encoded again the way the reference server
//!   writes it, decodes to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokenrelay::wire::{self, fuzzing, Notification, ServerFrame};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reference = fuzzing::decode_reference(text);
    assert_eq!(
        fuzzing::decode_native(text),
        reference,
        "native on {text:?}"
    );
    if let Some(fast) = fuzzing::decode_one_pass(text) {
        assert_eq!(Ok(&fast), reference.as_ref(), "one pass on {text:?}");
    }
    let Ok(frame) = reference else {
        return;
    };
    // The envelope is read strictly, but what is skipped (unknown fields)
    // or kept raw (an unknown method's params) is only checked for syntax:
    // serde_json's value parser also refuses lone surrogate escapes there.
    // Such a frame still decodes (an unknown method's unreadable params as
    // `null`), so the JSON view is checked only where there is one.
    let value: Option<Value> = serde_json::from_str(text).ok();
    // serde reads a struct from an object, or from an array of its fields
    // in declaration order; the envelope's are method, params, id, result.
    let field = |name: &str, index: usize| -> Value {
        match &value {
            Some(Value::Object(o)) => o.get(name).cloned().unwrap_or(Value::Null),
            Some(Value::Array(a)) => a.get(index).cloned().unwrap_or(Value::Null),
            Some(other) => panic!("{other} accepted as a frame"),
            None => Value::Null,
        }
    };
    let encoded = match &frame {
        ServerFrame::Notification(n) => {
            if value.is_some() {
                assert_eq!(field("method", 0).as_str(), Some(n.method()), "{text:?}");
            }
            if let Notification::Unknown {
                params: Value::Null,
                ..
            } = n
            {
                // `"params": null` reads as `{}`: no round trip.
                return;
            }
            n.encode()
        }
        ServerFrame::Response { id, result } => {
            if value.is_some() {
                assert!(field("method", 0).is_null(), "{text:?}");
                assert_eq!(&field("result", 3), result, "{text:?}");
                let wire_id = match field("id", 2) {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    other => panic!("id {other} accepted in {text:?}"),
                };
                assert_eq!(*id, wire_id, "{text:?}");
            }
            wire::encode_response(id, result)
        }
    };
    assert_eq!(
        fuzzing::decode_reference(&encoded).as_ref(),
        Ok(&frame),
        "{text:?} re-encoded as {encoded:?}"
    );
});
