//! `tokenrelay::Error` -> the Python exception hierarchy of
//! `tokenrelay.errors`, and Python exceptions raised by token providers ->
//! `tokenrelay::Error`.

use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;
use tokenrelay::{Error, ErrorKind, ProviderFailure};

/// The exception object (not raised) for `error`: built by
/// `tokenrelay.errors._from_native` as the class [`class_name`] names.
pub(crate) fn error_object(py: Python<'_>, error: &Error) -> PyResult<Py<PyAny>> {
    let rejection = error.rejection();
    let code = rejection.and_then(|r| r.code.clone());
    let mut status = rejection.and_then(|r| r.status);
    if let Error::ConnectionLost { code, .. } = error {
        status = *code;
    }
    let retry_after = error.retry_after().map(|d| d.as_secs_f64());
    let module = py.import("tokenrelay.errors")?;
    let obj = module.getattr("_from_native")?.call1((
        class_name(error.kind()),
        error.to_string(),
        code,
        status,
        retry_after,
    ))?;
    Ok(obj.unbind())
}

/// The `tokenrelay.errors` class of each core error kind. Exhaustive (no
/// `_` arm): a kind added to the core does not compile here until it has a
/// class; `tests/test_errors.py` checks each class exists and is the one
/// named.
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Unauthorized => "AuthError",
        ErrorKind::Forbidden => "ForbiddenError",
        ErrorKind::NotFound => "NotFoundError",
        ErrorKind::RateLimited => "RateLimitedError",
        ErrorKind::PaymentRequired => "PaymentRequiredError",
        ErrorKind::InvalidRequest => "InvalidRequestError",
        ErrorKind::Server => "ServerError",
        ErrorKind::Protocol => "ProtocolError",
        ErrorKind::Timeout => "TimeoutError",
        ErrorKind::ConnectionLost => "ConnectionLostError",
        ErrorKind::Closed => "ConnectionClosed",
        ErrorKind::TokenProvider => "TokenProviderError",
        ErrorKind::ExpiredToken => "ExpiredTokenError",
        ErrorKind::Transport => "TransportError",
        ErrorKind::QueueFull => "QueueFullError",
        ErrorKind::QueueExpired => "QueueExpiredError",
        ErrorKind::ClosedBeforeSent => "ClosedBeforeSentError",
        ErrorKind::EventsDropped => "EventsDroppedError",
        ErrorKind::Config => "ConfigError",
    }
}

/// Every core error kind's name, for the test of the table above.
#[pyfunction]
pub(crate) fn error_kinds_for_tests() -> Vec<&'static str> {
    ErrorKind::ALL.iter().map(|k| k.as_str()).collect()
}

/// The exception the binding makes of a sample core error of `kind`, for
/// the test that every kind has its own class.
#[pyfunction]
pub(crate) fn sample_error_for_tests(py: Python<'_>, kind: &str) -> PyResult<Py<PyAny>> {
    let kind = ErrorKind::from_name(kind)
        .ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("no kind {kind:?}")))?;
    error_object(py, &Error::sample(kind))
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

/// A Python exception raised by a token provider, as the core's error:
/// the binding reads what the core's one rule ([`Error::from_provider`])
/// classifies by, and nothing else.
///
/// * the kind, when it is one of this package's errors (its `kind`), so a
///   provider can end a connection for good by raising `ForbiddenError`;
/// * an HTTP status: an int `status`, `status_code` or `code` (urllib's
///   `HTTPError`), or the `status_code`/`status` of its `response` (httpx,
///   requests, aiohttp);
/// * a server error code: a str `code`.
pub(crate) fn from_provider_exception(py: Python<'_>, err: &PyErr) -> Error {
    let value = err.value(py);
    let text = value
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "the token provider raised".into());
    let kind = value
        .getattr("kind")
        .ok()
        .and_then(|k| k.extract::<String>().ok())
        .and_then(|k| ErrorKind::from_name(&k));
    // The type name tells a bare `RuntimeError: …` from a `KeyError: …`;
    // this package's own errors say what they are already.
    let message = match kind {
        Some(_) => text,
        None => {
            let name = value
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            format!("{name}: {text}")
        }
    };
    let response = value.getattr("response").ok();
    let status = int_attr(value, "status")
        .or_else(|| int_attr(value, "status_code"))
        .or_else(|| int_attr(value, "code"))
        .or_else(|| {
            let r = response.as_ref()?;
            int_attr(r, "status_code").or_else(|| int_attr(r, "status"))
        });
    let code = value
        .getattr("code")
        .ok()
        .and_then(|c| c.extract::<String>().ok());
    Error::from_provider(
        ProviderFailure::new(message)
            .kind(kind)
            .status(status)
            .code(code),
    )
}

/// `obj.name` when it is an int that fits an HTTP status (not a bool).
fn int_attr(obj: &Bound<'_, PyAny>, name: &str) -> Option<u16> {
    let v = obj.getattr(name).ok()?;
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return None;
    }
    v.extract::<u16>().ok()
}
