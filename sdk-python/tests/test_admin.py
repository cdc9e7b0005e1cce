"""The admin REST client: every route, async and blocking (from a plain
thread, no event loop anywhere)."""

from __future__ import annotations

import threading
import uuid
from typing import Any, Dict, List

import tokenrelay

from conftest import Server


async def test_every_route_async(server: Server, admin: tokenrelay.AdminClient) -> None:
    agent = await admin.create_agent("a", "[tokens=2]", agent_description="d", is_public=False, tools=["search"])
    assert (await admin.get_agent(agent["agent_id"]))["agent_name"] == "a"
    assert any(a["agent_id"] == agent["agent_id"] for a in await admin.list_agents())
    ctx = await admin.create_context(agent["agent_id"], user_defined={"k": [1, 2.5, None, True]})
    assert ctx["user_defined"] == {"k": [1, 2.5, None, True]}
    chat = await admin.chat(ctx["context_id"], "hi")
    assert "t0 t1" in str(chat)
    assert (await admin.get_context(ctx["context_id"]))["context_id"] == ctx["context_id"]
    org = await admin.generate_api_key(server.org_id, "org")
    assert org["type"] == "org"
    tok = await admin.stream_token(ttl=10)
    assert tok["token"].startswith("pub_tok_") and tok["ttl"] == 10
    pk = await admin.create_client_key(["https://app.example"])
    assert pk["client_key"].startswith("pk_")
    await admin.delete_client_key()
    await admin.delete_context(ctx["context_id"])
    await admin.delete_agent(agent["agent_id"])

    user = uuid.uuid4().hex[:12]
    anon = tokenrelay.AdminClient(server.http_url)
    await anon.register(user, "correct horse battery")
    login = await anon.login(user, "correct horse battery")
    me = anon.with_credential(login["access_token"])
    assert (await me.me())["username"] == user
    created = await me.create_user_api_key("cli")
    as_key = me.with_credential(created["key"])
    assert (await as_key.me())["username"] == user
    keys = await me.list_user_api_keys()
    assert [k["nickname"] for k in keys] == ["cli"]
    await me.delete_user_api_key(created["id"])
    assert await me.list_user_api_keys() == []


def test_blocking_from_a_plain_thread(server: Server) -> None:
    results: List[Dict[str, Any]] = []
    errors: List[BaseException] = []

    def work() -> None:
        try:
            admin = tokenrelay.BlockingAdminClient(server.http_url, server.org_key)
            agent = admin.create_agent("blocking", "")
            ctx = admin.create_context(agent["agent_id"])
            results.append(admin.generate_client_key(server.org_id, context_id=ctx["context_id"], ttl_seconds=60))
            try:
                admin.get_context("nope")
            except tokenrelay.NotFoundError as e:
                results.append({"not_found": e.status})
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(results) == 8
    assert all("token" in r or r == {"not_found": 404} for r in results)
