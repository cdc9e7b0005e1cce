//! See Cargo.toml: the protocol core alone, as the browser uses it, behind
//! raw imports. What each export and import carries is deliberately
//! minimal (pointers, lengths, numbers), so the module's size is the core's.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use tokenrelay::wire::{self, Json};
use tokenrelay::{
    Action, Credential, Error, ErrorKind, Event, ProviderFailure, Response, Session, SessionConfig,
    Timestamp,
};

#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

extern "C" {
    /// A string out: what kind of thing it is, then its bytes.
    fn out_str(tag: u32, ptr: *const u8, len: usize);
    /// A number out.
    fn out_num(tag: u32, value: f64);
    /// The host's `parseFloat`, as the package uses it.
    fn parse_float(ptr: *const u8, len: usize) -> f64;
    /// Opens a socket; nonzero if the constructor threw (the host has then
    /// handed over its message with `failure_text`).
    fn open_socket(ptr: *const u8, len: usize) -> u32;
    /// Sends a frame; nonzero if `send` threw (as `open_socket`).
    fn send_frame(ptr: *const u8, len: usize) -> u32;
}

/// What the host said last went wrong (an exception's message), kept for
/// the next failed `open_socket` or `send_frame`.
static FAILURE: One<String> = One(core::cell::RefCell::new(None));

/// Sets the message of the next failure `open_socket` or `send_frame`
/// reports (the package gets it as the import's return value).
#[no_mangle]
pub extern "C" fn failure_text(ptr: *mut u8, len: usize) {
    *FAILURE.0.borrow_mut() = Some(text(ptr, len));
}

fn failure() -> String {
    FAILURE.0.borrow_mut().take().unwrap_or_default()
}

fn s(tag: u32, text: &str) {
    // SAFETY: the host only reads `len` bytes at `ptr` during the call.
    unsafe { out_str(tag, text.as_ptr(), text.len()) }
}

fn n(tag: u32, value: f64) {
    // SAFETY: a plain call into the host.
    unsafe { out_num(tag, value) }
}

fn host_parse(text: &str) -> f64 {
    // SAFETY: as `out_str`.
    unsafe { parse_float(text.as_ptr(), text.len()) }
}

struct One<T>(core::cell::RefCell<Option<T>>);
// SAFETY: wasm32 without atomics has one thread.
unsafe impl<T> Sync for One<T> {}
static SESSION: One<Session> = One(core::cell::RefCell::new(None));

fn with<T>(f: impl FnOnce(&mut Session, Timestamp) -> T, now: f64) -> Option<T> {
    let mut s = SESSION.0.borrow_mut();
    let session = s.as_mut()?;
    let now = Timestamp::from_millis(now as u64);
    let t = f(session, now);
    drain(session, now);
    Some(t)
}

/// Reads `len` bytes the host wrote at `ptr` (from [`alloc_bytes`]).
fn text(ptr: *mut u8, len: usize) -> String {
    // SAFETY: the host wrote `len` bytes of UTF-8 into a buffer of that
    // capacity it got from `alloc_bytes`.
    unsafe { String::from_raw_parts(ptr, len, len) }
}

/// A buffer of `len` bytes for the host to write a string into.
#[no_mangle]
pub extern "C" fn alloc_bytes(len: usize) -> *mut u8 {
    let mut v = Vec::<u8>::with_capacity(len);
    let p = v.as_mut_ptr();
    core::mem::forget(v);
    p
}

#[no_mangle]
pub extern "C" fn new(
    url: *mut u8,
    url_len: usize,
    ctx: *mut u8,
    ctx_len: usize,
    key: *mut u8,
    key_len: usize,
    timeouts: f64,
    seed: f64,
) {
    wire::set_host_floats(wire::HostFloats {
        parse: host_parse,
        exponential: |value, out| {
            let _ = value;
            out.push('0')
        },
    });
    let mut config = SessionConfig::new(text(url, url_len));
    config.ping_interval = None;
    config.idle_timeout = None;
    if key_len > 0 {
        config.client_key = Some(text(key, key_len));
    }
    if timeouts > 0.0 {
        let ms = Duration::from_millis(timeouts as u64);
        config.request_timeout = ms;
        config.invocation_timeout = ms;
        config.reconnect.min_delay = ms;
        config.reconnect.max_delay = ms;
        config.reconnect.max_attempts = Some(timeouts as u32);
        config.max_queued_requests = timeouts as usize;
        config.max_queued_age = Some(ms);
        config.refresh_ahead = true;
    }
    *SESSION.0.borrow_mut() = Some(Session::new(text(ctx, ctx_len), config, seed as u64));
}

#[no_mangle]
pub extern "C" fn start(now: f64) {
    with(|s, now| s.start(now), now);
}

#[no_mangle]
pub extern "C" fn frame(ptr: *mut u8, len: usize, now: f64) {
    let t = text(ptr, len);
    with(|s, now| s.handle_frame(&t, now), now);
}

#[no_mangle]
pub extern "C" fn binary_frame(now: f64) {
    with(|s, now| s.handle_binary_frame(now), now);
}

#[no_mangle]
pub extern "C" fn opened(now: f64) {
    with(|s, now| s.handle_transport_open(now), now);
}

/// The socket's close, as the package's driver hands it over.
#[no_mangle]
pub extern "C" fn closed(code: u32, ptr: *mut u8, len: usize, was_open: u32, now: f64) {
    let reason = text(ptr, len);
    let code = code as u16;
    with(
        |s, now| {
            if was_open != 0 {
                let code = (code != 1005 && code != 1006).then_some(code);
                s.handle_transport_closed(code, &reason, now)
            } else {
                let message = if reason.is_empty() {
                    let mut m = String::from("the WebSocket could not be opened (close code ");
                    m.push_str(&wire::decimal(u64::from(code)));
                    m.push(')');
                    m
                } else {
                    reason
                };
                s.handle_transport_failed(Error::Transport { message }, now)
            }
        },
        now,
    );
}

#[no_mangle]
pub extern "C" fn timeout(now: f64) {
    with(|s, now| s.handle_timeout(now), now);
}

#[no_mangle]
pub extern "C" fn network(up: u32, now: f64) {
    with(|s, now| s.set_network_available(up != 0, now), now);
}

#[no_mangle]
pub extern "C" fn reconnect_now(now: f64) {
    with(|s, now| s.reconnect_now(now), now);
}

#[no_mangle]
pub extern "C" fn close() {
    with(|s, _| s.close(), 0.0);
}

/// `kind`: 0 an access token, 1 a stream token (the text `a`), 2 a
/// provider failure: its message `a`, its `code` `b` and `serverCode` `c`
/// (empty: none) and HTTP `status` (NaN: none), classified as the package
/// classifies them.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn token(
    fetch_id: f64,
    kind: u32,
    a: *mut u8,
    a_len: usize,
    b: *mut u8,
    b_len: usize,
    c: *mut u8,
    c_len: usize,
    status: f64,
    now: f64,
    unix: f64,
) {
    let t = text(a, a_len);
    let code = Some(text(b, b_len)).filter(|c| !c.is_empty());
    let server_code = Some(text(c, c_len)).filter(|c| !c.is_empty());
    let result = match kind {
        0 => Ok(Credential::access_token(t)),
        1 => Ok(Credential::stream_token(t)),
        _ => {
            let kind = code.as_deref().and_then(ErrorKind::from_name);
            let code = if kind.is_some() { server_code } else { code };
            let status = Some(status)
                .filter(|s| (0.0..=f64::from(u16::MAX)).contains(s))
                .map(|s| s as u16);
            Err(Error::from_provider(
                ProviderFailure::new(t).kind(kind).status(status).code(code),
            ))
        }
    };
    with(
        |s, now| s.handle_token(fetch_id as u64, result, now, unix as u64),
        now,
    );
}

fn request(r: Option<Result<tokenrelay::RequestId, Error>>) -> f64 {
    match r {
        Some(Ok(id)) => id.0 as f64,
        Some(Err(e)) => {
            error(&e);
            -1.0
        }
        None => -2.0,
    }
}

/// `what`: 0 add a message, 1 stop, 2 set the last messages (`a` human,
/// `b` AI), 3 answer the tool call `a` with `b`.
#[no_mangle]
pub extern "C" fn send(
    what: u32,
    a: *mut u8,
    a_len: usize,
    b: *mut u8,
    b_len: usize,
    now: f64,
) -> f64 {
    let a = text(a, a_len);
    let b = text(b, b_len);
    request(with(
        |s, now| match what {
            0 => s.send_message(a, now),
            1 => s.stop(now),
            2 => s.set_last_messages(a, (!b.is_empty()).then_some(b), now),
            _ => s.send_tool_responses(
                alloc::vec![wire::ToolResponseParam {
                    tool_call_id: a,
                    response: b,
                }],
                now,
            ),
        },
        now,
    ))
}

#[no_mangle]
pub extern "C" fn read_response(ptr: *mut u8, len: usize) {
    let id = text(ptr, len);
    if let Some(s) = SESSION.0.borrow().as_ref() {
        if let Some(r) = s.response(&id) {
            response(r);
        }
        let st = s.state();
        s_(st.state.as_str(), st.attempt);
        let t = s.stats();
        for v in [
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
        ] {
            n(30, v as f64);
        }
        n(31, s.pending() as f64);
        if let Some(i) = s.server() {
            server(i);
        }
        if let Some(t) = s.poll_timeout() {
            n(32, t.as_millis() as f64);
        }
    }
}

fn s_(state: &str, attempt: u32) {
    s(33, state);
    n(34, f64::from(attempt));
}

fn json(tag: u32, v: &Json) {
    s(tag, wire::json_str(v).as_ref());
}

fn server(i: &wire::ServerInfo) {
    s(40, &i.name);
    s(41, &i.version);
    for c in &i.capabilities {
        s(42, c);
    }
}

fn error(e: &Error) {
    s(50, e.kind().as_str());
    let mut m = String::new();
    e.push_message(&mut m);
    s(51, &m);
    if let Some(r) = e.rejection() {
        s(52, r.code.as_deref().unwrap_or(""));
        n(53, r.status.map_or(-1.0, f64::from));
    }
    match e {
        Error::RateLimited {
            retry_after: Some(d),
            ..
        } => n(54, d.as_millis() as u64 as f64),
        Error::ConnectionLost { code: Some(c), .. } => n(55, f64::from(*c)),
        _ => {}
    }
}

fn opt_id(id: Option<&tokenrelay::ResponseId>) {
    s(60, id.map_or("", |i| i));
}

fn response(r: &Response) {
    s(70, &r.id);
    n(71, r.request_id.map_or(-1.0, |i| i.0 as f64));
    s(72, &r.text);
    for c in &r.tool_calls {
        s(73, &c.tool_call_id);
        s(74, &c.tool_name);
        json(75, &c.tool_input);
    }
    for t in &r.tool_responses {
        s(76, &t.tool_call_id);
        s(77, &t.tool_name);
        s(78, &t.tool_output);
    }
    for e in &r.events {
        s(79, &e.kind);
        json(80, &e.data);
    }
    for c in &r.client_side_tool_calls {
        json(81, c);
    }
    s(82, r.status.as_str());
    if let Some(reason) = r.stop_reason {
        s(83, reason.as_str());
    }
}

fn drain(session: &mut Session, now: Timestamp) {
    loop {
        let mut progressed = false;
        while let Some(action) = session.poll_action() {
            progressed = true;
            match action {
                Action::FetchToken {
                    fetch_id,
                    context_id,
                } => {
                    n(1, fetch_id as f64);
                    s(2, &context_id);
                }
                Action::OpenSocket { url } => {
                    s(3, &url);
                    // SAFETY: as `out_str`.
                    if unsafe { open_socket(url.as_ptr(), url.len()) } != 0 {
                        let message = ["cannot open a WebSocket: ", &failure()].concat();
                        session.handle_transport_failed(Error::Config { message }, now);
                    }
                }
                Action::CloseSocket { code, reason } => {
                    n(4, f64::from(code));
                    s(5, &reason);
                }
                Action::SendPing => n(6, 0.0),
            }
        }
        while let Some(frame) = session.poll_transmit() {
            progressed = true;
            s(7, &frame);
            // SAFETY: as `out_str`.
            if unsafe { send_frame(frame.as_ptr(), frame.len()) } != 0 {
                session.handle_transport_closed(None, &failure(), now);
            }
        }
        while let Some(event) = session.poll_event() {
            progressed = true;
            match event {
                Event::StateChanged(c) => {
                    s_(c.state.as_str(), c.attempt);
                    n(10, c.retry_in.map_or(-1.0, |d| d.as_millis() as u64 as f64));
                    if let Some(e) = &c.cause {
                        error(e);
                    }
                }
                Event::Connected {
                    agent,
                    resumed,
                    server: info,
                } => {
                    n(11, f64::from(u8::from(resumed)));
                    if let Some(a) = agent {
                        for f in [
                            &a.agent_id,
                            &a.agent_name,
                            &a.agent_description,
                            &a.prompt,
                            &a.org_id,
                        ] {
                            s(12, f);
                        }
                        n(
                            13,
                            f64::from(u8::from(a.is_public) + 2 * u8::from(a.agent_speaks_first)),
                        );
                        for t in &a.tools {
                            json(14, t);
                        }
                        for t in [a.created_at, a.updated_at].into_iter().flatten() {
                            n(15, t as f64);
                        }
                        for (k, v) in &a.extra {
                            s(16, k);
                            json(17, v);
                        }
                    }
                    if let Some(i) = info {
                        server(&i);
                    }
                }
                Event::ResponseStarted {
                    response_id,
                    request_id,
                } => {
                    s(18, &response_id);
                    n(19, request_id.map_or(-1.0, |i| i.0 as f64));
                }
                Event::Token { response_id, token } => {
                    s(20, &response_id);
                    s(21, &token);
                }
                Event::ResponseComplete(r) => response(&r),
                Event::ToolCall { response_id, call } => {
                    opt_id(response_id.as_ref());
                    s(73, &call.tool_call_id);
                    s(74, &call.tool_name);
                    json(75, &call.tool_input);
                }
                Event::ToolResponse {
                    response_id,
                    result,
                } => {
                    opt_id(response_id.as_ref());
                    s(76, &result.tool_call_id);
                    s(77, &result.tool_name);
                    s(78, &result.tool_output);
                }
                Event::Events {
                    response_id,
                    events,
                } => {
                    opt_id(response_id.as_ref());
                    for e in &events {
                        s(79, &e.kind);
                        json(80, &e.data);
                    }
                }
                Event::ClientSideToolCalls {
                    response_id,
                    tool_calls,
                } => {
                    opt_id(response_id.as_ref());
                    for c in &tool_calls {
                        json(81, c);
                    }
                }
                Event::RequestAcknowledged { request_id, result } => {
                    n(22, request_id.0 as f64);
                    json(23, &result);
                }
                Event::RequestFailed {
                    request_id,
                    error: e,
                } => {
                    n(24, request_id.0 as f64);
                    error(&e);
                }
                Event::Error(e) => error(&e),
                Event::Unknown { method, params } => {
                    s(25, &method);
                    json(26, &params);
                }
                _ => n(27, 0.0),
            }
        }
        if !progressed {
            break;
        }
    }
}
