//! Token providers: any Python callable (async or plain) and the core's
//! ready-made providers.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyModule, PyString};
use pyo3_async_runtimes::TaskLocals;
use tokenrelay::{AppEndpoint as CoreAppEndpoint, OrgKeyProvider, StaticToken};
use tokenrelay::{Credential, Error};
use tokenrelay::{StreamTokenProvider, TokenProvider};
use tokio::sync::oneshot;

use crate::admin::NativeAdmin;
use crate::convert::type_name;
use crate::errors::from_provider_exception;

/// The event loop coroutine-returning providers run on. Set by every
/// `connect` from the loop it was awaited in, so a client built at import
/// time (no loop yet) works, and so does one reused across `asyncio.run`s.
pub(crate) type LoopSlot = Arc<Mutex<Option<TaskLocals>>>;

/// A Python callable `(context_id: str) -> str | Awaitable[str]`.
pub(crate) struct CallableProvider {
    func: Arc<Py<PyAny>>,
    event_loop: LoopSlot,
}

enum Called {
    Ready(Result<Credential, Error>),
    Awaiting(oneshot::Receiver<PyResult<Py<PyAny>>>),
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

/// Runs an async provider's awaitable on the app's loop for a Rust future
/// that may be dropped (the core drops a fetch when `connect()` settles or
/// the connection closes, before either is reported). The provider's code
/// must then not begin: `abandoned()` is read on the loop, in the very step
/// that would enter it, so a call either began before the drop or never
/// does (`into_future_with_locals` would run it whenever the loop got to it,
/// after `connect()` had already failed). A call already running is
/// cancelled.
const GLUE: &str = r#"
import asyncio
import inspect


def start(loop, context, awaitable, abandoned, done):
    handle = []

    async def run():
        if abandoned():
            raise asyncio.CancelledError
        return await awaitable

    def finished(task):
        # Cancelled before it began: the awaitable was never awaited.
        if inspect.iscoroutine(awaitable) and inspect.getcoroutinestate(awaitable) == inspect.CORO_CREATED:
            awaitable.close()
        done(task)

    def begin():
        task = loop.create_task(run())
        handle.append(task)
        task.add_done_callback(finished)

    loop.call_soon_threadsafe(begin, context=context)
    return handle


def cancel(loop, handle):
    for task in handle:
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:
            pass  # the loop is closed: nothing runs on it any more
"#;

static GLUE_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn glue(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    GLUE_MODULE
        .get_or_try_init(py, || {
            let code = CString::new(GLUE).expect("no NUL in the glue");
            PyModule::from_code(
                py,
                &code,
                c"tokenrelay/_provider_glue.py",
                c"tokenrelay._provider_glue",
            )
            .map(Bound::unbind)
        })
        .map(|m| m.bind(py))
}

/// `abandoned()` for [`GLUE`]: whether the Rust future was dropped.
#[pyclass(frozen, module = "tokenrelay._native")]
struct Abandoned(Arc<AtomicBool>);

#[pymethods]
impl Abandoned {
    fn __call__(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// `done(task)` for [`GLUE`]: hands the task's outcome to the Rust future.
#[pyclass(frozen, module = "tokenrelay._native")]
struct Done(Mutex<Option<oneshot::Sender<PyResult<Py<PyAny>>>>>);

#[pymethods]
impl Done {
    fn __call__(&self, task: &Bound<'_, PyAny>) {
        let result = task.call_method0("result").map(Bound::unbind);
        let tx = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tx) = tx {
            let _ = tx.send(result); // the future may be gone: nothing to tell
        }
    }
}

/// The loop and [`GLUE`] handle of an async call, once scheduled.
type Scheduled = Arc<Mutex<Option<(Py<PyAny>, Py<PyAny>)>>>;

/// One provider call as the core sees it. Dropped before it finished, it
/// marks the call abandoned: a plain callable not yet called is not called
/// (it waits for a blocking thread, which runs even after the drop), an
/// async one not yet begun never begins, and one running is cancelled.
struct Abandon {
    flag: Arc<AtomicBool>,
    scheduled: Scheduled,
    finished: bool,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.flag.store(true, Ordering::SeqCst);
        let scheduled = self
            .scheduled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((event_loop, handle)) = scheduled {
            // No interpreter any more (the process is exiting): nothing runs.
            let _ = Python::try_attach(|py| {
                if let Ok(g) = glue(py) {
                    let _ = g.call_method1("cancel", (event_loop, handle));
                }
            });
        }
    }
}

impl TokenProvider for CallableProvider {
    fn token<'a>(&'a self, context_id: &'a str) -> BoxFuture<'a, Result<Credential, Error>> {
        let func = self.func.clone();
        let event_loop = self.event_loop.clone();
        let context_id = context_id.to_owned();
        let abandon = Abandon {
            flag: Arc::new(AtomicBool::new(false)),
            scheduled: Arc::new(Mutex::new(None)),
            finished: false,
        };
        let (flag, scheduled) = (abandon.flag.clone(), abandon.scheduled.clone());
        Box::pin(async move {
            // The whole guard lives in the future (a closure would capture
            // only the field it assigns), so dropping the future drops it.
            let mut abandon = abandon;
            // A plain callable may block (an HTTP call with `requests`), so
            // it runs on a blocking thread, never on a runtime worker.
            let called = tokio::task::spawn_blocking(move || {
                Python::attach(|py| -> Called {
                    let gone = || {
                        Called::Ready(Err(Error::TokenProvider {
                            message: "the provider call was abandoned".into(),
                        }))
                    };
                    // The blocking thread runs even if the future was
                    // dropped meanwhile: then the provider is not called.
                    if flag.load(Ordering::SeqCst) {
                        return gone();
                    }
                    let out = match func.bind(py).call1((context_id,)) {
                        Ok(out) => out,
                        Err(e) => return Called::Ready(Err(from_provider_exception(py, &e))),
                    };
                    if !out.hasattr("__await__").unwrap_or(false) {
                        return Called::Ready(credential_from(py, &out));
                    }
                    let close = |out: &Bound<'_, PyAny>| {
                        if out.hasattr("close").unwrap_or(false) {
                            let _ = out.call_method0("close");
                        }
                    };
                    let locals = event_loop.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let Some(locals) = locals else {
                        close(&out);
                        return Called::Ready(Err(Error::TokenProvider {
                            message: "an async token provider needs a running event loop".into(),
                        }));
                    };
                    if flag.load(Ordering::SeqCst) {
                        close(&out);
                        return gone();
                    }
                    let (tx, rx) = oneshot::channel();
                    let started = glue(py).and_then(|g| {
                        g.call_method1(
                            "start",
                            (
                                locals.event_loop(py),
                                locals.context(py),
                                &out,
                                Abandoned(flag.clone()),
                                Done(Mutex::new(Some(tx))),
                            ),
                        )
                    });
                    match started {
                        Ok(handle) => {
                            *scheduled.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some((locals.event_loop(py).unbind(), handle.unbind()));
                            Called::Awaiting(rx)
                        }
                        Err(e) => {
                            close(&out);
                            Called::Ready(Err(from_provider_exception(py, &e)))
                        }
                    }
                })
            })
            .await
            .map_err(|e| Error::TokenProvider {
                message: format!("the token provider panicked: {e}"),
            });
            let result = match called {
                Err(e) => Err(e),
                Ok(Called::Ready(result)) => result,
                Ok(Called::Awaiting(rx)) => {
                    let result = rx.await;
                    Python::attach(|py| match result {
                        Ok(Ok(value)) => credential_from(py, value.bind(py)),
                        Ok(Err(e)) => Err(from_provider_exception(py, &e)),
                        Err(_) => Err(Error::TokenProvider {
                            message: "the event loop dropped the token provider's task".into(),
                        }),
                    })
                }
            };
            abandon.finished = true;
            result
        })
    }
}

/// The provider a Python `token_provider` argument stands for.
pub(crate) fn provider_from_py(
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
    #[pyo3(signature = (url, *, headers=None, token_field=None, context_field=None,
        root_certificate_pem=None, allow_insecure=false, proxy=None, no_proxy=false))]
    // One keyword argument per setting, as Python callers expect.
    #[allow(clippy::too_many_arguments)]
    fn new(
        url: String,
        headers: Option<Vec<(String, String)>>,
        token_field: Option<String>,
        context_field: Option<String>,
        root_certificate_pem: Option<Vec<u8>>,
        allow_insecure: bool,
        proxy: Option<String>,
        no_proxy: bool,
    ) -> Self {
        let mut p = CoreAppEndpoint::new(url).network(tokenrelay::NetworkOptions::from_parts(
            root_certificate_pem,
            allow_insecure,
            proxy,
            no_proxy,
        ));
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
pub(crate) struct Shared(pub Arc<dyn TokenProvider>);

impl TokenProvider for Shared {
    fn token<'a>(&'a self, context_id: &'a str) -> BoxFuture<'a, Result<Credential, Error>> {
        self.0.token(context_id)
    }
}
