"""Typed answers of the admin client: frozen dataclasses mirroring the core's
REST structs (``tokenrelay::rest`` in Rust), with ``repr``, ``==``,
``match``/``case`` patterns and :meth:`to_dict`.

They are built from the core's own serde output, not from the server's JSON:
the core decodes the server leniently (ids as numbers, missing fields,
``null`` lists) and this module only gives the result a Python shape. Field
names are the core's (camelCase keys such as ``createdAt`` become
``created_at``). A field the core has and this module lacks fails loudly
(``TypeError`` naming it), so the test suite, which calls every route, catches
a drift between the two before a release.

Fields holding a secret (``token``, ``access_token``, ``key``,
``client_key``, ``client_api_key``) are left out of ``repr``, as the core's
``Debug`` redacts them, so logging an answer never leaks a credential.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, Mapping, Optional, Tuple, Type, TypeVar, Union

__all__ = [
    "Agent",
    "Context",
    "HumanMessage",
    "AiMessage",
    "ToolCallMessage",
    "ToolResponseMessage",
    "OtherMessage",
    "ContextMessage",
    "ChatReply",
    "GeneratedApiKey",
    "User",
    "LoginResponse",
    "CreatedUserApiKey",
    "UserApiKey",
    "RateLimit",
    "StreamToken",
    "PublishableKey",
]

R = TypeVar("R", bound="_Record")

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(key: str) -> str:
    return _CAMEL.sub("_", key).lower()


def _freeze(value: Any) -> Any:
    # Lists become tuples so a frozen record is immutable all the way down
    # to its JSON values (dicts stay dicts: JSON objects the app owns).
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class _Record:
    """What every answer type shares: construction from the core's JSON and
    :meth:`to_dict`."""

    #: Fields holding another record (or a tuple of them): how to build it.
    _nested: ClassVar[Dict[str, Callable[[Any], Any]]] = {}
    #: The field that collects keys of no other field (the core's
    #: ``#[serde(flatten)]`` maps), if the type has one.
    _extra: ClassVar[Optional[str]] = None

    @classmethod
    def _from_json(cls: Type[R], data: Mapping[str, Any]) -> R:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        for key, value in data.items():
            name = _snake(key)
            if name not in names or name == cls._extra:
                if cls._extra is None:
                    raise TypeError(
                        f"{cls.__name__} has no field {name!r} (the core sent {key!r}): "
                        "tokenrelay.types is behind the core"
                    )
                extra[key] = value
                continue
            build = cls._nested.get(name)
            kwargs[name] = build(value) if build is not None and value is not None else _freeze(value)
        if cls._extra is not None:
            kwargs[cls._extra] = extra
        return cls(**kwargs)

    def to_dict(self) -> Dict[str, Any]:
        """The record as plain dicts, lists and scalars (nested records too),
        with the field names of this class."""
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload, no-any-return]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Agent(_Record):
    """An agent (``POST /agent``, ``GET /agent/{id}``, ``GET /agents``)."""

    agent_id: str
    agent_name: str
    agent_description: str
    prompt: str
    org_id: str
    is_public: bool
    agent_speaks_first: bool
    tools: Tuple[Any, ...]
    created_at: Optional[int] = None
    """Creation time, unix seconds."""
    updated_at: Optional[int] = None
    """Last change, unix seconds."""
    extra: Dict[str, Any] = field(default_factory=dict)
    """Fields the server sent that the core does not know, as received."""

    _extra: ClassVar[Optional[str]] = "extra"


# ---------------------------------------------------------------------------
# Contexts and chat
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HumanMessage(_Record):
    """A context's history entry: what the person said."""

    message: str


@dataclass(frozen=True)
class AiMessage(_Record):
    """A context's history entry: what the agent said."""

    message: str


@dataclass(frozen=True)
class ToolCallMessage(_Record):
    """A context's history entry: the agent called a tool."""

    tool_call_id: str
    tool_name: str
    tool_input: Any


@dataclass(frozen=True)
class ToolResponseMessage(_Record):
    """A context's history entry: a tool's output."""

    tool_call_id: str
    tool_output: str


@dataclass(frozen=True)
class OtherMessage(_Record):
    """A history entry of a shape the core does not know, as received."""

    value: Any

    def to_dict(self) -> Dict[str, Any]:
        return {"value": _plain(self.value)}


#: One entry of :attr:`Context.messages`.
ContextMessage = Union[HumanMessage, AiMessage, ToolCallMessage, ToolResponseMessage, OtherMessage]


def _context_message(value: Any) -> ContextMessage:
    # The core's `ContextMessage` serializes as the wire shapes:
    # `{sender, message}` or `{type: "tool_call" | "tool_response", ...}`;
    # anything else is its `Other`, verbatim.
    if isinstance(value, dict):
        if value.keys() == {"sender", "message"}:
            if value["sender"] == "human":
                return HumanMessage(value["message"])
            if value["sender"] == "ai":
                return AiMessage(value["message"])
        kind = value.get("type")
        if kind == "tool_call" and value.keys() == {"type", "tool_call_id", "tool_name", "tool_input"}:
            return ToolCallMessage(value["tool_call_id"], value["tool_name"], value["tool_input"])
        if kind == "tool_response" and value.keys() == {"type", "tool_call_id", "tool_output"}:
            return ToolResponseMessage(value["tool_call_id"], value["tool_output"])
    return OtherMessage(value)


@dataclass(frozen=True)
class Context(_Record):
    """A conversation context (``POST /context``, ``GET /context/{id}``)."""

    context_id: str
    agent_id: str
    user_id: str
    messages: Tuple[ContextMessage, ...]
    """The history, oldest first."""
    user_defined: Dict[str, Any]
    created_at: Optional[int] = None
    updated_at: Optional[int] = None
    client_api_key: Optional[str] = field(default=None, repr=False)
    """For a context on a public agent: a client key scoped to it."""

    _nested: ClassVar[Dict[str, Callable[[Any], Any]]] = {
        "messages": lambda v: tuple(_context_message(m) for m in v),
    }


@dataclass(frozen=True)
class ChatReply(_Record):
    """The finished reply of ``POST /chat``."""

    success: bool
    message: str
    response_id: Optional[str] = None


# ---------------------------------------------------------------------------
# Keys and people
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedApiKey(_Record):
    """A minted org or client key (``POST /generate-api-key``); ``token`` is
    the credential to hand out (a token provider returns it)."""

    api_key_id: str
    org_id: str
    token: str = field(repr=False)
    valid: bool
    type: str
    """``"client"``, ``"org"`` or ``"other"``."""
    user_id: str
    created_at: Optional[int] = None
    updated_at: Optional[int] = None


@dataclass(frozen=True)
class User(_Record):
    """A user (``register``, ``me``, and inside :class:`LoginResponse`)."""

    id: str
    username: str
    created_at: Optional[int] = None
    updated_at: Optional[int] = None
    org_id: Optional[str] = None


@dataclass(frozen=True)
class LoginResponse(_Record):
    """``POST /auth/login``: an access token for
    :meth:`~tokenrelay.AdminClient.with_credential`."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    user: User

    _nested: ClassVar[Dict[str, Callable[[Any], Any]]] = {"user": lambda v: User._from_json(v)}


@dataclass(frozen=True)
class CreatedUserApiKey(_Record):
    """A new user API key; ``key`` is shown this once."""

    id: str
    nickname: str
    key: str = field(repr=False)
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class UserApiKey(_Record):
    """A user API key as listed (never the secret)."""

    id: str
    nickname: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class RateLimit(_Record):
    """The ``x-ratelimit-*`` headers of an answer."""

    limit: int
    remaining: int


@dataclass(frozen=True)
class StreamToken(_Record):
    """A single-use stream token (``GET /api/v1/token``) and the rate-limit
    state the server reported with it."""

    token: str = field(repr=False)
    ttl: int
    rate_limit: Optional[RateLimit] = None

    _nested: ClassVar[Dict[str, Callable[[Any], Any]]] = {
        "rate_limit": lambda v: RateLimit._from_json(v)
    }


@dataclass(frozen=True)
class PublishableKey(_Record):
    """The org's publishable client key (``POST /client-key``)."""

    client_key: str = field(repr=False)
    allowed_origins: Tuple[str, ...]
