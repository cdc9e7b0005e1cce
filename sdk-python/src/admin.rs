//! The admin REST client, async and blocking from one class: every method
//! either returns an awaitable (async) or runs on the shared runtime with
//! the GIL released and returns the value (blocking). Answers cross as
//! dicts: the core's typed REST structs through serde, which
//! `tokenrelay.types` turns into frozen dataclasses (the field names stay
//! the core's, in one place on each side, checked against each other by
//! construction: an unknown key raises).

use std::future::Future;
use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokenrelay::rest::{Credentials, GenerateApiKeyRequest, NewAgent, NewContext};
use tokenrelay::{AdminClient, Error};

use crate::convert::{py_to_value, serialize_to_py};
use crate::errors::to_pyerr;

/// The native admin client (wrapped by `tokenrelay.AdminClient` and
/// `tokenrelay.BlockingAdminClient`).
#[pyclass(frozen, subclass, module = "tokenrelay._native")]
pub struct NativeAdmin {
    pub(crate) inner: AdminClient,
    blocking: bool,
}

type Convert<T> = fn(Python<'_>, T) -> PyResult<Py<PyAny>>;

fn to_none<T>(py: Python<'_>, _: T) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

/// Builds a request body from keyword arguments, so a wrong type is a
/// `TypeError` naming the field instead of a server-side 400.
fn body<T: DeserializeOwned>(
    py: Python<'_>,
    what: &str,
    fields: &[(&str, Option<Py<PyAny>>)],
) -> PyResult<T> {
    let mut map = Map::new();
    for (name, value) in fields {
        if let Some(v) = value {
            map.insert((*name).to_owned(), py_to_value(v.bind(py), name)?);
        }
    }
    serde_json::from_value(Value::Object(map))
        .map_err(|e| PyTypeError::new_err(format!("{what}: {e}")))
}

impl NativeAdmin {
    fn run<'py, T, F>(
        &self,
        py: Python<'py>,
        fut: F,
        convert: Convert<T>,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        if self.blocking {
            // The GIL is released while the request is in flight, so other
            // Python threads (a Flask server's) keep running.
            let result = py.detach(|| pyo3_async_runtimes::tokio::get_runtime().block_on(fut));
            let value = result.map_err(to_pyerr)?;
            Ok(convert(py, value)?.into_bound(py))
        } else {
            pyo3_async_runtimes::tokio::future_into_py(py, async move {
                let value = fut.await.map_err(to_pyerr)?;
                Python::attach(|py| convert(py, value))
            })
        }
    }
}

#[pymethods]
impl NativeAdmin {
    #[new]
    // One keyword argument per setting, as Python callers expect.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (base_url, api_key="", *, blocking=false, timeout=None, max_retries=None,
        root_certificate_pem=None, allow_insecure=false, proxy=None, no_proxy=false))]
    fn new(
        base_url: &str,
        api_key: &str,
        blocking: bool,
        timeout: Option<f64>,
        max_retries: Option<u32>,
        root_certificate_pem: Option<Vec<u8>>,
        allow_insecure: bool,
        proxy: Option<String>,
        no_proxy: bool,
    ) -> PyResult<Self> {
        let mut b = AdminClient::builder()
            .base_url(base_url)
            .credential(api_key);
        // `None` keeps the core's default (the retry rule lives there).
        if let Some(n) = max_retries {
            b = b.max_retries(n);
        }
        if let Some(t) = timeout {
            b = b.timeout(Duration::from_secs_f64(t.max(0.0)));
        }
        let inner = b
            .network(tokenrelay::NetworkOptions::from_parts(
                root_certificate_pem,
                allow_insecure,
                proxy,
                no_proxy,
            ))
            .build()
            .map_err(to_pyerr)?;
        Ok(NativeAdmin { inner, blocking })
    }

    /// The server's base URL.
    #[getter]
    fn base_url(&self) -> String {
        self.inner.base_url().to_string()
    }

    /// True for the blocking flavour.
    #[getter]
    fn blocking(&self) -> bool {
        self.blocking
    }

    #[pyo3(signature = (agent_name, prompt, *, agent_description=None, is_public=None,
        agent_speaks_first=None, tools=None))]
    #[allow(clippy::too_many_arguments)]
    fn create_agent<'py>(
        &self,
        py: Python<'py>,
        agent_name: Py<PyAny>,
        prompt: Py<PyAny>,
        agent_description: Option<Py<PyAny>>,
        is_public: Option<Py<PyAny>>,
        agent_speaks_first: Option<Py<PyAny>>,
        tools: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let agent: NewAgent = body(
            py,
            "create_agent",
            &[
                ("agent_name", Some(agent_name)),
                ("prompt", Some(prompt)),
                ("agent_description", agent_description),
                ("is_public", is_public),
                ("agent_speaks_first", agent_speaks_first),
                ("tools", tools),
            ],
        )?;
        let c = self.inner.clone();
        self.run(
            py,
            async move { c.create_agent(&agent).await },
            serialize_to_py,
        )
    }

    fn get_agent<'py>(&self, py: Python<'py>, agent_id: String) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(
            py,
            async move { c.get_agent(&agent_id).await },
            serialize_to_py,
        )
    }

    fn list_agents<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(py, async move { c.list_agents().await }, serialize_to_py)
    }

    fn delete_agent<'py>(&self, py: Python<'py>, agent_id: String) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(py, async move { c.delete_agent(&agent_id).await }, to_none)
    }

    #[pyo3(signature = (agent_id, *, invoke_agent_message=None, prompt_args=None, user_defined=None))]
    fn create_context<'py>(
        &self,
        py: Python<'py>,
        agent_id: Py<PyAny>,
        invoke_agent_message: Option<Py<PyAny>>,
        prompt_args: Option<Py<PyAny>>,
        user_defined: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let context: NewContext = body(
            py,
            "create_context",
            &[
                ("agent_id", Some(agent_id)),
                ("invoke_agent_message", invoke_agent_message),
                ("prompt_args", prompt_args),
                ("user_defined", user_defined),
            ],
        )?;
        let c = self.inner.clone();
        self.run(
            py,
            async move { c.create_context(&context).await },
            serialize_to_py,
        )
    }

    fn get_context<'py>(&self, py: Python<'py>, context_id: String) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(
            py,
            async move { c.get_context(&context_id).await },
            serialize_to_py,
        )
    }

    fn delete_context<'py>(
        &self,
        py: Python<'py>,
        context_id: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(
            py,
            async move { c.delete_context(&context_id).await },
            to_none,
        )
    }

    fn chat<'py>(
        &self,
        py: Python<'py>,
        context_id: String,
        message: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(
            py,
            async move { c.chat(&context_id, &message).await },
            serialize_to_py,
        )
    }

    #[pyo3(signature = (org_id, r#type, *, context_id=None, ttl_seconds=None))]
    fn generate_api_key<'py>(
        &self,
        py: Python<'py>,
        org_id: Py<PyAny>,
        r#type: Py<PyAny>,
        context_id: Option<Py<PyAny>>,
        ttl_seconds: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request: GenerateApiKeyRequest = body(
            py,
            "generate_api_key",
            &[
                ("org_id", Some(org_id)),
                ("type", Some(r#type)),
                ("context_id", context_id),
                ("ttl_seconds", ttl_seconds),
            ],
        )?;
        let c = self.inner.clone();
        self.run(
            py,
            async move { c.generate_api_key(&request).await },
            serialize_to_py,
        )
    }

    #[pyo3(signature = (org_id, *, context_id=None, ttl_seconds=None))]
    fn generate_client_key<'py>(
        &self,
        py: Python<'py>,
        org_id: String,
        context_id: Option<String>,
        ttl_seconds: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(
            py,
            async move {
                c.generate_client_key(&org_id, context_id.as_deref(), ttl_seconds)
                    .await
            },
            serialize_to_py,
        )
    }

    fn register<'py>(
        &self,
        py: Python<'py>,
        username: Py<PyAny>,
        password: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let creds: Credentials = body(
            py,
            "register",
            &[("username", Some(username)), ("password", Some(password))],
        )?;
        let c = self.inner.clone();
        self.run(py, async move { c.register(&creds).await }, serialize_to_py)
    }

    fn login<'py>(
        &self,
        py: Python<'py>,
        username: Py<PyAny>,
        password: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let creds: Credentials = body(
            py,
            "login",
            &[("username", Some(username)), ("password", Some(password))],
        )?;
        let c = self.inner.clone();
        self.run(py, async move { c.login(&creds).await }, serialize_to_py)
    }

    fn me<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(py, async move { c.me().await }, serialize_to_py)
    }

    fn create_user_api_key<'py>(
        &self,
        py: Python<'py>,
        nickname: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(
            py,
            async move { c.create_user_api_key(&nickname).await },
            serialize_to_py,
        )
    }

    fn list_user_api_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(
            py,
            async move { c.list_user_api_keys().await },
            serialize_to_py,
        )
    }

    fn delete_user_api_key<'py>(
        &self,
        py: Python<'py>,
        key_id: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(
            py,
            async move { c.delete_user_api_key(&key_id).await },
            to_none,
        )
    }

    #[pyo3(signature = (ttl=None))]
    fn stream_token<'py>(&self, py: Python<'py>, ttl: Option<u32>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(py, async move { c.stream_token(ttl).await }, |py, t| {
            let d = PyDict::new(py);
            d.set_item("token", t.token)?;
            d.set_item("ttl", t.ttl)?;
            let rl = match t.rate_limit {
                Some(r) => {
                    let rd = PyDict::new(py);
                    rd.set_item("limit", r.limit)?;
                    rd.set_item("remaining", r.remaining)?;
                    rd.into_any().unbind()
                }
                None => py.None(),
            };
            d.set_item("rate_limit", rl)?;
            Ok(d.into_any().unbind())
        })
    }

    fn create_client_key<'py>(
        &self,
        py: Python<'py>,
        allowed_origins: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(
            py,
            async move { c.create_client_key(allowed_origins).await },
            serialize_to_py,
        )
    }

    fn delete_client_key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        self.run(py, async move { c.delete_client_key().await }, to_none)
    }
}
