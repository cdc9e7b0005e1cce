//! Several server instances on shared engines (issue #14), against a
//! real, private Redis (`common/redis.rs` starts one per test).
//! So far: the harness itself.

use crate::redis;

/// The test's own Redis, or a skip.
macro_rules! redis {
    ($test:expr) => {
        match redis::require($test) {
            Some(r) => r,
            None => return,
        }
    };
}

#[test]
fn a_private_redis_starts_answers_and_is_gone_after_drop() {
    let r = redis!("a_private_redis_starts_answers_and_is_gone_after_drop");
    r.ping().unwrap();
    assert_eq!(r.command("SET k v").unwrap(), "+OK");
    assert_eq!(r.command("GET k").unwrap(), "$1");
    // No persistence by default: nothing configured to write.
    assert_eq!(r.command("CONFIG GET appendonly").unwrap(), "*2");
    let port = r.port();
    drop(r);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_persistent_redis_keeps_its_data_across_a_crash() {
    let Some(mut r) =
        redis::Redis::with_persistence("a_persistent_redis_keeps_its_data_across_a_crash")
    else {
        return;
    };
    assert_eq!(r.command("INCR n").unwrap(), ":1");
    r.stop();
    assert!(r.ping().is_err());
    r.start_again().unwrap();
    assert_eq!(r.command("INCR n").unwrap(), ":2");
}

#[test]
fn a_plain_redis_forgets_everything_on_a_crash() {
    let mut r = redis!("a_plain_redis_forgets_everything_on_a_crash");
    assert_eq!(r.command("INCR n").unwrap(), ":1");
    r.stop();
    r.start_again().unwrap();
    assert_eq!(r.command("INCR n").unwrap(), ":1");
}
