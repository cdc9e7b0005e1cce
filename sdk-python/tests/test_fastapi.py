"""Inside someone else's running loop: a FastAPI app served by uvicorn on its
own thread uses the async admin client and streams a reply per request."""

from __future__ import annotations

import socket
import threading
from typing import Dict, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

import tokenrelay

from conftest import Server


@pytest.fixture
def app_url(server: Server) -> Iterator[str]:
    admin = tokenrelay.AdminClient(server.http_url, server.org_key)
    client = tokenrelay.Client(server.ws_url, token_provider=tokenrelay.OrgKey(admin, server.org_id))
    app = FastAPI()

    @app.post("/reply")
    async def reply(body: Dict[str, str]) -> Dict[str, str]:
        agent = await admin.create_agent("fastapi", "")
        context = await admin.create_context(agent.agent_id)
        async with client.connect(context.context_id) as conn:
            tokens = [t async for t in conn.stream(body["message"])]
            again = await conn.ask("[tokens=2]")
        return {"streamed": "".join(tokens), "asked": again.text}

    # The test binds and listens itself and hands uvicorn the socket: a
    # request made before uvicorn serves waits in the backlog (bounded by
    # the client's timeout) instead of the test polling for readiness.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    http = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=http.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        http.should_exit = True
        thread.join(10)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop within 10 s"


def test_fastapi_endpoints_stream_through_the_sdk(app_url: str) -> None:
    with httpx.Client(timeout=30) as http:
        for _ in range(3):
            r = http.post(f"{app_url}/reply", json={"message": "[tokens=5]"})
            assert r.status_code == 200, r.text
            assert r.json() == {"streamed": "t0 t1 t2 t3 t4", "asked": "t0 t1"}
