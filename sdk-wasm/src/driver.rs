//! The browser driver: feeds the sans-IO [`Session`] from a WebSocket,
//! `setTimeout` and the application's `getToken` promise, and carries out
//! what the session asks. No protocol decision is made here; every one is
//! the session's (see its module documentation for the contract).
//!
//! Re-entrancy: JS listeners may call back into the connection (an `on`
//! handler that calls `ask()`), so the session is never borrowed while
//! user code runs. [`Driver::pump`] collects what the session produced while
//! borrowed, releases it, then calls the application.
//!
//! Every JS callback the driver installs (socket handlers, the timer,
//! token promise reactions, browser life listeners) is created once per
//! connection and wrapped by the JS layer's `guard`, which turns a wasm trap
//! (a panic) into an error on the connection instead of an uncaught
//! exception that would kill a Node process.

use alloc::boxed::Box;
use alloc::rc::{Rc, Weak};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use js_sys::{Function, Promise, Reflect};
use tokenrelay::{Action, Session, SessionConfig};
use tokenrelay::{
    Credential, Error, ErrorKind, Event, ProviderFailure, ResponseId, Timestamp, TokenText,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, WebSocket};

use crate::clock::{unix_now, Clock};
use crate::convert;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
    /// A promise seen as something with `then(ok, err)` taking plain
    /// functions (bound ones, here).
    type Thenable;
    #[wasm_bindgen(method, js_name = then)]
    fn then_call(this: &Thenable, ok: &Function, err: &Function) -> JsValue;

    /// The JS layer's receiver of what the connection produces. Typed
    /// imports rather than `Function::call`: numbers and strings cross
    /// without being boxed into `JsValue`s, which matters once per token.
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
    /// Any other event, as a JS object.
    #[wasm_bindgen(method)]
    fn event(this: &Sink, event: JsValue);
    /// Makes the socket's `message` handler. Text frames that fit are
    /// written one after another into the connection's frame buffer
    /// (`TextEncoder.encodeInto`, no allocation), each as a little-endian
    /// `u32` byte length and its UTF-8, and handed over in one batch with
    /// `in_buffer(bytesUsed)` from a microtask: a socket read that brought
    /// many frames costs one call into wasm, not one per frame. A frame too
    /// big for the buffer goes to `as_text(text)`, a binary one to
    /// `as_text(undefined)`, each after the batch before it. The batch's JS
    /// strings are kept for [`Sink::token_at`] while `in_buffer` runs.
    /// Like `guard`, the handler turns a trap into an error on the
    /// connection.
    #[wasm_bindgen(method, js_name = wrapMessage)]
    fn wrap_message(this: &Sink, in_buffer: &JsValue, as_text: &JsValue) -> Function;
}

/// What the application gave the connection.
pub(crate) struct Host {
    /// `getToken(contextId)`: a string, a promise of one, or
    /// `{streamToken}` for a single-use stream token.
    pub get_token: Function,
    /// A WebSocket constructor to use instead of the global one.
    pub websocket: Option<Function>,
    /// Where tokens and events go. A token's response id is only sent when
    /// it changes (the JS layer remembers it), which saves a string
    /// crossing per token.
    pub sink: Sink,
    /// Wraps a callback so that a trap inside it is reported, not thrown.
    pub guard: Function,
}

/// The callbacks handed to JS, made once per connection.
struct Callbacks {
    /// The Rust closures, owned here so they live exactly as long as the
    /// connection; JS only ever holds their guarded wrappers below.
    _alive: Alive,
    /// The callbacks wrapped by the JS `guard`; these are what JS holds.
    guarded: Guarded,
}

type Alive = (
    [Closure<dyn FnMut(JsValue)>; 2],
    Closure<dyn FnMut(u32)>,
    Closure<dyn FnMut(Option<String>)>,
    [Closure<dyn FnMut()>; 4],
    [Closure<dyn FnMut(f64, JsValue)>; 2],
);

struct Guarded {
    open: Function,
    message: Function,
    close: Function,
    timer: Function,
    token_ok: Function,
    token_err: Function,
    online: Function,
    offline: Function,
    visibility: Function,
}

/// One connection's driver state.
pub(crate) struct Driver {
    session: Session,
    clock: Clock,
    /// Shared outside the `RefCell` so a pump can call the application
    /// without holding the borrow or cloning JS handles per event.
    host: Rc<Host>,
    socket: Option<WebSocket>,
    /// The socket is open (its `open` event came).
    socket_open: bool,
    /// The pending `setTimeout` and the session time it is due at.
    timer: Option<(JsValue, Timestamp)>,
    callbacks: Option<Callbacks>,
    /// The response id the JS layer was last told, so a token costs one
    /// string crossing, not two.
    last_response_id: Option<ResponseId>,
    /// Browser listeners are installed (removed by `close`).
    listening: bool,
    /// Reused buffer of what a pump hands to the application.
    out: Vec<Out>,
    /// Where the JS layer writes the text frames of one batch (see
    /// [`Sink::wrap_message`]): a fixed allocation, so its address stays
    /// valid for the JS view of it for the driver's whole life.
    frame_buffer: Box<[u8]>,
    /// The frame being handled: its index in the batch and where it is in
    /// `frame_buffer`, so its tokens can be handed to JS as offsets into the
    /// string JS already has (see [`token_offsets`]).
    frame: Option<(u32, usize, usize)>,
}

/// Bytes of [`Driver::frame_buffer`]: a whole socket read of `on_token`
/// frames (~100 bytes each). A frame's UTF-8 can be up to three times its
/// UTF-16 length; a frame that may not fit crosses as a string instead.
const FRAME_BUFFER: usize = 64 * 1024;

/// Something to hand to the application once the session is released.
enum Out {
    /// A token, and its response id when it changed.
    Token(Token, Option<ResponseId>),
    Event(JsValue),
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

/// A shared handle; the JS object owns the only strong reference.
pub(crate) type Shared = Rc<RefCell<Driver>>;

impl Driver {
    /// A driver for `context_id`, not started.
    pub(crate) fn new(context_id: String, mut config: SessionConfig, host: Host) -> Shared {
        // Browsers cannot send pings nor see pongs, so the session's
        // keepalive would only ever tear down healthy quiet sockets. The
        // browser and the server's own pings keep the socket honest.
        config.ping_interval = None;
        config.idle_timeout = None;
        let seed = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
        let driver = Rc::new(RefCell::new(Driver {
            session: Session::new(context_id, config, seed),
            clock: Clock::new(),
            host: Rc::new(host),
            socket: None,
            socket_open: false,
            timer: None,
            callbacks: None,
            last_response_id: None,
            listening: false,
            out: Vec::new(),
            frame_buffer: vec![0; FRAME_BUFFER].into_boxed_slice(),
            frame: None,
        }));
        let callbacks = Callbacks::new(&driver);
        driver.borrow_mut().callbacks = Some(callbacks);
        driver
    }

    /// Starts connecting and listens to the browser's life events.
    pub(crate) fn start(this: &Shared) {
        {
            let mut d = this.borrow_mut();
            d.listen(true);
            let now = d.clock.now();
            if let Some(false) = navigator_on_line() {
                d.session.set_network_available(false, now);
            }
            d.session.start(now);
        }
        Driver::pump(this);
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

    /// Reads the session.
    pub(crate) fn read<T>(this: &Shared, f: impl FnOnce(&Session) -> T) -> T {
        f(&this.borrow().session)
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
            let (mut out, host) = {
                let mut d = this.borrow_mut();
                d.drain();
                (core::mem::take(&mut d.out), d.host.clone())
            };
            if out.is_empty() {
                break;
            }
            for item in out.drain(..) {
                match item {
                    Out::Token(token, response_id) => {
                        if let Some(id) = response_id {
                            host.sink.response_id(&id);
                        }
                        match token {
                            Token::At(frame, start, end) => host.sink.token_at(frame, start, end),
                            Token::Text(text) => host.sink.token(&text),
                        }
                    }
                    Out::Event(e) => host.sink.event(e),
                    Out::FetchToken {
                        fetch_id,
                        context_id,
                    } => Driver::fetch_token(this, fetch_id, &context_id),
                }
            }
            // Give the buffer back so the hot path does not allocate.
            let mut d = this.borrow_mut();
            if d.out.is_empty() {
                d.out = out;
            }
        }
        let mut d = this.borrow_mut();
        d.schedule();
        if d.session.state().state.is_terminal() {
            d.release();
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
                self.send(&frame);
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
            Action::OpenSocket { url } => self.open(&url),
            Action::CloseSocket { code, reason } => {
                if let Some(ws) = self.detach_socket() {
                    let _ = ws.close_with_code_and_reason(code, &reason);
                }
            }
            // Browsers offer no ping; the session is configured not to ask.
            Action::SendPing => {}
        }
    }

    fn open(&mut self, url: &str) {
        if let Some(old) = self.detach_socket() {
            let _ = old.close();
        }
        let created = match &self.host.websocket {
            Some(ctor) => {
                let args = js_sys::Array::of1(&JsValue::from_str(url));
                Reflect::construct(ctor, &args).map(JsCast::unchecked_into::<WebSocket>)
            }
            None => WebSocket::new(url),
        };
        let now = self.clock.now();
        let ws = match created {
            Ok(ws) => ws,
            Err(e) => {
                // A constructor that throws (no WebSocket at all, a malformed
                // URL) will throw again: a configuration error, not a retry.
                let message = ["cannot open a WebSocket: ", &js_message(&e)].concat();
                self.session
                    .handle_transport_failed(Error::Config { message }, now);
                return;
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        if let Some(cb) = &self.callbacks {
            ws.set_onopen(Some(&cb.guarded.open));
            ws.set_onmessage(Some(&cb.guarded.message));
            ws.set_onclose(Some(&cb.guarded.close));
        }
        self.socket = Some(ws);
        self.socket_open = false;
    }

    /// Forgets the current socket; its handlers are removed first, so nothing
    /// more is heard from it.
    fn detach_socket(&mut self) -> Option<WebSocket> {
        let ws = self.socket.take()?;
        ws.set_onopen(None);
        ws.set_onmessage(None);
        ws.set_onclose(None);
        self.socket_open = false;
        Some(ws)
    }

    fn send(&mut self, frame: &str) {
        let Some(ws) = &self.socket else {
            return; // the socket went away; the session knows
        };
        if let Err(e) = ws.send_with_str(frame) {
            let reason = js_message(&e);
            self.detach_socket();
            let now = self.clock.now();
            self.session.handle_transport_closed(None, &reason, now);
        }
    }

    /// Keeps one `setTimeout` armed for the session's next deadline. Lazily:
    /// a later deadline (a request's inactivity timeout pushed back by every
    /// token) leaves the armed timer alone; when it fires early the session
    /// simply finds nothing due and the timer is re-armed.
    fn schedule(&mut self) {
        let Some(due) = self.session.poll_timeout() else {
            return;
        };
        if matches!(&self.timer, Some((_, armed)) if *armed <= due) {
            return;
        }
        if let Some((id, _)) = self.timer.take() {
            clear_timeout(&id);
        }
        let Some(cb) = &self.callbacks else { return };
        // Through u64: a u128 to f64 conversion is a compiler-rt routine.
        let delay = due.saturating_since(self.clock.now()).as_millis() as u64 as f64;
        // setTimeout's limit is 2^31-1 ms; a later deadline fires early and
        // is re-armed.
        let id = set_timeout(&cb.guarded.timer, delay.min(2_147_483_647.0));
        self.timer = Some((id, due));
    }

    fn release(&mut self) {
        if let Some((id, _)) = self.timer.take() {
            clear_timeout(&id);
        }
        if let Some(ws) = self.detach_socket() {
            let _ = ws.close();
        }
        self.listen(false);
    }

    /// Adds (or removes) the `online`/`offline` and `visibilitychange`
    /// listeners, where the host has them (not in Node).
    fn listen(&mut self, on: bool) {
        if self.listening == on {
            return;
        }
        let Some(cb) = &self.callbacks else { return };
        let global = js_sys::global();
        let document: js_sys::Object = Reflect::get(&global, &"document".into())
            .unwrap_or(JsValue::UNDEFINED)
            .unchecked_into();
        let targets = [
            (&global, "online", &cb.guarded.online),
            (&global, "offline", &cb.guarded.offline),
            (&document, "visibilitychange", &cb.guarded.visibility),
        ];
        for (target, name, f) in targets {
            let method = if on {
                "addEventListener"
            } else {
                "removeEventListener"
            };
            if let Ok(m) = Reflect::get(target, &method.into()) {
                if let Some(m) = m.dyn_ref::<Function>() {
                    let _ = m.call2(target, &name.into(), f);
                }
            }
        }
        self.listening = on;
    }

    fn fetch_token(this: &Shared, fetch_id: u64, context_id: &str) {
        let (host, ok, err) = {
            let d = this.borrow();
            let Some(cb) = &d.callbacks else { return };
            (
                d.host.clone(),
                cb.guarded.token_ok.clone(),
                cb.guarded.token_err.clone(),
            )
        };
        // The fetch id rides along as a bound argument, so a late answer to
        // an abandoned fetch is recognised (and ignored) by the session.
        let id = JsValue::from_f64(fetch_id as f64);
        let ok: Function = ok.bind1(&JsValue::NULL, &id).unchecked_into();
        let err: Function = err.bind1(&JsValue::NULL, &id).unchecked_into();
        match host
            .get_token
            .call1(&JsValue::NULL, &JsValue::from_str(context_id))
        {
            Ok(value) => {
                let _ = Promise::resolve(&value)
                    .unchecked_into::<Thenable>()
                    .then_call(&ok, &err);
            }
            // A provider that throws synchronously is treated like one whose
            // promise rejects, but still asynchronously, as promises are.
            Err(e) => {
                let _ = Promise::reject(&e)
                    .unchecked_into::<Thenable>()
                    .then_call(&ok, &err);
            }
        }
    }

    fn token_answer(this: &Shared, fetch_id: f64, result: Result<Credential, Error>) {
        Driver::with_session(this, |s, now| {
            s.handle_token(fetch_id as u64, result, now, unix_now())
        });
    }
}

impl Callbacks {
    fn new(driver: &Shared) -> Callbacks {
        let w = Rc::downgrade(driver);
        let on_open = Closure::<dyn FnMut(JsValue)>::new(guarded_fn(&w, |d, _| {
            let now = {
                let mut d = d.borrow_mut();
                d.socket_open = true;
                d.clock.now()
            };
            Driver::with_session(d, |s, _| s.handle_transport_open(now));
        }));
        // The hot path: one call per batch of frames, their UTF-8 already
        // in place (see `Sink::wrap_message` for the layout).
        let on_message_in_buffer = Closure::<dyn FnMut(u32)>::new({
            let w = w.clone();
            move |used: u32| {
                let Some(d) = w.upgrade() else { return };
                d.borrow_mut().handle_batch(used as usize);
                Driver::pump(&d);
            }
        });
        let on_message_as_text = Closure::<dyn FnMut(Option<String>)>::new({
            let w = w.clone();
            move |text: Option<String>| {
                let Some(d) = w.upgrade() else { return };
                Driver::with_session(&d, |s, now| match text {
                    Some(text) => s.handle_frame(&text, now),
                    None => s.handle_binary_frame(now),
                });
            }
        });
        let on_close = Closure::<dyn FnMut(JsValue)>::new(guarded_fn(&w, |d, e: JsValue| {
            let e: CloseEvent = e.unchecked_into();
            let (was_open, now) = {
                let mut d = d.borrow_mut();
                let was_open = d.socket_open;
                d.detach_socket();
                (was_open, d.clock.now())
            };
            let code = e.code();
            let reason = e.reason();
            Driver::with_session(d, |s, _| {
                if was_open {
                    // 1005/1006: no close frame came (the socket just died).
                    let code = (code != 1005 && code != 1006).then_some(code);
                    s.handle_transport_closed(code, &reason, now)
                } else {
                    // Browsers hide why an upgrade failed (by design); the
                    // session retries a transport failure with backoff.
                    let message = if reason.is_empty() {
                        let mut m = String::from("the WebSocket could not be opened (close code ");
                        m.push_str(&tokenrelay::wire::decimal(u64::from(code)));
                        m.push(')');
                        m
                    } else {
                        reason
                    };
                    s.handle_transport_failed(Error::Transport { message }, now)
                }
            });
        }));
        let on_timer = Closure::<dyn FnMut()>::new({
            let w = w.clone();
            move || {
                let Some(d) = w.upgrade() else { return };
                d.borrow_mut().timer = None;
                Driver::with_session(&d, |s, now| s.handle_timeout(now));
            }
        });
        let on_token_ok = Closure::<dyn FnMut(f64, JsValue)>::new({
            let w = w.clone();
            move |fetch_id: f64, value: JsValue| {
                let Some(d) = w.upgrade() else { return };
                Driver::token_answer(&d, fetch_id, credential(&value));
            }
        });
        let on_token_err = Closure::<dyn FnMut(f64, JsValue)>::new({
            let w = w.clone();
            move |fetch_id: f64, e: JsValue| {
                let Some(d) = w.upgrade() else { return };
                Driver::token_answer(&d, fetch_id, Err(provider_error(&e)));
            }
        });
        let network = |up: bool| {
            let w = w.clone();
            Closure::<dyn FnMut()>::new(move || {
                let Some(d) = w.upgrade() else { return };
                Driver::with_session(&d, |s, now| s.set_network_available(up, now));
            })
        };
        let on_online = network(true);
        let on_offline = network(false);
        let on_visibility = Closure::<dyn FnMut()>::new({
            let w = w.clone();
            move || {
                let Some(d) = w.upgrade() else { return };
                if !document_visible() {
                    return;
                }
                // A backgrounded tab's timers may have been throttled for
                // minutes: catch up on every deadline, and retry at once if
                // the session was waiting to.
                Driver::with_session(&d, |s, now| {
                    s.handle_timeout(now);
                    s.reconnect_now(now);
                });
            }
        });
        let guard = driver.borrow().host.guard.clone();
        let wrap = |f: &JsValue| -> Function {
            guard
                .call1(&JsValue::NULL, f)
                .ok()
                .and_then(|g| g.dyn_into::<Function>().ok())
                .unwrap_or_else(|| f.clone().unchecked_into())
        };
        let guarded = Guarded {
            open: wrap(on_open.as_ref()),
            message: driver
                .borrow()
                .host
                .sink
                .wrap_message(on_message_in_buffer.as_ref(), on_message_as_text.as_ref()),
            close: wrap(on_close.as_ref()),
            timer: wrap(on_timer.as_ref()),
            token_ok: wrap(on_token_ok.as_ref()),
            token_err: wrap(on_token_err.as_ref()),
            online: wrap(on_online.as_ref()),
            offline: wrap(on_offline.as_ref()),
            visibility: wrap(on_visibility.as_ref()),
        };
        Callbacks {
            _alive: (
                [on_open, on_close],
                on_message_in_buffer,
                on_message_as_text,
                [on_timer, on_online, on_offline, on_visibility],
                [on_token_ok, on_token_err],
            ),
            guarded,
        }
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

/// A callback that does nothing once its driver is gone.
fn guarded_fn<A: 'static>(w: &Weak<RefCell<Driver>>, f: fn(&Shared, A)) -> impl FnMut(A) + 'static {
    let w = w.clone();
    move |a| {
        if let Some(d) = w.upgrade() {
            f(&d, a)
        }
    }
}

/// What `getToken` resolved to, as a credential.
fn credential(value: &JsValue) -> Result<Credential, Error> {
    if let Some(s) = value.as_string() {
        return Ok(Credential::access_token(s));
    }
    let field = |name: &str| {
        Reflect::get(value, &name.into())
            .ok()
            .and_then(|v| v.as_string())
    };
    if value.is_object() {
        if let Some(s) = field("streamToken") {
            return Ok(Credential::stream_token(s));
        }
        if let Some(s) = field("accessToken") {
            return Ok(Credential::access_token(s));
        }
    }
    Err(Error::Config {
        message: "getToken must resolve to a string (or {accessToken} / {streamToken})".into(),
    })
}

/// A `getToken` rejection, keeping its class when the app says what it was
/// (a `code` such as `"forbidden"`, or an HTTP `status`): the core
/// classifies it as it does any server refusal, and the session decides
/// that "this user may not have this context" ends the connection. Without
/// either it is a plain provider failure, retried with backoff.
/// What a `getToken` rejected with, as the core's error: the binding reads
/// what the core's one rule ([`Error::from_provider`]) classifies by.
///
/// * the kind, when `code` is a kind name (this package's own errors:
///   `new ForbiddenError(…)` ends the connection for good);
/// * an HTTP status: a number `status` or `statusCode`, or that of its
///   `response` (a thrown `fetch` `Response`, ky's and ofetch's errors);
/// * a server error code: `serverCode`, or a `code` string that is not a
///   kind name.
fn provider_error(e: &JsValue) -> Error {
    let get = |v: &JsValue, name: &str| Reflect::get(v, &name.into()).ok();
    let number = |v: &JsValue| {
        get(v, "status")
            .and_then(|s| s.as_f64())
            .or_else(|| get(v, "statusCode").and_then(|s| s.as_f64()))
    };
    let code = get(e, "code").and_then(|v| v.as_string());
    let kind = code.as_deref().and_then(ErrorKind::from_name);
    let code = match kind {
        Some(_) => get(e, "serverCode").and_then(|v| v.as_string()),
        None => code,
    };
    let status = number(e)
        .or_else(|| get(e, "response").and_then(|r| number(&r)))
        .filter(|s| (0.0..=f64::from(u16::MAX)).contains(s))
        .map(|s| s as u16);
    Error::from_provider(
        ProviderFailure::new(js_message(e))
            .kind(kind)
            .status(status)
            .code(code),
    )
}

/// The message of a thrown JS value.
pub(crate) fn js_message(e: &JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

fn navigator_on_line() -> Option<bool> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    Reflect::get(&navigator, &"onLine".into()).ok()?.as_bool()
}

fn document_visible() -> bool {
    Reflect::get(&js_sys::global(), &"document".into())
        .ok()
        .and_then(|d| Reflect::get(&d, &"visibilityState".into()).ok())
        .and_then(|v| v.as_string())
        .is_none_or(|v| v == "visible")
}

/// The default timeout values a browser connection starts from.
pub(crate) fn default_config(ws_url: String) -> SessionConfig {
    let mut config = SessionConfig::new(ws_url);
    config.ping_interval = None;
    config.idle_timeout = None;
    config
}
