//! The serde decoders of server frames (`sdk-core/src/wire/mod.rs`): the
//! one-pass hot path and the full native path, against the careful
//! two-pass decoder, which is the reference.
//!
//! Invariants:
//! * `decode_server_frame` (native: scanner, one pass, then two passes)
//!   gives exactly the reference's result, error wording included;
//! * whatever the one-pass decoder accepts, the reference reads the same;
//! * a frame the reference accepts is a JSON object whose `method` (or
//!   `id` and `result`) are what the decoded frame says;
//! * what the reference accepts, encoded again the way the reference server
//!   writes it, decodes to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokenrelay::wire::{self, fuzzing, ServerFrame};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reference = fuzzing::decode_reference(text);
    assert_eq!(fuzzing::decode_native(text), reference, "native on {text:?}");
    assert_eq!(wire::decode_server_frame(text), reference, "{text:?}");
    if let Some(fast) = fuzzing::decode_one_pass(text) {
        assert_eq!(Ok(&fast), reference.as_ref(), "one pass on {text:?}");
    }
    let Ok(frame) = reference else {
        return;
    };
    let value: Value = serde_json::from_str(text).expect("a decoded frame is JSON");
    let encoded = match &frame {
        ServerFrame::Notification(n) => {
            assert_eq!(value["method"].as_str(), Some(n.method()), "{text:?}");
            n.encode()
        }
        ServerFrame::Response { id, result } => {
            assert!(value["method"].is_null(), "{text:?}");
            assert_eq!(&value["result"], result, "{text:?}");
            let wire_id = match &value["id"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => panic!("id {other} accepted in {text:?}"),
            };
            assert_eq!(*id, wire_id, "{text:?}");
            wire::encode_response(id, result)
        }
    };
    assert_eq!(
        fuzzing::decode_reference(&encoded).as_ref(),
        Ok(&frame),
        "{text:?} re-encoded as {encoded:?}"
    );
});
