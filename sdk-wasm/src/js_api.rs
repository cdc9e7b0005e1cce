//! What wasm-bindgen exports: [`WasmConnection`], one connection to one
//! context, and the panic plumbing. The ESM layer (`js/client.js`)
//! builds the public `Client`/`Connection` classes on top, validates
//! arguments (`TypeError`) and turns error descriptors into error classes.

use alloc::string::String;
use alloc::vec::Vec;
#[cfg(target_arch = "wasm32")]
use core::cell::RefCell;
use core::time::Duration;

use js_sys::Function;
use tokenrelay::{Credential, Error, ErrorKind, RequestId};
use wasm_bindgen::prelude::*;

use crate::convert;
use crate::driver::{default_config, provider_error, Driver, Shared, Sink};

/// The receiver of panic messages: one per module instance. A `static`
/// rather than a `thread_local!` so the module builds without `std`.
#[cfg(target_arch = "wasm32")]
struct Reporter(RefCell<Option<Function>>);

// SAFETY: wasm32 without the `atomics` target feature has one thread, so
// the cell is never reached from two. With `atomics` (a threaded build,
// which this module is not) the impl does not exist and the build fails.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for Reporter {}

#[cfg(target_arch = "wasm32")]
static PANIC_REPORTER: Reporter = Reporter(RefCell::new(None));

/// Installs `report(message, file, line)` as the receiver of panic
/// messages (`file` and `line`: where the panic was raised, when known). A
/// panic in wasm aborts: the crate's panic handler calls `report` with the
/// panic's message and then traps; the JS layer catches the trap, and the
/// message tells it why, so it can fail every connection with a
/// `PanicError` instead of leaving a dead page.
#[wasm_bindgen(js_name = setPanicReporter)]
pub fn set_panic_reporter(report: Function) {
    // The host build (lint, unit tests) has no panic handler of its own.
    #[cfg(target_arch = "wasm32")]
    if let Ok(mut r) = PANIC_REPORTER.0.try_borrow_mut() {
        *r = Some(report);
    }
    #[cfg(not(target_arch = "wasm32"))]
    drop(report);
}

/// Hands `message` to the reporter [`set_panic_reporter`] installed, if
/// any. Called by the panic handler (`lib.rs`, browser build only), so it
/// must not panic.
#[cfg(target_arch = "wasm32")]
pub(crate) fn report_panic(message: &str, location: Option<&core::panic::Location<'_>>) {
    if let Ok(r) = PANIC_REPORTER.0.try_borrow() {
        if let Some(f) = r.as_ref() {
            // Three values, not one formatted string: nothing is allocated
            // in wasm memory while panicking (the panic may be an
            // allocation failure).
            let (file, line) = location.map_or((JsValue::UNDEFINED, JsValue::UNDEFINED), |l| {
                (
                    JsValue::from_str(l.file()),
                    JsValue::from_f64(f64::from(l.line())),
                )
            });
            let _ = f.call3(&JsValue::NULL, &JsValue::from_str(message), &file, &line);
        }
    }
}

/// Panics on purpose, so the test suite can check that a panic becomes a
/// rejected promise and an error event. Not part of the public API.
#[wasm_bindgen(js_name = __panicForTests)]
pub fn panic_for_tests() {
    panic!("panic requested by the test suite");
}

/// The descriptors (JSON text of an array) of a sample core error of every
/// kind (`ErrorKind::ALL`), so the test suite can check that `toError`
/// gives each its own class. Not part of the public API.
#[wasm_bindgen(js_name = __errorKindsForTests)]
pub fn error_kinds_for_tests() -> String {
    let mut out = String::from("[");
    for kind in ErrorKind::ALL {
        if out.len() > 1 {
            out.push(',');
        }
        convert::push_error(&mut out, &Error::sample(kind));
    }
    out.push(']');
    out
}

/// One connection to one context: the sans-IO session and its browser
/// driver. Used through the JS `Connection` class, which does the I/O and
/// calls the methods below with what happened.
#[wasm_bindgen]
pub struct WasmConnection {
    driver: Shared,
}

/// A request's id as a number, or its error's descriptor as JSON text:
/// returned, not thrown, because a `Result` export costs each method a shim
/// of its own (the JS layer throws the descriptor as its error class).
fn request(result: Result<RequestId, Error>) -> JsValue {
    match result {
        Ok(id) => JsValue::from_f64(id.0 as f64),
        Err(e) => JsValue::from_str(&convert::error(&e)),
    }
}

/// Option `i` of the numbers the JS layer passed, `None` for NaN (the JS
/// layer's "not set"): one slice of numbers crosses instead of a parameter
/// each.
fn given(numbers: &[f64], i: usize) -> Option<f64> {
    numbers.get(i).copied().filter(|v| !v.is_nan())
}

#[wasm_bindgen]
impl WasmConnection {
    /// A connection to `context_id` at `ws_url`, not yet started. `sink` is
    /// the JS layer's side (see `Sink` in `driver.rs`). `options` are
    /// numbers, NaN where the app set nothing (the core's default stays),
    /// checked by the JS layer: `refreshAhead` (0 or 1), then in
    /// milliseconds the request and invocation timeouts and the reconnect
    /// delay's bounds, then the most reconnect attempts, the most queued
    /// requests, and the queued requests' age limit (ms; 0: none).
    #[wasm_bindgen(constructor)]
    pub fn new(
        ws_url: String,
        context_id: String,
        client_key: Option<String>,
        sink: Sink,
        options: &[f64],
    ) -> WasmConnection {
        let ms = |v: f64| Duration::from_millis(v as u64);
        let mut config = default_config(ws_url);
        config.client_key = client_key;
        if let Some(v) = given(options, 0) {
            config.refresh_ahead = v != 0.0;
        }
        if let Some(v) = given(options, 1) {
            config.request_timeout = ms(v);
        }
        if let Some(v) = given(options, 2) {
            config.invocation_timeout = ms(v);
        }
        if let Some(v) = given(options, 3) {
            config.reconnect.min_delay = ms(v);
        }
        if let Some(v) = given(options, 4) {
            config.reconnect.max_delay = ms(v);
        }
        if let Some(v) = given(options, 5) {
            config.reconnect.max_attempts = Some(v as u32);
        }
        if let Some(v) = given(options, 6) {
            config.max_queued_requests = v as usize;
        }
        if let Some(v) = given(options, 7) {
            // 0: no limit.
            config.max_queued_age = (v > 0.0).then(|| ms(v));
        }
        WasmConnection {
            driver: Driver::new(context_id, config, sink),
        }
    }

    /// The buffer the socket's message handler writes frames into (see
    /// [`WasmConnection::batch`]); detached when wasm memory grows, then
    /// asked for again.
    #[wasm_bindgen(js_name = frameBuffer)]
    pub fn frame_buffer(&self) -> js_sys::Uint8Array {
        Driver::frame_buffer(&self.driver)
    }

    /// Starts connecting; `offline` when `navigator.onLine` is false.
    pub fn start(&self, offline: bool) {
        Driver::start(&self.driver, offline);
    }

    /// The socket's `open` event.
    pub fn opened(&self) {
        Driver::opened(&self.driver);
    }

    /// The frames the socket's message handler wrote into the frame buffer
    /// (`used` bytes; see `Driver::batch`).
    pub fn batch(&self, used: u32) {
        Driver::batch(&self.driver, used);
    }

    /// A text frame too big for the frame buffer, or `undefined` for a
    /// binary frame (which the protocol does not use).
    pub fn frame(&self, text: Option<String>) {
        Driver::frame(&self.driver, text);
    }

    /// The socket's `close` event: its code and reason, and whether its
    /// `open` event had come.
    pub fn closed(&self, code: u16, reason: String, was_open: bool) {
        Driver::closed(&self.driver, code, reason, was_open);
    }

    /// The timer the sink armed fired.
    pub fn timer(&self) {
        Driver::timer_fired(&self.driver);
    }

    /// `getToken` resolved to `secret`: a stream token if `stream`, else an
    /// access token (a string, or `{accessToken}`). No `secret`: it
    /// resolved to something that is not a credential, a configuration
    /// error that ends the connection.
    #[wasm_bindgen(js_name = tokenOk)]
    pub fn token_ok(&self, fetch_id: f64, secret: Option<String>, stream: bool) {
        let answer = match secret {
            Some(secret) if stream => Ok(Credential::stream_token(secret)),
            Some(secret) => Ok(Credential::access_token(secret)),
            None => Err(Error::Config {
                message: "getToken must resolve to a string (or {accessToken} / {streamToken})"
                    .into(),
            }),
        };
        Driver::token_answer(&self.driver, fetch_id, answer);
    }

    /// `getToken` rejected. The JS layer passes what it read of
    /// the rejection: its message, its `code` and `serverCode` when they are
    /// strings, and its HTTP status (`status`, `statusCode`, or its
    /// `response`'s) when there is one.
    #[wasm_bindgen(js_name = tokenErr)]
    pub fn token_err(
        &self,
        fetch_id: f64,
        message: String,
        code: Option<String>,
        server_code: Option<String>,
        status: Option<f64>,
    ) {
        let error = provider_error(message, code, server_code, status);
        Driver::token_answer(&self.driver, fetch_id, Err(error));
    }

    /// The page became visible again (`visibilitychange`).
    pub fn visible(&self) {
        Driver::visible(&self.driver);
    }

    /// `add_message`; returns the request id (or an error descriptor).
    #[wasm_bindgen(js_name = sendMessage)]
    pub fn send_message(&self, text: String) -> JsValue {
        request(Driver::with_session(&self.driver, |s, now| {
            s.send_message(text, now)
        }))
    }

    /// `stop_invocation`; returns the request id (or an error descriptor).
    pub fn stop(&self) -> JsValue {
        request(Driver::with_session(&self.driver, |s, now| s.stop(now)))
    }

    /// `set_last_messages`; returns the request id (or an error descriptor).
    #[wasm_bindgen(js_name = setLastMessages)]
    pub fn set_last_messages(&self, human: String, ai: Option<String>) -> JsValue {
        request(Driver::with_session(&self.driver, |s, now| {
            s.set_last_messages(human, ai, now)
        }))
    }

    /// Adds the answer `response` to the tool call `tool_call_id` to the
    /// next [`WasmConnection::send_tool_responses`]. One call per answer,
    /// with two strings: no JS array is read from wasm.
    #[wasm_bindgen(js_name = addToolResponse)]
    pub fn add_tool_response(&self, tool_call_id: String, response: String) {
        Driver::add_tool_response(&self.driver, tool_call_id, response);
    }

    /// `client_side_tool_responses` with the answers added since the last
    /// call; returns the request id (or an error descriptor).
    #[wasm_bindgen(js_name = sendToolResponses)]
    pub fn send_tool_responses(&self) -> JsValue {
        let responses = Driver::take_tool_responses(&self.driver);
        request(Driver::with_session(&self.driver, |s, now| {
            s.send_tool_responses(responses, now)
        }))
    }

    /// A response by id (streaming or recently completed) as JSON text, or
    /// `undefined`.
    pub fn response(&self, response_id: String) -> Option<String> {
        Driver::read(&self.driver, |s| {
            s.response(&response_id)
                .map(|r| convert::text(r, convert::push_response))
        })
    }

    /// Requests waiting for a connection to be sent (see the core's
    /// `Session::pending`).
    pub fn pending(&self) -> u32 {
        Driver::read(&self.driver, |s| s.pending() as u32)
    }

    /// The session's counters (the core's `Stats`), in the order the JS
    /// layer names them: connects, reconnects, resumes, replayed, tokens,
    /// duplicates, interrupted, frames and bytes received, token fetches.
    /// Numbers, not an object: no conversion code in the bundle.
    pub fn stats(&self) -> Vec<f64> {
        Driver::read(&self.driver, |s| {
            let t = s.stats();
            [
                t.connects,
                t.reconnects,
                t.resumes,
                t.replayed,
                t.tokens,
                t.duplicates,
                t.interrupted,
                t.frames_received,
                t.bytes_received,
                t.token_fetches,
            ]
            .map(|n| n as f64)
            .to_vec()
        })
    }

    /// The server's name, version and capabilities as JSON text, once known.
    pub fn server(&self) -> Option<String> {
        Driver::read(&self.driver, |s| {
            s.server()
                .map(|info| convert::text(info, convert::push_server))
        })
    }

    /// Whether the network is up: the JS layer's `online`/`offline`
    /// listeners call it, and so does the app through
    /// `setNetworkAvailable` on hosts without those events.
    #[wasm_bindgen(js_name = setNetworkAvailable)]
    pub fn set_network_available(&self, up: bool) {
        Driver::with_session(&self.driver, |s, now| s.set_network_available(up, now));
    }

    /// Retries at once if waiting to reconnect.
    #[wasm_bindgen(js_name = reconnectNow)]
    pub fn reconnect_now(&self) {
        Driver::with_session(&self.driver, |s, now| s.reconnect_now(now));
    }

    /// Closes for good; releases the socket, the timer and every listener.
    pub fn close(&self) {
        Driver::close(&self.driver);
    }
}
