//! The base protocol end to end: the seed's two-endpoint flow, every
//! client method, every notification kind, the extensions' fields.

use crate::common;

use common::{seq, spawn, Ws};
use serde_json::{json, Value};
use tokenrelay_server::ScriptedEngine;

#[tokio::test]
async fn two_endpoint_flow_reconnects_to_the_same_context_with_history() {
    let t = spawn().await;
    // Endpoint 1: the backend creates a context with its org key.
    let (agent_id, ctx) = t.agent_and_context().await;
    // Endpoint 2: the backend mints a client key; the browser connects.
    let key = t.client_key(None, None).await;
    let mut ws = Ws::open(&t.ws_url()).await;
    let result = ws.connect(&ctx, Some(&key), None).await;
    assert_eq!(result["success"], true);
    assert_eq!(result["agent"]["agent_id"], agent_id.as_str());
    assert_eq!(result["agent_speaks_first"], false);
    assert_eq!(result["server"]["name"], "tokenrelay-server");
    let caps: Vec<&str> = result["server"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for c in [
        "seq",
        "resume",
        "error_codes",
        "stop_reason",
        "stream_token",
    ] {
        assert!(caps.contains(&c), "{c} advertised");
    }
    assert_eq!(result["seq"], 0);

    let ack = ws
        .request("add_message", json!({"message": "hello there"}))
        .await;
    assert_eq!(ack["success"], true);
    let rid = ack["response_id"].as_str().unwrap().to_owned();
    let got = ws.collect(Some(&rid)).await;
    assert_eq!(got.text, ScriptedEngine::expected_reply("hello there"));
    assert_eq!(got.reason.as_deref(), Some("complete"));
    let seqs: Vec<u64> = got.notifications.iter().map(seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    ws.cut();

    // Drop, fresh key, reconnect to the same context: history intact.
    let key2 = t.client_key(None, None).await;
    assert_ne!(key, key2);
    let mut ws = Ws::open(&t.ws_url()).await;
    let result = ws.connect(&ctx, Some(&key2), None).await;
    assert_eq!(result["success"], true);
    let ack = ws.request("add_message", json!({"message": "again"})).await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "You said: again");
    // seq continues across connections.
    assert_eq!(seq(&got.notifications[0]), seqs.len() as u64 + 1);

    let (status, context) = t.get(&format!("/context/{ctx}"), &t.org_key).await;
    assert_eq!(status, 200);
    assert_eq!(context["agent_id"], agent_id.as_str());
    assert!(context["user_id"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(context["created_at"].is_i64());
    assert_eq!(
        context["messages"],
        json!([
            {"sender": "human", "message": "hello there"},
            {"sender": "ai", "message": "You said: hello there"},
            {"sender": "human", "message": "again"},
            {"sender": "ai", "message": "You said: again"},
        ])
    );
    t.server.shutdown().await;
}

#[tokio::test]
async fn long_replies_stream_every_token_in_order() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request("add_message", json!({"message": "[tokens=500]"}))
        .await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, ScriptedEngine::expected_reply("[tokens=500]"));
    assert_eq!(
        got.methods().iter().filter(|m| *m == "on_token").count(),
        500
    );
}

#[tokio::test]
async fn agent_speaks_first_on_the_first_connect_only() {
    let t = spawn().await;
    let agent = t.agent(json!({"agent_speaks_first": true})).await;
    let ctx = t.context(&agent).await;
    let mut ws = t.connected(&ctx).await;
    let greeting = ws.collect(None).await;
    assert_eq!(greeting.text, "Hello! How can I help you today?");
    assert_eq!(greeting.reason.as_deref(), Some("complete"));
    ws.close().await;

    let mut ws = t.connected(&ctx).await;
    let ack = ws.request("add_message", json!({"message": "hi"})).await;
    // The next frame is the reply, not a second greeting.
    let got = ws.collect(None).await;
    assert_eq!(
        got.notifications[0]["params"]["response_id"],
        ack["response_id"]
    );
    assert_eq!(got.text, "You said: hi");
}

#[tokio::test]
async fn server_tools_client_tools_and_events() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request(
            "add_message",
            json!({"message": "weather? [tool=web_search] [events=2] [client_tool=get_location]"}),
        )
        .await;
    let rid = ack["response_id"].as_str().unwrap().to_owned();
    let got = ws.collect(Some(&rid)).await;
    let methods = got.methods();
    assert_eq!(methods[0], "on_tool_call");
    assert_eq!(methods[1], "on_tool_response");
    let tail: Vec<&str> = methods.iter().rev().take(3).map(String::as_str).collect();
    assert_eq!(
        tail,
        vec!["on_stop_token", "on_client_side_tool_calls", "on_events"]
    );
    let call = &got.notifications[0]["params"];
    assert_eq!(call["tool_name"], "web_search");
    assert_eq!(call["response_id"], rid.as_str());
    assert_eq!(
        got.notifications[1]["params"]["tool_call_id"],
        call["tool_call_id"]
    );
    let events = &got.notifications[got.notifications.len() - 3]["params"];
    assert_eq!(events["events"].as_array().unwrap().len(), 2);
    let client_calls = &got.notifications[got.notifications.len() - 2]["params"]["tool_calls"];
    let call_id = client_calls[0]["tool_call_id"].as_str().unwrap().to_owned();
    assert_eq!(client_calls[0]["tool_name"], "get_location");

    let ack = ws
        .request(
            "client_side_tool_responses",
            json!({"tool_responses": [{"tool_call_id": call_id, "response": "Paris"}]}),
        )
        .await;
    assert_eq!(ack["success"], true);
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, format!("Tool results: {call_id}=Paris"));

    let (_, context) = t.get(&format!("/context/{ctx}"), &t.org_key).await;
    let kinds: Vec<String> = context["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["type"]
                .as_str()
                .or(m["sender"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "human",
            "tool_call",
            "tool_response",
            "ai",
            "client_side_tool_calls",
            "tool_response",
            "ai"
        ]
    );
}

#[tokio::test]
async fn failures_end_with_reason_error() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request(
            "add_message",
            json!({"message": "[tokens=10 fail_after=4]"}),
        )
        .await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "t0 t1 t2 t3 ");
    assert_eq!(got.reason.as_deref(), Some("error"));
    // The connection is still usable.
    let ack = ws.request("add_message", json!({"message": "ok"})).await;
    assert_eq!(
        ws.collect(ack["response_id"].as_str())
            .await
            .reason
            .as_deref(),
        Some("complete")
    );
}

#[tokio::test]
async fn stop_invocation_keeps_the_partial_response() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws
        .request(
            "add_message",
            json!({"message": "[tokens=100000 pace_ms=2]"}),
        )
        .await;
    let rid = ack["response_id"].as_str().unwrap().to_owned();
    // Wait for the stream to start, then stop it.
    let first = ws.next_json().await.unwrap();
    assert_eq!(first["method"], "on_token");
    let stop = ws.request("stop_invocation", json!({})).await;
    assert_eq!(stop["success"], true);
    assert_eq!(stop["response_id"], rid.as_str());
    let mut rest = ws.collect(Some(&rid)).await;
    rest.text
        .insert_str(0, first["params"]["token"].as_str().unwrap());
    assert_eq!(rest.reason.as_deref(), Some("stopped"));
    assert!(rest.text.len() < ScriptedEngine::expected_reply("[tokens=100000]").len());

    let (_, context) = t.get(&format!("/context/{ctx}"), &t.org_key).await;
    assert_eq!(context["messages"][1]["message"], rest.text.as_str());
    // Stopping when nothing runs is fine.
    assert_eq!(
        ws.request("stop_invocation", json!({})).await["success"],
        true
    );
}

#[tokio::test]
async fn set_last_messages_both_scenarios() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let ack = ws.request("add_message", json!({"message": "first"})).await;
    ws.collect(ack["response_id"].as_str()).await;

    // Correction: replace the last human turn.
    let ack = ws
        .request("set_last_messages", json!({"human_message": "corrected"}))
        .await;
    assert_eq!(ack["success"], true);
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "You said: corrected");
    let (_, c) = t.get(&format!("/context/{ctx}"), &t.org_key).await;
    assert_eq!(
        c["messages"],
        json!([{"sender": "human", "message": "corrected"}, {"sender": "ai", "message": "You said: corrected"}])
    );

    // Barge-in: keep what was heard of the AI message, then the new one.
    let ack = ws
        .request(
            "set_last_messages",
            json!({"human_message": "stop, new", "ai_message": "You said"}),
        )
        .await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "You said: stop, new");
    let (_, c) = t.get(&format!("/context/{ctx}"), &t.org_key).await;
    assert_eq!(
        c["messages"],
        json!([
            {"sender": "human", "message": "corrected"},
            {"sender": "ai", "message": "You said"},
            {"sender": "human", "message": "stop, new"},
            {"sender": "ai", "message": "You said: stop, new"},
        ])
    );
}

#[tokio::test]
async fn chat_route_returns_the_finished_reply_and_sockets_see_it_stream() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = t.connected(&ctx).await;
    let (status, reply) = t
        .post(
            "/chat",
            &t.org_key,
            json!({"context_id": ctx, "message": "via rest"}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["message"], "You said: via rest");
    let got = ws.collect(reply["response_id"].as_str()).await;
    assert_eq!(got.text, "You said: via rest");
}

#[tokio::test]
async fn agents_and_contexts_crud() {
    let t = spawn().await;
    let agent = t
        .agent(json!({"agent_name": "A", "tools": ["web_search"]}))
        .await;
    let (status, a) = t.get(&format!("/agent/{agent}"), &t.org_key).await;
    assert_eq!(status, 200);
    assert_eq!(a["agent_name"], "A");
    assert_eq!(a["tools"], json!(["web_search"]));
    assert!(a["created_at"].is_i64());
    let (_, list) = t.get("/agents", &t.org_key).await;
    assert_eq!(list["agents"].as_array().unwrap().len(), 1);
    let ctx = t.context(&agent).await;
    let (status, body) = t.delete(&format!("/context/{ctx}"), &t.org_key).await;
    assert_eq!((status, body), (200, json!({"success": true})));
    let (status, body) = t.get(&format!("/context/{ctx}"), &t.org_key).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["success"], false);
    let (status, _) = t.delete(&format!("/agent/{agent}"), &t.org_key).await;
    assert_eq!(status, 200);
    let (status, _) = t.get(&format!("/agent/{agent}"), &t.org_key).await;
    assert_eq!(status, 404);
    let (status, body) = t
        .post("/agent", &t.org_key, json!({"prompt": "no name"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_params");
}

#[tokio::test]
async fn public_agents_hand_out_a_scoped_client_key() {
    let t = spawn().await;
    let agent = t.agent(json!({"is_public": true})).await;
    let (status, ctx) = t
        .post(
            "/context",
            &t.org_key,
            json!({"agent_id": agent, "user_defined": {"k": 1}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ctx["user_defined"], json!({"k": 1}));
    let key = ctx["client_api_key"].as_str().unwrap();
    let mut ws = Ws::open(&t.ws_url()).await;
    let r = ws
        .connect(ctx["context_id"].as_str().unwrap(), Some(key), None)
        .await;
    assert_eq!(r["success"], true);
    // Scoped: another context of the same org is refused.
    let other = t.context(&agent).await;
    let mut ws = Ws::open(&t.ws_url()).await;
    let r = ws.connect(&other, Some(key), None).await;
    assert_eq!(r["code"], "forbidden");
}

#[tokio::test]
async fn invoke_agent_message_produces_a_first_message() {
    let t = spawn().await;
    let agent = t.agent(json!({})).await;
    let (status, ctx) = t
        .post(
            "/context",
            &t.org_key,
            json!({"agent_id": agent, "invoke_agent_message": true}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        ctx["messages"],
        json!([{"sender": "ai", "message": "Hello! How can I help you today?"}])
    );
}

#[tokio::test]
async fn every_socket_on_a_context_sees_the_stream() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let mut a = t.connected(&ctx).await;
    let mut b = t.connected(&ctx).await;
    let ack = a
        .request("add_message", json!({"message": "[tokens=50]"}))
        .await;
    let rid = ack["response_id"].as_str().unwrap().to_owned();
    let from_a = a.collect(Some(&rid)).await;
    let from_b = b.collect(Some(&rid)).await;
    assert_eq!(from_a.text, from_b.text);
    assert_eq!(from_a.notifications, from_b.notifications);
}

#[tokio::test]
async fn connect_again_on_the_same_socket_moves_it_to_the_new_context() {
    let t = spawn().await;
    let (agent, first) = t.agent_and_context().await;
    let second = t.context(&agent).await;
    let mut ws = t.connected(&first).await;
    let r = ws.connect(&second, Some(&t.org_key), None).await;
    assert_eq!(r["success"], true);
    // A message on the first context (over REST) is not seen here.
    t.post(
        "/chat",
        &t.org_key,
        json!({"context_id": first, "message": "elsewhere"}),
    )
    .await;
    let ack = ws.request("add_message", json!({"message": "here"})).await;
    let got = ws.collect(None).await;
    assert_eq!(
        got.notifications[0]["params"]["response_id"],
        ack["response_id"]
    );
    assert_eq!(got.text, "You said: here");
}

#[tokio::test]
async fn prompt_args_reach_the_engine() {
    let t = spawn().await;
    // The scripted engine reads directives from the prompt: a placeholder
    // filled from prompt_args sets the reply length.
    let agent = t.agent(json!({"prompt": "[tokens={n}]"})).await;
    let (status, ctx) = t
        .post(
            "/context",
            &t.org_key,
            json!({"agent_id": agent, "prompt_args": {"n": 4}}),
        )
        .await;
    assert_eq!(status, 200);
    let mut ws = t.connected(ctx["context_id"].as_str().unwrap()).await;
    let ack = ws.request("add_message", json!({"message": "go"})).await;
    assert_eq!(
        ws.collect(ack["response_id"].as_str()).await.text,
        "t0 t1 t2 t3"
    );
}
