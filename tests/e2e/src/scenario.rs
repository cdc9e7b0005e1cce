//! The Rust runner of `tests/scenarios/*.json` (format in that folder's
//! README): it plays each conversation through the Rust SDK against a real
//! reference server and checks every expectation.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use serde::Deserialize;
use tokenrelay::wire::ToolResponseParam;
use tokenrelay::{Connection, ConnectionState, Event, RequestId, Response, ResponseStatus};

use tokenrelay_server::ServerBuilder;

use crate::{Harness, WAIT};

/// One scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Equals the file name without `.json`.
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// The agent to create.
    #[serde(default)]
    pub agent: AgentSpec,
    /// Protocol extensions it cannot pass without (`resume`, …): skipped,
    /// by name, against a base-protocol server.
    #[serde(default)]
    pub needs: Vec<String>,
    /// The conversation.
    pub steps: Vec<Step>,
}

/// The scenario's agent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Prompt, possibly with default directives.
    #[serde(default)]
    pub prompt: String,
    /// Whether the agent speaks first on connect.
    #[serde(default)]
    pub agent_speaks_first: bool,
}

/// One step of a scenario.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Send this message and follow its response.
    #[serde(default)]
    pub send: Option<String>,
    /// Follow the next response no request caused.
    #[serde(default)]
    pub await_unsolicited: bool,
    /// Answer client-side tool calls of the previous response.
    #[serde(default)]
    pub tool_responses: Option<Vec<ToolAnswer>>,
    /// Faults to inject while the step runs.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// What the step's response must look like.
    pub expect: Expect,
    /// What it must look like against a base-protocol server, when that
    /// differs from `expect`.
    #[serde(default)]
    pub expect_base: Option<Expect>,
}

/// An answer to one client-side tool call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolAnswer {
    /// Index of the call in the previous response.
    pub call: usize,
    /// The answer.
    pub response: String,
}

/// A fault and when to inject it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// After this many tokens of the step's response.
    #[serde(default)]
    pub after_tokens: Option<usize>,
    /// After the step's response completed.
    #[serde(default)]
    pub after_reply: bool,
    /// Before the step's request is sent.
    #[serde(default)]
    pub before_send: bool,
    /// `drop`, `drop_after_stop`, `close_NNNN` or `stop`.
    pub fault: String,
}

/// Expectations on a step's response.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `complete`, `stopped`, `failed` or `interrupted`.
    pub status: String,
    /// Exact text.
    #[serde(default)]
    pub text: Option<String>,
    /// The text is a prefix of this.
    #[serde(default)]
    pub text_is_prefix_of: Option<String>,
    /// The text starts with this.
    #[serde(default)]
    pub text_starts_with: Option<String>,
    /// The text ends with this.
    #[serde(default)]
    pub text_ends_with: Option<String>,
    /// Names of the server-side tool calls, in order.
    #[serde(default)]
    pub tool_calls: Option<Vec<String>>,
    /// Number of tool responses.
    #[serde(default)]
    pub tool_responses: Option<usize>,
    /// Number of events.
    #[serde(default)]
    pub events: Option<usize>,
    /// Names of the client-side tool calls.
    #[serde(default)]
    pub client_side_tool_calls: Option<Vec<String>>,
    /// Minimum number of token-provider calls so far.
    #[serde(default)]
    pub min_token_fetches: Option<usize>,
    /// Minimum number of times the connection went `reconnecting` so far.
    #[serde(default)]
    pub min_reconnects: Option<usize>,
}

/// What the runner has seen of the connection so far.
#[derive(Debug, Default)]
struct Seen {
    /// Ids of the responses completed (each must complete once).
    responses: HashSet<String>,
    /// Times the connection went `reconnecting`.
    reconnects: usize,
}

/// The connection's next event (bounded by [`WAIT`]), counted in `seen`.
async fn next_event(conn: &mut Connection, seen: &mut Seen, what: &str) -> Result<Event, String> {
    let event = tokio::time::timeout(WAIT, conn.next_event())
        .await
        .map_err(|_| format!("nothing after {WAIT:?} while waiting for {what}"))?
        .ok_or("the connection ended")?;
    if let Event::StateChanged(c) = &event {
        if c.state == ConnectionState::Reconnecting {
            seen.reconnects += 1;
        }
    }
    Ok(event)
}

/// Every scenario file, sorted by name.
pub fn all() -> Vec<(PathBuf, Scenario)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable scenario");
            let s: Scenario =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, s)
        })
        .collect()
}

/// Plays `scenario` on a fresh server; `Err` says which expectation failed.
pub async fn run(scenario: &Scenario) -> Result<(), String> {
    run_on(scenario, false).await
}

/// Plays `scenario` against a fresh server; `base_protocol` makes it speak
/// only the base protocol, as the hosted service does.
pub async fn run_on(scenario: &Scenario, base_protocol: bool) -> Result<(), String> {
    run_through(scenario, base_protocol, |upstream| async move {
        (format!("{upstream}/ws"), ())
    })
    .await
}

/// [`run_on`] with the SDK connecting through something in front of the
/// server: `relay` gets the server's `ws://host:port` and returns the
/// WebSocket URL the SDK must use and a value handed back at the end (the
/// frame-recording relay of `tests/it/contracts.rs`, say).
pub async fn run_through<F, Fut, T>(
    scenario: &Scenario,
    base_protocol: bool,
    relay: F,
) -> Result<T, String>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = (String, T)>,
{
    let server = crate::builder().configure(move |c| c.base_protocol = base_protocol);
    play(scenario, server, relay, Vec::new()).await
}

/// Plays `scenario` against a fresh server from `server` (start from
/// [`crate::builder`]): one on a Redis hub, say.
pub async fn run_with(scenario: &Scenario, server: ServerBuilder) -> Result<(), String> {
    play(
        scenario,
        server,
        |upstream| async move { (format!("{upstream}/ws"), ()) },
        Vec::new(),
    )
    .await
}

/// Plays `scenario` against a cluster of two instances, `first` and
/// `second` (the same store, JWT secret and Redis hub), behind a round-robin
/// [`Balancer`](crate::balancer::Balancer): the SDK connects through it, so
/// each reconnect after a fault lands on the other instance and resumes
/// from Redis. Faults are asked of both instances (each cuts its own
/// sockets of the context). Returns how many of the SDK's connections
/// each instance was given.
pub async fn run_on_cluster(
    scenario: &Scenario,
    first: ServerBuilder,
    second: ServerBuilder,
) -> Result<Vec<usize>, String> {
    let second = second
        .spawn()
        .await
        .map_err(|e| format!("second instance: {e}"))?;
    let peer = second.addr();
    let played = play(
        scenario,
        first,
        move |upstream| async move {
            let first: std::net::SocketAddr = upstream
                .trim_start_matches("ws://")
                .parse()
                .expect("the first instance's address");
            let balancer = crate::balancer::Balancer::start(&[first, peer]).await;
            (balancer.ws_url(), balancer)
        },
        vec![second.http_url().to_owned()],
    )
    .await;
    second.shutdown().await;
    played.map(|balancer| balancer.served())
}

async fn play<F, Fut, T>(
    scenario: &Scenario,
    server: ServerBuilder,
    relay: F,
    fault_peers: Vec<String>,
) -> Result<T, String>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = (String, T)>,
{
    let mut h = Harness::start_with(server).await;
    h.fault_peers = fault_peers;
    // What the scenario may expect depends on the server's dialect.
    let base_protocol = h.server.state().config.base_protocol;
    let context_id = h
        .context(&scenario.agent.prompt, scenario.agent.agent_speaks_first)
        .await;
    let upstream = h.server.ws_url();
    let upstream = upstream.strip_suffix("/ws").unwrap_or(&upstream).to_owned();
    let (ws_url, kept) = relay(upstream).await;
    let (builder, fetches) = h.client_at(&ws_url);
    let client = builder.build().map_err(|e| e.to_string())?;
    let mut conn = client
        .connect(&context_id)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut seen = Seen::default();
    let mut previous: Option<Response> = None;
    for (i, step) in scenario.steps.iter().enumerate() {
        let at = format!("step {i}");
        for f in step.faults.iter().filter(|f| f.before_send) {
            inject(&h, &conn, &context_id, &f.fault)
                .await
                .map_err(|e| format!("{at}: {e}"))?;
        }
        let request = if let Some(text) = &step.send {
            Some(
                conn.send_message(text.clone())
                    .await
                    .map_err(|e| format!("{at}: {e}"))?,
            )
        } else if let Some(answers) = &step.tool_responses {
            let prev = previous
                .as_ref()
                .ok_or(format!("{at}: no previous response"))?;
            let mut responses = Vec::new();
            for a in answers {
                let call = prev
                    .client_side_tool_calls
                    .get(a.call)
                    .ok_or(format!("{at}: no client-side tool call {}", a.call))?;
                let id = call["tool_call_id"].as_str().unwrap_or_default().to_owned();
                responses.push(ToolResponseParam {
                    tool_call_id: id,
                    response: a.response.clone(),
                });
            }
            Some(
                conn.send_tool_responses(responses)
                    .await
                    .map_err(|e| format!("{at}: {e}"))?,
            )
        } else if step.await_unsolicited {
            None
        } else {
            return Err(format!(
                "{at}: a step needs send, tool_responses or await_unsolicited"
            ));
        };
        let response = follow(&h, &mut conn, &context_id, request, step, &mut seen)
            .await
            .map_err(|e| format!("{at}: {e}"))?;
        for f in step.faults.iter().filter(|f| f.after_reply) {
            inject(&h, &conn, &context_id, &f.fault)
                .await
                .map_err(|e| format!("{at}: {e}"))?;
            if f.fault != "stop" && base_protocol {
                // Without the `idempotency` extension (a base server), let
                // the client see the cut and come back before the next
                // step: a message sent into a socket the server is killing
                // cannot be confirmed and fails as lost rather than being
                // re-sent (docs/decisions.md). With it, the next step's
                // message goes straight into the dying socket and is sent
                // again after the reconnect, exactly once.
                reconnected(&mut conn, &mut seen)
                    .await
                    .map_err(|e| format!("{at}: {e}"))?;
            }
        }
        let expect = match &step.expect_base {
            Some(base) if base_protocol => base,
            _ => &step.expect,
        };
        check(
            expect,
            &response,
            fetches.load(Ordering::SeqCst),
            seen.reconnects,
        )
        .map_err(|e| format!("{at}: {e}"))?;
        previous = Some(response);
    }
    conn.close().await;
    h.server.shutdown().await;
    Ok(kept)
}

/// Reads events until the step's response completes, injecting faults.
async fn follow(
    h: &Harness,
    conn: &mut Connection,
    context_id: &str,
    request: Option<RequestId>,
    step: &Step,
    seen: &mut Seen,
) -> Result<Response, String> {
    let mut mine: Option<tokenrelay::ResponseId> = None;
    let mut tokens = 0usize;
    let mut pending: Vec<&FaultSpec> = step
        .faults
        .iter()
        .filter(|f| f.after_tokens.is_some())
        .collect();
    loop {
        let what = format!("the step's response ({tokens} tokens so far)");
        match next_event(conn, seen, &what).await? {
            Event::ResponseStarted {
                response_id,
                request_id,
            } if request_id == request && mine.is_none() => {
                mine = Some(response_id);
            }
            Event::Token { response_id, .. } if Some(&response_id) == mine.as_ref() => {
                tokens += 1;
                let due: Vec<usize> = pending
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.after_tokens == Some(tokens))
                    .map(|(i, _)| i)
                    .collect();
                for i in due.into_iter().rev() {
                    let f = pending.remove(i);
                    inject(h, conn, context_id, &f.fault).await?;
                }
            }
            Event::ResponseComplete(r) => {
                if !seen.responses.insert(r.id.to_string()) {
                    return Err(format!("response {} completed twice", r.id));
                }
                // Whole as handed over: nothing that trails it is awaited.
                if r.request_id == request && (mine.is_none() || mine.as_deref() == Some(&*r.id)) {
                    return Ok(*r);
                }
            }
            Event::RequestFailed { request_id, error } if Some(request_id) == request => {
                return Err(format!("the request failed: {error}"));
            }
            // The real server never sends anything a client must flag.
            Event::Error(e) => return Err(format!("error event: {e}")),
            Event::StateChanged(c) if c.state.is_terminal() => {
                return Err(format!("the connection ended: {:?}", c.cause));
            }
            _ => {}
        }
    }
}

/// Waits until the connection has dropped and attached again.
async fn reconnected(conn: &mut Connection, seen: &mut Seen) -> Result<(), String> {
    let mut dropped = false;
    loop {
        match next_event(conn, seen, "a reconnect after the fault").await? {
            Event::StateChanged(c) if c.state.is_terminal() => {
                return Err(format!("the connection ended: {:?}", c.cause))
            }
            Event::StateChanged(c) if c.state != ConnectionState::Connected => dropped = true,
            Event::Connected { .. } if dropped => return Ok(()),
            _ => {}
        }
    }
}

async fn inject(
    h: &Harness,
    conn: &Connection,
    context_id: &str,
    fault: &str,
) -> Result<(), String> {
    if fault == "stop" {
        return conn.stop().await.map_err(|e| format!("stop: {e}"));
    }
    match h.fault(context_id, fault).await {
        Ok(0) => Err(format!("fault {fault}: no socket of the context got it")),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("fault {fault}: {e}")),
    }
}

fn check(expect: &Expect, r: &Response, fetches: usize, reconnects: usize) -> Result<(), String> {
    let status = match r.status {
        ResponseStatus::Streaming => "streaming",
        ResponseStatus::Complete => "complete",
        ResponseStatus::Stopped => "stopped",
        ResponseStatus::Failed => "failed",
        ResponseStatus::Interrupted => "interrupted",
    };
    let mut problems = Vec::new();
    if status != expect.status {
        problems.push(format!("status {status}, expected {}", expect.status));
    }
    if let Some(t) = &expect.text {
        if &r.text != t {
            problems.push(format!("text {:?}, expected {t:?}", r.text));
        }
    }
    if let Some(t) = &expect.text_is_prefix_of {
        if !t.starts_with(&r.text) {
            problems.push(format!("text {:?} is not a prefix of {t:?}", r.text));
        }
    }
    if let Some(t) = &expect.text_starts_with {
        if !r.text.starts_with(t.as_str()) {
            problems.push(format!("text {:?} does not start with {t:?}", r.text));
        }
    }
    if let Some(t) = &expect.text_ends_with {
        if !r.text.ends_with(t.as_str()) {
            problems.push(format!("text {:?} does not end with {t:?}", r.text));
        }
    }
    if let Some(names) = &expect.tool_calls {
        let got: Vec<&str> = r.tool_calls.iter().map(|c| c.tool_name.as_str()).collect();
        if got != names.iter().map(String::as_str).collect::<Vec<_>>() {
            problems.push(format!("tool calls {got:?}, expected {names:?}"));
        }
    }
    if let Some(n) = expect.tool_responses {
        if r.tool_responses.len() != n {
            problems.push(format!(
                "{} tool responses, expected {n}",
                r.tool_responses.len()
            ));
        }
    }
    if let Some(n) = expect.events {
        if r.events.len() != n {
            problems.push(format!("{} events, expected {n}", r.events.len()));
        }
    }
    if let Some(names) = &expect.client_side_tool_calls {
        let got: Vec<&str> = r
            .client_side_tool_calls
            .iter()
            .map(|c| c["tool_name"].as_str().unwrap_or_default())
            .collect();
        if got != names.iter().map(String::as_str).collect::<Vec<_>>() {
            problems.push(format!(
                "client-side tool calls {got:?}, expected {names:?}"
            ));
        }
    }
    if let Some(n) = expect.min_token_fetches {
        if fetches < n {
            problems.push(format!("{fetches} token fetches, expected at least {n}"));
        }
    }
    if let Some(n) = expect.min_reconnects {
        if reconnects < n {
            problems.push(format!("{reconnects} reconnects, expected at least {n}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
