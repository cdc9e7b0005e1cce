//! The server as a cluster on Redis (issue #14's benchmarks), against the
//! same work on one instance with the in-process hub:
//!
//! 1. **Throughput**: pairs of sockets on one context, the asker on one
//!    instance and a watcher on the other, so every token of every reply
//!    crosses Redis (published by the generating instance, delivered by the
//!    other); tokens/s delivered to all sockets together.
//! 2. **Resume across instances**: a socket dies mid-reply and a fresh one
//!    on the *other* instance connects with `resume_after_seq`; the time
//!    from the death to the next token, p50 / p99 over 1,000 cuts.
//! 3. **Redis memory** per notification kept in the replay streams and per
//!    idle context (`MEMORY USAGE` of each context's keys).
//!
//! Both instances, the clients and Redis share the machine (2 cores when
//! measured), so the figures are a floor. Run with
//! `cargo bench -p tokenrelay-server --bench cluster` (`-- --short`:
//! fewer rounds; `TOKENRELAY_BENCH_PAIRS`, `_TOKENS`, `_RESUMES` and
//! `_CONTEXTS` size each part); `cargo test --all-targets` runs it tiny, to check it
//! works. Needs `redis-server` (as the cluster tests do: skipped without
//! it, except under CI). Figures: README "Benchmarks".

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/redis.rs"]
mod redis_server;

use std::time::Instant;

use common::{test_builder, TestServer, Ws};
use serde_json::json;
use tokenrelay_server::StoreConfig;

/// Shared by every instance: a key minted on one verifies on all.
const SECRET: &str = "cluster-bench-secret-of-at-least-32-bytes";

/// Every socket here mints a client key: the REST rate limit would stop
/// the bench, not a client.
fn unlimited(c: &mut tokenrelay_server::Config) {
    c.rate_limit_requests = u32::MAX;
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How much work each part does.
struct Sizes {
    pairs: usize,
    tokens: usize,
    resumes: usize,
    contexts: usize,
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not.
    let quick = !std::env::args().any(|a| a == "--bench");
    let short = std::env::args().any(|a| a == "--short");
    let sizes = if quick {
        Sizes {
            pairs: 2,
            tokens: 50,
            resumes: 3,
            contexts: 3,
        }
    } else if short {
        Sizes {
            pairs: 10,
            tokens: 1_000,
            resumes: 100,
            contexts: 100,
        }
    } else {
        // Each part can be sized apart (a profile of one part: the others
        // at 1).
        Sizes {
            pairs: env_or("TOKENRELAY_BENCH_PAIRS", 50),
            tokens: env_or("TOKENRELAY_BENCH_TOKENS", 5_000),
            resumes: env_or("TOKENRELAY_BENCH_RESUMES", 1_000),
            contexts: env_or("TOKENRELAY_BENCH_CONTEXTS", 1_000),
        }
    };
    let Some(redis) = redis_server::require("cluster bench") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(&redis, &sizes));
}

async fn run(redis: &redis_server::Redis, sizes: &Sizes) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");

    // One instance, the in-process hub: the baseline.
    let single = common::spawn_with(test_builder().configure(unlimited)).await;
    let single_tps = throughput(&single, &single, sizes).await;
    let single_resume = resumes(&single, &single, sizes).await;
    single.server.shutdown().await;

    // Two instances on one Redis and one SQLite file.
    let db = dir.path().join("store.sqlite3");
    let node = |url: String| {
        test_builder()
            .store(StoreConfig::Sqlite(db.clone()))
            .jwt_secret(SECRET)
            .configure(move |c| {
                unlimited(c);
                c.hub = Some(url);
            })
    };
    let a = node(redis.url()).spawn().await.expect("instance a");
    let (org_id, org_key) = a.bootstrap_org("bench-org").await.expect("bootstrap");
    let b = node(redis.url()).spawn().await.expect("instance b");
    let a = TestServer {
        server: a,
        org_id: org_id.clone(),
        org_key: org_key.clone(),
        http: reqwest::Client::new(),
    };
    let b = TestServer {
        server: b,
        org_id,
        org_key,
        http: reqwest::Client::new(),
    };
    let cluster_tps = throughput(&a, &b, sizes).await;
    let cluster_resume = resumes(&a, &b, sizes).await;
    let (notifications, log_bytes, seq_bytes) = redis_memory(&a, redis, sizes).await;

    println!(
        "cluster: {} pairs x {} tokens: one instance {:.0} tokens/s, two on Redis {:.0} tokens/s ({:.2}x)",
        sizes.pairs,
        sizes.tokens,
        single_tps,
        cluster_tps,
        cluster_tps / single_tps
    );
    println!(
        "cluster: from a socket's death to the next token on its successor, {} cuts, ms p50 / p99: same instance {:.2} / {:.2}, other instance via Redis {:.2} / {:.2}",
        sizes.resumes,
        pct(&single_resume, 50.0),
        pct(&single_resume, 99.0),
        pct(&cluster_resume, 50.0),
        pct(&cluster_resume, 99.0)
    );
    let per = log_bytes as f64 / notifications.max(1) as f64;
    let idle = seq_bytes as f64 / sizes.contexts.max(1) as f64;
    println!(
        "cluster: Redis keeps {notifications} notifications of {} contexts in {log_bytes} bytes = {per:.0} bytes each; an idle context (its counter) {idle:.0} bytes",
        sizes.contexts
    );
    // For `cargo xtask bench`.
    println!(
        "bench-result\tserver cluster\ttokens/s, two instances on Redis (one in process)\t{:.2} M\t{:.2} M",
        cluster_tps / 1e6,
        single_tps / 1e6
    );
    println!(
        "bench-result\tserver cluster\tsocket death to next token on the other instance, ms p50 / p99 (same instance)\t{:.2} / {:.2}\t{:.2} / {:.2}",
        pct(&cluster_resume, 50.0),
        pct(&cluster_resume, 99.0),
        pct(&single_resume, 50.0),
        pct(&single_resume, 99.0)
    );
    println!("bench-result\tserver cluster\tRedis bytes per kept notification\t{per:.0}\t");
    println!("bench-result\tserver cluster\tRedis bytes per idle context\t{idle:.0}\t");
    a.server.shutdown().await;
    b.server.shutdown().await;
}

/// Tokens/s delivered to `pairs` askers on `asker` and as many watchers on
/// `watcher` (each pair on a context of its own).
async fn throughput(asker: &TestServer, watcher: &TestServer, sizes: &Sizes) -> f64 {
    let agent = asker.agent(json!({})).await;
    let mut pairs = Vec::new();
    for _ in 0..sizes.pairs {
        let ctx = asker.context(&agent).await;
        pairs.push((asker.connected(&ctx).await, watcher.connected(&ctx).await));
    }
    let message = format!("[tokens={}]", sizes.tokens);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mut ask, mut watch) in pairs {
        let message = message.clone();
        tasks.push(tokio::spawn(async move {
            let ack = ask
                .request("add_message", json!({ "message": message }))
                .await;
            let rid = ack["response_id"].as_str().unwrap_or_default().to_owned();
            let (mine, theirs) = tokio::join!(tokens(&mut ask, &rid), tokens(&mut watch, &rid));
            mine + theirs
        }));
    }
    let mut total = 0usize;
    for task in tasks {
        total += task.await.unwrap_or(0);
    }
    assert_eq!(
        total,
        2 * sizes.pairs * sizes.tokens,
        "every token delivered"
    );
    total as f64 / started.elapsed().as_secs_f64()
}

/// Tokens read until the stop of response `rid`.
async fn tokens(ws: &mut Ws, rid: &str) -> usize {
    let mut n = 0;
    while let Some(frame) = ws.next_json().await {
        if frame["method"] == "on_token" {
            n += 1;
        } else if frame["method"] == "on_stop_token" && frame["params"]["response_id"] == rid {
            break;
        }
    }
    n
}

/// The reply each resume round cuts: its socket dies after token
/// [`CUT_AT`], while the reply goes on.
const CUT_REPLY: &str = "[tokens=60 pace_ms=1]";
const CUT_AT: usize = 20;

/// Milliseconds from a socket's death to the first token on its successor:
/// a reply asked on `asker` streams to a socket there; after token
/// [`CUT_AT`] that socket is dropped (the TCP connection closes, no close
/// frame) and a fresh one on `resumer` connects with `resume_after_seq`
/// and reads the next token (replayed, or live if it was not sent yet).
/// The key is minted beforehand, as an SDK's refresh-ahead has it; no
/// reconnect policy delay is in it (the SDK's own floor comes on top).
async fn resumes(asker: &TestServer, resumer: &TestServer, sizes: &Sizes) -> Vec<f64> {
    let (_, ctx) = asker.agent_and_context().await;
    let key = resumer.client_key(Some(&ctx), Some(3_600)).await;
    let mut times = Vec::new();
    for _ in 0..sizes.resumes {
        let mut ws = asker.connected(&ctx).await;
        let ack = ws
            .request("add_message", json!({ "message": CUT_REPLY }))
            .await;
        let rid = ack["response_id"].as_str().unwrap_or_default().to_owned();
        let (mut seen, mut last) = (0, 0);
        while seen < CUT_AT {
            let frame = ws.next_json().await.expect("streaming");
            last = frame["params"]["seq"].as_u64().unwrap_or(last);
            if frame["method"] == "on_token" {
                seen += 1;
            }
        }
        let died = Instant::now();
        ws.cut();
        let mut again = Ws::open(&resumer.ws_url()).await;
        let r = again.connect(&ctx, Some(&key), Some(last)).await;
        assert_eq!(r["success"], true, "{r}");
        loop {
            let frame = again.next_json().await.expect("resumed");
            if frame["method"] == "on_token" {
                times.push(died.elapsed().as_secs_f64() * 1e3);
                break;
            }
        }
        // The rest of the reply, so the next round's starts afresh.
        tokens(&mut again, &rid).await;
        again.close().await;
    }
    times.sort_by(f64::total_cmp);
    times
}

/// What Redis holds for `contexts` fresh contexts with one 100-token
/// reply each: the notifications kept, the bytes of their replay streams,
/// and the bytes of their `seq` counters (what an idle context keeps once
/// its stream has expired). `MEMORY USAGE … SAMPLES 0`: exact, and blind
/// to other keys expiring meanwhile.
async fn redis_memory(
    node: &TestServer,
    redis: &redis_server::Redis,
    sizes: &Sizes,
) -> (u64, u64, u64) {
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let agent = node.agent(json!({})).await;
    let (mut kept, mut log_bytes, mut seq_bytes) = (0, 0, 0);
    for _ in 0..sizes.contexts {
        let ctx = node.context(&agent).await;
        let mut ws = node.connected(&ctx).await;
        let ack = ws
            .request("add_message", json!({ "message": "[tokens=100]" }))
            .await;
        let rid = ack["response_id"].as_str().unwrap_or_default().to_owned();
        let mut last = 0;
        while let Some(frame) = ws.next_json().await {
            last = frame["params"]["seq"].as_u64().unwrap_or(0).max(last);
            if frame["method"] == "on_stop_token" && frame["params"]["response_id"] == rid.as_str()
            {
                break;
            }
        }
        kept += last;
        ws.close().await;
        // A context's keys (`src/conversation/redis/`).
        let usage = |what: &str| {
            redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(format!("tokenrelay:{{{ctx}}}:{what}"))
                .arg("SAMPLES")
                .arg(0)
                .clone()
        };
        let log: Option<u64> = usage("log")
            .query_async(&mut conn)
            .await
            .expect("MEMORY USAGE");
        let seq: Option<u64> = usage("seq")
            .query_async(&mut conn)
            .await
            .expect("MEMORY USAGE");
        log_bytes += log.expect("the context's stream exists");
        seq_bytes += seq.expect("the context's counter exists");
    }
    (kept, log_bytes, seq_bytes)
}

/// The `p`th percentile of sorted `values`.
fn pct(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[i.min(values.len() - 1)]
}
