//! Opaque secrets: generation, hashing for storage, constant-time checks,
//! and a redacted form for logs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of user API keys (`docs/protocol.md` §1.3).
pub const USER_API_KEY_PREFIX: &str = "sk_live_";
/// Prefix of single-use stream tokens.
pub const STREAM_TOKEN_PREFIX: &str = "pub_tok_";
/// Prefix of publishable client keys.
pub const PUBLISHABLE_KEY_PREFIX: &str = "pk_";

/// `prefix` followed by 32 random bytes, base64url: 256 bits of entropy.
pub fn random_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Lowercase hex SHA-256 of a secret. Opaque secrets are stored only in
/// this form, so a copy of the database does not hand out working keys.
pub fn sha256_hex(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Compares two secrets (or their hashes) without leaking, through timing,
/// how long their common prefix is.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// What a secret may be logged as: its kind and nothing of its value.
pub fn redact(secret: &str) -> &'static str {
    if secret.starts_with(USER_API_KEY_PREFIX) {
        "sk_live_<redacted>"
    } else if secret.starts_with(STREAM_TOKEN_PREFIX) {
        "pub_tok_<redacted>"
    } else if secret.starts_with(PUBLISHABLE_KEY_PREFIX) {
        "pk_<redacted>"
    } else {
        "<redacted>"
    }
}

/// A secret held in memory (the JWT signing secrets of [`Config`]): its
/// `Debug` prints `<redacted>`, so a config printed whole or captured in a
/// `tracing` field never shows it. Read it with [`SecretString::expose`].
///
/// [`Config`]: crate::Config
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretString(secret.into())
    }

    /// The secret itself: only to use it, never to print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(secret: String) -> Self {
        SecretString(secret)
    }
}

impl From<&str> for SecretString {
    fn from(secret: &str) -> Self {
        SecretString(secret.to_owned())
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_string_never_debug_prints_its_value() {
        let secret = SecretString::new("hunter2-hunter2-hunter2-hunter2-x");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(
            format!("{:?}", Some(vec![secret.clone()])),
            "Some([<redacted>])"
        );
        assert_eq!(secret.expose(), "hunter2-hunter2-hunter2-hunter2-x");
    }

    #[test]
    fn tokens_are_prefixed_and_unique() {
        let a = random_token(STREAM_TOKEN_PREFIX);
        let b = random_token(STREAM_TOKEN_PREFIX);
        assert!(a.starts_with("pub_tok_"));
        assert_ne!(a, b);
        assert_eq!(sha256_hex("abc").len(), 64);
        assert!(constant_time_eq(&sha256_hex(&a), &sha256_hex(&a)));
        assert!(!constant_time_eq(&sha256_hex(&a), &sha256_hex(&b)));
    }
}
