#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The other lints come from `[workspace.lints]`; docs are required here
// because this crate is public.
#![warn(missing_docs)]
// Without the `std` feature the crate is the protocol alone, `no_std` +
// `alloc`, as the browser package builds it: there the module supplies its
// own panic handler, so no `core::fmt` or panic message rides along.
// Unit tests build with `std` whatever the features (the harness needs it);
// `cargo xtask lint` checks the `no_std` build itself.
#![cfg_attr(not(any(feature = "std", test)), no_std)]

extern crate alloc;

/// What `std`'s prelude gives the modules that must also build without it
/// (everything but the I/O features, which imply `std`).
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::boxed::Box;
    pub(crate) use alloc::format;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec::Vec;
}

// The public API is chosen here, as quinn-proto's `lib.rs` chooses its
// own: modules are private and what users name is re-exported at the
// root, so a module can be split or moved without breaking anyone. Two
// modules stay public because their names belong together and would
// crowd the root: `rest` (the REST API's bodies) and `wire` (the
// protocol's frames, for servers, test peers and the browser driver).
// docs/decisions.md, "Public API rules", says what may change how.
mod accumulator;
mod backoff;
mod error;
mod event;
mod redact;
pub mod rest;
mod session;
mod stats;
mod time;
mod token;
mod token_text;
pub mod wire;

#[cfg(feature = "admin")]
mod admin;
#[cfg(any(feature = "client", feature = "admin"))]
mod client;
#[cfg(feature = "forward-logs")]
#[cfg_attr(docsrs, doc(cfg(feature = "forward-logs")))]
pub mod log_forward;
#[cfg(feature = "client")]
mod provider;

pub use backoff::ReconnectPolicy;
pub use error::{Error, ErrorKind, ProtocolError, ProviderFailure, RateLimit, Rejection};
pub use event::{
    ConnectionState, Event, RequestId, Response, ResponseId, ResponseStatus, StateChange, ToolCall,
    ToolResult,
};
pub use session::{Action, Session, SessionConfig, StateView};
pub use stats::Stats;
pub use time::Timestamp;
pub use token::{Credential, CredentialKind};
pub use token_text::TokenText;
// The wire types an application meets through the API above (events,
// `send_tool_responses`, the admin client's answers).
pub use wire::{Agent, AgentEvent, ServerInfo, StopReason, ToolResponseParam};

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub use admin::{AdminClient, AdminClientBuilder, StreamToken};
#[cfg(any(feature = "client", feature = "admin"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "client", feature = "admin"))))]
pub use client::NetworkOptions;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use client::{Client, ClientBuilder, Connection};
#[cfg(feature = "app-endpoint")]
#[cfg_attr(docsrs, doc(cfg(feature = "app-endpoint")))]
pub use provider::AppEndpoint;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use provider::{BoxFuture, StaticToken, TokenProvider};
#[cfg(all(feature = "client", feature = "admin"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "client", feature = "admin"))))]
pub use provider::{OrgKeyProvider, StreamTokenProvider};

// The scaffolding for the types that derive uniffi's traits under the
// `uniffi` feature (sdk-mobile exports them as they are).
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();
