//! Persistence behind one trait, [`Store`], so handlers never see SQL.
//!
//! Two backends: SQLite ([`sqlite::SqliteStore`], a file or in memory; the
//! embedded default) and PostgreSQL ([`postgres::PostgresStore`], which
//! several server instances can share). The trait is async and speaks in
//! whole records, with every check-and-change that must be atomic
//! expressed as one method (consume a stream token, charge a credit,
//! create a user whose name must be unique, set a setting once), so a
//! backend keeps it atomic in one statement (`DELETE … RETURNING`, a
//! conditional `UPDATE`, `INSERT … ON CONFLICT`) and no handler changes.

pub mod conformance;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokenrelay::wire::Agent;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Where the data lives.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum StoreConfig {
    /// SQLite in memory: gone when the server stops. For tests and demos.
    #[default]
    Memory,
    /// SQLite file at this path, created (with its migrations) if missing.
    Sqlite(std::path::PathBuf),
    /// PostgreSQL at this DSN (`postgres://user:password@host:port/db`),
    /// migrated at start; several instances may share it. The DSN may
    /// carry a password: `Debug` masks it, and so does [`mask_dsn`].
    Postgres(String),
}

impl StoreConfig {
    /// The store a `--db` value names: `:memory:`, a `postgres://` (or
    /// `postgresql://`) URL, else an SQLite file path.
    pub fn from_db_arg(db: &str) -> StoreConfig {
        if db == ":memory:" {
            StoreConfig::Memory
        } else if is_postgres_url(db) {
            StoreConfig::Postgres(db.to_owned())
        } else {
            StoreConfig::Sqlite(std::path::PathBuf::from(db))
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Memory => f.write_str("Memory"),
            StoreConfig::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            StoreConfig::Postgres(dsn) => f.debug_tuple("Postgres").field(&mask_dsn(dsn)).finish(),
        }
    }
}

/// Whether a `--db` value is a PostgreSQL URL.
pub fn is_postgres_url(db: &str) -> bool {
    let lower = db.get(..13).unwrap_or(db).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// A PostgreSQL or Redis URL with its password (in the user info or a
/// `password=` query parameter) replaced by `***`, fit for logs and
/// `print-config`. Anything else comes back unchanged.
pub fn mask_dsn(db: &str) -> String {
    let lower = db.get(..9).unwrap_or(db).to_ascii_lowercase();
    let redis = lower.starts_with("redis://") || lower.starts_with("rediss://");
    if !is_postgres_url(db) && !redis {
        return db.to_owned();
    }
    let Some((scheme, rest)) = db.split_once("://") else {
        return db.to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // The user info ends at the last `@` before the query (a password
    // with an unencoded `@` still ends up masked whole).
    let mut out = format!("{scheme}://");
    match before_query.rfind('@') {
        Some(at) => {
            let (userinfo, hosts) = before_query.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _password)) => out.push_str(&format!("{user}:***")),
                None => out.push_str(userinfo),
            }
            out.push_str(hosts);
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The record does not exist.
    NotFound,
    /// A uniqueness rule refused the write; the text says which.
    Conflict(String),
    /// The backend failed (I/O, corruption, a bug). Logged, answered as 500.
    Backend(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("not found"),
            StoreError::Conflict(what) => write!(f, "conflict: {what}"),
            StoreError::Backend(what) => write!(f, "store backend: {what}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// An organisation: owns agents, contexts and keys, and has a credit balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRecord {
    /// Org id (uuid).
    pub org_id: String,
    /// Display name.
    pub name: String,
    /// Credits left; `None` is unlimited (the default).
    pub credits: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Kind of a JWT API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// Long-lived, server-side, full REST access for its org.
    Org,
    /// Short-lived, WebSocket only.
    Client,
}

impl KeyKind {
    /// The `type` claim / field value.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Org => "org",
            KeyKind::Client => "client",
        }
    }
}

/// The store's record of an org or client API key. The JWT itself is never
/// stored: the record exists so a key can be revoked at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// `api_key_id` claim.
    pub api_key_id: String,
    /// Owning org.
    pub org_id: String,
    /// Org or client.
    pub kind: KeyKind,
    /// Creator (for org keys, the key's own id, as observed).
    pub user_id: String,
    /// Optional `client_id` claim.
    pub client_id: Option<String>,
    /// Context scope of a client key, if any.
    pub context_id: Option<String>,
    /// False once revoked.
    pub valid: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// `exp` claim, unix seconds.
    pub expires_at: i64,
    /// The credential that minted it (`key:{id}`, `user_key:{id}`,
    /// `user:{id}`); revoking that credential revokes this key too.
    /// `None` for keys minted by the operator (`bootstrap`).
    pub minted_by: Option<String>,
}

/// A conversation: the agent it runs and its history.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextRecord {
    /// Context id (uuid).
    pub context_id: String,
    /// Owning org (the org of the agent's creator's credential).
    pub org_id: String,
    /// The agent.
    pub agent_id: String,
    /// Who created it (key id or user id).
    pub user_id: String,
    /// History: `{sender, message}`, `{type: "tool_call", …}`,
    /// `{type: "tool_response", …}`.
    pub messages: Vec<Value>,
    /// Opaque app data.
    pub user_defined: Value,
    /// Prompt template arguments.
    pub prompt_args: Value,
    /// Highest notification `seq` sent on this context (so `seq` keeps
    /// increasing across restarts).
    pub last_seq: u64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A person who can log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// User id (uuid).
    pub user_id: String,
    /// Unique login name.
    pub username: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// The user's personal org (created with the user).
    pub org_id: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Metadata of a user API key (`sk_live_…`). The key is stored only as its
/// SHA-256, in a column this record does not expose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserApiKeyRecord {
    /// Numeric id.
    pub id: i64,
    /// Owner.
    pub user_id: String,
    /// Unique per user.
    pub nickname: String,
    /// SHA-256 hex of the key.
    pub key_hash: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// What a single-use stream token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTokenRecord {
    /// SHA-256 hex of the token.
    pub token_hash: String,
    /// The org whose contexts it opens and whose credits it used.
    pub org_id: String,
    /// The credential that minted it (key id or user id), for audit logs.
    pub subject: String,
    /// Unix milliseconds after which it is void.
    pub expires_at_ms: i64,
}

/// An org's publishable client key (`pk_…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishableKeyRecord {
    /// Owning org (one key per org).
    pub org_id: String,
    /// Id inside the key's JWT.
    pub key_id: String,
    /// Exact `Origin` values allowed, e.g. `https://app.example.com`.
    pub allowed_origins: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Everything the server persists. See the module docs for the rules an
/// implementation must keep.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads a server setting (the JWT secret when none is configured).
    async fn get_setting(&self, name: &str) -> StoreResult<Option<String>>;
    /// Writes a server setting.
    async fn put_setting(&self, name: &str, value: &str) -> StoreResult<()>;
    /// Writes a setting unless it has a value already, and returns the
    /// value that stands: `value`, or the one written first. Instances
    /// starting at once on one store agree on one generated JWT secret
    /// this way. The default (read, then write) is right only for a store
    /// that a single process uses; shared backends do it atomically.
    async fn put_setting_if_absent(&self, name: &str, value: &str) -> StoreResult<String> {
        if let Some(existing) = self.get_setting(name).await? {
            return Ok(existing);
        }
        self.put_setting(name, value).await?;
        Ok(value.to_owned())
    }

    /// Creates an org.
    async fn create_org(&self, org: &OrgRecord) -> StoreResult<()>;
    /// Reads an org.
    async fn get_org(&self, org_id: &str) -> StoreResult<Option<OrgRecord>>;
    /// Sets an org's credit balance (`None` = unlimited).
    async fn set_credits(&self, org_id: &str, credits: Option<i64>) -> StoreResult<()>;
    /// Atomically takes `amount` credits; false (and nothing taken) when the
    /// balance is too low. Always true for unlimited orgs.
    async fn charge_credits(&self, org_id: &str, amount: i64) -> StoreResult<bool>;

    /// Records a freshly minted org or client key.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// Reads a key record.
    async fn get_api_key(&self, api_key_id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Revokes a key; false if unknown.
    async fn revoke_api_key(&self, api_key_id: &str) -> StoreResult<bool>;
    /// Revokes every valid key minted by `minted_by`; returns their ids.
    async fn revoke_keys_minted_by(&self, minted_by: &str) -> StoreResult<Vec<String>>;
    /// An org's keys of `kind` (metadata only: the JWTs are never stored),
    /// newest first, at most `limit`.
    async fn list_api_keys(
        &self,
        org_id: &str,
        kind: KeyKind,
        limit: usize,
    ) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Deletes key records that expired before `now` (unix seconds) and
    /// stream tokens that expired before `now * 1000`; returns how many
    /// rows went.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;

    /// Creates or replaces an agent.
    async fn put_agent(&self, agent: &Agent) -> StoreResult<()>;
    /// Reads an agent.
    async fn get_agent(&self, agent_id: &str) -> StoreResult<Option<Agent>>;
    /// Agents of an org, oldest first.
    async fn list_agents(&self, org_id: &str) -> StoreResult<Vec<Agent>>;
    /// Deletes an agent; false if unknown.
    async fn delete_agent(&self, agent_id: &str) -> StoreResult<bool>;

    /// Creates a context.
    async fn create_context(&self, context: &ContextRecord) -> StoreResult<()>;
    /// Reads a context.
    async fn get_context(&self, context_id: &str) -> StoreResult<Option<ContextRecord>>;
    /// The org of a context, without loading its history (a cheap
    /// existence check on every invocation).
    async fn context_org(&self, context_id: &str) -> StoreResult<Option<String>>;
    /// Deletes a context; false if unknown.
    async fn delete_context(&self, context_id: &str) -> StoreResult<bool>;
    /// Replaces a context's history and its last `seq`.
    async fn save_context_history(
        &self,
        context_id: &str,
        messages: &[Value],
        last_seq: u64,
    ) -> StoreResult<()>;

    /// Creates a user; `Conflict` if the username is taken.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Finds a user by login name.
    async fn get_user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// Reads a user.
    async fn get_user(&self, user_id: &str) -> StoreResult<Option<UserRecord>>;

    /// Stores a user API key's hash; `Conflict` if the nickname is taken
    /// for that user. Returns the record with its new id.
    async fn create_user_api_key(
        &self,
        user_id: &str,
        nickname: &str,
        key_hash: &str,
        now: i64,
    ) -> StoreResult<UserApiKeyRecord>;
    /// A user's keys, oldest first.
    async fn list_user_api_keys(&self, user_id: &str) -> StoreResult<Vec<UserApiKeyRecord>>;
    /// Finds the key whose hash is `key_hash`.
    async fn find_user_api_key(&self, key_hash: &str) -> StoreResult<Option<UserApiKeyRecord>>;
    /// Reads a key by id.
    async fn get_user_api_key(&self, id: i64) -> StoreResult<Option<UserApiKeyRecord>>;
    /// Deletes a key; false if unknown.
    async fn delete_user_api_key(&self, id: i64) -> StoreResult<bool>;

    /// Stores a stream token (its hash).
    async fn put_stream_token(&self, token: &StreamTokenRecord) -> StoreResult<()>;
    /// Atomically removes the token and returns it if it existed and had not
    /// expired at `now_ms`. Of two concurrent calls at most one gets `Some`.
    async fn consume_stream_token(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<StreamTokenRecord>>;

    /// Creates or replaces an org's publishable key.
    async fn put_publishable_key(&self, key: &PublishableKeyRecord) -> StoreResult<()>;
    /// Reads an org's publishable key.
    async fn get_publishable_key(&self, org_id: &str) -> StoreResult<Option<PublishableKeyRecord>>;
    /// Revokes an org's publishable key; false if it had none.
    async fn delete_publishable_key(&self, org_id: &str) -> StoreResult<bool>;

    /// Makes every write durable (called on graceful shutdown).
    async fn flush(&self) -> StoreResult<()>;
}

/// Opens the configured backend, running its migrations.
pub async fn open(config: &StoreConfig) -> StoreResult<std::sync::Arc<dyn Store>> {
    Ok(match config {
        StoreConfig::Memory => std::sync::Arc::new(SqliteStore::open_in_memory()?),
        StoreConfig::Sqlite(path) => std::sync::Arc::new(SqliteStore::open(path)?),
        StoreConfig::Postgres(dsn) => std::sync::Arc::new(PostgresStore::connect(dsn).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_db_value_picks_the_backend() {
        assert_eq!(StoreConfig::from_db_arg(":memory:"), StoreConfig::Memory);
        assert_eq!(
            StoreConfig::from_db_arg("relay.sqlite3"),
            StoreConfig::Sqlite("relay.sqlite3".into())
        );
        for url in ["postgres://h/db", "postgresql://h/db", "POSTGRES://h/db"] {
            assert_eq!(
                StoreConfig::from_db_arg(url),
                StoreConfig::Postgres(url.into())
            );
        }
    }

    #[test]
    fn passwords_in_a_dsn_are_masked() {
        for (dsn, shown) in [
            (
                "postgres://relay:s3cret@db.internal:5432/relay",
                "postgres://relay:***@db.internal:5432/relay",
            ),
            (
                "postgres://relay:p@ss@db/relay?sslmode=disable",
                "postgres://relay:***@db/relay?sslmode=disable",
            ),
            (
                "postgresql://db/relay?user=relay&password=s3cret",
                "postgresql://db/relay?user=relay&password=***",
            ),
            ("postgres://relay@db/relay", "postgres://relay@db/relay"),
            ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
            ("redis://cache:6379", "redis://cache:6379"),
            ("relay.sqlite3", "relay.sqlite3"),
        ] {
            assert_eq!(mask_dsn(dsn), shown);
        }
        let debug = format!(
            "{:?}",
            StoreConfig::Postgres("postgres://u:s3cret@h/d".into())
        );
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
