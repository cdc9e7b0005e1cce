//! [`Stats`]: what one connection has done since it started, counted by the
//! session as it goes (a few integer additions, no clock, no allocation) so
//! every binding reads the same numbers from one place.

/// Counters of one connection's life, read with
/// [`Session::stats`](crate::session::Session::stats) (and
/// `Connection::stats()` in every SDK). Every field only grows.
///
/// A dashboard or a support log reads them to tell a flaky network
/// (`reconnects` up, `resumes` keeping pace) from lost replies
/// (`interrupted` up) without turning logging on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[non_exhaustive] // more counters will come (docs/decisions.md, "Public API rules")
pub struct Stats {
    /// Times a socket attached to the context (the first connection
    /// included).
    pub connects: u64,
    /// Attachments after the first: connections restored after a drop.
    pub reconnects: u64,
    /// Reconnects that resumed: the server replayed what the drop missed,
    /// so no reply was cut.
    pub resumes: u64,
    /// Notifications the server replayed on those resumes (its `seq` at
    /// attachment minus the last one applied).
    pub replayed: u64,
    /// Tokens handed to the application (replayed duplicates excluded).
    pub tokens: u64,
    /// Notifications dropped as duplicates of ones already applied (a
    /// replay overlapping what had arrived).
    pub duplicates: u64,
    /// Replies that ended `interrupted` (cut by a drop that could not be
    /// resumed, or a gap in `seq`).
    pub interrupted: u64,
    /// Text frames received.
    pub frames_received: u64,
    /// Bytes of text frames received (their UTF-8 length).
    pub bytes_received: u64,
    /// Credentials asked of the token provider, refresh-ahead fetches
    /// included.
    pub token_fetches: u64,
}
