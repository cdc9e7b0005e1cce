//! JSON values kept as their text: what [`Json`](super::Json) is in the
//! browser build.
//!
//! The browser package never looks inside a tool's input, an event's
//! `data`, an answer's `result` or an agent's extra fields: it hands them
//! to the page, which reads them with the host's own `JSON.parse`. Building
//! a `serde_json::Value` tree in wasm only to write it back out as text for
//! `JSON.parse` cost the module its `BTreeMap`, the tree's clone and drop
//! and a number writer: ~5 KB of code, 3 KB gzip (docs/benchmarks.md,
//! "Bundle size"). So on `wasm32` a value is the text the frame held,
//! checked by the wire reader as strictly as it reads a `Value`, and
//! the few fields the core itself reads (`success`, `error`, `code`,
//! `response_id`, the connect result) are read from that text
//! (`json::Scalar`, `compact::connect_result`), on every target alike.
//!
//! Compiled natively for its tests; the serde impls exist so that the wire
//! types keep their derives on every target (the browser build never calls
//! them, so they are not in its `.wasm`).

use crate::prelude::*;

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// One JSON value as text: whitespace as the frame had it, checked as
/// strictly as a `serde_json::Value` is read (not re-encoded). `JSON.parse(value.text())` in
/// JavaScript gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct RawJson(Box<str>);

impl RawJson {
    /// `text`, already checked by the wire reader.
    pub(crate) fn from_checked(text: &str) -> RawJson {
        RawJson(text.into())
    }

    /// The value's JSON text.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        &*self.0 == "null"
    }
}

/// `null`, as `serde_json::Value::default()` is.
impl Default for RawJson {
    fn default() -> RawJson {
        RawJson("null".into())
    }
}

/// The text itself (short, and what a log reader wants to see).
impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::json::parse(&self.0)
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawJson, D::Error> {
        Ok(RawJson(
            super::json::to_json(&Value::deserialize(d)?).into(),
        ))
    }
}

/// The members of an object whose values are [`RawJson`] (an agent's
/// fields this client does not know), in the order the frame had them; a
/// repeated key keeps its last value, as `JSON.parse` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawJsonMap(Vec<(String, RawJson)>);

impl RawJsonMap {
    /// Sets `key` to `value`, replacing an earlier value of `key`.
    pub fn insert(&mut self, key: String, value: RawJson) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&RawJson> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The members, in order.
    pub fn iter(&self) -> core::slice::Iter<'_, (String, RawJson)> {
        self.0.iter()
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a RawJsonMap {
    type Item = &'a (String, RawJson);
    type IntoIter = core::slice::Iter<'a, (String, RawJson)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Serialize for RawJsonMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for RawJsonMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawJsonMap, D::Error> {
        let mut out = RawJsonMap::default();
        for (k, v) in Map::<String, Value>::deserialize(d)? {
            out.0.push((k, RawJson(super::json::to_json(&v).into())));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_text_and_round_trips_through_serde() {
        let v = RawJson::from_checked(r#"{"b": [1, 2.5], "a": null}"#);
        assert_eq!(v.text(), r#"{"b": [1, 2.5], "a": null}"#);
        assert!(!v.is_null());
        assert!(RawJson::default().is_null());
        // Serialized as the value it stands for, read back compact.
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(text, r#"{"a":null,"b":[1,2.5]}"#);
        let back: RawJson = serde_json::from_str(&text).unwrap();
        assert_eq!(back.text(), text);
        assert_eq!(format!("{v:?}"), v.text());
    }

    #[test]
    fn a_map_keeps_order_and_the_last_of_a_repeated_key() {
        let mut m = RawJsonMap::default();
        m.insert("z".into(), RawJson::from_checked("1"));
        m.insert("a".into(), RawJson::from_checked("2"));
        m.insert("z".into(), RawJson::from_checked("3"));
        let pairs: Vec<_> = m.iter().map(|(k, v)| (k.as_str(), v.text())).collect();
        assert_eq!(pairs, [("z", "3"), ("a", "2")]);
        assert_eq!(m.get("a").map(RawJson::text), Some("2"));
        assert_eq!(m.len(), 2);
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(text, r#"{"z":3,"a":2}"#);
        let back: RawJsonMap = serde_json::from_str(r#"{"x":[true]}"#).unwrap();
        assert_eq!(back.get("x").map(RawJson::text), Some("[true]"));
    }
}
