//! `tokenrelay-server`: run the reference server, or bootstrap its first
//! org. Every flag also reads a `TOKENRELAY_*` environment variable, and a
//! TOML config file (`--config FILE` or `TOKENRELAY_CONFIG`) whose keys are
//! the flags' names: a flag wins over the environment, which wins over the
//! file.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tokenrelay_server::engine::webhook::HostPattern;
use tokenrelay_server::engine::{WebhookConfig, WebhookSecret};
use tokenrelay_server::secret::SecretString;
use tokenrelay_server::{
    Config, Limits, OpenAiConfig, OpenAiEngine, RoundsConfig, ScriptedEngine, Server,
    ServerBuilder, StoreConfig,
};

#[derive(Parser, Debug)]
#[command(
    name = "tokenrelay-server",
    version,
    about = "Reference server of the tokenrelay protocol"
)]
struct Cli {
    /// Address to listen on.
    #[arg(
        long,
        env = "TOKENRELAY_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    bind: String,
    /// SQLite file; `:memory:` keeps everything in memory; a
    /// `postgres://user:password@host:port/db` URL selects PostgreSQL
    /// (shared by several instances).
    #[arg(
        long,
        env = "TOKENRELAY_DB",
        default_value = "tokenrelay.sqlite3",
        // A PostgreSQL URL may carry a password: `--help` must not echo it
        // from the environment (`print-config` shows it masked).
        hide_env_values = true,
        global = true
    )]
    db: String,
    /// Where the hub lives (`seq` numbering, replay buffers, live fan-out,
    /// generation leases): absent, in this process; a
    /// `redis://[user:password@]host:port[/db]` URL, in Redis, shared by
    /// every instance on it (a cluster: README, "Running a cluster").
    #[arg(long, env = "TOKENRELAY_HUB", hide_env_values = true, global = true)]
    hub: Option<String>,
    /// With a Redis hub: a generation's lease in milliseconds, renewed every
    /// third of it; the reply of an instance that died ends at most 1.5
    /// leases later.
    #[arg(
        long,
        env = "TOKENRELAY_HUB_LEASE_MS",
        default_value_t = 5000,
        global = true
    )]
    hub_lease_ms: u64,
    /// On SIGTERM or Ctrl-C, seconds the replies already running may take
    /// to finish before they are cut (`stop_reason: shutdown`). Sockets are
    /// told to reconnect elsewhere (1001) at once, and new sockets and new
    /// generations are refused (503) meanwhile. 0 cuts at once.
    #[arg(
        long,
        env = "TOKENRELAY_DRAIN_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    drain_timeout_secs: u64,
    /// HS256 secret for every JWT (default: generated once, kept in the db).
    #[arg(
        long,
        env = "TOKENRELAY_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    jwt_secret: Option<String>,
    /// Agent engine.
    #[arg(long, env = "TOKENRELAY_ENGINE", value_enum, default_value_t = EngineKind::Scripted, global = true)]
    engine: EngineKind,
    /// Default pace of the scripted engine, in milliseconds per token.
    #[arg(
        long,
        env = "TOKENRELAY_SCRIPTED_PACE_MS",
        default_value_t = 20,
        global = true
    )]
    scripted_pace_ms: u64,
    /// OpenAI-compatible base URL (engine `openai`).
    #[arg(
        long,
        env = "TOKENRELAY_OPENAI_URL",
        default_value = "https://api.openai.com/v1",
        global = true
    )]
    openai_url: String,
    /// OpenAI-compatible API key (engine `openai`).
    #[arg(
        long,
        env = "TOKENRELAY_OPENAI_KEY",
        hide_env_values = true,
        global = true
    )]
    openai_key: Option<String>,
    /// Model name (engine `openai`).
    #[arg(
        long,
        env = "TOKENRELAY_OPENAI_MODEL",
        default_value = "gpt-4o-mini",
        global = true
    )]
    openai_model: String,
    /// Most WebSocket connections at once.
    #[arg(
        long,
        env = "TOKENRELAY_MAX_CONNECTIONS",
        default_value_t = 20_000,
        global = true
    )]
    max_connections: usize,
    /// Largest WebSocket message, bytes.
    #[arg(long, env = "TOKENRELAY_MAX_FRAME_BYTES", default_value_t = 256 * 1024, global = true)]
    max_frame_bytes: usize,
    /// Seconds a socket may take to send `connect_to_context`.
    #[arg(
        long,
        env = "TOKENRELAY_HANDSHAKE_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    handshake_timeout_secs: u64,
    /// Requests per minute per credential on the token and key routes.
    #[arg(
        long,
        env = "TOKENRELAY_RATE_LIMIT_PER_MINUTE",
        default_value_t = 120,
        global = true
    )]
    rate_limit_per_minute: u32,
    /// Mount `POST /debug/faults` for SDK test harnesses (never in production).
    #[arg(long, env = "TOKENRELAY_FAULT_INJECTION", global = true)]
    fault_injection: bool,
    /// Speak only the base protocol, as the hosted service does (for SDK
    /// tests: no extensions, results after the reply, plain-text errors).
    #[arg(long, env = "TOKENRELAY_BASE_PROTOCOL", global = true)]
    base_protocol: bool,
    /// A file holding the JWT secret, outside the database (created, mode
    /// 0600, with a fresh secret if missing).
    #[arg(long, env = "TOKENRELAY_JWT_SECRET_FILE", global = true)]
    jwt_secret_file: Option<PathBuf>,
    /// A previous JWT secret still accepted for verification during a
    /// rotation (repeat the flag; comma-separated in the env var).
    #[arg(
        long = "jwt-previous-secret",
        env = "TOKENRELAY_JWT_PREVIOUS_SECRETS",
        value_delimiter = ',',
        hide_env_values = true,
        global = true
    )]
    jwt_previous_secrets: Vec<String>,
    /// Serve `/metrics` on this separate address (e.g. 127.0.0.1:9090).
    #[arg(long, env = "TOKENRELAY_METRICS_BIND", global = true)]
    metrics_bind: Option<String>,
    /// Serve `/metrics` on the main port, to anyone.
    #[arg(long, env = "TOKENRELAY_METRICS_PUBLIC", global = true)]
    metrics_public: bool,
    /// Trust this header for the client's address (per-IP limits behind a
    /// proxy that overwrites it, e.g. `x-forwarded-for`).
    #[arg(long, env = "TOKENRELAY_CLIENT_IP_HEADER", global = true)]
    client_ip_header: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    webhooks: WebhookArgs,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "TOKENRELAY_LOG_JSON", global = true)]
    log_json: bool,
    /// A TOML config file: flag names as keys (read before the flags;
    /// flags and `TOKENRELAY_*` variables win over it).
    #[arg(long, env = "TOKENRELAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Every bound on what a caller can make the server spend
/// (docs/security.md explains each).
#[derive(clap::Args, Debug)]
struct LimitArgs {
    /// Let anyone create an account with `POST /auth/register`.
    #[arg(long, env = "TOKENRELAY_OPEN_REGISTRATION", global = true)]
    open_registration: bool,
    /// Credits a self-registered account's org starts with.
    #[arg(
        long,
        env = "TOKENRELAY_REGISTRATION_CREDITS",
        default_value_t = 0,
        global = true
    )]
    registration_credits: i64,
    /// Register and login requests per minute per client address.
    #[arg(
        long,
        env = "TOKENRELAY_AUTH_PER_IP_PER_MINUTE",
        default_value_t = 30,
        global = true
    )]
    auth_per_ip_per_minute: u32,
    /// Password hashes computed at once (default: one per core).
    #[arg(long, env = "TOKENRELAY_PASSWORD_HASH_CONCURRENCY", global = true)]
    password_hash_concurrency: Option<usize>,
    /// Shortest password accepted at registration.
    #[arg(
        long,
        env = "TOKENRELAY_MIN_PASSWORD_CHARS",
        default_value_t = 15,
        global = true
    )]
    min_password_chars: usize,
    /// Largest REST request body, bytes.
    #[arg(long, env = "TOKENRELAY_MAX_BODY_BYTES", default_value_t = 256 * 1024, global = true)]
    max_body_bytes: usize,
    /// Seconds a client has to send its request headers (and body).
    #[arg(
        long,
        env = "TOKENRELAY_HTTP_HEADER_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    http_header_timeout_secs: u64,
    /// Open TCP connections per peer address (0: no cap; use 0 behind a proxy).
    #[arg(
        long,
        env = "TOKENRELAY_MAX_TCP_CONNECTIONS_PER_IP",
        default_value_t = 1024,
        global = true
    )]
    max_tcp_connections_per_ip: usize,
    /// Open WebSockets per client address.
    #[arg(
        long,
        env = "TOKENRELAY_MAX_SOCKETS_PER_IP",
        default_value_t = 512,
        global = true
    )]
    max_sockets_per_ip: usize,
    /// Sockets attached to one org's contexts at once (with `--hub`, on
    /// all instances together).
    #[arg(
        long,
        env = "TOKENRELAY_MAX_SOCKETS_PER_ORG",
        default_value_t = 5_000,
        global = true
    )]
    max_sockets_per_org: usize,
    /// Seconds between the server's pings on every socket.
    #[arg(
        long,
        env = "TOKENRELAY_PING_INTERVAL_SECS",
        default_value_t = 25,
        global = true
    )]
    ping_interval_secs: u64,
    /// Seconds of silence (no frame, no pong) before a socket is closed.
    #[arg(
        long,
        env = "TOKENRELAY_IDLE_TIMEOUT_SECS",
        default_value_t = 60,
        global = true
    )]
    idle_timeout_secs: u64,
    /// Seconds a socket's writes may stall before it is dropped.
    #[arg(
        long,
        env = "TOKENRELAY_WRITE_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    write_timeout_secs: u64,
    /// Frames a socket may send at once before its rate applies.
    #[arg(
        long,
        env = "TOKENRELAY_SOCKET_FRAME_BURST",
        default_value_t = 64,
        global = true
    )]
    socket_frame_burst: u32,
    /// Frames per second a socket may send, sustained.
    #[arg(
        long,
        env = "TOKENRELAY_SOCKET_FRAMES_PER_SEC",
        default_value_t = 16,
        global = true
    )]
    socket_frames_per_sec: u32,
    /// Invocations queued or running per context.
    #[arg(
        long,
        env = "TOKENRELAY_MAX_PENDING_INVOCATIONS",
        default_value_t = 8,
        global = true
    )]
    max_pending_invocations: usize,
    /// Idempotency keys remembered per context (the oldest go first).
    #[arg(
        long,
        env = "TOKENRELAY_IDEMPOTENCY_KEYS",
        default_value_t = 256,
        global = true
    )]
    idempotency_keys: usize,
    /// How long an idempotency key is remembered, seconds.
    #[arg(
        long,
        env = "TOKENRELAY_IDEMPOTENCY_TTL_SECS",
        default_value_t = 600,
        global = true
    )]
    idempotency_ttl_secs: u64,
    /// Largest message (or tool responses) one invocation may carry, bytes.
    #[arg(long, env = "TOKENRELAY_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024, global = true)]
    max_message_bytes: usize,
    /// History entries kept per context (the oldest go first).
    #[arg(
        long,
        env = "TOKENRELAY_MAX_HISTORY_MESSAGES",
        default_value_t = 1_000,
        global = true
    )]
    max_history_messages: usize,
    /// History kept per context, bytes of JSON (the oldest go first).
    #[arg(long, env = "TOKENRELAY_MAX_HISTORY_BYTES", default_value_t = 1024 * 1024, global = true)]
    max_history_bytes: usize,
    /// Largest `prompt_args` of a context, bytes.
    #[arg(long, env = "TOKENRELAY_MAX_PROMPT_ARGS_BYTES", default_value_t = 16 * 1024, global = true)]
    max_prompt_args_bytes: usize,
    /// Largest agent prompt, before and after its arguments, bytes.
    #[arg(long, env = "TOKENRELAY_MAX_PROMPT_BYTES", default_value_t = 64 * 1024, global = true)]
    max_prompt_bytes: usize,
    /// Longest lifetime of an org key, seconds.
    #[arg(long, env = "TOKENRELAY_MAX_ORG_KEY_TTL_SECS", default_value_t = 365 * 24 * 3600, global = true)]
    max_org_key_ttl_secs: u64,
    /// Seconds to connect to the engine's upstream.
    #[arg(
        long,
        env = "TOKENRELAY_UPSTREAM_CONNECT_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    upstream_connect_timeout_secs: u64,
    /// Seconds of upstream silence that end a response.
    #[arg(
        long,
        env = "TOKENRELAY_UPSTREAM_READ_TIMEOUT_SECS",
        default_value_t = 60,
        global = true
    )]
    upstream_read_timeout_secs: u64,
    /// Most tool rounds one response runs; a model asking for more ends
    /// it with `stop_reason: round_limit`.
    #[arg(
        long,
        env = "TOKENRELAY_MAX_TOOL_ROUNDS",
        default_value_t = tokenrelay_server::engine::rounds::DEFAULT_MAX_ROUNDS,
        global = true
    )]
    max_tool_rounds: usize,
    /// Seconds a client has to answer client-side tool calls; later
    /// answers end the continuation with `stop_reason: tool_timeout`.
    #[arg(
        long,
        env = "TOKENRELAY_CLIENT_TOOL_TIMEOUT_SECS",
        default_value_t = tokenrelay_server::engine::rounds::DEFAULT_CLIENT_TOOL_TIMEOUT_SECS,
        global = true
    )]
    client_tool_timeout_secs: u64,
    /// Allow plain-http origins other than localhost in publishable keys.
    #[arg(long, env = "TOKENRELAY_ALLOW_INSECURE_ORIGINS", global = true)]
    allow_insecure_origins: bool,
}

/// Server tools as signed webhooks (README, "Webhook tools";
/// docs/security.md, "Webhook tools").
#[derive(clap::Args, Debug)]
struct WebhookArgs {
    /// Secret webhook calls are signed with (HMAC-SHA256), at least 32
    /// bytes. Without it, webhook tools answer an error.
    #[arg(
        long,
        env = "TOKENRELAY_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    webhook_secret: Option<String>,
    /// A host webhook calls may go to: `host`, `host:port`, `*.domain`,
    /// `[ipv6]:port` (repeat the flag; comma-separated in the env var).
    /// None given: no webhook call is made.
    #[arg(
        long = "webhook-allow",
        env = "TOKENRELAY_WEBHOOK_ALLOW",
        value_delimiter = ',',
        global = true
    )]
    webhook_allow: Vec<HostPattern>,
    /// Let webhook calls reach loopback, private, link-local and other
    /// non-public addresses (off: only public ones).
    #[arg(long, env = "TOKENRELAY_WEBHOOK_ALLOW_PRIVATE", global = true)]
    webhook_allow_private: bool,
    /// Let webhook URLs use plain http (off: https only).
    #[arg(long, env = "TOKENRELAY_WEBHOOK_ALLOW_HTTP", global = true)]
    webhook_allow_http: bool,
    /// Seconds one webhook call may take, all included.
    #[arg(
        long,
        env = "TOKENRELAY_WEBHOOK_TIMEOUT_SECS",
        default_value_t = tokenrelay_server::engine::webhook::DEFAULT_TIMEOUT_SECS,
        global = true
    )]
    webhook_timeout_secs: u64,
    /// Largest webhook answer read, bytes.
    #[arg(
        long,
        env = "TOKENRELAY_WEBHOOK_MAX_RESPONSE_BYTES",
        default_value_t = tokenrelay_server::engine::webhook::DEFAULT_MAX_RESPONSE_BYTES,
        global = true
    )]
    webhook_max_response_bytes: usize,
}

impl WebhookArgs {
    fn config(&self) -> WebhookConfig {
        WebhookConfig {
            secret: self.webhook_secret.clone().map(WebhookSecret::new),
            allow: self.webhook_allow.clone(),
            allow_private: self.webhook_allow_private,
            allow_http: self.webhook_allow_http,
            timeout: Duration::from_secs(self.webhook_timeout_secs.max(1)),
            max_response_bytes: self.webhook_max_response_bytes,
        }
    }
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        let secs = Duration::from_secs;
        let defaults = Limits::default();
        Limits {
            open_registration: self.open_registration,
            registration_credits: self.registration_credits,
            auth_per_ip_per_minute: self.auth_per_ip_per_minute,
            password_hash_concurrency: self
                .password_hash_concurrency
                .unwrap_or(defaults.password_hash_concurrency),
            min_password_chars: self.min_password_chars,
            max_body_bytes: self.max_body_bytes,
            http_header_timeout: secs(self.http_header_timeout_secs),
            max_tcp_connections_per_ip: self.max_tcp_connections_per_ip,
            max_sockets_per_ip: self.max_sockets_per_ip,
            max_sockets_per_org: self.max_sockets_per_org,
            ping_interval: secs(self.ping_interval_secs.max(1)),
            idle_timeout: secs(self.idle_timeout_secs),
            write_timeout: secs(self.write_timeout_secs),
            socket_frame_burst: self.socket_frame_burst,
            socket_frames_per_sec: self.socket_frames_per_sec,
            max_pending_invocations: self.max_pending_invocations,
            idempotency_keys: self.idempotency_keys,
            idempotency_ttl: secs(self.idempotency_ttl_secs),
            max_message_bytes: self.max_message_bytes,
            max_history_messages: self.max_history_messages,
            max_history_bytes: self.max_history_bytes,
            max_prompt_args_bytes: self.max_prompt_args_bytes,
            max_prompt_bytes: self.max_prompt_bytes,
            max_org_key_ttl_secs: self.max_org_key_ttl_secs,
            upstream_connect_timeout: secs(self.upstream_connect_timeout_secs),
            upstream_read_timeout: secs(self.upstream_read_timeout_secs),
            allow_insecure_origins: self.allow_insecure_origins,
            ..defaults
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Check the config (file, environment, flags) and exit: 0 when it is
    /// usable, 2 with the reason when not.
    CheckConfig,
    /// Print the effective config as TOML, secrets masked.
    PrintConfig,
    /// Write a consistent copy of the SQLite store to FILE (online: the
    /// server may be running), readable only by its owner.
    Backup {
        /// Where to write the copy (must not exist).
        file: PathBuf,
    },
    /// Create an org and print its org API key (shown this once).
    Bootstrap {
        /// The org's name.
        #[arg(long, default_value = "default")]
        org_name: String,
        /// Credits of the org (default: unlimited).
        #[arg(long)]
        credits: Option<i64>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EngineKind {
    Scripted,
    Openai,
}

fn builder(cli: &Cli) -> ServerBuilder {
    let store = StoreConfig::from_db_arg(&cli.db);
    let limits = cli.limits.limits();
    let config = Config {
        jwt_secret: cli.jwt_secret.clone().map(SecretString::from),
        jwt_secret_file: cli.jwt_secret_file.clone(),
        jwt_previous_secrets: cli
            .jwt_previous_secrets
            .iter()
            .map(|s| SecretString::new(s.as_str()))
            .collect(),
        metrics_bind: cli.metrics_bind.clone(),
        metrics_public: cli.metrics_public,
        client_ip_header: cli.client_ip_header.clone(),
        max_connections: cli.max_connections,
        max_frame_bytes: cli.max_frame_bytes,
        handshake_timeout: Duration::from_secs(cli.handshake_timeout_secs),
        rate_limit_requests: cli.rate_limit_per_minute,
        rate_limit_window: Duration::from_secs(60),
        fault_injection: cli.fault_injection,
        base_protocol: cli.base_protocol,
        hub: cli.hub.clone(),
        hub_lease: Duration::from_millis(cli.hub_lease_ms.max(30)),
        webhooks: cli.webhooks.config(),
        drain_timeout: Duration::from_secs(cli.drain_timeout_secs),
        ..Config::default()
    };
    let upstream = (
        limits.upstream_connect_timeout,
        limits.upstream_read_timeout,
    );
    let config = Config { limits, ..config };
    let b = Server::builder()
        .store(store)
        .bind(&cli.bind)
        .config(config);
    let rounds = RoundsConfig {
        max_rounds: cli.limits.max_tool_rounds,
        client_tool_timeout: Duration::from_secs(cli.limits.client_tool_timeout_secs),
    };
    match cli.engine {
        EngineKind::Scripted => b.engine(
            ScriptedEngine::with_pace(Duration::from_millis(cli.scripted_pace_ms))
                .with_rounds(rounds),
        ),
        EngineKind::Openai => b.engine(
            OpenAiEngine::new(OpenAiConfig {
                base_url: cli.openai_url.clone(),
                api_key: cli.openai_key.clone(),
                model: cli.openai_model.clone(),
                connect_timeout: upstream.0,
                read_timeout: upstream.1,
            })
            .with_rounds(rounds),
        ),
    }
}

/// Loads the config file named by `--config` or `TOKENRELAY_CONFIG` into
/// the environment, under each flag's `TOKENRELAY_*` name, where the
/// environment does not already set it (flags are parsed afterwards and
/// win over both). Keys are flag names (`max-connections` or
/// `max_connections`); a list is written as a TOML array.
fn load_config_file() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let from_flag = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--config=").map(str::to_owned).or_else(|| {
            (a == "--config")
                .then(|| args.get(i + 1).cloned())
                .flatten()
        })
    });
    let Some(path) = from_flag.or_else(|| std::env::var("TOKENRELAY_CONFIG").ok()) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("config file {path}: {e}"))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("config file {path}: {e}"))?;
    let command = <Cli as clap::CommandFactory>::command();
    for (key, value) in table {
        let flag = key.replace('_', "-");
        let env = command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()))
            .and_then(|a| a.get_env())
            .ok_or_else(|| format!("config file {path}: unknown setting `{key}`"))?;
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        if std::env::var_os(env).is_none() {
            // Single-threaded here: nothing else reads the environment yet.
            unsafe { std::env::set_var(env, text) };
        }
    }
    Ok(())
}

/// The effective settings, one `key = value` line each, secrets masked.
fn print_config() {
    let command = <Cli as clap::CommandFactory>::command();
    let matches = command.clone().get_matches();
    println!(
        "# tokenrelay-server {}: the effective config",
        env!("CARGO_PKG_VERSION")
    );
    for arg in command.get_arguments() {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else {
            continue;
        };
        if matches!(long, "config" | "help" | "version") {
            continue;
        }
        let Some(values) = matches.get_raw(id) else {
            continue;
        };
        let values: Vec<String> = values.map(|v| v.to_string_lossy().into_owned()).collect();
        let shown = if matches!(id, "db" | "hub") && values.len() == 1 {
            // Shown, for it says where the data is, but with a PostgreSQL
            // password masked.
            toml::Value::String(tokenrelay_server::store::mask_dsn(&values[0])).to_string()
        } else if arg.is_hide_env_values_set() {
            "\"<secret>\"".to_owned()
        } else if values.len() == 1 {
            toml::Value::String(values[0].clone()).to_string()
        } else {
            toml::Value::Array(values.into_iter().map(toml::Value::String).collect()).to_string()
        };
        println!("{} = {shown}", long.replace('-', "_"));
    }
}

/// `backup FILE`: `VACUUM INTO`, SQLite's consistent online copy, then
/// mode 0600 (the copy holds the JWT secret and key hashes).
fn backup(db: &str, file: &std::path::Path) -> Result<(), String> {
    if db == ":memory:" {
        return Err("backup: an in-memory store has nothing to copy".into());
    }
    if tokenrelay_server::store::is_postgres_url(db) {
        return Err(
            "backup: the store is PostgreSQL; back it up with its own tools (pg_dump)".into(),
        );
    }
    if file.exists() {
        return Err(format!(
            "backup: {} exists; not overwriting it",
            file.display()
        ));
    }
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("backup: cannot open {db}: {e}"))?;
    let target = file.to_str().ok_or("backup: the file name is not UTF-8")?;
    conn.execute("VACUUM INTO ?1", [target])
        .map_err(|e| format!("backup: {e}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("backup: {e}"))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    if let Err(e) = load_config_file() {
        eprintln!("tokenrelay-server: {e}");
        std::process::exit(2);
    }
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOKENRELAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout carries only what a command prints for
    // the operator (the bootstrap key), so it can be piped safely.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_json {
        logs.json().init();
    } else {
        logs.init();
    }

    match &cli.command {
        Some(Command::CheckConfig) => {
            // Building the state opens the store and checks the secrets.
            let checked = builder(&cli).build_state().await;
            match checked {
                Ok(_) => {
                    println!("config ok");
                    Ok(())
                }
                Err(e) => {
                    eprintln!("tokenrelay-server: config not usable: {e}");
                    std::process::exit(2);
                }
            }
        }
        Some(Command::PrintConfig) => {
            print_config();
            Ok(())
        }
        Some(Command::Backup { file }) => match backup(&cli.db, file) {
            Ok(()) => {
                println!("backup written to {}", file.display());
                Ok(())
            }
            Err(e) => {
                eprintln!("tokenrelay-server: {e}");
                std::process::exit(2);
            }
        },
        Some(Command::Bootstrap { org_name, credits }) => {
            let (state, _stop) = builder(&cli).build_state().await?;
            let (org_id, key) = tokenrelay_server::server::bootstrap_org(&state, org_name).await?;
            if credits.is_some() {
                state
                    .store
                    .set_credits(&org_id, *credits)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            state
                .store
                .flush()
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            // Printed to stdout only, never logged: this is the one time the
            // key is shown.
            println!("org_id={org_id}");
            println!("org_api_key={key}");
            Ok(())
        }
        Some(Command::Serve) | None => {
            if matches!(cli.engine, EngineKind::Scripted) {
                tracing::warn!(
                    "engine `scripted`: every reply is canned from directives in the message \
                     (for tests and demos); use --engine openai for a real model"
                );
            }
            let server = builder(&cli).spawn().await?;
            tracing::info!(http = %server.http_url(), ws = %server.ws_url(), "ready");
            shutdown_signal().await;
            // The drain logs its own start and end (ServerHandle::shutdown).
            server.shutdown().await;
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
