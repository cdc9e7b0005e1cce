//! `Client` and `Connection`: the streaming side. Events cross the boundary
//! in batches (one await per batch, not per token), which is what keeps
//! `async for token in conn.stream(...)` fast.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyModule, PyTuple};
use pyo3::IntoPyObjectExt;
use serde_json::Value;
use tokenrelay::wire::ToolResponseParam;
use tokenrelay::{
    Client, Connection, Event, RequestId, Response, ResponseId, StateChange, TokenText,
};

use crate::convert::{serialize_to_py, value_to_py};
use crate::errors::{error_object, to_pyerr};
use crate::providers::{provider_from_py, LoopSlot, Shared};

/// Most events handed to Python in one batch.
const MAX_BATCH: usize = 4096;

/// Most events a token stream keeps for the event iterator (the events of
/// other replies and of the connection it read along the way); beyond it
/// the oldest go, as the core's own buffer does when nobody reads.
const MAX_STASHED: usize = 65_536;

/// Events read for the connection's event iterator and not yet handed
/// out, in order: those a token stream read that were not its own, and
/// those `wait_events` read (`take_events` hands them out).
#[derive(Default)]
struct Stash {
    events: VecDeque<Event>,
    /// Dropped because the stash was full, announced by the next read.
    dropped: u64,
}

impl Stash {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.dropped == 0
    }

    fn push(&mut self, event: Event) {
        if self.events.len() >= MAX_STASHED {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
    }

    /// Up to `MAX_BATCH` kept events, oldest first, after an
    /// `EventsDropped` error when some were dropped.
    fn take(&mut self, out: &mut Vec<Event>) {
        if self.dropped > 0 {
            out.push(Event::Error(tokenrelay::Error::EventsDropped {
                count: std::mem::take(&mut self.dropped),
            }));
        }
        let n = self.events.len().min(MAX_BATCH);
        out.extend(self.events.drain(..n));
    }
}

type SharedStash = Arc<Mutex<Stash>>;

fn lock(stash: &SharedStash) -> std::sync::MutexGuard<'_, Stash> {
    stash.lock().unwrap_or_else(|p| p.into_inner())
}

/// The native client (wrapped by `tokenrelay.Client`).
#[pyclass(frozen, module = "tokenrelay._native")]
pub struct NativeClient {
    inner: Client,
    event_loop: LoopSlot,
}

fn secs(value: Option<f64>) -> Option<Duration> {
    value.map(|s| Duration::from_secs_f64(s.max(0.0)))
}

#[pymethods]
impl NativeClient {
    #[new]
    // One keyword argument per setting, as Python callers expect.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (ws_url, token_provider, *, client_key=None, headers=None,
        connect_timeout=None, request_timeout=None, invocation_timeout=None,
        refresh_ahead=true, ping_interval=None, idle_timeout=None, max_queued=None,
        max_queued_age=None, root_certificate_pem=None, allow_insecure=false, proxy=None,
        no_proxy=false))]
    fn new(
        ws_url: String,
        token_provider: &Bound<'_, PyAny>,
        client_key: Option<String>,
        headers: Option<Vec<(String, String)>>,
        connect_timeout: Option<f64>,
        request_timeout: Option<f64>,
        invocation_timeout: Option<f64>,
        refresh_ahead: bool,
        ping_interval: Option<f64>,
        idle_timeout: Option<f64>,
        max_queued: Option<usize>,
        max_queued_age: Option<f64>,
        root_certificate_pem: Option<Vec<u8>>,
        allow_insecure: bool,
        proxy: Option<String>,
        no_proxy: bool,
    ) -> PyResult<Self> {
        let event_loop: LoopSlot = Arc::new(Mutex::new(None));
        let provider = provider_from_py(token_provider, event_loop.clone())?;
        let mut b = Client::builder(ws_url).token_provider(Shared(provider));
        if let Some(k) = client_key {
            b = b.client_key(k);
        }
        for (name, value) in headers.unwrap_or_default() {
            b = b.header(name, value);
        }
        if let Some(t) = secs(connect_timeout) {
            b = b.connect_timeout(t);
        }
        if let Some(t) = secs(request_timeout) {
            b = b.request_timeout(t);
        }
        if let Some(t) = secs(invocation_timeout) {
            b = b.invocation_timeout(t);
        }
        // `None` keeps the core's default; 0 (or less) turns the timer off.
        let timer = |s: f64| (s > 0.0).then(|| Duration::from_secs_f64(s));
        if let Some(s) = ping_interval {
            b = b.ping_interval(timer(s));
        }
        if let Some(s) = idle_timeout {
            b = b.idle_timeout(timer(s));
        }
        if let Some(n) = max_queued {
            b = b.max_queued(n);
        }
        if let Some(s) = max_queued_age {
            b = b.max_queued_age(timer(s));
        }
        let inner = b
            .network(tokenrelay::NetworkOptions::from_parts(
                root_certificate_pem,
                allow_insecure,
                proxy,
                no_proxy,
            ))
            .refresh_ahead(refresh_ahead)
            .build()
            .map_err(to_pyerr)?;
        Ok(NativeClient { inner, event_loop })
    }

    /// Connects to `context_id`; resolves to a `NativeConnection`.
    fn connect<'py>(&self, py: Python<'py>, context_id: String) -> PyResult<Bound<'py, PyAny>> {
        // Async token providers run on the loop that awaits this connect.
        if let Ok(locals) = pyo3_async_runtimes::tokio::get_current_locals(py) {
            *self.event_loop.lock().unwrap_or_else(|p| p.into_inner()) = Some(locals);
        }
        let client = self.inner.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let conn = client.connect(context_id).await.map_err(to_pyerr)?;
            Ok(NativeConnection::new(conn))
        })
    }
}

/// The native connection (wrapped by `tokenrelay.Connection`).
#[pyclass(frozen, module = "tokenrelay._native")]
pub struct NativeConnection {
    context_id: String,
    /// The handle events are read from (one reader at a time).
    reader: Arc<tokio::sync::Mutex<Connection>>,
    /// Where request handles are cloned from, so a long `ask` never holds
    /// the reader.
    requests: Mutex<Connection>,
    /// Events read for the event iterator and not yet taken (see `Stash`).
    stash: SharedStash,
}

impl NativeConnection {
    fn new(conn: Connection) -> Self {
        NativeConnection {
            context_id: conn.context_id().to_owned(),
            requests: Mutex::new(conn.clone_handle()),
            reader: Arc::new(tokio::sync::Mutex::new(conn)),
            stash: SharedStash::default(),
        }
    }

    fn handle(&self) -> Connection {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone_handle()
    }
}

/// Waits for at least one event, then takes what else is already there.
async fn next_batch(conn: &mut Connection, out: &mut Vec<Event>) -> bool {
    let Some(first) = conn.next_event().await else {
        return false;
    };
    out.push(first);
    while out.len() < MAX_BATCH {
        match conn.next_event().now_or_never() {
            Some(Some(e)) => out.push(e),
            _ => break,
        }
    }
    true
}

#[pymethods]
impl NativeConnection {
    /// The context this connection is attached to.
    #[getter]
    fn context_id(&self) -> &str {
        &self.context_id
    }

    /// Requests waiting for a connection to be sent (see the core's
    /// `Connection::pending`).
    fn pending(&self) -> usize {
        self.handle().pending()
    }

    /// The connection's counters (the core's `Stats`), as a dict the
    /// Python side makes a `tokenrelay.Stats` of.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.handle().stats();
        let d = PyDict::new(py);
        d.set_item("connects", s.connects)?;
        d.set_item("reconnects", s.reconnects)?;
        d.set_item("resumes", s.resumes)?;
        d.set_item("replayed", s.replayed)?;
        d.set_item("tokens", s.tokens)?;
        d.set_item("duplicates", s.duplicates)?;
        d.set_item("interrupted", s.interrupted)?;
        d.set_item("frames_received", s.frames_received)?;
        d.set_item("bytes_received", s.bytes_received)?;
        d.set_item("token_fetches", s.token_fetches)?;
        Ok(d)
    }

    /// The latest state change, as a `tokenrelay.StateChanged`.
    fn state(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let classes = Classes::get(py)?;
        let state = self.handle().state();
        state_to_py(py, &classes, &state)
    }

    fn send_message<'py>(&self, py: Python<'py>, text: String) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.handle();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            conn.send_message(text)
                .await
                .map(|id| id.0)
                .map_err(to_pyerr)
        })
    }

    fn ask<'py>(&self, py: Python<'py>, text: String) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.handle();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let response = conn.ask(text).await.map_err(to_pyerr)?;
            Python::attach(|py| response_to_py(py, &Classes::get(py)?, &response))
        })
    }

    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.handle();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            conn.stop().await.map_err(to_pyerr)
        })
    }

    #[pyo3(signature = (human_message, ai_message=None))]
    fn set_last_messages<'py>(
        &self,
        py: Python<'py>,
        human_message: String,
        ai_message: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.handle();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            conn.set_last_messages(human_message, ai_message)
                .await
                .map(|id| id.0)
                .map_err(to_pyerr)
        })
    }

    /// `responses`: `(tool_call_id, response)` pairs. Resolves with the
    /// agent's whole continuation (a `tokenrelay.Response`), which may
    /// itself end with client-side tool calls.
    fn send_tool_responses<'py>(
        &self,
        py: Python<'py>,
        responses: Vec<(String, String)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.handle();
        let params = responses
            .into_iter()
            .map(|(tool_call_id, response)| ToolResponseParam {
                tool_call_id,
                response,
            })
            .collect();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let response = conn.answer_tools(params).await.map_err(to_pyerr)?;
            Python::attach(|py| response_to_py(py, &Classes::get(py)?, &response))
        })
    }

    fn response<'py>(&self, py: Python<'py>, response_id: String) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.handle();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            match conn.response(&response_id).await {
                None => Ok(None),
                Some(r) => {
                    Python::attach(|py| response_to_py(py, &Classes::get(py)?, &r).map(Some))
                }
            }
        })
    }

    /// Waits until there are events for [`take_events`](Self::take_events),
    /// reading them from the connection into the stash without handing
    /// them over: `True`, or `False` once the connection is closed and
    /// every event has been taken.
    ///
    /// Why a wait and a take, not one call that returns the events: a
    /// Python task cancelled just as the Rust future completed (a timeout
    /// around `next_event()`) drops the future's result, and with it the
    /// batch. Here the only `.await` is the wait for the first event, which
    /// takes nothing when it is dropped; once events are read they go to
    /// the stash before anything else can be cancelled.
    fn wait_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let reader = self.reader.clone();
        let stash = self.stash.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let mut conn = reader.lock().await;
            // Under the reader lock, so a stream cannot stash an event
            // between this check and the read below.
            if !lock(&stash).is_empty() {
                return Ok(true);
            }
            let mut batch = Vec::new();
            let open = next_batch(&mut conn, &mut batch).await;
            let mut kept = lock(&stash);
            for event in batch {
                kept.push(event);
            }
            Ok(open || !kept.is_empty())
        })
    }

    /// The events waiting in the stash (up to a batch, oldest first; an
    /// empty list when there are none): those a token stream kept, then
    /// those [`wait_events`](Self::wait_events) read. Synchronous: nothing
    /// can cancel it half way.
    fn take_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut batch = Vec::new();
        lock(&self.stash).take(&mut batch);
        let classes = Classes::get(py)?;
        let list = PyList::empty(py);
        for event in &batch {
            list.append(event_to_py(py, &classes, event)?)?;
        }
        Ok(list)
    }

    /// Sends `text` and resolves to a `NativeStream` of its reply's tokens.
    fn stream<'py>(&self, py: Python<'py>, text: String) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.handle();
        let reader = self.reader.clone();
        let stash = self.stash.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let request_id = conn.send_message(text).await.map_err(to_pyerr)?;
            Ok(NativeStream {
                reader,
                stash,
                state: Arc::new(tokio::sync::Mutex::new(StreamState {
                    request_id,
                    response_id: None,
                    done: false,
                    response: None,
                })),
            })
        })
    }

    /// Nothing reads events for now: stop holding the socket back for a
    /// reader (called when a token stream or an event loop iteration ends).
    fn detach_event_reader(&self) {
        self.handle().detach_event_reader();
    }

    fn set_network_available(&self, available: bool) {
        self.handle().set_network_available(available);
    }

    fn reconnect_now(&self) {
        self.handle().reconnect_now();
    }

    /// Closes the connection and waits until its task has finished.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.handle();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            conn.close().await;
            Ok(())
        })
    }
}

struct StreamState {
    request_id: RequestId,
    response_id: Option<ResponseId>,
    done: bool,
    /// The reply as it ended, once it has.
    response: Option<Response>,
}

/// The tokens of one reply, in batches (wrapped by `Connection.stream`).
#[pyclass(frozen, module = "tokenrelay._native")]
pub struct NativeStream {
    reader: Arc<tokio::sync::Mutex<Connection>>,
    stash: SharedStash,
    state: Arc<tokio::sync::Mutex<StreamState>>,
}

#[pymethods]
impl NativeStream {
    /// The whole reply (a `tokenrelay.Response`) once the stream has ended,
    /// else `None`.
    fn response(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let Ok(st) = self.state.try_lock() else {
            return Ok(None);
        };
        match &st.response {
            Some(r) => response_to_py(py, &Classes::get(py)?, r).map(Some),
            None => Ok(None),
        }
    }

    /// The next tokens (a list of str), or `None` once the reply ended.
    /// Every other event read meanwhile (other replies, state changes) is
    /// kept, in order, for the connection's event iterator.
    fn next_tokens<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let reader = self.reader.clone();
        let stash = self.stash.clone();
        let state = self.state.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let mut st = state.lock().await;
            let mut tokens: Vec<TokenText> = Vec::new();
            let mut batch = Vec::new();
            while !st.done && tokens.is_empty() {
                batch.clear();
                let open = {
                    let mut conn = reader.lock().await;
                    next_batch(&mut conn, &mut batch).await
                };
                if !open {
                    return Err(to_pyerr(tokenrelay::Error::Closed));
                }
                let mut failed = None;
                let mut kept = lock(&stash);
                for event in batch.drain(..) {
                    // After this stream's end, the rest of the batch belongs
                    // to the event iterator.
                    if st.done {
                        kept.push(event);
                        continue;
                    }
                    match event {
                        Event::ResponseStarted {
                            response_id,
                            request_id: Some(id),
                        } if id == st.request_id => st.response_id = Some(response_id),
                        Event::Token { response_id, token }
                            if st.response_id.as_ref() == Some(&response_id) =>
                        {
                            tokens.push(token)
                        }
                        Event::ResponseComplete(r)
                            if r.request_id == Some(st.request_id)
                                || st.response_id.as_ref() == Some(&r.id) =>
                        {
                            st.done = true;
                            st.response = Some(*r);
                        }
                        Event::RequestFailed { request_id, error }
                            if request_id == st.request_id =>
                        {
                            st.done = true;
                            failed = Some(error);
                        }
                        // Parts of this reply that its `Response` carries.
                        Event::RequestAcknowledged { request_id, .. }
                            if request_id == st.request_id => {}
                        Event::ToolCall {
                            response_id: Some(id),
                            ..
                        }
                        | Event::ToolResponse {
                            response_id: Some(id),
                            ..
                        }
                        | Event::Events {
                            response_id: Some(id),
                            ..
                        }
                        | Event::ClientSideToolCalls {
                            response_id: Some(id),
                            ..
                        } if st.response_id.as_ref() == Some(&id) => {}
                        other => kept.push(other),
                    }
                }
                drop(kept);
                if let Some(error) = failed {
                    return Err(to_pyerr(error));
                }
            }
            if tokens.is_empty() {
                return Ok(None);
            }
            Python::attach(|py| {
                Ok(Some(
                    PyList::new(py, tokens.iter().map(|t| t.as_str()))?.unbind(),
                ))
            })
        })
    }
}

/// The dataclasses of `tokenrelay.events`, looked up once per batch.
struct Classes<'py> {
    module: Bound<'py, PyModule>,
}

impl<'py> Classes<'py> {
    fn get(py: Python<'py>) -> PyResult<Self> {
        Ok(Classes {
            module: py.import("tokenrelay.events")?,
        })
    }

    fn make<A: pyo3::call::PyCallArgs<'py>>(&self, name: &str, args: A) -> PyResult<Py<PyAny>> {
        Ok(self.module.getattr(name)?.call1(args)?.unbind())
    }
}

fn opt_id(py: Python<'_>, id: &Option<ResponseId>) -> PyResult<Py<PyAny>> {
    match id {
        Some(id) => id.as_ref().into_py_any(py),
        None => Ok(py.None()),
    }
}

fn state_to_py(py: Python<'_>, c: &Classes<'_>, s: &StateChange) -> PyResult<Py<PyAny>> {
    let cause = match &s.cause {
        Some(e) => error_object(py, e)?,
        None => py.None(),
    };
    c.make(
        "StateChanged",
        (
            s.state.as_str(),
            s.attempt,
            s.retry_in.map(|d| d.as_secs_f64()),
            cause,
        ),
    )
}

/// One client-side tool call (the core keeps them as the JSON the server
/// sent) as a `tokenrelay.ToolCall`, read as leniently as the core reads a
/// server-side one: an id may be a number, a missing name is empty, a
/// missing input is `None`.
fn client_tool_call(py: Python<'_>, c: &Classes<'_>, call: &Value) -> PyResult<Py<PyAny>> {
    let id = match call.get("tool_call_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let name = call.get("tool_name").and_then(Value::as_str).unwrap_or("");
    let input = call.get("tool_input").unwrap_or(&Value::Null);
    c.make("ToolCall", (id, name, value_to_py(py, input)?))
}

fn response_to_py(py: Python<'_>, c: &Classes<'_>, r: &Response) -> PyResult<Py<PyAny>> {
    let tool_calls = r
        .tool_calls
        .iter()
        .map(|t| {
            c.make(
                "ToolCall",
                (
                    t.tool_call_id.as_str(),
                    t.tool_name.as_str(),
                    value_to_py(py, &t.tool_input)?,
                ),
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    let tool_responses = r
        .tool_responses
        .iter()
        .map(|t| {
            c.make(
                "ToolResult",
                (
                    t.tool_call_id.as_str(),
                    t.tool_name.as_str(),
                    t.tool_output.as_str(),
                ),
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    let events = r
        .events
        .iter()
        .map(|e| serialize_to_py(py, e))
        .collect::<PyResult<Vec<_>>>()?;
    let client_calls = r
        .client_side_tool_calls
        .iter()
        .map(|v| client_tool_call(py, c, v))
        .collect::<PyResult<Vec<_>>>()?;
    let stop_reason = match &r.stop_reason {
        Some(s) => serialize_to_py(py, s)?,
        None => py.None(),
    };
    c.make(
        "Response",
        (
            r.id.as_ref(),
            r.request_id.map(|id| id.0),
            r.text.as_str(),
            PyTuple::new(py, tool_calls)?,
            PyTuple::new(py, tool_responses)?,
            PyTuple::new(py, events)?,
            PyTuple::new(py, client_calls)?,
            r.status.as_str(),
            stop_reason,
        ),
    )
}

fn event_to_py(py: Python<'_>, c: &Classes<'_>, event: &Event) -> PyResult<Py<PyAny>> {
    match event {
        Event::Token { response_id, token } => {
            c.make("Token", (response_id.as_ref(), token.as_str()))
        }
        Event::StateChanged(s) => state_to_py(py, c, s),
        Event::Connected {
            agent,
            resumed,
            server,
        } => {
            let agent = match agent {
                Some(a) => serialize_to_py(py, a)?,
                None => py.None(),
            };
            let server = match server {
                Some(s) => serialize_to_py(py, s)?,
                None => py.None(),
            };
            c.make("Connected", (agent, *resumed, server))
        }
        Event::ResponseStarted {
            response_id,
            request_id,
        } => c.make(
            "ResponseStarted",
            (response_id.as_ref(), request_id.map(|id| id.0)),
        ),
        Event::ResponseComplete(r) => {
            let response = response_to_py(py, c, r)?;
            c.make("ResponseComplete", (response,))
        }
        Event::ToolCall { response_id, call } => {
            let call = c.make(
                "ToolCall",
                (
                    call.tool_call_id.as_str(),
                    call.tool_name.as_str(),
                    value_to_py(py, &call.tool_input)?,
                ),
            )?;
            c.make("ToolCallEvent", (opt_id(py, response_id)?, call))
        }
        Event::ToolResponse {
            response_id,
            result,
        } => {
            let result = c.make(
                "ToolResult",
                (
                    result.tool_call_id.as_str(),
                    result.tool_name.as_str(),
                    result.tool_output.as_str(),
                ),
            )?;
            c.make("ToolResponseEvent", (opt_id(py, response_id)?, result))
        }
        Event::Events {
            response_id,
            events,
        } => {
            let events = events
                .iter()
                .map(|e| serialize_to_py(py, e))
                .collect::<PyResult<Vec<_>>>()?;
            c.make(
                "AgentEvents",
                (opt_id(py, response_id)?, PyTuple::new(py, events)?),
            )
        }
        Event::ClientSideToolCalls {
            response_id,
            tool_calls,
        } => {
            let calls = tool_calls
                .iter()
                .map(|v| client_tool_call(py, c, v))
                .collect::<PyResult<Vec<_>>>()?;
            c.make(
                "ClientSideToolCalls",
                (opt_id(py, response_id)?, PyTuple::new(py, calls)?),
            )
        }
        Event::RequestAcknowledged { request_id, result } => c.make(
            "RequestAcknowledged",
            (request_id.0, value_to_py(py, result)?),
        ),
        Event::RequestFailed { request_id, error } => {
            c.make("RequestFailed", (request_id.0, error_object(py, error)?))
        }
        Event::Error(error) => c.make("ErrorEvent", (error_object(py, error)?,)),
        Event::Unknown { method, params } => {
            c.make("Unknown", (method.as_str(), value_to_py(py, params)?))
        }
        // `Event` is non-exhaustive: a variant added to the core later shows
        // up as `Unknown` until the binding learns it.
        other => c.make("Unknown", (format!("{other:?}"), py.None())),
    }
}
