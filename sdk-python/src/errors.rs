//! `tokenrelay::Error` -> the Python exception hierarchy of
//! `tokenrelay.errors`, and Python exceptions raised by token providers ->
//! `tokenrelay::Error`.

use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;
use tokenrelay::{Error, Rejection};

/// The exception object (not raised) for `error`: built by
/// `tokenrelay.errors._from_native`, which picks the class from the core's
/// stable `kind`.
pub(crate) fn error_object(py: Python<'_>, error: &Error) -> PyResult<Py<PyAny>> {
    let rejection = error.rejection();
    let code = rejection.and_then(|r| r.code.clone());
    let mut status = rejection.and_then(|r| r.status);
    let mut retry_after = None;
    match error {
        Error::RateLimited {
            retry_after: after, ..
        } => retry_after = after.map(|d| d.as_secs_f64()),
        Error::ConnectionLost { code, .. } => status = *code,
        _ => {}
    }
    let module = py.import("tokenrelay.errors")?;
    let obj = module.getattr("_from_native")?.call1((
        error.kind(),
        error.to_string(),
        code,
        status,
        retry_after,
    ))?;
    Ok(obj.unbind())
}

/// `error` as a raisable `PyErr`.
pub(crate) fn to_pyerr(error: Error) -> PyErr {
    Python::attach(|py| match error_object(py, &error) {
        Ok(obj) => PyErr::from_value(obj.into_bound(py)),
        // The package is not importable (the native module used alone):
        // still raise something that says what happened.
        Err(e) => e,
    })
}

/// A Python exception raised by a token provider, as the core's error. A
/// `tokenrelay.Error` keeps its class, so a provider can end a connection
/// for good by raising `ForbiddenError` or `NotFoundError`; anything else is
/// a transient provider failure.
pub(crate) fn from_provider_exception(py: Python<'_>, err: &PyErr) -> Error {
    let value = err.value(py);
    let message = value
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "the token provider raised".into());
    let kind: Option<String> = value
        .getattr("kind")
        .ok()
        .and_then(|k| k.extract::<String>().ok());
    let rejection = || {
        Box::new(Rejection {
            message: message.clone(),
            code: None,
            status: None,
        })
    };
    match kind.as_deref() {
        Some("forbidden") => Error::Forbidden(rejection()),
        Some("not_found") => Error::NotFound(rejection()),
        Some("payment_required") => Error::PaymentRequired(rejection()),
        Some("unauthorized") => Error::Unauthorized(rejection()),
        _ => Error::TokenProvider {
            message: format!(
                "{}: {message}",
                value
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ),
        },
    }
}
