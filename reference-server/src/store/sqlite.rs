//! The SQLite backend (rusqlite, bundled).
//!
//! One connection behind a mutex: every statement is a short indexed read
//! or write, so holding a std mutex for it is cheaper than a hop to a
//! blocking thread, and it makes each method trivially atomic (the stream
//! token race relies on that plus `DELETE … RETURNING`). A file database
//! runs in WAL mode so readers and the writer do not block each other on
//! disk.

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;
use tokenrelay::wire::Agent;

use super::{
    ApiKeyRecord, ContextRecord, KeyKind, OrgRecord, PublishableKeyRecord, Store, StoreError,
    StoreResult, StreamTokenRecord, UserApiKeyRecord, UserRecord,
};

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many ran. Append new ones, never edit old ones.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE orgs (
    org_id TEXT PRIMARY KEY, name TEXT NOT NULL, credits INTEGER, created_at INTEGER NOT NULL
);
CREATE TABLE api_keys (
    api_key_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, kind TEXT NOT NULL, user_id TEXT NOT NULL,
    client_id TEXT, context_id TEXT, valid INTEGER NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, expires_at INTEGER NOT NULL
);
CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL
);
CREATE INDEX agents_by_org ON agents (org_id, created_at);
CREATE TABLE contexts (
    context_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, agent_id TEXT NOT NULL, user_id TEXT NOT NULL,
    messages TEXT NOT NULL, user_defined TEXT NOT NULL, prompt_args TEXT NOT NULL,
    last_seq INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
);
CREATE TABLE users (
    user_id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
    org_id TEXT NOT NULL, created_at INTEGER NOT NULL
);
CREATE TABLE user_api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, nickname TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    UNIQUE (user_id, nickname)
);
CREATE TABLE stream_tokens (
    token_hash TEXT PRIMARY KEY, org_id TEXT NOT NULL, subject TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE TABLE publishable_keys (
    org_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, allowed_origins TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
"#,
    r#"
ALTER TABLE api_keys ADD COLUMN minted_by TEXT;
CREATE INDEX api_keys_by_minter ON api_keys (minted_by);
CREATE INDEX api_keys_by_org ON api_keys (org_id, kind, created_at);
CREATE INDEX api_keys_by_expiry ON api_keys (expires_at);
"#,
];

/// SQLite implementation of [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(err, _)
            if err.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl SqliteStore {
    /// Opens (creating if needed) a database file and migrates it.
    pub fn open(path: &Path) -> StoreResult<Self> {
        create_private(path)?;
        let conn = Connection::open(path).map_err(backend)?;
        // WAL: durable on commit with `synchronous = NORMAL` against process
        // crashes, and readers do not block the writer.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        Self::from_connection(conn)
    }

    /// An in-memory database, empty, migrated.
    pub fn open_in_memory() -> StoreResult<Self> {
        Self::from_connection(Connection::open_in_memory().map_err(backend)?)
    }

    fn from_connection(mut conn: Connection) -> StoreResult<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let run = || {
            // A poisoned mutex only means another call panicked
            // mid-statement; SQLite rolled that statement back, so the
            // connection is usable.
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn).map_err(backend)
        };
        // A statement can wait on the mutex behind a long history write, or
        // on the disk: on a multi-threaded runtime the worker hands its
        // other tasks to a fresh thread meanwhile, so sockets keep
        // streaming. (`block_in_place` borrows instead of needing `'static`
        // data as `spawn_blocking` would; a current-thread runtime, as in
        // unit tests, just runs the statement.)
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
            _ => run(),
        }
    }
}

/// Creates the database file with mode 0600 (it holds password hashes and,
/// unless kept elsewhere, the JWT secret), and tightens an existing file
/// that others can read. SQLite's `-wal` and `-shm` files take the main
/// file's mode.
fn create_private(path: &Path) -> StoreResult<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(backend)?;
        let mode = file.metadata().map_err(backend)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(backend)?;
            tracing::warn!("the database file was readable by others; its mode is now 0600");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let version: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
        .map_err(backend)? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::info!(migration = i + 1, "applied store migration");
    }
    Ok(())
}

fn api_key_from_row(r: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let kind: String = r.get(2)?;
    Ok(ApiKeyRecord {
        api_key_id: r.get(0)?,
        org_id: r.get(1)?,
        kind: if kind == "org" {
            KeyKind::Org
        } else {
            KeyKind::Client
        },
        user_id: r.get(3)?,
        client_id: r.get(4)?,
        context_id: r.get(5)?,
        valid: r.get::<_, i64>(6)? != 0,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        expires_at: r.get(9)?,
        minted_by: r.get(10)?,
    })
}

fn context_from_row(r: &Row<'_>) -> rusqlite::Result<ContextRecord> {
    let messages: String = r.get(4)?;
    let messages = match parse_json(&messages) {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    Ok(ContextRecord {
        context_id: r.get(0)?,
        org_id: r.get(1)?,
        agent_id: r.get(2)?,
        user_id: r.get(3)?,
        messages,
        user_defined: parse_json(&r.get::<_, String>(5)?),
        prompt_args: parse_json(&r.get::<_, String>(6)?),
        last_seq: r.get::<_, i64>(7)?.max(0) as u64,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        user_id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        org_id: r.get(3)?,
        created_at: r.get(4)?,
    })
}

fn user_key_from_row(r: &Row<'_>) -> rusqlite::Result<UserApiKeyRecord> {
    Ok(UserApiKeyRecord {
        id: r.get(0)?,
        user_id: r.get(1)?,
        nickname: r.get(2)?,
        key_hash: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

fn agent_from_body(body: String) -> Option<Agent> {
    serde_json::from_str(&body).ok()
}

const API_KEY_COLS: &str = "api_key_id, org_id, kind, user_id, client_id, context_id, valid, created_at, updated_at, expires_at, minted_by";
const CONTEXT_COLS: &str = "context_id, org_id, agent_id, user_id, messages, user_defined, prompt_args, last_seq, created_at, updated_at";
const USER_KEY_COLS: &str = "id, user_id, nickname, key_hash, created_at, updated_at";

#[async_trait]
impl Store for SqliteStore {
    async fn get_setting(&self, name: &str) -> StoreResult<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    async fn put_setting(&self, name: &str, value: &str) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [name, value],
            )
            .map(drop)
        })
    }

    async fn put_setting_if_absent(&self, name: &str, value: &str) -> StoreResult<String> {
        self.with(|c| {
            c.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                [name, value],
            )?;
            c.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                r.get(0)
            })
        })
    }

    async fn create_org(&self, org: &OrgRecord) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO orgs (org_id, name, credits, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![org.org_id, org.name, org.credits, org.created_at],
            )
            .map(drop)
        })
    }

    async fn get_org(&self, org_id: &str) -> StoreResult<Option<OrgRecord>> {
        self.with(|c| {
            c.query_row(
                "SELECT org_id, name, credits, created_at FROM orgs WHERE org_id = ?1",
                [org_id],
                |r| {
                    Ok(OrgRecord {
                        org_id: r.get(0)?,
                        name: r.get(1)?,
                        credits: r.get(2)?,
                        created_at: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    async fn set_credits(&self, org_id: &str, credits: Option<i64>) -> StoreResult<()> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE orgs SET credits = ?2 WHERE org_id = ?1",
                params![org_id, credits],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn charge_credits(&self, org_id: &str, amount: i64) -> StoreResult<bool> {
        self.with(|c| {
            // One statement: unlimited orgs (NULL) match and stay NULL
            // (NULL - n is NULL); limited ones only match with enough left.
            let n = c.execute(
                "UPDATE orgs SET credits = credits - ?2
                 WHERE org_id = ?1 AND (credits IS NULL OR credits >= ?2)",
                params![org_id, amount],
            )?;
            Ok(n == 1)
        })
    }

    async fn insert_api_key(&self, k: &ApiKeyRecord) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO api_keys ({API_KEY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![
                    k.api_key_id,
                    k.org_id,
                    k.kind.as_str(),
                    k.user_id,
                    k.client_id,
                    k.context_id,
                    k.valid as i64,
                    k.created_at,
                    k.updated_at,
                    k.expires_at,
                    k.minted_by
                ],
            )
            .map(drop)
        })
    }

    async fn get_api_key(&self, api_key_id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {API_KEY_COLS} FROM api_keys WHERE api_key_id = ?1"),
                [api_key_id],
                api_key_from_row,
            )
            .optional()
        })
    }

    async fn revoke_api_key(&self, api_key_id: &str) -> StoreResult<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE api_keys SET valid = 0, updated_at = ?2 WHERE api_key_id = ?1",
                params![api_key_id, crate::time::unix_now()],
            )
            .map(|n| n == 1)
        })
    }

    async fn revoke_keys_minted_by(&self, minted_by: &str) -> StoreResult<Vec<String>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "UPDATE api_keys SET valid = 0, updated_at = ?2
                 WHERE minted_by = ?1 AND valid = 1 RETURNING api_key_id",
            )?;
            let ids = stmt
                .query_map(params![minted_by, crate::time::unix_now()], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(ids)
        })
    }

    async fn list_api_keys(
        &self,
        org_id: &str,
        kind: KeyKind,
        limit: usize,
    ) -> StoreResult<Vec<ApiKeyRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {API_KEY_COLS} FROM api_keys WHERE org_id = ?1 AND kind = ?2
                 ORDER BY created_at DESC, api_key_id LIMIT ?3"
            ))?;
            let rows = stmt
                .query_map(
                    params![org_id, kind.as_str(), limit.min(i64::MAX as usize) as i64],
                    api_key_from_row,
                )?
                .collect();
            rows
        })
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.with(|c| {
            let keys = c.execute("DELETE FROM api_keys WHERE expires_at < ?1", [now])?;
            let tokens = c.execute(
                "DELETE FROM stream_tokens WHERE expires_at_ms < ?1",
                [now.saturating_mul(1000)],
            )?;
            Ok((keys + tokens) as u64)
        })
    }

    async fn put_agent(&self, agent: &Agent) -> StoreResult<()> {
        let body = serde_json::to_string(agent).map_err(backend)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO agents (agent_id, org_id, body, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (agent_id) DO UPDATE SET body = excluded.body",
                params![
                    agent.agent_id,
                    agent.org_id,
                    body,
                    agent.created_at.unwrap_or(0)
                ],
            )
            .map(drop)
        })
    }

    async fn get_agent(&self, agent_id: &str) -> StoreResult<Option<Agent>> {
        let body: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT body FROM agents WHERE agent_id = ?1",
                [agent_id],
                |r| r.get(0),
            )
            .optional()
        })?;
        Ok(body.and_then(agent_from_body))
    }

    async fn list_agents(&self, org_id: &str) -> StoreResult<Vec<Agent>> {
        let bodies: Vec<String> = self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT body FROM agents WHERE org_id = ?1 ORDER BY created_at, agent_id",
            )?;
            let rows = stmt.query_map([org_id], |r| r.get(0))?;
            rows.collect()
        })?;
        Ok(bodies.into_iter().filter_map(agent_from_body).collect())
    }

    async fn delete_agent(&self, agent_id: &str) -> StoreResult<bool> {
        self.with(|c| {
            c.execute("DELETE FROM agents WHERE agent_id = ?1", [agent_id])
                .map(|n| n == 1)
        })
    }

    async fn create_context(&self, x: &ContextRecord) -> StoreResult<()> {
        let messages = Value::Array(x.messages.clone()).to_string();
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO contexts ({CONTEXT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    x.context_id,
                    x.org_id,
                    x.agent_id,
                    x.user_id,
                    messages,
                    x.user_defined.to_string(),
                    x.prompt_args.to_string(),
                    x.last_seq as i64,
                    x.created_at,
                    x.updated_at
                ],
            )
            .map(drop)
        })
    }

    async fn get_context(&self, context_id: &str) -> StoreResult<Option<ContextRecord>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {CONTEXT_COLS} FROM contexts WHERE context_id = ?1"),
                [context_id],
                context_from_row,
            )
            .optional()
        })
    }

    async fn context_org(&self, context_id: &str) -> StoreResult<Option<String>> {
        self.with(|c| {
            c.query_row(
                "SELECT org_id FROM contexts WHERE context_id = ?1",
                [context_id],
                |r| r.get(0),
            )
            .optional()
        })
    }

    async fn delete_context(&self, context_id: &str) -> StoreResult<bool> {
        self.with(|c| {
            c.execute("DELETE FROM contexts WHERE context_id = ?1", [context_id])
                .map(|n| n == 1)
        })
    }

    async fn save_context_history(
        &self,
        context_id: &str,
        messages: &[Value],
        last_seq: u64,
    ) -> StoreResult<()> {
        let messages = serde_json::to_string(messages).map_err(backend)?;
        self.with(|c| {
            c.execute(
                "UPDATE contexts SET messages = ?2, last_seq = MAX(last_seq, ?3), updated_at = ?4
                 WHERE context_id = ?1",
                params![
                    context_id,
                    messages,
                    last_seq as i64,
                    crate::time::unix_now()
                ],
            )
            .map(drop)
        })
    }

    async fn create_user(&self, u: &UserRecord) -> StoreResult<()> {
        let result = self.with(|c| {
            Ok(c.execute(
                "INSERT INTO users (user_id, username, password_hash, org_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    u.user_id,
                    u.username,
                    u.password_hash,
                    u.org_id,
                    u.created_at
                ],
            ))
        })?;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict("Username already registered".into()))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn get_user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.with(|c| {
            c.query_row(
                "SELECT user_id, username, password_hash, org_id, created_at FROM users WHERE username = ?1",
                [username],
                user_from_row,
            )
            .optional()
        })
    }

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<UserRecord>> {
        self.with(|c| {
            c.query_row(
                "SELECT user_id, username, password_hash, org_id, created_at FROM users WHERE user_id = ?1",
                [user_id],
                user_from_row,
            )
            .optional()
        })
    }

    async fn create_user_api_key(
        &self,
        user_id: &str,
        nickname: &str,
        key_hash: &str,
        now: i64,
    ) -> StoreResult<UserApiKeyRecord> {
        let result = self.with(|c| {
            Ok(c.execute(
                "INSERT INTO user_api_keys (user_id, nickname, key_hash, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![user_id, nickname, key_hash, now],
            )
            .map(|_| c.last_insert_rowid()))
        })?;
        match result {
            Ok(id) => Ok(UserApiKeyRecord {
                id,
                user_id: user_id.to_owned(),
                nickname: nickname.to_owned(),
                key_hash: key_hash.to_owned(),
                created_at: now,
                updated_at: now,
            }),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(
                "An API key with this nickname already exists".into(),
            )),
            Err(e) => Err(backend(e)),
        }
    }

    async fn list_user_api_keys(&self, user_id: &str) -> StoreResult<Vec<UserApiKeyRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {USER_KEY_COLS} FROM user_api_keys WHERE user_id = ?1 ORDER BY id"
            ))?;
            let rows = stmt.query_map([user_id], user_key_from_row)?;
            rows.collect()
        })
    }

    async fn find_user_api_key(&self, key_hash: &str) -> StoreResult<Option<UserApiKeyRecord>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {USER_KEY_COLS} FROM user_api_keys WHERE key_hash = ?1"),
                [key_hash],
                user_key_from_row,
            )
            .optional()
        })
    }

    async fn get_user_api_key(&self, id: i64) -> StoreResult<Option<UserApiKeyRecord>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {USER_KEY_COLS} FROM user_api_keys WHERE id = ?1"),
                [id],
                user_key_from_row,
            )
            .optional()
        })
    }

    async fn delete_user_api_key(&self, id: i64) -> StoreResult<bool> {
        self.with(|c| {
            c.execute("DELETE FROM user_api_keys WHERE id = ?1", [id])
                .map(|n| n == 1)
        })
    }

    async fn put_stream_token(&self, t: &StreamTokenRecord) -> StoreResult<()> {
        self.with(|c| {
            // Expired tokens are swept here rather than by a timer.
            c.execute(
                "DELETE FROM stream_tokens WHERE expires_at_ms < ?1",
                [crate::time::unix_now_ms()],
            )?;
            c.execute(
                "INSERT INTO stream_tokens (token_hash, org_id, subject, expires_at_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![t.token_hash, t.org_id, t.subject, t.expires_at_ms],
            )
            .map(drop)
        })
    }

    async fn consume_stream_token(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<StreamTokenRecord>> {
        self.with(|c| {
            // Delete-and-return in one statement: whoever deletes the row
            // wins; an expired row is deleted too but does not count.
            let row = c
                .query_row(
                    "DELETE FROM stream_tokens WHERE token_hash = ?1
                     RETURNING token_hash, org_id, subject, expires_at_ms",
                    [token_hash],
                    |r| {
                        Ok(StreamTokenRecord {
                            token_hash: r.get(0)?,
                            org_id: r.get(1)?,
                            subject: r.get(2)?,
                            expires_at_ms: r.get(3)?,
                        })
                    },
                )
                .optional()?;
            Ok(row.filter(|t| t.expires_at_ms >= now_ms))
        })
    }

    async fn put_publishable_key(&self, k: &PublishableKeyRecord) -> StoreResult<()> {
        let origins = serde_json::to_string(&k.allowed_origins).map_err(backend)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO publishable_keys (org_id, key_id, allowed_origins, created_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (org_id) DO UPDATE SET key_id = excluded.key_id,
                   allowed_origins = excluded.allowed_origins, created_at = excluded.created_at",
                params![k.org_id, k.key_id, origins, k.created_at],
            )
            .map(drop)
        })
    }

    async fn get_publishable_key(&self, org_id: &str) -> StoreResult<Option<PublishableKeyRecord>> {
        self.with(|c| {
            c.query_row(
                "SELECT org_id, key_id, allowed_origins, created_at FROM publishable_keys WHERE org_id = ?1",
                [org_id],
                |r| {
                    let origins: String = r.get(2)?;
                    Ok(PublishableKeyRecord {
                        org_id: r.get(0)?,
                        key_id: r.get(1)?,
                        allowed_origins: serde_json::from_str(&origins).unwrap_or_default(),
                        created_at: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    async fn delete_publishable_key(&self, org_id: &str) -> StoreResult<bool> {
        self.with(|c| {
            c.execute("DELETE FROM publishable_keys WHERE org_id = ?1", [org_id])
                .map(|n| n == 1)
        })
    }

    async fn flush(&self) -> StoreResult<()> {
        self.with(|c| {
            // No-op for in-memory databases; moves the WAL into the main file
            // for file ones, so a copied file is complete.
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .optional()
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_store_contract_in_memory_and_on_disk() {
        let memory = SqliteStore::open_in_memory().unwrap();
        crate::store::conformance::check(&memory).await.unwrap();
        let dir =
            std::env::temp_dir().join(format!("tokenrelay-conformance-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = SqliteStore::open(&dir.join("db.sqlite3")).unwrap();
        crate::store::conformance::check(&file).await.unwrap();
        // Running it twice on one store works (random ids).
        crate::store::conformance::check(&file).await.unwrap();
        drop(file);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn stream_tokens_are_consumed_once() {
        let s = SqliteStore::open_in_memory().unwrap();
        let t = StreamTokenRecord {
            token_hash: "h".into(),
            org_id: "o".into(),
            subject: "k".into(),
            expires_at_ms: i64::MAX,
        };
        s.put_stream_token(&t).await.unwrap();
        assert_eq!(s.consume_stream_token("h", 0).await.unwrap(), Some(t));
        assert_eq!(s.consume_stream_token("h", 0).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_setting_set_if_absent_keeps_the_first_value() {
        let s = SqliteStore::open_in_memory().unwrap();
        assert_eq!(s.put_setting_if_absent("k", "one").await.unwrap(), "one");
        assert_eq!(s.put_setting_if_absent("k", "two").await.unwrap(), "one");
        assert_eq!(s.get_setting("k").await.unwrap().as_deref(), Some("one"));
    }

    #[tokio::test]
    async fn credits_are_charged_atomically() {
        let s = SqliteStore::open_in_memory().unwrap();
        let org = OrgRecord {
            org_id: "o".into(),
            name: "n".into(),
            credits: None,
            created_at: 0,
        };
        s.create_org(&org).await.unwrap();
        assert!(s.charge_credits("o", 5).await.unwrap());
        s.set_credits("o", Some(1)).await.unwrap();
        assert!(s.charge_credits("o", 1).await.unwrap());
        assert!(!s.charge_credits("o", 1).await.unwrap());
        assert_eq!(s.get_org("o").await.unwrap().unwrap().credits, Some(0));
    }

    #[tokio::test]
    async fn usernames_and_nicknames_are_unique() {
        let s = SqliteStore::open_in_memory().unwrap();
        let u = UserRecord {
            user_id: "u".into(),
            username: "ann".into(),
            password_hash: "x".into(),
            org_id: "o".into(),
            created_at: 0,
        };
        s.create_user(&u).await.unwrap();
        let again = UserRecord {
            user_id: "u2".into(),
            ..u
        };
        assert!(matches!(
            s.create_user(&again).await,
            Err(StoreError::Conflict(_))
        ));
        s.create_user_api_key("u", "n", "h1", 0).await.unwrap();
        assert!(matches!(
            s.create_user_api_key("u", "n", "h2", 0).await,
            Err(StoreError::Conflict(_))
        ));
    }
}
