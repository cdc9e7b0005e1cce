"""The seed's two-endpoint flow: the Flask backend of examples/python-backend
(blocking admin client, real HTTP server) driven by examples/python-client."""

from __future__ import annotations

import sys
import threading
from typing import Iterator, Tuple

import pytest
from werkzeug.serving import make_server

import tokenrelay

from conftest import REPO, Server

sys.path.insert(0, str(REPO / "examples" / "python-backend"))
sys.path.insert(0, str(REPO / "examples" / "python-client"))

import backend  # noqa: E402
import chat_client  # noqa: E402


@pytest.fixture
def backend_url(server: Server) -> Iterator[str]:
    admin = tokenrelay.BlockingAdminClient(server.http_url, server.org_key)
    agent = admin.create_agent("two-endpoint", "")
    app = backend.create_app(admin, server.org_id, str(agent.agent_id), {"alice-session": "alice", "bob-session": "bob"})
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()


async def test_two_endpoint_flow(backend_url: str, server: Server) -> None:
    replies = await chat_client.chat(backend_url, server.ws_url, "alice-session", ["Hello!", "And then?"])
    assert replies == ["You said: Hello!", "You said: And then?"]


async def test_keys_survive_reconnects_through_the_backend(backend_url: str, server: Server) -> None:
    import asyncio

    ctx = await asyncio.to_thread(chat_client.create_context, backend_url, "alice-session")
    keys = tokenrelay.AppEndpoint(
        f"{backend_url}/api/get-client-token",
        headers={"Authorization": "Bearer alice-session"},
        token_field="clientToken",
        context_field="contextId",
    )
    async with tokenrelay.Client(server.ws_url, token_provider=keys).connect(ctx) as conn:
        got = []
        async for t in conn.stream("[tokens=100 pace_ms=3]"):
            got.append(t)
            if len(got) == 30:
                await server.fault(ctx, "close_4001")
        assert "".join(got) == " ".join(f"t{i}" for i in range(100))


async def test_another_user_is_refused(backend_url: str, server: Server) -> None:
    import asyncio

    ctx = await asyncio.to_thread(chat_client.create_context, backend_url, "alice-session")
    keys = tokenrelay.AppEndpoint(
        f"{backend_url}/api/get-client-token",
        headers={"Authorization": "Bearer bob-session"},
        token_field="clientToken",
        context_field="contextId",
    )
    with pytest.raises(tokenrelay.ForbiddenError):
        await tokenrelay.Client(server.ws_url, token_provider=keys, connect_timeout=3).connect(ctx)
