//! [`Logger`]: the app's callback for the SDK's log records (the core's
//! `tracing` records, through its `log_forward`), set in
//! `ClientConfig.logger`.
//!
//! Records are process-wide in `tracing`, so the loggers of every open
//! client are kept here, each with its level, and every record goes to
//! each logger that wants its level. A record no logger wants is dropped
//! before it is formatted (an atomic load), so a client without a logger
//! costs nothing.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Once};

use tokenrelay::log_forward::{self, LogSink};
use tracing::Level;

/// How much a record matters, from errors to the finest detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    /// Something failed for good (a connection that will not come back).
    Error,
    /// Something the app should look at.
    Warn,
    /// A connection's life: attached, lost (with the cause and the delay
    /// before the next attempt), resumed (with what was replayed), closed
    /// (with its stats).
    Info,
    /// Each attempt's steps: token fetches, sockets opened and closed.
    Debug,
    /// Pings.
    Trace,
}

impl LogLevel {
    fn of(level: Level) -> LogLevel {
        match level {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            Level::DEBUG => LogLevel::Debug,
            _ => LogLevel::Trace,
        }
    }

    /// 1 (error) to 5 (trace); 0 is "nothing".
    fn rank(self) -> u8 {
        self as u8 + 1
    }
}

/// Receives the SDK's log records. Implement it in Kotlin or Swift and set
/// it as `ClientConfig.logger`; forward to Logcat, `os_log`, or the app's
/// own logging.
///
/// Called on the SDK's own threads, one record at a time: return quickly
/// and do not block. No record ever carries a key or a token.
#[uniffi::export(with_foreign)]
pub trait Logger: Send + Sync {
    /// One record: its level, where it comes from in the SDK (the Rust
    /// module path, `tokenrelay::client::driver`) and its line, as
    /// `message key=value …` ending with the connection's `context_id`.
    fn log(&self, level: LogLevel, target: String, message: String);
}

struct Entry {
    id: u64,
    logger: Arc<dyn Logger>,
    level: LogLevel,
}

static LOGGERS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
/// The most verbose rank any registered logger wants (0: none).
static MAX: AtomicU8 = AtomicU8::new(0);
static NEXT: AtomicU64 = AtomicU64::new(1);
static INSTALL: Once = Once::new();

/// A logger registered while its client lives; dropping it unregisters.
pub(crate) struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        let mut loggers = LOGGERS.lock().unwrap_or_else(|p| p.into_inner());
        loggers.retain(|e| e.id != self.0);
        publish(&loggers);
    }
}

fn publish(loggers: &[Entry]) {
    let max = loggers.iter().map(|e| e.level.rank()).max().unwrap_or(0);
    MAX.store(max, Ordering::Relaxed);
}

/// Sends the SDK's records at `level` and above to `logger` until the
/// returned registration is dropped.
pub(crate) fn register(logger: Arc<dyn Logger>, level: LogLevel) -> Registration {
    INSTALL.call_once(|| {
        // Another subscriber already set (a host with its own) wins.
        let _ = tracing::subscriber::set_global_default(log_forward::subscriber(ToLoggers));
    });
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut loggers = LOGGERS.lock().unwrap_or_else(|p| p.into_inner());
    loggers.push(Entry { id, logger, level });
    publish(&loggers);
    Registration(id)
}

/// Hands records to every registered logger that wants them.
struct ToLoggers;

impl LogSink for ToLoggers {
    fn max_level(&self) -> Option<Level> {
        log_forward::level_of_rank(MAX.load(Ordering::Relaxed))
    }

    fn log(&self, level: Level, target: &str, line: String) {
        let level = LogLevel::of(level);
        // Called outside the lock: a logger may itself open a client.
        let wanted: Vec<Arc<dyn Logger>> = LOGGERS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| level <= e.level)
            .map(|e| e.logger.clone())
            .collect();
        for logger in wanted {
            logger.log(level, target.to_owned(), line.clone());
        }
    }
}
