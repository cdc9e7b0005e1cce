"""pytest plugin: a reference server for the whole test session.

Installed with the ``tokenrelay`` package and loaded by pytest itself (the
``pytest11`` entry point), it adds one fixture::

    def test_reply(tokenrelay_server):
        admin = tokenrelay.BlockingAdminClient(
            tokenrelay_server.http_url, tokenrelay_server.org_key
        )
        ...

``tokenrelay_server`` is a running :class:`tokenrelay.testing.ReferenceServer`,
started once per session on ``127.0.0.1:0`` with a bootstrapped org, and
stopped (its store removed) at the end. The binary is looked up as
:func:`tokenrelay.testing.find_server_binary` does, or given with
``--tokenrelay-server-bin PATH``. Override the ``tokenrelay_server_args``
fixture to pass server flags::

    @pytest.fixture(scope="session")
    def tokenrelay_server_args():
        return ["--scripted-pace-ms", "0", "--fault-injection"]

Kept apart from :mod:`tokenrelay.testing` so that module never needs
pytest; disable the plugin with ``-p no:tokenrelay``.
"""

from __future__ import annotations

from typing import Iterator, List, Optional

import pytest

from .testing import ReferenceServer, start_reference_server

__all__ = ["tokenrelay_server", "tokenrelay_server_args"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Adds ``--tokenrelay-server-bin``."""
    group = parser.getgroup("tokenrelay", "tokenrelay reference server")
    group.addoption(
        "--tokenrelay-server-bin",
        default=None,
        metavar="PATH",
        help="the tokenrelay-server binary for the tokenrelay_server fixture "
        "(default: $TOKENRELAY_SERVER_BIN, then beside python, then PATH)",
    )


@pytest.fixture(scope="session")
def tokenrelay_server_args() -> List[str]:
    """Extra flags for the ``tokenrelay_server`` fixture's server (none by
    default); override this fixture in a ``conftest.py`` to set some."""
    return []


@pytest.fixture(scope="session")
def tokenrelay_server(
    request: pytest.FixtureRequest, tokenrelay_server_args: List[str]
) -> Iterator[ReferenceServer]:
    """A reference server with a bootstrapped org, shared by the session:
    ``http_url``, ``ws_url``, ``org_id``, ``org_key``, ``log``."""
    binary: Optional[str] = request.config.getoption("tokenrelay_server_bin")
    with start_reference_server(binary, args=tokenrelay_server_args, org_name="pytest") as server:
        yield server
