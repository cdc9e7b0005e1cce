//! Server settings. The binary fills them from flags and `TOKENRELAY_*`
//! environment variables; tests and the demo set them through
//! [`crate::ServerBuilder`].

use std::time::Duration;

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
    /// HS256 secret for every JWT. `None`: read it from the store, or
    /// generate and save one there, so keys survive restarts of a file store.
    pub jwt_secret: Option<String>,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            jwt_secret: None,
            max_frame_bytes: 256 * 1024,
            max_connections: 20_000,
            handshake_timeout: Duration::from_secs(10),
            replay_max_notifications: 10_000,
            replay_max_age: Duration::from_secs(300),
            outbound_queue: 16_384,
            client_key_ttl_secs: 120,
            org_key_ttl_secs: 10 * 365 * 24 * 3600,
            user_token_ttl_secs: 30 * 60,
            rate_limit_requests: 120,
            rate_limit_window: Duration::from_secs(60),
            password_hashing: PasswordHashing::Standard,
            credits_per_response: 1,
            credits_per_stream_token: 1,
            fault_injection: false,
        }
    }
}
