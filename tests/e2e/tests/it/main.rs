//! The end-to-end suite in one binary: one link instead of one per file
//! (docs/benchmarks.md, "Test build time"). Each module was a
//! `tests/<name>.rs` of its own. `tests/logging.rs` stays a binary of its
//! own: it installs the process's global tracing subscriber, which would
//! capture every other test's logs here.

// The reference server's private PostgreSQL instance, for the restart test.
#[path = "../../../../reference-server/tests/common/postgres.rs"]
mod postgres;
// Its private Redis, for the cluster tests.
#[path = "../../../../reference-server/tests/common/redis.rs"]
mod redis;

mod base_protocol;
mod cancel;
mod cluster;
mod contracts;
mod flows;
mod idempotency;
mod offline_queue;
mod restart;
mod scenarios;
mod tls;
