"""tokenrelay: stream AI agent replies to clients with short-lived keys.

Two kinds of users:

* backends mint keys and manage contexts with :class:`AdminClient`
  (async) or :class:`BlockingAdminClient`;
* clients stream a context with :class:`Client`::

      client = tokenrelay.Client(ws_url, token_provider=get_key)
      async with client.connect(context_id) as conn:
          async for token in conn.stream("Hello"):
              print(token, end="")

Code without an event loop (Flask, Django, scripts) uses the same
connection blocking, from :mod:`tokenrelay.sync`. Admin answers are the
frozen dataclasses of :mod:`tokenrelay.types`.

The protocol lives in a Rust core; this package is its Python face.
"""

from . import events, providers, sync, types
from ._native import __version__
from .admin import AdminClient, BlockingAdminClient
from .client import Client, Connection, TokenStream
from .errors import (
    AuthError,
    ConfigError,
    ConnectionClosed,
    ConnectionLostError,
    Error,
    EventsDroppedError,
    ExpiredTokenError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    ProtocolError,
    QueueFullError,
    QueueExpiredError,
    ClosedBeforeSentError,
    RateLimitedError,
    ServerError,
    TimeoutError,
    TokenProviderError,
    TransportError,
)
from .events import (
    AgentEvents,
    ClientSideToolCalls,
    Connected,
    ErrorEvent,
    Event,
    RequestAcknowledged,
    RequestFailed,
    Response,
    ResponseComplete,
    ResponseStarted,
    StateChanged,
    Token,
    ToolCall,
    ToolCallEvent,
    ToolResponseEvent,
    ToolResult,
    Unknown,
)
from .providers import AppEndpoint, OrgKey, Static, StreamToken, TokenProvider
from .stats import Stats

__all__ = [
    "__version__",
    "sync",
    "types",
    "AdminClient",
    "BlockingAdminClient",
    "Client",
    "Connection",
    "TokenStream",
    "Stats",
    "events",
    "providers",
    "TokenProvider",
    "AppEndpoint",
    "OrgKey",
    "StreamToken",
    "Static",
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
    "Event",
    "StateChanged",
    "Connected",
    "ResponseStarted",
    "Token",
    "ResponseComplete",
    "ToolCall",
    "ToolResult",
    "ToolCallEvent",
    "ToolResponseEvent",
    "AgentEvents",
    "ClientSideToolCalls",
    "RequestAcknowledged",
    "RequestFailed",
    "ErrorEvent",
    "Unknown",
    "Response",
]
