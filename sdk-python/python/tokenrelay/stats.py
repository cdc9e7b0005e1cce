"""What a connection has done since it started: :class:`Stats`, read with
:meth:`tokenrelay.Connection.stats`. The Rust core counts these once for
every SDK; this is their Python shape."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Stats"]


@dataclass(frozen=True)
class Stats:
    """Counters of one connection's life. Every field only grows.

    A dashboard or a support log reads them to tell a flaky network
    (``reconnects`` up, ``resumes`` keeping pace) from lost replies
    (``interrupted`` up) without turning logging on."""

    connects: int
    """Times a socket attached to the context (the first included)."""
    reconnects: int
    """Attachments after the first: connections restored after a drop."""
    resumes: int
    """Reconnects that resumed: the server replayed what the drop missed."""
    replayed: int
    """Notifications the server replayed on those resumes."""
    tokens: int
    """Tokens handed to the application (replayed duplicates excluded)."""
    duplicates: int
    """Notifications dropped as duplicates of ones already applied."""
    interrupted: int
    """Replies that ended ``interrupted`` (cut by a drop that could not be
    resumed)."""
    frames_received: int
    """Text frames received."""
    bytes_received: int
    """Bytes of text frames received."""
    token_fetches: int
    """Keys asked of the token provider, refresh-ahead fetches included."""
