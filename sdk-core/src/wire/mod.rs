//! Wire types of the WebSocket protocol (`docs/protocol.md` §2 and §3), in
//! both directions, so the client and the reference server share one
//! definition and cannot drift.
//!
//! Decoding is tolerant, as the hosted service requires: unknown fields are
//! ignored, `"id": null` marks a notification, numeric ids are accepted, and
//! an unknown notification method decodes to [`Notification::Unknown`].
//! Decoding borrows from the frame wherever the JSON has no escapes, so the
//! `on_token` hot path allocates nothing here.
//!
//! One module per direction (`client_frames`: client to server,
//! `server_frames`: server to client) and for the typed `result`s
//! (`results`); generic JSON reading and writing lives apart from them
//! (`json`), as do the lenient field readers shared with the REST bodies
//! (`lenient`) and the serde reference codec the shipped one is tested
//! against (`reference`, tests and fuzzing only).
//!
//! A client needs only half of this module; the server's half (reading
//! client frames, writing notifications and answers) is behind the
//! crate's `server` feature, so an app does not compile it.

/// How an `on_token` frame in the canonical layout (the one the reference
/// server and any serde-based server write) begins; its token's text
/// follows at once. The hot-path scanner matches it, and the browser driver
/// uses it to hand a token to JS as a slice of the frame it already holds.
pub const TOKEN_FRAME_PREFIX: &str = r#"{"method":"on_token","params":{"token":""#;

mod client_frames;
mod compact;
mod float;
mod json;
pub(crate) mod lenient;
#[cfg(any(test, target_arch = "wasm32"))]
mod raw_json;
#[cfg(any(test, feature = "fuzzing"))]
mod reference;
mod results;
mod scan;
mod server_frames;
pub(crate) mod surrogates;

#[cfg(any(test, feature = "server"))]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use client_frames::{decode_client_frame, IncomingRequest};
pub use client_frames::{ClientRequest, ConnectParams, ToolResponseParam};
pub(crate) use json::unsigned_member;
pub use json::{json_str, json_text, parse_json, push_i64, push_json_str};
#[cfg(target_arch = "wasm32")]
pub use raw_json::{RawJson, RawJsonMap};
pub(crate) use results::result_response_id;

/// A JSON value the protocol carries without giving it a type: a tool's
/// input, an event's `data`, an answer's `result`, an unknown
/// notification's `params`, an agent's tools. Natively a
/// [`serde_json::Value`]; in the browser build (`wasm32`) the value's text
/// (`RawJson`, a type of that build only), which the page reads with its own
/// `JSON.parse` (docs/decisions.md, "The browser build keeps JSON values as
/// text"). [`json_str`] gives the text on either.
#[cfg(not(target_arch = "wasm32"))]
pub type Json = serde_json::Value;
/// A JSON value the protocol carries without giving it a type (see the
/// native build's docs): here, the value's text.
#[cfg(target_arch = "wasm32")]
pub type Json = RawJson;

/// An object of [`Json`] values by name (an agent's fields this client does
/// not know): natively a [`serde_json::Map`], in the browser build a
/// `RawJsonMap` in the frame's order.
#[cfg(not(target_arch = "wasm32"))]
#[allow(unused_qualifications)] // `String` is in std's prelude, not core's
pub type JsonMap = serde_json::Map<alloc::string::String, Json>;
/// An object of [`Json`] values by name (see the native build's docs).
#[cfg(target_arch = "wasm32")]
pub type JsonMap = RawJsonMap;
// A number's text without `core::fmt`, for the browser driver (which
// writes its events and close codes with them), beside the JSON text it
// also uses.
pub use crate::error::{decimal, push_u64};
pub use results::{
    connect_result, result_failure, Agent, ConnectResult, ResultFailure, ServerInfo,
};
#[cfg(any(test, feature = "server"))]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use server_frames::encode_response;
pub use server_frames::{
    decode_server_frame, AgentEvent, ClientSideToolCallsParams, EventsParams, Notification,
    ServerFrame, StopReason, StopTokenParams, TokenParams, ToolCallParams, ToolResponseParams,
};

/// Every decoder and encoder of this module by name, for the fuzz targets
/// in `fuzz/` (the `fuzzing` feature), which hold each one to the serde
/// reference on arbitrary input. Not API: no stability promise.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use serde_json::Value;

    use super::{ClientRequest, ConnectResult, ServerFrame, TokenParams};
    use crate::error::ProtocolError;

    /// The `on_token` scanner for the exact layout serde writes.
    pub fn scan_canonical(text: &str) -> Option<TokenParams<'_>> {
        super::scan::canonical(text)
    }

    /// The `on_token` scanner for any whitespace and key order.
    pub fn scan_general(text: &str) -> Option<TokenParams<'_>> {
        super::scan::general(text)
    }

    /// Both scanners, as the decoders call them.
    pub fn scan_token_frame(text: &str) -> Option<TokenParams<'_>> {
        super::scan::token_frame(text)
    }

    /// The one-pass serde decoder (`None`: left to the careful one).
    pub fn decode_one_pass(text: &str) -> Option<ServerFrame<'_>> {
        super::reference::decode_server_frame_in_one_pass(text).ok()
    }

    /// The careful two-pass serde decoder: the reference.
    pub fn decode_reference(text: &str) -> Result<ServerFrame<'_>, ProtocolError> {
        super::reference::decode_server_frame_in_two_passes(text)
    }

    /// What native builds use: scanner, one pass, then the careful one.
    pub fn decode_native(text: &str) -> Result<ServerFrame<'_>, ProtocolError> {
        super::reference::decode_server_frame_with_serde(text)
    }

    /// What the browser build uses: scanner, then the compact reader.
    pub fn decode_compact(text: &str) -> Result<ServerFrame<'_>, ProtocolError> {
        super::compact::decode_server_frame(text)
    }

    /// The compact reader's JSON parser.
    pub fn compact_parse(text: &str) -> Result<Value, &'static str> {
        super::json::parse(text)
    }

    /// The compact writer's JSON text.
    pub fn compact_to_json(value: &Value) -> String {
        super::json::to_json(value)
    }

    /// A `connect_to_context` result read by the compact reader.
    pub fn compact_connect_result(result: &Value) -> ConnectResult {
        super::compact::connect_result(result)
    }

    /// A request written by the compact writer.
    pub fn compact_encode_request(request: &ClientRequest, id: Option<&str>) -> String {
        super::compact::encode_request(request, id, None)
    }

    /// A request written by serde (the reference).
    pub fn serde_encode_request(request: &ClientRequest, id: Option<&str>) -> String {
        super::reference::encode_request_with_serde(request, id, None)
    }
}

#[cfg(target_arch = "wasm32")]
pub use float::set_host_floats;
pub use float::HostFloats;
/// The `on_token` scanners, for the session's hot path: the canonical
/// layout's parts, then any other plain layout.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use scan::{
    canonical_parts as scan_canonical_token, general as scan_general_token, Plain,
};

/// Extension names a server may advertise in `connect_to_context`'s
/// `server.capabilities` (`docs/protocol.md` §3).
pub mod capability {
    /// Notifications carry a per-context `seq`.
    pub const SEQ: &str = "seq";
    /// `resume_after_seq` replays missed notifications on reconnect.
    pub const RESUME: &str = "resume";
    /// Failures carry a stable `result.code`.
    pub const ERROR_CODES: &str = "error_codes";
    /// `on_stop_token` carries a `reason`.
    pub const STOP_REASON: &str = "stop_reason";
    /// The socket may be opened with a single-use `?token=pub_tok_…`.
    pub const STREAM_TOKEN: &str = "stream_token";
    /// An invocation may carry an `idempotency_key`; the server answers a
    /// repeat with the original outcome instead of running it again.
    pub const IDEMPOTENCY: &str = "idempotency";
    /// Every capability the reference server implements.
    #[cfg(feature = "server")]
    #[cfg_attr(docsrs, doc(cfg(feature = "server")))]
    pub const ALL: [&str; 6] = [
        SEQ,
        RESUME,
        ERROR_CODES,
        STOP_REASON,
        STREAM_TOKEN,
        IDEMPOTENCY,
    ];
}

/// Method names, client to server.
pub mod method {
    /// Must come first on a socket.
    pub const CONNECT_TO_CONTEXT: &str = "connect_to_context";
    /// Sends a human message and invokes the agent.
    pub const ADD_MESSAGE: &str = "add_message";
    /// Stops the running generation.
    pub const STOP_INVOCATION: &str = "stop_invocation";
    /// Rewrites the tail of the history, then re-invokes.
    pub const SET_LAST_MESSAGES: &str = "set_last_messages";
    /// Answers client-side tool calls, then re-invokes.
    pub const CLIENT_SIDE_TOOL_RESPONSES: &str = "client_side_tool_responses";
    /// Server to client: one token of a response.
    pub const ON_TOKEN: &str = "on_token";
    /// Server to client: a response is complete.
    pub const ON_STOP_TOKEN: &str = "on_stop_token";
    /// Server to client: the agent called a server-side tool.
    pub const ON_TOOL_CALL: &str = "on_tool_call";
    /// Server to client: a server-side tool answered.
    pub const ON_TOOL_RESPONSE: &str = "on_tool_response";
    /// Server to client: events attached to a completed response.
    pub const ON_EVENTS: &str = "on_events";
    /// Server to client: tools the client must run and answer.
    pub const ON_CLIENT_SIDE_TOOL_CALLS: &str = "on_client_side_tool_calls";
}

#[cfg(test)]
mod tests {
    use alloc::borrow::Cow;

    use serde_json::Value;

    use super::reference::{
        decode_server_frame_in_one_pass, decode_server_frame_in_two_passes,
        decode_server_frame_with_serde,
    };
    use super::*;
    use crate::error::ProtocolError;

    #[test]
    fn token_frames_borrow_from_the_input() {
        let frame = r#"{"method":"on_token","params":{"token":"Hi","response_id":"r1","seq":3}}"#;
        let ServerFrame::Notification(Notification::Token(p)) = decode_server_frame(frame).unwrap()
        else {
            panic!("not a token")
        };
        assert!(matches!(p.token, Cow::Borrowed("Hi")));
        assert!(matches!(p.response_id, Cow::Borrowed("r1")));
        assert_eq!(p.seq, Some(3));
    }

    #[test]
    fn the_one_pass_decoder_agrees_with_the_careful_one() {
        let frames = [
            r#"{"method":"on_token","params":{"token":"Hi","response_id":"r1","seq":3}}"#,
            r#"{"params":{"token":"Hi","response_id":"r1"},"method":"on_token"}"#,
            r#"{"id":null,"method":"on_stop_token","params":{"response_id":"r","reason":"stopped"},"x":[1,{"y":2}]}"#,
            r#"{"meth\u006fd":"on_token","params":{"token":"a\"\\\n😀","response_id":"r\u00e9"}}"#,
            r#"{"method":"on_t\u006fken","params":{"token":"x","response_id":"r"}}"#,
            r#"{"method":"on_events","params":null}"#,
            r#"{"method":"on_events"}"#,
            r#"{"method":"on_thinking","params":null}"#,
            r#"{"method":"on_thinking","params":{"x":[1,2]}}"#,
            r#"{"method":"on_tool_call","params":{"tool_call_id":"t","tool_name":"n","tool_input":{"q":1}},"id":7}"#,
            r#"{"method":"on_tool_response","params":{"tool_call_id":"t","tool_output":{"a":1}}}"#,
            r#"{"method":"on_client_side_tool_calls","params":{"tool_calls":[{"tool_call_id":"c"}]}}"#,
            r#"{"id":"4","result":{"success":true}}"#,
            r#"{"result":{"success":false,"error":"no"},"id":12}"#,
            r#"{"id":"4","result":null}"#,
            r#"{"method":null,"id":"4","result":{}}"#,
            // Errors: each must come out exactly as the careful decoder says.
            r#"{"method":"on_token","params":{"token":5}}"#,
            r#"{"method":"on_token","params":null}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r"}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r"}} x"#,
            r#"{"method":"on_token","method":"on_token","params":{}}"#,
            r#"{"method":"on_token","params":{"token":"a","response_id":"r"},"params":{}}"#,
            r#"{"method":5}"#,
            r#"{"id":{"a":1},"result":{}}"#,
            r#"{"id":"4"}"#,
            r#"{}"#,
            r#"[1,2]"#,
            "not json",
            "",
        ];
        for f in frames {
            let careful = decode_server_frame_in_two_passes(f);
            // The serde path as a whole (the compact reader, which ships,
            // is held to it in `compact`'s tests, error variants only).
            assert_eq!(decode_server_frame_with_serde(f), careful, "{f}");
            if let Ok(fast) = decode_server_frame_in_one_pass(f) {
                assert_eq!(Ok(fast), careful, "{f}");
            }
        }
        // The hot path takes the frames it is for.
        assert!(decode_server_frame_in_one_pass(frames[0]).is_ok());
        assert!(decode_server_frame_in_one_pass(frames[3]).is_ok());
    }

    #[test]
    fn escaped_tokens_are_unescaped() {
        let frame = r#"{"method":"on_token","params":{"token":"a\nb\u00e9","response_id":"r"}}"#;
        let ServerFrame::Notification(Notification::Token(p)) = decode_server_frame(frame).unwrap()
        else {
            panic!("not a token")
        };
        assert_eq!(p.token, "a\nbé");
    }

    #[test]
    fn null_id_with_method_is_a_notification_and_unknown_fields_are_ignored() {
        let frame =
            r#"{"id":null,"method":"on_stop_token","params":{"response_id":"r","extra":1},"x":2}"#;
        assert!(matches!(
            decode_server_frame(frame).unwrap(),
            ServerFrame::Notification(Notification::StopToken(_))
        ));
    }

    #[test]
    fn numeric_ids_are_accepted() {
        let frame = r#"{"id":7,"result":{"success":true}}"#;
        let ServerFrame::Response { id, .. } = decode_server_frame(frame).unwrap() else {
            panic!()
        };
        assert_eq!(id, "7");
    }

    #[test]
    fn unknown_methods_are_surfaced() {
        let frame = r#"{"method":"on_thinking","params":{"x":1}}"#;
        let ServerFrame::Notification(Notification::Unknown { method, params }) =
            decode_server_frame(frame).unwrap()
        else {
            panic!()
        };
        assert_eq!(method, "on_thinking");
        assert_eq!(params["x"], 1);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            decode_server_frame("not json"),
            Err(ProtocolError::InvalidJson { .. })
        ));
        assert!(matches!(
            decode_server_frame("[1,2]"),
            Err(ProtocolError::InvalidJson { .. })
        ));
        assert!(matches!(
            decode_server_frame("{}"),
            Err(ProtocolError::UnexpectedShape { .. })
        ));
        assert!(matches!(
            decode_server_frame(r#"{"method":"on_token","params":{"token":5}}"#),
            Err(ProtocolError::InvalidParams { .. })
        ));
    }

    #[test]
    fn requests_round_trip() {
        let req = ClientRequest::ConnectToContext(ConnectParams {
            context_id: "c".into(),
            access_token: Some("t".into()),
            resume_after_seq: Some(4),
            client_key: None,
        });
        let text = req.encode(Some("1"));
        assert_eq!(
            text,
            r#"{"method":"connect_to_context","params":{"context_id":"c","access_token":"t","resume_after_seq":4},"id":"1"}"#
        );
        let back = decode_client_frame(&text).unwrap();
        assert_eq!(back.id.as_deref(), Some("1"));
        assert_eq!(back.request.unwrap(), req);
        let stop = ClientRequest::StopInvocation {}.encode(Some("2"));
        assert_eq!(stop, r#"{"method":"stop_invocation","params":{},"id":"2"}"#);
        assert_eq!(
            decode_client_frame(&stop).unwrap().request.unwrap(),
            ClientRequest::StopInvocation {}
        );
    }

    #[test]
    fn debug_never_prints_a_credential() {
        let params = ConnectParams {
            context_id: "ctx-1".into(),
            access_token: Some("sk_secret_token".into()),
            resume_after_seq: Some(3),
            client_key: Some("pk_live_key".into()),
        };
        let request = ClientRequest::ConnectToContext(params.clone());
        for debug in [
            format!("{params:?}"),
            format!("{request:?}"),
            format!("{request:#?}"),
        ] {
            assert!(!debug.contains("sk_secret_token"), "{debug}");
            assert!(!debug.contains("pk_live_key"), "{debug}");
            assert!(debug.contains("<redacted>"), "{debug}");
            assert!(debug.contains("ctx-1"), "{debug}");
        }
        // An absent credential shows as absent, not as redacted.
        let bare = format!("{:?}", ConnectParams::default());
        assert!(bare.contains("access_token: None"), "{bare}");
    }

    #[test]
    fn client_frames_with_bad_params_keep_their_id() {
        let f =
            decode_client_frame(r#"{"method":"add_message","params":{"msg":1},"id":"9"}"#).unwrap();
        assert_eq!(f.id.as_deref(), Some("9"));
        assert!(f.request.is_err());
        let f = decode_client_frame(r#"{"method":"dance","id":3}"#).unwrap();
        assert_eq!(f.id.as_deref(), Some("3"));
        assert_eq!(f.request.unwrap_err(), "unknown method `dance`");
    }

    #[test]
    fn a_null_result_is_an_answer_and_a_missing_one_is_not() {
        // The hosted server answers `add_message` with `"result": null`.
        let frame = decode_server_frame(r#"{"id":"4","result":null}"#).unwrap();
        assert!(
            matches!(frame, ServerFrame::Response { ref id, result: Value::Null } if id == "4")
        );
        assert!(decode_server_frame(r#"{"id":"4"}"#).is_err());
    }

    #[test]
    fn result_failures_accept_tuple_text_and_codes() {
        let r =
            serde_json::json!({"success": false, "error": "('nope', 403)", "code": "forbidden"});
        let f = result_failure(&r).unwrap();
        assert_eq!(f.error, "('nope', 403)");
        assert_eq!(f.code.as_deref(), Some("forbidden"));
        assert!(result_failure(&serde_json::json!({"success": true})).is_none());
        assert!(result_failure(&serde_json::json!({"error": "x"})).is_some());
    }

    /// The text reader of `result_failure` and `result_response_id` against
    /// what reading the `Value` gave (`get`, `as_bool`, `as_str`, any other
    /// error as its JSON text).
    #[test]
    fn results_are_read_from_their_text_as_from_their_value() {
        use serde_json::json;
        let failure = |v: Value| result_failure(&v).map(|f| (f.error, f.code));
        let default = "request failed without an error message".to_owned();
        assert_eq!(failure(json!({})), None);
        assert_eq!(failure(json!({"error": null, "x": [1, {"y": 2}]})), None);
        assert_eq!(
            failure(json!({"success": false})),
            Some((default.clone(), None))
        );
        // A `success` that is not a boolean counts as absent.
        assert_eq!(failure(json!({"success": "yes"})), None);
        assert_eq!(
            failure(json!({"success": "yes", "error": 12.5, "code": 5})),
            Some(("12.5".into(), None))
        );
        assert_eq!(
            failure(json!({"success": false, "error": {"b": [true], "a": "é"}, "code": "c"})),
            Some((r#"{"a":"é","b":[true]}"#.into(), Some("c".into())))
        );
        assert_eq!(
            failure(json!({"error": false})),
            Some(("false".into(), None))
        );
        // Not an object: no `success`, no `error`.
        for v in [json!(null), json!([1]), json!("error"), json!(7)] {
            assert_eq!(failure(v), None);
        }

        let id = |v: Value| result_response_id(&v);
        assert_eq!(
            id(json!({"success": true, "response_id": "r\"1"})).as_deref(),
            Some("r\"1")
        );
        assert_eq!(id(json!({"response_id": 5})), None);
        assert_eq!(id(json!({"response_id": null})), None);
        assert_eq!(id(json!(["response_id"])), None);
    }

    #[test]
    fn agents_decode_tolerantly() {
        let a: Agent = serde_json::from_str(
            r#"{"agent_id":7,"agent_name":"A","agent_description":null,"tools":null,
                "is_public":null,"created_at":1700000000.5,"color":"blue"}"#,
        )
        .unwrap();
        assert_eq!(a.agent_id, "7");
        assert_eq!(a.agent_description, "");
        assert!(a.tools.is_empty());
        assert_eq!(a.created_at, Some(1_700_000_000));
        assert_eq!(a.extra["color"], "blue");
    }

    #[test]
    fn notifications_round_trip_through_encode() {
        let n = Notification::Token(TokenParams {
            token: "a\"b".into(),
            response_id: "r".into(),
            seq: Some(1),
        });
        let text = n.encode();
        let ServerFrame::Notification(back) = decode_server_frame(&text).unwrap() else {
            panic!()
        };
        assert_eq!(back, n);
    }
}
