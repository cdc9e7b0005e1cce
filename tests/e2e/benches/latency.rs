//! Latency as a person watching a reply feels it, through the Rust SDK
//! against the reference server over loopback: what the relay and SDK add
//! to the first token, how evenly tokens arrive, and how long the text
//! freezes when the socket dies, for each kind of fault.
//!
//! `cargo bench -p tokenrelay-e2e --bench latency [-- --short]`
//!
//! Each figure is measured twice in one run, with the server's
//! `TCP_NODELAY` off and on, so the table shows what Nagle's algorithm
//! costs side by side. Figures are printed, never asserted: speed is judged
//! in `docs/benchmarks.md`, not by a timed test. `--short` runs fewer
//! rounds (CI runs it so, on the test profile's build: `cargo xtask
//! test`). The server runs on a runtime (and worker thread) of its own,
//! the client on another, as two processes would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenrelay::ReconnectPolicy;
use tokenrelay::{Client, Connection, Event};
use tokenrelay_e2e::{builder, Harness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound of one wait, so a bug fails the bench instead of hanging it.
const WAIT: Duration = Duration::from_secs(30);

/// Milliseconds, summarised.
struct Stats(Vec<f64>);

impl Stats {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[i.min(v.len() - 1)]
    }
    fn row(&self) -> String {
        format!(
            "{:>8.2} {:>8.2} {:>8.2} {:>6}",
            self.pct(50.0),
            self.pct(99.0),
            self.pct(100.0),
            self.0.len()
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One reply: when it was asked and when each of its tokens arrived.
/// `on_token(i)` runs as token `i` arrives (a fault is injected there).
async fn timed_reply(
    conn: &mut Connection,
    text: &str,
    mut on_token: impl FnMut(usize),
) -> (Instant, Vec<Instant>) {
    let asked = Instant::now();
    let request = conn.send_message(text).await.expect("sent");
    let mut mine = None;
    let mut arrivals = Vec::new();
    loop {
        let event = tokio::time::timeout(WAIT, conn.next_event())
            .await
            .expect("the reply keeps coming")
            .expect("the connection is open");
        match event {
            Event::ResponseStarted {
                response_id,
                request_id,
            } if request_id == Some(request) => mine = Some(response_id),
            Event::Token { response_id, .. } if Some(&response_id) == mine.as_ref() => {
                arrivals.push(Instant::now());
                on_token(arrivals.len());
            }
            Event::ResponseComplete(r) if r.request_id == Some(request) => {
                assert_eq!(r.status.as_str(), "complete", "{r:?}");
                return (asked, arrivals);
            }
            _ => {}
        }
    }
}

/// The longest gap between two tokens of a 200-token reply, in ms, after
/// checking that every token arrived exactly once.
fn worst_gap(arrivals: &[Instant]) -> f64 {
    assert_eq!(arrivals.len(), 200, "every token, exactly once");
    arrivals
        .windows(2)
        .map(|w| ms(w[1] - w[0]))
        .fold(0.0, f64::max)
}

/// A TCP proxy between the client and the server that can make the
/// connections it carries go silent (packets just stop, nothing closes),
/// as a network that drops a flow does.
struct Proxy {
    addr: std::net::SocketAddr,
    /// Connections numbered below this are black holes.
    silent_below: Arc<AtomicU64>,
    next: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let silent_below = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let (silent, counter) = (silent_below.clone(), next.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let id = counter.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, id, silent.clone()));
                tokio::spawn(pipe(sr, cw, id, silent.clone()));
            }
        });
        Proxy {
            addr,
            silent_below,
            next,
        }
    }

    /// Every connection open now goes silent; new ones pass.
    fn black_hole(&self) {
        self.silent_below
            .store(self.next.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    id: u64,
    silent_below: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // A black hole reads and forgets: the sender sees no error.
        if id < silent_below.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The client under test: a client key per call, after `provider_delay`
/// (a backend's own time), against `ws_url`.
fn client(
    h: &Harness,
    ws_url: String,
    provider_delay: Duration,
    keepalive: bool,
    refresh_ahead: bool,
) -> Client {
    let admin = h.admin.clone();
    let org_id = h.org_id.clone();
    let mut b = Client::builder(ws_url).token_provider(move |ctx: String| {
        let admin = admin.clone();
        let org_id = org_id.clone();
        async move {
            if !provider_delay.is_zero() {
                tokio::time::sleep(provider_delay).await;
            }
            admin
                .generate_client_key(&org_id, Some(&ctx), None)
                .await
                .map(|k| k.token)
        }
    });
    if keepalive {
        b = b.keepalive(
            Some(Duration::from_millis(500)),
            Some(Duration::from_secs(2)),
        );
    }
    // Each cut here follows a connection that streamed normally, as a
    // blink on a good network does; the default policy counts only a
    // connection up for 5 s as healthy and backs off between the quick
    // cuts of a bench (flapping protection, measured by its own tests).
    b = b.reconnect(ReconnectPolicy::default().with_stable_after(Duration::ZERO));
    b.refresh_ahead(refresh_ahead).build().expect("client")
}

struct Figures {
    rows: Vec<(String, Stats)>,
}

impl Figures {
    fn push(&mut self, name: impl Into<String>, stats: Stats) {
        let name = name.into();
        println!("  {name:<52} {}", stats.row());
        self.rows.push((name, stats));
    }
}

async fn measure(h: &Harness, rounds: usize) -> Figures {
    let mut f = Figures { rows: Vec::new() };
    let ctx = h.context("", false).await;

    // Time to first token minus the engine's own pace.
    let c = client(h, h.server.ws_url(), Duration::ZERO, false, true);
    let mut conn = c.connect(&ctx).await.expect("connects");
    for pace in [20u64, 0] {
        let mut added = Vec::new();
        for _ in 0..rounds {
            let (asked, arrivals) =
                timed_reply(&mut conn, &format!("[tokens=3 pace_ms={pace}]"), |_| {}).await;
            added.push(ms(arrivals[0] - asked) - pace as f64);
        }
        f.push(format!("first token - pace (pace {pace} ms)"), Stats(added));
    }

    // Evenness: gaps between tokens at a model's pace, and at full speed.
    let mut jitter = Vec::new();
    for _ in 0..(rounds / 10).max(2) {
        let (_, arrivals) = timed_reply(&mut conn, "[tokens=50 pace_ms=20]", |_| {}).await;
        for w in arrivals.windows(2) {
            jitter.push((ms(w[1] - w[0]) - 20.0).abs());
        }
    }
    f.push("|gap - 20 ms| (pace 20 ms)", Stats(jitter));
    let (_, arrivals) = timed_reply(&mut conn, "[tokens=5000]", |_| {}).await;
    let gaps = arrivals.windows(2).map(|w| ms(w[1] - w[0])).collect();
    f.push("gap at full speed (5,000 tokens)", Stats(gaps));
    conn.close().await;

    // The freeze when the socket dies after token 100 of 200 (pace 2 ms):
    // the longest gap between two tokens, minus the pace.
    let cuts = (rounds / 4).max(3);
    // With a 100 ms provider, refresh-ahead off (the key fetched on
    // reconnect, as before issue #11) and on (the spare fetched ahead).
    let slow = Duration::from_millis(100);
    for (delay, refresh) in [(Duration::ZERO, true), (slow, false), (slow, true)] {
        let c = client(h, h.server.ws_url(), delay, false, refresh);
        let mut conn = c.connect(&ctx).await.expect("connects");
        for fault in ["close_1001", "close_1011", "close_4001", "drop"] {
            let mut freezes = Vec::new();
            for _ in 0..cuts {
                let (_, arrivals) = timed_reply(&mut conn, "[tokens=200 pace_ms=2]", |i| {
                    if i == 100 {
                        // Off the reading path: the reader keeps timing.
                        let http = h.server.http_url();
                        let key = h.org_key.clone();
                        let ctx = ctx.clone();
                        tokio::spawn(async move {
                            let _ = reqwest::Client::new()
                                .post(format!("{http}/debug/faults"))
                                .bearer_auth(key)
                                .json(&serde_json::json!({"context_id": ctx, "fault": fault}))
                                .send()
                                .await;
                        });
                    }
                })
                .await;
                freezes.push(worst_gap(&arrivals) - 2.0);
            }
            f.push(
                format!(
                    "freeze, {fault}, provider {} ms{}",
                    delay.as_millis(),
                    if delay.is_zero() {
                        ""
                    } else if refresh {
                        ", ahead"
                    } else {
                        ", on demand"
                    }
                ),
                Stats(freezes),
            );
        }
        conn.close().await;
    }

    // A silent drop: the network stops carrying the flow and nothing
    // closes. Only the client's keepalive can tell (here: ping after
    // 500 ms quiet, dead after 2 s silent).
    let proxy = Proxy::start(h.server.addr()).await;
    let c = client(
        h,
        format!("ws://{}/ws", proxy.addr),
        Duration::ZERO,
        true,
        true,
    );
    let mut conn = c.connect(&ctx).await.expect("connects");
    let mut freezes = Vec::new();
    for _ in 0..(rounds / 20).max(2) {
        let (_, arrivals) = timed_reply(&mut conn, "[tokens=200 pace_ms=2]", |i| {
            if i == 100 {
                proxy.black_hole();
            }
        })
        .await;
        freezes.push(worst_gap(&arrivals));
    }
    f.push("freeze, silent drop (idle timeout 2 s)", Stats(freezes));
    conn.close().await;
    f
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`:
    // the suite takes minutes, so a plain test run only says how to run
    // it. CI asks for it on purpose (`cargo test --bench latency --
    // --bench --short`, see xtask): a debug build's figures are only good
    // for spotting a Nagle delay or a sleep, side by side.
    if !std::env::args().any(|a| a == "--bench") {
        println!("latency: run with `cargo xtask latency` (or `cargo bench -p tokenrelay-e2e --bench latency`)");
        return;
    }
    let short = std::env::args().any(|a| a == "--short");
    let rounds = if short { 20 } else { 200 };
    // Server and client each get a runtime with one worker, as two
    // processes on the 2-core machine would.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    println!(
        "latency, Rust SDK, loopback, {rounds} rounds{}: ms p50 p99 max n",
        if short { " (short)" } else { "" }
    );
    let mut runs = Vec::new();
    for nodelay in [false, true] {
        println!("server TCP_NODELAY {}:", if nodelay { "on" } else { "off" });
        let h = server_rt.block_on(Harness::start_with(
            builder().configure(|c| c.tcp_nodelay = nodelay),
        ));
        let figures = client_rt.block_on(measure(&h, rounds));
        server_rt.block_on(h.server.shutdown());
        runs.push(figures);
    }
    println!("\nside by side (p50 / p99, ms): NODELAY off -> on");
    for (off, on) in runs[0].rows.iter().zip(&runs[1].rows) {
        println!(
            "  {:<52} {:>7.2} / {:>7.2}  ->  {:>7.2} / {:>7.2}",
            off.0,
            off.1.pct(50.0),
            off.1.pct(99.0),
            on.1.pct(50.0),
            on.1.pct(99.0)
        );
    }
    // For `cargo xtask bench`: today's server (NODELAY on).
    for (name, stats) in &runs[1].rows {
        println!(
            "bench-result\te2e latency (Rust SDK)\t{name}, ms p50 / p99\t{:.2} / {:.2}\t",
            stats.pct(50.0),
            stats.pct(99.0)
        );
    }
}
