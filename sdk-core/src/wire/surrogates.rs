//! Tokens cut inside a surrogate pair.
//!
//! A server whose strings are UTF-16 (JavaScript, Java) can cut a reply
//! between the two halves of a character outside the Basic Multilingual
//! Plane: `"\ud83d"` ends one `on_token` frame and `"\ude00"` starts the
//! next. Each frame on its own holds a lone surrogate, which JSON decoders
//! (ours included) refuse, and which a Rust string cannot hold.
//!
//! Only when a frame failed to decode, [`repair`] rewrites each lone
//! surrogate escape into a stand-in character of the last private-use
//! plane (`U+10F800 + (unit - 0xD800)`), so the frame decodes as usual. The
//! accumulator then takes the stand-ins back out of the token with
//! [`split_token`], keeps a trailing high half until the next token of the
//! same response, and joins it with that token's leading low half. A half
//! that finds no partner becomes U+FFFD. (A token that really contained one
//! of those private-use characters *and* a lone surrogate in the same frame
//! would be misread; no text is expected to.)

use crate::prelude::*;

/// The stand-in of surrogate code unit `unit` (0xD800..=0xDFFF).
fn stand_in(unit: u16) -> char {
    char::from_u32(0x10_F800 + u32::from(unit - 0xD800)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The code unit a stand-in stands for.
fn unit_of(c: char) -> Option<u16> {
    let v = u32::from(c);
    (0x10_F800..=0x10_FFFF)
        .contains(&v)
        .then(|| (v - 0x10_F800 + 0xD800) as u16)
}

fn hex4(b: &[u8]) -> Option<u16> {
    let s = core::str::from_utf8(b.get(..4)?).ok()?;
    u16::from_str_radix(s, 16).ok()
}

/// Appends `\uXXXX` (no `format!`: the browser build carries no
/// formatting machinery).
fn push_escape(out: &mut String, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((unit >> shift) & 0xF)]));
    }
}

/// `text` with every lone surrogate escape inside its strings replaced by
/// the escape of its stand-in; `None` when it has none.
pub(crate) fn repair(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let (mut i, mut copied, mut in_string, mut changed) = (0, 0, false, false);
    while i < b.len() {
        match b[i] {
            b'"' => {
                in_string = !in_string;
                i += 1;
            }
            b'\\' if in_string => {
                if b.get(i + 1) != Some(&b'u') {
                    i += 2;
                    continue;
                }
                let Some(unit) = hex4(&b[(i + 2).min(b.len())..]) else {
                    i += 2;
                    continue;
                };
                let paired_low = || {
                    (b.get(i + 6) == Some(&b'\\') && b.get(i + 7) == Some(&b'u'))
                        .then(|| hex4(&b[(i + 8).min(b.len())..]))
                        .flatten()
                        .filter(|u| (0xDC00..=0xDFFF).contains(u))
                };
                match unit {
                    0xD800..=0xDBFF if paired_low().is_some() => i += 12,
                    0xD800..=0xDFFF => {
                        out.push_str(text.get(copied..i).unwrap_or_default());
                        let mut units = [0u16; 2];
                        for u in stand_in(unit).encode_utf16(&mut units) {
                            push_escape(&mut out, *u);
                        }
                        i += 6;
                        copied = i;
                        changed = true;
                    }
                    _ => i += 6,
                }
            }
            _ => i += 1,
        }
    }
    changed.then(|| {
        out.push_str(text.get(copied..).unwrap_or_default());
        out
    })
}

/// A token decoded from a repaired frame: its leading low half, its text
/// (any other stand-in turned into U+FFFD), its trailing high half.
pub(crate) fn split_token(token: &str) -> (Option<u16>, String, Option<u16>) {
    let mut chars: Vec<char> = token.chars().collect();
    let lead = chars
        .first()
        .and_then(|c| unit_of(*c))
        .filter(|u| (0xDC00..=0xDFFF).contains(u));
    if lead.is_some() {
        chars.remove(0);
    }
    let trail = chars
        .last()
        .and_then(|c| unit_of(*c))
        .filter(|u| (0xD800..=0xDBFF).contains(u));
    if trail.is_some() {
        chars.pop();
    }
    let body = chars
        .into_iter()
        .map(|c| {
            if unit_of(c).is_some() {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect();
    (lead, body, trail)
}

/// The character a high and a low half make.
pub(crate) fn join(high: u16, low: u16) -> char {
    char::decode_utf16([high, low])
        .next()
        .and_then(Result::ok)
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_halves_are_replaced_and_pairs_kept() {
        assert_eq!(repair(r#"{"token":"a\ud83d\ude00b"}"#), None);
        assert_eq!(
            repair(r#"{"token":"plain \\ud83d"}"#),
            None,
            "an escaped backslash"
        );
        let fixed = repair(r#"{"token":"x\ud83d"}"#).unwrap();
        let v: serde_json::Value = serde_json::from_str(&fixed).unwrap();
        let (lead, body, trail) = split_token(v["token"].as_str().unwrap());
        assert_eq!((lead, body.as_str(), trail), (None, "x", Some(0xD83D)));
        let fixed = repair(r#"{"token":"\ude00y"}"#).unwrap();
        let v: serde_json::Value = serde_json::from_str(&fixed).unwrap();
        let (lead, body, trail) = split_token(v["token"].as_str().unwrap());
        assert_eq!((lead, body.as_str(), trail), (Some(0xDE00), "y", None));
        assert_eq!(join(0xD83D, 0xDE00), '😀');
        // A lone half in the middle cannot be joined: U+FFFD.
        let fixed = repair(r#"{"token":"a\udc00b"}"#).unwrap();
        let v: serde_json::Value = serde_json::from_str(&fixed).unwrap();
        assert_eq!(split_token(v["token"].as_str().unwrap()).1, "a\u{FFFD}b");
    }
}
