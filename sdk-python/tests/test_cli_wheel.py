"""The ``tokenrelay-cli`` wheel (cli/pyproject.toml, maturin ``bindings =
"bin"``): installed into the venv by test.sh, it puts the ``tokenrelay``
command beside python, and that command works against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tokenrelay

from conftest import Server

CLI = Path(sys.executable).parent / "tokenrelay"


@pytest.fixture
def cli() -> Path:
    """The wheel's binary; test.sh sets TOKENRELAY_EXPECT_CLI_WHEEL, so
    there a missing binary fails instead of skipping."""
    if not CLI.exists() and not os.environ.get("TOKENRELAY_EXPECT_CLI_WHEEL"):
        pytest.skip("the tokenrelay-cli wheel is not installed in this venv")
    assert CLI.is_file(), f"no {CLI}: is the tokenrelay-cli wheel installed?"
    return CLI


def test_the_cli_wheel_puts_tokenrelay_beside_python(cli: Path) -> None:
    out = subprocess.run([str(cli), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["tokenrelay", tokenrelay.__version__], out


def test_the_wheels_cli_creates_and_lists_an_agent(cli: Path, server: Server) -> None:
    env = {
        **os.environ,
        "TOKENRELAY_URL": server.http_url,
        "TOKENRELAY_API_KEY": server.org_key,
        # No user config file of the machine running the tests.
        "TOKENRELAY_CONFIG": os.devnull,
    }

    def run(*args: str) -> object:
        done = subprocess.run([str(cli), "--json", *args], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    created = run("agents", "create", "--name", "from the wheel")
    assert isinstance(created, dict), created
    listed = run("agents", "list")
    assert isinstance(listed, list), listed
    assert created["agent_id"] in [a["agent_id"] for a in listed]
