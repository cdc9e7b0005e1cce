//! The core's `tracing` records, forwarded to Python's `logging` logger
//! named `tokenrelay` (what `tokenrelay/_logging.py` sets up).
//!
//! A `tracing` subscriber private to this extension (its copy of
//! `tracing` sees only the SDK's own records) passes each record of a
//! `tokenrelay` target at or above a threshold to `logger.log`. The
//! threshold mirrors the logger's effective level, set from Python
//! (`_set_log_level`): records the logger would drop never take the GIL,
//! so at the default level (`WARNING`) a healthy connection never calls
//! into Python at all. The core never puts a credential in a record (its
//! tests check it); nothing is added here but the record's fields and
//! those of its span (the context id).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The most verbose `tracing` level forwarded: 0 none, 1 error, 2 warn,
/// 3 info, 4 debug, 5 trace. Starts at warn, `logging`'s default.
static THRESHOLD: AtomicU8 = AtomicU8::new(2);

/// The `tokenrelay` logger, looked up once.
static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// `logging`'s number for a `tracing` level (`TRACE` below `DEBUG`, as 5).
fn levelno(level: &Level) -> i32 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

/// Sets which records reach Python from `logging`'s level number (the
/// logger's effective level): at 10 (`DEBUG`) debug records and above,
/// at 5 or below trace too, above 40 (`ERROR`) none.
#[pyfunction]
pub(crate) fn _set_log_level(levelno: i32) {
    let rank = match levelno {
        i32::MIN..=5 => 5,
        6..=10 => 4,
        11..=20 => 3,
        21..=30 => 2,
        31..=40 => 1,
        _ => 0,
    };
    THRESHOLD.store(rank, Ordering::Relaxed);
}

/// Installs the forwarding subscriber; called once, when the module loads.
/// Another subscriber already set (a host embedding this module with its
/// own) wins, and nothing is forwarded.
pub(crate) fn install() {
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(ToPython));
}

/// The layer that forwards records.
struct ToPython;

fn wanted(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with("tokenrelay")
        && rank(metadata.level()) <= THRESHOLD.load(Ordering::Relaxed)
}

/// A span's fields as `key=value` pairs, kept in its extensions.
struct SpanFields(String);

/// Writes a record's fields: `message` on its own, the rest as
/// ` key=value`.
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

impl<S> Layer<S> for ToPython
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Asked again at every record: the threshold moves with the
        // Python logger's level.
        if metadata.target().starts_with("tokenrelay") {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        // Spans are always kept (cheap, no Python): a record inside one
        // names its context even if the span began below the threshold.
        metadata.is_span() || wanted(metadata)
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
        if !wanted(metadata) {
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
        let level = levelno(metadata.level());
        let target = metadata.target();
        // Not while the interpreter shuts down: a record then is dropped.
        let _ = Python::try_attach(|py| -> PyResult<()> {
            let logger = LOGGER.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
                Ok(py
                    .import("logging")?
                    .call_method1("getLogger", ("tokenrelay",))?
                    .unbind())
            })?;
            let extra = PyDict::new(py);
            extra.set_item("tokenrelay_target", target)?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("extra", extra)?;
            // "%s": the line is data, never a format string.
            logger
                .bind(py)
                .call_method("log", (level, "%s", line), Some(&kwargs))?;
            Ok(())
        });
    }
}
