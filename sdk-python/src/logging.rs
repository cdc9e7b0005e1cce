//! The core's `tracing` records, forwarded to Python's `logging` logger
//! named `tokenrelay` (what `tokenrelay/_logging.py` sets up), through the
//! core's `log_forward`.
//!
//! The threshold mirrors the logger's effective level, set from Python
//! (`_set_log_level`): records the logger would drop never take the GIL,
//! so at the default level (`WARNING`) a healthy connection never calls
//! into Python at all.

use std::sync::atomic::{AtomicU8, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use tokenrelay::log_forward::{self, LogSink};
use tracing::Level;

/// The most verbose `tracing` level forwarded: 0 none, 1 error, 2 warn,
/// 3 info, 4 debug, 5 trace. Starts at warn, `logging`'s default.
static THRESHOLD: AtomicU8 = AtomicU8::new(2);

/// The `tokenrelay` logger, looked up once.
static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `logging`'s number for a `tracing` level (`TRACE` below `DEBUG`, as 5).
fn levelno(level: Level) -> i32 {
    match level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        _ => 5,
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
    let _ = tracing::subscriber::set_global_default(log_forward::subscriber(ToPython));
}

/// Hands records to `logging.getLogger("tokenrelay").log`.
struct ToPython;

impl LogSink for ToPython {
    fn max_level(&self) -> Option<Level> {
        log_forward::level_of_rank(THRESHOLD.load(Ordering::Relaxed))
    }

    fn log(&self, level: Level, target: &str, line: String) {
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
                .call_method("log", (levelno(level), "%s", line), Some(&kwargs))?;
            Ok(())
        });
    }
}
