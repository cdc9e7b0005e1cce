"""Refresh-ahead against the real server: once attached with a JWT client
key, the client fetches the next connection's key in the background, so a
reconnect does not wait for the token provider."""

from __future__ import annotations

import asyncio
from typing import Callable, List

import tokenrelay

from conftest import Server, client_for, new_context

WAIT = 20.0


async def _until(predicate: Callable[[], bool], what: str) -> None:
    """Waits (bounded) until ``predicate()`` holds."""
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    try:
        await asyncio.wait_for(poll(), WAIT)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_a_reconnect_presents_the_key_fetched_ahead(
    server: Server, admin: tokenrelay.AdminClient
) -> None:
    # The provider answers twice (the connection's key, then the spare
    # fetched once attached) and never again: the reconnect after the server
    # closes the socket must not need it.
    ctx = await new_context(admin)
    calls = 0

    async def provider(context_id: str) -> str:
        nonlocal calls
        calls += 1
        if calls > 2:
            await asyncio.Event().wait()  # a backend that stopped answering
        key = await admin.generate_client_key(server.org_id, context_id=context_id)
        return str(key.token)

    async with client_for(server, provider).connect(ctx) as conn:
        await _until(lambda: calls >= 2, "the spare fetch")
        got: List[str] = []
        async for t in conn.stream("[tokens=60 pace_ms=2]"):
            got.append(t)
            if len(got) == 20:
                await server.fault(ctx, "close_1001")
        assert "".join(got) == " ".join(f"t{i}" for i in range(60))
        assert (await conn.ask("[echo] after")).text == "after"
        await _until(lambda: calls >= 3, "the next spare fetch")


async def test_refresh_ahead_off_calls_the_provider_only_for_a_socket(
    server: Server, admin: tokenrelay.AdminClient
) -> None:
    ctx = await new_context(admin)
    calls = 0

    async def provider(context_id: str) -> str:
        nonlocal calls
        calls += 1
        key = await admin.generate_client_key(server.org_id, context_id=context_id)
        return str(key.token)

    async with client_for(server, provider, refresh_ahead=False).connect(ctx) as conn:
        # A round trip through the connection: a spare fetch, if one were
        # asked for, would have started when the connection attached.
        assert (await conn.ask("[echo] one")).text == "one"
        assert calls == 1
