"""TLS with a private CA (issue #16): a TLS-terminating forwarder (Python's
``ssl``) in front of the real reference server, its certificate issued by a
CA made here with the ``openssl`` command. The client and the admin client
refuse it until given the CA with ``root_certificate_pem``, then work; plain
``ws://`` to a host that is not loopback is refused unless allowed."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import AsyncIterator, Tuple
from urllib.parse import urlparse

import pytest

import tokenrelay

from conftest import CountingProvider, Server, new_context

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def _make_pki(tmp: Path) -> Tuple[Path, Path, Path]:
    """A CA and a server certificate for localhost / 127.0.0.1 it issued:
    (ca.pem, server.pem, server.key)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=tokenrelay pytest CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (tmp / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def tls_forwarder(server: Server, tmp: Path) -> AsyncIterator[Tuple[int, str]]:
    """A TLS forwarder to the server on the running loop: its port and the
    CA's PEM. (Started in the test, not in a fixture, so that it runs on
    the test's own event loop.)"""
    ca, cert, key = _make_pki(tmp)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    upstream = urlparse(server.http_url)

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(upstream.hostname, upstream.port)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    listener = await asyncio.start_server(forward, "127.0.0.1", 0, ssl=context)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield port, ca.read_text()
    finally:
        listener.close()


async def test_wss_and_https_trust_a_private_ca_only_when_given(
    tmp_path: Path, server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider
) -> None:
    async with tls_forwarder(server, tmp_path) as (port, ca_pem):
        await _check_tls(port, ca_pem, server, admin, provider)


async def _check_tls(
    port: int,
    ca_pem: str,
    server: Server,
    admin: tokenrelay.AdminClient,
    provider: CountingProvider,
) -> None:
    ctx = await new_context(admin)
    url = f"wss://localhost:{port}/ws"

    untrusting = tokenrelay.Client(url, provider, connect_timeout=20, no_proxy=True)
    with pytest.raises(tokenrelay.TransportError) as refused:
        await untrusting.connect(ctx)
    assert "TLS" in str(refused.value) or "certificate" in str(refused.value), refused.value

    client = tokenrelay.Client(url, provider, root_certificate_pem=ca_pem, no_proxy=True)
    async with client.connect(ctx) as conn:
        reply = await conn.ask("[tokens=3] over TLS")
        assert reply.text == "t0 t1 t2"

    https = f"https://localhost:{port}"
    org_admin = tokenrelay.AdminClient(
        https, server.org_key, root_certificate_pem=ca_pem.encode(), no_proxy=True
    )
    assert any(a.agent_name == "pytest agent" for a in await org_admin.list_agents())
    # The CA survives a credential switch.
    await org_admin.with_credential(server.org_key).list_agents()
    with pytest.raises(tokenrelay.TransportError):
        await tokenrelay.AdminClient(https, server.org_key, no_proxy=True).list_agents()


def test_plaintext_to_another_host_needs_allow_insecure() -> None:
    with pytest.raises(tokenrelay.ConfigError):
        tokenrelay.Client("ws://example.com/ws", lambda ctx: "k")
    tokenrelay.Client("ws://example.com/ws", lambda ctx: "k", allow_insecure=True)
    tokenrelay.Client("ws://127.0.0.1:1/ws", lambda ctx: "k")
    with pytest.raises(tokenrelay.ConfigError):
        tokenrelay.AdminClient("http://example.com", "k")
    tokenrelay.AdminClient("http://example.com", "k", allow_insecure=True)
    with pytest.raises(tokenrelay.ConfigError):
        tokenrelay.Client("wss://example.com/ws", lambda ctx: "k", root_certificate_pem="junk")


async def test_app_endpoint_refuses_plaintext_off_loopback(
    server: Server, admin: tokenrelay.AdminClient
) -> None:
    ctx = await new_context(admin)
    endpoint = tokenrelay.providers.AppEndpoint("http://app.example/token")
    client = tokenrelay.Client(server.ws_url, endpoint, connect_timeout=20)
    # Refused before any request: the connection ends at once, typed.
    with pytest.raises(tokenrelay.ConfigError, match="allow_insecure"):
        await client.connect(ctx)
    with pytest.raises(TypeError):
        tokenrelay.providers.AppEndpoint("https://app.example/token", root_certificate_pem=42)  # type: ignore[arg-type]
