//! The queue between the driver task and the application: bounded, never
//! blocks the driver, and drops the oldest events (saying how many) when the
//! application does not keep up. The driver must never wait on the
//! application: an app that only uses `ask()` never reads events, and pings,
//! timeouts and reconnects must go on regardless.

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
}

/// A single-consumer event queue shared by the driver and the [`Connection`](super::Connection).
#[derive(Debug, Clone)]
pub(crate) struct EventQueue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    capacity: usize,
}

impl EventQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        EventQueue {
            state: Arc::new(Mutex::new(State {
                events: VecDeque::new(),
                dropped: 0,
                closed: false,
            })),
            notify: Arc::new(Notify::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue invalid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pushes a batch under one lock and wakes the consumer once.
    pub(crate) fn push_all(&self, batch: &mut Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        {
            let mut s = self.lock();
            for e in batch.drain(..) {
                if s.events.len() >= self.capacity {
                    s.events.pop_front();
                    s.dropped += 1;
                }
                s.events.push_back(e);
            }
        }
        self.notify.notify_one();
    }

    /// No more events will come.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }

    /// The next event; `None` once the queue is closed and empty.
    pub(crate) async fn recv(&self) -> Option<Event> {
        loop {
            if let Some(e) = self.try_recv() {
                return e;
            }
            self.notify.notified().await;
        }
    }

    /// `Some(Some(e))` an event, `Some(None)` closed and drained, `None` empty.
    pub(crate) fn try_recv(&self) -> Option<Option<Event>> {
        let mut s = self.lock();
        if s.dropped > 0 {
            let count = s.dropped;
            s.dropped = 0;
            return Some(Some(Event::Error(Error::EventsDropped { count })));
        }
        match s.events.pop_front() {
            Some(e) => Some(Some(e)),
            None if s.closed => Some(None),
            None => None,
        }
    }
}
