//! The native builds' representation of a [`TokenText`](super::TokenText):
//! up to 23 bytes inline, longer text in an `Arc<str>`, 24 bytes either
//! way (the length byte's unused values tell the two apart, as in
//! `smol_str`, which this replaced).
//!
//! Why not `smol_str`: a token is built once per frame on the hottest path
//! of every stream. `SmolStr::new` copies the text into its buffer a byte
//! or a few at a time, and the event that carries it is then moved with
//! 16-byte loads that must wait for those narrow stores to retire
//! (`perf annotate` of the loopback bench: half of `Accumulator::token`'s
//! time, beside `SmolStr::new`'s own). Here the text is read with a few
//! overlapping word loads and the value is built from three whole words.

use crate::prelude::*;

use alloc::sync::Arc;
use core::hash::{Hash, Hasher};

/// The text's length when inline: 0 to 23. Its other 232 values are the
/// niche that makes [`Repr`] 24 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[allow(dead_code, reason = "built by `transmute` from the length byte, never by name")]
#[rustfmt::skip]
enum Len {
    L0 = 0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11,
    L12, L13, L14, L15, L16, L17, L18, L19, L20, L21, L22, L23,
}

/// The most bytes kept inline.
pub(super) const INLINE_CAPACITY: usize = 23;

/// Inline text: the bytes, then the length in the last byte, so that the
/// whole is three little-endian words with the length in the top byte of
/// the third.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(super) struct Inline {
    bytes: [u8; INLINE_CAPACITY],
    len: Len,
}

const _: () = assert!(size_of::<Inline>() == 24);
const _: () = assert!(size_of::<Repr>() == 24);

#[derive(Clone)]
pub(super) enum Repr {
    Inline(Inline),
    Heap(Arc<str>),
}

/// The `n` bytes of `b` from `at` as a little-endian word; `n` ≤ 8 and
/// `at + n` ≤ `b.len()`.
fn word(b: &[u8], at: usize, n: usize) -> u64 {
    let mut w = [0u8; 8];
    w[..n].copy_from_slice(&b[at..at + n]);
    u64::from_le_bytes(w)
}

/// `b` (at most 16 bytes) as two little-endian words, read with two
/// overlapping loads of the widest size that fits rather than byte by
/// byte.
fn two_words(b: &[u8]) -> (u64, u64) {
    let n = b.len();
    match n {
        0 => (0, 0),
        1..=3 => (word(b, 0, n), 0),
        4..=7 => {
            // Two 4-byte loads covering the text; the overlap ORs equal
            // bytes onto each other.
            let lo = word(b, 0, 4);
            let hi = word(b, n - 4, 4);
            (lo | hi << (8 * (n - 4)), 0)
        }
        8 => (word(b, 0, 8), 0),
        _ => {
            // 9..=16: the first 8 bytes, and the last 8 shifted down past
            // the bytes they share with the first.
            let hi = word(b, n - 8, 8) >> (8 * (16 - n));
            (word(b, 0, 8), hi)
        }
    }
}

impl Repr {
    #[inline(always)]
    pub(super) fn new(text: &str) -> Repr {
        let b = text.as_bytes();
        let n = b.len();
        if n > INLINE_CAPACITY {
            return Repr::Heap(text.into());
        }
        let (w0, w1, w2) = if n <= 16 {
            let (w0, w1) = two_words(b);
            (w0, w1, 0)
        } else {
            // 17..=23: two words, then the last 8 bytes shifted down past
            // the ones the second word holds.
            let w2 = word(b, n - 8, 8) >> (8 * (24 - n));
            (word(b, 0, 8), word(b, 8, 8), w2)
        };
        let words = [w0.to_le(), w1.to_le(), (w2 | (n as u64) << 56).to_le()];
        // SAFETY: `Inline` is `repr(C)`, 24 bytes, align 8, like `[u64; 3]`;
        // its bytes are any `u8`s and its last byte, the length, is `n` ≤
        // 23, a valid `Len`. The first `n` bytes are `text`'s, so they are
        // UTF-8 (what `as_str` relies on).
        Repr::Inline(unsafe { core::mem::transmute::<[u64; 3], Inline>(words) })
    }

    #[inline]
    pub(super) fn as_str(&self) -> &str {
        match self {
            Repr::Inline(i) => {
                let bytes = &i.bytes[..i.len as usize];
                // SAFETY: built by `new` from the first `len` bytes of a
                // `&str`.
                unsafe { core::str::from_utf8_unchecked(bytes) }
            }
            Repr::Heap(s) => s,
        }
    }

    pub(super) fn is_heap_allocated(&self) -> bool {
        matches!(self, Repr::Heap(_))
    }
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::new("")
    }
}

impl From<String> for Repr {
    fn from(text: String) -> Repr {
        if text.len() > INLINE_CAPACITY {
            Repr::Heap(text.into())
        } else {
            Repr::new(&text)
        }
    }
}

impl From<Repr> for String {
    fn from(r: Repr) -> String {
        r.as_str().to_owned()
    }
}

// Compared and hashed as the text (whichever the representation), as
// `Borrow<str>` on `TokenText` requires.
impl PartialEq for Repr {
    fn eq(&self, other: &Repr) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Repr {}

impl PartialOrd for Repr {
    fn partial_cmp(&self, other: &Repr) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Repr {
    fn cmp(&self, other: &Repr) -> core::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Repr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_length_round_trips_and_only_long_text_allocates() {
        let source: String = ('a'..='z').chain('A'..='Z').collect();
        for n in 0..=40 {
            let text = &source[..n];
            let r = Repr::new(text);
            assert_eq!(r.as_str(), text, "length {n}");
            assert_eq!(r.is_heap_allocated(), n > INLINE_CAPACITY, "length {n}");
        }
    }

    proptest! {
        /// Any text, at any offset of a larger one (the words are read
        /// from inside the slice only), reads back exact, and compares and
        /// hashes as the text.
        #[test]
        fn any_text_reads_back_exact(text in "\\PC{0,30}", pad in 0usize..9) {
            let framed = format!("{}{text}{}", "x".repeat(pad), "y".repeat(pad));
            let slice = &framed[pad..pad + text.len()];
            let r = Repr::new(slice);
            prop_assert_eq!(r.as_str(), text.as_str());
            prop_assert!(r.clone() == Repr::from(text.clone()));
            let hash = |v: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                v(&mut h);
                h.finish()
            };
            prop_assert_eq!(hash(&|h| r.hash(h)), hash(&|h| text.as_str().hash(h)));
        }
    }
}
