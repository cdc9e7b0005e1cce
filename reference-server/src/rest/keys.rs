//! `POST /generate-api-key` (rate limited), and two reference-server
//! additions: `DELETE /api-key/{id}` (revocation of org and client keys,
//! with what they minted) and `GET /api-keys` (an org's keys, metadata
//! only).
//!
//! Who may mint what: any REST credential of an org mints client keys;
//! org keys are minted by an org key or by the org's owner (a user
//! credential of the org), never longer than `max_org_key_ttl_secs`. Every
//! key records the credential that minted it, and revoking (or deleting)
//! that credential revokes what it minted, recursively.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokenrelay::rest::{GenerateApiKeyRequest, GeneratedApiKey, KeyType};

use super::{rate_check, with_rate_headers, JsonBody};
use crate::auth::{mint_api_key, Principal, RestPrincipal, Revoked};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{ApiKeyRecord, KeyKind};

/// Longest client key a request may ask for (one day): client keys are
/// meant to be short-lived.
const MAX_CLIENT_TTL: u64 = 24 * 3600;

/// Mints an org or client key for the caller's org.
pub async fn generate(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    body: Result<JsonBody<GenerateApiKeyRequest>, ApiError>,
) -> Response {
    let (decision, verdict) = rate_check(&state, &principal.subject()).await;
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
        // `Other`, or a kind the core learns later: not one this server mints.
        _ => {
            return Err(ApiError::invalid_params(
                "type must be \"client\" or \"org\"",
            ))
        }
    };
    if kind == KeyKind::Org
        && !matches!(principal, Principal::OrgKey { .. } | Principal::User { .. })
    {
        return Err(ApiError::forbidden(
            "Only an org key or the org's owner can mint org keys",
        ));
    }
    let max_org_ttl = state.config.limits.max_org_key_ttl_secs;
    let ttl = match (kind, body.ttl_seconds) {
        (_, Some(0)) => return Err(ApiError::invalid_params("ttl_seconds must be at least 1")),
        (KeyKind::Client, Some(t)) if t > MAX_CLIENT_TTL => {
            return Err(ApiError::invalid_params(format!(
                "ttl_seconds must be at most {MAX_CLIENT_TTL} for a client key"
            )))
        }
        (KeyKind::Org, Some(t)) if t > max_org_ttl => {
            return Err(ApiError::invalid_params(format!(
                "ttl_seconds must be at most {max_org_ttl} for an org key"
            )))
        }
        (_, Some(t)) => t,
        (KeyKind::Client, None) => state.config.client_key_ttl_secs,
        (KeyKind::Org, None) => state.config.org_key_ttl_secs.min(max_org_ttl),
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
        Some(principal.minter()),
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
    let mut key = GeneratedApiKey::new(r.api_key_id, r.org_id, minted.token, body.kind);
    key.valid = r.valid;
    key.user_id = r.user_id;
    key.created_at = Some(r.created_at);
    key.updated_at = Some(r.updated_at);
    Ok(Json(key))
}

/// Revokes an org or client key of the caller's org, at once: sockets
/// opened with it close (4001), and the keys it minted are revoked too.
pub async fn revoke(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.store.get_api_key(&id).await? {
        Some(k) if k.org_id == principal.org_id() => {
            state.store.revoke_api_key(&id).await?;
            state.announce_revoked(Revoked::ApiKey(id.clone()));
            let cascaded = revoke_minted_by(&state, &format!("key:{id}")).await?;
            tracing::info!(api_key_id = %id, cascaded, "api key revoked");
            Ok(
                Json::<Value>(json!({ "success": true, "revoked_minted": cascaded }))
                    .into_response(),
            )
        }
        _ => Err(ApiError::not_found(format!("API key {id} does not exist"))),
    }
}

/// Most keys one revocation walks through (a chain of keys minting keys
/// is bounded by the rate limit anyway; this bounds one request's work).
const MAX_CASCADE: usize = 100_000;

/// Revokes every key minted by `minter`, then what those minted, and so
/// on; each is announced to open sockets. Returns how many were revoked.
pub async fn revoke_minted_by(state: &AppState, minter: &str) -> Result<usize, ApiError> {
    let mut pending = vec![minter.to_owned()];
    let mut revoked = 0usize;
    while let Some(minter) = pending.pop() {
        for id in state.store.revoke_keys_minted_by(&minter).await? {
            state.announce_revoked(Revoked::ApiKey(id.clone()));
            pending.push(format!("key:{id}"));
            revoked += 1;
        }
        if revoked >= MAX_CASCADE {
            tracing::warn!(revoked, "revocation cascade stopped at its bound");
            break;
        }
    }
    Ok(revoked)
}

/// Query of `GET /api-keys`.
#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    /// `org` (default) or `client`.
    #[serde(default)]
    kind: Option<String>,
    /// At most this many, newest first (default and cap 1000).
    #[serde(default)]
    limit: Option<usize>,
}

/// One key's metadata; the key itself is never stored, so never listed.
fn key_json(k: &ApiKeyRecord) -> Value {
    json!({
        "api_key_id": k.api_key_id,
        "type": k.kind.as_str(),
        "org_id": k.org_id,
        "context_id": k.context_id,
        "valid": k.valid,
        "created_at": k.created_at,
        "expires_at": k.expires_at,
        "minted_by": k.minted_by,
    })
}

/// The caller's org's keys of one kind (metadata only), newest first.
pub async fn list(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let kind = match query.kind.as_deref() {
        None | Some("org") => KeyKind::Org,
        Some("client") => KeyKind::Client,
        Some(_) => {
            return Err(ApiError::invalid_params(
                "kind must be \"org\" or \"client\"",
            ))
        }
    };
    let limit = query.limit.unwrap_or(1000).clamp(1, 1000);
    let keys = state
        .store
        .list_api_keys(principal.org_id(), kind, limit)
        .await?;
    Ok(Json(json!({
        "api_keys": keys.iter().map(key_json).collect::<Vec<_>>(),
    })))
}
