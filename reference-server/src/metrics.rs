//! Counters for `GET /metrics`, rendered in the Prometheus text format.
//! Plain atomics and one small mutex: no metrics crate for a handful of
//! series.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds (seconds) of the request-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Upper bounds (seconds) of the time-to-first-token buckets: an
/// upstream model answers in tens of milliseconds to seconds.
const FIRST_TOKEN_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Notifications held in a server's replay buffers (the `resume`
/// extension): a gauge the buffers keep themselves as they fill and drain.
/// Each server's [`Metrics`] owns one and renders it; its hubs hold clones
/// (two servers in one process, as in the tests, count apart).
#[derive(Clone, Default)]
pub struct ReplayGauge(Arc<AtomicU64>);

impl ReplayGauge {
    /// `n` notifications entered a buffer.
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` notifications left a buffer (evicted, or the buffer dropped).
    pub(crate) fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// Notifications held now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], secs: f64) {
        for (i, bound) in bounds.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        use std::fmt::Write as _;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in bounds.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                self.buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

/// Adds one to `key` of a labelled counter.
fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    *map.entry(key).or_default() += 1;
}

/// Writes a labelled counter: its help, type and one line per label value.
fn counter_by(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    map: &Mutex<BTreeMap<&'static str, u64>>,
) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, n) in map.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
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
    /// `served` / `refused`.
    resumes: Mutex<BTreeMap<&'static str, u64>>,
    replies: Mutex<BTreeMap<&'static str, u64>>,
    engine_errors: Mutex<BTreeMap<&'static str, u64>>,
    request_refusals: Mutex<BTreeMap<&'static str, u64>>,
    first_token: Mutex<Histogram>,
    replay_frames: ReplayGauge,
    webhook_calls: crate::engine::webhook::WebhookCounter,
    /// Generations in flight when a drain began: `finished` / `cut`.
    drained: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// The gauge of this server's replay buffers, for its hubs to keep.
    pub fn replay_gauge(&self) -> ReplayGauge {
        self.replay_frames.clone()
    }
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
    /// A socket asked to resume: `served` (the buffer still held what it
    /// missed, replayed) or not (its replies in flight end `interrupted`).
    pub fn resume(&self, served: bool) {
        bump(&self.resumes, if served { "served" } else { "refused" });
    }
    /// A reply ended, with its stop reason (`complete`, `stopped`,
    /// `error`).
    pub fn reply_ended(&self, reason: &'static str) {
        bump(&self.replies, reason);
    }
    /// A drain ended: of the generations in flight (queued or running)
    /// when it began, `finished` ended by themselves and `cut` were still
    /// running when the drain timeout lapsed.
    pub fn drain_ended(&self, finished: u64, cut: u64) {
        let mut map = self.drained.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry("finished").or_default() += finished;
        *map.entry("cut").or_default() += cut;
    }
    /// The engine failed a reply, for `kind` (see
    /// [`crate::engine::EngineError::kind`]).
    pub fn engine_error(&self, kind: &'static str) {
        bump(&self.engine_errors, kind);
    }
    /// A WebSocket request was refused with error code `code` (the
    /// `error_codes` extension's fixed codes, never input).
    pub fn request_refused(&self, code: &'static str) {
        bump(&self.request_refusals, code);
    }
    /// A reply's first token came `took` after its engine started.
    pub fn first_token(&self, took: Duration) {
        let mut h = self.first_token.lock().unwrap_or_else(|p| p.into_inner());
        h.observe(&FIRST_TOKEN_BUCKETS, took.as_secs_f64());
    }
    /// The counter webhook tool calls count into, by outcome.
    pub fn webhook_counter(&self) -> crate::engine::webhook::WebhookCounter {
        self.webhook_calls.clone()
    }
    /// Webhook tool calls so far with `outcome` (tests and tools).
    pub fn webhook_calls(&self, outcome: &str) -> u64 {
        self.webhook_calls.get(outcome)
    }
    /// How often `limit` refused something (tests and tools).
    pub fn refusals(&self, limit: &str) -> u64 {
        let map = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        map.get(limit).copied().unwrap_or(0)
    }
    /// One HTTP request on `route` (the matched route pattern) took `took`.
    pub fn request_latency(&self, route: &str, took: Duration) {
        let mut map = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = map.entry(route.to_owned()).or_default();
        h.observe(&LATENCY_BUCKETS, took.as_secs_f64());
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
            h.render(
                &mut out,
                "tokenrelay_http_request_duration_seconds",
                &format!("route=\"{route}\""),
                &LATENCY_BUCKETS,
            );
        }
        counter_by(
            &mut out,
            "tokenrelay_resumes_total",
            "Sockets that asked to resume, by outcome: served (replayed) or refused (the buffer no longer held what they missed: their replies in flight end interrupted).",
            "outcome",
            &self.resumes,
        );
        counter_by(
            &mut out,
            "tokenrelay_replies_total",
            "Replies ended, by stop reason (complete, stopped, error, round_limit, tool_timeout, shutdown).",
            "reason",
            &self.replies,
        );
        counter_by(
            &mut out,
            "tokenrelay_drain_generations_total",
            "Generations in flight when a shutdown drain began, by outcome: finished (within --drain-timeout-secs) or cut (stop_reason shutdown).",
            "outcome",
            &self.drained,
        );
        counter_by(
            &mut out,
            "tokenrelay_engine_errors_total",
            "Replies the engine failed, by kind (timeout, unreachable, upstream, prompt_too_large, scripted, other).",
            "kind",
            &self.engine_errors,
        );
        counter_by(
            &mut out,
            "tokenrelay_ws_request_refusals_total",
            "WebSocket requests answered with an error, by error code.",
            "code",
            &self.request_refusals,
        );
        let _ = writeln!(
            out,
            "# HELP tokenrelay_webhook_calls_total Webhook tool calls, by outcome (ok, refused, timeout, unreachable, http_error, too_large, bad_answer, tool_error, not_configured).\n# TYPE tokenrelay_webhook_calls_total counter"
        );
        for (outcome, n) in self.webhook_calls.snapshot() {
            let _ = writeln!(
                out,
                "tokenrelay_webhook_calls_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tokenrelay_time_to_first_token_seconds Time from a reply's engine start to its first token.\n# TYPE tokenrelay_time_to_first_token_seconds histogram"
        );
        self.first_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .render(
                &mut out,
                "tokenrelay_time_to_first_token_seconds",
                "",
                &FIRST_TOKEN_BUCKETS,
            );
        gauge(
            &mut out,
            "tokenrelay_replay_buffer_notifications",
            "Notifications held in the replay buffers of every context (resume).",
            "gauge",
            self.replay_frames.get(),
        );
        out
    }
}
