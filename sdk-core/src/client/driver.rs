//! The tokio driver: one task per connection that feeds the sans-IO
//! [`Session`] from a tokio-tungstenite socket, the token provider and
//! tokio timers, and carries out what the session asks for. No protocol
//! decision is made here; every one is the session's.
//!
//! It logs through `tracing` (target `tokenrelay::client::driver`, inside a
//! `tokenrelay.connection` span naming the context): state changes with
//! their cause and the delay before the next attempt at `info` (`warn`
//! for a connection that failed for good), attachments (a reattachment
//! with whether it resumed and how many notifications the server
//! replays), the close with the connection's [`Stats`], and at `debug`
//! and `trace` socket opens and closes, token fetches (refresh-ahead
//! ones told apart) and pings. sdk-core/README.md lists every line. A
//! credential is never logged: not a key, not a stream token (socket URLs
//! are logged without their query).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::queue::EventQueue;
use crate::error::Error;
use crate::event::{ConnectionState, Event, RequestId, Response, StateChange};
use crate::provider::{BoxFuture, TokenProvider};
use crate::session::{Action, Session};
use crate::stats::Stats;
use crate::time::Timestamp;
use crate::token::Credential;
use crate::wire::ToolResponseParam;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Frames read without yielding before events are handed out.
const READ_BATCH: usize = 256;

/// Commands taken in a row before the other branches get a look: commands
/// come first, and tasks that send without pause must not starve the
/// socket and the timers.
const COMMAND_RUN: u32 = 64;

/// What the application asks of its connection.
pub(crate) enum Command {
    Submit {
        request: Outgoing,
        reply: oneshot::Sender<Result<RequestId, Error>>,
        waiter: Waiter,
    },
    Response {
        response_id: String,
        reply: oneshot::Sender<Option<Response>>,
    },
    NetworkAvailable(bool),
    ReconnectNow,
    Close,
}

/// A user command, before the session gives it an id.
pub(crate) enum Outgoing {
    Message(String),
    Stop,
    SetLastMessages { human: String, ai: Option<String> },
    ToolResponses(Vec<ToolResponseParam>),
}

/// Who waits for the outcome of a request.
pub(crate) enum Waiter {
    Nobody,
    /// The server's acknowledgement (`stop`).
    Ack(oneshot::Sender<Result<Value, Error>>),
    /// The response the request makes the agent produce (`ask`).
    Response(oneshot::Sender<Result<Response, Error>>),
}

/// How sockets are opened.
#[derive(Clone)]
pub(crate) struct SocketOptions {
    pub headers: Vec<(String, String)>,
    pub max_message_len: usize,
    /// The TLS configuration of a `wss://` client (its roots).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub proxy: super::proxy::ProxySetting,
    /// Bound on opening a proxy's tunnel.
    pub proxy_timeout: Duration,
}

pub(crate) struct Driver {
    pub session: Session,
    pub provider: Arc<dyn TokenProvider>,
    pub queue: EventQueue,
    pub state: watch::Sender<StateChange>,
    /// The last cause any state change carried. States of an attempt under
    /// way carry none, and a watch only keeps the latest state, so
    /// `Client::connect` reads why the attempts failed here.
    pub last_cause: watch::Sender<Option<Error>>,
    pub options: SocketOptions,
    /// [`Session::pending`], published for [`super::Connection::pending`]
    /// after every command and every flush.
    pub pending: Arc<AtomicUsize>,
    /// [`Session::stats`], published for [`super::Connection::stats`]
    /// before the events of each batch are handed out.
    pub stats: Arc<Mutex<Stats>>,
}

struct Loop {
    d: Driver,
    origin: Instant,
    socket: Option<Socket>,
    fetching: Option<(u64, BoxFuture<'static, Result<Credential, Error>>)>,
    opening: Option<BoxFuture<'static, Result<Socket, Error>>>,
    acks: HashMap<RequestId, oneshot::Sender<Result<Value, Error>>>,
    answers: HashMap<RequestId, oneshot::Sender<Result<Response, Error>>>,
    batch: VecDeque<Event>,
    /// [`Stats::replayed`] when the last attachment was logged, so each
    /// resume logs its own count.
    replayed_logged: u64,
}

impl Driver {
    /// Runs the connection until the session ends.
    pub(crate) async fn run(self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut l = Loop {
            d: self,
            origin: Instant::now(),
            socket: None,
            fetching: None,
            opening: None,
            acks: HashMap::new(),
            answers: HashMap::new(),
            batch: VecDeque::with_capacity(64),
            replayed_logged: 0,
        };
        let now = l.now();
        l.d.session.start(now);
        let mut commands_in_a_row = 0;
        loop {
            if l.flush().await {
                // The reader is a batch behind. Let it run before more
                // frames are read (on a current-thread runtime it shares
                // this thread and would otherwise wait until the socket
                // runs dry): events are then read while still in cache, and
                // the queue's buffers stay about a batch long instead of
                // growing towards `event_capacity`, every event written to
                // fresh memory (page faults were ~9 % of a loopback stream's
                // CPU; docs/benchmarks.md).
                tokio::task::yield_now().await;
            }
            if l.d.session.state().state.is_terminal() {
                break;
            }
            let deadline =
                l.d.session
                    .poll_timeout()
                    .map(|t| l.origin + Duration::from_millis(t.as_millis()));
            // Biased, because what is ready at once must not be handled in
            // a coin toss's order. The app's commands come first: each was
            // sent before anything this poll reads from the socket, so
            // `set_network_available(false)` followed by a drop sees the
            // drop offline (it waits for the network), never online (an
            // immediate reconnect, the app's "offline" unheeded). Frames
            // already read come before a timer that fell due meanwhile (a
            // process that was paused must not call a healthy socket
            // silent), and a due timer is still handled after each batch,
            // so a stream that never pauses cannot starve it. After
            // `COMMAND_RUN` commands in a row the other branches get one
            // look, the last one standing in if none is ready.
            let mut took_command = false;
            tokio::select! {
                biased;
                command = commands.recv(), if commands_in_a_row < COMMAND_RUN => {
                    took_command = true;
                    match command {
                        Some(c) => l.command(c),
                        // Every handle to the connection is gone.
                        None => l.d.session.close(),
                    }
                }
                token = async { match &mut l.fetching { Some((_, f)) => f.await, None => std::future::pending().await } } => {
                    let (fetch_id, _) = l.fetching.take().unzip();
                    match &token {
                        Ok(_) => tracing::debug!("token provider answered"),
                        Err(e) => tracing::debug!(error = %e, "token provider failed"),
                    }
                    let now = l.now();
                    l.d.session.handle_token(fetch_id.unwrap_or_default(), token, now, unix_now());
                }
                opened = async { match &mut l.opening { Some(f) => f.await, None => std::future::pending().await } } => {
                    l.opening = None;
                    let now = l.now();
                    match opened {
                        Ok(socket) => {
                            tracing::debug!("socket open");
                            l.socket = Some(socket);
                            l.d.session.handle_transport_open(now);
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "socket did not open");
                            l.d.session.handle_transport_failed(e, now)
                        }
                    }
                }
                // A reader that fell behind holds the socket back (see queue).
                () = l.d.queue.room(), if !l.d.queue.has_room() => {}
                message = async { match &mut l.socket { Some(s) => s.next().await, None => std::future::pending().await } }, if l.d.queue.has_room() => {
                    // One clock reading per batch: frames read back to back
                    // arrive at the same instant as far as timeouts care.
                    let now = l.now();
                    l.incoming(message, now);
                    // Take every frame already buffered before flushing, so a
                    // fast stream costs one flush and one wake-up per batch
                    // rather than per token.
                    for _ in 0..READ_BATCH {
                        let Some(socket) = &mut l.socket else { break };
                        match socket.next().now_or_never() {
                            Some(message) => l.incoming(message, now),
                            None => break,
                        }
                    }
                    if l.d.session.poll_timeout().is_some_and(|t| t <= now) {
                        l.d.session.handle_timeout(now);
                    }
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    let now = l.now();
                    l.d.session.handle_timeout(now);
                }
                () = std::future::ready(()), if commands_in_a_row >= COMMAND_RUN => {}
            }
            commands_in_a_row = if took_command {
                commands_in_a_row + 1
            } else {
                0
            };
        }
        l.flush().await;
        l.finish();
    }
}

impl Loop {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn command(&mut self, command: Command) {
        let now = self.now();
        let s = &mut self.d.session;
        match command {
            Command::Submit {
                request,
                reply,
                waiter,
            } => {
                let result = match request {
                    Outgoing::Message(text) => s.send_message(text, now),
                    Outgoing::Stop => s.stop(now),
                    Outgoing::SetLastMessages { human, ai } => s.set_last_messages(human, ai, now),
                    Outgoing::ToolResponses(r) => s.send_tool_responses(r, now),
                };
                // Published before the reply, so a caller that reads
                // `pending()` right after its send returned sees it counted.
                self.d.pending.store(s.pending(), Ordering::Relaxed);
                if let Ok(id) = result {
                    match waiter {
                        Waiter::Nobody => {}
                        Waiter::Ack(tx) => {
                            self.acks.insert(id, tx);
                        }
                        Waiter::Response(tx) => {
                            self.answers.insert(id, tx);
                        }
                    }
                }
                let _ = reply.send(result);
            }
            Command::Response { response_id, reply } => {
                let _ = reply.send(s.response(&response_id).cloned());
            }
            Command::NetworkAvailable(up) => s.set_network_available(up, now),
            Command::ReconnectNow => s.reconnect_now(now),
            Command::Close => s.close(),
        }
    }

    fn incoming(&mut self, message: Option<Result<Message, tungstenite::Error>>, now: Timestamp) {
        let s = &mut self.d.session;
        match message {
            Some(Ok(Message::Text(text))) => s.handle_frame(text.as_str(), now),
            Some(Ok(Message::Binary(_))) => s.handle_binary_frame(now),
            // tungstenite answers pings by itself on the next write/flush.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => s.handle_pong(now),
            Some(Ok(Message::Close(frame))) => {
                self.socket = None;
                let (code, reason) = match &frame {
                    Some(f) => (Some(u16::from(f.code)), f.reason.as_str()),
                    None => (None, ""),
                };
                tracing::debug!(code, reason, "the server closed the socket");
                s.handle_transport_closed(code, reason, now);
            }
            Some(Err(e)) => {
                self.socket = None;
                tracing::debug!(error = %e, "the socket failed");
                s.handle_transport_closed(None, &e.to_string(), now);
            }
            None => {
                self.socket = None;
                tracing::debug!("the socket ended without a close frame");
                s.handle_transport_closed(None, "the socket ended", now);
            }
        }
    }

    /// Carries out actions, sends frames and hands out events until the
    /// session has nothing more to say. True when the reader has fallen a
    /// batch behind.
    async fn flush(&mut self) -> bool {
        loop {
            let mut progressed = false;
            while let Some(action) = self.d.session.poll_action() {
                progressed = true;
                self.act(action).await;
            }
            let mut wrote = false;
            while let Some(frame) = self.d.session.poll_transmit() {
                progressed = true;
                let Some(socket) = &mut self.socket else {
                    continue; // the socket went away; the session knows
                };
                if let Err(e) = socket.feed(Message::text(frame)).await {
                    self.socket_failed(e);
                } else {
                    wrote = true;
                }
            }
            if wrote {
                if let Some(socket) = &mut self.socket {
                    if let Err(e) = socket.flush().await {
                        self.socket_failed(e);
                    }
                }
            }
            let before = self.batch.len();
            self.d.session.drain_events(&mut self.batch);
            // Before anyone hears of these events (a waiter settled below,
            // a reader of the queue): whoever reads `pending()` on a state
            // change or a failed request sees the count after it.
            self.d
                .pending
                .store(self.d.session.pending(), Ordering::Relaxed);
            // Likewise the stats (`connect()` returns on the state change:
            // its caller sees the attachment counted). One uncontended lock
            // per batch, not per frame.
            *self.d.stats.lock().unwrap_or_else(|p| p.into_inner()) = self.d.session.stats();
            if self.batch.len() > before {
                progressed = true;
                for i in before..self.batch.len() {
                    self.dispatch(i);
                }
            }
            if !progressed {
                break;
            }
        }
        self.d.queue.push_all(&mut self.batch, READ_BATCH)
    }

    fn socket_failed(&mut self, e: tungstenite::Error) {
        tracing::debug!(error = %e, "writing to the socket failed");
        self.socket = None;
        let now = self.now();
        self.d
            .session
            .handle_transport_closed(None, &e.to_string(), now);
    }

    async fn act(&mut self, action: Action) {
        match action {
            Action::FetchToken {
                fetch_id,
                context_id,
            } => {
                if self.d.session.state().is_connected() {
                    // Refresh-ahead: the next connection's key, fetched
                    // while this one is up.
                    tracing::debug!(fetch_id, "refreshing the key ahead of the next reconnect");
                } else {
                    tracing::debug!(fetch_id, "asking the token provider for a key");
                }
                let provider = self.d.provider.clone();
                self.fetching = Some((
                    fetch_id,
                    Box::pin(async move { provider.token(&context_id).await }),
                ));
            }
            Action::OpenSocket { url } => {
                // Without the query: a stream token rides there.
                tracing::debug!(url = %url.split('?').next().unwrap_or_default(), "opening a socket");
                self.opening = Some(Box::pin(open_socket(url, self.d.options.clone())));
            }
            Action::CloseSocket { code, reason } => {
                tracing::debug!(code, reason = %reason, "closing the socket");
                self.opening = None;
                if let Some(mut socket) = self.socket.take() {
                    // Close politely in the background; never stall the loop
                    // on a peer that does not answer.
                    tokio::spawn(async move {
                        let frame = CloseFrame {
                            code: CloseCode::from(code),
                            reason: reason.into(),
                        };
                        let _ =
                            tokio::time::timeout(Duration::from_secs(2), socket.close(Some(frame)))
                                .await;
                    });
                }
            }
            Action::SendPing => {
                tracing::trace!("ping");
                if let Some(socket) = &mut self.socket {
                    if let Err(e) = socket.send(Message::Ping(Default::default())).await {
                        self.socket_failed(e);
                    }
                }
            }
        }
    }

    /// Settles whoever waits on the `i`-th event of the batch.
    fn dispatch(&mut self, i: usize) {
        let Some(event) = self.batch.get(i) else {
            return;
        };
        match event {
            Event::StateChanged(change) => {
                log_state(change, &self.d.session.stats());
                if matches!(
                    change.state,
                    ConnectionState::Failed | ConnectionState::Closed
                ) {
                    // Cancel the provider call and the socket being opened
                    // before `connect()` (which watches this state) can
                    // return: afterwards no provider call may be starting.
                    self.fetching = None;
                    self.opening = None;
                }
                if let Some(cause) = &change.cause {
                    self.d.last_cause.send_replace(Some(cause.clone()));
                }
                self.d.state.send_replace((**change).clone());
            }
            Event::Connected {
                resumed, server, ..
            } => {
                let extensions = server.as_ref().map_or(0, |s| s.capabilities.len());
                let stats = self.d.session.stats();
                let replayed = stats.replayed - self.replayed_logged;
                self.replayed_logged = stats.replayed;
                if stats.reconnects == 0 {
                    tracing::info!(extensions, "attached to the context");
                } else {
                    // The counts say what the drop cost: what the server
                    // replays now, and how many drops so far.
                    tracing::info!(
                        resumed,
                        replayed,
                        reconnects = stats.reconnects,
                        resumes = stats.resumes,
                        "attached to the context again"
                    );
                }
            }
            Event::ResponseComplete(r) => {
                if let Some(tx) = r.request_id.and_then(|id| self.answers.remove(&id)) {
                    let _ = tx.send(Ok((**r).clone()));
                }
            }
            Event::RequestAcknowledged { request_id, result } => {
                if let Some(tx) = self.acks.remove(request_id) {
                    let _ = tx.send(Ok(result.clone()));
                }
            }
            Event::RequestFailed { request_id, error } => {
                if let Some(tx) = self.acks.remove(request_id) {
                    let _ = tx.send(Err(error.clone()));
                }
                if let Some(tx) = self.answers.remove(request_id) {
                    let _ = tx.send(Err(error.clone()));
                }
            }
            _ => {}
        }
    }

    fn finish(mut self) {
        // Cancel the provider call and the socket being opened *before*
        // anyone learns the connection ended: once `connect()` has
        // returned, no provider call may still be starting.
        self.fetching = None;
        self.opening = None;
        let cause = self.d.state.borrow().cause.clone().unwrap_or(Error::Closed);
        for (_, tx) in self.acks.drain() {
            let _ = tx.send(Err(cause.clone()));
        }
        for (_, tx) in self.answers.drain() {
            let _ = tx.send(Err(cause.clone()));
        }
        self.d.queue.close();
    }
}

/// One line per state change worth an operator's eye: attempts under way
/// at `debug`, waiting to retry and closing at `info`, failing for good at
/// `warn`, each with its cause and the delay before the next attempt. The
/// last line of a connection sums up its [`Stats`].
fn log_state(change: &StateChange, stats: &Stats) {
    let state = change.state.as_str();
    let attempt = change.attempt;
    let retry_in_ms = change.retry_in.map(|d| d.as_millis() as u64);
    let cause = change.cause.as_ref().map(|c| c.to_string());
    match change.state {
        ConnectionState::Reconnecting | ConnectionState::Suspended => tracing::info!(
            state,
            attempt,
            retry_in_ms,
            cause = cause.as_deref().unwrap_or(""),
            "connection lost; reconnecting"
        ),
        ConnectionState::Failed => tracing::warn!(
            state,
            attempt,
            cause = cause.as_deref().unwrap_or(""),
            reconnects = stats.reconnects,
            tokens = stats.tokens,
            "connection failed for good"
        ),
        ConnectionState::Closed => tracing::info!(
            state,
            reconnects = stats.reconnects,
            resumes = stats.resumes,
            interrupted = stats.interrupted,
            tokens = stats.tokens,
            bytes_received = stats.bytes_received,
            "connection closed"
        ),
        _ => tracing::debug!(state, attempt, "connection state"),
    }
}

async fn open_socket(url: String, options: SocketOptions) -> Result<Socket, Error> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::Config {
            message: format!("invalid WebSocket URL: {e}"),
        })?;
    for (name, value) in &options.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| Error::Config {
            message: format!("invalid header name `{name}`: {e}"),
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| Error::Config {
            message: format!("invalid value for header `{name}`"),
        })?;
        request.headers_mut().insert(name, value);
    }
    let mut config = WebSocketConfig::default();
    // Let frames somewhat over the session's limit through so the session can
    // report them as a typed error and carry on; only absurd ones kill the
    // socket.
    config.max_message_size = Some(options.max_message_len);
    config.max_frame_size = Some(options.max_message_len);
    let secure = request.uri().scheme_str() == Some("wss");
    let connector = if secure {
        Some(Connector::Rustls(match &options.tls {
            Some(tls) => tls.clone(),
            None => super::tls::tls_config()?,
        }))
    } else {
        None
    };
    let host = request.uri().host().unwrap_or_default().to_owned();
    let port = request
        .uri()
        .port_u16()
        .unwrap_or(if secure { 443 } else { 80 });
    let proxy = super::proxy::select(&options.proxy, secure, &host, |name| {
        std::env::var(name).ok()
    })?;
    let (socket, _response) = match proxy {
        None => {
            tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector)
                .await
        }
        Some(proxy) => {
            tracing::debug!(proxy_host = %proxy.host, proxy_port = proxy.port, "opening a tunnel through the proxy");
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let stream = super::proxy::tunnel(&proxy, host, port, options.proxy_timeout).await?;
            tokio_tungstenite::client_async_tls_with_config(request, stream, Some(config), connector)
                .await
        }
    }
    .map_err(upgrade_error)?;
    Ok(socket)
}

/// A refused upgrade keeps its HTTP status so 401/403 are told apart from a
/// network failure.
fn upgrade_error(e: tungstenite::Error) -> Error {
    match e {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let (message, code) = match serde_json::from_str::<Value>(&body) {
                Ok(v) => (
                    v.get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("WebSocket upgrade refused")
                        .to_owned(),
                    v.get("code").and_then(Value::as_str).map(str::to_owned),
                ),
                Err(_) => (
                    format!("WebSocket upgrade refused with HTTP {status}"),
                    None,
                ),
            };
            Error::from_server(&message, code.as_deref(), Some(status))
        }
        other => match super::tls::find_tls_error(&other) {
            Some(tls) => Error::Tls {
                message: tls.to_string(),
            },
            None => Error::Transport {
                message: other.to_string(),
            },
        },
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
