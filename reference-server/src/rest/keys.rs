//! `POST /generate-api-key` (rate limited) and `DELETE /api-key/{id}`
//! (a reference-server addition: revocation of org and client keys).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokenrelay::rest::{GenerateApiKeyRequest, GeneratedApiKey, KeyType};

use super::{rate_check, with_rate_headers, JsonBody};
use crate::auth::{mint_api_key, Principal, RestPrincipal};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::KeyKind;

/// Longest client key a request may ask for (one day): client keys are
/// meant to be short-lived.
const MAX_CLIENT_TTL: u64 = 24 * 3600;

/// Mints an org or client key for the caller's org.
pub async fn generate(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    body: Result<JsonBody<GenerateApiKeyRequest>, ApiError>,
) -> Response {
    let (decision, verdict) = rate_check(&state, &principal.subject());
    let result = match (verdict, body) {
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(JsonBody(body))) => generate_inner(&state, &principal, body).await,
    };
    with_rate_headers(decision, result)
}

async fn generate_inner(
    state: &AppState,
    principal: &Principal,
    body: GenerateApiKeyRequest,
) -> Result<Json<GeneratedApiKey>, ApiError> {
    if body.org_id != principal.org_id() {
        return Err(ApiError::forbidden(
            "org_id does not match the credential's organisation",
        ));
    }
    let kind = match body.kind {
        KeyType::Client => KeyKind::Client,
        KeyType::Org => KeyKind::Org,
        KeyType::Other => {
            return Err(ApiError::invalid_params(
                "type must be \"client\" or \"org\"",
            ))
        }
    };
    let ttl = match (kind, body.ttl_seconds) {
        (_, Some(0)) => return Err(ApiError::invalid_params("ttl_seconds must be at least 1")),
        (KeyKind::Client, Some(t)) if t > MAX_CLIENT_TTL => {
            return Err(ApiError::invalid_params(format!(
                "ttl_seconds must be at most {MAX_CLIENT_TTL} for a client key"
            )))
        }
        (_, Some(t)) => t,
        (KeyKind::Client, None) => state.config.client_key_ttl_secs,
        (KeyKind::Org, None) => state.config.org_key_ttl_secs,
    };
    if kind == KeyKind::Org && body.context_id.is_some() {
        return Err(ApiError::invalid_params(
            "only client keys can be scoped to a context",
        ));
    }
    if let Some(context_id) = &body.context_id {
        match state.store.get_context(context_id).await? {
            Some(c) if c.org_id == principal.org_id() => {}
            Some(_) => return Err(ApiError::forbidden("Context does not belong to user")),
            None => {
                return Err(ApiError::not_found(format!(
                    "Context with id: {context_id} does not exist"
                )))
            }
        }
    }
    let creator = principal.creator_id();
    let creator = match kind {
        // Observed: an org key's user_id is its own id.
        KeyKind::Org => None,
        KeyKind::Client => Some(creator.as_str()),
    };
    let minted = mint_api_key(
        state,
        principal.org_id(),
        kind,
        creator,
        body.context_id.clone(),
        ttl,
    )
    .await?;
    tracing::info!(
        api_key_id = %minted.record.api_key_id,
        kind = kind.as_str(),
        scoped = body.context_id.is_some(),
        ttl,
        "api key minted"
    );
    let r = minted.record;
    Ok(Json(GeneratedApiKey {
        api_key_id: r.api_key_id,
        org_id: r.org_id,
        token: minted.token,
        valid: r.valid,
        kind: body.kind,
        user_id: r.user_id,
        created_at: Some(r.created_at),
        updated_at: Some(r.updated_at),
    }))
}

/// Revokes an org or client key of the caller's org, at once.
pub async fn revoke(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.store.get_api_key(&id).await? {
        Some(k) if k.org_id == principal.org_id() => {
            state.store.revoke_api_key(&id).await?;
            tracing::info!(api_key_id = %id, "api key revoked");
            Ok(Json::<Value>(json!({ "success": true })).into_response())
        }
        _ => Err(ApiError::not_found(format!("API key {id} does not exist"))),
    }
}
