"""A server restart with clients attached, one of them mid-reply: graceful
(SIGTERM: the server closes every socket with 1001 and exits) and abrupt
(SIGKILL, as ``kill -9``: no close frame, the kernel resets the sockets).
Either way each connection reports the lost connection, reconnects by
itself to the new server on the same address and store, the cut reply ends
``interrupted`` with a gapless prefix (the replay buffer did not survive the
restart), and the next ``ask`` works (the same test as
tests/e2e/tests/restart.rs)."""

from __future__ import annotations

import asyncio
from typing import List, Optional

import pytest

import tokenrelay
from tokenrelay import events as ev

from conftest import CountingProvider, RestartableServer, client_for, new_context, restartable_server

WAIT = 30.0


def numbered(n: int) -> str:
    return " ".join(f"t{i}" for i in range(n))


async def next_event(conn: tokenrelay.Connection) -> ev.Event:
    """The next event, failing the test (not hanging it) after WAIT."""
    try:
        event = await asyncio.wait_for(conn.next_event(), WAIT)
    except asyncio.TimeoutError:
        raise AssertionError(f"no event within {WAIT} s") from None
    assert event is not None, "the connection ended"
    return event


async def recovers(conn: tokenrelay.Connection, request: Optional[int], before: str, graceful: bool) -> None:
    """After the restart: the lost connection is reported with its cause,
    the connection comes back, the reply to ``request`` (if any) ends
    interrupted with a prefix holding every token seen ``before`` the cut,
    and the next ask is answered."""
    cause: Optional[BaseException] = None
    reply: Optional[tokenrelay.Response] = None
    lost = back = False
    while not (back and (request is None or reply is not None)):
        event = await next_event(conn)
        if isinstance(event, ev.StateChanged):
            if event.state == "reconnecting":
                lost = True
                # The first cause reported: the cut itself (later attempts
                # fail to reach the server while it restarts).
                cause = cause or event.cause
            elif event.state == "connected" and lost:
                back = True
        elif isinstance(event, ev.ResponseComplete) and event.response.request_id == request:
            reply = event.response
    assert isinstance(cause, (tokenrelay.ConnectionLostError, tokenrelay.TransportError)), repr(cause)
    if reply is not None:
        # Killed, the server sends nothing more. Shut down gracefully, it
        # drains: every socket is closed (1001) before the reply is cut
        # (`--drain-timeout-secs 1`), so the client never sees the cut
        # either. Either way it resumes on the new server, whose replay
        # buffer is new: the reply ends interrupted.
        assert reply.status == "interrupted", reply
        assert numbered(2000).startswith(reply.text), "a prefix, no gap"
        assert reply.text.startswith(before), (before, reply.text)
    after = await asyncio.wait_for(conn.ask("[echo] after the restart"), WAIT)
    assert after.text == "after the restart"
    assert after.status == "complete"


async def restart_mid_reply(server: RestartableServer, graceful: bool) -> None:
    admin = tokenrelay.AdminClient(server.http_url, server.org_key)
    provider = CountingProvider(admin, server.org_id)
    client = client_for(server, provider)
    streaming, idle = await new_context(admin), await new_context(admin)
    async with client.connect(streaming) as conn, client.connect(idle) as other:
        request = await conn.send_message("[tokens=2000 pace_ms=5] long")
        seen: List[str] = []
        while len(seen) < 20:
            event = await next_event(conn)
            if isinstance(event, ev.Token):
                seen.append(event.token)
        server.stop(graceful)
        server.start()
        await recovers(conn, request, "".join(seen), graceful)
        await recovers(other, None, "", graceful)


@pytest.mark.parametrize("graceful", [True, False], ids=["sigterm", "sigkill"])
async def test_a_restart_mid_reply(graceful: bool) -> None:
    with restartable_server() as server:
        await restart_mid_reply(server, graceful)
