"""``tokenrelay.testing`` and its pytest plugin, the helpers the package
ships for its users' tests: the fixture serves a working org, the binary is
found in the documented order (and a clear error names every place when it
is not), a stop/start keeps the address and the data, a failed start says
why, and the ``tokenrelay-server`` wheel puts the binary beside python."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tokenrelay
from tokenrelay import testing
from tokenrelay.testing import ReferenceServer, ServerNotFoundError, find_server_binary, start_reference_server

from conftest import _server_binary


# -- the fixture -------------------------------------------------------------


async def test_the_fixture_serves_a_bootstrapped_org(tokenrelay_server: ReferenceServer) -> None:
    assert tokenrelay_server.running
    assert tokenrelay_server.http_url.startswith("http://127.0.0.1:")
    assert tokenrelay_server.ws_url == tokenrelay_server.http_url.replace("http://", "ws://") + "/ws"
    admin = tokenrelay.AdminClient(tokenrelay_server.http_url, tokenrelay_server.org_key)
    agent = await admin.create_agent("fixture agent", "")
    context = await admin.create_context(agent.agent_id)

    async def provider(context_id: str) -> str:
        key = await admin.generate_client_key(tokenrelay_server.org_id, context_id=context_id)
        return str(key.token)

    client = tokenrelay.Client(tokenrelay_server.ws_url, token_provider=provider)
    async with client.connect(context.context_id) as conn:
        reply = await conn.ask("[echo] through the fixture")
    assert reply.text == "through the fixture"
    assert any("ready" in line for line in tokenrelay_server.log)


def test_the_org_key_is_never_in_the_repr(tokenrelay_server: ReferenceServer) -> None:
    assert tokenrelay_server.org_key not in repr(tokenrelay_server)
    assert tokenrelay_server.org_id in repr(tokenrelay_server)
    assert not any(tokenrelay_server.org_key in line for line in tokenrelay_server.log)


def test_the_plugin_is_registered_and_takes_a_binary_and_args(tmp_path: Path) -> None:
    """A user's project: no conftest of ours, only the installed plugin
    (the pytest11 entry point), a binary given on the command line and
    flags from an overridden ``tokenrelay_server_args``."""
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture(scope="session")
            def tokenrelay_server_args():
                return ["--scripted-pace-ms", "0"]
            """
        )
    )
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import tokenrelay

            def test_agents(tokenrelay_server):
                assert tokenrelay_server.args == ["--scripted-pace-ms", "0"]
                admin = tokenrelay.BlockingAdminClient(
                    tokenrelay_server.http_url, tokenrelay_server.org_key
                )
                agent = admin.create_agent("user agent", "")
                assert [a.agent_id for a in admin.list_agents()] == [agent.agent_id]
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != testing.ENV_VAR}
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--tokenrelay-server-bin", str(_server_binary()),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


# -- finding the binary ------------------------------------------------------


def fake_binary(directory: Path, name: str = testing.BINARY_NAME) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> "dict[str, Path]":
    """A binary in each place the lookup tries; python moved to a venv of
    its own, PATH reduced to one directory."""
    found = {
        "explicit": fake_binary(tmp_path / "explicit"),
        "env": fake_binary(tmp_path / "env"),
        "beside": fake_binary(tmp_path / "venv" / "bin"),
        "path": fake_binary(tmp_path / "on-path"),
    }
    monkeypatch.setenv(testing.ENV_VAR, str(found["env"]))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "on-path"))
    return found


def test_lookup_order(places: "dict[str, Path]", monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_server_binary(places["explicit"]) == places["explicit"]
    assert find_server_binary(str(places["explicit"])) == places["explicit"]
    assert find_server_binary() == places["env"]
    monkeypatch.delenv(testing.ENV_VAR)
    assert find_server_binary() == places["beside"]
    places["beside"].unlink()
    assert find_server_binary() == places["path"]


def test_nothing_found_names_every_place(places: "dict[str, Path]", monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(testing.ENV_VAR)
    places["beside"].unlink()
    places["path"].unlink()
    with pytest.raises(ServerNotFoundError) as error:
        find_server_binary()
    message = str(error.value)
    for place in (testing.ENV_VAR, sys.executable, "PATH", "pip install tokenrelay-server"):
        assert place in message, message
    # A FileNotFoundError: code catching that keeps working.
    assert isinstance(error.value, FileNotFoundError)


def test_an_explicit_choice_that_is_wrong_fails(
    places: "dict[str, Path]", tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No quiet fallback to another server than the one asked for."""
    with pytest.raises(ServerNotFoundError, match="the path given"):
        find_server_binary(tmp_path / "missing")
    monkeypatch.setenv(testing.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(ServerNotFoundError, match=testing.ENV_VAR):
        find_server_binary()
    not_executable = tmp_path / "plain"
    not_executable.write_text("")
    with pytest.raises(ServerNotFoundError, match="not an executable"):
        find_server_binary(not_executable)


def test_the_server_wheel_puts_the_binary_beside_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """test.sh installs the ``tokenrelay-server`` wheel into the venv and
    sets TOKENRELAY_EXPECT_SERVER_WHEEL; elsewhere the wheel is optional."""
    beside = Path(sys.executable).parent / testing.BINARY_NAME
    if not beside.exists() and not os.environ.get("TOKENRELAY_EXPECT_SERVER_WHEEL"):
        pytest.skip("the tokenrelay-server wheel is not installed in this venv")
    assert beside.is_file(), f"no {beside}: is the tokenrelay-server wheel installed?"
    monkeypatch.delenv(testing.ENV_VAR, raising=False)
    assert find_server_binary() == beside
    version = subprocess.run([str(beside), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.split() == ["tokenrelay-server", tokenrelay.__version__], version


# -- lifecycle ---------------------------------------------------------------


@pytest.mark.parametrize("graceful", [True, False], ids=["sigterm", "sigkill"])
def test_stop_then_start_keeps_the_address_and_the_data(graceful: bool) -> None:
    with start_reference_server(_server_binary(), args=["--drain-timeout-secs", "1"]) as server:
        urls = (server.http_url, server.ws_url)
        admin = tokenrelay.BlockingAdminClient(server.http_url, server.org_key)
        agent = admin.create_agent("kept agent", "")
        server.stop(graceful=graceful)
        assert not server.running
        server.stop()  # stopping a stopped server does nothing
        server.start()
        assert server.running
        assert (server.http_url, server.ws_url) == urls
        assert [a.agent_id for a in admin.list_agents()] == [agent.agent_id]
        assert sum("ready" in line for line in server.log) == 2, "one log across restarts"
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
        db = Path(server.db)
        assert db.exists()
    assert not server.running
    assert not db.exists(), "close() removes the store it created"


def test_a_server_that_cannot_start_says_why() -> None:
    with pytest.raises(RuntimeError, match="bootstrap exited") as error:
        start_reference_server(_server_binary(), args=["--no-such-flag"])
    assert "--no-such-flag" in str(error.value)
    # serve failing after a good bootstrap: the address is taken.
    with start_reference_server(_server_binary()) as first:
        taken = first.http_url.split("//", 1)[1]
        with pytest.raises(RuntimeError, match="exited with"):
            start_reference_server(_server_binary(), bind=taken)


def test_not_started_is_an_error_not_none() -> None:
    server = ReferenceServer(_server_binary())
    assert not server.running
    with pytest.raises(RuntimeError, match="not been started"):
        server.http_url
    server.close()  # closing a never-started server does nothing
