//! The compact codec the browser build uses (`sdk-core/src/wire/compact.rs`)
//! against serde, the reference.
//!
//! Invariants:
//! * a server frame decodes to the same value as with the careful serde
//!   decoder, or both refuse it with the same `ProtocolError` variant (the
//!   wording differs by design);
//! * the JSON reader accepts exactly what serde_json accepts, with the same
//!   value (numbers exact: the reference here is built with
//!   `float_roundtrip`);
//! * the JSON writer writes every value byte for byte as serde_json does;
//! * a `connect_to_context` result reads as serde reads it, except the one
//!   documented difference (a result in JSON array form).
#![no_main]

use std::mem::discriminant;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokenrelay::wire::{fuzzing, ConnectResult};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reference = fuzzing::decode_reference(text);
    let compact = fuzzing::decode_compact(text);
    match (&reference, &compact) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{text:?}"),
        (Err(a), Err(b)) => {
            assert_eq!(discriminant(a), discriminant(b), "{text:?}: {a:?} vs {b:?}")
        }
        _ => panic!("{text:?}: serde {reference:?}, compact {compact:?}"),
    }

    let parsed = fuzzing::compact_parse(text);
    let serde: Result<Value, _> = serde_json::from_str(text);
    match (&parsed, &serde) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{text:?}"),
        (Err(_), Err(_)) => {}
        _ => panic!("{text:?}: serde_json {serde:?}, compact {parsed:?}"),
    }
    let Ok(value) = serde else {
        return;
    };
    let written = serde_json::to_string(&value).expect("a value serializes");
    assert_eq!(fuzzing::compact_to_json(&value), written, "{text:?}");
    if !value.is_array() {
        let serde: ConnectResult = serde_json::from_value(value.clone()).unwrap_or_default();
        assert_eq!(fuzzing::compact_connect_result(&value), serde, "{text:?}");
    }
});
