//! `GET /ws`: the WebSocket endpoint. The upgrade handler only collects
//! what the session needs from the HTTP request (stream token, publishable
//! key, `Origin`); everything else happens in [`session`].

pub mod session;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse as _, Response};
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Instrument;

use crate::rest::CallerIp;
use crate::state::AppState;

/// Close codes of `docs/protocol.md` §2.7.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Going away: the server shuts down (its drain began); reconnect,
    /// to another instance, and resume.
    pub const GOING_AWAY: u16 = 1001;
    /// A message above the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Internal error (or too slow to keep up); reconnect and resume.
    pub const INTERNAL: u16 = 1011;
    /// Credential invalid or expired; reconnect with a fresh one.
    pub const UNAUTHORIZED: u16 = 4001;
    /// Policy violation or too many connections.
    pub const POLICY: u16 = 4008;
}

fn next_connection_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Read and write buffer of each socket.
const SOCKET_BUFFER_BYTES: usize = 4096;

/// Query parameters `/ws` understands.
#[derive(Debug, Default, Deserialize)]
pub struct WsQuery {
    /// Single-use stream token (`pub_tok_…`), consumed at upgrade.
    pub token: Option<String>,
    /// Publishable client key (`pk_…`).
    pub client_key: Option<String>,
}

/// Upgrades to a WebSocket and runs a session on it.
pub async fn upgrade(
    State(state): State<AppState>,
    CallerIp(client_ip): CallerIp,
    query: Result<Query<WsQuery>, QueryRejection>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if state.is_shutting_down() {
        // Draining: this instance takes no new socket. A 503 (not an
        // accepted socket closed at once) costs nothing and tells a
        // balancer, and every SDK, to try again, elsewhere.
        state.metrics.refused("draining");
        return crate::error::ApiError::unavailable(
            "the server is shutting down; connect to another instance",
        )
        .into_response();
    }
    // A malformed query string is treated as absent: the handshake then
    // fails with a clear error instead of a bare HTTP 400.
    let query = query.map(|q| q.0).unwrap_or_default();
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = state.config.max_frame_bytes;
    // Small socket buffers: the library's defaults (128 KiB each way) would
    // cost megabytes per thousand idle connections. Writes are batched by
    // the session (feed, then flush), so a small write buffer loses nothing.
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_write_buffer_size(limit.saturating_mul(4).max(1 << 20))
        .on_upgrade(move |socket| {
            // One span per socket: every log line of the session carries
            // its connection number (never a credential).
            let span = tracing::info_span!("ws", conn = next_connection_id());
            session::run(state, socket, query, origin, client_ip).instrument(span)
        })
}
