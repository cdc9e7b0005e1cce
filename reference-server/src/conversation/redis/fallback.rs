//! What a cluster-wide count does while Redis is away: the instance counts
//! on its own rather than refusing (a limiter that refused everything while
//! Redis is down would turn a Redis outage into an outage of the server).
//!
//! A question to Redis that errs, or takes over [`SHARED_TIMEOUT`], counts
//! as Redis away; the instance then does not ask again for
//! [`SHARED_RETRY`], so an outage costs at most one short wait per
//! instance and interval, not one per request. Used by the REST rate
//! limits ([`RateLimiter`](crate::ratelimit::RateLimiter)) and the socket
//! caps per org ([`OrgSockets`](crate::admission::OrgSockets)).

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

// tokio's clock: the same as std's in a server, and one a test can pause.
use tokio::time::Instant;

/// Longest wait for Redis to answer a count before counting here instead.
/// Loopback or same-zone Redis answers in well under a millisecond.
pub const SHARED_TIMEOUT: Duration = Duration::from_millis(250);

/// After Redis failed to answer, how long this instance counts alone before
/// it asks Redis again.
pub const SHARED_RETRY: Duration = Duration::from_secs(1);

/// Whether to ask Redis now, and the pause after it failed to answer.
#[derive(Debug)]
pub struct Fallback {
    /// What counts through it, for the log line (`"rate limits"`).
    what: &'static str,
    /// Until when Redis is not asked (it failed just before).
    paused_until: Mutex<Option<Instant>>,
}

impl Fallback {
    /// A fallback for the count named `what` in its warnings.
    pub fn new(what: &'static str) -> Self {
        Fallback {
            what,
            paused_until: Mutex::new(None),
        }
    }

    /// Asks Redis (`question`) unless it failed within [`SHARED_RETRY`]:
    /// `Some(answer)`, or `None` when the caller must count on its own
    /// (Redis paused, erred, or slower than [`SHARED_TIMEOUT`]).
    pub async fn ask<T, E: std::fmt::Display>(
        &self,
        question: impl Future<Output = Result<T, E>>,
    ) -> Option<T> {
        if self.paused() {
            return None;
        }
        match tokio::time::timeout(SHARED_TIMEOUT, question).await {
            Ok(Ok(answer)) => Some(answer),
            Ok(Err(e)) => {
                self.pause(&e.to_string());
                None
            }
            Err(_) => {
                self.pause("no answer in time");
                None
            }
        }
    }

    fn paused(&self) -> bool {
        let paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        paused.is_some_and(|until| Instant::now() < until)
    }

    fn pause(&self, why: &str) {
        *self.paused_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + SHARED_RETRY);
        tracing::warn!(
            error = why,
            retry_in_ms = SHARED_RETRY.as_millis() as u64,
            "{}: Redis unreachable, counting in this instance alone",
            self.what
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failure_or_a_slow_answer_pauses_asking_for_a_while() {
        let f = Fallback::new("test");
        assert_eq!(f.ask(async { Ok::<_, String>(1) }).await, Some(1));
        assert_eq!(f.ask(async { Err::<u8, _>("down") }).await, None);
        // Paused: not even asked.
        let asked = std::cell::Cell::new(false);
        let question = async {
            asked.set(true);
            Ok::<_, String>(2)
        };
        assert_eq!(f.ask(question).await, None);
        assert!(!asked.get());
        tokio::time::advance(SHARED_RETRY).await;
        assert_eq!(f.ask(async { Ok::<_, String>(3) }).await, Some(3));
        // An answer slower than the timeout counts as a failure.
        let slow = async {
            tokio::time::sleep(SHARED_TIMEOUT * 2).await;
            Ok::<_, String>(4)
        };
        assert_eq!(f.ask(slow).await, None);
        assert_eq!(f.ask(async { Ok::<_, String>(5) }).await, None);
    }
}
