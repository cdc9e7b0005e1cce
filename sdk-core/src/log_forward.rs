//! Forwards the crate's `tracing` records to a host's logger (the
//! `forward-logs` feature): Python's `logging`, a Kotlin/Swift callback.
//! One implementation, so every binding's records read the same.
//!
//! [`subscriber`] makes a `tracing` subscriber that formats each record of
//! a `tokenrelay` target as `message key=value …` (the fields of its
//! spans last, so a connection's records end with `context_id=…`) and
//! hands it to a [`LogSink`]. Records above the sink's
//! [`LogSink::max_level`] are dropped before any formatting, so a host
//! whose logger is quiet pays an atomic load per record. Other crates'
//! records (tokio, hyper, rustls) are never forwarded. The crate puts no
//! credential in a record (tests/e2e/tests/logging.rs checks it); nothing
//! is added here but the record's fields and its spans'.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// Where forwarded records go.
pub trait LogSink: Send + Sync + 'static {
    /// The most verbose level wanted now (`None`: nothing). Asked at every
    /// record, so it may change at any time: keep it cheap (an atomic).
    fn max_level(&self) -> Option<Level>;
    /// One record: its level, its target (`tokenrelay::client::driver`)
    /// and its line.
    fn log(&self, level: Level, target: &str, line: String);
}

/// The level a sink's threshold kept in an atomic stands for: 0 nothing,
/// 1 `ERROR`, 2 `WARN`, 3 `INFO`, 4 `DEBUG`, 5 and above `TRACE`. Bindings
/// keep their logger's level as such a rank (an `AtomicU8`), so
/// [`LogSink::max_level`] is one load and this.
pub fn level_of_rank(rank: u8) -> Option<Level> {
    match rank {
        0 => None,
        1 => Some(Level::ERROR),
        2 => Some(Level::WARN),
        3 => Some(Level::INFO),
        4 => Some(Level::DEBUG),
        _ => Some(Level::TRACE),
    }
}

/// A subscriber that forwards the crate's records to `sink`. Install it
/// with `tracing::subscriber::set_global_default` (a binding does, once,
/// when it loads: its copy of `tracing` sees only its own records).
pub fn subscriber(sink: impl LogSink) -> impl Subscriber + Send + Sync {
    tracing_subscriber::registry().with(Forward(sink))
}

/// The layer that forwards records.
struct Forward<T>(T);

impl<T: LogSink> Forward<T> {
    fn wanted(&self, metadata: &Metadata<'_>) -> bool {
        ours(metadata)
            && self
                .0
                .max_level()
                .is_some_and(|max| *metadata.level() <= max)
    }
}

fn ours(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with("tokenrelay")
}

/// A span's fields as ` key=value` pairs, kept in its extensions.
struct SpanFields(String);

/// A record's fields: `message` on its own, the rest as ` key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

impl<S, T> Layer<S> for Forward<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    T: LogSink,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Asked again at every record: the sink's level may move.
        if ours(metadata) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        // Spans are always kept (no host call): a record inside one names
        // its context even if the span began while the sink was quieter.
        (metadata.is_span() && ours(metadata)) || self.wanted(metadata)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.rest));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if !self.wanted(metadata) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = fields.message;
        line.push_str(&fields.rest);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    line.push_str(&f.0);
                }
            }
        }
        self.0.log(*metadata.level(), metadata.target(), line);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Sink {
        /// 0 nothing, 1 error … 5 trace.
        max: Arc<AtomicU8>,
        lines: Arc<Mutex<Vec<(Level, String, String)>>>,
    }

    impl LogSink for Sink {
        fn max_level(&self) -> Option<Level> {
            level_of_rank(self.max.load(Ordering::Relaxed))
        }
        fn log(&self, level: Level, target: &str, line: String) {
            self.lines
                .lock()
                .unwrap()
                .push((level, target.to_owned(), line));
        }
    }

    #[test]
    fn forwards_the_crates_records_at_the_sinks_level_with_span_fields() {
        let sink = Sink::default();
        sink.max.store(3, Ordering::Relaxed);
        tracing::subscriber::with_default(subscriber(sink.clone()), || {
            let span = tracing::info_span!(target: "tokenrelay::client", "tokenrelay.connection", context_id = "ctx-1");
            let _entered = span.enter();
            tracing::info!(target: "tokenrelay::client::driver", resumed = true, replayed = 3, "attached to the context again");
            tracing::debug!(target: "tokenrelay::client::driver", "too verbose for now");
            tracing::warn!(target: "hyper", "not ours");
            // The level moves: the next record is judged afresh.
            sink.max.store(4, Ordering::Relaxed);
            tracing::debug!(target: "tokenrelay::client::driver", url = %"ws://h/ws", "opening a socket");
            sink.max.store(0, Ordering::Relaxed);
            tracing::error!(target: "tokenrelay::client::driver", "silenced");
        });
        let lines = sink.lines.lock().unwrap();
        assert_eq!(
            *lines,
            [
                (
                    Level::INFO,
                    "tokenrelay::client::driver".to_owned(),
                    "attached to the context again resumed=true replayed=3 context_id=ctx-1"
                        .to_owned()
                ),
                (
                    Level::DEBUG,
                    "tokenrelay::client::driver".to_owned(),
                    "opening a socket url=ws://h/ws context_id=ctx-1".to_owned()
                ),
            ]
        );
    }
}
