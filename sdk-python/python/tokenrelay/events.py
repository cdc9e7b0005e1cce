"""Events and responses: frozen dataclasses (``repr``, ``==`` and
``match``/``case`` patterns come with them), built by the native module from
the core's one ``Event`` enum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union

from .errors import Error

__all__ = [
    "ToolCall",
    "ToolResult",
    "Response",
    "StateChanged",
    "Connected",
    "ResponseStarted",
    "Token",
    "ResponseComplete",
    "ToolCallEvent",
    "ToolResponseEvent",
    "AgentEvents",
    "ClientSideToolCalls",
    "RequestAcknowledged",
    "RequestFailed",
    "ErrorEvent",
    "Unknown",
    "Event",
]


@dataclass(frozen=True)
class ToolCall:
    """A tool call: one the server ran (``on_tool_call``), or one the agent
    asks this client to run (:attr:`Response.client_side_tool_calls`,
    :class:`ClientSideToolCalls`; answer it by its ``tool_call_id``)."""

    tool_call_id: str
    tool_name: str
    tool_input: Any


@dataclass(frozen=True)
class ToolResult:
    """A server-side tool's answer (``on_tool_response``)."""

    tool_call_id: str
    tool_name: str
    tool_output: str


@dataclass(frozen=True)
class Response:
    """One agent response, assembled from its notifications.

    ``status`` is ``"streaming"``, ``"complete"``, ``"stopped"``,
    ``"failed"`` or ``"interrupted"`` (the socket dropped and the missed
    part could not be replayed: ``text`` is a prefix, never silently
    gapped).
    """

    id: str
    request_id: Optional[int]
    text: str
    tool_calls: Tuple[ToolCall, ...]
    tool_responses: Tuple[ToolResult, ...]
    events: Tuple[Dict[str, Any], ...]
    client_side_tool_calls: Tuple[ToolCall, ...]
    status: str
    stop_reason: Optional[str]


@dataclass(frozen=True)
class StateChanged:
    """The connection changed state (``"connected"``, ``"reconnecting"``, …);
    ``retry_in`` is seconds until the next attempt, ``cause`` the failure."""

    state: str
    attempt: int
    retry_in: Optional[float]
    cause: Optional[Error]


@dataclass(frozen=True)
class Connected:
    """Attached to the context (first time or again); ``resumed`` is true
    when missed notifications were replayed."""

    agent: Optional[Dict[str, Any]]
    resumed: bool
    server: Optional[Dict[str, Any]]


@dataclass(frozen=True)
class ResponseStarted:
    """A new response began; ``request_id`` names the request it answers."""

    response_id: str
    request_id: Optional[int]


@dataclass(frozen=True)
class Token:
    """One token of a response."""

    response_id: str
    token: str


@dataclass(frozen=True)
class ResponseComplete:
    """A response ended (complete, stopped, failed or interrupted)."""

    response: Response


@dataclass(frozen=True)
class ToolCallEvent:
    """The agent called a server-side tool."""

    response_id: Optional[str]
    call: ToolCall


@dataclass(frozen=True)
class ToolResponseEvent:
    """A server-side tool answered."""

    response_id: Optional[str]
    result: ToolResult


@dataclass(frozen=True)
class AgentEvents:
    """Events attached to a response (``on_events``)."""

    response_id: Optional[str]
    events: Tuple[Dict[str, Any], ...]


@dataclass(frozen=True)
class ClientSideToolCalls:
    """The agent asks this client to run tools; answer with
    :meth:`tokenrelay.Connection.send_tool_responses`."""

    response_id: Optional[str]
    tool_calls: Tuple[ToolCall, ...]


@dataclass(frozen=True)
class RequestAcknowledged:
    """The server accepted a request; ``result`` is its result object."""

    request_id: int
    result: Any


@dataclass(frozen=True)
class RequestFailed:
    """A request failed (refused, timed out, lost with the socket, closed)."""

    request_id: int
    error: Error


@dataclass(frozen=True)
class ErrorEvent:
    """Something went wrong that is not tied to a request; the connection
    carries on."""

    error: Error


@dataclass(frozen=True)
class Unknown:
    """A notification method this client does not know."""

    method: str
    params: Any


#: Any event a connection yields.
Event = Union[
    StateChanged,
    Connected,
    ResponseStarted,
    Token,
    ResponseComplete,
    ToolCallEvent,
    ToolResponseEvent,
    AgentEvents,
    ClientSideToolCalls,
    RequestAcknowledged,
    RequestFailed,
    ErrorEvent,
    Unknown,
]
