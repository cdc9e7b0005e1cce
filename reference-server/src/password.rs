//! Password hashing with argon2id (PHC strings).

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::PasswordHashing;

fn hasher(cost: PasswordHashing) -> Argon2<'static> {
    let params = match cost {
        PasswordHashing::Standard => Params::default(),
        PasswordHashing::FastInsecure => {
            Params::new(1024, 1, 1, None).unwrap_or_else(|_| Params::default())
        }
    };
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with a fresh random salt.
pub fn hash(password: &str, cost: PasswordHashing) -> Option<String> {
    let salt_bytes: [u8; 16] = rand::random();
    hasher(cost)
        .hash_password_with_salt(password.as_bytes(), &salt_bytes)
        .ok()
        .map(|h| h.to_string())
}

/// Checks a password against a stored PHC string (constant time inside
/// argon2). The parameters come from the stored hash, not from `cost`.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash to verify against when the user does not exist, so a login for
/// an unknown name takes as long as one with a wrong password.
pub fn dummy_hash(cost: PasswordHashing) -> String {
    hash("not-a-real-password", cost).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify() {
        let h = hash("pw", PasswordHashing::FastInsecure).unwrap();
        assert!(verify("pw", &h));
        assert!(!verify("px", &h));
        assert!(!verify("pw", "garbage"));
    }
}
