"""Test harness: one real reference server for the whole session (the
binary built once with cargo, fault injection on, its own SQLite file in a
temp dir, listening on 127.0.0.1:0)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import httpx
import pytest

import tokenrelay

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "tests" / "scenarios"


@dataclass
class Server:
    """A running reference server and its bootstrapped org."""

    http_url: str
    ws_url: str
    org_id: str
    org_key: str
    log: List[str]

    async def fault(self, context_id: str, fault: str) -> None:
        """Injects a server-side fault (`drop`, `close_4001`, …)."""
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{self.http_url}/debug/faults",
                headers={"Authorization": f"Bearer {self.org_key}"},
                json={"context_id": context_id, "fault": fault},
            )
            r.raise_for_status()


def _server_binary() -> Path:
    explicit = os.environ.get("TOKENRELAY_SERVER_BIN")
    if explicit:
        return Path(explicit)
    # Built once per session; a no-op when the binary is up to date.
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


def _serve(
    binary: Path, common: List[str], bind: str, extra: List[str]
) -> "tuple[subprocess.Popen[str], tuple[str, str], List[str]]":
    """Starts ``serve`` on ``bind`` and waits for its ready line; returns the
    process, its (http, ws) URLs and its log (kept drained)."""
    env = dict(os.environ, TOKENRELAY_LOG="info", NO_COLOR="1")
    proc = subprocess.Popen(
        [str(binary), *common, "--bind", bind, "--fault-injection", *RELAXED_LIMITS, *extra, "serve"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    log: List[str] = []
    ready = re.compile(r"ready.*http=(\S+).*ws=(\S+)")
    urls: Optional[re.Match[str]] = None
    for line in proc.stderr:
        log.append(line)
        urls = ready.search(re.sub(r"\x1b\[[0-9;]*m", "", line))
        if urls:
            break
    if not urls:
        proc.kill()
        raise RuntimeError("the server did not start:\n" + "".join(log))
    stderr = proc.stderr

    # Keep draining the log so the server never blocks on a full pipe.
    def drain() -> None:
        for line in stderr:
            log.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return proc, (urls.group(1), urls.group(2)), log


@contextlib.contextmanager
def run_server(
    rate_limit: int = 1_000_000, credits: Optional[int] = None, base_protocol: bool = False
) -> Iterator[Server]:
    """Bootstraps an org in a fresh store and serves it on 127.0.0.1:0;
    ``base_protocol`` starts it with ``--base-protocol`` (the hosted
    service's behaviour: no extensions, results after the reply)."""
    binary = _server_binary()
    with tempfile.TemporaryDirectory(prefix="tokenrelay-pytest-") as tmp:
        db = str(Path(tmp) / "store.sqlite3")
        common = ["--db", db, "--rate-limit-per-minute", str(rate_limit), "--scripted-pace-ms", "0"]
        boot = [str(binary), *common, "bootstrap", "--org-name", "pytest"]
        if credits is not None:
            boot += ["--credits", str(credits)]
        out = subprocess.run(boot, check=True, capture_output=True, text=True).stdout
        fields = dict(line.split("=", 1) for line in out.split() if "=" in line)
        extra = ["--base-protocol"] if base_protocol else []
        proc, urls, log = _serve(binary, common, "127.0.0.1:0", extra)
        try:
            yield Server(
                http_url=urls[0],
                ws_url=urls[1],
                org_id=fields["org_id"],
                org_key=fields["org_api_key"],
                log=log,
            )
        finally:
            proc.terminate()
            proc.wait(timeout=10)


class RestartableServer(Server):
    """A server that can be stopped (SIGTERM: graceful; SIGKILL: as
    ``kill -9``) and started again on the same address and store."""

    def __init__(self, binary: Path, common: List[str], fields: "dict[str, str]") -> None:
        self._binary = binary
        self._common = common
        self._proc, (http_url, ws_url), log = _serve(binary, common, "127.0.0.1:0", [])
        super().__init__(http_url, ws_url, fields["org_id"], fields["org_api_key"], log)

    def stop(self, graceful: bool) -> None:
        """Stops the server and waits until it has exited."""
        if graceful:
            self._proc.terminate()
        else:
            self._proc.kill()
        self._proc.wait(timeout=30)

    def start(self) -> None:
        """Starts the server again on the address it had (same store)."""
        bind = self.http_url.split("//", 1)[1].split("/", 1)[0]
        self._proc, urls, self.log = _serve(self._binary, self._common, bind, [])
        assert urls == (self.http_url, self.ws_url), urls


@contextlib.contextmanager
def restartable_server() -> Iterator[RestartableServer]:
    """A fresh store and org served on 127.0.0.1:0, restartable in place."""
    binary = _server_binary()
    with tempfile.TemporaryDirectory(prefix="tokenrelay-pytest-") as tmp:
        common = [
            "--db", str(Path(tmp) / "store.sqlite3"),
            "--rate-limit-per-minute", "1000000",
            "--scripted-pace-ms", "0",
        ]
        out = subprocess.run(
            [str(binary), *common, "bootstrap", "--org-name", "pytest"],
            check=True, capture_output=True, text=True,
        ).stdout
        fields = dict(line.split("=", 1) for line in out.split() if "=" in line)
        server = RestartableServer(binary, common, fields)
        try:
            yield server
        finally:
            server._proc.kill()
            server._proc.wait(timeout=10)


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
