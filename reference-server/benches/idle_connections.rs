//! RSS per idle authenticated WebSocket connection (the first
//! benchmark): starts the release server binary as its own process, opens
//! N sockets that each complete `connect_to_context`, and reads the
//! server's `VmRSS` before and after (Linux). Run with
//! `cargo bench -p tokenrelay-server --bench idle_connections`;
//! `TOKENRELAY_BENCH_CONNECTIONS` overrides N (default 10,000; mind
//! `ulimit -n`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Ws;
use serde_json::{json, Value};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    // `-- --short` (`cargo xtask bench --short`): 1,000 sockets.
    let short = std::env::args().any(|a| a == "--short");
    let n: usize = if quick {
        20
    } else if short {
        1_000
    } else {
        std::env::var("TOKENRELAY_BENCH_CONNECTIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000)
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("bench.sqlite3");
    let exe = env!("CARGO_BIN_EXE_tokenrelay-server");
    let out = Command::new(exe)
        .args(["--db", db.to_str().unwrap_or_default(), "bootstrap"])
        .output()
        .expect("bootstrap runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("org_api_key="))
        .expect("org key printed")
        .to_owned();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let server = Server(
        Command::new(exe)
            .args([
                "--db",
                db.to_str().unwrap_or_default(),
                "--bind",
                &addr.to_string(),
                "--max-connections",
                &(n + 10).to_string(),
                // Every socket comes from this one address and org.
                "--max-sockets-per-ip",
                &(n + 10).to_string(),
                "--max-sockets-per-org",
                &(n + 10).to_string(),
                "--max-tcp-connections-per-ip",
                "0",
            ])
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts"),
    );
    let pid = server.0.id();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let base = format!("http://{addr}");
        let http = reqwest::Client::new();
        let mut agent = Value::Null;
        for _ in 0..100 {
            if let Ok(r) = http
                .post(format!("{base}/agent"))
                .bearer_auth(&key)
                .json(&json!({"agent_name": "bench", "prompt": ""}))
                .send()
                .await
            {
                agent = r.json().await.unwrap_or_default();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ctx: Value = http
            .post(format!("{base}/context"))
            .bearer_auth(&key)
            .json(&json!({"agent_id": agent["agent_id"]}))
            .send()
            .await
            .expect("context")
            .json()
            .await
            .expect("context json");
        let ctx = ctx["context_id"].as_str().unwrap_or_default().to_owned();
        let before = rss_kib(pid).unwrap_or(0);
        let mut sockets = Vec::with_capacity(n);
        for _ in 0..n {
            let mut ws = Ws::open(&format!("ws://{addr}/ws")).await;
            let r = ws.connect(&ctx, Some(&key), None).await;
            assert_eq!(r["success"], true, "{r}");
            sockets.push(ws);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss_kib(pid).unwrap_or(0);
        println!(
            "idle_connections: {n} connected sockets, server RSS {before} KiB -> {after} KiB = {:.1} KiB per connection",
            after.saturating_sub(before) as f64 / n as f64
        );
        // For `cargo xtask bench`.
        println!(
            "bench-result\tserver idle_connections\tRSS per idle authenticated socket ({n})\t{:.1} KiB\t",
            after.saturating_sub(before) as f64 / n as f64
        );
        drop(sockets);
    });
    drop(server);
}
