//! `POST /debug/faults`: the fault-injection hook of the cross-language
//! scenarios (`tests/scenarios/README.md`). Mounted only when
//! [`crate::Config::fault_injection`] is set.
//!
//! Body `{"context_id": …, "fault": "drop" | "close_1001" | "close_1011" |
//! "close_4001" | "drop_before_answer" | "drop_after_stop"}`, authorized by
//! a credential of the context's org. Every socket attached to the context
//! then gets the fault: `drop` and `close_NNNN` after the frames already
//! queued for it. Two faults wait for something instead of acting at once,
//! and are armed before the hook answers (so a message the caller sends
//! next cannot slip past its fault): `drop_before_answer` for
//! the socket's next invocation (the server takes it, then drops the
//! connection before answering), `drop_after_stop` for the next
//! `on_stop_token` the socket writes (the connection drops right after it,
//! before the notifications and the result that trail it on a
//! base-protocol server). Answer: `{"success": true, "sockets": N}`.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::JsonBody;
use crate::auth::RestPrincipal;
use crate::conversation::Fault;
use crate::error::ApiError;
use crate::state::AppState;

/// Body of `POST /debug/faults`.
#[derive(Debug, Deserialize)]
pub struct FaultRequest {
    /// The context whose sockets get the fault.
    pub context_id: String,
    /// `drop`, `drop_before_answer`, `drop_after_stop` or `close_NNNN`.
    pub fault: String,
}

/// Injects a fault into a context's sockets.
pub async fn inject(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    JsonBody(body): JsonBody<FaultRequest>,
) -> Result<Json<Value>, ApiError> {
    let fault = Fault::parse(&body.fault).ok_or_else(|| {
        ApiError::invalid_params(
            "fault must be `drop`, `drop_before_answer`, `drop_after_stop` or `close_NNNN` \
             (1000..=4999)",
        )
    })?;
    match state.store.get_context(&body.context_id).await? {
        Some(c) if c.org_id == principal.org_id() => {}
        Some(_) => return Err(ApiError::forbidden("Context does not belong to user")),
        None => {
            return Err(ApiError::not_found(format!(
                "Context with id: {} does not exist",
                body.context_id
            )))
        }
    }
    let sockets = state
        .hubs
        .get(&body.context_id)
        .map(|hub| hub.inject_fault(fault))
        .unwrap_or(0);
    tracing::info!(context_id = %body.context_id, ?fault, sockets, "fault injected");
    Ok(Json(json!({ "success": true, "sockets": sockets })))
}
