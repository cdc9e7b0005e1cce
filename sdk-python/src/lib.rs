//! Python bindings of tokenrelay: the native module `tokenrelay._native`.
//!
//! The binding only converts values and errors at the boundary; every
//! protocol decision stays in the `tokenrelay` crate. The pure-Python package
//! (`python/tokenrelay`) gives the module its public shape (async context
//! managers, async iterators, dataclasses, the exception hierarchy).
#![warn(missing_docs)]

use pyo3::prelude::*;

mod admin;
mod connection;
mod convert;
mod errors;
mod logging;
mod providers;

/// The module `tokenrelay._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The crate's version is the package's (maturin takes it from
    // Cargo.toml), so `tokenrelay.__version__` needs no installed metadata.
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<connection::NativeClient>()?;
    m.add_class::<connection::NativeConnection>()?;
    m.add_class::<connection::NativeStream>()?;
    m.add_class::<admin::NativeAdmin>()?;
    m.add_class::<providers::AppEndpoint>()?;
    m.add_class::<providers::OrgKey>()?;
    m.add_class::<providers::StreamToken>()?;
    m.add_class::<providers::Static>()?;
    m.add_function(wrap_pyfunction!(logging::_set_log_level, m)?)?;
    logging::install();
    m.add_function(wrap_pyfunction!(panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(errors::error_kinds_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(errors::sample_error_for_tests, m)?)?;
    Ok(())
}

/// Panics inside Rust, so the test suite can check that a panic surfaces as
/// a Python exception instead of aborting the interpreter.
#[pyfunction]
fn panic_for_tests() {
    panic!("deliberate panic requested by the test suite");
}
