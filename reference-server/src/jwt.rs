//! HS256 JWTs: org and client API keys (the observed claims), user access
//! tokens and publishable client keys.
//!
//! Verification pins HS256: a token whose header names another algorithm
//! (`none`, RS256 used as an HMAC key confusion, HS512) is refused before
//! its signature is even looked at.

use jsonwebtoken::{
    decode, decode_header, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey,
};
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

/// A JWT secret of zero bytes, which jsonwebtoken refuses as an HMAC key.
/// (The server itself asks for at least 32 bytes before it gets here.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmptySecret;

impl std::fmt::Display for EmptySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JWT secret must not be empty")
    }
}

impl std::error::Error for EmptySecret {}

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

/// One secret's verifying key and its `kid`.
struct Verifier {
    kid: String,
    decoding: DecodingKey,
}

/// Signing and verifying keys: the current secret signs (its `kid` goes in
/// every token's header), the current and any previous secrets verify, so
/// a secret can be rotated with a grace period.
pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    verifiers: Vec<Verifier>,
    validation: Validation,
}

/// The `kid` of a secret: the first 8 bytes of its SHA-256, in hex. It
/// names the secret without revealing anything usable about it.
pub fn key_id(secret: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(secret)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(<redacted>)")
    }
}

impl JwtKeys {
    /// Keys for an HS256 secret.
    pub fn new(secret: &[u8]) -> Result<Self, EmptySecret> {
        Self::rotating(secret, &[])
    }

    /// Keys that sign with `current` and also accept tokens signed with
    /// any of `previous` (named by their `kid`). An empty secret (current
    /// or previous) is refused: HMAC with no key authenticates nothing.
    pub fn rotating(current: &[u8], previous: &[&[u8]]) -> Result<Self, EmptySecret> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Exact expiry: a client key of 120 s is dead at 120 s, not 180 s.
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let verifiers = std::iter::once(current)
            .chain(previous.iter().copied())
            .map(|secret| {
                Ok(Verifier {
                    kid: key_id(secret),
                    decoding: DecodingKey::from_secret(secret).map_err(|_| EmptySecret)?,
                })
            })
            .collect::<Result<_, EmptySecret>>()?;
        Ok(JwtKeys {
            kid: key_id(current),
            encoding: EncodingKey::from_secret(current).map_err(|_| EmptySecret)?,
            verifiers,
            validation,
        })
    }

    /// The `kid` new tokens carry.
    pub fn current_kid(&self) -> &str {
        &self.kid
    }

    /// Signs claims as an HS256 JWT.
    pub fn sign(&self, claims: &Claims) -> String {
        // HMAC signing of serializable claims cannot fail.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.encoding).unwrap_or_default()
    }

    /// Verifies signature, algorithm and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        // The header picks the secret: tokens from before `kid` existed
        // have none and were signed with the current one; an unknown `kid`
        // names a secret that was retired.
        let header = decode_header(token).map_err(|_| JwtError::Malformed)?;
        let verifier = match header.kid.as_deref() {
            None => self.verifiers.first(),
            Some(kid) => self.verifiers.iter().find(|v| v.kid == kid),
        }
        .ok_or(JwtError::BadSignature)?;
        decode::<Claims>(token, &verifier.decoding, &self.validation)
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
    fn an_empty_secret_is_refused() {
        assert_eq!(JwtKeys::new(b"").err(), Some(EmptySecret));
        assert_eq!(
            JwtKeys::rotating(b"current secret", &[b""]).err(),
            Some(EmptySecret)
        );
    }

    #[test]
    fn round_trip_and_expiry() {
        let keys = JwtKeys::new(b"secret").unwrap();
        let c = claims(crate::time::unix_now() + 60);
        assert_eq!(keys.verify(&keys.sign(&c)).unwrap(), c);
        let old = claims(crate::time::unix_now() - 1);
        assert_eq!(keys.verify(&keys.sign(&old)), Err(JwtError::Expired));
        let other = JwtKeys::new(b"other").unwrap();
        assert_eq!(other.verify(&keys.sign(&c)), Err(JwtError::BadSignature));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let keys = JwtKeys::new(b"secret").unwrap();
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
            &EncodingKey::from_secret(b"secret").unwrap(),
        )
        .unwrap();
        assert_eq!(keys.verify(&hs512), Err(JwtError::WrongAlgorithm));
        assert_eq!(keys.verify("garbage"), Err(JwtError::Malformed));
    }

    #[test]
    fn a_rotated_secret_keeps_working_for_its_grace_period() {
        let old = JwtKeys::new(b"old secret of thirty-two bytes!!").unwrap();
        let token = old.sign(&claims(crate::time::unix_now() + 60));
        let rotated = JwtKeys::rotating(
            b"new secret of thirty-two bytes!!",
            &[b"old secret of thirty-two bytes!!"],
        )
        .unwrap();
        assert!(rotated.verify(&token).is_ok(), "old kid still accepted");
        assert_ne!(rotated.current_kid(), old.current_kid());
        let fresh = rotated.sign(&claims(crate::time::unix_now() + 60));
        assert!(rotated.verify(&fresh).is_ok());
        // Once the old secret leaves the list, its tokens stop working.
        let retired = JwtKeys::new(b"new secret of thirty-two bytes!!").unwrap();
        assert_eq!(retired.verify(&token), Err(JwtError::BadSignature));
        assert!(retired.verify(&fresh).is_ok());
    }
}
