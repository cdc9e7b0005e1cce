"""No message lost, none said twice (issue #17), through the Python SDK
against the real reference server: the socket is cut at every point
around a message, many rounds, and each time the app gets one complete
reply and the context's history holds the message once; messages sent
while offline are queued (pending), bounded by count and age, sent in
order once back, and failed with their own error by ``close()``."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, List, TypeVar

import pytest

import tokenrelay
from tokenrelay import events as ev

from conftest import CountingProvider, Server, client_for, new_context

WAIT = 30.0

T = TypeVar("T")


async def within(aw: Awaitable[T], what: str) -> T:
    try:
        return await asyncio.wait_for(aw, WAIT)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {WAIT} s: {what}") from None


async def until(what: str, cond: Callable[[], bool]) -> None:
    """Polls `cond` until it holds: for states the connection reaches on
    its own (a drop noticed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not cond():
        assert loop.time() < deadline, f"never: {what}"
        await asyncio.sleep(0.005)


async def humans(admin: tokenrelay.AdminClient, ctx: str, replies: int = 0) -> List[str]:
    """The human messages of the history once it holds `replies` replies
    (the last is saved just after its stop went out: wait for it)."""
    await until_async("every reply saved", lambda: ais(admin, ctx), replies)
    context = await admin.get_context(ctx)
    return [m.message for m in context.messages if isinstance(m, tokenrelay.types.HumanMessage)]


async def ais(admin: tokenrelay.AdminClient, ctx: str) -> int:
    context = await admin.get_context(ctx)
    return sum(1 for m in context.messages if isinstance(m, tokenrelay.types.AiMessage))


async def go_offline(server: Server, ctx: str, conn: tokenrelay.Connection) -> None:
    """Cuts the socket with the network marked down: the connection waits
    for the network instead of reconnecting, so what is sent now queues."""
    conn.set_network_available(False)
    await server.fault(ctx, "drop")
    await until("the drop is noticed", lambda: conn.state.state == "reconnecting")


CUTS = ["after_the_server_took_it", "just_before", "racing", "mid_reply"]


async def test_every_message_is_answered_once_and_saved_once_whatever_the_cut(
    server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider
) -> None:
    ctx = await new_context(admin)
    rounds = 24
    async with client_for(server, provider).connect(ctx) as conn:
        # Cuts this close together would grow the reconnect backoff to
        # seconds: retry at once, as an app's "retry now" would.
        async def kick() -> None:
            while True:
                if conn.state.state in ("reconnecting", "suspended"):
                    conn.reconnect_now()
                await asyncio.sleep(0.005)

        kicker = asyncio.ensure_future(kick())
        try:
            for round_ in range(rounds):
                cut = CUTS[round_ % len(CUTS)]
                text = f"m{round_}"
                if cut == "after_the_server_took_it":
                    # The server takes it, then drops the socket before it
                    # answers: the client cannot know it arrived.
                    reconnects = conn.stats().reconnects
                    # Armed on the one socket before the hook answers, so
                    # this message meets it; a reconnect follows.
                    assert await server.fault(ctx, "drop_before_answer") == 1
                    reply = await within(conn.ask(f"[echo] {text}"), f"{cut} {round_}")
                    assert conn.stats().reconnects > reconnects, f"{cut} {round_}: not cut"
                elif cut == "just_before":
                    # It goes into a dying socket, or waits for the next.
                    await server.fault(ctx, "drop")
                    reply = await within(conn.ask(f"[echo] {text}"), f"{cut} {round_}")
                elif cut == "racing":
                    # The drop and the message race on the way.
                    _, reply = await within(
                        asyncio.gather(server.fault(ctx, "drop"), conn.ask(f"[echo] {text}")),
                        f"{cut} {round_}",
                    )
                else:
                    # After the reply's first token: resume heals it.
                    stream = conn.stream(f"[echo] [pace_ms=5] {text} and more words to stream")
                    got: List[str] = []
                    async for token in stream:
                        got.append(token)
                        if len(got) == 1:
                            await server.fault(ctx, "drop")
                    assert stream.response is not None
                    reply = stream.response
                    assert "".join(got) == reply.text, f"{cut} {round_}: one gapless reply"
                assert reply.status == "complete", f"{cut} round {round_}: {reply}"
                assert reply.text.startswith(text), f"{cut} round {round_}: {reply.text!r}"
                if cut != "mid_reply":
                    assert reply.text == text
        finally:
            kicker.cancel()
    # Every message once, in order; every reply saved once (the last one is
    # saved just after its stop went out: wait for it).
    saved = await humans(admin, ctx, rounds)
    assert len(saved) == rounds, saved
    for round_, message in enumerate(saved):
        assert f"m{round_} " in message + " ", (round_, message)
    assert await ais(admin, ctx) == rounds


async def until_async(what: str, count: Callable[[], Awaitable[int]], at_least: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while await count() < at_least:
        assert loop.time() < deadline, f"never: {what}"
        await asyncio.sleep(0.01)


async def test_offline_messages_are_pending_bounded_and_sent_in_order_once_back(
    server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider
) -> None:
    ctx = await new_context(admin)
    async with client_for(server, provider, max_queued=3).connect(ctx) as conn:
        await go_offline(server, ctx, conn)
        assert conn.pending == 0
        ids = []
        for i in range(3):
            ids.append(await conn.send_message(f"[echo] q{i}"))
            assert conn.pending == i + 1
        with pytest.raises(tokenrelay.QueueFullError) as refused:
            await conn.send_message("[echo] q3")
        assert refused.value.kind == "queue_full"
        assert conn.pending == 3
        conn.set_network_available(True)
        # Sent in order, and answered in order: the server runs a context's
        # invocations in the order they arrive (conversation::ArrivalOrder).
        acks = []
        replies = []
        while len(replies) < 3 or len(acks) < 3:
            event = await within(conn.next_event(), "the queued messages' replies")
            assert event is not None
            assert not isinstance(event, tokenrelay.events.RequestFailed), event
            if isinstance(event, tokenrelay.events.ResponseComplete):
                replies.append(event.response)
            if isinstance(event, tokenrelay.events.RequestAcknowledged):
                acks.append(event.request_id)
        assert acks == ids, "sent in the order queued"
        assert [(r.request_id, r.text, r.status) for r in replies] == [
            (ids[i], f"q{i}", "complete") for i in range(3)
        ]
        assert conn.pending == 0
    assert await humans(admin, ctx, 3) == ["[echo] q0", "[echo] q1", "[echo] q2"]


async def test_a_message_queued_too_long_fails_while_offline_and_is_never_sent(
    server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider
) -> None:
    ctx = await new_context(admin)
    async with client_for(server, provider, max_queued_age=0.2).connect(ctx) as conn:
        await go_offline(server, ctx, conn)
        with pytest.raises(tokenrelay.QueueExpiredError) as expired:
            await within(conn.ask("[echo] stale"), "the aged-out message fails")
        assert expired.value.kind == "queue_expired"
        assert not isinstance(expired.value, tokenrelay.ConnectionLostError)
        # Failed while the network was still down, and left the queue.
        assert conn.state.state == "reconnecting"
        assert conn.pending == 0
        conn.set_network_available(True)
        assert (await within(conn.ask("[echo] fresh"), "a fresh ask")).text == "fresh"
    assert await humans(admin, ctx, 1) == ["[echo] fresh"]


async def test_close_fails_queued_messages_with_their_own_error(
    server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider
) -> None:
    ctx = await new_context(admin)
    conn = await client_for(server, provider).connect(ctx)
    await go_offline(server, ctx, conn)
    asking = asyncio.ensure_future(conn.ask("[echo] unsent"))
    await until("the message is queued", lambda: conn.pending == 1)
    await conn.close()
    with pytest.raises(tokenrelay.ClosedBeforeSentError) as closed:
        await within(asking, "the queued ask settles")
    assert closed.value.kind == "closed_before_sent"
    # Its own class: not the generic closed or connection-lost ones.
    assert not isinstance(closed.value, (tokenrelay.ConnectionClosed, tokenrelay.ConnectionLostError))
    assert await humans(admin, ctx) == []


async def test_timeouts_around_next_event_lose_no_event(
    server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider
) -> None:
    """A timeout around ``next_event()`` that fires again and again while
    replies stream, as ``asyncio.wait_for(conn.next_event(), ...)`` in an
    app's loop does: every token arrives once, in order. A timeout that
    fired just as a batch had been read from Rust used to drop the batch
    with the cancelled future's result."""
    ctx = await new_context(admin)
    async with client_for(server, provider).connect(ctx) as conn:
        timeouts = 0
        for _ in range(3):
            request = await conn.send_message("[tokens=400 pace_ms=1]")
            mine = None
            got: List[str] = []

            async def read() -> None:
                nonlocal mine, timeouts
                while True:
                    try:
                        event = await asyncio.wait_for(conn.next_event(), 0.0003)
                    except asyncio.TimeoutError:
                        timeouts += 1
                        continue
                    assert event is not None, "the connection ended"
                    if isinstance(event, ev.ResponseStarted) and event.request_id == request:
                        mine = event.response_id
                    elif isinstance(event, ev.Token) and event.response_id == mine:
                        got.append(event.token)
                    elif isinstance(event, ev.ResponseComplete) and event.response.request_id == request:
                        return

            await within(read(), "the reply's end")
            assert "".join(got) == " ".join(f"t{i}" for i in range(400)), f"{len(got)} tokens"
        assert timeouts > 0, "the timeouts fired"
