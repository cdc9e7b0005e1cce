"""The reference server in your own tests.

:func:`start_reference_server` runs the ``tokenrelay-server`` binary (the
``tokenrelay-server`` wheel installs it beside your venv's ``python``):
it bootstraps an org in a fresh SQLite file, serves on ``127.0.0.1:0``,
waits for the server's ready line and hands back the URLs and the org
key::

    from tokenrelay.testing import start_reference_server

    with start_reference_server(args=["--scripted-pace-ms", "0"]) as server:
        admin = tokenrelay.BlockingAdminClient(server.http_url, server.org_key)
        ...

Under pytest the plugin :mod:`tokenrelay.pytest_plugin` (registered with
the package, loaded by pytest itself) gives the same as a session-scoped
``tokenrelay_server`` fixture. This module itself never imports pytest.

The server's scripted engine answers from directives in the message
(``[echo] hi``, ``[tokens=200 pace_ms=5]``, ``[tool=web_search]``; see the
reference server's ENGINE.md), so tests are deterministic and offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, List, Mapping, Optional, Sequence, Type, Union
from urllib.parse import urlsplit

__all__ = [
    "BINARY_NAME",
    "ENV_VAR",
    "ReferenceServer",
    "ServerNotFoundError",
    "find_server_binary",
    "start_reference_server",
]

#: The executable's name, as cargo and the ``tokenrelay-server`` wheel
#: install it.
BINARY_NAME = "tokenrelay-server"

#: The environment variable naming the binary to use (wins over the venv
#: and ``PATH``).
ENV_VAR = "TOKENRELAY_SERVER_BIN"

# The server logs `… ready http=http://127.0.0.1:PORT ws=ws://127.0.0.1:PORT/ws`
# once it listens (reference-server/src/main.rs); with port 0 this line is
# the only place the bound port is told.
_READY = re.compile(r"\bready\b.*\bhttp=(\S+).*\bws=(\S+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

PathArg = Union[str, "os.PathLike[str]"]


class ServerNotFoundError(FileNotFoundError):
    """No ``tokenrelay-server`` binary where one was asked for or looked
    for; the message names every place tried and how to get one."""


def find_server_binary(path: Optional[PathArg] = None) -> Path:
    """The ``tokenrelay-server`` executable to run.

    Looked for, first match wins: ``path`` when given; the
    ``TOKENRELAY_SERVER_BIN`` environment variable; a ``tokenrelay-server``
    beside ``sys.executable`` (where ``pip install tokenrelay-server`` puts
    it in a venv, even when the venv is not activated); ``PATH``.

    An explicit ``path`` or ``TOKENRELAY_SERVER_BIN`` that is not an
    executable file is an error, not a reason to look further: a test run
    must not quietly use another server than the one asked for.

    Raises:
        ServerNotFoundError: nothing found; the message lists the places.
    """
    if path is not None:
        return _executable(Path(path), "the path given")
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return _executable(Path(explicit), ENV_VAR)
    # Not resolved: a venv's python is often a symlink to the system one,
    # and the wheel's binary sits in the venv's bin, beside the link.
    beside = Path(sys.executable).parent / BINARY_NAME
    if _is_executable(beside):
        return beside
    on_path = shutil.which(BINARY_NAME)
    if on_path:
        return Path(on_path)
    raise ServerNotFoundError(
        f"no {BINARY_NAME} binary found: none given, {ENV_VAR} is not set, "
        f"none beside {sys.executable} ({beside}) and none on PATH. "
        f"Install it with `pip install tokenrelay-server`, or build it with "
        f"`cargo build --release -p tokenrelay-server` and set {ENV_VAR} to "
        f"target/release/{BINARY_NAME}."
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _executable(path: Path, source: str) -> Path:
    if not _is_executable(path):
        raise ServerNotFoundError(f"{source} names {path}, which is not an executable file")
    return path


class ReferenceServer:
    """One reference server process and the org bootstrapped in its store.

    Built stopped; :meth:`start` (or ``with``) bootstraps the org on the
    first start and serves. :meth:`stop` and :meth:`start` again restart it
    on the same address and store, as a deployment's restart would (what a
    client's reconnect tests need). :meth:`close` stops it for good and
    removes the store it created.

    Most code calls :func:`start_reference_server` instead of this
    constructor; subclass it to add helpers of your own.

    Args:
        binary: the executable; ``None`` looks it up with
            :func:`find_server_binary`.
        args: more flags for the server (``--scripted-pace-ms 0``,
            ``--fault-injection``, limits, ``--base-protocol``; see
            ``tokenrelay-server --help``). They are global flags, passed to
            ``bootstrap`` and ``serve`` alike.
        org_name: the bootstrapped org's name.
        credits: the org's credits (``None``: unlimited).
        db: the store (a SQLite path or a ``postgres://`` URL); ``None``
            creates a SQLite file in a temporary directory, removed by
            :meth:`close`. Not ``:memory:``: bootstrap and serve are two
            processes.
        bind: the address to serve on; port 0 picks a free port.
        env: environment variables for the server, over ``os.environ``.
        startup_timeout: seconds to wait for the ready line.
    """

    def __init__(
        self,
        binary: Optional[PathArg] = None,
        *,
        args: Sequence[str] = (),
        org_name: str = "test",
        credits: Optional[int] = None,
        db: Optional[str] = None,
        bind: str = "127.0.0.1:0",
        env: Optional[Mapping[str, str]] = None,
        startup_timeout: float = 30.0,
    ) -> None:
        #: The executable run.
        self.binary: Path = find_server_binary(binary)
        #: The extra flags given.
        self.args: List[str] = list(args)
        #: Every line the server has logged (stderr, colours stripped),
        #: across restarts. The server never logs a credential.
        self.log: List[str] = []
        self._org_name = org_name
        self._credits = credits
        self._db = db
        self._bind = bind
        self._env = dict(env or {})
        self._startup_timeout = startup_timeout
        self._tmp: Optional[tempfile.TemporaryDirectory[str]] = None
        self._proc: Optional[subprocess.Popen[str]] = None
        self._reader: Optional[threading.Thread] = None
        self._http_url: Optional[str] = None
        self._ws_url: Optional[str] = None
        self._org_id: Optional[str] = None
        self._org_key: Optional[str] = None

    # -- what tests use --------------------------------------------------

    @property
    def http_url(self) -> str:
        """REST base URL, ``http://127.0.0.1:PORT``."""
        return self._started(self._http_url)

    @property
    def ws_url(self) -> str:
        """WebSocket URL, ``ws://127.0.0.1:PORT/ws``."""
        return self._started(self._ws_url)

    @property
    def org_id(self) -> str:
        """The bootstrapped org's id."""
        return self._started(self._org_id)

    @property
    def org_key(self) -> str:
        """The bootstrapped org's API key (server-side credential: give
        clients keys minted with it, as a backend would)."""
        return self._started(self._org_key)

    @property
    def db(self) -> str:
        """The store the server uses (kept across :meth:`stop`/:meth:`start`)."""
        return self._started(self._db)

    @property
    def running(self) -> bool:
        """Whether the server process is running."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "ReferenceServer":
        """Starts the server and returns once it accepts connections.

        The first start creates the store (unless ``db`` was given) and
        bootstraps the org; a later one serves the same store on the
        address the first one bound, so URLs, keys and data stay valid.

        Raises:
            RuntimeError: it is already running, bootstrap failed, or the
                server exited or gave no ready line within
                ``startup_timeout`` (the message holds its log).
        """
        if self.running:
            raise RuntimeError("the reference server is already running")
        if self._org_key is None:
            self._bootstrap()
            bind = self._bind
        else:
            # The address the first start bound (port 0 became a real
            # port): clients reconnect to the URLs they were given.
            bind = urlsplit(self.http_url).netloc
        self._serve(bind)
        return self

    def stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        """Stops the server and waits until it has exited.

        ``graceful`` sends SIGTERM: the server drains (refuses new work,
        closes sockets with 1001, lets running replies finish for
        ``--drain-timeout-secs``, default 30) and exits; after ``timeout``
        seconds it is killed. ``graceful=False`` kills it at once
        (SIGKILL, as ``kill -9`` or a crash: no close frames). Stopping a
        stopped server does nothing.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            if graceful:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
            else:
                proc.kill()
            proc.wait()
        # The reader ends at EOF once the process is gone: the log is whole.
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._proc = None
        self._reader = None

    def close(self) -> None:
        """Stops the server (gracefully, killed after 10 s) and removes the
        store it created. It cannot be started again."""
        try:
            self.stop(graceful=True, timeout=10.0)
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def __enter__(self) -> "ReferenceServer":
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never the org key: reprs end up in test reports and logs.
        state = "running" if self.running else "stopped"
        return f"<ReferenceServer {state} http_url={self._http_url!r} org_id={self._org_id!r}>"

    # -- internals --------------------------------------------------------

    def _started(self, value: Optional[str]) -> str:
        if value is None:
            raise RuntimeError("the reference server has not been started (call start())")
        return value

    def _environ(self) -> "dict[str, str]":
        env = dict(os.environ)
        # The ready line is parsed as text at level info: a developer's
        # own TOKENRELAY_LOG / TOKENRELAY_LOG_JSON must not hide it.
        env.pop("TOKENRELAY_LOG_JSON", None)
        env["TOKENRELAY_LOG"] = "info"
        env["NO_COLOR"] = "1"
        env.update(self._env)
        return env

    def _bootstrap(self) -> None:
        if self._db is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tokenrelay-test-")
            self._db = str(Path(self._tmp.name) / "store.sqlite3")
        cmd = [str(self.binary), "--db", self._db, *self.args, "bootstrap", "--org-name", self._org_name]
        if self._credits is not None:
            cmd += ["--credits", str(self._credits)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=self._environ())
        if done.returncode != 0:
            # stderr only: stdout would hold the key had it got that far.
            raise RuntimeError(
                f"{BINARY_NAME} bootstrap exited with {done.returncode}:\n{done.stderr}"
            )
        fields = dict(line.split("=", 1) for line in done.stdout.split() if "=" in line)
        try:
            self._org_id = fields["org_id"]
            self._org_key = fields["org_api_key"]
        except KeyError:
            raise RuntimeError(
                f"{BINARY_NAME} bootstrap printed no org_id/org_api_key (fields: {sorted(fields)})"
            ) from None

    def _serve(self, bind: str) -> None:
        assert self._db is not None
        proc = subprocess.Popen(
            [str(self.binary), "--db", self._db, "--bind", bind, *self.args, "serve"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=self._environ(),
        )
        assert proc.stderr is not None
        ready = threading.Event()
        urls: List[str] = []
        first = len(self.log)

        # One thread reads stderr for the process's whole life: it finds
        # the ready line, then keeps draining so the server never blocks
        # on a full pipe. EOF (the process died) also wakes the waiter.
        def read(stderr: IO[str]) -> None:
            for raw in stderr:
                line = _ANSI.sub("", raw.rstrip("\n"))
                self.log.append(line)
                if not ready.is_set():
                    found = _READY.search(line)
                    if found:
                        urls.extend(found.groups())
                        ready.set()
            ready.set()

        reader = threading.Thread(target=read, args=(proc.stderr,), name="tokenrelay-server-log", daemon=True)
        reader.start()
        self._proc, self._reader = proc, reader
        if not ready.wait(self._startup_timeout) or not urls:
            if ready.is_set():
                # EOF before a ready line: the server is exiting; its
                # status says why better than a timeout would.
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            exited = proc.poll()
            self.stop(graceful=False)
            why = (
                f"exited with {exited}"
                if exited is not None
                else f"gave no ready line within {self._startup_timeout} s"
            )
            raise RuntimeError(f"{BINARY_NAME} {why}; its log:\n" + "\n".join(self.log[first:]))
        http_url, ws_url = urls
        if self._http_url is not None and (http_url, ws_url) != (self._http_url, self._ws_url):
            self.stop(graceful=False)
            raise RuntimeError(f"the restarted server listens on {http_url}, not {self._http_url}")
        self._http_url, self._ws_url = http_url, ws_url


def start_reference_server(
    binary: Optional[PathArg] = None,
    *,
    args: Sequence[str] = (),
    org_name: str = "test",
    credits: Optional[int] = None,
    db: Optional[str] = None,
    bind: str = "127.0.0.1:0",
    env: Optional[Mapping[str, str]] = None,
    startup_timeout: float = 30.0,
) -> ReferenceServer:
    """Starts a reference server with a freshly bootstrapped org and
    returns it running; use it in a ``with`` block (or call
    :meth:`ReferenceServer.close`) to stop it and remove its store.

    The arguments are :class:`ReferenceServer`'s::

        with start_reference_server(args=["--scripted-pace-ms", "0"]) as server:
            client = tokenrelay.Client(server.ws_url, token_provider=...)
    """
    server = ReferenceServer(
        binary,
        args=args,
        org_name=org_name,
        credits=credits,
        db=db,
        bind=bind,
        env=env,
        startup_timeout=startup_timeout,
    )
    try:
        return server.start()
    except BaseException:
        server.close()
        raise
