//! Token providers: any Python callable (async or plain) and the core's
//! ready-made providers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use pyo3_async_runtimes::TaskLocals;
use tokenrelay::provider::{AppEndpoint as CoreAppEndpoint, OrgKeyProvider, StaticToken};
use tokenrelay::provider::{StreamTokenProvider, TokenProvider};
use tokenrelay::{Credential, Error};

use crate::admin::NativeAdmin;
use crate::convert::type_name;
use crate::errors::from_provider_exception;

/// The event loop coroutine-returning providers run on. Set by every
/// `connect` from the loop it was awaited in, so a client built at import
/// time (no loop yet) works, and so does one reused across `asyncio.run`s.
pub type LoopSlot = Arc<Mutex<Option<TaskLocals>>>;

/// A Python callable `(context_id: str) -> str | Awaitable[str]`.
pub struct CallableProvider {
    func: Arc<Py<PyAny>>,
    event_loop: LoopSlot,
}

enum Called {
    Ready(Result<Credential, Error>),
    Awaiting(BoxFuture<'static, PyResult<Py<PyAny>>>),
}

fn credential_from(py: Python<'_>, value: &Bound<'_, PyAny>) -> Result<Credential, Error> {
    match value.cast::<PyString>() {
        Ok(s) => Ok(Credential::from(s.to_string())),
        Err(_) => Err(from_provider_exception(
            py,
            &PyTypeError::new_err(format!(
                "a token provider must return a str, got {}",
                type_name(value)
            )),
        )),
    }
}

impl TokenProvider for CallableProvider {
    fn token<'a>(&'a self, context_id: &'a str) -> BoxFuture<'a, Result<Credential, Error>> {
        let func = self.func.clone();
        let event_loop = self.event_loop.clone();
        let context_id = context_id.to_owned();
        Box::pin(async move {
            // A plain callable may block (an HTTP call with `requests`), so
            // it runs on a blocking thread, never on a runtime worker.
            let called = tokio::task::spawn_blocking(move || {
                Python::attach(|py| -> Called {
                    let out = match func.bind(py).call1((context_id,)) {
                        Ok(out) => out,
                        Err(e) => return Called::Ready(Err(from_provider_exception(py, &e))),
                    };
                    if !out.hasattr("__await__").unwrap_or(false) {
                        return Called::Ready(credential_from(py, &out));
                    }
                    let locals = event_loop.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let Some(locals) = locals else {
                        return Called::Ready(Err(Error::TokenProvider {
                            message: "an async token provider needs a running event loop".into(),
                        }));
                    };
                    match pyo3_async_runtimes::into_future_with_locals(&locals, out) {
                        Ok(fut) => Called::Awaiting(Box::pin(fut)),
                        Err(e) => Called::Ready(Err(from_provider_exception(py, &e))),
                    }
                })
            })
            .await
            .map_err(|e| Error::TokenProvider {
                message: format!("the token provider panicked: {e}"),
            })?;
            match called {
                Called::Ready(result) => result,
                Called::Awaiting(fut) => {
                    let result = fut.await;
                    Python::attach(|py| match result {
                        Ok(value) => credential_from(py, value.bind(py)),
                        Err(e) => Err(from_provider_exception(py, &e)),
                    })
                }
            }
        })
    }
}

/// The provider a Python `token_provider` argument stands for.
pub fn provider_from_py(
    obj: &Bound<'_, PyAny>,
    event_loop: LoopSlot,
) -> PyResult<Arc<dyn TokenProvider>> {
    if let Ok(p) = obj.cast::<AppEndpoint>() {
        return Ok(p.get().inner.clone());
    }
    if let Ok(p) = obj.cast::<OrgKey>() {
        return Ok(p.get().inner.clone());
    }
    if let Ok(p) = obj.cast::<StreamToken>() {
        return Ok(p.get().inner.clone());
    }
    if let Ok(p) = obj.cast::<Static>() {
        return Ok(p.get().inner.clone());
    }
    if obj.is_callable() {
        return Ok(Arc::new(CallableProvider {
            func: Arc::new(obj.clone().unbind()),
            event_loop,
        }));
    }
    Err(PyTypeError::new_err(format!(
        "token_provider must be a callable (async or not) taking the context id and \
         returning a key, or one of tokenrelay.providers.*, got {}",
        type_name(obj)
    )))
}

/// Your backend's "get client token" endpoint: `POST url` with
/// `{context_field: context_id}`; the key is read from `token_field`.
#[pyclass(frozen, module = "tokenrelay._native")]
pub struct AppEndpoint {
    inner: Arc<dyn TokenProvider>,
}

#[pymethods]
impl AppEndpoint {
    #[new]
    #[pyo3(signature = (url, *, headers=None, token_field=None, context_field=None))]
    fn new(
        url: String,
        headers: Option<Vec<(String, String)>>,
        token_field: Option<String>,
        context_field: Option<String>,
    ) -> Self {
        let mut p = CoreAppEndpoint::new(url);
        for (name, value) in headers.unwrap_or_default() {
            p = p.header(name, value);
        }
        if let Some(f) = token_field {
            p = p.token_field(f);
        }
        if let Some(f) = context_field {
            p = p.context_field(f);
        }
        AppEndpoint { inner: Arc::new(p) }
    }
}

/// Server-side only: mints a client key per connect with an org key.
#[pyclass(frozen, module = "tokenrelay._native")]
pub struct OrgKey {
    inner: Arc<dyn TokenProvider>,
}

#[pymethods]
impl OrgKey {
    #[new]
    #[pyo3(signature = (admin, org_id, *, ttl_seconds=None))]
    fn new(admin: PyRef<'_, NativeAdmin>, org_id: String, ttl_seconds: Option<f64>) -> Self {
        let mut p = OrgKeyProvider::new(admin.inner.clone(), org_id);
        if let Some(t) = ttl_seconds {
            p = p.ttl(Duration::from_secs_f64(t.max(1.0)));
        }
        OrgKey { inner: Arc::new(p) }
    }
}

/// Single-use `pub_tok_…` stream tokens from `GET /api/v1/token`.
#[pyclass(frozen, module = "tokenrelay._native")]
pub struct StreamToken {
    inner: Arc<dyn TokenProvider>,
}

#[pymethods]
impl StreamToken {
    #[new]
    #[pyo3(signature = (admin, *, ttl=None))]
    fn new(admin: PyRef<'_, NativeAdmin>, ttl: Option<u32>) -> Self {
        let mut p = StreamTokenProvider::new(admin.inner.clone());
        if let Some(t) = ttl {
            p = p.ttl(t);
        }
        StreamToken { inner: Arc::new(p) }
    }
}

/// One fixed key (tests, or an org key used from a server).
#[pyclass(frozen, module = "tokenrelay._native")]
pub struct Static {
    inner: Arc<dyn TokenProvider>,
}

#[pymethods]
impl Static {
    #[new]
    #[pyo3(signature = (token, *, stream_token=false))]
    fn new(token: String, stream_token: bool) -> Self {
        let credential = if stream_token {
            Credential::stream_token(token)
        } else {
            Credential::access_token(token)
        };
        Static {
            inner: Arc::new(StaticToken(credential)),
        }
    }
}

/// An `Arc`'d provider handed to the core's builder (which takes the
/// provider by value).
pub struct Shared(pub Arc<dyn TokenProvider>);

impl TokenProvider for Shared {
    fn token<'a>(&'a self, context_id: &'a str) -> BoxFuture<'a, Result<Credential, Error>> {
        self.0.token(context_id)
    }
}
