//! `tokenrelay-server`: run the reference server, or bootstrap its first
//! org. Every flag also reads a `TOKENRELAY_*` environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tokenrelay_server::{
    Config, OpenAiConfig, OpenAiEngine, ScriptedEngine, Server, ServerBuilder, StoreConfig,
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
    /// SQLite file; `:memory:` keeps everything in memory.
    #[arg(
        long,
        env = "TOKENRELAY_DB",
        default_value = "tokenrelay.sqlite3",
        global = true
    )]
    db: String,
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
    /// Log as JSON lines instead of text.
    #[arg(long, env = "TOKENRELAY_LOG_JSON", global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve (the default).
    Serve,
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
    let store = if cli.db == ":memory:" {
        StoreConfig::Memory
    } else {
        StoreConfig::Sqlite(PathBuf::from(&cli.db))
    };
    let config = Config {
        jwt_secret: cli.jwt_secret.clone(),
        max_connections: cli.max_connections,
        max_frame_bytes: cli.max_frame_bytes,
        handshake_timeout: Duration::from_secs(cli.handshake_timeout_secs),
        rate_limit_requests: cli.rate_limit_per_minute,
        rate_limit_window: Duration::from_secs(60),
        fault_injection: cli.fault_injection,
        ..Config::default()
    };
    let b = Server::builder()
        .store(store)
        .bind(&cli.bind)
        .config(config);
    match cli.engine {
        EngineKind::Scripted => b.engine(ScriptedEngine::with_pace(Duration::from_millis(
            cli.scripted_pace_ms,
        ))),
        EngineKind::Openai => b.engine(OpenAiEngine::new(OpenAiConfig {
            base_url: cli.openai_url.clone(),
            api_key: cli.openai_key.clone(),
            model: cli.openai_model.clone(),
        })),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
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
            let server = builder(&cli).spawn().await?;
            tracing::info!(http = %server.http_url(), ws = %server.ws_url(), "ready");
            shutdown_signal().await;
            tracing::info!("shutting down");
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
