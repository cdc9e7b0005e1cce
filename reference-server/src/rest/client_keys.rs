//! `POST /client-key` and `DELETE /client-key`: the org's publishable key
//! (`pk_` + a JWT naming the key record), bound to allowed origins.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use tokenrelay::rest::{NewClientKey, PublishableKey};

use super::JsonBody;
use crate::auth::RestPrincipal;
use crate::error::ApiError;
use crate::jwt::{Claims, TYPE_PUBLISHABLE};
use crate::secret::PUBLISHABLE_KEY_PREFIX;
use crate::state::AppState;
use crate::store::PublishableKeyRecord;
use crate::time::unix_now;

/// Publishable keys do not expire; they are rotated. 100 years.
const PUBLISHABLE_TTL: i64 = 100 * 365 * 24 * 3600;

fn normalize_origin(origin: &str) -> Result<String, ApiError> {
    let origin = origin.trim().trim_end_matches('/');
    let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
        && !origin.contains(char::is_whitespace)
        && origin
            .split("://")
            .nth(1)
            .is_some_and(|h| !h.is_empty() && !h.contains('/'));
    if valid {
        Ok(origin.to_owned())
    } else {
        Err(ApiError::invalid_params(format!(
            "allowed origin `{origin}` is not of the form scheme://host[:port]"
        )))
    }
}

/// Creates (or rotates) the org's publishable key.
pub async fn create(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    JsonBody(body): JsonBody<NewClientKey>,
) -> Result<Json<PublishableKey>, ApiError> {
    let allowed_origins = body
        .allowed_origins
        .iter()
        .map(|o| normalize_origin(o))
        .collect::<Result<Vec<_>, _>>()?;
    let now = unix_now();
    let record = PublishableKeyRecord {
        org_id: principal.org_id().to_owned(),
        key_id: uuid::Uuid::new_v4().to_string(),
        allowed_origins,
        created_at: now,
    };
    state.store.put_publishable_key(&record).await?;
    let jwt = state.jwt.sign(&Claims {
        api_key_id: Some(record.key_id.clone()),
        org_id: record.org_id.clone(),
        kind: TYPE_PUBLISHABLE.into(),
        user_id: principal.subject(),
        client_id: None,
        context_id: None,
        iat: now,
        exp: now + PUBLISHABLE_TTL,
    });
    tracing::info!(org_id = %record.org_id, origins = record.allowed_origins.len(), "publishable key created");
    Ok(Json(PublishableKey {
        client_key: format!("{PUBLISHABLE_KEY_PREFIX}{jwt}"),
        allowed_origins: record.allowed_origins,
    }))
}

/// Revokes the org's publishable key.
pub async fn delete(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
) -> Result<Json<Value>, ApiError> {
    if state
        .store
        .delete_publishable_key(principal.org_id())
        .await?
    {
        Ok(Json(json!({ "success": true })))
    } else {
        Err(ApiError::not_found("This organisation has no client key"))
    }
}
