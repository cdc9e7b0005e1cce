//! [`NativeConnection`]: one live context. Wrapped by the Kotlin
//! `Connection` (`events(): Flow<Event>`) and the Swift `Connection`
//! (`events: AsyncSequence`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt as _;
use tokenrelay::wire::ToolResponseParam;
use tokenrelay::{Connection, Stats};

use crate::error::TokenRelayError;
use crate::event::{Event, Response, StateChange};
use crate::logging::Registration;

/// Most events handed across the boundary in one `next_events` call.
const MAX_BATCH: u32 = 4096;

/// An answer to a client-side tool call.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ToolAnswer {
    /// The `tool_call_id` of the call answered.
    pub tool_call_id: String,
    /// The tool's output, as text.
    pub response: String,
}

/// A connection to one context. It reconnects by itself (with a fresh token
/// each time) until `close()` or a terminal refusal.
#[derive(uniffi::Object)]
pub struct NativeConnection {
    context_id: String,
    /// The handle events are read from (one reader at a time).
    reader: tokio::sync::Mutex<Connection>,
    /// Requests go through this handle, so a long `ask` never waits for the
    /// reader.
    requests: Connection,
    /// The handle state changes are awaited on (`next_state_change`), so an
    /// observable state never waits for an event reader.
    state_watch: tokio::sync::Mutex<Connection>,
    /// The app said it went to the background (`pause`).
    paused: AtomicBool,
    /// The app said the network is down.
    offline: AtomicBool,
    /// Serialises lifecycle updates so the last one wins.
    lifecycle: Mutex<()>,
    /// Keeps the client's logger registered while this connection lives
    /// (it may outlive its client).
    _logs: Option<Arc<Registration>>,
}

impl NativeConnection {
    pub(crate) fn new(conn: Connection, logs: Option<Arc<Registration>>) -> Self {
        NativeConnection {
            context_id: conn.context_id().to_owned(),
            requests: conn.clone_handle(),
            state_watch: tokio::sync::Mutex::new(conn.clone_handle()),
            reader: tokio::sync::Mutex::new(conn),
            paused: AtomicBool::new(false),
            offline: AtomicBool::new(false),
            lifecycle: Mutex::new(()),
            _logs: logs,
        }
    }

    /// Waits for at least one event as the connection's one reader, then
    /// takes what else is already queued, up to `max`. Empty once the
    /// connection is closed and drained.
    async fn read(&self, max: usize) -> Vec<Event> {
        let mut reader = self.reader.lock().await;
        let Some(first) = reader.next_event().await else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(max.min(256));
        out.push(first.into());
        while out.len() < max {
            match reader.next_event().now_or_never() {
                Some(Some(e)) => out.push(e.into()),
                _ => break,
            }
        }
        out
    }

    /// Tells the core whether reconnecting makes sense now: only in the
    /// foreground with a network.
    fn apply_lifecycle(&self, reconnect_at_once: bool) {
        let _guard = self.lifecycle.lock().unwrap_or_else(|p| p.into_inner());
        let up = !self.paused.load(Ordering::SeqCst) && !self.offline.load(Ordering::SeqCst);
        self.requests.set_network_available(up);
        if up && reconnect_at_once {
            self.requests.reconnect_now();
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl NativeConnection {
    /// The context this connection is attached to.
    pub fn context_id(&self) -> String {
        self.context_id.clone()
    }

    /// How many messages wait for a connection to be sent: queued while
    /// disconnected, or sent on a socket that died before the server
    /// confirmed them (sent again, once, after the reconnect). Nonzero only
    /// while disconnected: show them as "sending…". It changes on a send,
    /// on a state change, and when a queued message fails (`QueueExpired`,
    /// or `ClosedBeforeSent` on `close`).
    pub fn pending(&self) -> u32 {
        u32::try_from(self.requests.pending()).unwrap_or(u32::MAX)
    }

    /// What this connection has done since it started (the core's
    /// counters: reconnects, resumes, tokens, bytes received, …).
    pub fn stats(&self) -> Stats {
        self.requests.stats()
    }

    /// The latest state change.
    pub fn state(&self) -> StateChange {
        (&self.requests.state()).into()
    }

    /// Waits for the next state change and returns the state then; `None`
    /// once the connection has ended (after `close_connection` or a
    /// terminal failure). Changes in quick succession may come as the
    /// latest one only. Independent of `next_events`: this is what the
    /// Kotlin `Connection.state` `StateFlow` follows.
    pub async fn next_state_change(&self) -> Option<StateChange> {
        let change = self.state_watch.lock().await.state_changed().await?;
        Some((&change).into())
    }

    /// The next event; `None` once the connection is closed and every event
    /// has been read. Read events from one place only.
    pub async fn next_event(&self) -> Option<Event> {
        self.read(1).await.pop()
    }

    /// The next events: waits for at least one, then takes what else is
    /// already queued (up to `max`, at most 4,096). Empty once the
    /// connection is closed and drained. One call per batch instead of per
    /// token is what keeps a fast stream cheap across the boundary.
    pub async fn next_events(&self, max: u32) -> Vec<Event> {
        self.read(max.clamp(1, MAX_BATCH) as usize).await
    }

    /// Declares that nothing reads events for now (the app's event
    /// collector stopped). Until the next read the connection no longer
    /// holds the socket back for a reader; the oldest events beyond the
    /// capacity are dropped instead. Replies (`ask`) are unaffected.
    pub fn detach_event_reader(&self) {
        self.requests.detach_event_reader();
    }

    /// Sends a message; the reply streams as events. Returns the request id
    /// that the reply's `Response.request_id` carries.
    pub async fn send_message(&self, text: String) -> Result<u64, TokenRelayError> {
        Ok(self.requests.send_message(text).await?.0)
    }

    /// Sends a message and waits for the whole reply, however it ends (check
    /// its `status`). Tokens still arrive as events meanwhile.
    pub async fn ask(&self, text: String) -> Result<Response, TokenRelayError> {
        Ok((&self.requests.ask(text).await?).into())
    }

    /// Stops the running reply and waits for the server to confirm.
    pub async fn stop(&self) -> Result<(), TokenRelayError> {
        Ok(self.requests.stop().await?)
    }

    /// Rewrites the tail of the history (the human interrupted the agent,
    /// whose partial answer was `ai_message`) and re-invokes the agent.
    pub async fn set_last_messages(
        &self,
        human_message: String,
        ai_message: Option<String>,
    ) -> Result<u64, TokenRelayError> {
        Ok(self
            .requests
            .set_last_messages(human_message, ai_message)
            .await?
            .0)
    }

    /// Answers client-side tool calls and waits for the agent's whole
    /// continuation (a new reply, as `ask` returns one for a message),
    /// which may itself end with client-side tool calls.
    pub async fn send_tool_responses(
        &self,
        responses: Vec<ToolAnswer>,
    ) -> Result<Response, TokenRelayError> {
        let params = responses
            .into_iter()
            .map(|a| ToolResponseParam {
                tool_call_id: a.tool_call_id,
                response: a.response,
            })
            .collect();
        Ok((&self.requests.answer_tools(params).await?).into())
    }

    /// A response by id (streaming, or one of the recently completed).
    pub async fn response(&self, response_id: String) -> Option<Response> {
        self.requests
            .response(&response_id)
            .await
            .map(|r| (&r).into())
    }

    /// The app went to the background. The socket is kept while the OS
    /// lets it live (a reply in flight may finish), but once it drops no
    /// reconnect is attempted until `resume()`.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        self.apply_lifecycle(false);
    }

    /// The app is in the foreground again: reconnects at once if the socket
    /// was lost meanwhile (with a fresh token, resuming missed tokens).
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.apply_lifecycle(true);
    }

    /// The app's reachability changed. While the network is down no
    /// reconnect is attempted; when it is back one is tried at once.
    pub fn set_network_available(&self, available: bool) {
        self.offline.store(!available, Ordering::SeqCst);
        self.apply_lifecycle(true);
    }

    /// Retries at once if the connection is waiting to reconnect.
    pub fn reconnect_now(&self) {
        self.requests.reconnect_now();
    }

    /// Closes the connection and waits until its task has finished. Pending
    /// requests fail with `Closed`; a reader sees the end (events not read
    /// by then are discarded). (Not named `close`: uniffi's Kotlin objects
    /// already have an `AutoCloseable.close` that frees the native handle.)
    pub async fn close_connection(&self) {
        // Through a handle of its own: a reader parked in `read` holds the
        // reader's lock, and the core wakes every reader when it closes.
        self.requests.clone_handle().close().await;
    }
}
