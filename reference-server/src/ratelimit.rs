//! Rate limits: fixed windows per key for the REST routes, and a token
//! bucket per socket for the frames a client sends.
//!
//! With a Redis hub (`--hub`), the REST windows are counted in Redis, so a
//! limit holds across every instance of a cluster rather than once per
//! instance. If Redis cannot be reached, each instance counts on its own
//! (the limit then holds per instance) until it can again: a limiter that
//! refused every request while Redis is away would turn a Redis outage
//! into a REST outage ([`Fallback`] says when to ask Redis again).
//!
//! The REST limiter is itself a resource a stranger can try to exhaust:
//! keys like `login:{ip}:{username}` come from input. So keys are hashed
//! (a fixed 8 bytes each, with a per-process random seed so nobody can
//! aim collisions), the map is split into shards with a lock each, and
//! every shard has a fixed capacity: when one is full, windows that have
//! ended are purged, and if that frees nothing the oldest window goes.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::conversation::redis::{Fallback, RedisBackend};
pub use crate::conversation::redis::{SHARED_RETRY, SHARED_TIMEOUT};

/// The outcome of one check, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Requests per window.
    pub limit: u32,
    /// Requests left in this window after this one.
    pub remaining: u32,
    /// `Some(seconds until the window resets)` when refused.
    pub retry_after: Option<u64>,
}

/// Shards of the key map; a power of two.
const SHARDS: usize = 16;

/// One window: when it started and how many requests it counted.
type Window = (Instant, u32);

/// Counts requests per key (a credential id or an address, never a
/// credential) in fixed windows, in bounded memory.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    shard_capacity: usize,
    seed: RandomState,
    shards: Vec<Mutex<HashMap<u64, Window>>>,
    /// Where windows are counted for the whole cluster, if anywhere.
    shared: Option<Arc<RedisBackend>>,
    /// Whether to ask Redis now (it may have failed just before).
    fallback: Fallback,
}

impl RateLimiter {
    /// `limit` requests per `window` per key, keeping at most about
    /// `capacity` keys.
    pub fn new(limit: u32, window: Duration, capacity: usize) -> Self {
        RateLimiter {
            limit,
            window,
            shard_capacity: (capacity / SHARDS).max(1),
            seed: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            shared: None,
            fallback: Fallback::new("rate limits"),
        }
    }

    /// The same limiter, counting in Redis for every instance on it (see
    /// the module's docs for what happens when Redis is away).
    pub fn shared_through(mut self, backend: Arc<RedisBackend>) -> Self {
        self.shared = Some(backend);
        self
    }

    /// Counts one request for `key` and says whether it may proceed.
    pub async fn check(&self, key: &str) -> RateDecision {
        self.check_with_limit(key, self.limit).await
    }

    /// As [`RateLimiter::check`], with a limit of its own for this key
    /// (the same window).
    pub async fn check_with_limit(&self, key: &str, limit: u32) -> RateDecision {
        if let Some(shared) = &self.shared {
            let counted = shared.count_request(key, self.window);
            if let Some((counted, left)) = self.fallback.ask(counted).await {
                return shared_decision(limit, counted, left);
            }
        }
        self.check_here(key, limit)
    }

    /// Counts in this process's own windows.
    fn check_here(&self, key: &str, limit: u32) -> RateDecision {
        let now = Instant::now();
        let hash = self.seed.hash_one(key);
        let shard = &self.shards[(hash as usize) & (SHARDS - 1)];
        let mut windows = shard.lock().unwrap_or_else(|p| p.into_inner());
        if !windows.contains_key(&hash) && windows.len() >= self.shard_capacity {
            self.make_room(&mut windows, now);
        }
        let entry = windows.entry(hash).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            let reset = self.window.saturating_sub(now.duration_since(entry.0));
            return RateDecision {
                limit,
                remaining: 0,
                retry_after: Some(reset.as_secs_f64().ceil().max(1.0) as u64),
            };
        }
        entry.1 += 1;
        RateDecision {
            limit,
            remaining: limit - entry.1,
            retry_after: None,
        }
    }

    /// Frees at least one slot of a full shard: ended windows first (one
    /// scan, amortised over the inserts that filled the shard), else the
    /// window that started first.
    fn make_room(&self, windows: &mut HashMap<u64, Window>, now: Instant) {
        let window = self.window;
        windows.retain(|_, (start, _)| now.duration_since(*start) < window);
        if windows.len() >= self.shard_capacity {
            if let Some(oldest) = windows
                .iter()
                .min_by_key(|(_, (start, _))| *start)
                .map(|(k, _)| *k)
            {
                windows.remove(&oldest);
            }
        }
    }

    /// Keys held now (tests: the bound holds).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The decision for the `counted`-th request of a shared window with
/// `left` to run. Refused requests count too (Redis counts every one); it
/// changes nothing, since the window ends when it ends either way.
fn shared_decision(limit: u32, counted: u64, left: Duration) -> RateDecision {
    if counted > u64::from(limit) {
        return RateDecision {
            limit,
            remaining: 0,
            retry_after: Some(left.as_secs_f64().ceil().max(1.0) as u64),
        };
    }
    RateDecision {
        limit,
        remaining: limit - counted as u32,
        retry_after: None,
    }
}

/// A token bucket for one socket's frames: `burst` at once, then `rate`
/// per second. Owned by the session, so it needs no lock.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, per_sec: u32) -> Self {
        TokenBucket {
            capacity: f64::from(burst.max(1)),
            rate: f64::from(per_sec),
            tokens: f64::from(burst.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Seconds until one token is back (for `retry_after`).
    pub fn retry_after_secs(&self) -> u64 {
        if self.rate <= 0.0 {
            return 60;
        }
        ((1.0 - self.tokens).max(0.0) / self.rate).ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_after_the_limit_per_key() {
        let rl = RateLimiter::new(2, Duration::from_secs(60), 1000);
        assert_eq!(rl.check("a").await.remaining, 1);
        assert_eq!(rl.check("a").await.remaining, 0);
        assert!(rl.check("a").await.retry_after.is_some());
        assert!(rl.check("b").await.retry_after.is_none());
        assert!(rl.check_with_limit("c", 1).await.retry_after.is_none());
        assert!(rl.check_with_limit("c", 1).await.retry_after.is_some());
    }

    #[tokio::test]
    async fn memory_stays_bounded_under_a_flood_of_keys() {
        let rl = RateLimiter::new(5, Duration::from_secs(60), 1600);
        // Long keys, as an attacker's usernames would be: only a hash of
        // each is kept, and never more than the capacity.
        let long = "x".repeat(10_000);
        for i in 0..50_000 {
            rl.check(&format!("login:{i}:{long}")).await;
        }
        assert!(rl.len() <= 1600, "{} keys held", rl.len());
        // The limiter still limits.
        for _ in 0..5 {
            assert!(rl.check("victim").await.retry_after.is_none());
        }
        assert!(rl.check("victim").await.retry_after.is_some());
    }

    #[test]
    fn a_shared_window_refuses_past_its_limit_until_it_ends() {
        let left = Duration::from_millis(2_500);
        assert_eq!(shared_decision(3, 1, left).remaining, 2);
        assert_eq!(shared_decision(3, 3, left).remaining, 0);
        assert_eq!(shared_decision(3, 3, left).retry_after, None);
        assert_eq!(shared_decision(3, 4, left).retry_after, Some(3));
        // Never "retry in 0 s" while refused.
        assert_eq!(shared_decision(3, 9, Duration::ZERO).retry_after, Some(1));
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut b = TokenBucket::new(3, 10);
        b.last = start;
        assert!(b.take(start) && b.take(start) && b.take(start));
        assert!(!b.take(start));
        assert_eq!(b.retry_after_secs(), 1);
        // 100 ms at 10/s brings one token back.
        assert!(b.take(start + Duration::from_millis(100)));
        assert!(!b.take(start + Duration::from_millis(100)));
    }
}
