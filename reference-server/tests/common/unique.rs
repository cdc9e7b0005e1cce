//! Unique names and free ports for the private engines the tests start
//! (`redis.rs`, `postgres.rs` include it with `#[path = "unique.rs"]`).
//! No `rand` dependency, so any test crate can include them.
#![allow(dead_code)]

/// Random enough for unique names: std's per-map random keys, mixed with
/// the clock.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// A TCP port on 127.0.0.1 that was free a moment ago (callers retry
/// when another process takes it first).
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}
