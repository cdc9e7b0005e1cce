//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// tokenrelay on the command line: manage agents, contexts and keys on a
/// tokenrelay server, chat with a context or tail its stream.
///
/// Settings come from flags, then the environment (TOKENRELAY_URL,
/// TOKENRELAY_API_KEY, TOKENRELAY_ORG_ID, TOKENRELAY_WS_URL), then a TOML
/// config file (--config, TOKENRELAY_CONFIG, or
/// ~/.config/tokenrelay/config.toml), in that order.
#[derive(Parser, Debug)]
#[command(name = "tokenrelay", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Args, Debug)]
pub(crate) struct Global {
    /// The server's HTTP base URL [default: http://127.0.0.1:8080].
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Its WebSocket URL [default: derived from --url, path /ws].
    #[arg(long, global = true)]
    pub ws_url: Option<String>,
    /// The credential: an org API key, a user's access token or a user API
    /// key. Prefer the environment or the config file: a flag shows in the
    /// process list.
    #[arg(long, global = true)]
    pub api_key: Option<String>,
    /// The org to act on [default: read from an org key, or from /auth/me].
    #[arg(long, global = true)]
    pub org: Option<String>,
    /// The config file to read.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// A CA certificate (PEM file) to trust on top of the system's roots,
    /// for a server whose certificate a private CA issued.
    #[arg(long, global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Allow http:// and ws:// to a host that is not loopback (credentials
    /// then cross the network unencrypted).
    #[arg(long, global = true)]
    pub allow_insecure: bool,
    /// Machine-readable output: one JSON document (or one JSON line per
    /// event for `tail` and `chat`) on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Agents: create, list, show, delete.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Contexts (conversations): create, show, delete.
    #[command(subcommand)]
    Contexts(ContextsCommand),
    /// Org and client API keys: mint, list, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// People: register, log in, who am I, personal API keys.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Mint a single-use stream token (opens one WebSocket).
    StreamToken {
        /// Seconds until it expires unused (1 to 300).
        #[arg(long, default_value_t = 60)]
        ttl: u32,
    },
    /// Chat with a context in the terminal: type a line, watch the reply
    /// stream. Ctrl-C stops the reply being written; a second Ctrl-C (or
    /// one while idle, or end of input) exits.
    Chat {
        /// The context to talk to.
        context: String,
    },
    /// Send one message to a context and print the reply as it streams;
    /// exits when the reply ends (non-zero unless it completed).
    Send {
        /// The context.
        context: String,
        /// The message.
        message: String,
    },
    /// Print every event of a context as it streams, until Ctrl-C.
    Tail {
        /// The context to watch.
        context: String,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `tokenrelay agents …`
#[derive(Subcommand, Debug)]
pub(crate) enum AgentsCommand {
    /// Create an agent.
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Its instructions (`{name}` placeholders are filled by a
        /// context's prompt args).
        #[arg(long, default_value = "")]
        prompt: String,
        /// Let other orgs start contexts on it.
        #[arg(long)]
        public: bool,
        /// It opens every new conversation itself.
        #[arg(long)]
        speaks_first: bool,
    },
    /// The org's agents.
    List,
    /// One agent.
    Show {
        /// Its id.
        id: String,
    },
    /// Delete an agent.
    Delete {
        /// Its id.
        id: String,
    },
}

/// `tokenrelay contexts …`
#[derive(Subcommand, Debug)]
pub(crate) enum ContextsCommand {
    /// Start a conversation on an agent; prints its id.
    Create {
        /// The agent.
        #[arg(long)]
        agent: String,
        /// A prompt argument, `NAME=VALUE` (repeatable).
        #[arg(long = "arg", value_name = "NAME=VALUE", value_parser = parse_pair)]
        args: Vec<(String, String)>,
        /// Let an agent that speaks first do so before this returns.
        #[arg(long)]
        invoke: bool,
    },
    /// A context with its history.
    Show {
        /// Its id.
        id: String,
    },
    /// Delete a context (stops whatever it is generating).
    Delete {
        /// Its id.
        id: String,
    },
}

/// `tokenrelay keys …`
#[derive(Subcommand, Debug)]
pub(crate) enum KeysCommand {
    /// Mint a key and print it (the JWT): a client key scoped to one
    /// context by default, or an org key with `--org-key`.
    Mint {
        /// The context a client key may attach to.
        #[arg(long, required_unless_present = "org_key")]
        context: Option<String>,
        /// Seconds until it expires.
        #[arg(long)]
        ttl: Option<u64>,
        /// Mint an org key instead (full access to the org: keep it on a
        /// backend).
        #[arg(long, conflicts_with = "context")]
        org_key: bool,
    },
    /// The org's keys, as metadata (the keys themselves are never stored).
    List {
        /// Which kind.
        #[arg(long, value_enum, default_value_t = KeyKind::Org)]
        kind: KeyKind,
        /// At most this many, newest first.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Revoke a key (and every key it minted); its sockets close.
    Revoke {
        /// The key's `api_key_id`.
        id: String,
    },
}

/// Org or client keys.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// Org API keys.
    Org,
    /// Client keys.
    Client,
}

/// `tokenrelay users …`
#[derive(Subcommand, Debug)]
pub(crate) enum UsersCommand {
    /// Create an account (the password is read from stdin's first line, or
    /// from TOKENRELAY_PASSWORD).
    Register {
        /// The username.
        #[arg(long)]
        username: String,
    },
    /// Log in; prints an access token (the password as for `register`).
    Login {
        /// The username.
        #[arg(long)]
        username: String,
    },
    /// The account the credential belongs to.
    Me,
    /// Personal API keys: create (printed once), list, delete.
    #[command(subcommand)]
    Keys(UserKeysCommand),
}

/// `tokenrelay users keys …`
#[derive(Subcommand, Debug)]
pub(crate) enum UserKeysCommand {
    /// Create one; the key is printed this once.
    Create {
        /// A name for it, unique per user.
        nickname: String,
    },
    /// The user's keys (never the keys themselves).
    List,
    /// Delete one; it stops working at once.
    Delete {
        /// Its id.
        id: String,
    },
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    if name.is_empty() {
        return Err(format!("`{text}` has an empty name"));
    }
    Ok((name.to_owned(), value.to_owned()))
}
