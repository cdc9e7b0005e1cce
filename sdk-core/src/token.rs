//! Credentials as the session handles them: a secret that is never printed,
//! and how it is presented (an access token in `connect_to_context`, or a
//! single-use stream token on the socket URL).
//!
//! The session refuses to send a JWT whose `exp` has passed. It reads `exp`
//! without verifying the signature: the client cannot verify it (it has no
//! key) and does not need to; it only needs to avoid sending a token the
//! server will certainly refuse.

use crate::prelude::*;

/// How a credential is presented to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// A client or org API key (or any bearer token) sent as
    /// `connect_to_context.access_token`.
    AccessToken,
    /// A single-use stream token (`pub_tok_…`) sent as `/ws?token=…`
    /// (`stream_token` extension); `access_token` is then omitted.
    StreamToken,
}

/// A credential from a token provider. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    secret: String,
    kind: CredentialKind,
}

impl Credential {
    /// A bearer token for `connect_to_context.access_token`.
    pub fn access_token(secret: impl Into<String>) -> Self {
        Credential {
            secret: secret.into(),
            kind: CredentialKind::AccessToken,
        }
    }

    /// A single-use stream token for `/ws?token=`.
    pub fn stream_token(secret: impl Into<String>) -> Self {
        Credential {
            secret: secret.into(),
            kind: CredentialKind::StreamToken,
        }
    }

    /// The secret itself. Handle with care: never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// How it is presented.
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    /// The JWT `exp` claim (unix seconds), if the secret is a JWT that has
    /// one. Opaque tokens (`pub_tok_…`, `sk_live_…`) have none.
    pub fn expires_at(&self) -> Option<u64> {
        jwt_expiry(&self.secret)
    }
}

impl From<String> for Credential {
    fn from(secret: String) -> Self {
        Credential::access_token(secret)
    }
}

impl From<&str> for Credential {
    fn from(secret: &str) -> Self {
        Credential::access_token(secret)
    }
}

impl core::fmt::Debug for Credential {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Credential")
            .field("kind", &self.kind)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Reads the `exp` claim of a JWT without verifying it. `None` when the
/// token is not a JWT or has no numeric `exp`.
pub(crate) fn jwt_expiry(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64url_decode(payload.trim_end_matches('='))?;
    // Read from the text: a `Value` tree would keep a JSON map in the
    // browser build for this one field.
    crate::wire::unsigned_member(core::str::from_utf8(&bytes).ok()?, "exp")
}

/// Decodes unpadded base64url exactly as the `base64` crate's
/// `URL_SAFE_NO_PAD` engine does (a test holds the two together): only the
/// URL-safe alphabet, no padding, a length that is not 1 more than a
/// multiple of 4, and unused bits of the last symbol zero. Hand-written
/// because the crate's engine is ~4 KB of the browser bundle for this one
/// call.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 2);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in bytes {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        // Only the bits not yet written stay.
        acc &= (1 << bits) - 1;
    }
    // Left-over bits of the last symbol must be zero (canonical encoding).
    (acc == 0).then_some(out)
}

#[cfg(test)]
pub(crate) fn test_jwt(exp: u64) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.sig",
        b64(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64(&format!(r#"{{"type":"client","exp":{exp}}}"#))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_from_a_jwt() {
        assert_eq!(jwt_expiry(&test_jwt(1_700_000_000)), Some(1_700_000_000));
    }

    /// The claims are read from their text as parsing them into a
    /// `serde_json::Value` and reading `exp` did: the same answer for each
    /// of these payloads.
    #[test]
    fn exp_is_read_as_from_a_value() {
        use base64::Engine as _;
        let jwt = |claims: &str| {
            let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
            format!("{}.{}.sig", b64("{}"), b64(claims))
        };
        let reference = |claims: &str| {
            let v: serde_json::Value = serde_json::from_str(claims).ok()?;
            let exp = v.get("exp")?.as_number()?.clone();
            exp.as_u64()
                .or_else(|| exp.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        };
        for claims in [
            r#"{"exp": 1700000000}"#,
            r#"{"exp": 1700000000.9, "sub": "a"}"#,
            r#"{"exp": -5}"#,
            r#"{"exp": -0}"#,
            r#"{"exp": "1700000000"}"#,
            r#"{"exp": 1e3}"#,
            r#"{"exp": 1e400}"#,
            r#"{"exp": 1, "exp": 2}"#,
            r#"{"exp": 1, "x": "\ud800"}"#,
            r#"{"exp": 1, "x": [[[{"y": null}]]]}"#,
            r#"{"exp": 1} trailing"#,
            r#"[1]"#,
            r#"{"nested": {"exp": 1}}"#,
        ] {
            assert_eq!(jwt_expiry(&jwt(claims)), reference(claims), "{claims}");
        }
        let deep = format!(
            r#"{{"exp": 1, "x": {}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(jwt_expiry(&jwt(&deep)), reference(&deep));
    }

    #[test]
    fn opaque_tokens_have_no_expiry() {
        assert_eq!(jwt_expiry("pub_tok_abc"), None);
        assert_eq!(jwt_expiry("a.b.c"), None);
        assert_eq!(jwt_expiry("a.%%%.c"), None);
    }

    proptest::proptest! {
        #[test]
        fn base64url_decodes_as_the_base64_crate_does(
            text in "[A-Za-z0-9_=+/.-]{0,12}",
        ) {
            use base64::Engine as _;
            let reference = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&text).ok();
            proptest::prop_assert_eq!(base64url_decode(&text), reference);
        }

        #[test]
        fn base64url_round_trips(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            use base64::Engine as _;
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
            proptest::prop_assert_eq!(base64url_decode(&text), Some(bytes));
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credential::access_token("super-secret");
        assert!(!format!("{c:?}").contains("super-secret"));
    }
}
