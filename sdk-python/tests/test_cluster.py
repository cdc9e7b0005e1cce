"""One scenario of the cluster suite through the Python SDK (issue #14; the
Rust SDK runs the rest in tests/e2e/tests/it/cluster.rs): two reference
servers on one Redis hub and one store, behind a TCP load balancer in this
test. The client only knows the balancer. Its instance is taken out of
rotation mid-reply and its connections cut; the client reconnects through
the balancer to the other instance, resumes from Redis, and the reply
arrives whole: every token once, in order. No change to the SDK: same
URL, same protocol."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

import tokenrelay
from tokenrelay import events as ev

from conftest import RELAXED_LIMITS, CountingProvider, Server, _server_binary, new_context

WAIT = 30.0
SECRET = "python-cluster-secret-of-at-least-32-bytes"
LONG = "[tokens=300 pace_ms=5] long"


def _in_ci() -> bool:
    return os.environ.get("CI", "") not in ("", "false", "0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A private redis-server on a free port, no persistence; skipped when
    it is not installed (failed under CI, which installs it)."""
    exe = shutil.which("redis-server")
    if exe is None:
        if _in_ci():
            pytest.fail("redis-server is required under CI (apt-get install -y redis-server)")
        pytest.skip("redis-server not found (apt-get install -y redis-server)")
    with tempfile.TemporaryDirectory(prefix="tokenrelay-redis-") as work:
        port = _free_port()
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                        s.sendall(b"PING\r\n")
                        if s.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}"
        finally:
            proc.kill()
            proc.wait()


class Balancer:
    """Sends each new connection to the next backend that is up (round
    robin); a backend taken out gets no new connection and those it
    carries are cut."""

    def __init__(self, backends: List[Tuple[str, int]]) -> None:
        self.backends = [[b, True] for b in backends]
        self.next = 0
        self.carried: List[Tuple[int, asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.server: Optional[asyncio.base_events.Server] = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def take_out(self, i: int) -> None:
        self.backends[i][1] = False
        for b, a, z in self.carried:
            if b == i:
                a.transport.abort()
                z.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up = [i for i in range(len(self.backends)) if self.backends[(self.next + i) % len(self.backends)][1]]
        if not up:
            writer.close()
            return
        i = (self.next + up[0]) % len(self.backends)
        self.next = i + 1
        host, port = self.backends[i][0]
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        self.carried.append((i, writer, up_writer))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        for _, a, z in self.carried:
            a.transport.abort()
            z.transport.abort()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def _addr(server: Server) -> Tuple[str, int]:
    host, port = server.http_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def test_a_client_moved_to_the_other_instance_mid_reply_gets_every_token_once(redis_url: str) -> None:
    args = [
        "--hub", redis_url,
        "--jwt-secret", SECRET,
        "--fault-injection",
        *RELAXED_LIMITS,
    ]
    with tempfile.TemporaryDirectory(prefix="tokenrelay-cluster-") as work:
        db = str(Path(work) / "store.sqlite3")
        binary = _server_binary()
        with Server(binary, args=args, org_name="cluster", db=db) as a, Server(
            binary, args=args, org_name="cluster-b", db=db
        ) as b:
            balancer = Balancer([_addr(a), _addr(b)])
            await balancer.start()
            try:
                # The app's backend mints keys on instance b, which stays in
                # rotation (any instance could: one store, one secret).
                admin = tokenrelay.AdminClient(b.http_url, a.org_key)
                provider = CountingProvider(admin, a.org_id)
                context = await new_context(admin)
                client = tokenrelay.Client(balancer.ws_url, token_provider=provider)
                async with client.connect(context) as conn:
                    request = await conn.send_message(LONG)
                    tokens = 0
                    while tokens < 20:
                        event = await asyncio.wait_for(conn.next_event(), WAIT)
                        if isinstance(event, ev.Token):
                            tokens += 1
                    # Instance a (the balancer's first pick) generates on;
                    # the client moves to b and gets the rest through Redis.
                    balancer.take_out(0)
                    reconnected = False
                    reply: Optional[tokenrelay.Response] = None
                    while reply is None:
                        event = await asyncio.wait_for(conn.next_event(), WAIT)
                        assert event is not None, "the connection ended"
                        if isinstance(event, ev.StateChanged) and event.state == "reconnecting":
                            reconnected = True
                        elif isinstance(event, ev.ResponseComplete) and event.response.request_id == request:
                            reply = event.response
                    assert reconnected, "the socket was cut"
                    assert reply.status == "complete", reply
                    assert reply.text == " ".join(f"t{i}" for i in range(300)), "every token once"
            finally:
                await balancer.close()
