//! The browser driver: feeds the sans-IO [`Session`] with what the JS layer
//! reports (socket events, the timer, `getToken` answers, the browser's
//! life events) and carries out what the session asks through the JS
//! layer's [`Sink`]. No protocol decision is made here nor in JS; every one
//! is the session's (see its module documentation for the contract).
//!
//! The I/O itself (the WebSocket, `setTimeout`, the `getToken` promise, the
//! `online`/`offline`/`visibilitychange` listeners) lives in the JS layer
//! (`js/client.js`), which calls this module's entry points
//! ([`crate::js_api::WasmConnection`]) with plain values. That split is for
//! size: handled in Rust, each callback handed to JS was a wasm-bindgen
//! closure with its own invoker, drop glue and table slot, and each JS
//! object read went through `Reflect`: with the events built as JS objects
//! field by field, 4.6 KB of the module's gzip (8 %), where the same work
//! is a few lines of JS.
//!
//! Re-entrancy: JS listeners may call back into the connection (an `on`
//! handler that calls `ask()`), so the session is never borrowed while
//! application code runs. [`Driver::pump`] collects what the session
//! produced while borrowed, releases it, then calls the application. The
//! [`Sink`] calls made while borrowed (`open`, `send`, `closeSocket`,
//! `timer`, `release`) never call back into the connection: the only
//! application code they run is the app's `WebSocket` class (its
//! constructor, `send` and `close`), whose events come later, as tasks.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use tokenrelay::wire::ToolResponseParam;
use tokenrelay::{Action, Session, SessionConfig};
use tokenrelay::{
    Credential, Error, ErrorKind, Event, ProviderFailure, ResponseId, Timestamp, TokenText,
};
use wasm_bindgen::prelude::*;

use crate::clock::{unix_now, Clock};
use crate::convert;

#[wasm_bindgen]
extern "C" {
    /// The JS layer's side of one connection: where tokens and events go,
    /// and the I/O the session asks for. Typed imports: numbers and strings
    /// cross without being boxed into `JsValue`s, which matters once per
    /// token.
    pub type Sink;
    /// The response id of the tokens that follow changed.
    #[wasm_bindgen(method, js_name = responseId)]
    fn response_id(this: &Sink, id: &str);
    /// The next token is `frames[frame].slice(start, end)` of the batch
    /// of frames being handled: the JS layer already holds those strings,
    /// so slicing one is far cheaper than decoding a copy out of wasm
    /// memory.
    #[wasm_bindgen(method, js_name = tokenAt)]
    fn token_at(this: &Sink, frame: u32, start: u32, end: u32);
    /// The next token, when it is not a plain slice of the frame.
    #[wasm_bindgen(method)]
    fn token(this: &Sink, token: &str);
    /// Any other event, as JSON text (`convert::event`), which the JS layer
    /// reads with `JSON.parse`.
    #[wasm_bindgen(method)]
    fn event(this: &Sink, event: &str);
    /// Opens a WebSocket to `url` (closing any previous one first), with
    /// `binaryType = "arraybuffer"` and its handlers calling the
    /// connection's `opened`, `batch`/`frame` and `closed`. Returns the
    /// message of what the constructor threw, if it threw.
    #[wasm_bindgen(method)]
    fn open(this: &Sink, url: &str) -> Option<String>;
    /// Forgets the socket (its handlers are removed first, so nothing more
    /// is heard from it) and closes it with `code` and `reason`.
    #[wasm_bindgen(method, js_name = closeSocket)]
    fn close_socket(this: &Sink, code: u16, reason: &str);
    /// Sends a text frame on the socket, if there is one. Returns the
    /// message of what `send` threw, if it threw; the socket is then
    /// forgotten and closed, as by `closeSocket`.
    #[wasm_bindgen(method)]
    fn send(this: &Sink, frame: &str) -> Option<String>;
    /// Arms the connection's one timer to call `timer()` in `ms`
    /// milliseconds, clearing the one armed before.
    #[wasm_bindgen(method)]
    fn timer(this: &Sink, ms: f64);
    /// Calls the app's `getToken(contextId)` and reports its answer with
    /// `tokenOk`/`tokenErr`, always asynchronously (as promises do), with
    /// `fetch_id`, so a late answer to an abandoned fetch is recognised
    /// (and ignored) by the session.
    #[wasm_bindgen(method, js_name = fetchToken)]
    fn fetch_token(this: &Sink, fetch_id: f64, context_id: &str);
    /// The connection ended for good: clear the timer, close the socket,
    /// remove the browser listeners.
    #[wasm_bindgen(method)]
    fn release(this: &Sink);
}

/// One connection's driver state.
pub(crate) struct Driver {
    session: Session,
    clock: Clock,
    /// Shared outside the `RefCell`, so a pump can call the application
    /// without holding the borrow.
    sink: Rc<Sink>,
    /// The session time the JS timer is armed for, if it is.
    timer: Option<Timestamp>,
    /// The response id the JS layer was last told, so a token costs one
    /// string crossing, not two.
    last_response_id: Option<ResponseId>,
    /// `Sink::release` was called.
    released: bool,
    /// Reused buffer of what a pump hands to the application.
    out: Vec<Out>,
    /// Where the JS layer writes the text frames of one batch (see
    /// [`Driver::handle_batch`]): a fixed allocation, so its address stays
    /// valid for the JS view of it for the driver's whole life.
    frame_buffer: Box<[u8]>,
    /// The frame being handled: its index in the batch and where it is in
    /// `frame_buffer`, so its tokens can be handed to JS as offsets into the
    /// string JS already has (see [`token_offsets`]).
    frame: Option<(u32, usize, usize)>,
    /// The answers to client-side tool calls being gathered for one
    /// `client_side_tool_responses` request.
    tool_responses: Vec<ToolResponseParam>,
}

/// Bytes of [`Driver::frame_buffer`]: a whole socket read of `on_token`
/// frames (~100 bytes each). A frame's UTF-8 can be up to three times its
/// UTF-16 length; a frame that may not fit crosses as a string instead.
const FRAME_BUFFER: usize = 64 * 1024;

/// Something to hand to the application once the session is released.
enum Out {
    /// A token, and its response id when it changed.
    Token(Token, Option<ResponseId>),
    /// Any other event, as JSON text.
    Event(String),
    FetchToken {
        fetch_id: u64,
        context_id: String,
    },
}

/// How a token crosses to JS.
enum Token {
    /// `frames[frame].slice(start, end)` of the batch being handled.
    At(u32, u32, u32),
    /// Its own text.
    Text(TokenText),
}

/// The driver as its JS connection object holds it: borrowed anew by each
/// call, so a listener that calls back into the connection while a pump
/// runs finds it free (see the module documentation).
pub(crate) type Shared = RefCell<Driver>;

impl Driver {
    /// A driver for `context_id`, not started; `config` comes from
    /// [`default_config`].
    pub(crate) fn new(context_id: String, config: SessionConfig, sink: Sink) -> Shared {
        let seed = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
        RefCell::new(Driver {
            session: Session::new(context_id, config, seed),
            clock: Clock::new(),
            sink: Rc::new(sink),
            timer: None,
            last_response_id: None,
            released: false,
            out: Vec::new(),
            frame_buffer: vec![0; FRAME_BUFFER].into_boxed_slice(),
            frame: None,
            tool_responses: Vec::new(),
        })
    }

    /// Starts connecting; `offline` when the host says the network is down
    /// (`navigator.onLine === false`).
    pub(crate) fn start(this: &Shared, offline: bool) {
        Driver::with_session(this, |s, now| {
            if offline {
                s.set_network_available(false, now);
            }
            s.start(now);
        });
    }

    /// Runs `f` on the session with the current time, then pumps.
    pub(crate) fn with_session<T>(
        this: &Shared,
        f: impl FnOnce(&mut Session, Timestamp) -> T,
    ) -> T {
        let result = {
            let mut d = this.borrow_mut();
            let now = d.clock.now();
            f(&mut d.session, now)
        };
        Driver::pump(this);
        result
    }

    /// A JS view of the frame buffer, for the JS layer to write frames into.
    /// It is detached (length 0) once wasm memory grows; the JS layer then
    /// asks again.
    pub(crate) fn frame_buffer(this: &Shared) -> js_sys::Uint8Array {
        let d = this.borrow();
        // SAFETY: the buffer is a fixed allocation owned by the driver and
        // never reallocated, and wasm memory never moves when it grows (only
        // the JS view is detached, and the JS layer then asks again). The
        // view is written only by the socket's message handler, between
        // calls into wasm, and read by the driver only in `handle_batch`.
        // The driver lives as long as its JS connection object, which that
        // handler and its pending batch keep alive.
        unsafe { js_sys::Uint8Array::view(&d.frame_buffer) }
    }

    /// Adds an answer to the next [`Driver::take_tool_responses`].
    pub(crate) fn add_tool_response(this: &Shared, tool_call_id: String, response: String) {
        this.borrow_mut().tool_responses.push(ToolResponseParam {
            tool_call_id,
            response,
        });
    }

    /// The answers added since the last call.
    pub(crate) fn take_tool_responses(this: &Shared) -> Vec<ToolResponseParam> {
        core::mem::take(&mut this.borrow_mut().tool_responses)
    }

    /// Reads the session.
    pub(crate) fn read<T>(this: &Shared, f: impl FnOnce(&Session) -> T) -> T {
        f(&this.borrow().session)
    }

    /// The socket's `open` event.
    pub(crate) fn opened(this: &Shared) {
        Driver::with_session(this, |s, now| s.handle_transport_open(now));
    }

    /// A batch of text frames in `frame_buffer[..used]`, each a
    /// little-endian `u32` byte length and its UTF-8 (the socket's message
    /// handler wrote them with `TextEncoder.encodeInto`): a socket read that
    /// brought many frames costs one call into wasm, not one per frame.
    pub(crate) fn batch(this: &Shared, used: u32) {
        this.borrow_mut().handle_batch(used as usize);
        Driver::pump(this);
    }

    /// A frame too big for the buffer (`Some`), or a binary one (`None`).
    pub(crate) fn frame(this: &Shared, text: Option<String>) {
        Driver::with_session(this, |s, now| match text {
            Some(text) => s.handle_frame(&text, now),
            None => s.handle_binary_frame(now),
        });
    }

    /// The socket's `close` event; `was_open` if its `open` event came.
    pub(crate) fn closed(this: &Shared, code: u16, reason: String, was_open: bool) {
        Driver::with_session(this, |s, now| {
            if was_open {
                // 1005/1006: no close frame came (the socket just died).
                let code = (code != 1005 && code != 1006).then_some(code);
                s.handle_transport_closed(code, &reason, now)
            } else {
                // Browsers hide why an upgrade failed (by design); the
                // session retries a transport failure with backoff.
                let message = if reason.is_empty() {
                    let mut m = String::from("the WebSocket could not be opened (close code ");
                    tokenrelay::wire::push_u64(&mut m, u64::from(code));
                    m.push(')');
                    m
                } else {
                    reason
                };
                s.handle_transport_failed(Error::Transport { message }, now)
            }
        });
    }

    /// The timer armed by [`Sink::timer`] fired.
    pub(crate) fn timer_fired(this: &Shared) {
        this.borrow_mut().timer = None;
        Driver::with_session(this, |s, now| s.handle_timeout(now));
    }

    /// The page became visible again. A backgrounded tab's timers may have
    /// been throttled for minutes: catch up on every deadline, and retry at
    /// once if the session was waiting to.
    pub(crate) fn visible(this: &Shared) {
        Driver::with_session(this, |s, now| {
            s.handle_timeout(now);
            s.reconnect_now(now);
        });
    }

    /// What a `getToken` call answered.
    pub(crate) fn token_answer(this: &Shared, fetch_id: f64, result: Result<Credential, Error>) {
        Driver::with_session(this, |s, now| {
            s.handle_token(fetch_id as u64, result, now, unix_now())
        });
    }

    /// Closes the connection for good and releases every listener and timer.
    pub(crate) fn close(this: &Shared) {
        this.borrow_mut().session.close();
        Driver::pump(this);
    }

    /// Carries out the session's actions, sends its frames and hands its
    /// events to the application, until it has nothing more to say.
    pub(crate) fn pump(this: &Shared) {
        loop {
            let (mut out, sink) = {
                let mut d = this.borrow_mut();
                d.drain();
                (core::mem::take(&mut d.out), d.sink.clone())
            };
            if out.is_empty() {
                break;
            }
            for item in out.drain(..) {
                match item {
                    Out::Token(token, response_id) => {
                        if let Some(id) = response_id {
                            sink.response_id(&id);
                        }
                        match token {
                            Token::At(frame, start, end) => sink.token_at(frame, start, end),
                            Token::Text(text) => sink.token(&text),
                        }
                    }
                    Out::Event(e) => sink.event(&e),
                    Out::FetchToken {
                        fetch_id,
                        context_id,
                    } => sink.fetch_token(fetch_id as f64, &context_id),
                }
            }
            // Give the buffer back so the hot path does not allocate.
            let mut d = this.borrow_mut();
            if d.out.is_empty() {
                d.out = out;
            }
        }
        let mut d = this.borrow_mut();
        if d.session.state().state.is_terminal() {
            if !d.released {
                d.released = true;
                d.timer = None;
                d.sink.release();
            }
        } else {
            d.schedule();
        }
    }

    /// Moves everything the session produced into `self.out`, doing the
    /// socket work (which never calls back synchronously) on the way.
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(action) = self.session.poll_action() {
                progressed = true;
                self.act(action);
            }
            while let Some(frame) = self.session.poll_transmit() {
                progressed = true;
                if let Some(reason) = self.sink.send(&frame) {
                    let now = self.clock.now();
                    self.session.handle_transport_closed(None, &reason, now);
                }
            }
            while let Some(event) = self.session.poll_event() {
                progressed = true;
                let out = match event {
                    Event::Token { response_id, token } => {
                        let id = self.response_id_change(&response_id);
                        let frame = self.frame.and_then(|(i, start, end)| {
                            Some((i, self.frame_buffer.get(start..end)?))
                        });
                        let at = frame.and_then(|(i, f)| Some((i, token_offsets(f, &token)?)));
                        let token = match at {
                            Some((i, (start, end))) => Token::At(i, start, end),
                            None => Token::Text(token),
                        };
                        Out::Token(token, id)
                    }
                    other => Out::Event(convert::event(&other)),
                };
                self.out.push(out);
            }
            if !progressed {
                break;
            }
        }
    }

    /// Hands every frame of a batch in `frame_buffer[..used]` to the session,
    /// collecting what each produces with the frame's place known, so that
    /// tokens can cross as offsets.
    fn handle_batch(&mut self, used: usize) {
        let now = self.clock.now();
        let used = used.min(self.frame_buffer.len());
        let (mut at, mut index) = (0, 0);
        while at + 4 <= used {
            let b = &self.frame_buffer;
            let len = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
            let start = at + 4;
            let end = start.saturating_add(len).min(used);
            // `encodeInto` writes valid UTF-8 (lone surrogates become
            // U+FFFD). Checked anyway, so a broken host cannot make this
            // unsound: bytes that are not UTF-8 are handled as a frame that
            // is not text, which the session reports as a protocol error
            // (no lossy decoder in the module for a case that cannot occur).
            let bytes = self.frame_buffer.get(start..end).unwrap_or_default();
            match core::str::from_utf8(bytes) {
                Ok(text) => self.session.handle_frame(text, now),
                Err(_) => self.session.handle_binary_frame(now),
            }
            self.frame = Some((index, start, end));
            self.drain();
            self.frame = None;
            at = end;
            index += 1;
        }
    }

    /// The response id, if the JS layer does not have it yet.
    fn response_id_change(&mut self, id: &ResponseId) -> Option<ResponseId> {
        match &self.last_response_id {
            Some(last) if Arc::ptr_eq(last, id) || **last == **id => None,
            _ => {
                self.last_response_id = Some(id.clone());
                Some(id.clone())
            }
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::FetchToken {
                fetch_id,
                context_id,
            } => self.out.push(Out::FetchToken {
                fetch_id,
                context_id,
            }),
            Action::OpenSocket { url } => {
                if let Some(thrown) = self.sink.open(&url) {
                    // A constructor that throws (no WebSocket at all, a
                    // malformed URL) will throw again: a configuration
                    // error, not a retry.
                    let message = ["cannot open a WebSocket: ", &thrown].concat();
                    let now = self.clock.now();
                    self.session
                        .handle_transport_failed(Error::Config { message }, now);
                }
            }
            Action::CloseSocket { code, reason } => self.sink.close_socket(code, &reason),
            // Browsers offer no ping; the session is configured not to ask.
            Action::SendPing => {}
        }
    }

    /// Keeps the JS timer armed for the session's next deadline. Lazily:
    /// a later deadline (a request's inactivity timeout pushed back by every
    /// token) leaves the armed timer alone; when it fires early the session
    /// simply finds nothing due and the timer is re-armed.
    fn schedule(&mut self) {
        let Some(due) = self.session.poll_timeout() else {
            return;
        };
        if matches!(self.timer, Some(armed) if armed <= due) {
            return;
        }
        // Through u64: a u128 to f64 conversion is a compiler-rt routine.
        let delay = due.saturating_since(self.clock.now()).as_millis() as u64 as f64;
        // setTimeout's limit is 2^31-1 ms; a later deadline fires early and
        // is re-armed.
        self.sink.timer(delay.min(2_147_483_647.0));
        self.timer = Some(due);
    }
}

/// Where `token` sits in `frame` as a JS string slice, if it does: when the
/// frame has the canonical `on_token` layout and the token is plain ASCII
/// there, byte offsets are also UTF-16 offsets. Any other frame (escapes,
/// another key order, non-ASCII text) makes the token cross as text. The
/// bytes are compared, so the slice is the token whatever frame it came
/// from.
fn token_offsets(frame: &[u8], token: &str) -> Option<(u32, u32)> {
    const PREFIX: &[u8] = tokenrelay::wire::TOKEN_FRAME_PREFIX.as_bytes();
    let start = PREFIX.len();
    let end = start + token.len();
    let plain = token.is_ascii()
        && frame.starts_with(PREFIX)
        && frame.get(start..end) == Some(token.as_bytes());
    // u32: a frame is far below 4 GiB (wasm32 memory is).
    plain.then_some((start as u32, end as u32))
}

/// What a `getToken` rejection said, as the JS layer read it, as the core's
/// error: the binding passes on what the core's one rule
/// ([`Error::from_provider`]) classifies by.
///
/// * the kind, when `code` is a kind name (this package's own errors:
///   `new ForbiddenError(…)` ends the connection for good);
/// * an HTTP status (`status`, `statusCode`, or its `response`'s);
/// * a server error code: `server_code`, or a `code` that is not a kind
///   name.
pub(crate) fn provider_error(
    message: String,
    code: Option<String>,
    server_code: Option<String>,
    status: Option<f64>,
) -> Error {
    let kind = code.as_deref().and_then(ErrorKind::from_name);
    let code = match kind {
        Some(_) => server_code,
        None => code,
    };
    let status = status
        .filter(|s| (0.0..=f64::from(u16::MAX)).contains(s))
        .map(|s| s as u16);
    Error::from_provider(
        ProviderFailure::new(message)
            .kind(kind)
            .status(status)
            .code(code),
    )
}

/// The default timeout values a browser connection starts from: the
/// core's, without the keepalive. Browsers cannot send pings nor see pongs,
/// so the session's keepalive would only ever tear down healthy quiet
/// sockets; the browser and the server's own pings keep the socket honest.
pub(crate) fn default_config(ws_url: String) -> SessionConfig {
    let mut config = SessionConfig::new(ws_url);
    config.ping_interval = None;
    config.idle_timeout = None;
    config
}
