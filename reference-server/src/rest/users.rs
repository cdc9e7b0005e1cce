//! People and their API keys: `/auth/register`, `/auth/login`, `/auth/me`,
//! `/auth/api-keys` (create is rate limited), `/auth/api-keys/{id}`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokenrelay::rest::{
    CreatedUserApiKey, Credentials, DeletedMessage, LoginResponse, NewUserApiKey, User, UserApiKey,
    UserApiKeyList,
};

use super::{ip_rate_check, rate_check, with_rate_headers, CallerIp, JsonBody};
use crate::auth::{Principal, RestPrincipal};
use crate::error::ApiError;
use crate::jwt::{Claims, TYPE_USER};
use crate::password;
use crate::secret::{random_token, sha256_hex, USER_API_KEY_PREFIX};
use crate::state::AppState;
use crate::store::{OrgRecord, UserApiKeyRecord, UserRecord};
use crate::time::{iso8601, unix_now};

/// Longest username, in characters after normalisation.
pub const MAX_USERNAME_CHARS: usize = 128;

/// The one form of a username that is stored and compared: Unicode NFKC
/// (so `ｅve` and `eve` are one name), lower case, trimmed. Without it two
/// accounts could look identical.
pub fn normalize_username(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    name.trim().nfkc().collect::<String>().to_lowercase()
}

/// The user, with `org_id` (an additive field clients may ignore): the
/// personal org that `POST /generate-api-key` and friends need.
fn user_body(u: &UserRecord) -> User {
    let mut user = User::new(u.user_id.clone(), u.username.clone());
    user.created_at = Some(u.created_at);
    user.updated_at = Some(u.created_at);
    user.org_id = Some(u.org_id.clone());
    user
}

fn key_body(k: &UserApiKeyRecord) -> UserApiKey {
    UserApiKey::new(
        k.id.to_string(),
        k.nickname.clone(),
        iso8601(k.created_at),
        iso8601(k.updated_at),
    )
}

/// The user behind a REST credential; org keys are not people.
fn user_id(principal: &Principal) -> Result<&str, ApiError> {
    match principal {
        Principal::User { user_id, .. } => Ok(user_id),
        _ => Err(ApiError::forbidden(
            "This route needs a user access token or user API key",
        )),
    }
}

/// Runs `work` (an argon2 hash or verification) on a blocking thread once
/// a hashing slot is free. argon2id is deliberately costly (a core and
/// ~19 MiB each), so the slots bound what a flood of logins can take; a
/// request that waits longer than the queue timeout gets a 503.
async fn with_hash_slot<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let wait = state.config.limits.password_hash_queue_timeout;
    let _permit = match tokio::time::timeout(wait, state.hash_slots.acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            state.metrics.refused("password_hash_busy");
            return Err(ApiError::unavailable(
                "Too many sign-ins at once; retry in a moment",
            ));
        }
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::internal())
}

async fn hash_password(state: &AppState, password: String) -> Result<String, ApiError> {
    let cost = state.config.password_hashing;
    with_hash_slot(state, move || password::hash(&password, cost))
        .await?
        .ok_or_else(ApiError::internal)
}

/// Refuses a username or password outside its bounds before any hashing.
fn check_credentials(state: &AppState, username: &str, password: &str) -> Result<(), ApiError> {
    if username.is_empty() || username.chars().count() > MAX_USERNAME_CHARS {
        return Err(ApiError::invalid_params(format!(
            "username must be 1 to {MAX_USERNAME_CHARS} characters"
        )));
    }
    let max = state.config.limits.max_password_chars;
    if password.chars().count() > max {
        return Err(ApiError::invalid_params(format!(
            "password must be at most {max} characters"
        )));
    }
    Ok(())
}

/// Creates an account, and a personal org for it with the configured
/// starting credits. Closed unless `open_registration` is set; limited per
/// client address.
pub async fn register(
    State(state): State<AppState>,
    CallerIp(ip): CallerIp,
    body: Result<JsonBody<Credentials>, ApiError>,
) -> Result<Json<User>, ApiError> {
    let limits = &state.config.limits;
    if !limits.open_registration {
        state.metrics.refused("registration_closed");
        return Err(ApiError::forbidden(
            "Registration is closed on this server; ask its operator for an account",
        ));
    }
    ip_rate_check(&state, "auth", &ip, limits.auth_per_ip_per_minute).await?;
    let JsonBody(body) = body?;
    let username = normalize_username(&body.username);
    check_credentials(&state, &username, &body.password)?;
    let min = limits.min_password_chars;
    if body.password.chars().count() < min {
        return Err(ApiError::invalid_params(format!(
            "password must be at least {min} characters"
        )));
    }
    if state.store.get_user_by_name(&username).await?.is_some() {
        return Err(ApiError::conflict("Username already registered"));
    }
    let password_hash = hash_password(&state, body.password).await?;
    let now = unix_now();
    let org = OrgRecord {
        org_id: uuid::Uuid::new_v4().to_string(),
        name: format!("{username}'s org"),
        // A stranger's org never starts unlimited: with an upstream engine
        // every credit is the operator's money.
        credits: Some(limits.registration_credits),
        created_at: now,
    };
    let user = UserRecord {
        user_id: uuid::Uuid::new_v4().to_string(),
        username,
        password_hash,
        org_id: org.org_id.clone(),
        created_at: now,
    };
    // The user first: a lost race on the name leaves no orphan org.
    state.store.create_user(&user).await?;
    state.store.create_org(&org).await?;
    tracing::info!(user_id = %user.user_id, "user registered");
    Ok(Json(user_body(&user)))
}

/// Exchanges a username and password for an access token. Limited per
/// client address, and per address and username: guessing is slowed down,
/// but a stranger elsewhere cannot lock the owner out by failing on
/// purpose (their bucket is not the owner's).
pub async fn login(
    State(state): State<AppState>,
    CallerIp(ip): CallerIp,
    body: Result<JsonBody<Credentials>, ApiError>,
) -> Response {
    if let Err(e) = ip_rate_check(
        &state,
        "auth",
        &ip,
        state.config.limits.auth_per_ip_per_minute,
    )
    .await
    {
        return e.into_response();
    }
    let mut body = match body {
        Ok(JsonBody(body)) => body,
        Err(e) => return e.into_response(),
    };
    let typed = std::mem::take(&mut body.username);
    body.username = normalize_username(&typed);
    if let Err(e) = check_credentials(&state, &body.username, &body.password) {
        return e.into_response();
    }
    let (decision, verdict) = rate_check(&state, &format!("login:{ip}:{}", body.username)).await;
    let result = match verdict {
        Err(e) => Err(e),
        Ok(()) => login_inner(&state, body, typed.trim()).await,
    };
    with_rate_headers(decision, result)
}

async fn login_inner(
    state: &AppState,
    body: Credentials,
    typed: &str,
) -> Result<Json<LoginResponse>, ApiError> {
    let mut user = state.store.get_user_by_name(&body.username).await?;
    // Accounts registered before names were normalised are stored as they
    // were typed: find them that way too, so an upgrade locks nobody out.
    if user.is_none() && typed != body.username {
        user = state.store.get_user_by_name(typed).await?;
    }
    // Verify against a dummy hash for unknown names, so timing does not
    // tell which usernames exist.
    let stored = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| state.dummy_password_hash.clone());
    let password = body.password;
    let ok = with_hash_slot(state, move || password::verify(&password, &stored)).await?;
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            state.metrics.auth_failure("bad_password");
            return Err(ApiError::unauthorized("Incorrect username or password"));
        }
    };
    let now = unix_now();
    let ttl = state.config.user_token_ttl_secs;
    let access_token = state.jwt.sign(&Claims {
        api_key_id: None,
        org_id: user.org_id.clone(),
        kind: TYPE_USER.into(),
        user_id: user.user_id.clone(),
        client_id: None,
        context_id: None,
        iat: now,
        exp: now + ttl as i64,
    });
    tracing::info!(user_id = %user.user_id, "user logged in");
    Ok(Json(LoginResponse::new(
        access_token,
        ttl,
        user_body(&user),
    )))
}

/// The caller's account.
pub async fn me(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
) -> Result<Json<User>, ApiError> {
    let id = user_id(&principal)?;
    let user = state
        .store
        .get_user(id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("Invalid token"))?;
    Ok(Json(user_body(&user)))
}

/// Creates a user API key; the key is in this answer only.
pub async fn create_api_key(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    body: Result<JsonBody<NewUserApiKey>, ApiError>,
) -> Response {
    let (decision, verdict) = rate_check(&state, &principal.subject()).await;
    let result = match (verdict, body) {
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(JsonBody(body))) => create_api_key_inner(&state, &principal, body).await,
    };
    with_rate_headers(decision, result)
}

async fn create_api_key_inner(
    state: &AppState,
    principal: &Principal,
    body: NewUserApiKey,
) -> Result<Json<CreatedUserApiKey>, ApiError> {
    let user_id = user_id(principal)?;
    let nickname = body.nickname.trim();
    if nickname.is_empty() || nickname.len() > 128 {
        return Err(ApiError::invalid_params(
            "nickname must be 1 to 128 characters",
        ));
    }
    let key = random_token(USER_API_KEY_PREFIX);
    let record = state
        .store
        .create_user_api_key(user_id, nickname, &sha256_hex(&key), unix_now())
        .await?;
    tracing::info!(user_id, key_id = record.id, "user api key created");
    Ok(Json(CreatedUserApiKey::new(
        record.id.to_string(),
        record.nickname,
        key,
        iso8601(record.created_at),
        iso8601(record.updated_at),
    )))
}

/// The caller's keys, without the keys.
pub async fn list_api_keys(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
) -> Result<Json<UserApiKeyList>, ApiError> {
    let user_id = user_id(&principal)?;
    let keys = state.store.list_user_api_keys(user_id).await?;
    Ok(Json(UserApiKeyList::new(
        keys.iter().map(key_body).collect(),
    )))
}

/// Deletes one of the caller's keys; it stops working at once.
pub async fn delete_api_key(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    Path(id): Path<String>,
) -> Result<Json<DeletedMessage>, ApiError> {
    let user_id = user_id(&principal)?;
    let not_found = || ApiError::not_found(format!("No API key found with id {id}"));
    let key_id: i64 = id.parse().map_err(|_| not_found())?;
    let record = state
        .store
        .get_user_api_key(key_id)
        .await?
        .ok_or_else(not_found)?;
    if record.user_id != user_id {
        return Err(ApiError::unauthorized(
            "This API key belongs to a different account",
        ));
    }
    state.store.delete_user_api_key(key_id).await?;
    state.announce_revoked(crate::auth::Revoked::UserApiKey(key_id));
    // What the key minted goes with it (a leaked `sk_live_` key cannot
    // leave org keys behind that outlive its deletion).
    let cascaded = super::keys::revoke_minted_by(&state, &format!("user_key:{key_id}")).await?;
    tracing::info!(user_id, key_id, cascaded, "user api key deleted");
    Ok(Json(DeletedMessage::new("API key deleted successfully")))
}
