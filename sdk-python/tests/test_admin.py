"""The admin REST client: every route, async and blocking (from a plain
thread, no event loop anywhere), typed answers, and retries of 429/5xx."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import tokenrelay
from tokenrelay import types as t

from conftest import Server


async def test_every_route_async(server: Server, admin: tokenrelay.AdminClient) -> None:
    agent = await admin.create_agent("a", "[tokens=2]", agent_description="d", is_public=False, tools=["search"])
    assert isinstance(agent, t.Agent)
    assert agent.tools == ("search",) and agent.is_public is False and agent.agent_description == "d"
    assert (await admin.get_agent(agent.agent_id)).agent_name == "a"
    assert any(a.agent_id == agent.agent_id for a in await admin.list_agents())
    ctx = await admin.create_context(agent.agent_id, user_defined={"k": [1, 2.5, None, True]})
    assert isinstance(ctx, t.Context)
    assert ctx.user_defined == {"k": [1, 2.5, None, True]}
    assert ctx.agent_id == agent.agent_id and ctx.messages == ()
    chat = await admin.chat(ctx.context_id, "hi")
    assert isinstance(chat, t.ChatReply) and chat.success
    assert "t0 t1" in chat.message
    again = await admin.get_context(ctx.context_id)
    assert again.context_id == ctx.context_id
    # The history is typed: the human message, then the agent's reply.
    assert again.messages[0] == t.HumanMessage("hi")
    assert isinstance(again.messages[1], t.AiMessage) and "t0 t1" in again.messages[1].message
    org = await admin.generate_api_key(server.org_id, "org")
    assert isinstance(org, t.GeneratedApiKey) and org.type == "org" and org.valid
    # Secrets stay out of repr, as the core's Debug redacts them.
    assert org.token and org.token not in repr(org)
    tok = await admin.stream_token(ttl=10)
    assert isinstance(tok, t.StreamToken)
    assert tok.token.startswith("pub_tok_") and tok.ttl == 10
    assert tok.token not in repr(tok)
    pk = await admin.create_client_key(["https://app.example"])
    assert pk.client_key.startswith("pk_") and pk.allowed_origins == ("https://app.example",)
    assert pk.to_dict() == {"client_key": pk.client_key, "allowed_origins": ["https://app.example"]}
    await admin.delete_client_key()
    await admin.delete_context(ctx.context_id)
    await admin.delete_agent(agent.agent_id)

    user = uuid.uuid4().hex[:12]
    anon = tokenrelay.AdminClient(server.http_url)
    registered = await anon.register(user, "correct horse battery")
    assert isinstance(registered, t.User) and registered.username == user
    login = await anon.login(user, "correct horse battery")
    assert isinstance(login, t.LoginResponse) and login.user.username == user
    assert login.to_dict()["user"]["username"] == user
    me = anon.with_credential(login.access_token)
    assert (await me.me()).username == user
    created = await me.create_user_api_key("cli")
    assert isinstance(created, t.CreatedUserApiKey) and created.key not in repr(created)
    as_key = me.with_credential(created.key)
    assert (await as_key.me()).username == user
    keys = await me.list_user_api_keys()
    assert [k.nickname for k in keys] == ["cli"] and isinstance(keys[0], t.UserApiKey)
    await me.delete_user_api_key(created.id)
    assert await me.list_user_api_keys() == []


def test_records_are_frozen_and_catch_a_drift_from_the_core() -> None:
    user = t.User._from_json({"id": "u1", "username": "ada"})
    assert user == t.User("u1", "ada")
    with pytest.raises(AttributeError):
        user.username = "eve"  # type: ignore[misc]
    # A field the core sends and this package does not know fails loudly
    # (in the test suite, before a release), naming it.
    with pytest.raises(TypeError, match="no field 'nickname'"):
        t.User._from_json({"id": "u1", "username": "ada", "nickname": "x"})
    # camelCase keys of the core (`createdAt`) are snake_case fields.
    key = t.UserApiKey._from_json({"id": "1", "nickname": "n", "createdAt": "c", "updatedAt": "u"})
    assert key.created_at == "c"
    # An agent keeps what the server sent beyond the known fields.
    agent = t.Agent._from_json(
        {"agent_id": "a", "agent_name": "n", "agent_description": "", "prompt": "", "org_id": "o",
         "is_public": False, "agent_speaks_first": False, "tools": [], "voice": "alto"}
    )
    assert agent.extra == {"voice": "alto"}
    # Unknown history entries are kept verbatim.
    ctx = t.Context._from_json(
        {"context_id": "c", "agent_id": "a", "user_id": "u", "user_defined": {},
         "messages": [{"type": "thinking", "text": "hmm"},
                      {"type": "tool_call", "tool_call_id": "1", "tool_name": "n", "tool_input": {"q": 1}}]}
    )
    assert ctx.messages == (
        t.OtherMessage({"type": "thinking", "text": "hmm"}),
        t.ToolCallMessage("1", "n", {"q": 1}),
    )


def test_blocking_from_a_plain_thread(server: Server) -> None:
    keys: List[t.GeneratedApiKey] = []
    not_found: List[int] = []
    errors: List[BaseException] = []

    def work() -> None:
        try:
            admin = tokenrelay.BlockingAdminClient(server.http_url, server.org_key)
            agent = admin.create_agent("blocking", "")
            ctx = admin.create_context(agent.agent_id)
            keys.append(admin.generate_client_key(server.org_id, context_id=ctx.context_id, ttl_seconds=60))
            try:
                admin.get_context("nope")
            except tokenrelay.NotFoundError as e:
                not_found.append(e.status or 0)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors, errors
    assert len(keys) == 4 and all(k.token and k.type == "client" for k in keys)
    assert not_found == [404] * 4


# ---------------------------------------------------------------------------
# Retries (the core's rule), against a scripted local HTTP server
# ---------------------------------------------------------------------------

Answer = Tuple[int, Dict[str, str], Dict[str, Any]]


@contextmanager
def scripted(answers: List[Answer]) -> Iterator[Tuple[str, List[str]]]:
    """An HTTP server answering the n-th request with ``answers[n]`` (the
    last one repeats); yields its URL and the paths it was asked for."""
    seen: List[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(self.path)
            status, headers, body = answers[min(len(seen), len(answers)) - 1]
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


BUSY: Answer = (503, {"retry-after": "0"}, {"error": "busy", "success": False})
LIMITED: Answer = (429, {"retry-after": "0"}, {"error": "Rate limit exceeded", "success": False})
TOKEN: Answer = (200, {}, {"success": True, "token": "pub_tok_x", "ttl": 5})


def test_a_503_and_a_429_are_retried_then_succeed() -> None:
    with scripted([BUSY, LIMITED, TOKEN]) as (url, seen):
        tok = tokenrelay.BlockingAdminClient(url, "k").stream_token()
    assert tok.token == "pub_tok_x"
    assert len(seen) == 3  # the default max_retries is 2


async def test_max_retries_bounds_the_attempts_and_zero_turns_them_off() -> None:
    with scripted([LIMITED]) as (url, seen):
        with pytest.raises(tokenrelay.RateLimitedError) as e:
            await tokenrelay.AdminClient(url, "k", max_retries=1).stream_token()
        assert e.value.status == 429 and e.value.retry_after == 0
        assert len(seen) == 2
        seen.clear()
        with pytest.raises(tokenrelay.RateLimitedError):
            tokenrelay.BlockingAdminClient(url, "k", max_retries=0).stream_token()
        assert len(seen) == 1


def test_a_long_retry_after_and_a_4xx_are_not_retried() -> None:
    later: Answer = (429, {"retry-after": "3600"}, {"error": "later", "success": False})
    with scripted([later]) as (url, seen):
        with pytest.raises(tokenrelay.RateLimitedError) as e:
            tokenrelay.BlockingAdminClient(url, "k").stream_token()
        assert e.value.retry_after == 3600 and len(seen) == 1
    with scripted([(404, {}, {"error": "nope", "success": False})]) as (url, seen):
        with pytest.raises(tokenrelay.NotFoundError):
            tokenrelay.BlockingAdminClient(url, "k").get_agent("a")
        assert len(seen) == 1
    with pytest.raises(TypeError):
        tokenrelay.BlockingAdminClient("http://127.0.0.1:1", "k", max_retries=-1)
