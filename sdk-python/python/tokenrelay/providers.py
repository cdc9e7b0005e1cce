"""Token providers. A connection asks its provider for a fresh key on every
(re)connect, single-flight, and never reuses an expired one.

Any callable ``(context_id: str) -> str`` or ``async (context_id: str) ->
str`` is a provider; a plain callable runs on a worker thread, so it may
block (``requests.post``). Raise :class:`tokenrelay.ForbiddenError` or
:class:`tokenrelay.NotFoundError` from a provider to end the connection for
good; any other exception is retried with backoff. The classes here mirror
the core's ready-made providers."""

from __future__ import annotations

from typing import Awaitable, Callable, Mapping, Optional, Union

from . import _native
from .admin import AdminClient, BlockingAdminClient

__all__ = ["TokenProvider", "AppEndpoint", "OrgKey", "StreamToken", "Static", "ReadyMade"]


class ReadyMade:
    """Base of the ready-made providers (the work happens in Rust)."""

    _native: Union[_native.AppEndpoint, _native.OrgKey, _native.StreamToken, _native.Static]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class AppEndpoint(ReadyMade):
    """Your backend's "get client token" endpoint (the two-endpoint
    pattern): ``POST url`` with ``{context_field: context_id}`` and
    ``headers`` (your own session auth); the key is read from the JSON field
    ``token_field`` of the answer. ``root_certificate_pem``,
    ``allow_insecure``, ``proxy`` and ``no_proxy`` are as for
    :class:`~tokenrelay.Client` (an ``http://`` URL to a host that is not
    loopback fails the connect with :class:`~tokenrelay.ConfigError` unless
    ``allow_insecure``)."""

    def __init__(
        self,
        url: str,
        *,
        headers: Optional[Mapping[str, str]] = None,
        token_field: Optional[str] = None,
        context_field: Optional[str] = None,
        root_certificate_pem: Union[str, bytes, None] = None,
        allow_insecure: bool = False,
        proxy: Optional[str] = None,
        no_proxy: bool = False,
    ) -> None:
        pem = root_certificate_pem
        if isinstance(pem, str):
            pem = pem.encode("utf-8")
        elif pem is not None and not isinstance(pem, bytes):
            raise TypeError(f"root_certificate_pem: expected str or bytes, got {type(pem).__name__}")
        self._native = _native.AppEndpoint(
            url,
            headers=list((headers or {}).items()),
            token_field=token_field,
            context_field=context_field,
            root_certificate_pem=pem,
            allow_insecure=bool(allow_insecure),
            proxy=proxy,
            no_proxy=bool(no_proxy),
        )


class OrgKey(ReadyMade):
    """Server-side only: mints a client key scoped to the context on every
    connect, with the org API key of ``admin``."""

    def __init__(
        self,
        admin: Union[AdminClient, BlockingAdminClient],
        org_id: str,
        *,
        ttl_seconds: Optional[float] = None,
    ) -> None:
        self._native = _native.OrgKey(admin._native, org_id, ttl_seconds=ttl_seconds)


class StreamToken(ReadyMade):
    """Single-use ``pub_tok_…`` stream tokens (``GET /api/v1/token``) minted
    with the API key of ``admin``; ``ttl`` in seconds (1..=300)."""

    def __init__(
        self, admin: Union[AdminClient, BlockingAdminClient], *, ttl: Optional[int] = None
    ) -> None:
        self._native = _native.StreamToken(admin._native, ttl=ttl)


class Static(ReadyMade):
    """One fixed key: tests, or an org key used from a server."""

    def __init__(self, token: str, *, stream_token: bool = False) -> None:
        if not isinstance(token, str):
            raise TypeError(f"Static(token): expected str, got {type(token).__name__}")
        self._native = _native.Static(token, stream_token=stream_token)


#: What ``Client(token_provider=...)`` accepts.
TokenProvider = Union[
    ReadyMade,
    Callable[[str], str],
    Callable[[str], Awaitable[str]],
]
