//! When to try reconnecting again.
//!
//! The envelope is exponential (0.5 s doubling to a 20 s cap by default) and
//! comes from `backon`, which yields plain `Duration`s and so suits a core
//! without timers. Each delay is then drawn uniformly from `[0, envelope]`
//! ("full jitter"): thousands of clients dropped by one server restart spread
//! their reconnects instead of arriving together. backon's own jitter adds
//! noise on top of the envelope instead, so it is not used.
//!
//! The first retry after a connection that had been up for a while is
//! immediate (a blip should cost nothing); a connection that drops again
//! soon after connecting keeps climbing the envelope, so a server that
//! accepts and closes at once is not hammered. After `suspend_after` of
//! continuous failure the schedule slows to one try every
//! `suspended_interval`; by default it never gives up.

use core::time::Duration;

use backon::BackoffBuilder as _;

use crate::time::Timestamp;

/// How the session retries. Every field has a sensible default.
///
/// Non-exhaustive, so a knob can be added without a breaking release:
/// start from [`ReconnectPolicy::default`] and chain the `with_*` setters
/// (or assign the public fields).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// First envelope of the exponential schedule. Default 0.5 s.
    pub min_delay: Duration,
    /// Cap of the envelope. Default 20 s.
    pub max_delay: Duration,
    /// Growth factor per attempt. Default 2.
    pub factor: f32,
    /// A connection up at least this long counts as healthy: when it drops
    /// the schedule starts over and the first retry is immediate. Default 5 s.
    pub stable_after: Duration,
    /// After failing continuously this long, retry at the slower
    /// `suspended_interval` instead. `None` never slows down. Default 5 min.
    pub suspend_after: Option<Duration>,
    /// Cadence once suspended. Default 60 s.
    pub suspended_interval: Duration,
    /// Give up (state `failed`) after this many consecutive failed attempts.
    /// `None`, the default, never gives up.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            factor: 2.0,
            stable_after: Duration::from_secs(5),
            suspend_after: Some(Duration::from_secs(300)),
            suspended_interval: Duration::from_secs(60),
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// The first envelope of the exponential schedule.
    #[must_use]
    pub fn with_min_delay(mut self, min_delay: Duration) -> Self {
        self.min_delay = min_delay;
        self
    }

    /// The cap of the envelope.
    #[must_use]
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// The growth factor per attempt.
    #[must_use]
    pub fn with_factor(mut self, factor: f32) -> Self {
        self.factor = factor;
        self
    }

    /// How long a connection must stay up to count as healthy.
    #[must_use]
    pub fn with_stable_after(mut self, stable_after: Duration) -> Self {
        self.stable_after = stable_after;
        self
    }

    /// After failing this long, retry at the suspended cadence (`None`: never).
    #[must_use]
    pub fn with_suspend_after(mut self, suspend_after: Option<Duration>) -> Self {
        self.suspend_after = suspend_after;
        self
    }

    /// The cadence once suspended.
    #[must_use]
    pub fn with_suspended_interval(mut self, suspended_interval: Duration) -> Self {
        self.suspended_interval = suspended_interval;
        self
    }

    /// Give up after this many consecutive failed attempts (`None`: never).
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: Option<u32>) -> Self {
        self.max_attempts = max_attempts;
        self
    }
}

/// The next retry, as [`Backoff::next_retry`] decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// Wait this long before the next attempt.
    pub delay: Duration,
    /// The number of this attempt (1 for the first retry).
    pub attempt: u32,
    /// The schedule has slowed to the suspended cadence.
    pub suspended: bool,
}

/// The retry schedule of one session.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: ReconnectPolicy,
    envelope: backon::ExponentialBackoff,
    rng: fastrand::Rng,
    /// Consecutive failed attempts since the last healthy connection.
    attempt: u32,
    /// When the current run of failures began.
    failing_since: Option<Timestamp>,
}

impl Backoff {
    pub(crate) fn new(policy: ReconnectPolicy, seed: u64) -> Self {
        Backoff {
            envelope: envelope(&policy),
            policy,
            rng: fastrand::Rng::with_seed(seed),
            attempt: 0,
            failing_since: None,
        }
    }

    /// Consecutive failed attempts so far.
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Forget past failures: the connection was healthy.
    pub(crate) fn reset(&mut self) {
        self.envelope = envelope(&self.policy);
        self.attempt = 0;
        self.failing_since = None;
    }

    /// The connection that just dropped was up for `uptime`; start over if
    /// that counts as healthy.
    pub(crate) fn connection_ended(&mut self, uptime: Duration) {
        if uptime >= self.policy.stable_after {
            self.reset();
        }
    }

    /// Decides the next retry, or `None` once `max_attempts` is spent.
    ///
    /// `floor` is a minimum the server asked for (a 4029 close reason or
    /// `retry-after`). A first retry after a healthy connection is immediate
    /// unless a floor applies.
    pub(crate) fn next_retry(&mut self, now: Timestamp, floor: Option<Duration>) -> Option<Retry> {
        if let Some(max) = self.policy.max_attempts {
            if self.attempt >= max {
                return None;
            }
        }
        let first = self.attempt == 0;
        self.attempt += 1;
        let since = *self.failing_since.get_or_insert(now);
        let suspended = self
            .policy
            .suspend_after
            .is_some_and(|window| now.saturating_since(since) >= window);
        let delay = if suspended {
            self.policy.suspended_interval
        } else if first {
            Duration::ZERO
        } else {
            let cap = self.envelope.next().unwrap_or(self.policy.max_delay);
            self.full_jitter(cap)
        };
        Some(Retry {
            delay: floor.map_or(delay, |f| delay.max(f)),
            attempt: self.attempt,
            suspended,
        })
    }

    fn full_jitter(&mut self, cap: Duration) -> Duration {
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.rng.u64(0..=cap_ms))
    }
}

fn envelope(policy: &ReconnectPolicy) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::new()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_factor(policy.factor)
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_millis(secs * 1000)
    }

    #[test]
    fn first_retry_is_immediate_then_jittered_under_a_doubling_cap() {
        let mut b = Backoff::new(ReconnectPolicy::default(), 1);
        let first = b.next_retry(at(0), None).unwrap();
        assert_eq!(first.delay, Duration::ZERO);
        assert_eq!(first.attempt, 1);
        let caps = [500u64, 1000, 2000, 4000, 8000, 16000, 20000, 20000];
        for cap in caps {
            let r = b.next_retry(at(1), None).unwrap();
            assert!(r.delay <= Duration::from_millis(cap), "{r:?} over {cap}");
            assert!(!r.suspended);
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut delays = alloc::collections::BTreeSet::new();
        for seed in 0..20 {
            let mut b = Backoff::new(ReconnectPolicy::default(), seed);
            b.next_retry(at(0), None);
            for _ in 0..5 {
                b.next_retry(at(0), None);
            }
            delays.insert(b.next_retry(at(0), None).unwrap().delay);
        }
        assert!(
            delays.len() > 10,
            "full jitter should rarely repeat: {delays:?}"
        );
    }

    #[test]
    fn suspends_after_the_window_and_never_gives_up_by_default() {
        let mut b = Backoff::new(ReconnectPolicy::default(), 2);
        b.next_retry(at(0), None);
        let r = b.next_retry(at(299), None).unwrap();
        assert!(!r.suspended);
        let r = b.next_retry(at(300), None).unwrap();
        assert!(r.suspended);
        assert_eq!(r.delay, Duration::from_secs(60));
        for i in 0..1000 {
            assert!(b.next_retry(at(400 + i), None).is_some());
        }
    }

    #[test]
    fn max_attempts_gives_up() {
        let policy = ReconnectPolicy {
            max_attempts: Some(2),
            ..ReconnectPolicy::default()
        };
        let mut b = Backoff::new(policy, 3);
        assert!(b.next_retry(at(0), None).is_some());
        assert!(b.next_retry(at(0), None).is_some());
        assert!(b.next_retry(at(0), None).is_none());
    }

    #[test]
    fn a_stable_connection_resets_and_a_short_one_does_not() {
        let mut b = Backoff::new(ReconnectPolicy::default(), 4);
        b.next_retry(at(0), None);
        b.next_retry(at(0), None);
        b.connection_ended(Duration::from_secs(1));
        assert_eq!(b.attempt(), 2);
        b.connection_ended(Duration::from_secs(5));
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_retry(at(9), None).unwrap().delay, Duration::ZERO);
    }

    #[test]
    fn a_floor_from_the_server_is_respected() {
        let mut b = Backoff::new(ReconnectPolicy::default(), 5);
        let r = b.next_retry(at(0), Some(Duration::from_secs(7))).unwrap();
        assert_eq!(r.delay, Duration::from_secs(7));
    }
}
