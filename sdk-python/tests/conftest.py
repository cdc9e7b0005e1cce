"""Test harness: one real reference server for the whole session (fault
injection on, relaxed limits, its own SQLite file in a temp dir, listening
on 127.0.0.1:0), started with :mod:`tokenrelay.testing`, the helper the
package ships for its users' tests. The binary: ``TOKENRELAY_SERVER_BIN``,
else the ``tokenrelay-server`` wheel's beside this venv's python (test.sh
installs it), else PATH, else built here with cargo."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, List, Optional

import httpx
import pytest

import tokenrelay
from tokenrelay.testing import ReferenceServer, ServerNotFoundError, find_server_binary

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "tests" / "scenarios"


class Server(ReferenceServer):
    """A running reference server and its bootstrapped org, plus what only
    this suite needs (fault injection)."""

    async def fault(self, context_id: str, fault: str) -> int:
        """Injects a server-side fault (`drop`, `close_4001`, …); returns
        how many sockets got it."""
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{self.http_url}/debug/faults",
                headers={"Authorization": f"Bearer {self.org_key}"},
                json={"context_id": context_id, "fault": fault},
            )
            r.raise_for_status()
            return int(r.json()["sockets"])


#: The restart tests' server: the same class (stop()/start() keep the
#: address and the store); the name says what they use it for.
RestartableServer = Server


def _server_binary() -> Path:
    try:
        return find_server_binary()
    except ServerNotFoundError:
        pass
    # A checkout without the server wheel: built once per session (a no-op
    # when the binary is up to date).
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "tokenrelay-server"],
        cwd=REPO,
        check=True,
    )
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "tokenrelay-server"


# The server's abuse limits are tested by its own suite; here they stay out
# of the way of functional tests (the admin test registers an account).
RELAXED_LIMITS = [
    "--open-registration",
    "--registration-credits", "1000000",
    "--socket-frame-burst", "100000",
    "--socket-frames-per-sec", "100000",
    "--max-pending-invocations", "10000",
    "--max-sockets-per-ip", "100000",
    # A graceful stop (the restart tests) lets running replies finish for
    # this long, not the default 30 s: the tests' replies run for seconds.
    "--drain-timeout-secs", "1",
]


def _args(rate_limit: int, extra: List[str]) -> List[str]:
    return [
        "--rate-limit-per-minute", str(rate_limit),
        "--scripted-pace-ms", "0",
        "--fault-injection",
        *RELAXED_LIMITS,
        *extra,
    ]


@contextlib.contextmanager
def run_server(
    rate_limit: int = 1_000_000, credits: Optional[int] = None, base_protocol: bool = False
) -> Iterator[Server]:
    """Bootstraps an org in a fresh store and serves it on 127.0.0.1:0;
    ``base_protocol`` starts it with ``--base-protocol`` (the hosted
    service's behaviour: no extensions, results after the reply)."""
    extra = ["--base-protocol"] if base_protocol else []
    server = Server(_server_binary(), args=_args(rate_limit, extra), org_name="pytest", credits=credits)
    with server:
        yield server


@contextlib.contextmanager
def restartable_server() -> Iterator[Server]:
    """A fresh store and org served on 127.0.0.1:0, restartable in place
    (``stop(graceful)``, then ``start()``)."""
    with run_server() as server:
        yield server


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    with run_server() as s:
        yield s


@pytest.fixture(scope="session")
def base_server() -> Iterator[Server]:
    """A second server, in base-protocol mode (``--base-protocol``)."""
    with run_server(base_protocol=True) as s:
        yield s


@pytest.fixture
def admin(server: Server) -> tokenrelay.AdminClient:
    """An async admin client with the org key."""
    return tokenrelay.AdminClient(server.http_url, server.org_key)


@pytest.fixture
def blocking_admin(server: Server) -> tokenrelay.BlockingAdminClient:
    """A blocking admin client with the org key."""
    return tokenrelay.BlockingAdminClient(server.http_url, server.org_key)


async def new_context(
    admin: tokenrelay.AdminClient, prompt: str = "", speaks_first: bool = False
) -> str:
    """A context on a fresh agent."""
    agent = await admin.create_agent(
        "pytest agent",
        prompt,
        agent_description="pytest",
        agent_speaks_first=speaks_first,
    )
    context = await admin.create_context(agent.agent_id)
    return str(context.context_id)


class CountingProvider:
    """Mints a client key scoped to the context per call and counts calls."""

    def __init__(self, admin: tokenrelay.AdminClient, org_id: str) -> None:
        self.admin = admin
        self.org_id = org_id
        self.calls = 0

    async def __call__(self, context_id: str) -> str:
        self.calls += 1
        key = await self.admin.generate_client_key(self.org_id, context_id=context_id)
        return str(key.token)


@pytest.fixture
def provider(admin: tokenrelay.AdminClient, server: Server) -> CountingProvider:
    return CountingProvider(admin, server.org_id)


def client_for(server: Server, token_provider: Any, **kw: Any) -> tokenrelay.Client:
    return tokenrelay.Client(server.ws_url, token_provider=token_provider, **kw)


sys.path.insert(0, str(REPO / "examples"))
