//! The REST surface of `docs/protocol.md` §4, plus `/health` and
//! `/metrics`. Every failure is `{error, success: false, code}` with the
//! status carrying the class (see [`ApiError`]).

pub mod agents;
pub mod client_keys;
pub mod contexts;
pub mod faults;
pub mod keys;
pub mod stream_tokens;
pub mod users;

use std::time::Instant;

use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::ratelimit::RateDecision;
use crate::state::AppState;

/// Every route of the server, WebSocket included.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    if state.config.fault_injection {
        router = router.route("/debug/faults", post(faults::inject));
    }
    if state.config.metrics_public {
        router = router.route("/metrics", get(metrics));
    }
    let limits = &state.config.limits;
    router
        .route("/agent", post(agents::create))
        .route("/agent/{id}", get(agents::get).delete(agents::delete))
        .route("/agents", get(agents::list))
        .route("/context", post(contexts::create))
        .route("/context/{id}", get(contexts::get).delete(contexts::delete))
        .route("/chat", post(contexts::chat))
        .route("/generate-api-key", post(keys::generate))
        .route("/api-key/{id}", delete(keys::revoke))
        .route("/api-keys", get(keys::list))
        .route("/auth/register", post(users::register))
        .route("/auth/login", post(users::login))
        .route("/auth/me", get(users::me))
        .route(
            "/auth/api-keys",
            post(users::create_api_key).get(users::list_api_keys),
        )
        .route("/auth/api-keys/{id}", delete(users::delete_api_key))
        .route("/api/v1/token", get(stream_tokens::mint))
        .route(
            "/client-key",
            post(client_keys::create).delete(client_keys::delete),
        )
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/ws", get(crate::ws::upgrade))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            record_latency,
        ))
        .fallback(|| async { ApiError::not_found("No such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            close_when_draining,
        ))
        .layer(axum::middleware::from_fn(access_log))
        // A body must be small and arrive in time; the header deadline is
        // the accept loop's.
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.http_header_timeout,
        ))
        .with_state(state)
}

/// `/metrics` alone, for its own listener (`metrics_bind`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn record_latency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    if route != "/ws" {
        state.metrics.request_latency(&route, started.elapsed());
    }
    response
}

/// While the server drains, every answer carries `Connection: close`, so
/// a keep-alive client opens its next connection anew (through its
/// balancer, to another instance) instead of reusing this one.
async fn close_when_draining(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    // Not on a WebSocket's 101: that connection is the socket.
    if state.is_shutting_down() && response.status() != axum::http::StatusCode::SWITCHING_PROTOCOLS
    {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    response
}

/// Response header carrying the request id the access log names.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// One access-log line per HTTP request (target
/// `tokenrelay_server::access`): method, path without its query (a stream
/// token rides there), status, milliseconds and a request id, which the
/// response echoes in `x-request-id`. No header, body or credential is
/// ever logged. A WebSocket upgrade logs its `101` when it is answered.
async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    tracing::info!(
        target: "tokenrelay_server::access",
        request_id = %id,
        method = %method,
        path = %path,
        status,
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Ready to serve: the store answers and the server is not draining.
/// (Alive is `/health`.)
async fn ready(State(state): State<AppState>) -> Response {
    if state.is_shutting_down() {
        // A balancer probing readiness takes the instance out of rotation
        // while its replies finish.
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "draining",
                "error": "the server is shutting down",
            })),
        )
            .into_response();
    }
    match state.store.get_context("readiness-probe").await {
        Ok(_) => axum::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({
                    "status": "unavailable",
                    "error": "the store does not answer",
                })),
            )
                .into_response()
        }
    }
}

async fn health(State(state): State<AppState>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "connections": state.metrics.open_connections(),
    }))
    .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// A JSON body whose rejection is an [`ApiError`] (400 `invalid_params`
/// naming what is wrong), not axum's plain-text rejection.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::too_large(rejection.body_text()))
            }
            Err(rejection) => Err(ApiError::invalid_params(rejection.body_text())),
        }
    }
}

/// Counts the request against the caller's limit; the decision goes on the
/// answer with [`with_rate_headers`].
pub async fn rate_check(state: &AppState, subject: &str) -> (RateDecision, Result<(), ApiError>) {
    let decision = state.rate_limiter.check(subject).await;
    let verdict = match decision.retry_after {
        Some(secs) => {
            tracing::info!(subject, "rate limited");
            Err(ApiError::rate_limited(secs))
        }
        None => Ok(()),
    };
    (decision, verdict)
}

/// Counts a request against the per-address limit of `route_group`
/// (`auth`: register and login together).
pub async fn ip_rate_check(
    state: &AppState,
    route_group: &str,
    ip: &str,
    limit: u32,
) -> Result<(), ApiError> {
    let decision = state
        .rate_limiter
        .check_with_limit(&format!("{route_group}-ip:{ip}"), limit)
        .await;
    match decision.retry_after {
        Some(secs) => {
            state.metrics.refused("auth_per_ip");
            tracing::info!(route_group, "rate limited by address");
            Err(ApiError::rate_limited(secs))
        }
        None => Ok(()),
    }
}

/// The caller's address for per-IP limits (see
/// [`crate::admission::client_ip`]).
pub fn caller_ip(state: &AppState, parts: &axum::http::request::Parts) -> String {
    crate::admission::client_ip(
        parts
            .extensions
            .get::<crate::admission::PeerAddr>()
            .copied(),
        &parts.headers,
        state.config.client_ip_header.as_deref(),
    )
}

/// The caller's address, as an extractor.
pub struct CallerIp(pub String);

impl axum::extract::FromRequestParts<AppState> for CallerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(CallerIp(caller_ip(state, parts)))
    }
}

/// Refuses a field above `max` bytes of JSON (or text), naming it.
pub fn check_size(field: &str, len: usize, max: usize) -> Result<(), ApiError> {
    if len > max {
        return Err(ApiError::too_large(format!(
            "{field} is {len} bytes; at most {max} are accepted"
        )));
    }
    Ok(())
}

/// Adds `x-ratelimit-limit` / `x-ratelimit-remaining` to an answer.
pub fn with_rate_headers(decision: RateDecision, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    response
}
