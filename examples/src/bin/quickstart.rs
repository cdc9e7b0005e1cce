//! The quickstart: the whole product in one run, on this machine.
//!
//! It starts the reference server in-process on its embedded SQLite store,
//! then plays both sides of the seed's two-endpoint pattern: "your backend"
//! holds the org API key, creates a context (endpoint 1) and mints a
//! short-lived client key per connect (endpoint 2); "the browser" connects
//! with the Rust SDK and streams the agent's reply. Mid-reply the socket is
//! cut; the SDK fetches a fresh key, reconnects to the same context and
//! resumes, and the reply ends complete, every word exactly once.
//!
//! ```sh
//! cargo run --release -p tokenrelay-examples --bin quickstart
//! ```

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokenrelay::rest::{NewAgent, NewContext};
use tokenrelay::{AdminClient, Client, ConnectionState, Event, ResponseStatus};
use tokenrelay_server::{ScriptedEngine, Server, StoreConfig};

/// The story the scripted agent streams back, word by word (`[echo]`).
const STORY: &str = "Once upon a time a browser needed to talk to an agent, but it could \
not be trusted with a long-lived key. So its backend minted a key that would expire in two \
minutes, good for one conversation and nothing else. The browser opened a socket and the \
agent began to stream its answer, token by token. Halfway through, the network blinked and \
the socket died. The browser did not panic: it asked its backend for a fresh key, opened a \
new socket to the same conversation, and said which token it had seen last. The server \
replayed what was missed, and the story went on as if nothing had happened.";

/// Cut the socket after this many tokens.
const CUT_AFTER: usize = 40;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    // reqwest (used for the demo's fault hook) needs a TLS provider installed.
    let _ = rustls::crypto::ring::default_provider().install_default();

    // -- the server -------------------------------------------------------
    let db = std::env::temp_dir().join(format!("tokenrelay-quickstart-{}.db", std::process::id()));
    let server = Server::builder()
        .store(StoreConfig::Sqlite(db.clone()))
        .engine(ScriptedEngine::default())
        .configure(|c| c.fault_injection = true) // lets the demo cut a socket
        .bind("127.0.0.1:0")
        .spawn()
        .await?;
    let (org_id, org_key) = server.bootstrap_org("quickstart").await?;
    note(&format!(
        "server on {} (SQLite store {})",
        server.http_url(),
        db.display()
    ));

    // -- your backend: holds the org key, never ships it ------------------
    let backend = AdminClient::new(server.http_url(), &org_key)?;
    let mut agent = NewAgent::new("Storyteller", "tells one story", "Be brief.");
    agent.agent_speaks_first = Some(false);
    let agent = backend.create_agent(&agent).await?;
    // Endpoint 1: create a context for this user.
    let context_id = backend
        .create_context(&NewContext::new(agent.agent_id))
        .await?
        .context_id;
    note(&format!("backend created context {context_id}"));

    // Endpoint 2, as the browser's token provider: a fresh client key,
    // scoped to this one context, on every (re)connect.
    let key_fetches = Arc::new(AtomicUsize::new(0));
    let provider = {
        let (backend, org_id, fetches) = (backend.clone(), org_id.clone(), key_fetches.clone());
        move |ctx: String| {
            let (backend, org_id) = (backend.clone(), org_id.clone());
            let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let key = backend
                    .generate_client_key(&org_id, Some(&ctx), None)
                    .await?;
                note(&format!(
                    "backend minted client key #{n} (expires in 120 s, this context only)"
                ));
                Ok::<_, tokenrelay::Error>(key.token)
            }
        }
    };

    // -- the browser: the Rust SDK ----------------------------------------
    let client = Client::builder(server.ws_url())
        .token_provider(provider)
        .build()?;
    let mut conn = client.connect(&context_id).await?;
    note("connected; asking for a story\n");
    let request = conn
        .send_message(format!("[echo pace_ms=25] {STORY}"))
        .await?;

    let http = reqwest::Client::new();
    let (mut tokens, mut reconnects) = (0usize, 0usize);
    let mut mine = None;
    let reply = loop {
        let Some(event) = conn.next_event().await else {
            return Err("the connection closed".into());
        };
        match event {
            Event::ResponseStarted {
                response_id,
                request_id,
            } if request_id == Some(request) => mine = Some(response_id),
            Event::Token { response_id, token } if Some(&response_id) == mine.as_ref() => {
                print!("{token}");
                std::io::stdout().flush()?;
                tokens += 1;
                if tokens == CUT_AFTER {
                    // Simulate the network blinking: the server aborts the socket.
                    http.post(format!("{}/debug/faults", server.http_url()))
                        .bearer_auth(&org_key)
                        .json(&json!({"context_id": context_id, "fault": "drop"}))
                        .send()
                        .await?;
                    note("\n\n  ✂  socket cut mid-reply");
                }
            }
            Event::StateChanged(change) => match change.state {
                ConnectionState::Reconnecting => {
                    reconnects += 1;
                    let wait = change.retry_in.unwrap_or_default().as_millis();
                    note(&format!(
                        "  ↻  reconnecting (attempt {}, in {wait} ms)",
                        change.attempt
                    ));
                }
                ConnectionState::Failed => return Err(format!("failed: {:?}", change.cause).into()),
                _ => {}
            },
            Event::Connected { resumed: true, .. } => {
                note("  ✓  reconnected and resumed where it stopped\n")
            }
            Event::ResponseComplete(r) if r.request_id == Some(request) => break *r,
            _ => {}
        }
    };

    println!("\n");
    let exact = reply.text == STORY;
    note(&format!(
        "reply {}: {} tokens, {} chars, {}",
        reply.status.as_str(),
        tokens,
        reply.text.len(),
        if exact {
            "every word exactly once"
        } else {
            "TEXT MISMATCH"
        }
    ));
    note(&format!(
        "{reconnects} reconnect(s), {} client keys fetched, {:.2} s in all",
        key_fetches.load(Ordering::SeqCst),
        started.elapsed().as_secs_f64()
    ));
    conn.close().await;
    server.shutdown().await;
    let _ = std::fs::remove_file(&db);
    if !exact || reply.status != ResponseStatus::Complete {
        return Err("the reply was not whole".into());
    }
    Ok(())
}

/// A status line on stderr, so stdout is the story alone.
fn note(text: &str) {
    eprintln!("{text}");
}
