//! `tokenrelay-server`: the reference server of the tokenrelay protocol
//! (`docs/protocol.md`): REST routes, the WebSocket protocol with
//! every extension, an embedded SQLite store and pluggable agent engines.
//!
//! It reuses the wire types of the `tokenrelay` crate, so the server and
//! the SDKs cannot drift. Start one in-process with [`Server::builder`]
//! (see [`server`] for an example), or run the `tokenrelay-server` binary.
#![warn(missing_docs)]

pub mod admission;
pub mod auth;
pub mod config;
pub mod conversation;
pub mod engine;
pub mod error;
pub mod jwt;
pub mod metrics;
pub mod password;
pub mod ratelimit;
pub mod rest;
pub mod secret;
pub mod server;
pub mod state;
pub mod store;
pub mod time;
pub mod ws;

pub use config::{Config, Limits, PasswordHashing};
pub use engine::{
    CannedTools, Engine, NoTools, OpenAiConfig, OpenAiEngine, RoundsConfig, ScriptedEngine,
    ToolCall, ToolRunner,
};
pub use error::ApiError;
pub use server::{Server, ServerBuilder, ServerHandle, ShutdownSignals};
pub use store::StoreConfig;
