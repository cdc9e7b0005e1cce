//! tokenrelay
#![warn(missing_docs)]

mod accumulator;
pub mod backoff;
pub mod error;
pub mod event;
pub mod rest;
pub mod session;
pub mod time;
pub mod token;
pub mod wire;

#[cfg(feature = "client")]
pub mod admin;

pub use error::{Error, ProtocolError, RateLimit, Rejection};
pub use event::{
    ConnectionState, Event, RequestId, Response, ResponseId, ResponseStatus, StateChange, ToolCall,
    ToolResult,
};
pub use time::Timestamp;
pub use token::{Credential, CredentialKind};
