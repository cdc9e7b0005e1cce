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

#[cfg(test)]
mod tests {
    use super::*;

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
