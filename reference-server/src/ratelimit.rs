//! Fixed-window rate limits per credential, for the token and key routes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Counts requests per key (a credential id, never the credential) in
/// fixed windows.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// `limit` requests per `window` per key.
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter {
            limit,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request for `key` and says whether it may proceed.
    pub fn check(&self, key: &str) -> RateDecision {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 100_000 {
            // Bound memory: drop windows that have ended.
            let window = self.window;
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let reset = self.window.saturating_sub(now.duration_since(entry.0));
            return RateDecision {
                limit: self.limit,
                remaining: 0,
                retry_after: Some(reset.as_secs_f64().ceil().max(1.0) as u64),
            };
        }
        entry.1 += 1;
        RateDecision {
            limit: self.limit,
            remaining: self.limit - entry.1,
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_limit_per_key() {
        let rl = RateLimiter::new(2, Duration::from_secs(60));
        assert_eq!(rl.check("a").remaining, 1);
        assert_eq!(rl.check("a").remaining, 0);
        assert!(rl.check("a").retry_after.is_some());
        assert!(rl.check("b").retry_after.is_none());
    }
}
