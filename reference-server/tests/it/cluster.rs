//! Several server instances on shared engines (issue #14), against a
//! real, private Redis (`common/redis.rs` starts one per test).
//! The harness itself, then instances sharing one Redis hub and one store.

use crate::redis;

/// The test's own Redis, or a skip.
macro_rules! redis {
    ($test:expr) => {
        match redis::require($test) {
            Some(r) => r,
            None => return,
        }
    };
}

#[test]
fn a_private_redis_starts_answers_and_is_gone_after_drop() {
    let r = redis!("a_private_redis_starts_answers_and_is_gone_after_drop");
    r.ping().unwrap();
    assert_eq!(r.command("SET k v").unwrap(), "+OK");
    assert_eq!(r.command("GET k").unwrap(), "$1");
    // No persistence by default: nothing configured to write.
    assert_eq!(r.command("CONFIG GET appendonly").unwrap(), "*2");
    let port = r.port();
    drop(r);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_persistent_redis_keeps_its_data_across_a_crash() {
    let Some(mut r) =
        redis::Redis::with_persistence("a_persistent_redis_keeps_its_data_across_a_crash")
    else {
        return;
    };
    assert_eq!(r.command("INCR n").unwrap(), ":1");
    r.stop();
    assert!(r.ping().is_err());
    r.start_again().unwrap();
    assert_eq!(r.command("INCR n").unwrap(), ":2");
}

#[test]
fn a_plain_redis_forgets_everything_on_a_crash() {
    let mut r = redis!("a_plain_redis_forgets_everything_on_a_crash");
    assert_eq!(r.command("INCR n").unwrap(), ":1");
    r.stop();
    r.start_again().unwrap();
    assert_eq!(r.command("INCR n").unwrap(), ":1");
}

// ---- Several server instances on one Redis and one store ----

use std::time::Duration;

use crate::common::{seq, test_builder, TestServer, Ws};
use serde_json::{json, Value};
use tokenrelay_server::state::AppState;
use tokenrelay_server::{Config, ScriptedEngine, StoreConfig};

/// The JWT secret every instance shares (keys minted on one verify on all).
const SECRET: &str = "cluster-test-secret-of-at-least-32-bytes";

/// A server instance on a runtime of its own, so a test can kill it the
/// way a crash does: every task stops where it is, nothing is released.
struct Node {
    /// `None` once [`Node::shutdown`] took the server.
    t: Option<TestServer>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Node {
    /// Starts the graceful shutdown (the drain, then the stop) on the
    /// instance's own runtime, as SIGTERM does; the handle resolves when
    /// `ServerHandle::shutdown` returns. Also gives the instance's state,
    /// to read its metrics afterwards.
    fn shutdown(&mut self) -> (tokio::task::JoinHandle<()>, AppState) {
        let t = self.t.take().expect("node running");
        let state = t.server.state().clone();
        let rt = self.rt.as_ref().expect("node running");
        (rt.spawn(t.server.shutdown()), state)
    }

    /// Stops every task of the instance at once (its sockets drop, its
    /// generation stops mid-reply, its lease is never given back).
    fn kill(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

impl std::ops::Deref for Node {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        self.t.as_ref().expect("node running")
    }
}

/// Instances on one private Redis and one SQLite file (WAL: several
/// processes, or instances in one, may share it). Dropped in field order:
/// the instances, then Redis, then the directory.
struct Cluster {
    nodes: Vec<Node>,
    redis: redis::Redis,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// `n` instances with a generation lease of `lease`, or `None` (skipped)
/// without `redis-server`.
async fn cluster(test: &str, n: usize, lease: Duration) -> Option<Cluster> {
    cluster_with(test, n, &move |c: &mut Config| c.hub_lease = lease).await
}

/// `n` instances, each configured by `configure` after the cluster's own
/// settings, or `None` (skipped) without `redis-server`.
async fn cluster_with(
    test: &str,
    n: usize,
    configure: &(dyn Fn(&mut Config) + Sync),
) -> Option<Cluster> {
    let redis = redis::require(test)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("store.sqlite3");
    let mut cluster = Cluster {
        nodes: Vec::new(),
        redis,
        db,
        _dir: dir,
    };
    for _ in 0..n {
        cluster.add_node(configure).await;
    }
    Some(cluster)
}

impl Cluster {
    /// Starts one more instance on the cluster's Redis and store, on a
    /// runtime of its own (the new instance of a rolling restart); the
    /// first one bootstraps the org every instance serves.
    async fn add_node(&mut self, configure: &(dyn Fn(&mut Config) + Sync)) -> &Node {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let url = self.redis.url();
        let builder = test_builder()
            .store(StoreConfig::Sqlite(self.db.clone()))
            .jwt_secret(SECRET)
            .configure(|c| {
                c.hub = Some(url);
                configure(c);
            });
        let server = rt
            .spawn(builder.spawn())
            .await
            .expect("task")
            .expect("server starts");
        let org = self
            .nodes
            .iter()
            .find_map(|n| n.t.as_ref())
            .map(|t| (t.org_id.clone(), t.org_key.clone()));
        let (org_id, org_key) = match org {
            Some(org) => org,
            None => server.bootstrap_org("test-org").await.expect("bootstrap"),
        };
        self.nodes.push(Node {
            t: Some(TestServer {
                server,
                org_id,
                org_key,
                http: reqwest::Client::new(),
            }),
            rt: Some(rt),
        });
        self.nodes.last().expect("just added")
    }
}

/// The test's cluster, or a skip.
macro_rules! cluster {
    ($test:expr, $n:expr) => {
        cluster!($test, $n, Duration::from_secs(5))
    };
    ($test:expr, $n:expr, $lease:expr) => {
        match cluster($test, $n, $lease).await {
            Some(c) => c,
            None => return,
        }
    };
}

/// A socket on `node`, attached to `ctx` (resuming after `after`); the
/// connect result.
async fn attach(node: &TestServer, ctx: &str, after: Option<u64>) -> (Ws, Value) {
    let key = node.client_key(Some(ctx), None).await;
    let mut ws = Ws::open(&node.ws_url()).await;
    let result = ws.connect(ctx, Some(&key), after).await;
    assert_eq!(result["success"], true, "{result}");
    (ws, result)
}

/// Reads notifications until the stop of the first response seen (or
/// `limit` of them); checks every `seq` follows the one before. Returns
/// the text, the stop's reason if it came, and the last `seq`.
async fn read(ws: &mut Ws, last: &mut u64, limit: usize) -> (String, Option<String>) {
    let mut text = String::new();
    for _ in 0..limit {
        let n = ws.next_json().await.expect("socket open");
        let s = seq(&n);
        assert_eq!(s, *last + 1, "no gap, no duplicate: {n}");
        *last = s;
        match n["method"].as_str() {
            Some("on_token") => text.push_str(n["params"]["token"].as_str().unwrap_or_default()),
            Some("on_stop_token") => {
                return (text, n["params"]["reason"].as_str().map(str::to_owned));
            }
            _ => {}
        }
    }
    (text, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_on_one_instance_gets_the_reply_another_generates() {
    let c = cluster!(
        "a_socket_on_one_instance_gets_the_reply_another_generates",
        2
    );
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let (_, ctx) = a.agent_and_context().await;
    let (mut watcher, _) = attach(a, &ctx, None).await;
    let (mut asker, _) = attach(b, &ctx, None).await;
    let message = "[tokens=40 pace_ms=1]";
    let ack = asker
        .request("add_message", json!({"message": message}))
        .await;
    assert_eq!(ack["success"], true, "{ack}");
    let expected = ScriptedEngine::expected_reply(message);
    let (mut last_a, mut last_b) = (0, 0);
    let (text, reason) = read(&mut watcher, &mut last_a, 1000).await;
    assert_eq!(
        (text.as_str(), reason.as_deref()),
        (expected.as_str(), Some("complete"))
    );
    let (text, _) = read(&mut asker, &mut last_b, 1000).await;
    assert_eq!(text, expected);
    assert_eq!(last_a, last_b, "both saw the same numbering");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_from_one_instance_resumes_on_another_exactly() {
    let c = cluster!(
        "a_client_cut_from_one_instance_resumes_on_another_exactly",
        2
    );
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let message = "[tokens=60 pace_ms=2]";
    let expected = ScriptedEngine::expected_reply(message);
    for cut_after in [1usize, 17, 45] {
        let (_, ctx) = a.agent_and_context().await;
        let (mut ws, _) = attach(a, &ctx, None).await;
        ws.request("add_message", json!({"message": message})).await;
        let mut last = 0;
        let (mut text, reason) = read(&mut ws, &mut last, cut_after).await;
        assert_eq!(reason, None);
        ws.cut();
        let (mut ws, result) = attach(b, &ctx, Some(last)).await;
        assert_eq!(result["resumed"], true, "cut after {cut_after}: {result}");
        let (rest, reason) = read(&mut ws, &mut last, 1000).await;
        text.push_str(&rest);
        assert_eq!(text, expected, "cut after {cut_after}");
        assert_eq!(reason.as_deref(), Some("complete"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_inside_a_batch_of_frames_replays_exactly_the_rest() {
    let c = cluster!(
        "a_resume_inside_a_batch_of_frames_replays_exactly_the_rest",
        2
    );
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    // No pace: the tokens are ready together and go to Redis in batches,
    // several frames to one stream entry.
    let message = "[tokens=300 pace_ms=0]";
    let (_, ctx) = a.agent_and_context().await;
    let (mut ws, _) = attach(a, &ctx, None).await;
    ws.request("add_message", json!({"message": message})).await;
    let mut last = 0;
    let mut texts = vec![String::new()];
    loop {
        let n = ws.next_json().await.expect("socket open");
        assert_eq!(seq(&n), last + 1, "no gap, no duplicate: {n}");
        last = seq(&n);
        let mut text = texts.last().cloned().unwrap_or_default();
        text.push_str(n["params"]["token"].as_str().unwrap_or_default());
        texts.push(text);
        if n["method"] == "on_stop_token" {
            break;
        }
    }
    let entries: u64 = c
        .redis
        .command(&format!("XLEN tokenrelay:{{{ctx}}}:log"))
        .expect("XLEN")
        .trim_start_matches(':')
        .parse()
        .expect("a count");
    assert!(
        entries < last,
        "{last} notifications in {entries} stream entries: batched"
    );
    // Every point, so most fall inside a batch: the other instance
    // replays exactly what came after it, from the stream.
    let whole = texts.last().cloned().unwrap_or_default();
    let key = b.client_key(Some(&ctx), None).await;
    for after in 1..last {
        let mut again = Ws::open(&b.ws_url()).await;
        let result = again.connect(&ctx, Some(&key), Some(after)).await;
        assert_eq!(result["resumed"], true, "after {after}: {result}");
        let mut seen = after;
        let (rest, reason) = read(&mut again, &mut seen, 1000).await;
        assert_eq!(seen, last, "after {after}: up to the last");
        assert_eq!(reason.as_deref(), Some("complete"), "after {after}");
        assert_eq!(
            format!("{}{rest}", texts[after as usize]),
            whole,
            "after {after}: the rest, exactly"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seq_numbers_never_repeat_across_instances() {
    let c = cluster!("seq_numbers_never_repeat_across_instances", 3);
    let (_, ctx) = c.nodes[0].agent_and_context().await;
    let (mut watcher, _) = attach(&c.nodes[0], &ctx, None).await;
    let mut askers = Vec::new();
    for node in &c.nodes {
        askers.push(attach(node, &ctx, None).await.0);
    }
    // Three replies asked at once through three instances: the lease lets
    // one generate at a time, wherever it runs.
    let messages: Vec<String> = (0..3)
        .map(|i| format!("[tokens={} pace_ms=1]", 10 + i))
        .collect();
    for (ws, message) in askers.iter_mut().zip(&messages) {
        let id = format!("ask-{message}");
        ws.send_json(json!({"method": "add_message", "params": {"message": message}, "id": id}))
            .await;
    }
    let mut last = 0;
    let mut texts = Vec::new();
    for _ in 0..3 {
        let (text, reason) = read(&mut watcher, &mut last, 1000).await;
        assert_eq!(reason.as_deref(), Some("complete"));
        texts.push(text);
    }
    // Each reply whole and uninterleaved (`read` checked every `seq`
    // follows the one before, from 1).
    texts.sort();
    let mut expected: Vec<String> = messages
        .iter()
        .map(|m| ScriptedEngine::expected_reply(m))
        .collect();
    expected.sort();
    assert_eq!(texts, expected);
    // A socket attaching anywhere now starts above every number issued.
    for node in &c.nodes {
        let (_, result) = attach(node, &ctx, None).await;
        assert_eq!(result["seq"], last, "{result}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_of_a_killed_instance_ends_when_its_lease_lapses() {
    let mut c = cluster!(
        "the_reply_of_a_killed_instance_ends_when_its_lease_lapses",
        2,
        Duration::from_millis(300)
    );
    let (_, ctx) = c.nodes[0].agent_and_context().await;
    let (mut watcher, _) = attach(&c.nodes[1], &ctx, None).await;
    let (mut asker, _) = attach(&c.nodes[0], &ctx, None).await;
    let message = "[tokens=500 pace_ms=10]";
    asker
        .request("add_message", json!({"message": message}))
        .await;
    let mut last = 0;
    let (mut text, reason) = read(&mut watcher, &mut last, 5).await;
    assert_eq!(reason, None);
    c.nodes[0].kill();
    drop(asker);
    let (rest, reason) = read(&mut watcher, &mut last, 10_000).await;
    text.push_str(&rest);
    assert_eq!(
        reason.as_deref(),
        Some("instance_lost"),
        "the reply ends, marked failed"
    );
    let expected = ScriptedEngine::expected_reply(message);
    assert!(
        expected.starts_with(&text) && text.len() < expected.len(),
        "a prefix of the reply: {text:?}"
    );
    // The survivor serves the context: the next reply runs whole.
    let (mut ws, _) = attach(&c.nodes[1], &ctx, Some(last)).await;
    ws.request("add_message", json!({"message": "[tokens=5]"}))
        .await;
    let (text, reason) = read(&mut ws, &mut last, 1000).await;
    assert_eq!(text, ScriptedEngine::expected_reply("[tokens=5]"));
    assert_eq!(reason.as_deref(), Some("complete"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_asked_on_one_instance_stops_the_reply_on_another() {
    let c = cluster!("a_stop_asked_on_one_instance_stops_the_reply_on_another", 2);
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let (_, ctx) = a.agent_and_context().await;
    let (mut stopper, _) = attach(a, &ctx, None).await;
    let (mut asker, _) = attach(b, &ctx, None).await;
    let message = "[tokens=500 pace_ms=10]";
    let ack = asker
        .request("add_message", json!({"message": message}))
        .await;
    let asked = ack["response_id"].clone();
    let mut last = 0;
    read(&mut stopper, &mut last, 3).await;
    let stop = stopper.request("stop_invocation", json!({})).await;
    assert_eq!(stop["success"], true, "{stop}");
    assert_eq!(stop["response_id"], asked, "{stop}");
    let (_, reason) = read(&mut stopper, &mut last, 10_000).await;
    assert_eq!(reason.as_deref(), Some("stopped"));
}

// ---- Zero-downtime deploy: the drain on shutdown (issue #14 item 4) ----

/// Reads notifications until the server closes the socket; checks every
/// `seq` follows the one before. Returns the text, the stop's reason if it
/// came first, and the close code.
async fn read_until_close(ws: &mut Ws, last: &mut u64) -> (String, Option<String>, u16) {
    let mut text = String::new();
    let mut reason = None;
    loop {
        match ws.next_or_close().await {
            Ok(n) => {
                let s = seq(&n);
                assert_eq!(s, *last + 1, "no gap, no duplicate: {n}");
                *last = s;
                match n["method"].as_str() {
                    Some("on_token") => {
                        text.push_str(n["params"]["token"].as_str().unwrap_or_default())
                    }
                    Some("on_stop_token") => {
                        reason = n["params"]["reason"].as_str().map(str::to_owned)
                    }
                    _ => {}
                }
            }
            Err((code, _)) => return (text, reason, code),
        }
    }
}

/// The value of the series line starting with `series ` (0 when absent).
fn metric(state: &AppState, series: &str) -> u64 {
    state
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// A drain timeout far longer than any reply of these tests: when it is
/// not what the test is about, it never ends a drain (the reply does).
const LONG_DRAIN: Duration = Duration::from_secs(120);

/// The settings of the drain tests: `drain` and a generation lease far
/// longer than the default. These tests are about the drain; with the 5 s
/// lease, a node starved of CPU for that long on a loaded test machine
/// loses its lease, and its reply ends `error` (by design, the Redis
/// hub's own tests), which would read as a drain failure.
fn draining_node(c: &mut Config, drain: Duration) {
    c.drain_timeout = drain;
    c.hub_lease = Duration::from_secs(60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_instance_moves_its_client_and_finishes_the_reply() {
    let Some(mut c) = cluster_with(
        "a_draining_instance_moves_its_client_and_finishes_the_reply",
        2,
        &|c| draining_node(c, LONG_DRAIN),
    )
    .await
    else {
        return;
    };
    let (_, ctx) = c.nodes[0].agent_and_context().await;
    let (mut ws, _) = attach(&c.nodes[0], &ctx, None).await;
    let message = "[tokens=300 pace_ms=5]";
    let expected = ScriptedEngine::expected_reply(message);
    let ack = ws.request("add_message", json!({"message": message})).await;
    assert_eq!(ack["success"], true, "{ack}");
    let mut last = 0;
    let (mut text, reason) = read(&mut ws, &mut last, 5).await;
    assert_eq!(reason, None, "the reply is streaming");

    // SIGTERM on A, the instance generating the reply.
    let (draining, a) = c.nodes[0].shutdown();
    // Its socket is told to reconnect elsewhere: what was on its way comes
    // first, then the close.
    let (more, reason, code) = read_until_close(&mut ws, &mut last).await;
    text.push_str(&more);
    assert_eq!(code, 1001, "the code every SDK reconnects and resumes on");

    // The client resumes on B and gets the rest, exactly.
    let (mut ws, result) = attach(&c.nodes[1], &ctx, Some(last)).await;
    assert_eq!(result["resumed"], true, "{result}");
    let reason = match reason {
        Some(r) => r,
        None => {
            let (rest, reason) = read(&mut ws, &mut last, 100_000).await;
            text.push_str(&rest);
            reason.expect("the reply ends")
        }
    };
    assert_eq!(text, expected, "the whole reply: no gap, no duplicate");
    assert_eq!(reason, "complete", "finished, not cut");

    // A's shutdown returns, the generation having finished in the drain.
    draining.await.expect("shutdown task");
    assert_eq!(
        metric(
            &a,
            "tokenrelay_drain_generations_total{outcome=\"finished\"}"
        ),
        1
    );
    assert_eq!(
        metric(&a, "tokenrelay_drain_generations_total{outcome=\"cut\"}"),
        0
    );
    assert_eq!(
        metric(&a, "tokenrelay_replies_total{reason=\"complete\"}"),
        1
    );
    // And the reply is in the history, whole.
    let (status, context) = c.nodes[1]
        .get(&format!("/context/{ctx}"), &c.nodes[1].org_key)
        .await;
    assert_eq!(status, 200, "{context}");
    assert_eq!(
        context["messages"],
        json!([
            {"sender": "human", "message": message},
            {"sender": "ai", "message": expected},
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_instance_refuses_new_sockets_and_generations_but_serves_reads() {
    let Some(mut c) = cluster_with(
        "a_draining_instance_refuses_new_sockets_and_generations_but_serves_reads",
        2,
        &|c| draining_node(c, LONG_DRAIN),
    )
    .await
    else {
        return;
    };
    let (_, ctx) = c.nodes[0].agent_and_context().await;
    let (mut watcher, _) = attach(&c.nodes[1], &ctx, None).await;
    let (mut asker, _) = attach(&c.nodes[0], &ctx, None).await;
    // A reply of hours: the drain lasts until the test stops it.
    let ack = asker
        .request(
            "add_message",
            json!({"message": "[tokens=1000000 pace_ms=10]"}),
        )
        .await;
    assert_eq!(ack["success"], true, "{ack}");
    let mut last = 0;
    read(&mut watcher, &mut last, 3).await;
    let (a_ws, a_http, org_key) = (
        c.nodes[0].ws_url(),
        c.nodes[0].server.http_url(),
        c.nodes[0].org_key.clone(),
    );

    let (draining, a) = c.nodes[0].shutdown();
    assert_eq!(asker.closed().await.0, 1001);
    // The drain has begun (the socket was told to move) and cannot have
    // ended (the reply runs for hours). A new socket: 503.
    match Ws::open_request(&a_ws, None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503)
        }
        Err(e) => panic!("expected an HTTP 503, got {e}"),
        Ok(_) => panic!("a draining instance accepted a socket"),
    }
    let http = reqwest::Client::new();
    let authed =
        |r: reqwest::RequestBuilder| r.header("authorization", format!("Bearer {org_key}"));
    // A REST call that would start a generation: 503, with a clear error.
    let r = authed(http.post(format!("{a_http}/chat")))
        .json(&json!({"context_id": ctx, "message": "hi"}))
        .send()
        .await
        .expect("http");
    assert_eq!(
        r.headers()["connection"],
        "close",
        "no keep-alive to a draining instance"
    );
    let (status, body) = crate::common::status_json(r).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("shutting down")),
        "{body}"
    );
    // Balancers see it leave: /ready answers 503.
    let r = http
        .get(format!("{a_http}/ready"))
        .send()
        .await
        .expect("http");
    let (status, body) = crate::common::status_json(r).await;
    assert_eq!((status, body["status"].as_str()), (503, Some("draining")));
    // Reads are still served.
    let r = authed(http.get(format!("{a_http}/context/{ctx}")))
        .send()
        .await
        .expect("http");
    assert_eq!(r.status().as_u16(), 200);

    // The client that moved to B stops the reply; the drain then ends by
    // itself, well before its timeout.
    let stop = watcher.request("stop_invocation", json!({})).await;
    assert_eq!(stop["success"], true, "{stop}");
    let (_, reason) = read(&mut watcher, &mut last, 1_000_000).await;
    assert_eq!(reason.as_deref(), Some("stopped"));
    draining.await.expect("shutdown task");
    assert_eq!(
        metric(
            &a,
            "tokenrelay_drain_generations_total{outcome=\"finished\"}"
        ),
        1
    );
    assert!(metric(&a, "tokenrelay_limit_refusals_total{limit=\"draining\"}") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_longer_than_the_drain_timeout_is_cut_with_reason_shutdown() {
    let Some(mut c) = cluster_with(
        "a_reply_longer_than_the_drain_timeout_is_cut_with_reason_shutdown",
        2,
        &|c| draining_node(c, Duration::from_millis(300)),
    )
    .await
    else {
        return;
    };
    let (_, ctx) = c.nodes[0].agent_and_context().await;
    let (mut watcher, _) = attach(&c.nodes[1], &ctx, None).await;
    let (mut asker, _) = attach(&c.nodes[0], &ctx, None).await;
    let message = "[tokens=1000000 pace_ms=10]";
    asker
        .request("add_message", json!({"message": message}))
        .await;
    let mut last = 0;
    let (mut text, _) = read(&mut watcher, &mut last, 3).await;
    let (draining, a) = c.nodes[0].shutdown();
    assert_eq!(asker.closed().await.0, 1001);
    // A reply of hours outlasts any drain timeout: it is cut, and says so
    // (SDKs report `stop_reason: shutdown` as `interrupted`).
    let (rest, reason) = read(&mut watcher, &mut last, 1_000_000).await;
    text.push_str(&rest);
    assert_eq!(reason.as_deref(), Some("shutdown"));
    let expected = ScriptedEngine::expected_reply(message);
    assert!(
        expected.starts_with(&text) && text.len() < expected.len(),
        "a prefix of the reply"
    );
    draining.await.expect("shutdown task");
    assert_eq!(
        metric(&a, "tokenrelay_drain_generations_total{outcome=\"cut\"}"),
        1
    );
    assert_eq!(
        metric(&a, "tokenrelay_replies_total{reason=\"shutdown\"}"),
        1
    );
    // What came of it is in the history, as for any reply cut short.
    let (_, context) = c.nodes[1]
        .get(&format!("/context/{ctx}"), &c.nodes[1].org_key)
        .await;
    assert_eq!(
        context["messages"][1],
        json!({"sender": "ai", "message": text})
    );
    // The survivor serves the context: the next reply runs whole.
    let (mut ws, _) = attach(&c.nodes[1], &ctx, Some(last)).await;
    ws.request("add_message", json!({"message": "[tokens=5]"}))
        .await;
    let (text, reason) = read(&mut ws, &mut last, 1000).await;
    assert_eq!(text, ScriptedEngine::expected_reply("[tokens=5]"));
    assert_eq!(reason.as_deref(), Some("complete"));
}

/// What a balancer routes new sockets to: the instances not draining.
type Live = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A socket attached to `ctx` on one of the `live` instances (the
/// `i`-th, or the next one when that one refuses: it began draining after
/// the list was read), resuming after `after`.
async fn attach_live(live: &Live, i: usize, ctx: &str, key: &str, after: Option<u64>) -> Ws {
    for attempt in 0..100 {
        let url = {
            let live = live.lock().unwrap();
            live[(i + attempt) % live.len()].clone()
        };
        let Ok(mut ws) = Ws::open_request(&url, None).await else {
            continue; // 503: draining
        };
        let mut params = json!({"context_id": ctx, "access_token": key});
        if let Some(after) = after {
            params["resume_after_seq"] = json!(after);
        }
        match ws.try_request("connect_to_context", params).await {
            Ok(result) => {
                assert_eq!(result["success"], true, "{result}");
                if after.is_some() {
                    assert_eq!(result["resumed"], true, "{result}");
                }
                return ws;
            }
            // Attached just as its drain began: told to move at once.
            Err((code, _)) => assert_eq!(code, 1001),
        }
    }
    panic!("no instance took the socket");
}

/// Reads notifications until the first response's stop (its reason) or
/// the server's close (its code); checks every `seq` follows the one
/// before.
async fn read_to_stop_or_close(
    ws: &mut Ws,
    last: &mut u64,
    text: &mut String,
) -> Result<String, u16> {
    loop {
        match ws.next_or_close().await {
            Ok(n) => {
                let s = seq(&n);
                assert_eq!(s, *last + 1, "no gap, no duplicate: {n}");
                *last = s;
                match n["method"].as_str() {
                    Some("on_token") => {
                        text.push_str(n["params"]["token"].as_str().unwrap_or_default())
                    }
                    Some("on_stop_token") => {
                        return Ok(n["params"]["reason"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned())
                    }
                    _ => {}
                }
            }
            Err((code, _)) => return Err(code),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_instance_during_20_replies_loses_nothing() {
    let drain: &(dyn Fn(&mut Config) + Sync) = &|c| draining_node(c, LONG_DRAIN);
    let Some(mut c) = cluster_with(
        "a_rolling_restart_of_every_instance_during_20_replies_loses_nothing",
        2,
        drain,
    )
    .await
    else {
        return;
    };
    let live: Live = std::sync::Arc::new(std::sync::Mutex::new(
        c.nodes.iter().map(|n| n.ws_url()).collect(),
    ));
    // 20 clients, half on each instance, each streaming a reply of a few
    // seconds (asked, so generated, where it attached).
    let (asked_tx, mut asked) = tokio::sync::mpsc::channel(20);
    let mut clients = Vec::new();
    for i in 0..20usize {
        let (_, ctx) = c.nodes[0].agent_and_context().await;
        let key = c.nodes[0].client_key(Some(&ctx), Some(600)).await;
        let message = format!("[tokens={} pace_ms=10]", 200 + 10 * i);
        let (live, asked_tx) = (live.clone(), asked_tx.clone());
        clients.push(tokio::spawn(async move {
            let mut ws = attach_live(&live, i, &ctx, &key, None).await;
            let ack = ws.request("add_message", json!({"message": message})).await;
            assert_eq!(ack["success"], true, "{ack}");
            asked_tx.send(()).await.expect("test waits");
            let (mut last, mut text, mut moves) = (0, String::new(), 0);
            let reason = loop {
                match read_to_stop_or_close(&mut ws, &mut last, &mut text).await {
                    Ok(reason) => break reason,
                    Err(code) => {
                        assert_eq!(code, 1001, "client {i}");
                        moves += 1;
                        ws = attach_live(&live, i, &ctx, &key, Some(last)).await;
                    }
                }
            };
            (message, text, reason, moves)
        }));
    }
    drop(asked_tx); // so a client that failed before asking ends the wait
    for _ in 0..20 {
        asked.recv().await.expect("every client asked");
    }

    // The rolling restart, as an orchestrator with surge does it: a new
    // instance, then the old one leaves the balancer and gets SIGTERM;
    // the next step does not wait for the old one's drain.
    let mut drains = Vec::new();
    for old in 0..2 {
        let new_url = c.add_node(drain).await.ws_url();
        live.lock().unwrap().push(new_url);
        let old_url = c.nodes[old].ws_url();
        live.lock().unwrap().retain(|u| *u != old_url);
        drains.push(c.nodes[old].shutdown());
    }

    let mut moved = 0;
    for client in clients {
        let (message, text, reason, moves) = client.await.expect("client task");
        assert_eq!(
            text,
            ScriptedEngine::expected_reply(&message),
            "{message}: the whole reply, no gap, no duplicate"
        );
        assert_eq!(reason, "complete", "{message}");
        moved += moves;
    }
    for (drain, state) in drains {
        drain.await.expect("shutdown task");
        assert_eq!(
            metric(
                &state,
                "tokenrelay_drain_generations_total{outcome=\"cut\"}"
            ),
            0,
            "every reply finished within its instance's drain"
        );
    }
    eprintln!("{moved} moves of 20 clients across the rolling restart");
}

// ---- Rate limits shared in Redis ----

/// Mints a client key on `node` with the org key: a rate-limited route.
async fn mint(node: &TestServer) -> u16 {
    node.post(
        "/generate-api-key",
        &node.org_key,
        json!({"org_id": node.org_id, "type": "client"}),
    )
    .await
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_instances() {
    let Some(c) = cluster_with(
        "a_rate_limit_holds_across_instances",
        2,
        &|c: &mut Config| c.rate_limit_requests = 3,
    )
    .await
    else {
        return;
    };
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    // Three of the org key's requests, spread over both instances…
    assert_eq!(mint(a).await, 200);
    assert_eq!(mint(b).await, 200);
    assert_eq!(mint(a).await, 200);
    // …use up its budget on both: per instance, each would allow three.
    assert_eq!(mint(b).await, 429);
    assert_eq!(mint(a).await, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_rate_limits_count_per_instance_and_rest_still_answers() {
    let Some(mut c) = cluster_with(
        "without_redis_rate_limits_count_per_instance_and_rest_still_answers",
        2,
        &|c: &mut Config| c.rate_limit_requests = 2,
    )
    .await
    else {
        return;
    };
    assert_eq!(mint(&c.nodes[0]).await, 200);
    assert_eq!(mint(&c.nodes[1]).await, 200);
    assert_eq!(mint(&c.nodes[0]).await, 429);
    c.redis.stop();
    // Redis is away: each instance counts alone (a fresh window here),
    // rather than refusing everything or failing the request.
    assert_eq!(mint(&c.nodes[0]).await, 200);
    assert_eq!(mint(&c.nodes[0]).await, 200);
    assert_eq!(mint(&c.nodes[0]).await, 429);
}

// ---- Socket caps per org shared in Redis ----

/// A socket on `node` asking to attach to `ctx` with `key`: the socket
/// and whether it was let in (a refusal must be the org cap's).
async fn try_attach(node: &TestServer, ctx: &str, key: &str) -> (Ws, bool) {
    let mut ws = Ws::open(&node.ws_url()).await;
    let r = ws.connect(ctx, Some(key), None).await;
    if r["success"] != true {
        assert_eq!(r["code"], "rate_limited", "refused by the org cap: {r}");
    }
    (ws, r["success"] == true)
}

/// Attaches to `ctx` on `node` again and again until let in (the slot a
/// socket frees is given back to Redis in the background); panics after
/// `within`.
async fn attach_within(node: &TestServer, ctx: &str, key: &str, within: Duration) -> Ws {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (ws, in_) = try_attach(node, ctx, key).await;
        if in_ {
            return ws;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never let in within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn org_cap(n: usize) -> impl Fn(&mut Config) + Sync {
    move |c: &mut Config| {
        c.limits.max_sockets_per_org = n;
        c.hub_lease = Duration::from_millis(600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_cap_per_org_holds_across_instances() {
    let Some(c) = cluster_with(
        "a_socket_cap_per_org_holds_across_instances",
        2,
        &org_cap(3),
    )
    .await
    else {
        return;
    };
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let (_, ctx) = a.agent_and_context().await;
    let key = a.client_key(Some(&ctx), Some(600)).await;
    // Three sockets over both instances fill the org's cap of three…
    let (first, in_) = try_attach(a, &ctx, &key).await;
    assert!(in_);
    let (_second, in_) = try_attach(b, &ctx, &key).await;
    assert!(in_);
    let (_third, in_) = try_attach(a, &ctx, &key).await;
    assert!(in_);
    // …on both: alone, each instance would let in three.
    assert!(!try_attach(b, &ctx, &key).await.1);
    assert!(!try_attach(a, &ctx, &key).await.1);
    // A socket closed on one instance frees a slot on the other.
    drop(first);
    let _fourth = attach_within(b, &ctx, &key, Duration::from_secs(10)).await;
    assert!(!try_attach(a, &ctx, &key).await.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_org_sockets_of_a_killed_instance_stop_counting_after_its_lease() {
    let Some(mut c) = cluster_with(
        "the_org_sockets_of_a_killed_instance_stop_counting_after_its_lease",
        2,
        &org_cap(2),
    )
    .await
    else {
        return;
    };
    let (_, ctx) = c.nodes[0].agent_and_context().await;
    let key = c.nodes[0].client_key(Some(&ctx), Some(600)).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let (ws, in_) = try_attach(&c.nodes[0], &ctx, &key).await;
        assert!(in_);
        held.push(ws);
    }
    assert!(!try_attach(&c.nodes[1], &ctx, &key).await.1);
    // A crash gives nothing back: the dead instance's count lapses with its
    // lease (600 ms after its last beat), and only then.
    c.nodes[0].kill();
    let killed = std::time::Instant::now();
    let _a = attach_within(&c.nodes[1], &ctx, &key, Duration::from_secs(10)).await;
    let _b = attach_within(&c.nodes[1], &ctx, &key, Duration::from_secs(1)).await;
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "freed within about a lease, took {:?}",
        killed.elapsed()
    );
    assert!(!try_attach(&c.nodes[1], &ctx, &key).await.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_instance_caps_its_own_org_sockets() {
    let Some(mut c) = cluster_with(
        "without_redis_each_instance_caps_its_own_org_sockets",
        2,
        &org_cap(2),
    )
    .await
    else {
        return;
    };
    c.redis.stop();
    // The cap's own check, below the socket: while Redis is away a socket
    // cannot stay attached anyway (the hub needs Redis), but the check must
    // neither refuse every org nor wait on Redis: each instance counts
    // alone, under the same cap.
    for node in &c.nodes {
        let orgs = &node.server.state().sockets_per_org;
        let first = orgs.enter(&node.org_id, 2).await;
        let second = orgs.enter(&node.org_id, 2).await;
        assert!(first.is_some() && second.is_some(), "counted here");
        assert!(orgs.enter(&node.org_id, 2).await.is_none(), "capped here");
        drop(first);
        assert!(
            orgs.enter(&node.org_id, 2).await.is_some(),
            "slot freed here"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_a_socket_is_refused_promptly_and_attaches_once_it_is_back() {
    let mut c = cluster!(
        "while_redis_is_away_a_socket_is_refused_promptly_and_attaches_once_it_is_back",
        2
    );
    let node = &c.nodes[0];
    let (_, ctx) = node.agent_and_context().await;
    let key = node.client_key(Some(&ctx), None).await;
    c.redis.stop();
    // The attachment needs the hub: it is refused with an answer the SDKs
    // act on (an error or a close code: reconnect with backoff), not left
    // waiting on the Redis client's reconnection schedule (about 9.5 s per
    // command with the crate's default).
    let started = std::time::Instant::now();
    let mut ws = Ws::open(&node.ws_url()).await;
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        ws.send_json(json!({"method": "connect_to_context",
            "params": {"context_id": ctx, "access_token": key}, "id": "c"}))
            .await;
        ws.next_or_close().await
    })
    .await
    .expect("an answer at all");
    let waited = started.elapsed();
    eprintln!("refused after {waited:?}: {answer:?}");
    match &answer {
        Ok(v) => assert_ne!(v["result"]["success"], true, "attached without Redis: {v}"),
        Err((code, _)) => assert_eq!(*code, 1011, "a close the SDKs reconnect after"),
    }
    assert!(
        waited < Duration::from_secs(5),
        "refused within the connection manager's two quick retries, not its default schedule: {waited:?}"
    );
    c.redis.start_again().expect("redis restarts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut ws = Ws::open(&node.ws_url()).await;
        if ws.connect(&ctx, Some(&key), None).await["success"] == true {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "attaches again once Redis is back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- What the store shares, through sockets on two instances ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_token_raced_on_two_instances_is_redeemed_once() {
    let c = cluster!("a_stream_token_raced_on_two_instances_is_redeemed_once", 2);
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let (_, ctx) = a.agent_and_context().await;
    for _ in 0..10 {
        let (_, body) = a.get("/api/v1/token", &a.org_key).await;
        let token = body["token"].as_str().expect("a stream token");
        let (x, y) = tokio::join!(
            Ws::attaches_with_stream_token(format!("{}?token={token}", a.ws_url()), ctx.clone()),
            Ws::attaches_with_stream_token(format!("{}?token={token}", b.ws_url()), ctx.clone())
        );
        assert!(x ^ y, "exactly one instance lets it in (a={x}, b={y})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_spent_on_two_instances_come_from_one_balance() {
    let c = cluster!("credits_spent_on_two_instances_come_from_one_balance", 2);
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let (_, ctx) = a.agent_and_context().await;
    a.server.set_credits(&a.org_id, Some(3)).await.unwrap();
    let (mut on_a, _) = attach(a, &ctx, None).await;
    let (mut on_b, _) = attach(b, &ctx, None).await;
    let mut answered = 0;
    for i in 0..6 {
        let ws = if i % 2 == 0 { &mut on_a } else { &mut on_b };
        let ack = ws.request("add_message", json!({"message": "x"})).await;
        if ack["success"] == true {
            answered += 1;
            // Both sockets see every reply; each waits for this one's end.
            on_a.collect(ack["response_id"].as_str()).await;
            on_b.collect(ack["response_id"].as_str()).await;
        } else {
            assert_eq!(ack["code"], "payment_required", "{ack}");
        }
    }
    assert_eq!(
        answered, 3,
        "three credits, three replies, whichever instance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_reply_loses_no_numbering_and_the_reply_ends() {
    let mut c = cluster!(
        "redis_restarted_mid_reply_loses_no_numbering_and_the_reply_ends",
        2
    );
    let (_, ctx) = c.nodes[0].agent_and_context().await;
    let (mut ws, _) = attach(&c.nodes[0], &ctx, None).await;
    let message = "[tokens=400 pace_ms=5]";
    let ack = ws.request("add_message", json!({"message": message})).await;
    assert_eq!(ack["success"], true, "{ack}");
    let mut last = 0;
    let (_, reason) = read(&mut ws, &mut last, 20).await;
    assert_eq!(reason, None, "mid-reply");
    // Redis without persistence restarts empty: the replay streams and
    // `seq` counters are gone.
    c.redis.stop();
    c.redis.start_again().expect("redis restarts");
    // The socket is told to reconnect (its live frames may be lost), never
    // left waiting in silence.
    let (_, _, code) = read_until_close(&mut ws, &mut last).await;
    assert_eq!(code, 1011, "reconnect and resume");
    // Back through the other instance, as a client does: reconnect and
    // resume until the reply ends (an instance whose pub/sub connection
    // comes back detaches its sockets once more: they may have missed
    // frames meanwhile). The numbering goes on above what was sent (every
    // instance keeps `seq` at or above what it has seen), and the reply
    // ends rather than hang.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let (mut again, stop) = 'resume: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reply never ended"
        );
        let key = c.nodes[1].client_key(Some(&ctx), None).await;
        let mut again = Ws::open(&c.nodes[1].ws_url()).await;
        let r = again.connect(&ctx, Some(&key), Some(last)).await;
        if r["success"] != true {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        while let Ok(n) = again.next_or_close().await {
            if let Some(s) = n["params"]["seq"].as_u64() {
                assert!(s > last, "no `seq` issued twice: {s} after {last}");
                last = s;
            }
            if n["method"] == "on_stop_token" {
                break 'resume (again, n);
            }
        }
    };
    assert!(stop["params"]["reason"].is_string(), "{stop}");
    // And the next reply, asked on the other instance, streams whole.
    let ack = again
        .request("add_message", json!({"message": "[tokens=5]"}))
        .await;
    let reply = again.collect(ack["response_id"].as_str()).await;
    assert_eq!(reply.text, ScriptedEngine::expected_reply("[tokens=5]"));
    assert_eq!(reply.reason.as_deref(), Some("complete"));
}
