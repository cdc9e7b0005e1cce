//! Browser bindings of tokenrelay: the npm package `tokenrelay`.
//!
//! This crate is a *driver* of the sans-IO [`tokenrelay::session::Session`]:
//! it feeds the session from a WebSocket (the browser's, or a constructor
//! the caller passes in, such as npm `ws` in Node), from `setTimeout` and
//! from the application's `getToken` promise, and carries out what the
//! session asks. Every protocol decision (retries, backoff, resume, request
//! timeouts, response assembly, error classes) is the session's.
//!
//! The JavaScript surface users see (`Client`, `Connection`, the error
//! classes, `on()` and the async iterator) is the hand-written ESM in
//! `js/`, a thin layer over the [`js_api::WasmConnection`] exported here:
//! idiomatic JS classes (`instanceof`-able errors, async iterators) are far
//! smaller and clearer written in JS than generated from Rust.
//!
//! Modules: [`js_api`] (what wasm-bindgen exports), `driver` (the loop that
//! feeds the session), `convert` (events and errors as JS objects), `clock`
//! (monotonic and wall time from the host).

pub mod clock;
pub mod convert;
mod driver;
pub mod js_api;
