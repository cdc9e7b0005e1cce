"""The streaming client: stream/ask/events, reconnect and resume under socket
kills, cancellation, event loops, bad input and panics."""

from __future__ import annotations

import asyncio
import threading
from typing import List

import pytest

import tokenrelay
from tokenrelay import events as ev

from conftest import CountingProvider, Server, client_for, new_context


def tokens(n: int) -> str:
    return " ".join(f"t{i}" for i in range(n))


async def test_stream_ask_and_events(server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider) -> None:
    ctx = await new_context(admin)
    async with client_for(server, provider).connect(ctx) as conn:
        assert conn.context_id == ctx
        assert conn.state.state == "connected"
        got = [t async for t in conn.stream("[tokens=500]")]
        assert "".join(got) == tokens(500)
        reply = await conn.ask("And then?")
        assert reply.text == "You said: And then?"
        assert reply.status == "complete"
        assert reply == await conn.response(reply.id)
        rid = await conn.send_message("[tokens=3] [tool=search] [events]")
        seen: List[object] = []
        # ask() leaves its events queued for readers: skip to this request's.
        async for event in conn:
            seen.append(event)
            if isinstance(event, ev.ResponseComplete) and event.response.request_id == rid:
                break
        kinds = {type(e).__name__ for e in seen}
        assert {"Token", "ToolCallEvent", "ToolResponseEvent", "ResponseComplete"} <= kinds
        done = seen[-1]
        assert isinstance(done, ev.ResponseComplete)
        assert done.response.text == "t0 t1 t2"
        assert [c.tool_name for c in done.response.tool_calls] == ["search"]
        # Frozen, comparable, printable.
        with pytest.raises(AttributeError):
            done.response.text = "x"  # type: ignore[misc]
        assert "Response(" in repr(done.response)


async def test_stop_and_set_last_messages(server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider) -> None:
    ctx = await new_context(admin)
    async with client_for(server, provider).connect(ctx) as conn:
        task = asyncio.ensure_future(conn.ask("[tokens=2000 pace_ms=2]"))
        await asyncio.sleep(0.3)
        await conn.stop()
        r = await asyncio.wait_for(task, 10)
        assert r.status == "stopped"
        assert tokens(2000).startswith(r.text)
        rid = await conn.set_last_messages("[tokens=4]", "partial")
        assert isinstance(rid, int)
        async for event in conn:
            if isinstance(event, ev.ResponseComplete) and event.response.request_id == rid:
                assert event.response.text == "t0 t1 t2 t3"
                break


@pytest.mark.parametrize("fault", ["drop", "close_1011", "close_4001"])
async def test_stream_survives_socket_kills(fault: str, server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider) -> None:
    ctx = await new_context(admin)
    async with client_for(server, provider).connect(ctx) as conn:
        got: List[str] = []
        kills = 0
        async for t in conn.stream("[tokens=300 pace_ms=3]"):
            got.append(t)
            # Three kills in one reply: each time a fresh key, resume, no gap.
            if len(got) in (20, 120, 220):
                kills += 1
                await server.fault(ctx, fault)
        assert kills == 3
        assert "".join(got) == tokens(300)
        assert provider.calls >= 4


async def test_cancelling_a_task_cancels_the_rust_work(server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider) -> None:
    ctx = await new_context(admin)
    async with client_for(server, provider).connect(ctx) as conn:
        task = asyncio.ensure_future(conn.ask("[tokens=300 pace_ms=5]"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def consume() -> None:
            async for _ in conn.stream("[tokens=300 pace_ms=5]"):
                pass

        t2 = asyncio.ensure_future(consume())
        await asyncio.sleep(0.2)
        t2.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t2
        # The connection is still usable (the event reader was released).
        assert (await conn.ask("[tokens=2]")).text == "t0 t1"


def test_works_under_asyncio_run_and_from_plain_threads(server: Server) -> None:
    admin = tokenrelay.BlockingAdminClient(server.http_url, server.org_key)
    agent = admin.create_agent("run agent", "")
    ctx = admin.create_context(agent["agent_id"])["context_id"]

    def key(context_id: str) -> str:
        # A plain (blocking) provider: runs on a worker thread.
        return str(admin.generate_client_key(server.org_id, context_id=context_id)["token"])

    client = tokenrelay.Client(server.ws_url, token_provider=key)

    async def once() -> str:
        async with client.connect(ctx) as conn:
            return (await conn.ask("[tokens=3]")).text

    # The same client from two successive loops, then from another thread.
    assert asyncio.run(once()) == "t0 t1 t2"
    assert asyncio.run(once()) == "t0 t1 t2"
    out: List[str] = []
    th = threading.Thread(target=lambda: out.append(asyncio.run(once())))
    th.start()
    th.join(30)
    assert out == ["t0 t1 t2"]


async def test_ready_made_providers(server: Server, admin: tokenrelay.AdminClient) -> None:
    ctx = await new_context(admin)
    for provider in (
        tokenrelay.OrgKey(admin, server.org_id),
        tokenrelay.StreamToken(admin, ttl=30),
        tokenrelay.Static(server.org_key),
    ):
        async with client_for(server, provider).connect(ctx) as conn:
            assert (await conn.ask("[tokens=2]")).text == "t0 t1", provider


async def test_wrong_types_raise_type_error(server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider) -> None:
    with pytest.raises(TypeError, match="ws_url"):
        tokenrelay.Client(42, token_provider=provider)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="token_provider"):
        tokenrelay.Client(server.ws_url, token_provider="not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="context_id"):
        tokenrelay.Client(server.ws_url, token_provider=provider).connect(7)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await admin.create_agent(5, "p")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="JSON"):
        await admin.create_context("a", user_defined={"x": object()})
    with pytest.raises(tokenrelay.ConfigError):
        tokenrelay.Client("http://nope", token_provider=provider)
    ctx = await new_context(admin)
    async with client_for(server, provider).connect(ctx) as conn:
        with pytest.raises(TypeError):
            await conn.ask(123)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await conn.send_tool_responses([("id", 5)])  # type: ignore[list-item]


def test_a_rust_panic_is_an_exception() -> None:
    with pytest.raises(BaseException, match="deliberate panic"):
        tokenrelay._native.panic_for_tests()


async def test_provider_returning_a_non_str_is_reported(server: Server, admin: tokenrelay.AdminClient) -> None:
    ctx = await new_context(admin)

    async def bad(context_id: str) -> str:
        return 42  # type: ignore[return-value]

    client = client_for(server, bad, connect_timeout=1.0)
    with pytest.raises(tokenrelay.TokenProviderError, match="must return a str"):
        await client.connect(ctx)


async def test_a_long_ask_after_a_stream_is_not_held_back(server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider) -> None:
    # stream() attaches an event reader; once it ends nothing reads, so a
    # reply longer than the event queue must not wait for a reader.
    ctx = await new_context(admin)
    async with client_for(server, provider, invocation_timeout=10).connect(ctx) as conn:
        assert [t async for t in conn.stream("[tokens=3]")] == ["t0 ", "t1 ", "t2"]
        reply = await asyncio.wait_for(conn.ask("[tokens=150000]"), 60)
        assert reply.status == "complete"
        assert reply.text.endswith("t149999")
        # The next reader learns that events were dropped meanwhile.
        first = await conn.next_event()
        assert isinstance(first, ev.ErrorEvent)
        assert isinstance(first.error, tokenrelay.EventsDroppedError)


async def test_stream_exposes_the_final_response(server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider) -> None:
    ctx = await new_context(admin)
    async with client_for(server, provider).connect(ctx) as conn:
        s = conn.stream("[tokens=4]")
        assert s.response is None
        assert [t async for t in s] == ["t0 ", "t1 ", "t2 ", "t3"]
        assert s.response is not None
        assert s.response.status == "complete" and s.response.text == "t0 t1 t2 t3"
        failing = conn.stream("[tokens=10 fail_after=3]")
        assert "".join([t async for t in failing]) == "t0 t1 t2 "
        assert failing.response is not None and failing.response.status == "failed"
