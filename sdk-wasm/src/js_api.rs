//! What wasm-bindgen exports: [`WasmConnection`], one connection to one
//! context, and the panic plumbing. The ESM layer (`js/connection.js`)
//! builds the public `Client`/`Connection` classes on top, validates
//! arguments (`TypeError`) and turns error descriptors into error classes.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
#[cfg(target_arch = "wasm32")]
use core::cell::RefCell;
use core::time::Duration;

use js_sys::{Array, Function};
use tokenrelay::wire::ToolResponseParam;
use tokenrelay::{Error, ErrorKind, RequestId};
use wasm_bindgen::prelude::*;

use crate::convert;
use crate::driver::{default_config, Driver, Host, Shared, Sink};

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

/// Installs `report(message)` as the receiver of panic messages. A panic in
/// wasm aborts: the crate's panic handler calls `report` with the panic's
/// message and then traps; the JS layer catches the trap, and the message
/// tells it why, so it can fail every connection with a `PanicError`
/// instead of leaving a dead page.
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
pub(crate) fn report_panic(message: &str) {
    if let Ok(r) = PANIC_REPORTER.0.try_borrow() {
        if let Some(f) = r.as_ref() {
            let _ = f.call1(&JsValue::NULL, &JsValue::from_str(message));
        }
    }
}

/// Panics on purpose, so the test suite can check that a panic becomes a
/// rejected promise and an error event. Not part of the public API.
#[wasm_bindgen(js_name = __panicForTests)]
pub fn panic_for_tests() {
    panic!("panic requested by the test suite");
}

/// A descriptor of a sample core error of every kind (`ErrorKind::ALL`),
/// so the test suite can check that `toError` gives each its own class.
/// Not part of the public API.
#[wasm_bindgen(js_name = __errorKindsForTests)]
pub fn error_kinds_for_tests() -> Array {
    ErrorKind::ALL
        .iter()
        .map(|&kind| convert::error(&Error::sample(kind)))
        .collect()
}

/// One connection to one context: the sans-IO session and its browser
/// driver. Used through the JS `Connection` class.
#[wasm_bindgen]
pub struct WasmConnection {
    driver: Shared,
}

/// A request's id as a number, or its error's descriptor: returned, not
/// thrown, because a `Result` export costs each method a shim of its own
/// (the JS layer throws the descriptor as its error class).
fn request(result: Result<RequestId, Error>) -> JsValue {
    match result {
        Ok(id) => JsValue::from_f64(id.0 as f64),
        Err(e) => convert::error(&e),
    }
}

#[wasm_bindgen]
impl WasmConnection {
    /// A connection to `context_id` at `ws_url`, not yet started.
    /// `websocket` is a WebSocket constructor or `undefined` for the global
    /// one; `sink` receives tokens and events, `guard` wraps callbacks;
    /// `refresh_ahead` fetches the next key while connected. The timeouts
    /// and reconnect bounds (milliseconds; `undefined` keeps the core's
    /// default) have been checked by the JS layer.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ws_url: String,
        context_id: String,
        client_key: Option<String>,
        get_token: Function,
        websocket: Option<Function>,
        sink: Sink,
        guard: Function,
        refresh_ahead: bool,
        request_timeout_ms: Option<f64>,
        invocation_timeout_ms: Option<f64>,
        reconnect_min_delay_ms: Option<f64>,
        reconnect_max_delay_ms: Option<f64>,
        max_reconnect_attempts: Option<u32>,
        max_queued: Option<u32>,
        max_queued_age_ms: Option<f64>,
    ) -> WasmConnection {
        let ms = |v: f64| Duration::from_millis(v as u64);
        let mut config = default_config(ws_url);
        config.client_key = client_key;
        config.refresh_ahead = refresh_ahead;
        if let Some(v) = request_timeout_ms {
            config.request_timeout = ms(v);
        }
        if let Some(v) = invocation_timeout_ms {
            config.invocation_timeout = ms(v);
        }
        if let Some(v) = reconnect_min_delay_ms {
            config.reconnect.min_delay = ms(v);
        }
        if let Some(v) = reconnect_max_delay_ms {
            config.reconnect.max_delay = ms(v);
        }
        if max_reconnect_attempts.is_some() {
            config.reconnect.max_attempts = max_reconnect_attempts;
        }
        if let Some(n) = max_queued {
            config.max_queued_requests = n as usize;
        }
        if let Some(v) = max_queued_age_ms {
            // 0: no limit.
            config.max_queued_age = (v > 0.0).then(|| ms(v));
        }
        let host = Host {
            get_token,
            websocket,
            sink,
            guard,
        };
        WasmConnection {
            driver: Driver::new(context_id, config, host),
        }
    }

    /// The buffer the socket's message handler writes frames into (see
    /// `Sink.wrapMessage`); detached when wasm memory grows, then asked for
    /// again.
    #[wasm_bindgen(js_name = frameBuffer)]
    pub fn frame_buffer(&self) -> js_sys::Uint8Array {
        Driver::frame_buffer(&self.driver)
    }

    /// Starts connecting.
    pub fn start(&self) {
        Driver::start(&self.driver);
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

    /// `client_side_tool_responses`: `ids[i]` answered with `outputs[i]`
    /// (the JS layer has checked both are arrays of strings); returns the
    /// request id (or an error descriptor).
    #[wasm_bindgen(js_name = sendToolResponses)]
    pub fn send_tool_responses(&self, ids: Array, outputs: Array) -> JsValue {
        let responses = ids
            .iter()
            .zip(outputs.iter())
            .map(|(id, out)| ToolResponseParam {
                tool_call_id: id.as_string().unwrap_or_default(),
                response: out.as_string().unwrap_or_default(),
            })
            .collect();
        request(Driver::with_session(&self.driver, |s, now| {
            s.send_tool_responses(responses, now)
        }))
    }

    /// A response by id (streaming or recently completed), or `undefined`.
    pub fn response(&self, response_id: String) -> JsValue {
        Driver::read(&self.driver, |s| {
            s.response(&response_id)
                .map_or(JsValue::UNDEFINED, convert::response)
        })
    }

    /// The current state's name.
    pub fn state(&self) -> String {
        Driver::read(&self.driver, |s| s.state().state.as_str().to_owned())
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

    /// The current count of consecutive failed attempts.
    pub fn attempt(&self) -> u32 {
        Driver::read(&self.driver, |s| s.state().attempt)
    }

    /// The server's name, version and capabilities, once known.
    pub fn server(&self) -> JsValue {
        Driver::read(&self.driver, |s| {
            s.server().map_or(JsValue::NULL, convert::server)
        })
    }

    /// Whether the network is up (the JS layer calls it for hosts without
    /// `online`/`offline` events; browsers are followed automatically).
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
