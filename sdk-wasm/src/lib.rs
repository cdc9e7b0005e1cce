//! Browser bindings of tokenrelay: the npm package `tokenrelay`.
//!
//! This crate is a *driver* of the sans-IO [`tokenrelay::Session`]: it
//! feeds the session what the JS layer reports (a WebSocket's events, the
//! browser's or a constructor the caller passes in such as npm `ws` in
//! Node; a timer; the application's `getToken` answers) and asks the JS
//! layer for the I/O the session wants. Every protocol decision (retries,
//! backoff, resume, request timeouts, response assembly, error classes) is
//! the session's; the JS layer only reports and carries out.
//!
//! The JavaScript surface users see (`Client`, `Connection`, the error
//! classes, `on()` and the async iterator) is the hand-written ESM in
//! `js/`, a thin layer over the [`js_api::WasmConnection`] exported here:
//! idiomatic JS classes (`instanceof`-able errors, async iterators) are far
//! smaller and clearer written in JS than generated from Rust.
//!
//! Modules: [`js_api`] (what wasm-bindgen exports), `driver` (the loop that
//! feeds the session), `convert` (events and errors as JSON text for
//! `JSON.parse`), `clock` (monotonic and wall time from the host).
#![warn(missing_docs)]
// `no_std` in the browser build: with `std` linked, its panic runtime keeps
// `core::fmt`, the panic hook machinery and every panic's message and
// location in the `.wasm` whatever the code does (2.4 KB of gzip,
// docs/benchmarks.md, "Bundle size"). The handler below reports a panic's
// message when it is a plain string (a `panic!` with a literal message;
// one with arguments reads "a Rust panic") and its source location. The
// host build (lint, tests) keeps `std`.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod clock;
pub mod convert;
mod driver;
pub mod js_api;

/// The allocator of the module. dlmalloc, Rust's default on wasm32, is
/// ~7 KB of code; talc is a fraction of that and faster on the small,
/// short-lived allocations of the token path (docs/benchmarks.md, "Bundle
/// size"). The module is single-threaded (no `atomics`).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// A panic in the browser build: the message goes to the JS layer's
/// reporter with where it was raised (the message when it is a string
/// without arguments: formatting one would bring `core::fmt` back), then
/// the module traps, which the JS layer catches and turns into a
/// `PanicError` on every connection.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    js_api::report_panic(
        info.message().as_str().unwrap_or("a Rust panic"),
        info.location(),
    );
    core::arch::wasm32::unreachable()
}

#[cfg(target_arch = "wasm32")]
use alloc::string::String;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen::prelude::*;

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = parseFloat)]
    fn parse_float(text: &str) -> f64;
    /// A JS number, seen as having `toExponential()`.
    type Float;
    #[wasm_bindgen(method, js_name = toExponential)]
    fn to_exponential(this: &Float) -> String;
}

/// Runs when the module is instantiated: hands the core the host's float
/// conversions, so the `.wasm` carries no float parser or printer of its own
/// (`tokenrelay::wire::HostFloats` says why and what is checked where).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(start)]
fn start() {
    tokenrelay::wire::set_host_floats(tokenrelay::wire::HostFloats {
        parse: parse_float,
        exponential: |value, out| {
            out.push_str(
                &JsValue::from_f64(value)
                    .unchecked_into::<Float>()
                    .to_exponential(),
            )
        },
    });
}
