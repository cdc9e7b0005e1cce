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

/// Most allowed origins one publishable key may carry.
const MAX_ORIGINS: usize = 64;

/// An origin split into its parts, lower case.
struct Origin {
    scheme: String,
    host: String,
    port: Option<String>,
}

fn parse_origin(origin: &str) -> Option<Origin> {
    let origin = origin.trim().trim_end_matches('/');
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https")
        || rest.is_empty()
        || rest.len() > 260
        || rest.contains(['/', '?', '#', '@'])
        || rest.contains(char::is_whitespace)
    {
        return None;
    }
    let rest = rest.to_ascii_lowercase();
    // `host:port`, `[v6]:port`, or a bare host (a bare `[v6]` has colons
    // inside its brackets, which are not a port).
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.starts_with('[') || host.ends_with(']') => {
            let valid =
                !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
            if !valid {
                return None;
            }
            (host.to_owned(), Some(port.to_owned()))
        }
        _ => (rest, None),
    };
    (!host.is_empty()).then_some(Origin { scheme, host, port })
}

/// The one spelling of an origin that is stored and compared: scheme and
/// host in lower case, no trailing slash, no default port (`:443` for
/// https, `:80` for http). Browsers send `Origin` in this form, so an
/// origin typed as `https://App.com:443/` still matches.
pub fn canonical_origin(origin: &str) -> Option<String> {
    let Origin { scheme, host, port } = parse_origin(origin)?;
    let default_port = if scheme == "https" { "443" } else { "80" };
    Some(match port {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// True for origins a developer runs on their own machine.
fn is_loopback_origin(origin: &str) -> bool {
    parse_origin(origin).is_some_and(|o| {
        o.host == "localhost"
            || o.host.ends_with(".localhost")
            || o.host == "[::1]"
            || o.host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

fn normalize_origin(origin: &str, allow_insecure: bool) -> Result<String, ApiError> {
    let canonical = canonical_origin(origin).ok_or_else(|| {
        ApiError::invalid_params(format!(
            "allowed origin `{}` is not of the form scheme://host[:port]",
            origin.chars().take(256).collect::<String>()
        ))
    })?;
    if canonical.starts_with("http://") && !allow_insecure && !is_loopback_origin(&canonical) {
        return Err(ApiError::invalid_params(format!(
            "allowed origin `{canonical}` is plain http: a network attacker could forge it; \
             use https (or start the server with --allow-insecure-origins)"
        )));
    }
    Ok(canonical)
}

/// Creates (or rotates) the org's publishable key.
pub async fn create(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    JsonBody(body): JsonBody<NewClientKey>,
) -> Result<Json<PublishableKey>, ApiError> {
    if body.allowed_origins.len() > MAX_ORIGINS {
        return Err(ApiError::invalid_params(format!(
            "at most {MAX_ORIGINS} allowed origins"
        )));
    }
    let allow_insecure = state.config.limits.allow_insecure_origins;
    let mut allowed_origins = body
        .allowed_origins
        .iter()
        .map(|o| normalize_origin(o, allow_insecure))
        .collect::<Result<Vec<_>, _>>()?;
    allowed_origins.dedup();
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
    Ok(Json(PublishableKey::new(
        format!("{PUBLISHABLE_KEY_PREFIX}{jwt}"),
        record.allowed_origins,
    )))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_have_one_spelling() {
        let c = |o: &str| canonical_origin(o);
        assert_eq!(c("https://App.com").as_deref(), Some("https://app.com"));
        assert_eq!(
            c("HTTPS://app.com:443/").as_deref(),
            Some("https://app.com")
        );
        assert_eq!(
            c("https://app.com:8443").as_deref(),
            Some("https://app.com:8443")
        );
        assert_eq!(
            c("http://localhost:80").as_deref(),
            Some("http://localhost")
        );
        assert_eq!(c("http://[::1]:3000").as_deref(), Some("http://[::1]:3000"));
        for bad in [
            "app.com",
            "ftp://app.com",
            "https://",
            "https://a.com/path",
            "https://a.com:x",
            "https://u@a.com",
        ] {
            assert_eq!(c(bad), None, "{bad}");
        }
    }

    #[test]
    fn plain_http_only_for_loopback_unless_allowed() {
        assert!(normalize_origin("http://localhost:5173", false).is_ok());
        assert!(normalize_origin("http://127.0.0.1:8080", false).is_ok());
        assert!(normalize_origin("http://[::1]:3000", false).is_ok());
        assert!(normalize_origin("http://app.example", false).is_err());
        assert!(normalize_origin("http://localhost.evil.com", false).is_err());
        assert!(normalize_origin("http://app.example", true).is_ok());
    }
}
