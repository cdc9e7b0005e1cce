//! Nothing from the network panics the session: arbitrary text, arbitrary
//! JSON of the right shape with wrong types, and arbitrary close codes.

use proptest::prelude::*;
use serde_json::json;
use tokenrelay::{Action, Session, SessionConfig};
use tokenrelay::{Credential, Event, Timestamp};

fn connected() -> Session {
    let mut s = Session::new("ctx", SessionConfig::new("ws://x/ws"), 1);
    let t = Timestamp::ZERO;
    s.start(t);
    let fetch_id = match s.poll_action() {
        Some(Action::FetchToken { fetch_id, .. }) => fetch_id,
        other => panic!("{other:?}"),
    };
    s.handle_token(fetch_id, Ok(Credential::access_token("k")), t, 0);
    s.handle_transport_open(t);
    s.handle_frame(
        r#"{"id":"1","result":{"success":true,"server":{"capabilities":["seq","resume"]}}}"#,
        t,
    );
    assert!(s.state().is_connected());
    s
}

fn drain(s: &mut Session) {
    while s.poll_event().is_some() {}
    while s.poll_transmit().is_some() {}
    while s.poll_action().is_some() {}
}

/// Values of every JSON type, to put where the protocol expects another.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(|s| json!(s)),
        Just(json!([1, "a", null])),
        Just(json!({"x": {"y": []}})),
    ]
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(frames in prop::collection::vec(".{0,200}", 1..20)) {
        let mut s = connected();
        for f in &frames {
            s.handle_frame(f, Timestamp::from_millis(1));
        }
        drain(&mut s);
        prop_assert!(s.state().is_connected());
    }

    #[test]
    fn wrongly_typed_fields_never_panic(
        method in prop_oneof![
            Just("on_token"), Just("on_stop_token"), Just("on_tool_call"),
            Just("on_tool_response"), Just("on_events"), Just("on_client_side_tool_calls"),
            Just("mystery")
        ],
        a in any_json(), b in any_json(), c in any_json(), id in any_json(), result in any_json(),
    ) {
        let mut s = connected();
        let notification = json!({"method": method, "id": id, "params": {
            "token": a, "response_id": b, "seq": c, "tool_call_id": a, "tool_name": b,
            "tool_input": c, "tool_output": a, "events": b, "tool_calls": c, "reason": a}});
        s.handle_frame(&notification.to_string(), Timestamp::from_millis(1));
        s.handle_frame(&json!({"id": id, "result": result}).to_string(), Timestamp::from_millis(2));
        s.handle_frame(&json!({"method": method, "params": a}).to_string(), Timestamp::from_millis(3));
        drain(&mut s);
        prop_assert!(s.state().is_connected());
    }

    #[test]
    fn any_close_code_or_reason_never_panics(code in any::<Option<u16>>(), reason in ".{0,40}") {
        let mut s = connected();
        s.handle_transport_closed(code, &reason, Timestamp::from_millis(5));
        let mut saw_state = false;
        while let Some(e) = s.poll_event() {
            saw_state |= matches!(e, Event::StateChanged(_));
        }
        prop_assert!(saw_state);
        s.handle_timeout(Timestamp::from_millis(1_000_000));
    }
}
