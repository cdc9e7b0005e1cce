//! `GET /api/v1/token?ttl=N`: single-use stream tokens (rate limited,
//! charged to the org's credits).

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::Json;
use tokenrelay::rest::StreamTokenResponse;

use super::{rate_check, with_rate_headers};
use crate::auth::{Principal, RestPrincipal};
use crate::error::ApiError;
use crate::secret::{random_token, sha256_hex, STREAM_TOKEN_PREFIX};
use crate::state::AppState;
use crate::store::StreamTokenRecord;
use crate::time::unix_now_ms;

/// Default token lifetime, seconds.
pub const DEFAULT_TTL: u32 = 60;
/// Longest token lifetime, seconds.
pub const MAX_TTL: u32 = 300;

/// Mints a stream token.
pub async fn mint(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let (decision, verdict) = rate_check(&state, &principal.subject()).await;
    let result = match verdict {
        Err(e) => Err(e),
        Ok(()) => {
            let ttl = query
                .as_ref()
                .ok()
                .and_then(|q| q.get("ttl"))
                .map(String::as_str);
            mint_inner(&state, &principal, ttl).await
        }
    };
    with_rate_headers(decision, result)
}

fn parse_ttl(ttl: Option<&str>) -> Result<u32, ApiError> {
    match ttl {
        None => Ok(DEFAULT_TTL),
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_TTL).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_params(format!(
                "ttl must be an integer from 1 to {MAX_TTL}"
            ))),
        },
    }
}

async fn mint_inner(
    state: &AppState,
    principal: &Principal,
    ttl: Option<&str>,
) -> Result<Json<StreamTokenResponse>, ApiError> {
    let ttl = parse_ttl(ttl)?;
    let cost = state.config.credits_per_stream_token;
    if cost > 0 && !state.store.charge_credits(principal.org_id(), cost).await? {
        tracing::info!(
            org_id = principal.org_id(),
            "stream token refused: no credits"
        );
        return Err(ApiError::payment_required());
    }
    let token = random_token(STREAM_TOKEN_PREFIX);
    let record = StreamTokenRecord {
        token_hash: sha256_hex(&token),
        org_id: principal.org_id().to_owned(),
        subject: principal.subject(),
        expires_at_ms: unix_now_ms() + i64::from(ttl) * 1000,
    };
    state.store.put_stream_token(&record).await.map_err(|e| {
        tracing::error!(error = %e, "cannot store stream token");
        let mut error = ApiError::internal();
        error.message = "Failed to create token, please try again or contact support.".into();
        error
    })?;
    tracing::info!(subject = %record.subject, ttl, "stream token minted");
    Ok(Json(StreamTokenResponse::new(token, ttl)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_bounds() {
        assert_eq!(parse_ttl(None).unwrap(), 60);
        assert_eq!(parse_ttl(Some("1")).unwrap(), 1);
        assert_eq!(parse_ttl(Some("300")).unwrap(), 300);
        for bad in ["0", "301", "-1", "x", ""] {
            assert!(parse_ttl(Some(bad)).is_err(), "{bad}");
        }
    }
}
