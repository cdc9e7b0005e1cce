"""Client-side tools and whole replies (#20), against a normal reference
server and against one in base-protocol mode (the hosted service's
behaviour: a reply's client-side tool calls and events come after its
``on_stop_token``, the request's ``"result": null`` last).

In both modes ``ask()`` and ``send_tool_responses()`` return the reply
whole: text, client-side tool calls and events attached. The scripted
engine's continuation of a tool answer never calls a tool itself
(reference-server/ENGINE.md: it replies ``Tool results: …``), so "two
rounds" here are two tool turns of one conversation, each answered by the
same loop, the first with two tools at once."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Callable, Dict, List, Tuple

import pytest

import tokenrelay
from tokenrelay import events as ev

from conftest import CountingProvider, Server, client_for, new_context

WAIT = 30.0


@pytest.fixture(params=["full", "base"])
def mode_server(request: pytest.FixtureRequest) -> Server:
    """The normal server, or the one in base-protocol mode."""
    server: Server = request.getfixturevalue("server" if request.param == "full" else "base_server")
    return server


@contextlib.asynccontextmanager
async def connected(server: Server) -> AsyncIterator[tokenrelay.Connection]:
    """A connection to a fresh context on ``server``."""
    admin = tokenrelay.AdminClient(server.http_url, server.org_key)
    context_id = await new_context(admin)
    client = client_for(server, CountingProvider(admin, server.org_id))
    async with await asyncio.wait_for(client.connect(context_id), WAIT) as conn:
        yield conn


async def ask(conn: tokenrelay.Connection, text: str) -> tokenrelay.Response:
    return await asyncio.wait_for(conn.ask(text), WAIT)


async def answer(conn: tokenrelay.Connection, answers: Dict[str, str]) -> tokenrelay.Response:
    return await asyncio.wait_for(conn.send_tool_responses(answers), WAIT)


def names(r: tokenrelay.Response) -> List[str]:
    return [c.tool_name for c in r.client_side_tool_calls]


async def tool_loop(
    conn: tokenrelay.Connection, text: str, run_tool: Callable[[tokenrelay.ToolCall], str]
) -> Tuple[tokenrelay.Response, List[tokenrelay.Response]]:
    """The README's loop: ask, then answer tools while the reply asks for
    them. Returns the last reply and every reply that asked for tools."""
    reply = await ask(conn, text)
    asked: List[tokenrelay.Response] = []
    while reply.client_side_tool_calls:
        asked.append(reply)
        assert len(asked) <= 5, "the tool loop does not end"
        reply = await answer(conn, {c.tool_call_id: run_tool(c) for c in reply.client_side_tool_calls})
    return reply, asked


async def test_a_reply_made_only_of_a_tool_call(mode_server: Server) -> None:
    async with connected(mode_server) as conn:
        first = await ask(conn, "[tokens=0 client_tool=get_time]")
        assert first.status == "complete", first
        assert first.text == ""
        assert names(first) == ["get_time"], first
        call_id = first.client_side_tool_calls[0].tool_call_id
        after = await answer(conn, {call_id: "12:00"})
        assert after.status == "complete", after
        assert after.id != first.id, "a continuation is a new response"
        assert after.request_id is not None and after.request_id != first.request_id
        assert after.text == f"Tool results: {call_id}=12:00"
        assert after.client_side_tool_calls == ()


async def test_text_then_tools_and_events_in_one_reply(mode_server: Server) -> None:
    async with connected(mode_server) as conn:
        first = await ask(conn, "[client_tool=get_location events=1] where am I?")
        assert first.status == "complete", first
        assert first.text == "You said: where am I?"
        assert names(first) == ["get_location"], first
        assert len(first.events) == 1, first
        call_id = first.client_side_tool_calls[0].tool_call_id
        after = await answer(conn, {call_id: "52.52,13.40"})
        assert after.status == "complete", after
        assert after.text == f"Tool results: {call_id}=52.52,13.40"


async def test_two_rounds_of_tools_through_the_loop(mode_server: Server) -> None:
    async with connected(mode_server) as conn:
        outputs = {"get_location": "52.52,13.40", "get_time": "12:00", "get_weather": "sunny"}
        answered: List[str] = []

        def run_tool(call: tokenrelay.ToolCall) -> str:
            answered.append(call.tool_name)
            return outputs[call.tool_name]

        # Round one: two tools in one reply, answered together.
        last, asked = await tool_loop(conn, "[client_tool=get_location client_tool=get_time] where and when?", run_tool)
        assert [names(r) for r in asked] == [["get_location", "get_time"]]
        ids = [c.tool_call_id for c in asked[0].client_side_tool_calls]
        assert last.status == "complete", last
        assert last.text == f"Tool results: {ids[0]}=52.52,13.40, {ids[1]}=12:00"
        # Round two, in the same conversation, after the continuation.
        last, asked = await tool_loop(conn, "[client_tool=get_weather events=2] and the weather?", run_tool)
        assert [names(r) for r in asked] == [["get_weather"]]
        assert asked[0].text == "You said: and the weather?"
        assert len(asked[0].events) == 2
        assert last.text == f"Tool results: {asked[0].client_side_tool_calls[0].tool_call_id}=sunny"
        assert answered == ["get_location", "get_time", "get_weather"]


async def test_trailing_notifications_are_events_and_part_of_the_reply(mode_server: Server) -> None:
    """The reply's tool calls and events reach the application both as
    events (never dropped) and attached to the reply that
    ``ResponseComplete`` and ``ask()`` hand over, in base mode where they
    follow the stop as in full mode where they precede it."""
    async with connected(mode_server) as conn:
        request = await conn.send_message("[tokens=3 client_tool=get_location events=2] hi")
        seen: List[Any] = []
        done: tokenrelay.Response | None = None
        while done is None:
            event = await asyncio.wait_for(conn.next_event(), WAIT)
            assert event is not None, "the connection ended"
            match event:
                case ev.ErrorEvent(error):
                    raise AssertionError(f"error event: {error!r}")
                case ev.ResponseComplete(r) if r.request_id == request:
                    done = r
                case ev.Token() | ev.ClientSideToolCalls() | ev.AgentEvents():
                    seen.append(event)
        kinds = [type(e).__name__ for e in seen]
        assert kinds.count("Token") == 3, kinds
        calls = [e for e in seen if isinstance(e, ev.ClientSideToolCalls)]
        events = [e for e in seen if isinstance(e, ev.AgentEvents)]
        assert [c.response_id for c in calls] == [done.id], kinds
        assert [e.response_id for e in events] == [done.id], kinds
        assert done.status == "complete"
        assert done.text == "t0 t1 t2"
        assert done.client_side_tool_calls == calls[0].tool_calls
        assert done.events == events[0].events
        assert len(done.events) == 2
        # The connection's record of the reply is the same whole reply.
        assert await conn.response(done.id) == done
