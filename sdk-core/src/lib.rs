//! tokenrelay
#![warn(missing_docs)]

pub mod error;
pub mod rest;
pub mod wire;

#[cfg(feature = "client")]
pub mod admin;

pub use error::{Error, ProtocolError, RateLimit, Rejection};
