//! HS256 JWTs: org and client API keys (the observed claims), user access
//! tokens and publishable client keys.
//!
//! Verification pins HS256: a token whose header names another algorithm
//! (`none`, RS256 used as an HMAC key confusion, HS512) is refused before
//! its signature is even looked at.

use jsonwebtoken::{decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey};
use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};

/// `type` claim of an org API key.
pub const TYPE_ORG: &str = "org";
/// `type` claim of a client API key.
pub const TYPE_CLIENT: &str = "client";
/// `type` claim of a user access token.
pub const TYPE_USER: &str = "user";
/// `type` claim of a publishable client key (`pk_` + JWT).
pub const TYPE_PUBLISHABLE: &str = "publishable";

/// Claims of every token this server signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Key record id (org, client and publishable keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// Owning org.
    pub org_id: String,
    /// `org`, `client`, `user` or `publishable`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Creator (keys) or the user (user tokens).
    #[serde(default)]
    pub user_id: String,
    /// Optional client id (observed claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Context a client key is scoped to (reference-server addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expiry, unix seconds.
    pub exp: i64,
}

/// Why a token did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Signature fine, `exp` passed.
    Expired,
    /// Wrong algorithm in the header.
    WrongAlgorithm,
    /// Bad signature.
    BadSignature,
    /// Not a JWT, or its claims are not ours.
    Malformed,
}

impl JwtError {
    /// Label for the auth-failure metric and logs.
    pub fn reason(self) -> &'static str {
        match self {
            JwtError::Expired => "expired",
            JwtError::WrongAlgorithm => "wrong_algorithm",
            JwtError::BadSignature => "bad_signature",
            JwtError::Malformed => "malformed",
        }
    }
}

/// Signing and verifying keys derived from the one secret.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(<redacted>)")
    }
}

impl JwtKeys {
    /// Keys for an HS256 secret.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Exact expiry: a client key of 120 s is dead at 120 s, not 180 s.
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Signs claims as an HS256 JWT.
    pub fn sign(&self, claims: &Claims) -> String {
        // HMAC signing of serializable claims cannot fail.
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).unwrap_or_default()
    }

    /// Verifies signature, algorithm and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => JwtError::Expired,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    JwtError::WrongAlgorithm
                }
                ErrorKind::InvalidSignature => JwtError::BadSignature,
                _ => JwtError::Malformed,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn claims(exp: i64) -> Claims {
        Claims {
            api_key_id: Some("k".into()),
            org_id: "o".into(),
            kind: TYPE_CLIENT.into(),
            user_id: "u".into(),
            client_id: None,
            context_id: None,
            iat: 0,
            exp,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let keys = JwtKeys::new(b"secret");
        let c = claims(crate::time::unix_now() + 60);
        assert_eq!(keys.verify(&keys.sign(&c)).unwrap(), c);
        let old = claims(crate::time::unix_now() - 1);
        assert_eq!(keys.verify(&keys.sign(&old)), Err(JwtError::Expired));
        let other = JwtKeys::new(b"other");
        assert_eq!(other.verify(&keys.sign(&c)), Err(JwtError::BadSignature));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let keys = JwtKeys::new(b"secret");
        let body = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims(crate::time::unix_now() + 60)).unwrap());
        let none = format!(
            "{}.{body}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
        );
        assert!(keys.verify(&none).is_err());
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &claims(crate::time::unix_now() + 60),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(keys.verify(&hs512), Err(JwtError::WrongAlgorithm));
        assert_eq!(keys.verify("garbage"), Err(JwtError::Malformed));
    }
}
