"""The exception hierarchy. Every failure the SDK reports is a
:class:`tokenrelay.Error`; its subclass says what to do next, mirroring the
Rust core's ``tokenrelay::Error`` enum one class per variant."""

from __future__ import annotations

import builtins
from typing import Optional

__all__ = [
    "Error",
    "AuthError",
    "ForbiddenError",
    "NotFoundError",
    "RateLimitedError",
    "PaymentRequiredError",
    "InvalidRequestError",
    "ServerError",
    "ProtocolError",
    "TimeoutError",
    "ConnectionLostError",
    "ConnectionClosed",
    "TokenProviderError",
    "ExpiredTokenError",
    "TransportError",
    "QueueFullError",
    "QueueExpiredError",
    "ClosedBeforeSentError",
    "EventsDroppedError",
    "ConfigError",
]


class Error(Exception):
    """Base class of every tokenrelay error.

    Attributes:
        kind: the core's stable snake_case name of the variant
            (``"unauthorized"``, ``"rate_limited"``, …).
        message: the full human-readable message.
        code: the server's stable error code, when it sent one.
        status: the HTTP status (REST), or the WebSocket close code for
            :class:`ConnectionLostError`.
    """

    kind: str = "error"

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        status: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, status={self.status!r})"


class AuthError(Error):
    """The credential was refused (missing, malformed, expired or revoked).
    A connection fetches a fresh token once by itself; from the admin client,
    check the API key."""

    kind = "unauthorized"


class ForbiddenError(Error):
    """The credential is valid but may not do this. Terminal."""

    kind = "forbidden"


class NotFoundError(Error):
    """The context, agent or key does not exist (any more)."""

    kind = "not_found"


class RateLimitedError(Error):
    """Too many requests; wait :attr:`retry_after` seconds (when known)."""

    kind = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        status: Optional[int] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        #: Seconds the server asked to wait, or ``None``.
        self.retry_after = retry_after


class PaymentRequiredError(Error):
    """The organisation has no credit left (HTTP 402)."""

    kind = "payment_required"


class InvalidRequestError(Error, ValueError):
    """The request was malformed or conflicts with existing state (400/409)."""

    kind = "invalid_request"


class ServerError(Error):
    """Any other failure the server reported (5xx, ``internal``). Usually
    transient."""

    kind = "server"


class ProtocolError(Error):
    """The peer sent something that is not the protocol."""

    kind = "protocol"


class TimeoutError(Error, builtins.TimeoutError):
    """No answer arrived in time. Also a built-in :class:`TimeoutError`."""

    kind = "timeout"


class ConnectionLostError(Error, ConnectionError):
    """The socket went away while a request was outstanding; its outcome is
    unknown. The connection reconnects by itself."""

    kind = "connection_lost"


class ConnectionClosed(Error):
    """The connection is closed (by you, or terminally by the server)."""

    kind = "closed"


class TokenProviderError(Error):
    """The token provider failed; the connection retries with backoff."""

    kind = "token_provider"


class ExpiredTokenError(Error):
    """The token provider returned an already-expired token; it was not sent."""

    kind = "expired_token"


class TransportError(Error, ConnectionError):
    """DNS, TCP, TLS or HTTP-upgrade failure below the protocol."""

    kind = "transport"


class QueueFullError(Error):
    """Too many requests queued while disconnected."""

    kind = "queue_full"


class QueueExpiredError(Error):
    """A request queued while disconnected waited longer than
    ``max_queued_age`` for a connection: it was never sent. Raised when its
    age passes, without waiting for a reconnect."""

    kind = "queue_expired"


class ClosedBeforeSentError(Error):
    """The connection was closed while the request was still queued for a
    connection: it was never sent, so nothing happened on the server (unlike
    :class:`ConnectionClosed` on a request already sent)."""

    kind = "closed_before_sent"


class EventsDroppedError(Error):
    """Events were not read in time and the oldest were dropped."""

    kind = "events_dropped"


class ConfigError(Error, ValueError):
    """The client was configured wrongly (a bad URL, a missing setting)."""

    kind = "config"


def _from_native(
    class_name: str,
    message: str,
    code: Optional[str],
    status: Optional[int],
    retry_after: Optional[float],
) -> Error:
    """Builds the exception for a core error (called by the native module,
    which picks the class by the core's error kind: sdk-python/src/errors.rs)."""
    cls = globals()[class_name]
    if cls is RateLimitedError:
        return RateLimitedError(message, code=code, status=status, retry_after=retry_after)
    result: Error = cls(message, code=code, status=status)
    return result
