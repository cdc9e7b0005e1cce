//! The text of one streamed token ([`TokenText`]), the payload of nearly
//! every event a connection delivers.
//!
//! A model's tokens are a few bytes each, and a reply is thousands of them:
//! an owned `String` per token meant one allocation and one free per token,
//! the largest single cost on the token path after the socket itself
//! (docs/benchmarks.md, "Native client end to end over loopback"). A token
//! of up to 23 bytes (nearly all of them) is kept inline in the event, with
//! no allocation; a longer one is shared, so cloning any token is cheap.

use crate::prelude::*;

use alloc::borrow::Borrow;
use core::fmt;
use core::ops::Deref;

#[cfg(not(target_arch = "wasm32"))]
mod inline;
#[cfg(not(target_arch = "wasm32"))]
use inline::Repr;

/// What holds the text in the browser build: a plain boxed `str` (native
/// builds keep short text inline, in `inline::Repr`). The browser
/// driver hands most tokens to JS as offsets into the frame, never reading
/// this copy; its allocator (talc) makes the small allocation cheap; and
/// the inline representation cost 4.4 KB gzip of `.wasm` (a download for
/// every page, against a budget).
#[cfg(target_arch = "wasm32")]
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Repr(Box<str>);

#[cfg(target_arch = "wasm32")]
impl Repr {
    fn new(text: &str) -> Self {
        Repr(text.into())
    }

    fn as_str(&self) -> &str {
        &self.0
    }

    fn is_heap_allocated(&self) -> bool {
        true
    }
}

#[cfg(target_arch = "wasm32")]
impl From<String> for Repr {
    fn from(text: String) -> Self {
        Repr(text.into_boxed_str())
    }
}

#[cfg(target_arch = "wasm32")]
impl From<Repr> for String {
    fn from(text: Repr) -> Self {
        text.0.into()
    }
}

/// The text of one token (`Event::Token`'s `token`): a string that reads
/// like a `&str` (it dereferences to one) and, in native builds, costs no
/// allocation when it is short (up to 23 bytes, which is nearly every token
/// a model emits). The browser build (`wasm32`) holds it in a `Box<str>`.
///
/// ```
/// use tokenrelay::TokenText;
///
/// let token = TokenText::new(" quick");
/// assert_eq!(token, " quick");
/// assert!(token.starts_with(' ')); // every `str` method, through `Deref`
/// assert_eq!(token.to_string(), " quick"); // `Display`
/// let owned: String = token.into_string();
/// assert_eq!(owned, " quick");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenText(Repr);

impl TokenText {
    /// The longest text kept inline, without an allocation (native builds).
    pub const INLINE_CAPACITY: usize = 23;

    /// A token holding `text` (copied; inline when it is short).
    #[inline]
    pub fn new(text: &str) -> Self {
        TokenText(Repr::new(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The text as an owned `String` (allocates).
    pub fn into_string(self) -> String {
        self.0.into()
    }

    /// True when the text is held inside the value (no allocation; never
    /// in the browser build).
    pub fn is_inline(&self) -> bool {
        !self.0.is_heap_allocated()
    }
}

impl Deref for TokenText {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for TokenText {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

impl Borrow<str> for TokenText {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for TokenText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl fmt::Debug for TokenText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl From<&str> for TokenText {
    fn from(text: &str) -> Self {
        TokenText::new(text)
    }
}

impl From<String> for TokenText {
    fn from(text: String) -> Self {
        TokenText(Repr::from(text))
    }
}

impl From<char> for TokenText {
    fn from(c: char) -> Self {
        TokenText::new(c.encode_utf8(&mut [0; 4]))
    }
}

impl From<TokenText> for String {
    fn from(token: TokenText) -> Self {
        token.into_string()
    }
}

impl PartialEq<str> for TokenText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TokenText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for TokenText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<TokenText> for str {
    fn eq(&self, other: &TokenText) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<TokenText> for &str {
    fn eq(&self, other: &TokenText) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<TokenText> for String {
    fn eq(&self, other: &TokenText) -> bool {
        self.as_str() == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tokens_stay_inline_and_long_ones_round_trip() {
        let short = TokenText::new(" quick");
        assert!(short.is_inline());
        assert_eq!(short.as_str(), " quick");
        let edge = "x".repeat(TokenText::INLINE_CAPACITY);
        assert!(TokenText::new(&edge).is_inline());
        let long = "é".repeat(40);
        let t = TokenText::from(long.clone());
        assert!(!t.is_inline());
        assert_eq!(t.len(), long.len());
        assert_eq!(t.clone().into_string(), long);
        assert_eq!(String::from(t), long);
    }

    #[test]
    fn it_reads_prints_and_compares_like_the_text() {
        let t = TokenText::from('\u{FFFD}');
        assert_eq!(t, "\u{FFFD}");
        assert_eq!("\u{FFFD}", t);
        assert_eq!(t, String::from("\u{FFFD}"));
        assert_eq!(format!("[{t}]"), "[\u{FFFD}]");
        assert_eq!(format!("{:?}", TokenText::new("a\"b")), r#""a\"b""#);
        assert_eq!(TokenText::default(), "");
        let mut text = String::new();
        text.push_str(&TokenText::new("hi")); // `&TokenText` is a `&str`
        assert_eq!(text, "hi");
    }
}
