//! Credentials: parsing the `Authorization` header, resolving a credential
//! to a [`Principal`] (with revocation checked in the store), minting keys,
//! and the REST extractor that refuses client keys.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::jwt::{Claims, JwtError, TYPE_CLIENT, TYPE_ORG, TYPE_USER};
use crate::secret::{constant_time_eq, sha256_hex, STREAM_TOKEN_PREFIX, USER_API_KEY_PREFIX};
use crate::state::AppState;
use crate::store::{ApiKeyRecord, KeyKind};
use crate::time::unix_now;

/// Who is calling, once their credential verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An org API key.
    OrgKey {
        /// Its org.
        org_id: String,
        /// Its key id.
        api_key_id: String,
    },
    /// A client API key (WebSocket only).
    ClientKey {
        /// Its org.
        org_id: String,
        /// Its key id.
        api_key_id: String,
        /// The one context it may open, if scoped.
        context_id: Option<String>,
    },
    /// A user, by access token or user API key.
    User {
        /// The user.
        user_id: String,
        /// The user's org.
        org_id: String,
        /// Set when the credential was a user API key (`sk_live_…`).
        api_key: Option<i64>,
    },
    /// A socket opened with a single-use stream token.
    StreamToken {
        /// The org that minted it.
        org_id: String,
    },
}

impl Principal {
    /// The org whose data this principal reaches.
    pub fn org_id(&self) -> &str {
        match self {
            Principal::OrgKey { org_id, .. }
            | Principal::ClientKey { org_id, .. }
            | Principal::User { org_id, .. }
            | Principal::StreamToken { org_id } => org_id,
        }
    }

    /// A stable, non-secret id of the credential (rate-limit key, logs).
    pub fn subject(&self) -> String {
        match self {
            Principal::OrgKey { api_key_id, .. } | Principal::ClientKey { api_key_id, .. } => {
                format!("key:{api_key_id}")
            }
            Principal::User {
                user_id,
                api_key: Some(id),
                ..
            } => format!("user:{user_id}:key:{id}"),
            Principal::User { user_id, .. } => format!("user:{user_id}"),
            Principal::StreamToken { org_id } => format!("stream:{org_id}"),
        }
    }

    /// The creator id recorded on what this principal creates (a
    /// context's `user_id`): the key id of an org key (as observed), the
    /// user's id for a user.
    pub fn creator_id(&self) -> String {
        match self {
            Principal::OrgKey { api_key_id, .. } | Principal::ClientKey { api_key_id, .. } => {
                api_key_id.clone()
            }
            Principal::User { user_id, .. } => user_id.clone(),
            Principal::StreamToken { org_id } => org_id.clone(),
        }
    }

    /// Label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::OrgKey { .. } => "org_key",
            Principal::ClientKey { .. } => "client_key",
            Principal::User { api_key: None, .. } => "user_token",
            Principal::User { .. } => "user_api_key",
            Principal::StreamToken { .. } => "stream_token",
        }
    }

    /// True for browser-side credentials, which publishable keys govern.
    pub fn is_browser_credential(&self) -> bool {
        matches!(
            self,
            Principal::ClientKey { .. } | Principal::StreamToken { .. }
        )
    }
}

/// A credential that stopped working: sent to every open socket, so one
/// that was opened with it closes at once (4001).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// An org or client key (`DELETE /api-key/{id}`).
    ApiKey(String),
    /// A user API key (`DELETE /auth/api-keys/{id}`).
    UserApiKey(i64),
}

impl Principal {
    /// True when `revoked` is this principal's credential.
    pub fn is_revoked_by(&self, revoked: &Revoked) -> bool {
        match (self, revoked) {
            (
                Principal::OrgKey { api_key_id, .. } | Principal::ClientKey { api_key_id, .. },
                Revoked::ApiKey(id),
            ) => api_key_id == id,
            (
                Principal::User {
                    api_key: Some(key), ..
                },
                Revoked::UserApiKey(id),
            ) => key == id,
            _ => false,
        }
    }

    /// The subject recorded as `minted_by` on keys this principal mints,
    /// so revoking it can revoke them too.
    pub fn minter(&self) -> String {
        match self {
            Principal::OrgKey { api_key_id, .. } | Principal::ClientKey { api_key_id, .. } => {
                format!("key:{api_key_id}")
            }
            Principal::User {
                api_key: Some(id), ..
            } => format!("user_key:{id}"),
            Principal::User { user_id, .. } => format!("user:{user_id}"),
            Principal::StreamToken { org_id } => format!("stream:{org_id}"),
        }
    }
}

/// Checks again that a principal's credential still stands (a socket
/// outlives its key's expiry, never its revocation). The store is the
/// truth, so this holds across server instances; the [`Revoked`]
/// broadcast only makes it immediate for idle sockets.
pub async fn still_valid(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    let revoked = || ApiError::unauthorized("API key has been revoked");
    match principal {
        Principal::OrgKey { api_key_id, .. } | Principal::ClientKey { api_key_id, .. } => {
            match state.store.get_api_key(api_key_id).await? {
                Some(k) if k.valid => Ok(()),
                _ => Err(revoked()),
            }
        }
        Principal::User {
            api_key: Some(id), ..
        } => match state.store.get_user_api_key(*id).await? {
            Some(_) => Ok(()),
            None => Err(revoked()),
        },
        Principal::User { user_id, .. } => match state.store.get_user(user_id).await? {
            Some(_) => Ok(()),
            None => Err(ApiError::unauthorized("Invalid token")),
        },
        Principal::StreamToken { .. } => Ok(()),
    }
}

/// A refused credential: the answer, and a fixed reason for the metric.
#[derive(Debug, Clone)]
pub struct AuthFailure {
    /// Metric label (`missing`, `expired`, `revoked`, …).
    pub reason: &'static str,
    /// What the client is told.
    pub error: ApiError,
}

impl AuthFailure {
    fn new(reason: &'static str, error: ApiError) -> Self {
        AuthFailure { reason, error }
    }
}

/// The credential in an `Authorization` value: `Bearer X` or bare `X`
/// (the hosted service's own Python client sends it bare).
pub fn credential_from_header(value: &str) -> &str {
    let value = value.trim();
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    }
}

/// Resolves a credential. Every failure is counted in the metrics by reason.
pub async fn authenticate(state: &AppState, credential: &str) -> Result<Principal, AuthFailure> {
    let result = resolve(state, credential).await;
    if let Err(f) = &result {
        state.metrics.auth_failure(f.reason);
        tracing::info!(reason = f.reason, "credential refused");
    }
    result
}

async fn resolve(state: &AppState, credential: &str) -> Result<Principal, AuthFailure> {
    if credential.is_empty() {
        return Err(AuthFailure::new(
            "missing",
            ApiError::unauthorized("access_token required"),
        ));
    }
    if credential.starts_with(USER_API_KEY_PREFIX) {
        return resolve_user_api_key(state, credential).await;
    }
    if credential.starts_with(STREAM_TOKEN_PREFIX) {
        return Err(AuthFailure::new(
            "stream_token_misused",
            ApiError::unauthorized("Stream tokens only open a WebSocket (`/ws?token=`)"),
        ));
    }
    let claims = state.jwt.verify(credential).map_err(|e| {
        let error = match e {
            JwtError::Expired => ApiError::token_expired(),
            _ => ApiError::unauthorized("Invalid token"),
        };
        AuthFailure::new(e.reason(), error)
    })?;
    match claims.kind.as_str() {
        TYPE_ORG | TYPE_CLIENT => resolve_api_key(state, &claims).await,
        TYPE_USER => {
            let user = state
                .store
                .get_user(&claims.user_id)
                .await
                .map_err(|e| AuthFailure::new("store", e.into()))?;
            match user {
                Some(u) => Ok(Principal::User {
                    user_id: u.user_id,
                    org_id: u.org_id,
                    api_key: None,
                }),
                None => Err(AuthFailure::new(
                    "unknown_user",
                    ApiError::unauthorized("Invalid token"),
                )),
            }
        }
        _ => Err(AuthFailure::new(
            "wrong_type",
            ApiError::unauthorized("This token is not an API key"),
        )),
    }
}

async fn resolve_api_key(state: &AppState, claims: &Claims) -> Result<Principal, AuthFailure> {
    let Some(key_id) = claims.api_key_id.as_deref() else {
        return Err(AuthFailure::new(
            "malformed",
            ApiError::unauthorized("Invalid token"),
        ));
    };
    let record = state
        .store
        .get_api_key(key_id)
        .await
        .map_err(|e| AuthFailure::new("store", e.into()))?;
    let Some(record) = record else {
        return Err(AuthFailure::new(
            "unknown_key",
            ApiError::unauthorized("Invalid API key"),
        ));
    };
    // The claims must agree with the record: a signed token can only name
    // the key it was minted as.
    if !record.valid {
        return Err(AuthFailure::new(
            "revoked",
            ApiError::unauthorized("API key has been revoked"),
        ));
    }
    if record.org_id != claims.org_id || record.kind.as_str() != claims.kind {
        return Err(AuthFailure::new(
            "claims_mismatch",
            ApiError::unauthorized("Invalid API key"),
        ));
    }
    Ok(match record.kind {
        KeyKind::Org => Principal::OrgKey {
            org_id: record.org_id,
            api_key_id: record.api_key_id,
        },
        KeyKind::Client => Principal::ClientKey {
            org_id: record.org_id,
            api_key_id: record.api_key_id,
            context_id: record.context_id,
        },
    })
}

async fn resolve_user_api_key(state: &AppState, key: &str) -> Result<Principal, AuthFailure> {
    let hash = sha256_hex(key);
    let record = state
        .store
        .find_user_api_key(&hash)
        .await
        .map_err(|e| AuthFailure::new("store", e.into()))?;
    // The lookup is by hash (an index cannot be constant time); the final
    // comparison is, so nothing about a near-miss leaks.
    let record = match record {
        Some(r) if constant_time_eq(&r.key_hash, &hash) => r,
        _ => {
            return Err(AuthFailure::new(
                "unknown_key",
                ApiError::unauthorized("Invalid token or API key"),
            ))
        }
    };
    let user = state
        .store
        .get_user(&record.user_id)
        .await
        .map_err(|e| AuthFailure::new("store", e.into()))?
        .ok_or_else(|| {
            AuthFailure::new(
                "unknown_user",
                ApiError::unauthorized("Invalid token or API key"),
            )
        })?;
    Ok(Principal::User {
        user_id: user.user_id,
        org_id: user.org_id,
        api_key: Some(record.id),
    })
}

/// A freshly minted org or client key: its record and the JWT.
pub struct MintedKey {
    /// The store record.
    pub record: ApiKeyRecord,
    /// The JWT (shown to the caller, never stored or logged).
    pub token: String,
}

/// Mints and records an org or client API key.
pub async fn mint_api_key(
    state: &AppState,
    org_id: &str,
    kind: KeyKind,
    creator: Option<&str>,
    context_id: Option<String>,
    ttl_secs: u64,
    minted_by: Option<String>,
) -> Result<MintedKey, ApiError> {
    let now = unix_now();
    let api_key_id = uuid::Uuid::new_v4().to_string();
    // Observed: an org key's user_id is the key's own id.
    let user_id = match kind {
        KeyKind::Org => creator.unwrap_or(&api_key_id).to_owned(),
        KeyKind::Client => creator.unwrap_or(org_id).to_owned(),
    };
    let exp = now.saturating_add(ttl_secs.min(i64::MAX as u64 / 2) as i64);
    let record = ApiKeyRecord {
        api_key_id: api_key_id.clone(),
        org_id: org_id.to_owned(),
        kind,
        user_id: user_id.clone(),
        client_id: None,
        context_id: context_id.clone(),
        valid: true,
        created_at: now,
        updated_at: now,
        expires_at: exp,
        minted_by,
    };
    state.store.insert_api_key(&record).await?;
    let token = state.jwt.sign(&Claims {
        api_key_id: Some(api_key_id),
        org_id: org_id.to_owned(),
        kind: kind.as_str().to_owned(),
        user_id,
        client_id: None,
        context_id,
        iat: now,
        exp,
    });
    Ok(MintedKey { record, token })
}

/// A REST caller: any credential except a client API key or stream token.
#[derive(Debug, Clone)]
pub struct RestPrincipal(pub Principal);

impl FromRequestParts<AppState> for RestPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let principal = authenticate(state, credential_from_header(header))
            .await
            .map_err(|f| f.error)?;
        if let Principal::ClientKey { .. } = principal {
            state.metrics.auth_failure("client_key_on_rest");
            return Err(ApiError::forbidden(
                "Client API keys can only open a WebSocket; they cannot call REST routes",
            ));
        }
        Ok(RestPrincipal(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_bare_credentials() {
        assert_eq!(credential_from_header("Bearer abc"), "abc");
        assert_eq!(credential_from_header("bearer  abc "), "abc");
        assert_eq!(credential_from_header("abc"), "abc");
        assert_eq!(credential_from_header(""), "");
    }
}
