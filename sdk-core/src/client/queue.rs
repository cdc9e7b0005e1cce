//! The queue between the driver task and the application.
//!
//! Two kinds of application use a connection, and the queue serves both:
//!
//! * one that reads events (`next_event`, the `Stream`): no event is ever
//!   lost. When it falls `capacity` events behind, the driver stops reading
//!   the socket until it catches up, so a slow reader slows the stream (TCP
//!   pushes back on the server) instead of losing words;
//! * one that never reads events and only calls `ask()`: the driver must
//!   not wait on it, so until something reads, the oldest events are
//!   dropped beyond `capacity` (and the first read says how many).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::error::Error;
use crate::event::Event;

#[derive(Debug)]
struct State {
    events: VecDeque<Event>,
    dropped: u64,
    closed: bool,
    /// Something has read from the queue: apply backpressure, never drop.
    reader_attached: bool,
    /// The driver waits for room.
    driver_waiting: bool,
}

/// A single-consumer event queue shared by the driver and the [`Connection`](super::Connection).
#[derive(Debug, Clone)]
pub(crate) struct EventQueue {
    state: Arc<Mutex<State>>,
    readable: Arc<Notify>,
    room: Arc<Notify>,
    capacity: usize,
}

impl EventQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        EventQueue {
            state: Arc::new(Mutex::new(State {
                events: VecDeque::new(),
                dropped: 0,
                closed: false,
                reader_attached: false,
                driver_waiting: false,
            })),
            readable: Arc::new(Notify::new()),
            room: Arc::new(Notify::new()),
            capacity: capacity.max(2),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue invalid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves a batch in under one lock and wakes the consumer once.
    /// True when a reader is attached and the queue now holds at least
    /// `behind` events: the driver should let the reader run before it
    /// reads more frames (see `Driver::run`).
    pub(crate) fn push_all(&self, batch: &mut VecDeque<Event>, behind: usize) -> bool {
        if batch.is_empty() {
            return false;
        }
        let reader_behind;
        {
            let mut s = self.lock();
            if !s.reader_attached {
                let over = (s.events.len() + batch.len()).saturating_sub(self.capacity);
                let from_queue = over.min(s.events.len());
                s.events.drain(..from_queue);
                batch.drain(..over - from_queue);
                s.dropped += over as u64;
            }
            if s.events.is_empty() {
                std::mem::swap(&mut s.events, batch);
            } else {
                s.events.append(batch);
            }
            reader_behind = s.reader_attached && s.events.len() >= behind;
        }
        self.readable.notify_one();
        reader_behind
    }

    /// False while an attached reader is `capacity` events behind: the
    /// driver should read no more frames until [`EventQueue::room`].
    pub(crate) fn has_room(&self) -> bool {
        let s = self.lock();
        !s.reader_attached || s.events.len() < self.capacity
    }

    /// Resolves once the reader has caught up to half the capacity.
    pub(crate) async fn room(&self) {
        {
            let mut s = self.lock();
            if !s.reader_attached || s.events.len() <= self.capacity / 2 {
                return;
            }
            s.driver_waiting = true;
        }
        self.room.notified().await;
    }

    /// Nothing reads events for now: until the next read, the driver must
    /// not wait for a reader (the oldest events beyond the capacity are
    /// dropped and counted, as before any read).
    pub(crate) fn detach_reader(&self) {
        let mut s = self.lock();
        s.reader_attached = false;
        if s.driver_waiting {
            s.driver_waiting = false;
            self.room.notify_one();
        }
    }

    /// No more events will come. Every reader is woken, not just one: a
    /// connection's handles may read side by side (an app's reader, and a
    /// `close()` draining through a cloned handle), and each must see the
    /// end.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.readable.notify_waiters();
        // And a permit for a reader between its check and its wait.
        self.readable.notify_one();
    }

    /// Moves every queued event into `into` (one lock for the lot); false
    /// once the queue is closed and drained. Waits while it is empty.
    pub(crate) async fn recv_all(&self, into: &mut VecDeque<Event>) -> bool {
        loop {
            // Registered before the check, so that `close()`'s wake-up of
            // every waiter cannot fall between the check and the wait.
            let notified = self.readable.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(open) = self.try_recv_all(into) {
                return open;
            }
            notified.await;
        }
    }

    /// `Some(true)` events moved, `Some(false)` closed and drained, `None`
    /// nothing yet.
    pub(crate) fn try_recv_all(&self, into: &mut VecDeque<Event>) -> Option<bool> {
        let mut s = self.lock();
        s.reader_attached = true;
        if s.dropped > 0 {
            let count = s.dropped;
            s.dropped = 0;
            into.push_back(Event::Error(Error::EventsDropped { count }));
        }
        if into.is_empty() {
            std::mem::swap(into, &mut s.events);
        } else {
            into.append(&mut s.events);
        }
        if s.driver_waiting {
            s.driver_waiting = false;
            self.room.notify_one();
        }
        if !into.is_empty() {
            Some(true)
        } else if s.closed {
            Some(false)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(i: usize) -> Event {
        Event::Token {
            response_id: "r".into(),
            token: i.to_string().into(),
        }
    }

    #[test]
    fn without_a_reader_the_oldest_are_dropped_and_counted() {
        let q = EventQueue::new(4);
        for chunk in [0..3, 3..10] {
            let mut batch: VecDeque<Event> = chunk.map(token).collect();
            q.push_all(&mut batch, usize::MAX);
        }
        assert!(q.has_room());
        let mut got = VecDeque::new();
        assert_eq!(q.try_recv_all(&mut got), Some(true));
        let expected: Vec<Event> = std::iter::once(Event::Error(Error::EventsDropped { count: 6 }))
            .chain((6..10).map(token))
            .collect();
        assert_eq!(Vec::from(got), expected);
    }

    #[test]
    fn with_a_reader_nothing_is_dropped_and_the_driver_is_held_back() {
        let q = EventQueue::new(4);
        let mut got = VecDeque::new();
        assert_eq!(q.try_recv_all(&mut got), None); // a reader attaches
        let mut batch: VecDeque<Event> = (0..10).map(token).collect();
        q.push_all(&mut batch, usize::MAX);
        assert!(!q.has_room());
        assert_eq!(q.try_recv_all(&mut got), Some(true));
        assert_eq!(Vec::from(got), (0..10).map(token).collect::<Vec<_>>());
        assert!(q.has_room());
        q.close();
        assert_eq!(q.try_recv_all(&mut VecDeque::new()), Some(false));
    }

    #[test]
    fn push_all_says_when_an_attached_reader_is_a_batch_behind() {
        let q = EventQueue::new(100);
        let mut batch: VecDeque<Event> = (0..3).map(token).collect();
        // Nobody reads yet (an `ask()`-only app): never worth waiting for.
        assert!(!q.push_all(&mut batch, 2));
        let mut got = VecDeque::new();
        assert_eq!(q.try_recv_all(&mut got), Some(true)); // a reader attaches
        let mut batch: VecDeque<Event> = (3..4).map(token).collect();
        assert!(!q.push_all(&mut batch, 2));
        let mut batch: VecDeque<Event> = (4..5).map(token).collect();
        assert!(q.push_all(&mut batch, 2));
        assert!(
            !q.push_all(&mut VecDeque::new(), 2),
            "an empty batch wakes nobody"
        );
        got.clear();
        assert_eq!(q.try_recv_all(&mut got), Some(true));
        assert_eq!(Vec::from(got), (3..5).map(token).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn closing_wakes_every_parked_reader() {
        let q = Arc::new(EventQueue::new(4));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.recv_all(&mut VecDeque::new()).await })
            })
            .collect();
        // Let all three park.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        q.close();
        for r in readers {
            let open = tokio::time::timeout(std::time::Duration::from_secs(5), r)
                .await
                .expect("a reader was left parked after close")
                .unwrap();
            assert!(!open);
        }
    }

    #[test]
    fn a_detached_reader_no_longer_holds_the_driver_back() {
        let q = EventQueue::new(4);
        let mut got = VecDeque::new();
        assert_eq!(q.try_recv_all(&mut got), None); // a reader attaches
        let mut batch: VecDeque<Event> = (0..10).map(token).collect();
        q.push_all(&mut batch, usize::MAX);
        assert!(!q.has_room());
        q.detach_reader();
        assert!(q.has_room());
        let mut more: VecDeque<Event> = (10..12).map(token).collect();
        q.push_all(&mut more, usize::MAX);
        assert_eq!(q.try_recv_all(&mut got), Some(true));
        let expected: Vec<Event> = std::iter::once(Event::Error(Error::EventsDropped { count: 8 }))
            .chain((8..12).map(token))
            .collect();
        assert_eq!(Vec::from(got), expected);
    }
}
