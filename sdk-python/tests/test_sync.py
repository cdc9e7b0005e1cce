"""The blocking client (`tokenrelay.sync`) from plain threads, no event loop
in any of them, against the real reference server."""

from __future__ import annotations

import threading
from typing import Callable, List

import pytest

import tokenrelay
from tokenrelay import events as ev
from tokenrelay.sync import Client

from conftest import Server


def tokens(n: int) -> str:
    return " ".join(f"t{i}" for i in range(n))


def key_provider(admin: tokenrelay.BlockingAdminClient, org_id: str) -> Callable[[str], str]:
    # A plain function: the client calls it on a worker thread.
    def get_key(context_id: str) -> str:
        return admin.generate_client_key(org_id, context_id=context_id).token

    return get_key


def new_context(admin: tokenrelay.BlockingAdminClient) -> str:
    agent = admin.create_agent("sync agent", "")
    return admin.create_context(agent.agent_id).context_id


def in_threads(n: int, work: Callable[[int], None]) -> None:
    """Runs `work(i)` on `n` plain threads; re-raises the first failure."""
    errors: List[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
        assert not th.is_alive(), "a thread hung"
    if errors:
        raise errors[0]


def test_stream_ask_and_events_from_plain_threads(server: Server, blocking_admin: tokenrelay.BlockingAdminClient) -> None:
    client = Client(server.ws_url, token_provider=key_provider(blocking_admin, server.org_id))

    def work(i: int) -> None:
        with client.connect(new_context(blocking_admin)) as conn:
            assert conn.state.state == "connected"
            stream = conn.stream(f"[tokens={100 + i}]")
            assert "".join(stream) == tokens(100 + i)
            assert stream.response is not None and stream.response.status == "complete"
            reply = conn.ask(f"hello {i}")
            assert reply.text == f"You said: hello {i}" and reply.status == "complete"
            rid = conn.send_message("[tokens=3] [tool=search]")
            seen: List[ev.Event] = []
            for event in conn:
                seen.append(event)
                if isinstance(event, ev.ResponseComplete) and event.response.request_id == rid:
                    break
            done = seen[-1]
            assert isinstance(done, ev.ResponseComplete) and done.response.text == "t0 t1 t2"
            assert any(isinstance(e, ev.ToolCallEvent) for e in seen)
        # Closed by the with block.
        assert conn.state.state == "closed"
        with pytest.raises(tokenrelay.Error):
            conn.ask("after close")

    in_threads(4, work)


def test_the_same_exceptions_and_an_early_break(server: Server, blocking_admin: tokenrelay.BlockingAdminClient) -> None:
    client = Client(server.ws_url, token_provider=key_provider(blocking_admin, server.org_id))
    with pytest.raises(tokenrelay.NotFoundError):
        client.connect("no-such-context")
    with client:
        conn = client.connect(new_context(blocking_admin))
        with conn.stream("[tokens=200]") as stream:
            first = next(iter(stream))
        assert first.strip() == "t0"
        # The connection is still usable after leaving a stream early.
        assert conn.ask("again").text == "You said: again"
    # The client's with block closed what it opened.
    assert conn.state.state == "closed"


def test_an_async_provider_runs_on_the_background_loop(server: Server, blocking_admin: tokenrelay.BlockingAdminClient) -> None:
    calls: List[str] = []

    async def get_key(context_id: str) -> str:
        calls.append(threading.current_thread().name)
        return blocking_admin.generate_client_key(server.org_id, context_id=context_id).token

    with Client(server.ws_url, token_provider=get_key).connect(new_context(blocking_admin)) as conn:
        assert "".join(conn.stream("[tokens=5]")) == tokens(5)
    assert calls and calls[0] == "tokenrelay-sync"
