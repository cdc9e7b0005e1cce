"""What the SDK says about itself, against the real server:
``Connection.stats()`` counts a real reconnect, and the core's records
reach the ``tokenrelay`` logger (caplog), with the context and the resume's
counts, and never a key."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import List

import pytest

import tokenrelay
from tokenrelay._logging import sync_level

from conftest import CountingProvider, Server, client_for, new_context


def tokens(n: int) -> str:
    return " ".join(f"t{i}" for i in range(n))


class KeepingProvider(CountingProvider):
    """Remembers every key it hands out, to look for them in the log."""

    def __init__(self, admin: tokenrelay.AdminClient, org_id: str) -> None:
        super().__init__(admin, org_id)
        self.keys: List[str] = []

    async def __call__(self, context_id: str) -> str:
        key = await super().__call__(context_id)
        self.keys.append(key)
        return key


async def stream_with_a_drop(server: Server, conn: tokenrelay.Connection, ctx: str) -> None:
    got: List[str] = []
    async for t in conn.stream("[tokens=100 pace_ms=3]"):
        got.append(t)
        if len(got) == 20:
            await server.fault(ctx, "drop")
    assert "".join(got) == tokens(100)


async def test_stats_count_a_real_reconnect(
    server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider
) -> None:
    ctx = await new_context(admin)
    async with client_for(server, provider).connect(ctx) as conn:
        first = conn.stats()
        assert (first.connects, first.reconnects, first.tokens) == (1, 0, 0)
        await stream_with_a_drop(server, conn, ctx)
        s = conn.stats()
        assert isinstance(s, tokenrelay.Stats)
        assert (s.connects, s.reconnects, s.resumes, s.interrupted) == (2, 1, 1, 0), s
        assert s.tokens == 100, s
        assert s.token_fetches == provider.calls >= 2, s
        assert s.frames_received > 100 and s.bytes_received > s.frames_received, s
    with pytest.raises(AttributeError):
        s.tokens = 0  # type: ignore[misc]


async def test_the_core_logs_to_the_tokenrelay_logger_without_keys(
    server: Server, admin: tokenrelay.AdminClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tokenrelay")
    provider = KeepingProvider(admin, server.org_id)
    ctx = await new_context(admin)
    try:
        async with client_for(server, provider).connect(ctx) as conn:
            await stream_with_a_drop(server, conn, ctx)
            replayed = conn.stats().replayed
    finally:
        # Back to the level the logger has after caplog: nothing below
        # WARNING crosses into Python for the tests that follow.
        logging.getLogger("tokenrelay").setLevel(logging.NOTSET)
        sync_level()
    records = [r for r in caplog.records if r.name == "tokenrelay"]
    lines = [r.getMessage() for r in records]
    text = "\n".join(lines)
    assert any(r.levelno == logging.DEBUG for r in records), text
    assert all(r.tokenrelay_target.startswith("tokenrelay::") for r in records)  # type: ignore[attr-defined]
    attached = [line for line in lines if line.startswith("attached to the context")]
    assert attached and f"context_id={ctx}" in attached[0], text
    lost = [r for r in records if r.getMessage().startswith("connection lost; reconnecting")]
    assert lost and lost[0].levelno == logging.INFO, text
    assert "retry_in_ms=" in lost[0].getMessage() and "cause=" in lost[0].getMessage()
    again = [line for line in lines if line.startswith("attached to the context again")]
    assert again and "resumed=true" in again[0] and f"replayed={replayed}" in again[0], text
    closed = [line for line in lines if line.startswith("connection closed")]
    assert closed and "tokens=100" in closed[0], text
    assert len(provider.keys) >= 2
    for key in [*provider.keys, server.org_key]:
        # Any 20 characters of a key would be a leak, not only the whole.
        assert key[-20:] not in text, "a credential reached the log"


def test_tokenrelay_log_sets_the_level_and_a_handler() -> None:
    code = (
        "import logging, tokenrelay; l = logging.getLogger('tokenrelay'); "
        "print(l.level, len(l.handlers))"
    )
    env = dict(os.environ, TOKENRELAY_LOG="debug")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["10", "1"], out
    env["TOKENRELAY_LOG"] = "loud"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0"] and "TOKENRELAY_LOG" in out.stderr, out
