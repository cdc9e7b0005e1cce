//! The reference server's integration tests in one binary: one link
//! instead of one per file (docs/benchmarks.md, "Test build time"). Each
//! module was a `tests/<name>.rs` of its own. `tests/logs.rs` stays a
//! binary of its own: it installs the process's global tracing subscriber,
//! which would capture every other test's logs here.

#[path = "../common/mod.rs"]
mod common;
// The private PostgreSQL instance (tests/e2e's restart test shares it).
#[path = "../common/postgres.rs"]
mod postgres_server;
// The private Redis instance (the cluster tests).
#[path = "../common/redis.rs"]
mod redis;

mod abuse;
mod cli;
mod cluster;
mod credentials;
mod durability;
mod faults;
mod flow;
mod openai;
mod postgres;
mod resume;
mod robustness;
mod tools;
mod webhooks;
