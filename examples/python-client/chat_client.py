"""A Python client of the two-endpoint backend (examples/python-backend):
creates a context through the backend, then streams replies with keys the
backend mints on every (re)connect.

Run it (backend and relay running)::

    python examples/python-client/chat_client.py http://127.0.0.1:5000 ws://127.0.0.1:8080/ws
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from typing import List

import tokenrelay


def create_context(backend_url: str, session: str) -> str:
    """Endpoint 1 of the backend: a new context for this user."""
    req = urllib.request.Request(
        f"{backend_url}/api/create-context",
        method="POST",
        headers={"Authorization": f"Bearer {session}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.load(resp)["contextId"])


async def chat(backend_url: str, ws_url: str, session: str, messages: List[str]) -> List[str]:
    """Streams a reply to each message, printing tokens as they come;
    returns the reply texts."""
    # The blocking HTTP call runs off the event loop.
    context_id = await asyncio.to_thread(create_context, backend_url, session)
    # Endpoint 2, asked by the SDK itself on every (re)connect.
    keys = tokenrelay.AppEndpoint(
        f"{backend_url}/api/get-client-token",
        headers={"Authorization": f"Bearer {session}"},
        token_field="clientToken",
        context_field="contextId",
    )
    client = tokenrelay.Client(ws_url, token_provider=keys)
    replies: List[str] = []
    async with client.connect(context_id) as conn:
        for i, message in enumerate(messages):
            if i % 2 == 0:
                parts: List[str] = []
                async for token in conn.stream(message):
                    parts.append(token)
                    print(token, end="", flush=True)
                print()
                replies.append("".join(parts))
            else:
                reply = await conn.ask(message)
                print(f"{reply.text} [{reply.status}]")
                replies.append(reply.text)
    return replies


def main() -> None:
    """Command line: backend URL, relay WebSocket URL, optional session."""
    backend_url, ws_url = sys.argv[1], sys.argv[2]
    session = sys.argv[3] if len(sys.argv) > 3 else "demo-session"
    try:
        asyncio.run(chat(backend_url, ws_url, session, ["Hello!", "And then?"]))
    except tokenrelay.ForbiddenError:
        sys.exit("the backend refused a key for this context")


if __name__ == "__main__":
    main()
