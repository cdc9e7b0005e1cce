//! Aggregate tokens/s delivered to 100 concurrent streaming clients (the
//! issue's second benchmark), server and raw WebSocket clients in one
//! process on 127.0.0.1. Prints one line; run with
//! `cargo bench -p tokenrelay-server --bench ws_throughput`.
//! `TOKENRELAY_BENCH_CLIENTS` and `TOKENRELAY_BENCH_TOKENS` override the
//! defaults (100 clients × 20,000 tokens).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // and only checks that this builds and runs briefly.
    let quick = !std::env::args().any(|a| a == "--bench");
    // `-- --short` (`cargo xtask bench --short`): every client, fewer tokens.
    let short = std::env::args().any(|a| a == "--short");
    let clients = if quick {
        2
    } else {
        env_or("TOKENRELAY_BENCH_CLIENTS", 100)
    };
    let tokens = if quick {
        100
    } else if short {
        2_000
    } else {
        env_or("TOKENRELAY_BENCH_TOKENS", 20_000)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let t = common::spawn().await;
        let agent = t.agent(json!({})).await;
        let mut sockets = Vec::new();
        for _ in 0..clients {
            let ctx = t.context(&agent).await;
            sockets.push(t.connected(&ctx).await);
        }
        let started = Instant::now();
        let mut tasks = Vec::new();
        for mut ws in sockets {
            tasks.push(tokio::spawn(async move {
                let ack = ws
                    .request(
                        "add_message",
                        json!({ "message": format!("[tokens={tokens}]") }),
                    )
                    .await;
                let rid = ack["response_id"].as_str().unwrap_or_default().to_owned();
                let mut received = 0usize;
                while let Some(frame) = ws.next_json().await {
                    if frame["method"] == "on_token" {
                        received += 1;
                    } else if frame["method"] == "on_stop_token"
                        && frame["params"]["response_id"] == rid.as_str()
                    {
                        break;
                    }
                }
                received
            }));
        }
        let mut total = 0usize;
        for task in tasks {
            total += task.await.unwrap_or(0);
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "ws_throughput: {clients} clients, {total} tokens in {secs:.2} s = {:.0} tokens/s",
            total as f64 / secs
        );
        // For `cargo xtask bench`.
        println!(
            "bench-result\tserver ws_throughput\ttokens/s to {clients} streaming clients\t{:.2} M\t",
            total as f64 / secs / 1e6
        );
        t.server.shutdown().await;
    });
}
