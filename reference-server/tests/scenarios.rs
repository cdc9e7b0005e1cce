//! Plays every `tests/scenarios/*.json` (the cross-language scenarios, see
//! their README) with the Rust SDK's `tokenrelay::Client` against this
//! server on 127.0.0.1:0, fault injection on.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{spawn_with, test_builder, TestServer};
use serde_json::{json, Value};
use tokenrelay::event::{RequestId, Response, ResponseStatus};
use tokenrelay::wire::ToolResponseParam;
use tokenrelay::{Client, Connection, Event};

const STEP_LIMIT: Duration = Duration::from_secs(30);

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// What one step waits for.
enum Awaited {
    Request(RequestId),
    Unsolicited,
}

struct Runner {
    t: Arc<TestServer>,
    conn: Connection,
    ctx: String,
    fetches: Arc<AtomicUsize>,
    completed: HashSet<String>,
    last: Option<Response>,
}

impl Runner {
    async fn fault(&self, fault: &str) {
        if fault == "stop" {
            self.conn.stop().await.expect("stop acknowledged");
            return;
        }
        let (status, body) = self
            .t
            .post(
                "/debug/faults",
                &self.t.org_key,
                json!({"context_id": self.ctx, "fault": fault}),
            )
            .await;
        assert_eq!(status, 200, "fault {fault}: {body}");
    }

    /// Reads events until the awaited response completes, injecting the
    /// step's `after_tokens` faults on the way.
    async fn wait(&mut self, awaited: Awaited, faults: &[Value]) -> Response {
        let mut response_id: Option<String> = None;
        let mut tokens = 0usize;
        let mut pending: Vec<(u64, String)> = faults
            .iter()
            .filter_map(|f| Some((f["after_tokens"].as_u64()?, f["fault"].as_str()?.to_owned())))
            .collect();
        loop {
            let event = self.conn.next_event().await.expect("connection open");
            match event {
                Event::ResponseStarted {
                    response_id: rid,
                    request_id,
                } => {
                    let ours = match &awaited {
                        Awaited::Request(id) => request_id == Some(*id),
                        Awaited::Unsolicited => request_id.is_none(),
                    };
                    if ours && response_id.is_none() {
                        response_id = Some(rid.to_string());
                    }
                }
                Event::Token {
                    response_id: rid, ..
                } if response_id.as_deref() == Some(&*rid) => {
                    tokens += 1;
                    let due: Vec<String> = pending
                        .iter()
                        .filter(|(n, _)| *n as usize == tokens)
                        .map(|(_, f)| f.clone())
                        .collect();
                    pending.retain(|(n, _)| *n as usize != tokens);
                    for f in due {
                        self.fault(&f).await;
                    }
                }
                Event::ResponseComplete(response) => {
                    let id = response.id.to_string();
                    assert!(
                        self.completed.insert(id.clone()),
                        "response {id} completed twice"
                    );
                    let ours = match &awaited {
                        Awaited::Request(rid) => response.request_id == Some(*rid),
                        Awaited::Unsolicited => {
                            response.request_id.is_none() || response_id.as_deref() == Some(&*id)
                        }
                    };
                    if ours {
                        return *response;
                    }
                }
                Event::RequestFailed { request_id, error } => {
                    if let Awaited::Request(id) = &awaited {
                        assert_ne!(request_id, *id, "request failed: {error}");
                    }
                }
                _ => {}
            }
        }
    }

    async fn step(&mut self, name: &str, i: usize, step: &Value) {
        let faults = step["faults"].as_array().cloned().unwrap_or_default();
        let awaited = if let Some(text) = step["send"].as_str() {
            Awaited::Request(self.conn.send_message(text).await.expect("send"))
        } else if step["await_unsolicited"] == true {
            Awaited::Unsolicited
        } else if let Some(answers) = step["tool_responses"].as_array() {
            let previous = self.last.as_ref().expect("a previous response");
            let responses = answers
                .iter()
                .map(|a| {
                    let call =
                        &previous.client_side_tool_calls[a["call"].as_u64().unwrap() as usize];
                    ToolResponseParam {
                        tool_call_id: call["tool_call_id"].as_str().unwrap().to_owned(),
                        response: a["response"].as_str().unwrap().to_owned(),
                    }
                })
                .collect();
            Awaited::Request(
                self.conn
                    .send_tool_responses(responses)
                    .await
                    .expect("send"),
            )
        } else {
            panic!("{name} step {i}: unknown step {step}");
        };
        let response = tokio::time::timeout(STEP_LIMIT, self.wait(awaited, &faults))
            .await
            .unwrap_or_else(|_| panic!("{name} step {i} took longer than {STEP_LIMIT:?}"));
        check(
            name,
            i,
            &step["expect"],
            &response,
            self.fetches.load(Ordering::SeqCst),
        );
        for f in faults.iter().filter(|f| f["after_reply"] == true) {
            self.fault(f["fault"].as_str().unwrap()).await;
        }
        self.last = Some(response);
    }
}

fn check(name: &str, i: usize, expect: &Value, r: &Response, fetches: usize) {
    let at = format!("{name} step {i}");
    if let Some(status) = expect["status"].as_str() {
        assert_eq!(r.status.as_str(), status, "{at}: status ({r:?})");
    }
    if let Some(text) = expect["text"].as_str() {
        assert_eq!(r.text, text, "{at}: text");
    }
    if let Some(full) = expect["text_is_prefix_of"].as_str() {
        assert!(
            full.starts_with(&r.text),
            "{at}: {:?} is not a prefix",
            r.text
        );
    }
    if let Some(p) = expect["text_starts_with"].as_str() {
        assert!(
            r.text.starts_with(p),
            "{at}: {:?} starts with {p:?}",
            r.text
        );
    }
    if let Some(p) = expect["text_ends_with"].as_str() {
        assert!(r.text.ends_with(p), "{at}: {:?} ends with {p:?}", r.text);
    }
    if let Some(names) = expect["tool_calls"].as_array() {
        let got: Vec<&str> = r.tool_calls.iter().map(|c| c.tool_name.as_str()).collect();
        let want: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
        assert_eq!(got, want, "{at}: tool calls");
    }
    if let Some(n) = expect["tool_responses"].as_u64() {
        assert_eq!(r.tool_responses.len() as u64, n, "{at}: tool responses");
    }
    if let Some(n) = expect["events"].as_u64() {
        assert_eq!(r.events.len() as u64, n, "{at}: events");
    }
    if let Some(names) = expect["client_side_tool_calls"].as_array() {
        let got: Vec<&str> = r
            .client_side_tool_calls
            .iter()
            .filter_map(|c| c["tool_name"].as_str())
            .collect();
        let want: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
        assert_eq!(got, want, "{at}: client-side tool calls");
    }
    if let Some(n) = expect["min_token_fetches"].as_u64() {
        assert!(fetches as u64 >= n, "{at}: {fetches} token fetches < {n}");
    }
    assert_ne!(r.status, ResponseStatus::Streaming, "{at}");
}

async fn run_scenario(path: &PathBuf) {
    let scenario: Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("scenario json");
    let name = scenario["name"].as_str().unwrap().to_owned();
    assert_eq!(
        path.file_stem().and_then(|s| s.to_str()),
        Some(name.as_str()),
        "name equals the file name"
    );
    let t = Arc::new(spawn_with(test_builder().configure(|c| c.fault_injection = true)).await);
    let agent = &scenario["agent"];
    let agent_id = t
        .agent(json!({
            "prompt": agent["prompt"].as_str().unwrap_or(""),
            "agent_speaks_first": agent["agent_speaks_first"].as_bool().unwrap_or(false),
        }))
        .await;
    let ctx = t.context(&agent_id).await;

    // The seed's endpoint 2, counted: a fresh client key on every call.
    let fetches = Arc::new(AtomicUsize::new(0));
    let provider = {
        let (t, fetches) = (t.clone(), fetches.clone());
        move |context_id: String| {
            let (t, fetches) = (t.clone(), fetches.clone());
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                let (status, key) = t
                    .post(
                        "/generate-api-key",
                        &t.org_key,
                        json!({"org_id": t.org_id, "type": "client", "context_id": context_id}),
                    )
                    .await;
                match (status, key["token"].as_str()) {
                    (200, Some(token)) => Ok(token.to_owned()),
                    _ => Err(format!("HTTP {status}: {key}")),
                }
            }
        }
    };
    let client = Client::builder(t.ws_url())
        .token_provider(provider)
        .build()
        .expect("client");
    let conn = client.connect(ctx.clone()).await.expect("connects");
    let mut runner = Runner {
        t: t.clone(),
        conn,
        ctx,
        fetches,
        completed: HashSet::new(),
        last: None,
    };
    for (i, step) in scenario["steps"].as_array().unwrap().iter().enumerate() {
        runner.step(&name, i, step).await;
    }
    runner.conn.close().await;
}

#[tokio::test]
async fn every_scenario_passes_with_the_rust_sdk() {
    let files = scenario_files();
    assert!(!files.is_empty(), "scenario files found");
    for path in &files {
        run_scenario(path).await;
        eprintln!("scenario {} passed", path.display());
    }
}
