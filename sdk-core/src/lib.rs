#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The other lints come from `[workspace.lints]`; docs are required here
// because this crate is public.
#![warn(missing_docs)]

mod accumulator;
pub mod backoff;
pub mod error;
pub mod event;
mod redact;
pub mod rest;
pub mod session;
pub mod time;
pub mod token;
mod token_text;
pub mod wire;

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
#[cfg(any(feature = "client", feature = "admin"))]
mod client;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod provider;

pub use error::{Error, ErrorKind, ProtocolError, ProviderFailure, RateLimit, Rejection};
pub use event::{
    ConnectionState, Event, RequestId, Response, ResponseId, ResponseStatus, StateChange, ToolCall,
    ToolResult,
};
pub use time::Timestamp;

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub use admin::AdminClient;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use client::{Client, ClientBuilder, Connection};
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use provider::TokenProvider;
pub use token::{Credential, CredentialKind};
pub use token_text::TokenText;

// The scaffolding for the types that derive uniffi's traits under the
// `uniffi` feature (sdk-mobile exports them as they are).
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();
