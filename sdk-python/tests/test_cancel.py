"""Giving up on ``connect()`` while it is still trying (the same test as
tests/e2e/tests/cancel.rs): the task awaiting it cancelled, directly or by
a timeout around it, and a relay nobody answers at. Everything is released:
no socket stays open on the server, and the token provider is not called
again.

The Python ``connect()`` has no handle before it returns, so cancelling the
task (or ``asyncio.wait_for`` / ``asyncio.timeout``) is how a pending
connect is closed; ``close()`` exists once connected."""

from __future__ import annotations

import asyncio
import socket
from typing import Awaitable, Callable, Iterator, Optional

import httpx
import pytest

import tokenrelay

from conftest import Server, client_for, new_context, run_server

WAIT = 30.0


@pytest.fixture(scope="module")
def lone() -> Iterator[Server]:
    """A server only this module's tests use: the sockets it counts are
    theirs."""
    with run_server() as s:
        yield s


@pytest.fixture
def lone_admin(lone: Server) -> tokenrelay.AdminClient:
    return tokenrelay.AdminClient(lone.http_url, lone.org_key)


class Calls:
    """A token provider's calls: counted, and each one announced."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.count = 0
        self.called = asyncio.Event()

    async def __call__(self, context_id: str) -> str:
        self.count += 1
        self.called.set()
        return self.key

    async def reach(self, n: int) -> None:
        """Waits until the provider has been called ``n`` times (bounded)."""

        async def wait() -> None:
            while self.count < n:
                self.called.clear()
                await self.called.wait()

        try:
            await asyncio.wait_for(wait(), WAIT)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.count} provider calls, waited for {n}") from None

    async def more_than(self, n: int, window: float) -> bool:
        """Whether the count goes beyond ``n`` within ``window`` seconds:
        waits for such a call itself, so it returns as soon as one comes."""

        async def wait() -> None:
            while self.count <= n:
                self.called.clear()
                await self.called.wait()

        try:
            await asyncio.wait_for(wait(), window)
            return True
        except asyncio.TimeoutError:
            return False


async def open_sockets(server: Server) -> int:
    """The server's count of open WebSocket connections (``GET /health``)."""
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{server.http_url}/health")
        r.raise_for_status()
        return int(r.json()["connections"])


async def no_socket_left(server: Server) -> None:
    """Waits until the server holds no WebSocket (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while await open_sockets(server) > 0:
        assert loop.time() < deadline, "a socket stayed open on the server"
        await asyncio.sleep(0.01)


# The default schedule (which the Python client does not let a test
# shorten): after a failed attempt the first retry is immediate, then each
# waits a full-jitter draw under an envelope doubling from 0.5 s. Cancelled
# after the 4th call, a connection still running would retry within the
# next envelopes (at most 1 s, then 2 s): a window of 4 s cannot miss its
# next two calls.
AFTER_FOUR_CALLS = 4.0


async def hanging_up() -> "tuple[asyncio.AbstractServer, str]":
    """A relay that accepts every connection and closes it at once: each
    attempt fails after its TCP connect and the connection keeps retrying,
    fetching a key each time. (A key the server refuses would not do: a
    fresh key refused before any attachment fails connect at once, see
    test_client.py.)"""

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    relay = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = relay.sockets[0].getsockname()[1]
    return relay, f"ws://127.0.0.1:{port}/ws"


async def gives_up_while_retrying(
    server: Server,
    admin: tokenrelay.AdminClient,
    give_up: Callable[["asyncio.Future[object]", Calls], Awaitable[None]],
) -> None:
    """Connects through a relay that hangs up on every attempt, lets
    ``give_up`` end the pending connect, then checks what is left."""
    ctx = await new_context(admin)
    calls = Calls(str((await admin.generate_client_key(server.org_id, context_id=ctx)).token))
    relay, url = await hanging_up()
    try:
        # The tests before this one have closed their sockets: once this
        # one gave up, none may be left.
        await no_socket_left(server)
        connecting = asyncio.ensure_future(tokenrelay.Client(url, token_provider=calls).connect(ctx))
        await give_up(connecting, calls)
        assert connecting.cancelled()
        after = calls.count
        await no_socket_left(server)
        # Only a call already running when the task was cancelled may still
        # finish (the Rust side learns of the cancel on a thread of its own,
        # as a dropped future does in Rust); a connection that kept retrying
        # would call twice more within the window.
        assert not await calls.more_than(after + 1, AFTER_FOUR_CALLS), (
            f"the provider was called {calls.count - after} times after the cancel"
        )
    finally:
        relay.close()
        await relay.wait_closed()


async def test_cancelling_the_task_awaiting_connect_releases_everything(
    lone: Server, lone_admin: tokenrelay.AdminClient
) -> None:
    async def cancel(connecting: "asyncio.Future[object]", calls: Calls) -> None:
        # Trying: several failed attempts.
        await calls.reach(4)
        assert not connecting.done()
        connecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(connecting, WAIT)

    await gives_up_while_retrying(lone, lone_admin, cancel)


async def test_a_timeout_around_connect_releases_everything(
    lone: Server, lone_admin: tokenrelay.AdminClient
) -> None:
    async def time_out(connecting: "asyncio.Future[object]", calls: Calls) -> None:
        await calls.reach(4)
        # What an app writes: its own deadline around connect (shorter than
        # connect_timeout, 30 s), which cancels the pending connect.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(connecting, 0.05)

    await gives_up_while_retrying(lone, lone_admin, time_out)


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_relay_settles_connect_and_stops_asking(
    server: Server, admin: tokenrelay.AdminClient
) -> None:
    # A relay that refuses every connection (nothing listens there): each
    # attempt fetches a key, fails to connect and waits its backoff, until
    # connect's deadline reports the last failure and closes.
    ctx = await new_context(admin)
    calls = Calls(str((await admin.generate_client_key(server.org_id, context_id=ctx)).token))
    client = tokenrelay.Client(f"ws://127.0.0.1:{unused_port()}/ws", token_provider=calls, connect_timeout=1.5)
    try:
        # Settles at the 1.5 s deadline; the bound only catches a hang.
        await asyncio.wait_for(client.connect(ctx), WAIT)
    except tokenrelay.TransportError as e:
        refused: Optional[tokenrelay.Error] = e
    else:
        raise AssertionError("connected to nothing")
    assert isinstance(refused, tokenrelay.TransportError), repr(refused)
    # The first attempt, the immediate first retry, then jittered waits
    # under 0.5 s, 1 s: at most a handful in 1.5 s.
    assert 2 <= calls.count <= 10, calls.count
    # Exact: the core drops a fetch in flight before connect() settles, and
    # a dropped call never begins (see sdk-python/src/providers.rs). A
    # connection still retrying would call again within its next envelopes
    # (at most 2 s, then 4 s after 1.5 s of attempts): waits for that call.
    after = calls.count
    assert not await calls.more_than(after, 6.0), f"{calls.count - after} provider calls after connect settled"


async def test_a_provider_call_running_when_connect_settles_is_cancelled(
    server: Server, admin: tokenrelay.AdminClient
) -> None:
    # An async provider that never answers (a backend that hangs): connect
    # settles at its deadline with the call still running. That call is
    # then cancelled (its HTTP request, say, does not go on by itself).
    ctx = await new_context(admin)
    calls = 0
    cancelled = asyncio.Event()

    async def hangs(context_id: str) -> str:
        nonlocal calls
        calls += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    client = client_for(server, hangs, connect_timeout=0.5)
    with pytest.raises(tokenrelay.TimeoutError):
        # Settles at its 0.5 s deadline; the bound only catches a hang.
        await asyncio.wait_for(client.connect(ctx), WAIT)
    try:
        await asyncio.wait_for(cancelled.wait(), WAIT)
    except asyncio.TimeoutError:
        raise AssertionError("the provider call was left running after connect settled") from None
    assert calls == 1
