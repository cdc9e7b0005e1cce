//! The `on_token` hot path: a scanner for the one frame shape that arrives
//! millions of times per reply,
//! `{"method":"on_token","params":{"token":"…","response_id":"…","seq":N}}`
//! (any whitespace, `params` keys in any order, an optional `"id":null`).
//!
//! It accepts only what it fully understands: strings without escapes,
//! `seq` as a plain non-negative integer, no other keys, `method` before
//! `params`, nothing after the object. Anything else returns `None` and the
//! frame goes to the serde decoders, which give the same answer for every
//! frame this accepts (a differential property test holds them to it) and
//! word every error.

use alloc::borrow::Cow;

use super::TokenParams;

/// The frame's `on_token` params, if the frame has the plain shape.
pub(crate) fn token_frame(text: &str) -> Option<TokenParams<'_>> {
    canonical(text).or_else(|| general(text))
}

/// The three values of a canonical `on_token` frame, borrowed from it: a
/// small `Copy` value that the session's hot path hands on in registers.
/// [`TokenParams`] (two `Cow`s, 64 bytes) was moved through memory on
/// every frame, written a word at a time and read back 16 bytes at a time:
/// a store-forwarding stall per frame in `perf annotate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plain<'a> {
    /// The token text.
    pub(crate) token: &'a str,
    /// The response it belongs to.
    pub(crate) response_id: &'a str,
    /// `seq`, when the server numbers notifications.
    pub(crate) seq: Option<u64>,
}

impl<'a> From<Plain<'a>> for TokenParams<'a> {
    fn from(p: Plain<'a>) -> TokenParams<'a> {
        TokenParams {
            token: Cow::Borrowed(p.token),
            response_id: Cow::Borrowed(p.response_id),
            seq: p.seq,
        }
    }
}

/// [`canonical_parts`] as the decoders' params.
pub(super) fn canonical(text: &str) -> Option<TokenParams<'_>> {
    canonical_parts(text).map(TokenParams::from)
}

/// The exact layout the reference server (and any serde-based server)
/// writes, compared as fixed byte strings around the three values: the
/// cheapest possible check for the frame that dominates every stream.
#[inline]
pub(crate) fn canonical_parts(text: &str) -> Option<Plain<'_>> {
    let rest = text.strip_prefix(super::TOKEN_FRAME_PREFIX)?;
    let (token, rest) = until_quote(rest)?;
    let rest = rest.strip_prefix(r#","response_id":""#)?;
    let (response_id, rest) = until_quote(rest)?;
    let (seq, rest) = match rest.strip_prefix(r#","seq":"#) {
        Some(rest) => {
            let (mut seq, end) = digits(rest.as_bytes());
            if end == 0 || (end > 1 && rest.starts_with('0')) {
                return None;
            }
            if end > MAX_UNCHECKED_DIGITS {
                seq = rest.get(..end)?.parse().ok()?;
            }
            (Some(seq), rest.get(end..)?)
        }
        None => (None, rest),
    };
    (rest == "}}").then_some(Plain {
        token,
        response_id,
        seq,
    })
}

/// The run of ASCII digits that starts `bytes`: their value (wrapping
/// past 19 digits, which the caller parses again with a check) and how
/// many there are.
///
/// Digits are read and summed in one pass (no second pass through
/// `str::parse`), without a check per digit (a `checked_mul` on every
/// digit was a tenth of the scanner's time). Native builds read up to
/// seven digits (every `seq` below ten million) as one word: a digit per
/// byte is a chain of dependent multiply-adds, a quarter of the scanner's
/// time in `perf`; the browser build keeps the loop (size budget, #13).
#[inline]
fn digits(bytes: &[u8]) -> (u64, usize) {
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(word) = bytes.get(..8) {
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        // Each byte minus '0': a digit is 0..=9; anything else has its
        // high bit set after the subtraction or after adding 0x76 (9 +
        // 0x76 = 0x7F is the largest that stays below 0x80).
        let values = word.wrapping_sub(ONES * u64::from(b'0'));
        let not_digit = (values | values.wrapping_add(ONES * 0x76)) & HIGHS;
        let n = not_digit.trailing_zeros() as usize / 8;
        if (1..8).contains(&n) {
            // The `n` digits moved to the top of the word (zeros, that
            // is leading zero digits, below), then summed in three
            // multiply steps: pairs, quads, the eight.
            let v = (values << (8 * (8 - n))) & !HIGHS;
            let pairs = v.wrapping_mul(10).wrapping_add(v >> 8) & 0x00FF_00FF_00FF_00FF;
            let quads = pairs.wrapping_mul(100).wrapping_add(pairs >> 16) & 0x0000_FFFF_0000_FFFF;
            let all = quads.wrapping_mul(10_000).wrapping_add(quads >> 32) & 0xFFFF_FFFF;
            return (all, n);
        }
    }
    let mut seq = 0u64;
    let mut end = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            break;
        }
        seq = seq.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
        end += 1;
    }
    (seq, end)
}

/// The most decimal digits that always fit a `u64` (`10^19 - 1 < 2^64`).
const MAX_UNCHECKED_DIGITS: usize = 19;

/// A word with `0x01` in every byte.
#[cfg(not(target_arch = "wasm32"))]
const ONES: u64 = u64::from_le_bytes([0x01; 8]);
/// A word with `0x80` in every byte.
#[cfg(not(target_arch = "wasm32"))]
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// Where the first quote, backslash or control character (below 0x20)
/// is among the eight bytes of `word` (read little-endian), if any. The
/// classic "has a zero byte" and "has a byte less than n" bit tricks: a
/// borrow can mark a byte above a match, never one below it, so the lowest
/// marked byte is exactly the first match.
#[cfg(not(target_arch = "wasm32"))]
fn first_special_byte(word: u64) -> Option<usize> {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let found =
        control | zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\')));
    (found != 0).then(|| found.trailing_zeros() as usize / 8)
}

/// The text up to the next quote, and what follows the quote; `None` if an
/// escape or a control character comes first.
#[inline]
fn until_quote(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    // Eight bytes at a time (a token or an id is a word or two), then byte
    // by byte for a last few. Native builds only: the browser build is held
    // to a size budget, and hands most tokens to JS without reading them
    // here at all.
    #[cfg(not(target_arch = "wasm32"))]
    let start = {
        let mut start = 0;
        while let Some(word) = bytes.get(start..start + 8) {
            let word = u64::from_le_bytes(word.try_into().ok()?);
            if let Some(at) = first_special_byte(word) {
                return split_at_quote(text, start + at);
            }
            start += 8;
        }
        start
    };
    #[cfg(target_arch = "wasm32")]
    let start = 0;
    let end = start
        + bytes
            .get(start..)?
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    split_at_quote(text, end)
}

/// `text` before and after the byte at `end`, if that byte is a quote.
fn split_at_quote(text: &str, end: usize) -> Option<(&str, &str)> {
    // `get`, not indexing: no panic path (and its formatting) in the
    // browser build; `end` is at an ASCII byte, so these always succeed.
    (text.as_bytes().get(end) == Some(&b'"'))
        .then(|| Some((text.get(..end)?, text.get(end + 1..)?)))?
}

/// Any whitespace, key order and optional `"id": null`.
pub(crate) fn general(text: &str) -> Option<TokenParams<'_>> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    s.ws();
    s.eat(b'{')?;
    let (mut method, mut params, mut id) = (false, None, false);
    loop {
        s.ws();
        let key = s.plain_string()?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        match key {
            "method" if !method => {
                if s.plain_string()? != "on_token" {
                    return None;
                }
                method = true;
            }
            // `params` before `method` would need buffering: serde's job.
            "params" if method && params.is_none() => params = Some(s.token_params()?),
            "id" if !id => {
                s.literal(b"null")?;
                id = true;
            }
            _ => return None,
        }
        s.ws();
        match s.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    s.ws();
    if s.at != s.bytes.len() {
        return None;
    }
    params
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A string with no escapes and no control characters, borrowed.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        // Both ends sit next to an ASCII quote, so they are char boundaries.
        let s = self.text.get(start..self.at)?;
        self.at += 1;
        Some(s)
    }

    /// A JSON integer in `u64` range, without sign, fraction or exponent.
    fn u64(&mut self) -> Option<u64> {
        let start = self.at;
        while matches!(self.bytes.get(self.at), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        let digits = self.text.get(start..self.at)?;
        if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
            return None;
        }
        if matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        digits.parse().ok()
    }

    fn token_params(&mut self) -> Option<TokenParams<'a>> {
        self.eat(b'{')?;
        let (mut token, mut response_id, mut seq) = (None, None, None);
        loop {
            self.ws();
            let key = self.plain_string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            match key {
                "token" if token.is_none() => token = Some(self.plain_string()?),
                "response_id" if response_id.is_none() => response_id = Some(self.plain_string()?),
                "seq" if seq.is_none() => seq = Some(self.u64()?),
                _ => return None,
            }
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        Some(TokenParams {
            token: Cow::Borrowed(token?),
            response_id: Cow::Borrowed(response_id?),
            seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::reference::decode_server_frame_in_two_passes;
    use crate::wire::{Notification, ServerFrame};
    use proptest::prelude::*;

    #[test]
    fn takes_the_plain_shapes() {
        for frame in [
            r#"{"method":"on_token","params":{"token":" hi","response_id":"r1","seq":7}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r","seq":0}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r","seq":18446744073709551615}}"#,
            r#"{"method": "on_token", "params": {"token": "x", "response_id": "r"}}"#,
            r#" { "id" : null , "method":"on_token","params":{"seq":0,"response_id":"r","token":""} } "#,
            "{\"method\":\"on_token\",\"params\":{\"token\":\"é😀\",\"response_id\":\"r\"}}",
        ] {
            let p = token_frame(frame).unwrap_or_else(|| panic!("{frame}"));
            let ServerFrame::Notification(Notification::Token(q)) =
                decode_server_frame_in_two_passes(frame).unwrap()
            else {
                panic!("{frame}")
            };
            assert_eq!(p, q);
            assert!(matches!(p.token, Cow::Borrowed(_)));
        }
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        for frame in [
            r#"{"method":"on_token","params":{"token":"a\nb","response_id":"r"}}"#,
            r#"{"params":{"token":"a","response_id":"r"},"method":"on_token"}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r","extra":1}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r","seq":1.0}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r","seq":01}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r","seq":-1}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r","seq":18446744073709551616}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r"}} x"#,
            r#"{"method":"on_token","params":{"token":"a","token":"b","response_id":"r"}}"#,
            r#"{"method":"on_token","params":{"token":"a"}}"#,
            r#"{"method":"on_token","id":"5","params":{"token":"a","response_id":"r"}}"#,
            r#"{"method":"on_stop_token","params":{"response_id":"r"}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r"}"#,
            r#"{"method":"on_token","params":null}"#,
            "",
        ] {
            assert!(token_frame(frame).is_none(), "{frame}");
        }
    }

    /// Pieces of frames, some plain, some that must send the frame to serde.
    fn piece() -> impl Strategy<Value = String> {
        // Weighted towards pieces the scanner takes, so most cases compare.
        prop_oneof![
            6 => "[a-z ]{0,8}".prop_map(|s| format!("\"{s}\"")),
            1 => Just("\"a\\\"b\"".to_owned()),
            1 => Just("\"\\u00e9\"".to_owned()),
            2 => Just("\"é😀\"".to_owned()),
            3 => (0u64..u64::MAX).prop_map(|n| n.to_string()),
            1 => Just("18446744073709551615".to_owned()),
            1 => Just("1e3".to_owned()),
            1 => Just("-0".to_owned()),
            1 => Just("null".to_owned()),
            1 => Just("[]".to_owned()),
        ]
    }

    /// What `until_quote` finds, byte by byte, with no word tricks.
    fn until_quote_bytewise(text: &str) -> Option<(&str, &str)> {
        let end = text
            .bytes()
            .position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
        (text.as_bytes()[end] == b'"').then(|| (&text[..end], &text[end + 1..]))
    }

    #[test]
    fn seq_at_the_edge_of_u64() {
        let frame = |seq: &str| {
            format!(
                r#"{{"method":"on_token","params":{{"token":"a","response_id":"r","seq":{seq}}}}}"#
            )
        };
        let seq = |text: &str| canonical(text).and_then(|p| p.seq);
        assert_eq!(
            seq(&frame("9999999999999999999")),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(seq(&frame("18446744073709551615")), Some(u64::MAX));
        assert_eq!(canonical(&frame("18446744073709551616")), None);
        assert_eq!(canonical(&frame("99999999999999999999")), None);
        assert_eq!(canonical(&frame("100000000000000000000")), None);
    }

    proptest! {
        /// The word-at-a-time search finds what a byte-by-byte one finds,
        /// wherever the quote, escape or control byte falls.
        #[test]
        fn until_quote_agrees_with_a_bytewise_search(
            text in "[a-zé😀 \"\\\\\n\u{1f}\u{7f}-\u{ff}]{0,40}",
        ) {
            prop_assert_eq!(until_quote(&text), until_quote_bytewise(&text));
        }

        /// The word-at-a-time digits read what a digit-by-digit loop
        /// reads, for every count of leading digits and whatever follows.
        #[test]
        fn digits_agree_with_a_digit_by_digit_loop(
            digits in "[0-9]{0,12}", tail in proptest::collection::vec(any::<u8>(), 0..10),
        ) {
            let bytes = [digits.as_bytes(), &tail].concat();
            let mut want = (0u64, 0usize);
            for &b in bytes.iter().take_while(|b| b.is_ascii_digit()) {
                want = (want.0.wrapping_mul(10).wrapping_add(u64::from(b - b'0')), want.1 + 1);
            }
            prop_assert_eq!(super::digits(&bytes), want, "{:?}", bytes);
        }

        #[test]
        fn the_word_test_finds_the_first_special_byte(word in any::<[u8; 8]>()) {
            let first = word.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(first_special_byte(u64::from_le_bytes(word)), first);
        }
    }

    fn ws() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just(""), Just(" "), Just("\n\t ")]
    }

    proptest! {
        /// Whatever the scanner accepts, serde decodes to the same params.
        #[test]
        fn agrees_with_serde(
            token in piece(), rid in piece(), seq in proptest::option::of(piece()),
            order in 0usize..6, w in ws(), id in proptest::option::of(piece()),
            method in prop_oneof![Just("on_token"), Just("on_stop_token")],
        ) {
            let mut fields = vec![format!("\"token\":{w}{token}"), format!("\"response_id\":{w}{rid}")];
            if let Some(seq) = &seq {
                fields.push(format!("{w}\"seq\"{w}:{seq}"));
            }
            let n = fields.len();
            fields.rotate_left(order % n);
            let id = id.map(|i| format!(",\"id\":{i}")).unwrap_or_default();
            let frame = format!("{{\"method\":\"{method}\"{id},{w}\"params\":{{{}}}}}", fields.join(","));
            if let Some(fast) = canonical(&frame) {
                prop_assert_eq!(Some(fast), general(&frame), "{}", frame);
            }
            if let Some(fast) = token_frame(&frame) {
                let careful = decode_server_frame_in_two_passes(&frame);
                prop_assert_eq!(
                    careful,
                    Ok(ServerFrame::Notification(Notification::Token(fast))),
                    "{}", frame
                );
            }
        }
    }
}
