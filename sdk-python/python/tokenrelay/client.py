"""The streaming side: :class:`Client` opens :class:`Connection` s to
contexts. Everything protocol-related (reconnects with fresh keys, resume,
de-duplication, response assembly) happens in the Rust core; this module only
gives it an asyncio shape."""

from __future__ import annotations

import collections
from types import TracebackType
from typing import (
    AsyncIterator,
    Deque,
    Generator,
    Iterable,
    Mapping,
    Optional,
    Tuple,
    Type,
    Union,
)

from . import _native
from ._logging import sync_level
from .events import Event, Response, StateChanged
from .providers import ReadyMade, TokenProvider
from .stats import Stats

__all__ = ["Client", "Connection", "TokenStream"]


class Client:
    """Opens connections to contexts of one server with one token provider.

    Args:
        ws_url: the WebSocket endpoint, ``ws://…/ws`` or ``wss://…/ws``.
        token_provider: where fresh keys come from: a callable (async or
            not) taking the context id and returning a key, or a ready-made
            provider from :mod:`tokenrelay.providers`.
        client_key: the app's publishable key (``pk_…``), if it has one.
        headers: extra headers of the WebSocket upgrade (an ``Origin``).
        connect_timeout: seconds :meth:`connect` waits for the first
            attachment (default 30).
        request_timeout: seconds for ``connect_to_context`` and ``stop``
            (default 15).
        invocation_timeout: inactivity timeout of a reply (default 120).
        refresh_ahead: once connected with a JWT client key, fetch the next
            connection's key in the background so a reconnect does not wait
            for the provider (default True; False saves one provider call
            per connection).
        ping_interval: seconds of quiet after which the client pings the
            server (default 15; 0 turns pings off).
        idle_timeout: seconds of silence after which the socket counts as
            dead and the client reconnects: how fast a connection whose
            packets just stop is noticed (default 45; 0 turns it off).
        max_queued: how many messages may wait for a connection while
            disconnected (sent in order once attached; default 256). One
            more raises :class:`~tokenrelay.QueueFullError` at once.
        max_queued_age: seconds a message may wait for a connection
            (default 300; 0 means no limit). Past it, it fails unsent with
            :class:`~tokenrelay.QueueExpiredError` when its age passes,
            without waiting for a reconnect.
        root_certificate_pem: a CA certificate (PEM text, ``str`` or
            ``bytes``; several ``BEGIN CERTIFICATE`` sections allowed) to
            trust on top of the system's roots, for a server whose
            certificate a private CA issued. An invalid PEM raises
            :class:`~tokenrelay.ConfigError`.
        allow_insecure: allow ``ws://`` to a host that is not loopback
            (default False: such a URL raises
            :class:`~tokenrelay.ConfigError`, credentials would cross the
            network unencrypted).
        proxy: an ``http://[user:pass@]host:port`` proxy for every
            connection (a ``CONNECT`` tunnel), whatever the environment
            says. By default ``HTTPS_PROXY``/``ALL_PROXY`` and ``NO_PROXY``
            are followed.
        no_proxy: connect directly, ignoring the proxy environment
            variables.
    """

    def __init__(
        self,
        ws_url: str,
        token_provider: TokenProvider,
        *,
        client_key: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        connect_timeout: Optional[float] = None,
        request_timeout: Optional[float] = None,
        invocation_timeout: Optional[float] = None,
        refresh_ahead: bool = True,
        ping_interval: Optional[float] = None,
        idle_timeout: Optional[float] = None,
        max_queued: Optional[int] = None,
        max_queued_age: Optional[float] = None,
        root_certificate_pem: Union[str, bytes, None] = None,
        allow_insecure: bool = False,
        proxy: Optional[str] = None,
        no_proxy: bool = False,
    ) -> None:
        if not isinstance(ws_url, str):
            raise TypeError(f"ws_url: expected str, got {type(ws_url).__name__}")
        provider: _native.ProviderArg
        if isinstance(token_provider, ReadyMade):
            provider = token_provider._native
        elif callable(token_provider):
            provider = token_provider
        else:
            raise TypeError(
                "token_provider: expected a callable taking the context id and returning "
                f"a key (async or not) or a tokenrelay.providers provider, got "
                f"{type(token_provider).__name__}"
            )
        self.ws_url = ws_url
        sync_level()
        self._native = _native.NativeClient(
            ws_url,
            provider,
            client_key=client_key,
            headers=list((headers or {}).items()),
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            invocation_timeout=invocation_timeout,
            refresh_ahead=bool(refresh_ahead),
            ping_interval=ping_interval,
            idle_timeout=idle_timeout,
            max_queued=max_queued,
            max_queued_age=max_queued_age,
            root_certificate_pem=_pem_bytes(root_certificate_pem),
            allow_insecure=bool(allow_insecure),
            proxy=proxy,
            no_proxy=bool(no_proxy),
        )

    def connect(self, context_id: str) -> "_Connecting":
        """Connects to ``context_id``. Use as ``async with client.connect(ctx)
        as conn:`` (closed on exit) or ``conn = await client.connect(ctx)``.

        Raises a :class:`tokenrelay.Error` at once on a terminal refusal
        (:class:`~tokenrelay.ForbiddenError`, :class:`~tokenrelay.NotFoundError`),
        or the last cause when no attempt succeeded within ``connect_timeout``.
        Once connected, the connection reconnects by itself."""
        if not isinstance(context_id, str):
            raise TypeError(f"context_id: expected str, got {type(context_id).__name__}")
        sync_level()
        return _Connecting(self, context_id)

    def __repr__(self) -> str:
        return f"Client({self.ws_url!r})"


class _Connecting:
    """Awaitable and async context manager returned by :meth:`Client.connect`."""

    def __init__(self, client: Client, context_id: str) -> None:
        self._client = client
        self._context_id = context_id
        self._conn: Optional[Connection] = None

    async def _open(self) -> "Connection":
        native = await self._client._native.connect(self._context_id)
        return Connection(native)

    def __await__(self) -> Generator[object, None, "Connection"]:
        return self._open().__await__()

    async def __aenter__(self) -> "Connection":
        self._conn = await self._open()
        return self._conn

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._conn is not None:
            await self._conn.close()


class TokenStream:
    """The tokens of one reply, from :meth:`Connection.stream`: iterate it
    with ``async for``; once it is exhausted, :attr:`response` is the whole
    reply."""

    def __init__(self, conn: "Connection", text: str) -> None:
        self._conn = conn
        self._text = text
        self._tokens = self._run()
        #: The reply as it ended (``None`` until the stream is exhausted).
        self.response: Optional[Response] = None

    def __aiter__(self) -> AsyncIterator[str]:
        # The generator itself, so each token costs one generator step and
        # no extra wrapper call.
        return self._tokens

    async def _run(self) -> AsyncIterator[str]:
        native = self._conn._native
        stream = await native.stream(self._text)
        try:
            while True:
                batch = await stream.next_tokens()
                if batch is None:
                    return
                for token in batch:
                    yield token
        finally:
            self.response = stream.response()
            # Nobody reads events any more: a later ask() of a long reply
            # must not wait for a reader (see the Connection docs).
            native.detach_event_reader()

    def __repr__(self) -> str:
        return f"TokenStream({self._text!r})"


class Connection:
    """A connection to one context. It reconnects by itself, with a fresh key
    each time, until :meth:`close` or a terminal refusal.

    Iterate it (``async for event in conn``) for every event, typed (see
    :mod:`tokenrelay.events`); or use :meth:`ask` and :meth:`stream`. Events
    have one reader at a time: :meth:`stream` takes its own reply's events
    and keeps every other one it reads (other replies, state changes), in
    order, for the next iteration over the connection.

    While something reads events (an ``async for`` over the connection or a
    :meth:`stream`), no event is lost: a slow reader slows the socket down.
    When nothing reads (only :meth:`ask`), the oldest events beyond 65,536
    are dropped instead, and the next read starts with an
    :class:`~tokenrelay.events.ErrorEvent` carrying
    :class:`~tokenrelay.EventsDroppedError`. Replies are never affected."""

    def __init__(self, native: _native.NativeConnection) -> None:
        self._native = native
        self._pending: Deque[Event] = collections.deque()
        self._finished = False

    @property
    def context_id(self) -> str:
        """The context this connection is attached to."""
        return self._native.context_id

    @property
    def state(self) -> StateChanged:
        """The latest state change (``state``, ``attempt``, ``retry_in``, ``cause``)."""
        return self._native.state()

    @property
    def pending(self) -> int:
        """How many messages wait for a connection to be sent: queued while
        disconnected, or sent on a socket that died before the server
        confirmed them (sent again, once, after the reconnect). Nonzero only
        while disconnected: show these as "sending…". It changes on a send,
        on a state change, and when a queued message fails
        (:class:`~tokenrelay.QueueExpiredError`, or
        :class:`~tokenrelay.ClosedBeforeSentError` on :meth:`close`)."""
        return self._native.pending()

    def stats(self) -> Stats:
        """What this connection has done since it started: attachments,
        reconnects, resumes, notifications replayed, tokens, frames and bytes
        received, token provider calls (see :class:`~tokenrelay.Stats`).
        Counted by the core; current as of the last event handed out."""
        return Stats(**self._native.stats())

    async def send_message(self, text: str) -> int:
        """Sends a message; the reply streams as events. Returns the request
        id, which the reply's :attr:`Response.request_id` carries."""
        return await self._native.send_message(text)

    async def ask(self, text: str) -> Response:
        """Sends a message and returns the whole reply, however it ended
        (check :attr:`Response.status`)."""
        return await self._native.ask(text)

    def stream(self, text: str) -> "TokenStream":
        """Sends ``text`` (when iteration starts) and yields the tokens of
        its reply as they arrive; afterwards :attr:`TokenStream.response`
        holds the whole reply (check its ``status``: ``"interrupted"`` when
        a drop could not be resumed, ``"stopped"`` after :meth:`stop`).
        Tokens cross from Rust in batches, so this is fast."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        return TokenStream(self, text)

    async def stop(self) -> None:
        """Stops the running generation and waits for the server to confirm."""
        await self._native.stop()

    async def set_last_messages(self, human_message: str, ai_message: Optional[str] = None) -> int:
        """Rewrites the tail of the history (the human interrupted the agent,
        whose partial answer was ``ai_message``) and re-invokes the agent."""
        return await self._native.set_last_messages(human_message, ai_message)

    async def send_tool_responses(
        self, responses: Union[Mapping[str, str], Iterable[Tuple[str, str]]]
    ) -> Response:
        """Answers client-side tool calls: ``{tool_call_id: response}`` or
        ``(tool_call_id, response)`` pairs, and returns the agent's whole
        continuation, as :meth:`ask` does for a message (tokens still arrive
        as events meanwhile). The continuation is a new response, and it may
        itself end with client-side tool calls; a tool loop is::

            reply = await conn.ask("Where am I?")
            while reply.client_side_tool_calls:
                reply = await conn.send_tool_responses(
                    {c.tool_call_id: run_tool(c) for c in reply.client_side_tool_calls}
                )
        """
        pairs = list(responses.items()) if isinstance(responses, Mapping) else list(responses)
        return await self._native.send_tool_responses(pairs)

    async def response(self, response_id: str) -> Optional[Response]:
        """A response by id (streaming, or one of the recently completed)."""
        return await self._native.response(response_id)

    async def next_event(self) -> Optional[Event]:
        """The next event, or ``None`` once the connection is closed and
        every event has been read."""
        while not self._pending:
            if self._finished:
                return None
            # Taken synchronously, after a wait that holds nothing: a
            # timeout or a cancel around this call never loses a batch
            # that Rust had already read.
            batch = self._native.take_events()
            if batch:
                self._pending.extend(batch)
            elif not await self._native.wait_events():
                self._finished = True
        return self._pending.popleft()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        try:
            while True:
                event = await self.next_event()
                if event is None:
                    return
                yield event
        finally:
            self._native.detach_event_reader()

    def set_network_available(self, available: bool) -> None:
        """Tells the connection whether the network is up; while it is down
        no reconnect is attempted."""
        self._native.set_network_available(available)

    def reconnect_now(self) -> None:
        """Retries at once if the connection is waiting to reconnect."""
        self._native.reconnect_now()

    async def close(self) -> None:
        """Closes the connection and waits until its task has finished.
        Requests already sent fail with :class:`tokenrelay.ConnectionClosed`;
        messages still queued for a connection (never sent) with
        :class:`tokenrelay.ClosedBeforeSentError`."""
        await self._native.close()

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Connection(context_id={self.context_id!r}, state={self.state.state!r})"


def _pem_bytes(pem: Union[str, bytes, None]) -> Optional[bytes]:
    """PEM text as bytes (``str`` is encoded as ASCII, which PEM is)."""
    if pem is None or isinstance(pem, bytes):
        return pem
    if isinstance(pem, str):
        return pem.encode("utf-8")
    raise TypeError(f"root_certificate_pem: expected str or bytes, got {type(pem).__name__}")
