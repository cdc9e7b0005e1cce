//! Exports for the Kotlin suite only (feature `testing`, built by test.sh):
//! what its test of the error table walks.

use tokenrelay::{Error, ErrorKind};

use crate::error::TokenRelayError;

/// Every kind of the core's error (`ErrorKind::ALL`).
#[uniffi::export]
pub fn error_kinds_for_tests() -> Vec<ErrorKind> {
    ErrorKind::ALL.to_vec()
}

/// The exception the binding makes of a sample core error of `kind`.
#[uniffi::export]
pub fn sample_error_for_tests(kind: ErrorKind) -> TokenRelayError {
    Error::sample(kind).into()
}
