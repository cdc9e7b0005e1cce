//! The native client: a tokio driver around the sans-IO session (the
//! `client` feature).
//!
//! ```no_run
//! use tokenrelay::{Client, Event};
//!
//! # async fn demo() -> Result<(), tokenrelay::Error> {
//! let client = Client::builder("wss://relay.example.com/ws")
//!     .token_provider(|context_id: String| async move {
//!         // Your backend mints a short-lived client key for this context.
//!         Ok::<_, std::io::Error>(format!("client-key-for-{context_id}"))
//!     })
//!     .build()?;
//! let mut conn = client.connect("my-context-id").await?;
//! let reply = conn.ask("Hello!").await?;
//! println!("{}", reply.text);
//! while let Some(event) = conn.next_event().await {
//!     if let Event::Token { token, .. } = event {
//!         print!("{token}");
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The module owns every connection the crate opens, so the TLS
//! configuration lives here too; the admin client (the `admin` feature)
//! uses it without the WebSocket stack.

#[cfg(feature = "client")]
mod builder;
#[cfg(feature = "client")]
mod connection;
#[cfg(feature = "client")]
mod driver;
pub(crate) mod network;
#[cfg(feature = "client")]
pub(crate) mod proxy;
#[cfg(feature = "client")]
mod queue;
pub(crate) mod tls;

#[cfg(feature = "client")]
pub use builder::{Client, ClientBuilder};
#[cfg(feature = "client")]
pub use connection::Connection;
pub use network::NetworkOptions;
