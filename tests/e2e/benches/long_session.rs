//! Memory over a long session: thousands of replies on one connection to
//! one context, with the resident memory of the server (the release binary,
//! a process of its own) and of the client (this process, the Rust SDK)
//! read at intervals. Both must level off after warm-up: the server bounds
//! a context's history (entries and bytes) and its replay buffer, the
//! client keeps a bounded number of completed responses.
//!
//! `cargo bench -p tokenrelay-e2e --bench long_session [-- --short]`
//!
//! Figures are printed, never asserted (memory is judged in
//! `docs/benchmarks.md`, like speed). Every reply is checked whole. Runs
//! `target/release/tokenrelay-server` (built first: `process::server_binary`)
//! or `TOKENRELAY_SERVER_BIN`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokenrelay::rest::{NewAgent, NewContext};
use tokenrelay::{AdminClient, Client};
use tokenrelay_e2e::process::{bootstrap, ServerProcess};

/// Resident memory of process `pid` in MiB, from `/proc/<pid>/status`.
fn rss_mib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The release server in a process of its own, on a fresh store, with
/// its org.
struct Server {
    process: ServerProcess,
    org_id: String,
    org_key: String,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_server() -> Server {
    let dir = std::env::temp_dir().join(format!("tokenrelay-long-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dir = TempDir(dir);
    let db = dir.0.join("store.sqlite3");
    let mut args: Vec<String> = [
        "--db",
        db.to_str().expect("utf-8 path"),
        "--rate-limit-per-minute",
        "1000000",
        "--scripted-pace-ms",
        "0",
    ]
    .map(str::to_owned)
    .to_vec();
    let (org_id, org_key) = bootstrap(&args, "long-session");
    // A client asking back to back sends more than the default 16 frames a
    // second a socket may (an abuse limit, tested by the server's own
    // suite).
    args.extend(
        [
            "--socket-frame-burst",
            "100000",
            "--socket-frames-per-sec",
            "100000",
        ]
        .map(str::to_owned),
    );
    Server {
        process: ServerProcess::start(&args),
        org_id,
        org_key,
        _dir: dir,
    }
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("long_session: run with `cargo bench -p tokenrelay-e2e --bench long_session`");
        return;
    }
    let short = std::env::args().any(|a| a == "--short");
    let (replies, every) = if short { (2_000, 500) } else { (10_000, 1_000) };
    let server = start_server();
    let server_pid = server.process.pid().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let admin = AdminClient::new(&server.process.http_url, &server.org_key).expect("admin");
        let agent = admin
            .create_agent(&NewAgent::new("long", "long session", ""))
            .await
            .expect("agent");
        let ctx = admin
            .create_context(&NewContext::new(agent.agent_id))
            .await
            .expect("context")
            .context_id;
        let org_id = server.org_id.clone();
        let client = Client::builder(server.process.ws_url.clone())
            .token_provider(tokenrelay_e2e::key_minter(admin, org_id))
            .build()
            .expect("client");
        let conn = client.connect(&ctx).await.expect("connects");
        let expected: String = (0..50)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "long session, Rust SDK, {replies} replies of 50 tokens on one context{}",
            if short { " (short)" } else { "" }
        );
        println!(
            "  {:>7} {:>10} {:>10} {:>9}",
            "replies", "server MiB", "client MiB", "replies/s"
        );
        println!(
            "  {:>7} {:>10.1} {:>10.1}",
            0,
            rss_mib(&server_pid),
            rss_mib("self")
        );
        let mut since = Instant::now();
        let mut last = (0.0, 0.0, 0.0);
        for i in 1..=replies {
            let r = tokio::time::timeout(Duration::from_secs(30), conn.ask("[tokens=50]"))
                .await
                .expect("a reply within 30 s")
                .expect("a reply");
            assert_eq!(r.text, expected, "reply {i} whole");
            if i % every == 0 {
                let rate = every as f64 / since.elapsed().as_secs_f64();
                last = (rss_mib(&server_pid), rss_mib("self"), rate);
                println!(
                    "  {:>7} {:>10.1} {:>10.1} {:>9.0}",
                    i, last.0, last.1, last.2
                );
                since = Instant::now();
            }
        }
        conn.close().await;
        // For `cargo xtask bench`.
        for (metric, value) in [
            ("server RSS", format!("{:.1} MiB", last.0)),
            ("client RSS", format!("{:.1} MiB", last.1)),
            ("replies/s", format!("{:.0}", last.2)),
        ] {
            println!(
                "bench-result\te2e long_session\t{metric} after {replies} replies of 50 tokens\t{value}\t"
            );
        }
    });
}
