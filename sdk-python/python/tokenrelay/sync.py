"""A blocking streaming client for code without an event loop: Flask and
Django views, scripts, worker threads::

    from tokenrelay.sync import Client

    client = Client("wss://relay.example.com/ws", token_provider=get_key)
    with client.connect(context_id) as conn:
        for token in conn.stream("Hello"):
            print(token, end="", flush=True)
        print(conn.ask("And then?").text)

The same connection as :class:`tokenrelay.Client` gives (reconnects with
fresh keys, resume, the offline queue), the same events and the same
exceptions. It runs on one background thread with an asyncio loop, shared
by every sync client of the process; a blocking call waits for its result
there, and Ctrl-C (or any exception in the waiting thread) cancels the work
it was waiting for. Any number of threads may use sync clients and
connections at once. Tokens and events cross from that thread in batches,
so iterating a stream costs one hand-over per batch, not per token.

Do not call this module from inside the background loop itself (from an
``async`` token provider of a sync client): that would wait for itself,
and raises :class:`RuntimeError` instead.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import threading
import weakref
from concurrent.futures import Future
from types import TracebackType
from typing import (
    Any,
    Coroutine,
    Deque,
    Generator,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from . import _native
from . import client as _async
from .events import Event, Response, StateChanged
from .providers import TokenProvider

__all__ = ["Client", "Connection", "TokenStream"]

T = TypeVar("T")
_C = TypeVar("_C", bound="_Closing")


class _Closing(abc.ABC):
    """``with`` support for the classes below: ``__exit__`` calls
    ``close()`` and ``__enter__`` gives back the object itself."""

    @abc.abstractmethod
    def close(self) -> None:
        """Releases what the object holds; safe to call more than once."""

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


class _Loop:
    """The one background event loop every sync client runs on, started on
    first use (a daemon thread: it never keeps the process alive)."""

    _lock = threading.Lock()
    _loop: Optional[asyncio.AbstractEventLoop] = None
    _thread: Optional[threading.Thread] = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._thread is None or not cls._thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="tokenrelay-sync", daemon=True)
                thread.start()
                ready.wait()
                cls._loop, cls._thread = loop, thread
            return cls._loop

    @classmethod
    def run(cls, coro: Coroutine[Any, Any, T]) -> T:
        """Runs ``coro`` on the background loop and waits for its result
        (its exception, re-raised here as is)."""
        loop = cls.get()
        if threading.current_thread() is cls._thread:
            coro.close()
            raise RuntimeError(
                "tokenrelay.sync called from its own event loop (an async token provider "
                "of a sync client?): use the asyncio tokenrelay.Client there"
            )
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C while waiting, or the result's own exception: cancelling
            # a finished future is a no-op; an unfinished one stops the
            # Rust work behind it.
            future.cancel()
            raise


class Client(_Closing):
    """Opens blocking :class:`Connection` s. Takes the arguments of
    :class:`tokenrelay.Client` (a token provider may be a plain function,
    called on a worker thread, or an ``async`` one, run on the background
    loop).

    As a context manager (``with Client(...) as client:``) it closes the
    connections it opened that are still open when the block ends."""

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
        self._client = _async.Client(
            ws_url,
            token_provider,
            client_key=client_key,
            headers=headers,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            invocation_timeout=invocation_timeout,
            refresh_ahead=refresh_ahead,
            ping_interval=ping_interval,
            idle_timeout=idle_timeout,
            max_queued=max_queued,
            max_queued_age=max_queued_age,
            root_certificate_pem=root_certificate_pem,
            allow_insecure=allow_insecure,
            proxy=proxy,
            no_proxy=no_proxy,
        )
        self._open: "weakref.WeakSet[Connection]" = weakref.WeakSet()

    @property
    def ws_url(self) -> str:
        """The WebSocket endpoint."""
        return self._client.ws_url

    def connect(self, context_id: str) -> "Connection":
        """Connects to ``context_id`` and returns the connection once
        attached (use it in a ``with`` block to close it). Raises what
        :meth:`tokenrelay.Client.connect` raises, at once on a terminal
        refusal (:class:`~tokenrelay.ForbiddenError`,
        :class:`~tokenrelay.NotFoundError`)."""
        connecting = self._client.connect(context_id)
        conn = Connection(_Loop.run(connecting._open()))
        self._open.add(conn)
        return conn

    def close(self) -> None:
        """Closes every connection of this client still open."""
        for conn in list(self._open):
            conn.close()


    def __repr__(self) -> str:
        return f"tokenrelay.sync.Client({self.ws_url!r})"


class TokenStream(_Closing):
    """The tokens of one reply, from :meth:`Connection.stream`: a plain
    iterator of ``str``. Once it is exhausted, :attr:`response` is the whole
    reply. Breaking out early leaves the reply running (it still completes
    and :meth:`Connection.response` has it); :meth:`Connection.stop` cuts it."""

    def __init__(self, conn: "Connection", text: str) -> None:
        self._conn = conn
        self._text = text
        self._tokens = self._run()
        #: The reply as it ended (``None`` until the stream is exhausted).
        self.response: Optional[Response] = None

    def __iter__(self) -> Iterator[str]:
        return self._tokens

    def __next__(self) -> str:
        return next(self._tokens)

    def _run(self) -> Generator[str, None, None]:
        native = self._conn._async._native

        # Native methods return awaitables bound to the running loop: they
        # are called on the background loop, inside a coroutine.
        async def start() -> _native.NativeStream:
            return await native.stream(self._text)

        stream = _Loop.run(start())
        try:
            while True:

                async def batch() -> Optional[List[str]]:
                    return await stream.next_tokens()

                tokens = _Loop.run(batch())
                if tokens is None:
                    return
                yield from tokens
        finally:
            self.response = stream.response()
            native.detach_event_reader()

    def close(self) -> None:
        """Stops iterating (the reply itself goes on)."""
        self._tokens.close()


    def __repr__(self) -> str:
        return f"tokenrelay.sync.TokenStream({self._text!r})"


class Connection(_Closing):
    """A blocking connection to one context: the methods of
    :class:`tokenrelay.Connection` without ``await``, ``for event in conn``
    for its events, and ``with`` to close it.

    Events have one reader at a time, as on the asyncio connection; a
    :meth:`stream` keeps the events it reads that are not its reply's for
    the next iteration over the connection."""

    def __init__(self, conn: _async.Connection) -> None:
        self._async = conn
        self._events: Deque[Event] = collections.deque()
        self._finished = False

    @property
    def context_id(self) -> str:
        """The context this connection is attached to."""
        return self._async.context_id

    @property
    def state(self) -> StateChanged:
        """The latest state change."""
        return self._async.state

    @property
    def pending(self) -> int:
        """Messages waiting for a connection (see :attr:`tokenrelay.Connection.pending`)."""
        return self._async.pending

    def send_message(self, text: str) -> int:
        """Sends a message; returns the request id its reply carries."""
        return _Loop.run(self._async.send_message(text))

    def ask(self, text: str) -> Response:
        """Sends a message and returns the whole reply, however it ended."""
        return _Loop.run(self._async.ask(text))

    def stream(self, text: str) -> TokenStream:
        """Sends ``text`` (when iteration starts) and yields its reply's
        tokens as they arrive; then :attr:`TokenStream.response` holds the
        whole reply."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        return TokenStream(self, text)

    def stop(self) -> None:
        """Stops the running generation and waits for the server to confirm."""
        _Loop.run(self._async.stop())

    def set_last_messages(self, human_message: str, ai_message: Optional[str] = None) -> int:
        """Rewrites the tail of the history and re-invokes the agent."""
        return _Loop.run(self._async.set_last_messages(human_message, ai_message))

    def send_tool_responses(
        self, responses: Union[Mapping[str, str], Iterable[Tuple[str, str]]]
    ) -> Response:
        """Answers client-side tool calls and returns the agent's whole
        continuation (see :meth:`tokenrelay.Connection.send_tool_responses`)."""
        return _Loop.run(self._async.send_tool_responses(responses))

    def response(self, response_id: str) -> Optional[Response]:
        """A response by id (streaming, or one of the recently completed)."""
        return _Loop.run(self._async.response(response_id))

    def next_event(self) -> Optional[Event]:
        """The next event (blocking until there is one), or ``None`` once
        the connection is closed and every event has been read."""
        if not self._events and not self._finished:
            conn = self._async

            async def batch() -> Optional[List[Event]]:
                first = await conn.next_event()
                if first is None:
                    return None
                # What the asyncio connection already holds crosses too.
                rest = list(conn._pending)
                conn._pending.clear()
                return [first, *rest]

            got = _Loop.run(batch())
            if got is None:
                self._finished = True
            else:
                self._events.extend(got)
        return self._events.popleft() if self._events else None

    def __iter__(self) -> Iterator[Event]:
        try:
            while True:
                event = self.next_event()
                if event is None:
                    return
                yield event
        finally:
            # Nobody reads any more: stop holding the socket back.
            self._async._native.detach_event_reader()

    def set_network_available(self, available: bool) -> None:
        """Tells the connection whether the network is up."""
        self._async.set_network_available(available)

    def reconnect_now(self) -> None:
        """Retries at once if the connection is waiting to reconnect."""
        self._async.reconnect_now()

    def close(self) -> None:
        """Closes the connection and waits until its task has finished."""
        _Loop.run(self._async.close())


    def __repr__(self) -> str:
        return f"tokenrelay.sync.Connection(context_id={self.context_id!r}, state={self.state.state!r})"
