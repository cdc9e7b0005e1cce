//! Counters for `GET /metrics`, rendered in the Prometheus text format.
//! Plain atomics and one small mutex: no metrics crate for a handful of
//! series.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the request-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Every series the server exports.
#[derive(Default)]
pub struct Metrics {
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    tokens_generated: AtomicU64,
    tokens_sent: AtomicU64,
    frames_sent: AtomicU64,
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    /// A socket opened.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }
    /// A socket closed.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
    /// Open sockets now.
    pub fn open_connections(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }
    /// The engine produced a token.
    pub fn token_generated(&self) {
        self.tokens_generated.fetch_add(1, Ordering::Relaxed);
    }
    /// A token was queued for `n` live sockets.
    pub fn tokens_sent(&self, n: u64) {
        self.tokens_sent.fetch_add(n, Ordering::Relaxed);
    }
    /// Frames written to sockets.
    pub fn frames_sent(&self, n: u64) {
        self.frames_sent.fetch_add(n, Ordering::Relaxed);
    }
    /// A credential was refused, for `reason` (a fixed label, never input).
    pub fn auth_failure(&self, reason: &'static str) {
        let mut map = self.auth_failures.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(reason).or_default() += 1;
    }
    /// A request or connection was refused by a limit named `limit` (a
    /// fixed label, never input).
    pub fn refused(&self, limit: &'static str) {
        let mut map = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(limit).or_default() += 1;
    }
    /// How often `limit` refused something (tests and tools).
    pub fn refusals(&self, limit: &str) -> u64 {
        let map = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        map.get(limit).copied().unwrap_or(0)
    }
    /// One HTTP request on `route` (the matched route pattern) took `took`.
    pub fn request_latency(&self, route: &str, took: Duration) {
        let secs = took.as_secs_f64();
        let mut map = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = map.entry(route.to_owned()).or_default();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "tokenrelay_ws_connections",
            "Open WebSocket connections.",
            "gauge",
            self.connections_open.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tokenrelay_ws_connections_total",
            "WebSocket connections accepted.",
            "counter",
            self.connections_total.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tokenrelay_tokens_generated_total",
            "Tokens produced by the agent engine.",
            "counter",
            self.tokens_generated.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tokenrelay_tokens_sent_total",
            "on_token notifications queued to live sockets (replays not included).",
            "counter",
            self.tokens_sent.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tokenrelay_ws_frames_sent_total",
            "Frames written to WebSocket clients (tokens and other notifications, replays, responses).",
            "counter",
            self.frames_sent.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP tokenrelay_auth_failures_total Refused credentials, by reason.\n# TYPE tokenrelay_auth_failures_total counter"
        );
        for (reason, n) in self
            .auth_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "tokenrelay_auth_failures_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tokenrelay_limit_refusals_total Requests and connections refused by a limit, by limit.\n# TYPE tokenrelay_limit_refusals_total counter"
        );
        for (limit, n) in self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "tokenrelay_limit_refusals_total{{limit=\"{limit}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tokenrelay_http_request_duration_seconds HTTP request latency, by route.\n# TYPE tokenrelay_http_request_duration_seconds histogram"
        );
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let name = "tokenrelay_http_request_duration_seconds";
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {}", h.count);
        }
        out
    }
}
