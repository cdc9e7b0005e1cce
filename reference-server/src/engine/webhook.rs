//! Server tools as signed webhooks.
//!
//! An agent's tool definition may name an HTTPS endpoint of the operator's
//! in `webhook`:
//!
//! ```json
//! {"name": "lookup_order", "parameters": {"type": "object"}, "webhook": "https://tools.example.com/orders"}
//! ```
//!
//! When the model calls that tool, the server POSTs the call there as JSON
//! (`context_id`, `agent_id`, `response_id`, `call_id`, `tool`, `input`)
//! with two headers: `x-tokenrelay-timestamp` (unix seconds) and
//! `x-tokenrelay-signature: v1=<hex HMAC-SHA256 of "{timestamp}.{body}">`
//! under the server's webhook secret, so the receiver can check that the
//! call came from this server and refuse old (replayed) ones. A 2xx answer
//! `{"output": "…"}` becomes the tool's output (any other JSON in `output`
//! is passed on as JSON text); `{"error": "…"}` is a tool failure the
//! receiver reports itself.
//!
//! Every failure (a URL the policy refuses, a timeout, a non-2xx status,
//! an answer above the size cap, an answer that is not such JSON) becomes
//! the tool's output, `error: …`, which the model sees and may recover
//! from; the reply goes on (`docs/decisions.md`, "Webhook tools").
//!
//! # The outbound policy (server-side request forgery)
//!
//! Whoever can create an agent chooses these URLs, so the server must not
//! become their way into the operator's network. Before any connection:
//!
//! * the scheme is `https` (`http` only with
//!   [`WebhookConfig::allow_http`]), and the URL carries no credentials;
//! * the host (and port) matches a pattern of [`WebhookConfig::allow`];
//!   an empty list allows nothing;
//! * the host is resolved here, and every address it resolves to must be
//!   public (see [`non_public_range`]) unless
//!   [`WebhookConfig::allow_private`] is set. The request then connects to
//!   exactly those checked addresses (pinned with reqwest's
//!   `resolve_to_addrs`), so a name that resolves differently a moment
//!   later (DNS rebinding) cannot slip a private address in.
//!
//! Redirects are never followed (a 3xx is a failure), no proxy from the
//! environment is used, the whole call has one deadline, and the answer is
//! read only up to the size cap.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{KeyInit, Mac};
use reqwest::Url;
use serde_json::{json, Value};
use sha2::Sha256;

use super::rounds::ToolCall;

/// Header carrying the unix time (seconds) the call was signed at.
pub const TIMESTAMP_HEADER: &str = "x-tokenrelay-timestamp";
/// Header carrying the signature: `v1=` and the lowercase hex HMAC-SHA256
/// of `"{timestamp}.{body}"`.
pub const SIGNATURE_HEADER: &str = "x-tokenrelay-signature";
/// Shortest webhook secret accepted, bytes (as for the JWT secret: an
/// HMAC key shorter than its output can be guessed offline from one
/// signed call).
pub const MIN_SECRET_BYTES: usize = 32;
/// Default of [`WebhookConfig::timeout`], seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Default of [`WebhookConfig::max_response_bytes`].
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The secret webhook calls are signed with. Its `Debug` shows nothing of
/// it, so it cannot reach a log through a config dump.
#[derive(Clone)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Wraps a secret (its length is checked when the server starts:
    /// at least [`MIN_SECRET_BYTES`]).
    pub fn new(secret: impl Into<String>) -> Self {
        WebhookSecret(secret.into())
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Which hosts webhook calls may go to: one `--webhook-allow` value.
///
/// * `tools.example.com`: that host, on any port;
/// * `tools.example.com:8443`: that host on that port only;
/// * `*.example.com`: any subdomain of `example.com` (not `example.com`
///   itself), on any port; `*.example.com:443` on that port;
/// * `203.0.113.7`, `[2001:db8::7]:8443`: an IP address literal in the
///   URL (a name resolving to it does not match).
///
/// Names compare without case and without a trailing dot.
///
/// ```
/// use tokenrelay_server::engine::webhook::HostPattern;
/// let p: HostPattern = "*.example.com:443".parse().unwrap();
/// assert!(p.matches_url(&"https://a.example.com/hook".parse().unwrap()));
/// assert!(!p.matches_url(&"https://example.com/hook".parse().unwrap()));
/// assert!(!p.matches_url(&"https://a.example.com:8443/hook".parse().unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// This name exactly.
    Name(String),
    /// Names ending in `.` + this.
    Subdomains(String),
    /// This address literal.
    Ip(IpAddr),
}

/// A `--webhook-allow` value that is not a host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPatternError(String);

impl std::fmt::Display for HostPatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not a host pattern (host, host:port, *.domain, [ipv6]:port): {}",
            self.0
        )
    }
}

impl std::error::Error for HostPatternError {}

/// A name without its trailing dot, lowercase.
fn normal_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl FromStr for HostPattern {
    type Err = HostPatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || HostPatternError(text.to_owned());
        let s = text.trim();
        let parse_port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
            let ip = ip.parse::<Ipv6Addr>().map_err(|_| bad())?;
            let port = match after {
                "" => None,
                p => Some(parse_port(p.strip_prefix(':').ok_or_else(bad)?)?),
            };
            return Ok(HostPattern {
                host: HostMatch::Ip(IpAddr::V6(ip)),
                port,
            });
        } else if let Ok(ip) = s.parse::<IpAddr>() {
            // A bare IPv6 address (its colons are not a port).
            (HostMatch::Ip(ip), None)
        } else {
            let (host, port) = match s.rsplit_once(':') {
                Some((h, p)) => (h, Some(parse_port(p)?)),
                None => (s, None),
            };
            let host = if let Ok(ip) = host.parse::<Ipv4Addr>() {
                HostMatch::Ip(IpAddr::V4(ip))
            } else if let Some(domain) = host.strip_prefix("*.") {
                let domain = normal_name(domain);
                if !valid_name(&domain) {
                    return Err(bad());
                }
                HostMatch::Subdomains(domain)
            } else {
                let name = normal_name(host);
                if !valid_name(&name) {
                    return Err(bad());
                }
                HostMatch::Name(name)
            };
            (host, port)
        };
        Ok(HostPattern { host, port })
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            HostMatch::Name(n) => f.write_str(n)?,
            HostMatch::Subdomains(d) => write!(f, "*.{d}")?,
            HostMatch::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            HostMatch::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

impl HostPattern {
    /// Whether `url`'s host and port (the scheme's default when it names
    /// none) match.
    pub fn matches_url(&self, url: &Url) -> bool {
        let port = url.port_or_known_default();
        if self.port.is_some() && self.port != port {
            return false;
        }
        match (&self.host, url.host()) {
            (HostMatch::Name(n), Some(url::Host::Domain(d))) => normal_name(d) == *n,
            (HostMatch::Subdomains(s), Some(url::Host::Domain(d))) => normal_name(d)
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (HostMatch::Ip(ip), Some(url::Host::Ipv4(a))) => *ip == IpAddr::V4(a),
            (HostMatch::Ip(ip), Some(url::Host::Ipv6(a))) => *ip == IpAddr::V6(a),
            _ => false,
        }
    }
}

/// The range `ip` lies in when it is not a public unicast address, else
/// `None`. Webhook calls go to such addresses only with
/// [`WebhookConfig::allow_private`].
///
/// Covers, for IPv4: this-network `0.0.0.0/8`, loopback `127.0.0.0/8`,
/// private `10/8`, `172.16/12`, `192.168/16`, shared (CGNAT)
/// `100.64/10`, link-local `169.254/16` (cloud metadata services live
/// there), IETF protocol assignments `192.0.0/24`, documentation, the
/// benchmarking `198.18/15`, multicast `224/4`, reserved `240/4` and
/// broadcast. For IPv6: unspecified, loopback, IPv4-mapped and
/// IPv4-compatible addresses (judged by the IPv4 address inside, so
/// `::ffff:127.0.0.1` is loopback), NAT64 `64:ff9b::/96` (judged by the
/// IPv4 inside) and `64:ff9b:1::/48`, discard `100::/64`, the IETF block
/// `2001::/23` (Teredo among it), documentation `2001:db8::/32`, 6to4
/// `2002::/16` (judged by the IPv4 inside), unique-local `fc00::/7`,
/// link-local `fe80::/10`, site-local `fec0::/10` and multicast
/// `ff00::/8`.
///
/// ```
/// use tokenrelay_server::engine::webhook::non_public_range;
/// assert_eq!(non_public_range("127.0.0.1".parse().unwrap()), Some("loopback"));
/// assert_eq!(non_public_range("::ffff:10.0.0.1".parse().unwrap()), Some("private"));
/// assert_eq!(non_public_range("93.184.215.14".parse().unwrap()), None);
/// ```
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified",
        (127, _, _) => "loopback",
        (10, _, _) | (192, 168, _) => "private",
        (172, b, _) if (16..32).contains(&b) => "private",
        (100, b, _) if (64..128).contains(&b) => "shared",
        (169, 254, _) => "link-local",
        (192, 0, 0) => "reserved",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18, _) | (198, 19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    match s {
        // IPv4-mapped ::ffff:a.b.c.d: the IPv4 address is what is reached.
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => non_public_v4(embedded(hi, lo)),
        // IPv4-compatible ::a.b.c.d (deprecated), same.
        [0, 0, 0, 0, 0, 0, hi, lo] => non_public_v4(embedded(hi, lo)),
        // NAT64: the gateway connects to the IPv4 address inside.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => non_public_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Some("private"),
        [0x100, 0, 0, 0, ..] => Some("reserved"),
        [0x2001, 0xdb8, ..] => Some("documentation"),
        [0x2001, b, ..] if b < 0x200 => Some("reserved"),
        // 6to4: the relay reaches the IPv4 address inside.
        [0x2002, hi, lo, ..] => non_public_v4(embedded(hi, lo)),
        [a, ..] if a & 0xfe00 == 0xfc00 => Some("unique-local"),
        [a, ..] if a & 0xffc0 == 0xfe80 => Some("link-local"),
        [a, ..] if a & 0xffc0 == 0xfec0 => Some("site-local"),
        [a, ..] if a & 0xff00 == 0xff00 => Some("multicast"),
        _ => None,
    }
}

/// The value of [`SIGNATURE_HEADER`] for a call with `body` sent at
/// `timestamp`: `v1=` and the lowercase hex HMAC-SHA256 of
/// `"{timestamp}.{body}"` under `secret`.
///
/// ```
/// use tokenrelay_server::engine::webhook::{sign, WebhookSecret};
/// let secret = WebhookSecret::new("0123456789abcdef0123456789abcdef");
/// assert!(sign(&secret, 1_700_000_000, b"{}").starts_with("v1="));
/// ```
pub fn sign(secret: &WebhookSecret, timestamp: u64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let mut out = String::with_capacity(3 + 2 * tag.len());
    out.push_str("v1=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn mac(secret: &WebhookSecret, timestamp: u64, body: &[u8]) -> hmac::Hmac<Sha256> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret.bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// What a receiver written in Rust does with a call: true when
/// `signature` (the [`SIGNATURE_HEADER`] value) signs `body` at
/// `timestamp` under `secret` and `timestamp` is within `tolerance` of
/// `now` (both unix seconds). The comparison takes the same time whatever
/// the signature holds.
///
/// ```
/// use tokenrelay_server::engine::webhook::{sign, verify, WebhookSecret};
/// let secret = WebhookSecret::new("0123456789abcdef0123456789abcdef");
/// let sig = sign(&secret, 1_700_000_000, b"{}");
/// assert!(verify(&secret, 1_700_000_000, b"{}", &sig, 1_700_000_030, 300));
/// assert!(!verify(&secret, 1_700_000_000, b"{}", &sig, 1_700_001_000, 300));
/// assert!(!verify(&secret, 1_700_000_000, b"{ }", &sig, 1_700_000_030, 300));
/// ```
pub fn verify(
    secret: &WebhookSecret,
    timestamp: u64,
    body: &[u8],
    signature: &str,
    now: u64,
    tolerance: u64,
) -> bool {
    if now.abs_diff(timestamp) > tolerance {
        return false;
    }
    let Some(hex) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&tag).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Settings of webhook tools (flags `--webhook-*`).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Signs every call. `None`: webhook tools are off (each answers an
    /// error), since an unsigned call could be forged by anyone.
    pub secret: Option<WebhookSecret>,
    /// Hosts calls may go to; empty allows none.
    pub allow: Vec<HostPattern>,
    /// Let calls go to loopback, private, link-local and other non-public
    /// addresses (see [`non_public_range`]). Off by default: with it on,
    /// anyone who can create an agent can make the server call into its
    /// own network (still only to allowed hosts).
    pub allow_private: bool,
    /// Let calls go to `http://` URLs (for tests and local receivers).
    pub allow_http: bool,
    /// The whole call (resolution, connection, answer) must finish within
    /// this time.
    pub timeout: Duration,
    /// Largest answer read, bytes; a longer one is a failure.
    pub max_response_bytes: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            secret: None,
            allow: Vec::new(),
            allow_private: false,
            allow_http: false,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// Why a webhook call gave no output. Its `Display` is what the model
/// (and the client, in `on_tool_response`) sees after `error: `: it names
/// no address, so it tells nobody what the server's network holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// The server has no webhook secret.
    NotConfigured,
    /// The URL does not parse, has no host, or carries credentials.
    InvalidUrl,
    /// `http://` without [`WebhookConfig::allow_http`], or another scheme.
    SchemeNotAllowed,
    /// The host is not on the allowlist.
    HostNotAllowed,
    /// The host is (or resolves to) a non-public address: the range.
    AddressNotAllowed(&'static str),
    /// The host did not resolve.
    Unresolved,
    /// The call did not finish in time.
    Timeout,
    /// The connection failed.
    Unreachable,
    /// The answer's status was not 2xx (redirects are not followed).
    Status(u16),
    /// The answer was longer than the cap.
    TooLarge(usize),
    /// The answer was not JSON with `output` (or `error`).
    BadAnswer,
    /// The receiver answered `{"error": …}`: its words.
    Tool(String),
}

impl std::fmt::Display for WebhookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebhookError::NotConfigured => {
                f.write_str("webhook tools are not configured on this server")
            }
            WebhookError::InvalidUrl => f.write_str("the tool's webhook URL is not valid"),
            WebhookError::SchemeNotAllowed => f.write_str("the tool's webhook URL must use https"),
            WebhookError::HostNotAllowed | WebhookError::AddressNotAllowed(_) => {
                f.write_str("the server's policy does not allow calls to the tool's webhook host")
            }
            WebhookError::Unresolved => f.write_str("the tool's webhook host does not resolve"),
            WebhookError::Timeout => f.write_str("the tool's webhook did not answer in time"),
            WebhookError::Unreachable => f.write_str("the tool's webhook could not be reached"),
            WebhookError::Status(code) => write!(f, "the tool's webhook answered HTTP {code}"),
            WebhookError::TooLarge(cap) => {
                write!(f, "the tool's webhook answered more than {cap} bytes")
            }
            WebhookError::BadAnswer => {
                f.write_str("the tool's webhook answered something other than JSON with `output`")
            }
            WebhookError::Tool(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for WebhookError {}

impl WebhookError {
    /// The `outcome` label of `tokenrelay_webhook_calls_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            WebhookError::NotConfigured => "not_configured",
            WebhookError::InvalidUrl
            | WebhookError::SchemeNotAllowed
            | WebhookError::HostNotAllowed
            | WebhookError::AddressNotAllowed(_) => "refused",
            WebhookError::Unresolved | WebhookError::Unreachable => "unreachable",
            WebhookError::Timeout => "timeout",
            WebhookError::Status(_) => "http_error",
            WebhookError::TooLarge(_) => "too_large",
            WebhookError::BadAnswer => "bad_answer",
            WebhookError::Tool(_) => "tool_error",
        }
    }
}

/// Counts webhook calls by outcome (`ok`, `refused`, `timeout`, …): the
/// series `tokenrelay_webhook_calls_total{outcome}`. Cloned handles count
/// into the same map.
#[derive(Debug, Clone, Default)]
pub struct WebhookCounter(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl WebhookCounter {
    /// Adds one call with `outcome` (a fixed label).
    pub fn record(&self, outcome: &'static str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(outcome).or_default() += 1;
    }

    /// Calls so far with `outcome`.
    pub fn get(&self, outcome: &str) -> u64 {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(outcome).copied().unwrap_or(0)
    }

    /// Every outcome and its count, in label order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

/// Where one call comes from: what the receiver is told besides the call.
#[derive(Debug, Clone, Copy)]
pub struct CallOrigin<'a> {
    /// The context.
    pub context_id: &'a str,
    /// The context's agent.
    pub agent_id: &'a str,
    /// The response the call belongs to.
    pub response_id: &'a str,
}

/// The webhook tool runtime: the policy, the secret and the counters.
#[derive(Debug, Clone)]
pub struct WebhookTools {
    config: WebhookConfig,
    counter: WebhookCounter,
}

/// The `webhook` URL the agent's definition of tool `name` names, if it is
/// a server tool with one. A definition is `{"name", …}` or the OpenAI
/// shape `{"type": "function", "function": {"name", …}}`, with `webhook`
/// at its top level either way.
pub fn webhook_of<'a>(tools: &'a [Value], name: &str) -> Option<&'a str> {
    tools.iter().find_map(|t| {
        let tool_name = t
            .get("name")
            .or_else(|| t.pointer("/function/name"))
            .and_then(Value::as_str)?;
        if tool_name != name || t.get("client_side").and_then(Value::as_bool) == Some(true) {
            return None;
        }
        t.get("webhook").and_then(Value::as_str)
    })
}

/// Checks a tool's `webhook` value when an agent is created: an absolute
/// `http(s)` URL with a host and no credentials. (Whether the server's
/// policy lets calls go there is decided at each call: the policy may
/// change between restarts.)
pub fn check_webhook_url(url: &str) -> Result<(), WebhookError> {
    let parsed = Url::parse(url).map_err(|_| WebhookError::InvalidUrl)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(WebhookError::SchemeNotAllowed);
    }
    if parsed.host().is_none() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(WebhookError::InvalidUrl);
    }
    Ok(())
}

impl WebhookTools {
    /// A runtime with `config`, counting into `counter`.
    pub fn new(config: WebhookConfig, counter: WebhookCounter) -> Self {
        // reqwest is built without a default TLS provider; install ring
        // once (an error only means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        WebhookTools { config, counter }
    }

    /// Its settings.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Runs `call` on the webhook at `url` and returns the tool's output:
    /// the receiver's answer, or `error: …` saying why there is none (the
    /// model sees it; the reply goes on). Counts the outcome and logs a
    /// failure (the host, never the URL's path or query, nor the secret).
    pub async fn run(&self, url: &str, origin: CallOrigin<'_>, call: &ToolCall) -> String {
        match self.call(url, origin, call).await {
            Ok(output) => {
                self.counter.record("ok");
                output
            }
            Err(e) => {
                self.counter.record(e.outcome());
                let host = Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default();
                let detail = match &e {
                    WebhookError::AddressNotAllowed(range) => range,
                    _ => "",
                };
                tracing::warn!(
                    context_id = %origin.context_id,
                    tool = %call.name,
                    %host,
                    outcome = e.outcome(),
                    detail,
                    "webhook tool failed"
                );
                format!("error: {e}")
            }
        }
    }

    /// One call, its failures typed.
    pub async fn call(
        &self,
        url: &str,
        origin: CallOrigin<'_>,
        call: &ToolCall,
    ) -> Result<String, WebhookError> {
        let secret = self
            .config
            .secret
            .as_ref()
            .ok_or(WebhookError::NotConfigured)?;
        let url = self.check_url(url)?;
        let body = serde_json::to_vec(&json!({
            "context_id": origin.context_id,
            "agent_id": origin.agent_id,
            "response_id": origin.response_id,
            "call_id": call.id,
            "tool": call.name,
            "input": call.input,
        }))
        .map_err(|_| WebhookError::BadAnswer)?;
        // One deadline for everything, resolution included: a slow DNS
        // server must not hold the reply longer than a slow receiver.
        tokio::time::timeout(self.config.timeout, self.send(url, secret, body))
            .await
            .map_err(|_| WebhookError::Timeout)?
    }

    /// The URL, if the policy lets a call go there (before any lookup or
    /// connection).
    fn check_url(&self, url: &str) -> Result<Url, WebhookError> {
        check_webhook_url(url)?;
        let url = Url::parse(url).map_err(|_| WebhookError::InvalidUrl)?;
        if url.scheme() == "http" && !self.config.allow_http {
            return Err(WebhookError::SchemeNotAllowed);
        }
        if !self.config.allow.iter().any(|p| p.matches_url(&url)) {
            return Err(WebhookError::HostNotAllowed);
        }
        Ok(url)
    }

    /// The addresses to connect to: the literal, or every address the
    /// name resolves to, each checked.
    async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, WebhookError> {
        let port = url
            .port_or_known_default()
            .ok_or(WebhookError::InvalidUrl)?;
        let addrs: Vec<SocketAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
                .await
                .map_err(|_| WebhookError::Unresolved)?
                .collect(),
            None => return Err(WebhookError::InvalidUrl),
        };
        if addrs.is_empty() {
            return Err(WebhookError::Unresolved);
        }
        if !self.config.allow_private {
            // One non-public address refuses the name as a whole: a name
            // that mixes them is not one a receiver needs.
            if let Some(range) = addrs.iter().find_map(|a| non_public_range(a.ip())) {
                return Err(WebhookError::AddressNotAllowed(range));
            }
        }
        Ok(addrs)
    }

    async fn send(
        &self,
        url: Url,
        secret: &WebhookSecret,
        body: Vec<u8>,
    ) -> Result<String, WebhookError> {
        let addrs = self.resolve(&url).await?;
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // HTTP(S)_PROXY from the environment would connect to the
            // proxy instead of the checked address.
            .no_proxy()
            .timeout(self.config.timeout)
            .connect_timeout(self.config.timeout)
            .user_agent(concat!("tokenrelay-server/", env!("CARGO_PKG_VERSION")));
        if let Some(url::Host::Domain(name)) = url.host() {
            // The pin: reqwest connects to these addresses, the ones just
            // checked, and asks no resolver again. One client per call,
            // for reqwest pins per client; no pooled connection outlives
            // the check.
            client = client.resolve_to_addrs(name, &addrs);
        }
        let client = client.build().map_err(|_| WebhookError::Unreachable)?;
        let timestamp = u64::try_from(crate::time::unix_now()).unwrap_or(0);
        let signature = sign(secret, timestamp, &body);
        let mut response = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    WebhookError::Timeout
                } else {
                    WebhookError::Unreachable
                }
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(WebhookError::Status(status.as_u16()));
        }
        let cap = self.config.max_response_bytes;
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(WebhookError::TooLarge(cap));
        }
        // Read chunk by chunk so a receiver that streams without end (or
        // lies in its content-length) is cut at the cap.
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            if e.is_timeout() {
                WebhookError::Timeout
            } else {
                WebhookError::Unreachable
            }
        })? {
            if answer.len() + chunk.len() > cap {
                return Err(WebhookError::TooLarge(cap));
            }
            answer.extend_from_slice(&chunk);
        }
        output_of(&answer)
    }
}

/// The tool output in a receiver's answer: `{"output": "text"}` gives the
/// text, `{"output": <other JSON>}` that JSON as text, `{"error": "…"}`
/// the receiver's failure.
fn output_of(answer: &[u8]) -> Result<String, WebhookError> {
    let value: Value = serde_json::from_slice(answer).map_err(|_| WebhookError::BadAnswer)?;
    if let Some(output) = value.get("output") {
        return Ok(match output {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    match value.get("error") {
        Some(Value::String(message)) => Err(WebhookError::Tool(message.clone())),
        Some(other) => Err(WebhookError::Tool(other.to_string())),
        None => Err(WebhookError::BadAnswer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Known answer, computed independently:
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac "$SECRET"
        let secret = WebhookSecret::new("whsec_0123456789abcdef0123456789abcdef");
        assert_eq!(
            sign(&secret, 1_700_000_000, br#"{"a":1}"#),
            "v1=c1fdbee94e006c1ee2b03ad4166411f2d89824ec39aa8fa23dfdae06b759e2ed"
        );
        let sig = sign(&secret, 1_700_000_000, b"body");
        assert!(verify(
            &secret,
            1_700_000_000,
            b"body",
            &sig,
            1_700_000_000,
            0
        ));
        // Another body, time, secret, or a mangled header: refused.
        assert!(!verify(
            &secret,
            1_700_000_000,
            b"bodx",
            &sig,
            1_700_000_000,
            0
        ));
        assert!(!verify(
            &secret,
            1_700_000_001,
            b"body",
            &sig,
            1_700_000_001,
            0
        ));
        let other = WebhookSecret::new("whsec_0123456789abcdef0123456789abcdeX");
        assert!(!verify(
            &other,
            1_700_000_000,
            b"body",
            &sig,
            1_700_000_000,
            0
        ));
        assert!(!verify(
            &secret,
            1_700_000_000,
            b"body",
            &sig[3..],
            1_700_000_000,
            0
        ));
        assert!(!verify(
            &secret,
            1_700_000_000,
            b"body",
            "v1=zz",
            1_700_000_000,
            0
        ));
        assert!(!verify(
            &secret,
            1_700_000_000,
            b"body",
            "v1=",
            1_700_000_000,
            0
        ));
        // Too old or too far ahead: refused, within tolerance: taken.
        assert!(!verify(
            &secret,
            1_700_000_000,
            b"body",
            &sig,
            1_700_000_301,
            300
        ));
        assert!(!verify(
            &secret,
            1_700_000_000,
            b"body",
            &sig,
            1_699_999_699,
            300
        ));
        assert!(verify(
            &secret,
            1_700_000_000,
            b"body",
            &sig,
            1_700_000_300,
            300
        ));
        assert_eq!(format!("{secret:?}"), "WebhookSecret(<redacted>)");
    }

    #[test]
    fn ipv4_ranges() {
        for (addr, range) in [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared"),
            ("100.127.255.255", "shared"),
            ("169.254.169.254", "link-local"),
            ("192.0.0.8", "reserved"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.1", "documentation"),
            ("203.0.113.9", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "reserved"),
        ] {
            assert_eq!(non_public_range(ip(addr)), Some(range), "{addr}");
        }
        for addr in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.0.1.1",
            "198.20.0.1",
            "223.255.255.255",
        ] {
            assert_eq!(non_public_range(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn ipv6_ranges_and_the_ipv4_inside_them() {
        for (addr, range) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:7f00:1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:0.0.0.0", "unspecified"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::10.0.0.1", "private"),
            ("64:ff9b:1::1", "private"),
            ("2002:7f00:1::1", "loopback"),
            ("2002:c0a8:101::1", "private"),
            ("100::1", "reserved"),
            ("2001::1", "reserved"),
            ("2001:db8::1", "documentation"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
        ] {
            assert_eq!(non_public_range(ip(addr)), Some(range), "{addr}");
        }
        for addr in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "2001:4860::8888",
        ] {
            assert_eq!(non_public_range(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn host_patterns_parse_and_match() {
        let url = |s: &str| Url::parse(s).unwrap();
        let p = |s: &str| s.parse::<HostPattern>().unwrap();
        assert!(p("tools.example.com").matches_url(&url("https://tools.example.com/x")));
        assert!(p("Tools.Example.com.").matches_url(&url("https://TOOLS.example.com.:8443/x")));
        assert!(!p("tools.example.com").matches_url(&url("https://evil.com/?tools.example.com")));
        assert!(!p("example.com").matches_url(&url("https://tools.example.com/")));
        assert!(p("tools.example.com:443").matches_url(&url("https://tools.example.com/")));
        assert!(!p("tools.example.com:443").matches_url(&url("http://tools.example.com/")));
        assert!(p("*.example.com").matches_url(&url("https://a.b.example.com/")));
        assert!(!p("*.example.com").matches_url(&url("https://example.com/")));
        assert!(!p("*.example.com").matches_url(&url("https://badexample.com/")));
        assert!(p("127.0.0.1:9000").matches_url(&url("http://127.0.0.1:9000/")));
        assert!(!p("127.0.0.1:9000").matches_url(&url("http://127.0.0.1:9001/")));
        assert!(!p("127.0.0.1").matches_url(&url("http://localhost/")));
        assert!(p("[::1]:9000").matches_url(&url("http://[::1]:9000/")));
        assert!(p("::1").matches_url(&url("http://[::1]:1234/")));
        assert!(!p("::1").matches_url(&url("http://[::ffff:127.0.0.1]/")));
        assert_eq!(p("*.example.com:8443").to_string(), "*.example.com:8443");
        assert_eq!(p("[::1]:80").to_string(), "[::1]:80");
        for bad in [
            "",
            "*",
            "*.",
            "a:b",
            "a:0",
            "a:70000",
            "[::1",
            "[x]:1",
            "a b",
            "a/b",
            "*.a*.b",
            "ex ample.com",
        ] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_are_checked_before_anything_else() {
        let tools = WebhookTools::new(
            WebhookConfig {
                secret: Some(WebhookSecret::new("x".repeat(32))),
                allow: vec!["hooks.example.com".parse().unwrap()],
                ..WebhookConfig::default()
            },
            WebhookCounter::default(),
        );
        let check = |u: &str| tools.check_url(u).map(|_| ());
        assert_eq!(check("https://hooks.example.com/t"), Ok(()));
        assert_eq!(
            check("http://hooks.example.com/t"),
            Err(WebhookError::SchemeNotAllowed)
        );
        assert_eq!(
            check("ftp://hooks.example.com/t"),
            Err(WebhookError::SchemeNotAllowed)
        );
        assert_eq!(
            check("https://other.example.com/t"),
            Err(WebhookError::HostNotAllowed)
        );
        assert_eq!(
            check("https://u:p@hooks.example.com/t"),
            Err(WebhookError::InvalidUrl)
        );
        assert_eq!(check("hooks.example.com/t"), Err(WebhookError::InvalidUrl));
    }

    #[tokio::test]
    async fn non_public_addresses_are_refused_in_every_spelling() {
        let tools = WebhookTools::new(WebhookConfig::default(), WebhookCounter::default());
        for url in [
            "http://127.0.0.1/",
            // WHATWG URL parsing turns these into 127.0.0.1 before the
            // check sees them.
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::ffff:7f00:1]/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00::1]/",
            // A name is judged by what it resolves to.
            "http://localhost/",
        ] {
            let url = Url::parse(url).unwrap();
            assert!(
                matches!(
                    tools.resolve(&url).await,
                    Err(WebhookError::AddressNotAllowed(_))
                ),
                "{url}"
            );
        }
        let open = WebhookTools::new(
            WebhookConfig {
                allow_private: true,
                ..WebhookConfig::default()
            },
            WebhookCounter::default(),
        );
        let pinned = open
            .resolve(&Url::parse("http://2130706433:9/").unwrap())
            .await
            .unwrap();
        assert_eq!(pinned, vec!["127.0.0.1:9".parse().unwrap()]);
    }

    #[test]
    fn answers() {
        assert_eq!(output_of(br#"{"output": "42"}"#), Ok("42".into()));
        assert_eq!(
            output_of(br#"{"output": {"a": 1}}"#),
            Ok(r#"{"a":1}"#.into())
        );
        assert_eq!(
            output_of(br#"{"error": "no such order"}"#),
            Err(WebhookError::Tool("no such order".into()))
        );
        assert_eq!(output_of(b"42"), Err(WebhookError::BadAnswer));
        assert_eq!(output_of(b"<html>"), Err(WebhookError::BadAnswer));
    }

    #[test]
    fn webhook_urls_come_from_server_tool_definitions() {
        let tools = vec![
            json!("plain"),
            json!({"name": "a", "webhook": "https://h/a"}),
            json!({"type": "function", "function": {"name": "b"}, "webhook": "https://h/b"}),
            json!({"name": "c", "webhook": "https://h/c", "client_side": true}),
            json!({"name": "d"}),
        ];
        assert_eq!(webhook_of(&tools, "a"), Some("https://h/a"));
        assert_eq!(webhook_of(&tools, "b"), Some("https://h/b"));
        assert_eq!(webhook_of(&tools, "c"), None);
        assert_eq!(webhook_of(&tools, "d"), None);
        assert_eq!(webhook_of(&tools, "plain"), None);
    }
}
