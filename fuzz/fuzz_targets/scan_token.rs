//! The `on_token` hot path (`sdk-core/src/wire/scan.rs`), both scanners,
//! against the careful serde decoder.
//!
//! Invariants:
//! * the canonical scanner accepts only what the general one reads the same;
//! * `token_frame` is the canonical scanner, else the general one;
//! * whatever the scanners accept, the reference decodes to the very same
//!   `on_token` params, and the scanner's strings borrow from the frame;
//! * the hot path takes the frame the reference server writes: any `on_token`
//!   the reference decodes, encoded again without escapes, is accepted by
//!   the canonical scanner with the same params.
//!
//! The first input byte picks the frame: even, the canonical prefix followed
//! by the rest (so most runs get past the prefix); odd, the rest as is.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use tokenrelay::wire::{fuzzing, Notification, ServerFrame, TokenParams, TOKEN_FRAME_PREFIX};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // A WebSocket text frame is UTF-8 by the time a decoder sees it.
    let Ok(rest) = std::str::from_utf8(rest) else {
        return;
    };
    if mode % 2 == 0 {
        check(&format!("{TOKEN_FRAME_PREFIX}{rest}"));
    } else {
        check(rest);
    }
});

fn check(text: &str) {
    let canonical = fuzzing::scan_canonical(text);
    let general = fuzzing::scan_general(text);
    if let Some(c) = &canonical {
        assert_eq!(Some(c), general.as_ref(), "scanners disagree on {text:?}");
    }
    let fast = fuzzing::scan_token_frame(text);
    assert_eq!(fast, canonical.or(general), "token_frame on {text:?}");

    let reference = fuzzing::decode_reference(text);
    if let Some(p) = fast {
        for s in [&p.token, &p.response_id] {
            match s {
                Cow::Borrowed(b) => assert!(within(text, b), "{text:?}"),
                Cow::Owned(_) => panic!("the scanner allocated for {text:?}"),
            }
        }
        assert_eq!(
            reference,
            Ok(ServerFrame::Notification(Notification::Token(p))),
            "the reference reads {text:?} otherwise"
        );
    }
    if let Ok(ServerFrame::Notification(Notification::Token(p))) = reference {
        let encoded = Notification::Token(p.clone()).encode();
        let again = fuzzing::decode_reference(&encoded);
        assert_eq!(
            again,
            Ok(ServerFrame::Notification(Notification::Token(p.clone()))),
            "{encoded:?}"
        );
        if !encoded.contains('\\') {
            let owned = TokenParams {
                token: Cow::Owned(p.token.into_owned()),
                response_id: Cow::Owned(p.response_id.into_owned()),
                seq: p.seq,
            };
            assert_eq!(
                fuzzing::scan_canonical(&encoded),
                Some(owned),
                "the hot path misses the frame serde writes: {encoded:?}"
            );
        }
    }
}

/// `inner` is a slice of `outer`.
fn within(outer: &str, inner: &str) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}
