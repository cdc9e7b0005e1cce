//! The reference server's base-protocol mode (`--base-protocol`) on the
//! wire, read by a raw WebSocket client, and the Rust SDK's whole replies
//! against it: what the hosted service does, so the SDKs are held to it.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokenrelay::wire::ToolResponseParam;
use tokenrelay::ResponseStatus;
use tokenrelay_e2e::{builder, Harness, WAIT};
use tokio_tungstenite::tungstenite::Message;

async fn base_server() -> Harness {
    Harness::start_with(builder().configure(|c| c.base_protocol = true)).await
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Socket, frame: Value) {
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("sent");
}

async fn next(ws: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(t) = message {
            return serde_json::from_str(t.as_str()).expect("JSON");
        }
    }
}

/// Every frame up to and including the answer to request `id`.
async fn until_answer(ws: &mut Socket, id: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let f = next(ws).await;
        let done = f.get("method").is_none() && f["id"] == id;
        frames.push(f);
        if done {
            return frames;
        }
    }
}

#[tokio::test]
async fn the_wire_is_the_hosted_services() {
    let h = base_server().await;
    let ctx = h.context("", false).await;
    let key = h.client_key(&ctx).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(h.server.ws_url())
        .await
        .unwrap();

    // A parameter the hosted handler does not take is refused as its
    // `**params` call would be; the socket stays usable.
    send(
        &mut ws,
        json!({"id": "1", "method": "connect_to_context",
        "params": {"context_id": ctx, "access_token": key, "resume_after_seq": 0}}),
    )
    .await;
    let refused = next(&mut ws).await;
    assert_eq!(refused["id"], "1");
    let text = refused["result"]["error"].as_str().unwrap();
    assert!(
        text.contains("unexpected keyword argument 'resume_after_seq'"),
        "{text}"
    );
    assert!(
        refused["result"].get("code").is_none(),
        "no codes: {refused}"
    );

    // A bad key: the tuple form.
    send(
        &mut ws,
        json!({"id": "2", "method": "connect_to_context",
        "params": {"context_id": ctx, "access_token": "not-a-key"}}),
    )
    .await;
    let refused = next(&mut ws).await;
    let text = refused["result"]["error"].as_str().unwrap();
    assert!(text.starts_with("('") && text.ends_with(", 401)"), "{text}");

    // Attached: no extensions advertised.
    send(
        &mut ws,
        json!({"id": "3", "method": "connect_to_context",
        "params": {"context_id": ctx, "access_token": key}}),
    )
    .await;
    let attached = next(&mut ws).await;
    assert_eq!(attached["result"]["success"], true, "{attached}");
    for absent in ["server", "seq", "resumed"] {
        assert!(
            attached["result"].get(absent).is_none(),
            "{absent}: {attached}"
        );
    }

    // A reply with text, a client-side tool call and events: the hosted
    // order, the result last and null.
    send(
        &mut ws,
        json!({"id": "4", "method": "add_message",
        "params": {"message": "[tokens=3 client_tool=get_location events=2] hi"}}),
    )
    .await;
    let frames = until_answer(&mut ws, "4").await;
    let methods: Vec<&str> = frames
        .iter()
        .map(|f| f["method"].as_str().unwrap_or("result"))
        .collect();
    assert_eq!(
        methods,
        [
            "on_agent_status",
            "on_token",
            "on_token",
            "on_token",
            "on_stop_token",
            "on_client_side_tool_calls",
            "on_events",
            "result"
        ]
    );
    for f in &frames[..frames.len() - 1] {
        assert_eq!(
            f.get("id"),
            Some(&Value::Null),
            "notifications carry id null: {f}"
        );
        assert!(f["params"].get("seq").is_none(), "no seq: {f}");
    }
    assert!(
        frames[4]["params"].get("reason").is_none(),
        "no stop reason"
    );
    let rid = &frames[1]["params"]["response_id"];
    assert_eq!(&frames[5]["params"]["response_id"], rid);
    assert_eq!(&frames[6]["params"]["response_id"], rid);
    assert_eq!(frames[7]["result"], Value::Null);
}

#[tokio::test]
async fn ask_returns_the_whole_reply_and_the_tool_loop_continues() {
    let h = base_server().await;
    let ctx = h.context("", false).await;
    let (builder, _) = h.client();
    let conn = builder.build().unwrap().connect(&ctx).await.unwrap();

    // Two rounds of client-side tools, the first with text before them,
    // events after the stop: every reply whole.
    let first = conn
        .ask("[client_tool=get_location events=1] where am I?")
        .await
        .unwrap();
    assert_eq!(first.status, ResponseStatus::Complete);
    assert_eq!(first.text, "You said: where am I?");
    assert_eq!(first.client_side_tool_calls.len(), 1, "{first:?}");
    assert_eq!(first.events.len(), 1);
    let answer = |reply: &tokenrelay::Response, output: &str| -> Vec<ToolResponseParam> {
        reply
            .client_side_tool_calls
            .iter()
            .map(|c| ToolResponseParam {
                tool_call_id: c["tool_call_id"].as_str().unwrap().to_owned(),
                response: output.to_owned(),
            })
            .collect()
    };
    let second = conn
        .answer_tools(answer(&first, "52.52,13.40"))
        .await
        .unwrap();
    assert_eq!(second.status, ResponseStatus::Complete);
    assert_ne!(second.id, first.id, "a continuation is a new response");
    assert!(second.text.ends_with("=52.52,13.40"), "{}", second.text);

    // A reply made only of a client-side tool call: no token at all.
    let only_tool = conn.ask("[tokens=0 client_tool=get_time]").await.unwrap();
    assert_eq!(only_tool.text, "");
    assert_eq!(only_tool.client_side_tool_calls.len(), 1, "{only_tool:?}");
    let after = conn
        .answer_tools(answer(&only_tool, "12:00"))
        .await
        .unwrap();
    assert_eq!(after.status, ResponseStatus::Complete);
}
