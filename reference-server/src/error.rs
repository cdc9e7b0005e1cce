//! One failure type for REST and WebSocket answers: an HTTP status, a stable
//! code and a human message. REST renders it as
//! `{"error", "success": false, "code"}`; the WebSocket renders it as
//! `result.error` + `result.code` (the `error_codes` extension).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::store::StoreError;

/// A refusal or failure, ready to be sent to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (REST) or the class of the failure (WebSocket).
    pub status: StatusCode,
    /// Stable code (`invalid_params`, `unauthorized`, …).
    pub code: &'static str,
    /// Human-readable text. Never contains a secret.
    pub message: String,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `invalid_params`.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_params", message)
    }
    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// 401 `token_expired`.
    pub fn token_expired() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "token_expired",
            "Signature has expired",
        )
    }
    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// 429 `rate_limited` with `retry-after`.
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Rate limit exceeded",
        );
        e.retry_after = Some(retry_after);
        e
    }
    /// 402 `invalid_billing` (the hosted stream-token service's code).
    pub fn payment_required() -> Self {
        Self::new(
            StatusCode::PAYMENT_REQUIRED,
            "invalid_billing",
            "No credits remaining. Please add credits to continue using the service.",
        )
    }
    /// 429 `rate_limited`: the context already has the most invocations
    /// queued that it may (`--max-pending-invocations`).
    pub fn context_busy() -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many invocations pending on this context; wait for a reply to end",
        );
        e.retry_after = Some(1);
        e
    }
    /// 503 `unavailable`: the server is saturated (e.g. every password
    /// hashing slot is busy); retry after a moment.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(1);
        e
    }
    /// 413 `too_large`: a field or body above its documented bound.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }
    /// 400 `not_connected`: a WebSocket method before `connect_to_context`.
    pub fn not_connected() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "not_connected",
            "No context set for connection",
        )
    }
    /// 500 `internal`. The detail goes to the log, not to the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
    }
    /// 403 `MISSING_CLIENT_KEY` (publishable keys, `docs/protocol.md` §4.6).
    pub fn missing_client_key() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "MISSING_CLIENT_KEY",
            "MISSING_CLIENT_KEY",
        )
    }
    /// 403 `INVALID_CLIENT_KEY`.
    pub fn invalid_client_key() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "INVALID_CLIENT_KEY",
            "INVALID_CLIENT_KEY",
        )
    }
    /// 403 `CLIENT_KEY_MISMATCH`.
    pub fn client_key_mismatch() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "CLIENT_KEY_MISMATCH",
            "CLIENT_KEY_MISMATCH",
        )
    }

    /// The same failure with another message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The code as the WebSocket `error_codes` extension names it.
    pub fn ws_code(&self) -> &'static str {
        match self.code {
            "invalid_billing" => "payment_required",
            "conflict" | "too_large" => "invalid_params",
            "unavailable" => "internal",
            other => other,
        }
    }

    /// The WebSocket `result` object of this failure.
    pub fn ws_result(&self) -> Value {
        let mut result = json!({ "success": false, "error": self.message, "code": self.ws_code() });
        // Additive: the seconds to wait before retrying, as REST's
        // `retry-after` header says for the same refusal.
        if let Some(secs) = self.retry_after {
            result["retry_after"] = json!(secs);
        }
        result
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("Not found"),
            StoreError::Conflict(what) => ApiError::conflict(what),
            StoreError::Backend(detail) => {
                tracing::error!(error = %detail, "store failure");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "success": false, "code": self.code });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        response
    }
}
