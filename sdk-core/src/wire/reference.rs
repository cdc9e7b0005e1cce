//! The serde codec of the wire: the reference the compact reader and
//! writer (`compact.rs`, which ship) are held to by the differential tests
//! and the fuzz targets. Compiled for tests and the `fuzzing` feature only.

use crate::prelude::*;

use alloc::borrow::Cow;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{method, scan, ClientRequest, Notification, ServerFrame};
use crate::error::ProtocolError;

/// [`ClientRequest::encode`] with serde_json: the reference the compact
/// writer is tested against.
pub(super) fn encode_request_with_serde(
    request: &ClientRequest,
    id: Option<&str>,
    idempotency_key: Option<&str>,
) -> String {
    {
        #[derive(Serialize)]
        struct Framed<'a> {
            #[serde(flatten)]
            request: &'a ClientRequest,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            idempotency_key: Option<&'a str>,
        }
        // Serializing plain strings and maps into a String cannot fail.
        serde_json::to_string(&Framed {
            request,
            id,
            idempotency_key,
        })
        .unwrap_or_default()
    }
}

/// [`decode_server_frame`] with serde_json: the reference (tests and the
/// fuzz targets hold the compact reader to it).
pub(super) fn decode_server_frame_with_serde(text: &str) -> Result<ServerFrame<'_>, ProtocolError> {
    if let Some(params) = scan::token_frame(text) {
        return Ok(ServerFrame::Notification(Notification::Token(params)));
    }
    decode_server_frame_in_one_pass(text).or_else(|_| decode_server_frame_in_two_passes(text))
}

/// A field that is present, whatever its value (`null` included).
fn de_present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The careful decoder: the envelope first (keeping `params` raw), then
/// `params` by method.
pub(super) fn decode_server_frame_in_two_passes(
    text: &str,
) -> Result<ServerFrame<'_>, ProtocolError> {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(default, borrow)]
        method: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        params: Option<&'a RawValue>,
        #[serde(default, borrow, deserialize_with = "de_id_borrowed")]
        id: Option<Cow<'a, str>>,
        // `"result": null` is an answer (the hosted server's to
        // `add_message`); only a missing `result` is not.
        #[serde(default, deserialize_with = "de_present")]
        result: Option<Value>,
    }
    let raw: Raw<'_> = serde_json::from_str(text).map_err(|e| ProtocolError::InvalidJson {
        message: e.to_string(),
    })?;
    match (raw.method, raw.id, raw.result) {
        // A frame with a method is a notification, whatever its id says
        // (the hosted server sends `"id": null`).
        (Some(method), _, _) => {
            let params = raw.params.map(RawValue::get).unwrap_or("{}");
            decode_notification(method, params).map(ServerFrame::Notification)
        }
        (None, Some(id), Some(result)) => Ok(ServerFrame::Response { id, result }),
        (None, Some(_), None) => Err(ProtocolError::UnexpectedShape {
            message: "a response needs a `result`".into(),
        }),
        (None, None, _) => Err(ProtocolError::UnexpectedShape {
            message: "a frame needs a `method` or an `id`".into(),
        }),
    }
}

/// The `on_token` hot path: one pass over the frame, no allocation when the
/// strings have no escapes. `Err(())` sends the frame to the careful
/// decoder, for the exact error or for a shape this path does not take.
pub(super) fn decode_server_frame_in_one_pass(text: &str) -> Result<ServerFrame<'_>, ()> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

    enum Key {
        Method,
        Params,
        Id,
        Result,
        Other,
    }
    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct KeyVisitor;
            impl Visitor<'_> for KeyVisitor {
                type Value = Key;
                fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    f.write_str("a field name")
                }
                fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                    Ok(match key {
                        "method" => Key::Method,
                        "params" => Key::Params,
                        "id" => Key::Id,
                        "result" => Key::Result,
                        _ => Key::Other,
                    })
                }
            }
            d.deserialize_identifier(KeyVisitor)
        }
    }

    /// A string borrowed from the frame when it has no escapes.
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

    #[derive(Default)]
    struct Envelope<'a> {
        method: Option<Cow<'a, str>>,
        /// `params` decoded by method (it came after the method).
        notification: Option<Notification<'a>>,
        /// `params` kept raw (it came before the method).
        raw_params: Option<&'a RawValue>,
        id: Option<Cow<'a, str>>,
        result: Option<Value>,
    }

    struct EnvelopeVisitor;
    impl<'de> Visitor<'de> for EnvelopeVisitor {
        type Value = Envelope<'de>;
        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("a frame object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
            let mut e = Envelope::default();
            let (mut saw_method, mut saw_params, mut saw_id, mut saw_result) =
                (false, false, false, false);
            let once = |seen: &mut bool, name: &'static str| {
                if core::mem::replace(seen, true) {
                    Err(A::Error::duplicate_field(name))
                } else {
                    Ok(())
                }
            };
            while let Some(key) = map.next_key::<Key>()? {
                match key {
                    Key::Method => {
                        once(&mut saw_method, "method")?;
                        e.method = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0);
                    }
                    Key::Params => {
                        once(&mut saw_params, "params")?;
                        match e.method.as_deref() {
                            Some(m) => e.notification = Some(map.next_value_seed(ParamsOf(m))?),
                            None => e.raw_params = map.next_value()?,
                        }
                    }
                    Key::Id => {
                        once(&mut saw_id, "id")?;
                        e.id = map.next_value::<Option<Id<'de>>>()?.map(Id::into_cow);
                    }
                    Key::Result => {
                        once(&mut saw_result, "result")?;
                        // `null` included: see the two-pass decoder.
                        e.result = Some(map.next_value::<Value>()?);
                    }
                    Key::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(e)
        }
    }

    /// `params` typed by the method that came before it.
    struct ParamsOf<'m>(&'m str);
    impl<'de> DeserializeSeed<'de> for ParamsOf<'_> {
        type Value = Notification<'de>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            fn typed<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
                match Option::<T>::deserialize(d)? {
                    Some(params) => Ok(params),
                    // `"params": null` reads as `{}`, as in the careful path.
                    None => serde_json::from_str("{}").map_err(D::Error::custom),
                }
            }
            Ok(match self.0 {
                method::ON_TOKEN => Notification::Token(typed(d)?),
                method::ON_STOP_TOKEN => Notification::StopToken(typed(d)?),
                method::ON_TOOL_CALL => Notification::ToolCall(typed(d)?),
                method::ON_TOOL_RESPONSE => Notification::ToolResponse(typed(d)?),
                method::ON_EVENTS => Notification::Events(typed(d)?),
                method::ON_CLIENT_SIDE_TOOL_CALLS => Notification::ClientSideToolCalls(typed(d)?),
                other => Notification::Unknown {
                    method: other.to_owned(),
                    params: typed(d)?,
                },
            })
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    let e = de.deserialize_map(EnvelopeVisitor).map_err(drop)?;
    de.end().map_err(drop)?;
    match (e.method, e.notification, e.id, e.result) {
        (Some(_), Some(n), _, _) => Ok(ServerFrame::Notification(n)),
        (Some(method), None, _, _) => {
            let params = e.raw_params.map(RawValue::get).unwrap_or("{}");
            decode_notification(method, params)
                .map(ServerFrame::Notification)
                .map_err(drop)
        }
        (None, _, Some(id), Some(result)) => Ok(ServerFrame::Response { id, result }),
        _ => Err(()),
    }
}

fn decode_notification<'a>(
    method: Cow<'a, str>,
    params: &'a str,
) -> Result<Notification<'a>, ProtocolError> {
    fn parse<'a, T: Deserialize<'a>>(method: &str, params: &'a str) -> Result<T, ProtocolError> {
        serde_json::from_str(params).map_err(|e| ProtocolError::InvalidParams {
            method: method.to_owned(),
            message: e.to_string(),
        })
    }
    let m: &str = &method;
    Ok(match m {
        method::ON_TOKEN => Notification::Token(parse(m, params)?),
        method::ON_STOP_TOKEN => Notification::StopToken(parse(m, params)?),
        method::ON_TOOL_CALL => Notification::ToolCall(parse(m, params)?),
        method::ON_TOOL_RESPONSE => Notification::ToolResponse(parse(m, params)?),
        method::ON_EVENTS => Notification::Events(parse(m, params)?),
        method::ON_CLIENT_SIDE_TOOL_CALLS => Notification::ClientSideToolCalls(parse(m, params)?),
        _ => Notification::Unknown {
            params: serde_json::from_str(params).unwrap_or(Value::Null),
            method: method.into_owned(),
        },
    })
}

/// A frame id as a server may send it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id<'a> {
    #[serde(borrow)]
    Str(Cow<'a, str>),
    Num(serde_json::Number),
}

impl<'a> Id<'a> {
    fn into_cow(self) -> Cow<'a, str> {
        match self {
            Id::Str(s) => s,
            Id::Num(n) => Cow::Owned(n.to_string()),
        }
    }
}

fn de_id_borrowed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    Ok(Option::<Id<'de>>::deserialize(d)?.map(Id::into_cow))
}
