//! Server settings. The binary fills them from flags and `TOKENRELAY_*`
//! environment variables; tests and the demo set them through
//! [`crate::ServerBuilder`].

use std::time::Duration;

/// Default of [`Config::drain_timeout`]: long enough for a typical model
/// reply to finish, short enough for an orchestrator's grace period
/// (Kubernetes' default `terminationGracePeriodSeconds` is 30 s; give the
/// pod a little more than this plus a few seconds to close).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How user passwords are hashed (argon2id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasswordHashing {
    /// argon2's defaults (19 MiB, 2 passes): for real deployments.
    #[default]
    Standard,
    /// 1 MiB, 1 pass: only for tests, where debug builds would otherwise
    /// spend seconds per hash.
    FastInsecure,
}

/// Every tunable of the server, with production-sane defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// HS256 secret for every JWT, at least 32 bytes. `None`: read it from
    /// `jwt_secret_file`, else from the store, else generate one and save
    /// it there, so keys survive restarts of a file store. Redacted in
    /// `Debug`, as is every secret here.
    pub jwt_secret: Option<crate::secret::SecretString>,
    /// A file holding the JWT secret, kept outside the database (created
    /// with mode 0600 and a fresh secret if it does not exist).
    pub jwt_secret_file: Option<std::path::PathBuf>,
    /// Earlier secrets still accepted for verification (never used to
    /// sign), so the secret can be rotated with a grace period: tokens
    /// signed with a previous secret carry its `kid` and keep working until
    /// they expire or the secret is removed from this list.
    pub jwt_previous_secrets: Vec<crate::secret::SecretString>,
    /// Serve `/metrics` on this separate address (e.g. a private
    /// interface) instead of on the main port. On the main port it is
    /// only served when `metrics_public` is set.
    pub metrics_bind: Option<String>,
    /// Serve `/metrics` on the main port, to anyone (off by default: the
    /// series show traffic and failure rates).
    pub metrics_public: bool,
    /// Trust this request header (e.g. `x-forwarded-for`, `x-real-ip`)
    /// for the client's address, for per-IP limits behind a proxy. Only
    /// set it when the proxy overwrites the header.
    pub client_ip_header: Option<String>,
    /// Largest WebSocket message accepted; bigger ones close the socket (1009).
    pub max_frame_bytes: usize,
    /// Open WebSockets allowed at once; one more is closed with 4008.
    pub max_connections: usize,
    /// A socket that has not sent `connect_to_context` by then is closed 4008.
    pub handshake_timeout: Duration,
    /// Replay buffer bound per context, in notifications.
    pub replay_max_notifications: usize,
    /// Replay buffer bound per context, in age.
    pub replay_max_age: Duration,
    /// `redis://…`: the hub (`seq`, replay buffers, live fan-out,
    /// generation leases) lives in Redis, shared by every instance on it
    /// (`--hub`). `None`: in this process, the embedded default.
    pub hub: Option<String>,
    /// With a Redis hub: a generation's lease, renewed every third of it;
    /// a dead instance's reply ends at most 1.5 leases later.
    pub hub_lease: Duration,
    /// On shutdown (SIGTERM), how long replies already running may take to
    /// finish (`--drain-timeout-secs`): sockets are told to reconnect
    /// elsewhere (1001) at once, new ones and new generations are refused
    /// (503), and only what is still running when this lapses is cut
    /// (`stop_reason: shutdown`). Zero cuts at once.
    pub drain_timeout: Duration,
    /// Frames queued for one socket before it is considered too slow and
    /// closed (1011, so it reconnects and resumes).
    pub outbound_queue: usize,
    /// Lifetime of a client key when the request names none (seconds).
    pub client_key_ttl_secs: u64,
    /// Lifetime of an org key (seconds).
    pub org_key_ttl_secs: u64,
    /// Lifetime of a user access token from `/auth/login` (seconds).
    pub user_token_ttl_secs: u64,
    /// Requests per window per credential on the token and key routes.
    pub rate_limit_requests: u32,
    /// The rate-limit window.
    pub rate_limit_window: Duration,
    /// Password hashing cost.
    pub password_hashing: PasswordHashing,
    /// Credits one agent response costs its org.
    pub credits_per_response: i64,
    /// Credits one stream token costs its org.
    pub credits_per_stream_token: i64,
    /// Mounts `POST /debug/faults` (drop or close a context's sockets on
    /// demand) for SDK test harnesses. Never enable in production.
    pub fault_injection: bool,
    /// Speak only the base protocol, as the hosted service does (for
    /// tests): no extensions advertised, `"id": null` on notifications, no
    /// `seq`, the trailing notifications after `on_stop_token`,
    /// `"result": null` for invocations sent after their reply, errors as
    /// plain text (auth errors in the `('text', 401)` form), unknown
    /// parameters refused. See `docs/protocol.md` §2.
    pub base_protocol: bool,
    /// Set `TCP_NODELAY` on accepted sockets (default). Off only to measure
    /// what it buys: a token is one small write that Nagle's algorithm
    /// would hold back until the client's delayed ACK.
    pub tcp_nodelay: bool,
    /// Limits on what a caller can make the server spend. Every one has a
    /// flag; `docs/security.md` lists them with the attack each one stops.
    pub limits: Limits,
    /// Server tools as signed webhooks: the secret, the outbound
    /// allowlist and the bounds of each call (flags `--webhook-*`).
    pub webhooks: crate::engine::WebhookConfig,
}

/// Bounds on every resource a stranger can make the server spend. The
/// defaults suit a public deployment; tests and benchmarks raise them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `POST /auth/register` is open to anyone. Off by default: accounts
    /// are then created by the operator (`bootstrap`) or not at all.
    pub open_registration: bool,
    /// Credits a self-registered account's org starts with (`None` would
    /// be unlimited; a stranger should never get that).
    pub registration_credits: i64,
    /// Requests per minute per client IP on `/auth/register` and
    /// `/auth/login` together.
    pub auth_per_ip_per_minute: u32,
    /// Password hashes computed at once (argon2id takes ~19 MiB and a core
    /// each); further requests queue.
    pub password_hash_concurrency: usize,
    /// How long a request waits for a hashing slot before a 503.
    pub password_hash_queue_timeout: Duration,
    /// Shortest password accepted at registration (NIST SP 800-63B-4 asks
    /// for 15 when the password is the only factor).
    pub min_password_chars: usize,
    /// Longest password accepted (argon2's cost is flat in length, but a
    /// bound keeps request bodies honest).
    pub max_password_chars: usize,
    /// Largest request body on any REST route, bytes.
    pub max_body_bytes: usize,
    /// An HTTP client must send its request headers within this time
    /// (slowloris), and its body within it too.
    pub http_header_timeout: Duration,
    /// Open TCP connections per peer address (REST and WebSocket);
    /// 0 disables the cap (behind a proxy every client shares its address).
    pub max_tcp_connections_per_ip: usize,
    /// Open WebSocket sessions per client address.
    pub max_sockets_per_ip: usize,
    /// Sockets attached to the contexts of one org at once (with a Redis
    /// hub, on every instance together: [`OrgSockets`]).
    ///
    /// [`OrgSockets`]: crate::admission::OrgSockets
    pub max_sockets_per_org: usize,
    /// The server pings every socket this often.
    pub ping_interval: Duration,
    /// A socket that sends nothing (not even a pong) for this long is
    /// closed with 1001, so a dead peer does not hold a slot.
    pub idle_timeout: Duration,
    /// A socket whose writes stall this long (its reader stopped reading)
    /// is dropped.
    pub write_timeout: Duration,
    /// Burst of client frames per socket (pings and pongs included) before
    /// the rate applies.
    pub socket_frame_burst: u32,
    /// Sustained client frames per second per socket.
    pub socket_frames_per_sec: u32,
    /// Invocations queued or running per context; one more is refused
    /// with `rate_limited`.
    pub max_pending_invocations: usize,
    /// Idempotency keys remembered per context (the `idempotency`
    /// extension): the oldest is forgotten first.
    pub idempotency_keys: usize,
    /// How long an idempotency key is remembered.
    pub idempotency_ttl: Duration,
    /// Largest human message (or tool responses, as JSON), bytes.
    pub max_message_bytes: usize,
    /// History entries kept per context; the oldest go first.
    pub max_history_messages: usize,
    /// History kept per context, in bytes of JSON; the oldest go first.
    pub max_history_bytes: usize,
    /// Largest `prompt_args` of a context, bytes of JSON.
    pub max_prompt_args_bytes: usize,
    /// Largest agent prompt, before and after its arguments are filled in.
    pub max_prompt_bytes: usize,
    /// Largest `user_defined` of a context and `tools` of an agent, bytes.
    pub max_object_bytes: usize,
    /// Longest lifetime an org key may be minted with (seconds).
    pub max_org_key_ttl_secs: u64,
    /// Entries the rate limiter keeps; past it, ended windows are purged
    /// and then the oldest are evicted.
    pub rate_limiter_capacity: usize,
    /// Timeout for connecting to the engine's upstream.
    pub upstream_connect_timeout: Duration,
    /// An upstream that sends nothing for this long ends the response.
    pub upstream_read_timeout: Duration,
    /// Allow `http://` origins other than localhost in publishable keys.
    pub allow_insecure_origins: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            open_registration: false,
            registration_credits: 0,
            auth_per_ip_per_minute: 30,
            password_hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            password_hash_queue_timeout: Duration::from_secs(5),
            min_password_chars: 15,
            max_password_chars: 256,
            max_body_bytes: 256 * 1024,
            http_header_timeout: Duration::from_secs(10),
            max_tcp_connections_per_ip: 1024,
            max_sockets_per_ip: 512,
            max_sockets_per_org: 5_000,
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            socket_frame_burst: 64,
            socket_frames_per_sec: 16,
            max_pending_invocations: 8,
            idempotency_keys: 256,
            idempotency_ttl: Duration::from_secs(600),
            max_message_bytes: 64 * 1024,
            max_history_messages: 1_000,
            max_history_bytes: 1024 * 1024,
            max_prompt_args_bytes: 16 * 1024,
            max_prompt_bytes: 64 * 1024,
            max_object_bytes: 64 * 1024,
            max_org_key_ttl_secs: 365 * 24 * 3600,
            rate_limiter_capacity: 100_000,
            upstream_connect_timeout: Duration::from_secs(10),
            upstream_read_timeout: Duration::from_secs(60),
            allow_insecure_origins: false,
        }
    }
}

impl Limits {
    /// Limits that never get in a test's way (they stay finite: a test of
    /// one limit lowers it again).
    pub fn relaxed() -> Self {
        Limits {
            open_registration: true,
            registration_credits: 1_000_000,
            auth_per_ip_per_minute: 100_000,
            min_password_chars: 8,
            max_tcp_connections_per_ip: 0,
            max_sockets_per_ip: 100_000,
            max_sockets_per_org: 100_000,
            socket_frame_burst: 100_000,
            socket_frames_per_sec: 100_000,
            max_pending_invocations: 10_000,
            ..Limits::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            jwt_secret: None,
            jwt_secret_file: None,
            jwt_previous_secrets: Vec::new(),
            metrics_bind: None,
            metrics_public: false,
            client_ip_header: None,
            max_frame_bytes: 256 * 1024,
            max_connections: 20_000,
            handshake_timeout: Duration::from_secs(10),
            replay_max_notifications: 10_000,
            replay_max_age: Duration::from_secs(300),
            hub: None,
            hub_lease: crate::conversation::redis::DEFAULT_LEASE,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            outbound_queue: 16_384,
            client_key_ttl_secs: 120,
            org_key_ttl_secs: 365 * 24 * 3600,
            user_token_ttl_secs: 30 * 60,
            rate_limit_requests: 120,
            rate_limit_window: Duration::from_secs(60),
            password_hashing: PasswordHashing::Standard,
            credits_per_response: 1,
            credits_per_stream_token: 1,
            fault_injection: false,
            base_protocol: false,
            tcp_nodelay: true,
            limits: Limits::default(),
            webhooks: crate::engine::WebhookConfig::default(),
        }
    }
}
