//! An agent that uses both kinds of tools, on this machine.
//!
//! * `lookup_order` is a **server tool** run by a webhook of "your
//!   backend": the relay POSTs each call there, signed with the webhook
//!   secret, and the receiver below checks the signature before it answers
//!   from its order table.
//! * `get_cart` is a **client-side tool**: only the user's device knows the
//!   cart, so the relay hands the call to the app over the socket
//!   (`on_client_side_tool_calls`), the app answers from its local state,
//!   and the agent continues.
//!
//! The relay runs in-process with the scripted engine, which calls both
//! tools on cue. With `OPENAI_API_KEY` set it runs the OpenAI-compatible
//! engine instead (`OPENAI_BASE_URL`, default `https://api.openai.com/v1`;
//! `OPENAI_MODEL`, default `gpt-4o-mini`), and the model decides which
//! tools to call.
//!
//! ```sh
//! cargo run -p tokenrelay-examples --bin tools
//! ```

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokenrelay::rest::{NewAgent, NewContext};
use tokenrelay::wire::ToolResponseParam;
use tokenrelay::{AdminClient, Client, ConnectionState, Event, ResponseStatus};
use tokenrelay_server::engine::webhook::{self, HostPattern, WebhookSecret};
use tokenrelay_server::secret::random_token;
use tokenrelay_server::{OpenAiConfig, OpenAiEngine, ScriptedEngine, Server, StoreConfig};

/// What the webhook receiver knows: order id, status.
const ORDERS: [(&str, &str); 2] = [
    ("A-17", "shipped on Monday, arriving Thursday"),
    ("B-42", "waiting for stock"),
];

/// What only the device knows: the cart.
const CART: &str = "2 × espresso beans (1 kg), 1 × milk frother";

/// How far a call's timestamp may be from now, seconds, before the
/// receiver refuses it as a possible replay.
const TOLERANCE_SECS: u64 = 300;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A fresh 256-bit secret shared by the relay (signs) and the receiver
    // (checks). In production: `--webhook-secret` / `WEBHOOK_SECRET`.
    let secret = WebhookSecret::new(random_token("whsec_"));

    // -- your backend's webhook receiver ----------------------------------
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_addr = receiver.local_addr()?;
    let app = Router::new().route(
        "/orders",
        post({
            let secret = secret.clone();
            move |headers: HeaderMap, body: Bytes| lookup_order(secret.clone(), headers, body)
        }),
    );
    tokio::spawn(async move { axum::serve(receiver, app).await });

    // -- the relay ----------------------------------------------------------
    let db = std::env::temp_dir().join(format!("tokenrelay-tools-{}.db", std::process::id()));
    let openai = std::env::var("OPENAI_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let builder = Server::builder().store(StoreConfig::Sqlite(db.clone()));
    let builder = match &openai {
        Some(key) => {
            let base = std::env::var("OPENAI_BASE_URL")
                .unwrap_or_else(|_| "https://api.openai.com/v1".into());
            let model = std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
            note(&format!("engine: OpenAI-compatible, {model} at {base}"));
            builder.engine(OpenAiEngine::new(OpenAiConfig::new(
                base,
                Some(key.clone()),
                model,
            )))
        }
        None => {
            note("engine: scripted (set OPENAI_API_KEY for a real model)");
            builder.engine(ScriptedEngine::default())
        }
    };
    let allow: HostPattern = receiver_addr.to_string().parse()?;
    let server = builder
        .configure(move |c| {
            c.webhooks.secret = Some(secret);
            // The outbound policy: calls go to this one receiver only. It is
            // on loopback over plain http, which a relay refuses unless told.
            c.webhooks.allow = vec![allow];
            c.webhooks.allow_private = true;
            c.webhooks.allow_http = true;
        })
        .bind("127.0.0.1:0")
        .spawn()
        .await?;
    let (org_id, org_key) = server.bootstrap_org("tools example").await?;
    note(&format!(
        "relay on {}, webhook receiver on {receiver_addr}",
        server.http_url()
    ));

    // -- your backend: the agent, its tools, a context ----------------------
    let backend = AdminClient::new(server.http_url(), &org_key)?;
    let mut agent = NewAgent::new(
        "Shop assistant",
        "answers about orders and the cart",
        "You help a shop's customers. Use lookup_order for an order's status \
         and get_cart for what is in their cart; answer in one sentence.",
    );
    agent.tools = Some(vec![
        json!({
            "name": "lookup_order",
            "description": "The status of an order, by its id",
            "parameters": {"type": "object",
                "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
            "webhook": format!("http://{receiver_addr}/orders"),
        }),
        json!({
            "name": "get_cart",
            "description": "What the customer has in their cart right now",
            "parameters": {"type": "object", "properties": {}},
            "client_side": true,
        }),
    ]);
    let agent = backend.create_agent(&agent).await?;
    let context_id = backend
        .create_context(&NewContext::new(agent.agent_id))
        .await?
        .context_id;

    // -- the app: the Rust SDK ----------------------------------------------
    let provider = {
        let (backend, org_id) = (backend.clone(), org_id.clone());
        move |ctx: String| {
            let (backend, org_id) = (backend.clone(), org_id.clone());
            async move {
                backend
                    .generate_client_key(&org_id, Some(&ctx), None)
                    .await
                    .map(|key| key.token)
            }
        }
    };
    let client = Client::builder(server.ws_url())
        .token_provider(provider)
        .build()?;
    let mut conn = client.connect(&context_id).await?;

    let question = "Where is my order A-17, and what is in my cart?";
    note(&format!("\nyou: {question}"));
    // The scripted engine calls tools on cue; a real model reads the
    // question and the tool descriptions.
    let message = match openai {
        Some(_) => question.to_owned(),
        None => format!("[tool=lookup_order] [client_tool=get_cart] {question}"),
    };
    let mut waiting_for = conn.send_message(message).await?;
    print!("agent: ");
    let reply = loop {
        let Some(event) = conn.next_event().await else {
            return Err("the connection closed".into());
        };
        match event {
            Event::Token { token, .. } => {
                print!("{token}");
                std::io::stdout().flush()?;
            }
            Event::ToolCall { call, .. } => {
                note(&format!(
                    "\n  → server tool {}({})",
                    call.tool_name, call.tool_input
                ));
            }
            Event::ToolResponse { result, .. } => {
                note(&format!("  ← {}", result.tool_output));
            }
            Event::StateChanged(change) if change.state == ConnectionState::Failed => {
                return Err(format!("connection failed: {:?}", change.cause).into());
            }
            Event::ResponseComplete(reply) if reply.request_id == Some(waiting_for) => {
                if reply.client_side_tool_calls.is_empty() {
                    break *reply;
                }
                // The agent asks the app: answer from local state, and the
                // agent continues in a new response.
                let answers = reply
                    .client_side_tool_calls
                    .iter()
                    .map(|call| {
                        let name = call["tool_name"].as_str().unwrap_or_default();
                        note(&format!(
                            "\n  → client-side tool {name}: answered on the device"
                        ));
                        ToolResponseParam {
                            tool_call_id: call["tool_call_id"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            response: match name {
                                "get_cart" => CART.to_owned(),
                                other => format!("error: this app has no tool {other}"),
                            },
                        }
                    })
                    .collect();
                waiting_for = conn.send_tool_responses(answers).await?;
                print!("agent: ");
            }
            _ => {}
        }
    };
    println!();
    conn.close().await;
    server.shutdown().await;
    let _ = std::fs::remove_file(&db);
    if reply.status != ResponseStatus::Complete {
        return Err(format!("the reply ended {}", reply.status.as_str()).into());
    }
    note("\nboth tools answered; the reply is complete");
    Ok(())
}

/// The webhook: checks the signature over the raw body, then answers from
/// the order table.
async fn lookup_order(
    secret: WebhookSecret,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let signed = match (
        header("x-tokenrelay-timestamp").and_then(|t| t.parse().ok()),
        header("x-tokenrelay-signature"),
    ) {
        (Some(timestamp), Some(signature)) => {
            webhook::verify(&secret, timestamp, &body, signature, now, TOLERANCE_SECS)
        }
        _ => false,
    };
    if !signed {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad signature"})),
        );
    }
    let call: Value = serde_json::from_slice(&body).unwrap_or_default();
    // A model sends `{"order_id": …}`; the scripted engine `{"query": …}`
    // with the question's text: take whichever names a known order.
    let text = call["input"].to_string();
    let output = ORDERS
        .iter()
        .find(|(id, _)| text.contains(id))
        .map(|(id, status)| format!("order {id}: {status}"))
        .unwrap_or_else(|| "no such order".to_owned());
    (StatusCode::OK, Json(json!({"output": output})))
}

/// A line for the reader on stderr, apart from the reply on stdout.
fn note(line: &str) {
    eprintln!("{line}");
}
