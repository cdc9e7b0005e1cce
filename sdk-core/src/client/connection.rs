//! [`Connection`]: the application's handle on one live context.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::{mpsc, oneshot, watch};

use super::driver::{Command, Outgoing, Waiter};
use super::queue::EventQueue;
use crate::error::Error;
use crate::event::{Event, RequestId, Response, StateChange};
use crate::stats::Stats;
use crate::wire::ToolResponseParam;

// `Sync` too, so a `&Connection` may be held across an `.await` in a
// spawned task (bindings run each request as its own task).
type Recv = Pin<Box<dyn Future<Output = (bool, VecDeque<Event>)> + Send + Sync>>;

/// A connection to one context. It reconnects by itself (with a fresh token
/// each time) until [`Connection::close`] or a terminal refusal.
///
/// Read events with [`Connection::next_event`] or as a [`Stream`]; or just
/// [`Connection::ask`]. Dropping the last handle closes the connection.
pub struct Connection {
    context_id: String,
    commands: mpsc::UnboundedSender<Command>,
    queue: EventQueue,
    state: watch::Receiver<StateChange>,
    /// The session's pending count, as the driver last published it.
    pending: Arc<AtomicUsize>,
    /// The session's counters, as the driver last published them.
    stats: Arc<Mutex<Stats>>,
    /// Events taken from the queue in bulk, handed out one by one.
    local: VecDeque<Event>,
    /// The queue is closed and drained.
    finished: bool,
    pending_recv: Option<Recv>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("context_id", &self.context_id)
            .field("state", &self.state.borrow().state)
            .finish()
    }
}

impl Connection {
    pub(crate) fn new(
        context_id: String,
        commands: mpsc::UnboundedSender<Command>,
        queue: EventQueue,
        state: watch::Receiver<StateChange>,
        pending: Arc<AtomicUsize>,
        stats: Arc<Mutex<Stats>>,
    ) -> Self {
        Connection {
            context_id,
            commands,
            queue,
            state,
            pending,
            stats,
            local: VecDeque::new(),
            finished: false,
            pending_recv: None,
        }
    }

    /// Another handle on the same connection, sharing its requests, state
    /// and event queue. For bindings whose language lets one task send
    /// requests while another reads events (Python's `await conn.ask()`
    /// beside an `async for event in conn`), which `&mut self` on
    /// [`Connection::next_event`] would otherwise forbid.
    ///
    /// Events have a single consumer: read them from one handle only. The
    /// connection closes when [`Connection::close`] is called on any handle,
    /// or when the last handle is dropped.
    pub fn clone_handle(&self) -> Connection {
        Connection::new(
            self.context_id.clone(),
            self.commands.clone(),
            self.queue.clone(),
            self.state.clone(),
            self.pending.clone(),
            self.stats.clone(),
        )
    }

    /// Declares that nothing reads this connection's events for now (say,
    /// a binding's token stream has ended and the application only calls
    /// [`Connection::ask`] next). Until the next read, the connection no
    /// longer holds the socket back for a reader; the oldest events beyond
    /// the capacity are dropped instead, and the next read reports how many
    /// ([`Error::EventsDropped`]). Responses are unaffected.
    pub fn detach_event_reader(&self) {
        self.queue.detach_reader();
    }

    /// The context this connection is attached to.
    pub fn context_id(&self) -> &str {
        &self.context_id
    }

    /// The latest state change (state, attempt, delay, cause).
    pub fn state(&self) -> StateChange {
        self.state.borrow().clone()
    }

    /// Waits for the connection's next state change and returns the state
    /// then; `None` once the connection's task has ended (closed or
    /// failed, every change published). Changes in quick succession may be
    /// seen as the latest one only, as an observable state wants them.
    /// Independent of events: bindings keep an observable state (Kotlin's
    /// `StateFlow`) current with it while nothing reads events. Each handle
    /// waits for changes it has not returned yet.
    pub async fn state_changed(&mut self) -> Option<StateChange> {
        self.state.changed().await.ok()?;
        Some(self.state.borrow_and_update().clone())
    }

    /// How many requests wait for a connection to be sent: queued while
    /// disconnected, or sent on a socket that died before the server
    /// confirmed them (sent again, once, after the reconnect). Nonzero only
    /// while disconnected: a chat UI shows these messages as "sending…".
    /// Read it after a send and on every state change: it only changes
    /// then, or when a queued request fails ([`Error::QueueExpired`]).
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// What this connection has done since it started: attachments,
    /// reconnects, resumes, notifications replayed, tokens, frames and
    /// bytes received, token provider calls (see [`Stats`]). Counted by
    /// the session and published after every batch of work, so it is
    /// current as of the last event handed out.
    pub fn stats(&self) -> Stats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a message; the agent's reply streams as events. Returns the
    /// request id, which the reply's [`Response::request_id`] carries.
    pub async fn send_message(&self, text: impl Into<String>) -> Result<RequestId, Error> {
        self.submit(Outgoing::Message(text.into()), Waiter::Nobody)
            .await
    }

    /// Sends a message and waits for the whole reply, however it ends (check
    /// [`Response::status`]: a reply cut by a drop that could not be resumed
    /// is `interrupted`). Tokens still arrive as events meanwhile.
    pub async fn ask(&self, text: impl Into<String>) -> Result<Response, Error> {
        let (tx, rx) = oneshot::channel();
        self.submit(Outgoing::Message(text.into()), Waiter::Response(tx))
            .await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Stops the running generation and waits for the server to confirm.
    pub async fn stop(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.submit(Outgoing::Stop, Waiter::Ack(tx)).await?;
        rx.await.map_err(|_| Error::Closed)?.map(|_| ())
    }

    /// Rewrites the tail of the history (the human interrupted the agent,
    /// whose partial answer was `ai_message`) and re-invokes the agent.
    pub async fn set_last_messages(
        &self,
        human_message: impl Into<String>,
        ai_message: Option<String>,
    ) -> Result<RequestId, Error> {
        let request = Outgoing::SetLastMessages {
            human: human_message.into(),
            ai: ai_message,
        };
        self.submit(request, Waiter::Nobody).await
    }

    /// Answers client-side tool calls; the agent continues with a new
    /// response bound to the returned id (streamed as events). See
    /// [`Connection::answer_tools`] to wait for that response.
    pub async fn send_tool_responses(
        &self,
        responses: Vec<ToolResponseParam>,
    ) -> Result<RequestId, Error> {
        self.submit(Outgoing::ToolResponses(responses), Waiter::Nobody)
            .await
    }

    /// Answers client-side tool calls and waits for the agent's whole
    /// continuation, as [`Connection::ask`] does for a message. The
    /// continuation may itself end with client-side tool calls: a tool
    /// loop is
    ///
    /// ```no_run
    /// # async fn f(conn: &tokenrelay::Connection) -> Result<(), tokenrelay::Error> {
    /// # fn run_tool(call: &serde_json::Value) -> String { String::new() }
    /// use tokenrelay::wire::ToolResponseParam;
    /// let mut reply = conn.ask("Where am I?").await?;
    /// while !reply.client_side_tool_calls.is_empty() {
    ///     let answers = reply
    ///         .client_side_tool_calls
    ///         .iter()
    ///         .map(|call| ToolResponseParam {
    ///             tool_call_id: call["tool_call_id"].as_str().unwrap_or_default().to_owned(),
    ///             response: run_tool(call),
    ///         })
    ///         .collect();
    ///     reply = conn.answer_tools(answers).await?;
    /// }
    /// println!("{}", reply.text);
    /// # Ok(()) }
    /// ```
    pub async fn answer_tools(&self, responses: Vec<ToolResponseParam>) -> Result<Response, Error> {
        let (tx, rx) = oneshot::channel();
        self.submit(Outgoing::ToolResponses(responses), Waiter::Response(tx))
            .await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// A response by id (streaming, or one of the recently completed).
    pub async fn response(&self, response_id: &str) -> Option<Response> {
        let (tx, rx) = oneshot::channel();
        let command = Command::Response {
            response_id: response_id.to_owned(),
            reply: tx,
        };
        self.commands.send(command).ok()?;
        rx.await.ok().flatten()
    }

    /// The next event; `None` once the connection is closed and every event
    /// has been read.
    ///
    /// Once you read events, keep reading them: no event is ever dropped for
    /// a reader, so a reader that stops while the stream goes on makes the
    /// connection stop reading its socket when the queue is full (the
    /// `event_capacity` of the builder). A connection whose events are never
    /// read (only [`Connection::ask`]) drops the oldest instead.
    pub async fn next_event(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Tells the connection whether the network is up; while it is down no
    /// reconnect is attempted, and when it comes back one is tried at once.
    pub fn set_network_available(&self, available: bool) {
        let _ = self.commands.send(Command::NetworkAvailable(available));
    }

    /// Retries at once if the connection is waiting to reconnect.
    pub fn reconnect_now(&self) {
        let _ = self.commands.send(Command::ReconnectNow);
    }

    /// Closes the connection and waits until its task has finished.
    /// Requests already sent fail with [`Error::Closed`]; requests still
    /// queued for a connection with [`Error::ClosedBeforeSent`] (never
    /// sent).
    pub async fn close(mut self) {
        let _ = self.commands.send(Command::Close);
        while self.next_event().await.is_some() {}
    }

    async fn submit(&self, request: Outgoing, waiter: Waiter) -> Result<RequestId, Error> {
        let (tx, rx) = oneshot::channel();
        let command = Command::Submit {
            request,
            reply: tx,
            waiter,
        };
        self.commands.send(command).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

impl Stream for Connection {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = &mut *self;
        loop {
            if let Some(e) = this.local.pop_front() {
                return Poll::Ready(Some(e));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            if this.pending_recv.is_none() {
                // Fast path: take what is there without allocating a future.
                match this.queue.try_recv_all(&mut this.local) {
                    Some(true) => continue,
                    Some(false) => {
                        this.finished = true;
                        continue;
                    }
                    None => {}
                }
                let queue = this.queue.clone();
                // The (empty) local buffer goes along and comes back full:
                // the driver's batch, the queue and this buffer trade their
                // allocations back and forth instead of a fresh one growing
                // (and the full one freed) every time the reader waits.
                let mut got = std::mem::take(&mut this.local);
                this.pending_recv = Some(Box::pin(async move {
                    let open = queue.recv_all(&mut got).await;
                    (open, got)
                }));
            }
            let Some(recv) = this.pending_recv.as_mut() else {
                return Poll::Pending;
            };
            match recv.as_mut().poll(cx) {
                Poll::Ready((open, got)) => {
                    this.pending_recv = None;
                    this.finished = !open;
                    // `local` was empty when the wait began (taken above).
                    this.local = got;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
