"""The streaming client: stream/ask/events, reconnect and resume under socket
kills, cancellation, event loops, bad input and panics."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
from typing import Awaitable, Callable, List, Tuple, Type, TypeVar

import pytest

import tokenrelay
from tokenrelay import events as ev

from conftest import CountingProvider, Server, client_for, new_context


WAIT = 30.0

E = TypeVar("E")


def tokens(n: int) -> str:
    return " ".join(f"t{i}" for i in range(n))


async def within(aw: Awaitable[E], what: str, seconds: float = WAIT) -> E:
    """Awaits `aw`, failing the test (not hanging it) after `seconds`."""
    try:
        return await asyncio.wait_for(aw, seconds)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {seconds} s: {what}") from None


async def next_of(
    conn: tokenrelay.Connection, kind: Type[E], pred: Callable[[E], bool] = lambda _: True
) -> E:
    """Reads events until one of type `kind` matching `pred`."""
    while True:
        event = await conn.next_event()
        assert event is not None, f"the connection ended before a {kind.__name__}"
        if isinstance(event, kind) and pred(event):
            return event


async def test_stream_keeps_the_events_of_other_replies(
    server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider
) -> None:
    ctx = await new_context(admin)
    async with client_for(server, provider).connect(ctx) as conn:
        # A reply nobody reads yet; the server runs it before the streamed
        # one, so the stream reads all of its events on the way to its own.
        other = await conn.send_message("[tokens=20] [tool=search]")
        stream = conn.stream("[tokens=3]")
        assert "".join([t async for t in stream]) == tokens(3)
        assert stream.response is not None
        mine = stream.response.id
        seen: List[object] = []

        async def read() -> None:
            async for event in conn:
                seen.append(event)
                if isinstance(event, ev.ResponseComplete) and event.response.request_id == other:
                    break

        await within(read(), "the other reply's events")
        started = [e for e in seen if isinstance(e, ev.ResponseStarted) and e.request_id == other]
        assert len(started) == 1, seen
        rid = started[0].response_id
        assert "".join(e.token for e in seen if isinstance(e, ev.Token) and e.response_id == rid) == tokens(20)
        # Its tool call (sent before the reply started, so without a
        # response id) is kept too, and the whole reply at its end.
        assert any(isinstance(e, ev.ToolCallEvent) for e in seen)
        done = seen[-1]
        assert isinstance(done, ev.ResponseComplete) and done.response.text == tokens(20)
        # The stream's own reply is not handed out twice.
        assert not any(isinstance(e, ev.Token) and e.response_id == mine for e in seen)


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

        async def read() -> None:
            # ask() leaves its events queued for readers: skip to this request's.
            async for event in conn:
                seen.append(event)
                if isinstance(event, ev.ResponseComplete) and event.response.request_id == rid:
                    break

        await within(read(), "the reply's events")
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
        # Stop once the reply is streaming, not after a guessed delay.
        first = await within(next_of(conn, ev.Token), "the reply's first token")
        await within(conn.stop(), "stop")
        r = await asyncio.wait_for(task, 10)
        assert r.status == "stopped"
        assert tokens(2000).startswith(r.text)
        assert r.text.startswith(first.token) and r.id == first.response_id
        rid = await conn.set_last_messages("[tokens=4]", "partial")
        assert isinstance(rid, int)
        done = await within(
            next_of(conn, ev.ResponseComplete, lambda e: e.response.request_id == rid),
            "the re-invoked reply",
        )
        assert done.response.text == "t0 t1 t2 t3"


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
        # Cancelled while its reply streams (its first token has arrived).
        await within(next_of(conn, ev.Token), "the asked reply's first token")
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await within(task, "the cancelled ask")

        streaming = asyncio.Event()

        async def consume() -> None:
            async for _ in conn.stream("[tokens=300 pace_ms=5]"):
                streaming.set()

        t2 = asyncio.ensure_future(consume())
        await within(streaming.wait(), "the stream's first token")
        assert not t2.done()
        t2.cancel()
        with pytest.raises(asyncio.CancelledError):
            await within(t2, "the cancelled stream")
        # The connection is still usable (the event reader was released).
        assert (await conn.ask("[tokens=2]")).text == "t0 t1"


def test_works_under_asyncio_run_and_from_plain_threads(server: Server) -> None:
    admin = tokenrelay.BlockingAdminClient(server.http_url, server.org_key)
    agent = admin.create_agent("run agent", "")
    ctx = admin.create_context(agent.agent_id).context_id

    def key(context_id: str) -> str:
        # A plain (blocking) provider: runs on a worker thread.
        return str(admin.generate_client_key(server.org_id, context_id=context_id).token)

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
        # The connection's own events the stream read before its reply
        # (state changes, attachment) were kept and come first.
        first = await conn.next_event()
        while isinstance(first, (ev.StateChanged, ev.Connected)):
            first = await conn.next_event()
        assert isinstance(first, ev.ErrorEvent), first
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


def forged(key: str) -> str:
    """`key` re-signed with a secret the server does not have: a well-formed
    HS256 JWT, unexpired, for the right context, that no server accepts."""
    header, payload, _ = key.split(".")
    mac = hmac.new(b"not-the-servers-secret-not-the-servers", f"{header}.{payload}".encode(), hashlib.sha256)
    signature = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


async def test_a_fresh_key_always_refused_fails_connect_at_once_and_stops_asking(
    server: Server, admin: tokenrelay.AdminClient
) -> None:
    # The core's rule: a refused key gets one fresh key at once; that one
    # refused too, before any attachment, the provider mints keys this
    # server does not take, and connect fails at once with the refusal
    # (not at its 30 s deadline).
    ctx = await new_context(admin)
    bad = forged(str((await admin.generate_client_key(server.org_id, context_id=ctx)).token))
    calls = 0
    settled = False
    calls_after = 0
    called_again = asyncio.Event()

    async def refused_key(context_id: str) -> str:
        nonlocal calls, calls_after
        calls += 1
        if settled:
            calls_after += 1
            called_again.set()
        return bad

    client = client_for(server, refused_key)
    with pytest.raises(tokenrelay.AuthError) as refused:
        # The default deadline is 30 s; settling within 10 proves it did
        # not wait for it.
        await asyncio.wait_for(client.connect(ctx), 10)
    settled = True
    assert refused.value.kind == "unauthorized"
    assert refused.value.code == "unauthorized", repr(refused.value)
    # The first key and the one fresh key, nothing more.
    assert calls == 2, calls
    # Failed: not one more call. A connection still retrying would call
    # within its first backoff envelopes (immediately, then within 0.5 s,
    # 1 s, 2 s): waits for such a call itself, bounded.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(called_again.wait(), 4)
    assert calls_after == 0, calls_after


async def test_several_connections_on_one_client_keep_their_replies_apart(
    server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider
) -> None:
    client = client_for(server, provider)
    contexts = [await new_context(admin) for _ in range(3)]
    b_words = [f"b{i}" for i in range(30)]
    c_words = [f"c{i}" for i in range(30)]
    async with client.connect(contexts[0]) as a, client.connect(contexts[1]) as b, client.connect(contexts[2]) as c:
        assert [x.context_id for x in (a, b, c)] == contexts

        async def reply(conn: tokenrelay.Connection, request: int) -> Tuple[tokenrelay.Response, List[ev.Token]]:
            """Every token event of `conn` until the reply to `request` ends."""
            seen: List[ev.Token] = []
            while True:
                event = await conn.next_event()
                assert event is not None, "the connection ended"
                if isinstance(event, ev.Token):
                    seen.append(event)
                if isinstance(event, ev.ResponseComplete) and event.response.request_id == request:
                    return event.response, seen

        # a streams until it is stopped, so b's and c's replies, sent
        # together, stream and complete while a's is still streaming.
        ra = await a.send_message("[tokens=100000 pace_ms=2] a")
        a_reply = asyncio.ensure_future(reply(a, ra))
        rb = await b.send_message("[pace_ms=3] [echo] " + " ".join(b_words))
        rc = await c.send_message("[pace_ms=3] [echo] " + " ".join(c_words))
        (b_done, b_tokens), (c_done, c_tokens) = await within(
            asyncio.gather(reply(b, rb), reply(c, rc)), "b's and c's replies"
        )
        assert not a_reply.done(), "a's reply ended before b's and c's"
        await within(a.stop(), "stop a")
        a_done, a_tokens = await within(a_reply, "a's stopped reply")

    assert a_done.status == "stopped"
    assert b_done.status == c_done.status == "complete"
    assert b_done.text == " ".join(b_words)
    assert c_done.text == " ".join(c_words)
    assert a_done.text and tokens(100000).startswith(a_done.text)
    # Each connection saw its own reply's tokens and nothing else.
    for done, seen in ((a_done, a_tokens), (b_done, b_tokens), (c_done, c_tokens)):
        assert {t.response_id for t in seen} == {done.id}
        assert "".join(t.token for t in seen) == done.text
    assert [t.token for t in b_tokens] == [w + " " for w in b_words[:-1]] + [b_words[-1]]
    assert [t.token for t in c_tokens] == [w + " " for w in c_words[:-1]] + [c_words[-1]]
    assert len({a_done.id, b_done.id, c_done.id}) == 3
