//! Generic JSON reading and writing, apart from the typed messages
//! (`compact.rs` reads and writes those with it): a small hand-written
//! reader and writer that give values the meaning and the layout
//! serde_json gives them, without serde's per-type generated code (the
//! browser bundle's size; `compact.rs` says why).
//!
//! Floats are converted by `float.rs` (Rust's own conversions natively,
//! the JavaScript host's in the browser build).

use crate::prelude::*;

use alloc::borrow::Cow;

use serde_json::{Map, Number, Value};

use super::Json;

/// Nesting deeper than this is refused (as serde_json does at 128) so that
/// a hostile frame cannot exhaust the stack.
const MAX_DEPTH: u32 = 128;

/// Why a text could not be read; a fixed message.
pub(super) type Fail = &'static str;

/// A cursor over JSON text.
pub(super) struct Reader<'a> {
    text: &'a str,
    at: usize,
    depth: u32,
}

impl<'a> Reader<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Reader {
            text,
            at: 0,
            depth: 0,
        }
    }

    /// `text[start..end]`. The reader only cuts at ASCII bytes it has
    /// seen, so this is always a slice of the text; `get` rather than
    /// indexing because a failed `str` index brings its panic message's
    /// formatting (`char` `Debug`, Unicode tables: ~8 KB of wasm) into the
    /// browser build.
    pub(super) fn slice(&self, start: usize, end: usize) -> &'a str {
        self.text.get(start..end).unwrap_or_default()
    }

    pub(super) fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// The next significant byte, not consumed.
    pub(super) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.at).copied()
    }

    pub(super) fn eat(&mut self, b: u8) -> Result<(), Fail> {
        if self.peek() == Some(b) {
            self.at += 1;
            Ok(())
        } else {
            Err("malformed JSON")
        }
    }

    pub(super) fn literal(&mut self, word: &str) -> Result<(), Fail> {
        if self.slice(self.at, self.text.len()).starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err("malformed JSON")
        }
    }

    /// Only whitespace may follow the value.
    pub(super) fn end(&mut self) -> Result<(), Fail> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err("trailing characters after the JSON value"),
        }
    }

    /// Consumes `null` if it comes next.
    pub(super) fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.literal("null").is_ok() {
            return true;
        }
        false
    }

    /// A string; borrowed from the text when it has no escapes.
    pub(super) fn string(&mut self) -> Result<Cow<'a, str>, Fail> {
        if self.peek() != Some(b'"') {
            return Err("expected a string");
        }
        self.at += 1;
        let start = self.at;
        let bytes = self.bytes();
        // Fast path: up to the closing quote without escapes.
        while let Some(&b) = bytes.get(self.at) {
            match b {
                b'"' => {
                    self.at += 1;
                    return Ok(Cow::Borrowed(self.slice(start, self.at - 1)));
                }
                b'\\' => break,
                0..=0x1f => return Err("control character in a string"),
                _ => self.at += 1,
            }
        }
        let mut out = String::from(self.slice(start, self.at));
        loop {
            let Some(&b) = bytes.get(self.at) else {
                return Err("unterminated string");
            };
            match b {
                b'"' => {
                    self.at += 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    self.at += 1;
                    let e = *bytes.get(self.at).ok_or("unterminated string")?;
                    self.at += 1;
                    out.push(match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err("invalid escape"),
                    });
                }
                0..=0x1f => return Err("control character in a string"),
                _ => {
                    // Copy the run of plain characters in one go (the text
                    // is a &str, so the run ends on a char boundary).
                    let run = self.at;
                    while let Some(&b) = bytes.get(self.at) {
                        if b == b'"' || b == b'\\' || b < 0x20 {
                            break;
                        }
                        self.at += 1;
                    }
                    out.push_str(self.slice(run, self.at));
                }
            }
        }
    }

    pub(super) fn hex4(&mut self) -> Result<u16, Fail> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .ok_or("invalid escape")?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("invalid escape");
        }
        self.at += 4;
        u16::from_str_radix(digits, 16).map_err(|_| "invalid escape")
    }

    /// After `\u`: one code point, from a surrogate pair if need be. Lone
    /// surrogates are refused, as serde_json refuses them.
    pub(super) fn unicode_escape(&mut self) -> Result<char, Fail> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.slice(self.at, self.text.len()).starts_with("\\u") {
                    return Err("lone surrogate");
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err("lone surrogate");
                }
                0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err("lone surrogate"),
            other => u32::from(other),
        };
        char::from_u32(code).ok_or("invalid escape")
    }

    /// A number, as serde_json reads one: integers that fit are `u64` or
    /// `i64`, everything else `f64` (and `-0` is the float `-0.0`).
    pub(super) fn number(&mut self) -> Result<Number, Fail> {
        let (text, float) = self.number_text()?;
        if !float {
            if !text.starts_with('-') {
                if let Ok(u) = text.parse::<u64>() {
                    return Ok(Number::from(u));
                }
            } else if let Ok(n) = text.parse::<i64>() {
                if n != 0 {
                    return Ok(Number::from(n));
                }
            }
        }
        super::float::parse(text)
            .and_then(Number::from_f64)
            .ok_or("number out of range")
    }

    /// The text of a number, checked against the grammar only (as
    /// serde_json checks a number it skips: `1e400` is out of range for a
    /// value but fine in an ignored field), and whether it has a fraction
    /// or an exponent.
    pub(super) fn number_text(&mut self) -> Result<(&'a str, bool), Fail> {
        self.ws();
        let bytes = self.bytes();
        let start = self.at;
        let mut i = start;
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let int_len = i - int_start;
        if int_len == 0 || (int_len > 1 && bytes[int_start] == b'0') {
            return Err("malformed number");
        }
        let mut float = false;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            let frac = i;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == frac {
                return Err("malformed number");
            }
            float = true;
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            let exp = i;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == exp {
                return Err("malformed number");
            }
            float = true;
        }
        self.at = i;
        Ok((self.slice(start, i), float))
    }

    /// Any value.
    pub(super) fn value(&mut self) -> Result<Value, Fail> {
        match self.peek().ok_or("unexpected end of JSON")? {
            b'"' => Ok(Value::String(self.string()?.into_owned())),
            b'{' => {
                let mut map = Map::new();
                self.object(|r, key| {
                    // Later duplicates win, as in serde_json's `Value`.
                    map.insert(key.into_owned(), r.value()?);
                    Ok(())
                })?;
                Ok(Value::Object(map))
            }
            b'[' => {
                let mut items = Vec::new();
                self.array(|r| {
                    items.push(r.value()?);
                    Ok(())
                })?;
                Ok(Value::Array(items))
            }
            b't' => self.literal("true").map(|_| Value::Bool(true)),
            b'f' => self.literal("false").map(|_| Value::Bool(false)),
            b'n' => self.literal("null").map(|_| Value::Null),
            _ => self.number().map(Value::Number),
        }
    }

    /// One value as the target's [`Json`]: natively a `Value` tree, in
    /// the browser build its text, checked as strictly as [`Reader::value`]
    /// reads one (`raw_json.rs` says why).
    pub(super) fn json(&mut self) -> Result<Json, Fail> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.value();
        #[cfg(target_arch = "wasm32")]
        self.checked().map(super::RawJson::from_checked)
    }

    /// Reads one value as [`Reader::value`] does, and refuses what it
    /// refuses (a lone surrogate escape, a number out of range, nesting
    /// past the limit), without building it: its text.
    pub(super) fn checked(&mut self) -> Result<&'a str, Fail> {
        self.ws();
        let start = self.at;
        self.check()?;
        Ok(self.slice(start, self.at))
    }

    fn check(&mut self) -> Result<(), Fail> {
        match self.peek().ok_or("unexpected end of JSON")? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|r, _| r.check()),
            b'[' => self.array(Self::check),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number().map(drop),
        }
    }

    /// One value, read for what the core needs of it: a string, a
    /// boolean, `null`, a number's text or (an array or object) its text;
    /// checked as strictly as [`Reader::value`] reads one.
    pub(super) fn scalar(&mut self) -> Result<Scalar<'a>, Fail> {
        Ok(match self.peek().ok_or("unexpected end of JSON")? {
            b'"' => Scalar::Str(self.string()?),
            b't' => self.literal("true").map(|()| Scalar::Bool(true))?,
            b'f' => self.literal("false").map(|()| Scalar::Bool(false))?,
            b'n' => self.literal("null").map(|()| Scalar::Null)?,
            b'{' | b'[' => Scalar::Other(self.checked()?),
            _ => Scalar::Number(self.checked()?),
        })
    }

    pub(super) fn nest(&mut self) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("JSON nested too deeply");
        }
        Ok(())
    }

    /// An object: `field(reader, key)` reads each member's value.
    pub(super) fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, Cow<'a, str>) -> Result<(), Fail>,
    ) -> Result<(), Fail> {
        self.container(b'{', b'}', &mut |r| {
            let key = r.string()?;
            r.eat(b':')?;
            field(r, key)
        })
    }

    /// An array: `item(reader)` reads each element.
    pub(super) fn array(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), Fail>,
    ) -> Result<(), Fail> {
        self.container(b'[', b']', &mut item)
    }

    /// `open`, the members separated by commas (each read by `member`),
    /// `close`; counted against the nesting limit while inside. `dyn`, as
    /// is [`Reader::fields`]: one copy of the loop, not one per wire type
    /// and caller (generic copies were most of the browser build's
    /// decoder); none of it is on the `on_token` path (`scan`).
    pub(super) fn container(
        &mut self,
        open: u8,
        close: u8,
        member: &mut dyn FnMut(&mut Self) -> Result<(), Fail>,
    ) -> Result<(), Fail> {
        if self.peek() != Some(open) {
            return Err("expected an object or array");
        }
        self.nest()?;
        self.at += 1;
        if self.peek() == Some(close) {
            self.at += 1;
        } else {
            loop {
                member(self)?;
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(c) if c == close => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err("malformed JSON"),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// Skips one value, returning its text. Checked as serde_json checks
    /// a value it ignores: the grammar, but not the nesting depth, what a
    /// `\u` escape stands for or a number's range (that is the typed
    /// reader's business; [`Reader::checked`] checks all of it).
    pub(super) fn raw(&mut self) -> Result<&'a str, Fail> {
        self.ws();
        let start = self.at;
        self.skip()?;
        Ok(self.slice(start, self.at))
    }

    /// Iterative, not recursive: serde_json skips any depth without
    /// recursing, and so must this, without risking the stack.
    pub(super) fn skip(&mut self) -> Result<(), Fail> {
        // The closing bracket of every container still open.
        let mut open: Vec<u8> = Vec::new();
        loop {
            match self.peek().ok_or("unexpected end of JSON")? {
                b'{' => {
                    self.at += 1;
                    if self.peek() == Some(b'}') {
                        self.at += 1;
                    } else {
                        open.push(b'}');
                        self.skip_key()?;
                        continue;
                    }
                }
                b'[' => {
                    self.at += 1;
                    if self.peek() == Some(b']') {
                        self.at += 1;
                    } else {
                        open.push(b']');
                        continue;
                    }
                }
                b'"' => self.skip_string()?,
                b't' => self.literal("true")?,
                b'f' => self.literal("false")?,
                b'n' => self.literal("null")?,
                _ => {
                    self.number_text()?;
                }
            }
            // A value ended: close what it ends, or go on to the next one.
            loop {
                let Some(&close) = open.last() else {
                    return Ok(());
                };
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        if close == b'}' {
                            self.skip_key()?;
                        }
                        break;
                    }
                    Some(c) if c == close => {
                        self.at += 1;
                        open.pop();
                    }
                    _ => return Err("malformed JSON"),
                }
            }
        }
    }

    pub(super) fn skip_key(&mut self) -> Result<(), Fail> {
        if self.peek() != Some(b'"') {
            return Err("expected a string");
        }
        self.skip_string()?;
        self.eat(b':')
    }

    pub(super) fn skip_string(&mut self) -> Result<(), Fail> {
        self.at += 1; // the opening quote, seen by the caller
        loop {
            match *self.bytes().get(self.at).ok_or("unterminated string")? {
                b'"' => {
                    self.at += 1;
                    return Ok(());
                }
                b'\\' => {
                    self.at += 1;
                    match self.bytes().get(self.at) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.at += 1
                        }
                        Some(b'u') => {
                            self.at += 1;
                            self.hex4()?;
                        }
                        _ => return Err("invalid escape"),
                    }
                }
                0..=0x1f => return Err("control character in a string"),
                _ => self.at += 1,
            }
        }
    }

    /// The fields of one wire struct, read as serde reads a struct: from an
    /// object (unknown keys skipped, a repeated field refused) or from an
    /// array of the fields in declaration order (no more than there are).
    /// `field(reader, index in names)` reads each one.
    pub(super) fn fields(
        &mut self,
        names: &[&str],
        field: &mut dyn FnMut(&mut Self, usize) -> Result<(), Fail>,
    ) -> Result<(), Fail> {
        match self.peek() {
            Some(b'[') => {
                let mut next = 0;
                self.array(|r| {
                    if next == names.len() {
                        return Err("too many fields");
                    }
                    field(r, next)?;
                    next += 1;
                    Ok(())
                })
            }
            _ => {
                let mut seen = 0u32;
                self.object(|r, key| match names.iter().position(|n| *n == key) {
                    Some(i) => {
                        if seen & (1 << i) != 0 {
                            return Err("duplicate field");
                        }
                        seen |= 1 << i;
                        field(r, i)
                    }
                    None => r.skip(),
                })
            }
        }
    }

    // Typed fields, read as serde reads the wire structs: `Option` takes
    // `null` as `None`; a defaulted non-`Option` field refuses `null`.

    pub(super) fn opt_string(&mut self) -> Result<Option<String>, Fail> {
        if self.null() {
            return Ok(None);
        }
        Ok(Some(self.string()?.into_owned()))
    }

    pub(super) fn opt_u64(&mut self) -> Result<Option<u64>, Fail> {
        if self.null() {
            return Ok(None);
        }
        if self.peek() == Some(b'"') {
            return Err("expected a number");
        }
        match self.number()?.as_u64() {
            Some(n) => Ok(Some(n)),
            None => Err("expected a non-negative integer"),
        }
    }

    /// Any JSON as text: strings as they are, `null` as empty, anything
    /// else as its JSON (serde_json's compact form).
    /// (In the browser build, a number, array or object keeps the text
    /// the frame had, which is serde_json's compact form when a serde
    /// server wrote it.)
    pub(super) fn text_of_any(&mut self) -> Result<String, Fail> {
        #[cfg(not(target_arch = "wasm32"))]
        return Ok(match self.value()? {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => to_json(&other),
        });
        #[cfg(target_arch = "wasm32")]
        Ok(self.scalar()?.into_text())
    }
}

/// One value read by [`Reader::scalar`].
pub(super) enum Scalar<'a> {
    /// A string, unescaped.
    Str(Cow<'a, str>),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// A number's text, checked against the grammar.
    Number(&'a str),
    /// An array's or object's text.
    Other(&'a str),
}

impl Scalar<'_> {
    /// The string, if the value is one.
    pub(super) fn into_string(self) -> Option<String> {
        match self {
            Scalar::Str(s) => Some(s.into_owned()),
            _ => None,
        }
    }

    /// The boolean, if the value is one.
    pub(super) fn as_bool(&self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// As text the way `lenient::any_as_text` reads any JSON: a string as
    /// it is, `null` as empty, anything else as its JSON text.
    pub(super) fn into_text(self) -> String {
        match self {
            Scalar::Str(s) => s.into_owned(),
            Scalar::Null => String::new(),
            Scalar::Bool(b) => (if b { "true" } else { "false" }).into(),
            Scalar::Number(t) | Scalar::Other(t) => t.into(),
        }
    }
}

/// Reads `text` as one object, handing each member's key and a reader at
/// its value to `member` (which must read or skip the value). Fails when
/// the text is not one whole object.
pub(super) fn members<'a>(
    text: &'a str,
    mut member: impl FnMut(&str, &mut Reader<'a>) -> Result<(), Fail>,
) -> Result<(), Fail> {
    let mut r = Reader::new(text);
    r.object(|r, key| member(&key, r))?;
    r.end()
}

/// The member `key` of the JSON object `text` as a whole number of at
/// least 0, as parsing `text` into a `Value` and reading `key` with
/// `as_u64` or else `as_f64` (truncated) did: a JWT's `exp`. `None` when
/// `text` is not one valid JSON object (every member is checked as
/// strictly as a `Value` is read), `key` is missing or not a number, or the
/// number is negative.
pub(crate) fn unsigned_member(text: &str, key: &str) -> Option<u64> {
    let mut found = None;
    members(text, |k, r| {
        if k != key {
            return r.checked().map(drop);
        }
        found = match r.scalar()? {
            Scalar::Number(n) => Some(n),
            _ => None,
        };
        Ok(())
    })
    .ok()?;
    let n = found?;
    n.parse::<u64>().ok().or_else(|| {
        super::float::parse(n)
            .filter(|f| *f >= 0.0 && f.is_finite())
            .map(|f| f as u64)
    })
}

/// One whole JSON text as the target's [`Json`].
pub(super) fn parse_json_value(text: &str) -> Result<Json, Fail> {
    let mut r = Reader::new(text);
    let v = r.json()?;
    r.end()?;
    Ok(v)
}

/// The text of a [`Json`] value: natively written out compact (as
/// `serde_json::to_string`), in the browser build the text it already is.
pub fn json_str(value: &Json) -> Cow<'_, str> {
    #[cfg(not(target_arch = "wasm32"))]
    return Cow::Owned(json_text(value));
    #[cfg(target_arch = "wasm32")]
    Cow::Borrowed(value.text())
}

/// Parses one whole JSON text (for [`parse_json`] in the browser build, and
/// what the fuzz targets hold to serde_json).
#[cfg(any(test, feature = "fuzzing", target_arch = "wasm32"))]
pub(crate) fn parse(text: &str) -> Result<Value, Fail> {
    let mut r = Reader::new(text);
    let v = r.value()?;
    r.end()?;
    Ok(v)
}

/// Writes the members of one object, commas between.
pub(super) struct Fields<'o> {
    pub(super) out: &'o mut String,
    pub(super) first: bool,
}

impl Fields<'_> {
    pub(super) fn key(&mut self, key: &str) {
        if !core::mem::replace(&mut self.first, false) {
            self.out.push(',');
        }
        push_json_str(self.out, key);
        self.out.push(':');
    }

    /// A string member, left out when `None` (`skip_serializing_if`).
    pub(super) fn str(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.key(key);
            push_json_str(self.out, value);
        }
    }
}

/// Appends `s` as a JSON string literal, escaped as serde_json escapes it.
/// Public for the browser driver, which writes its events as JSON text for
/// the page to read with `JSON.parse`.
pub fn push_json_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(run..i).unwrap_or_default());
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(escape);
        }
        run = i + 1;
    }
    out.push_str(s.get(run..).unwrap_or_default());
    out.push('"');
}

/// Appends `i` in decimal, as `i.to_string()` writes it, without
/// `core::fmt`.
pub fn push_i64(out: &mut String, i: i64) {
    if i < 0 {
        out.push('-');
    }
    crate::error::push_u64(out, i.unsigned_abs());
}

/// A number as serde_json writes it. Integers are written here without
/// `core::fmt` (the browser build carries no formatting for them); only a
/// float goes through serde_json's `Display`.
pub(super) fn push_number(out: &mut String, n: &Number) {
    if let Some(u) = n.as_u64() {
        crate::error::push_u64(out, u);
    } else if let Some(i) = n.as_i64() {
        push_i64(out, i);
    } else {
        #[cfg(not(target_arch = "wasm32"))]
        out.push_str(&n.to_string());
        // The host's digits, laid out as serde_json lays them out.
        #[cfg(target_arch = "wasm32")]
        super::float::push(out, n.as_f64().unwrap_or(0.0));
    }
}

/// [`push_number`] into a new string.
pub(super) fn number_text(n: &Number) -> String {
    let mut out = String::new();
    push_number(&mut out, n);
    out
}

/// A value as compact JSON text, as `serde_json::to_string` writes it.
pub(crate) fn to_json(value: &Value) -> String {
    fn write(out: &mut String, v: &Value) {
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => push_number(out, n),
            Value::String(s) => push_json_str(out, s),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(out, item);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (k, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_json_str(out, k);
                    out.push(':');
                    write(out, item);
                }
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    write(&mut out, value);
    out
}

/// A value as compact JSON text (what `to_json` writes on `wasm32`,
/// serde_json natively: the same text).
pub fn json_text(value: &Value) -> String {
    #[cfg(target_arch = "wasm32")]
    return to_json(value);
    #[cfg(not(target_arch = "wasm32"))]
    value.to_string()
}

/// Parses JSON text into a value (`None`: not one whole JSON text).
pub fn parse_json(text: &str) -> Option<Value> {
    #[cfg(target_arch = "wasm32")]
    return parse(text).ok();
    #[cfg(not(target_arch = "wasm32"))]
    serde_json::from_str(text).ok()
}
