//! Lenient serde readers for fields whose JSON type servers disagree on
//! (the hosted service is not ours): ids as strings or numbers, text as any
//! JSON, `null` as missing, timestamps in three spellings. Shared by the
//! wire types and the REST bodies (`crate::rest`), one rule each.

use crate::prelude::*;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `null` decodes like a missing field.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Ids are text here; some servers send numbers (`"id": 42`). `null`
/// reads as empty.
pub(crate) fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_string_or_number(d)?.unwrap_or_default())
}

/// An optional id: a string, a number (kept as its decimal text) or
/// `null` (none). Anything else is an error.
pub(crate) fn opt_string_or_number<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        other => return Err(D::Error::custom(format!("expected an id, found {other}"))),
    })
}

/// Text fields accept any JSON (a tool output may be an object); non-strings
/// are kept as their JSON text, `null` as empty.
pub(crate) fn any_as_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Unix seconds as an integer, a float (Python's `time.time()`) or a numeric
/// string. Anything else (an ISO date, `null`) is `None` rather than an error:
/// a timestamp is never worth failing a whole answer for.
pub(crate) fn unix_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    fn from_f64(f: f64) -> Option<i64> {
        // Saturating cast; NaN becomes 0, which the finiteness check excludes.
        f.is_finite().then_some(f as i64)
    }
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(from_f64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(from_f64))
        }
        _ => None,
    })
}
