//! The per-context replay buffer of the `resume` extension: the last
//! notifications of a context, bounded by count and by age, as encoded
//! frames ready to resend.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::metrics::ReplayGauge;

use axum::extract::ws::Utf8Bytes;

struct Entry {
    seq: u64,
    at: Instant,
    frame: Utf8Bytes,
}

impl Drop for ReplayBuffer {
    fn drop(&mut self) {
        self.gauge.sub(self.entries.len() as u64);
    }
}

/// Bounded history of sequenced frames. `seq`s in it are contiguous,
/// because every sequenced notification of the context passes through it.
pub struct ReplayBuffer {
    entries: VecDeque<Entry>,
    max_len: usize,
    max_age: Duration,
    /// The server's count of buffered notifications (`/metrics`).
    gauge: ReplayGauge,
}

impl ReplayBuffer {
    /// A buffer keeping at most `max_len` frames, none older than `max_age`,
    /// counting what it holds in `gauge`.
    pub fn new(max_len: usize, max_age: Duration, gauge: ReplayGauge) -> Self {
        ReplayBuffer {
            entries: VecDeque::new(),
            max_len: max_len.max(1),
            max_age,
            gauge,
        }
    }

    /// Appends the frame of notification `seq`.
    pub fn push(&mut self, seq: u64, frame: Utf8Bytes, now: Instant) {
        self.entries.push_back(Entry {
            seq,
            at: now,
            frame,
        });
        self.gauge.add(1);
        while self.entries.len() > self.max_len {
            self.entries.pop_front();
            self.gauge.sub(1);
        }
        self.evict_old(now);
    }

    /// Drops frames older than the age bound.
    pub fn evict_old(&mut self, now: Instant) {
        while let Some(front) = self.entries.front() {
            if now.duration_since(front.at) > self.max_age {
                self.entries.pop_front();
                self.gauge.sub(1);
            } else {
                break;
            }
        }
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Frames with `seq > after`, given that the next `seq` to be assigned
    /// is `next_seq`. `None` when the buffer no longer holds `after + 1`
    /// (the client missed notifications that are gone).
    pub fn since(&self, after: u64, next_seq: u64) -> Option<Vec<Utf8Bytes>> {
        let wanted = after.checked_add(1)?;
        if wanted == next_seq {
            return Some(Vec::new());
        }
        if wanted > next_seq {
            return None;
        }
        let first = self.entries.front()?.seq;
        if first > wanted {
            return None;
        }
        Some(
            self.entries
                .iter()
                .filter(|e| e.seq > after)
                .map(|e| e.frame.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(n: u64, max_len: usize) -> ReplayBuffer {
        let mut b = ReplayBuffer::new(max_len, Duration::from_secs(60), ReplayGauge::default());
        let now = Instant::now();
        for seq in 1..=n {
            b.push(seq, Utf8Bytes::from(seq.to_string()), now);
        }
        b
    }

    #[test]
    fn replays_exactly_the_missed_frames() {
        let b = filled(5, 10);
        let got: Vec<String> = b
            .since(2, 6)
            .unwrap()
            .iter()
            .map(|f| f.to_string())
            .collect();
        assert_eq!(got, vec!["3", "4", "5"]);
        assert_eq!(b.since(5, 6).unwrap().len(), 0);
        assert_eq!(b.since(0, 6).unwrap().len(), 5);
    }

    #[test]
    fn refuses_when_the_gap_is_gone() {
        let b = filled(10, 3);
        assert!(b.since(6, 11).is_none());
        assert_eq!(b.since(7, 11).unwrap().len(), 3);
        assert!(b.since(20, 11).is_none());
    }

    #[test]
    fn the_gauge_counts_what_the_buffers_hold() {
        let gauge = ReplayGauge::default();
        let now = Instant::now();
        let mut a = ReplayBuffer::new(3, Duration::from_secs(60), gauge.clone());
        let mut b = ReplayBuffer::new(10, Duration::from_millis(10), gauge.clone());
        for seq in 1..=5 {
            a.push(seq, Utf8Bytes::from(seq.to_string()), now);
        }
        // Trimmed by count: 3 of the 5 stay.
        assert_eq!(gauge.get(), 3);
        b.push(1, Utf8Bytes::from("1"), now);
        b.push(2, Utf8Bytes::from("2"), now);
        assert_eq!(gauge.get(), 5);
        // Aged out: b's two go.
        b.evict_old(now + Duration::from_secs(1));
        assert_eq!(gauge.get(), 3);
        b.push(3, Utf8Bytes::from("3"), now + Duration::from_secs(1));
        drop(a);
        assert_eq!(gauge.get(), 1);
        drop(b);
        assert_eq!(gauge.get(), 0);
    }
}
