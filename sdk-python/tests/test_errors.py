"""Refusals map to the right exception classes."""

from __future__ import annotations

import pytest

import tokenrelay

from conftest import Server, client_for, new_context


async def test_connect_refusals(server: Server, admin: tokenrelay.AdminClient) -> None:
    ctx = await new_context(admin)
    other = await new_context(admin)
    # A key scoped to another context: forbidden, at once.
    scoped = (await admin.generate_client_key(server.org_id, context_id=other))["token"]
    with pytest.raises(tokenrelay.ForbiddenError):
        await client_for(server, tokenrelay.Static(scoped)).connect(ctx)
    # An unknown context.
    with pytest.raises(tokenrelay.NotFoundError):
        await client_for(server, tokenrelay.OrgKey(admin, server.org_id)).connect("no-such-context")
    # A garbage key: unauthorized, retried until the connect timeout.
    with pytest.raises(tokenrelay.AuthError):
        await client_for(server, tokenrelay.Static("garbage"), connect_timeout=1.5).connect(ctx)


async def test_provider_errors_keep_their_class(server: Server, admin: tokenrelay.AdminClient) -> None:
    ctx = await new_context(admin)

    async def refuse(context_id: str) -> str:
        raise tokenrelay.ForbiddenError("this user may not open " + context_id)

    with pytest.raises(tokenrelay.ForbiddenError, match="may not open"):
        await client_for(server, refuse).connect(ctx)

    def broken(context_id: str) -> str:
        raise RuntimeError("backend down")

    with pytest.raises(tokenrelay.TokenProviderError, match="backend down"):
        await client_for(server, broken, connect_timeout=1.0).connect(ctx)


async def test_rest_refusals(server: Server, admin: tokenrelay.AdminClient) -> None:
    with pytest.raises(tokenrelay.AuthError) as e:
        await tokenrelay.AdminClient(server.http_url, "bad-key").list_agents()
    assert e.value.status == 401
    with pytest.raises(tokenrelay.NotFoundError) as nf:
        await admin.get_agent("no-such-agent")
    assert nf.value.status == 404
    with pytest.raises(tokenrelay.InvalidRequestError):
        await admin.stream_token(ttl=0)
    with pytest.raises(tokenrelay.TransportError):
        await tokenrelay.AdminClient("http://127.0.0.1:1", "k").me()
    # A client key may not call REST.
    ctx = await new_context(admin)
    key = (await admin.generate_client_key(server.org_id, context_id=ctx))["token"]
    with pytest.raises((tokenrelay.ForbiddenError, tokenrelay.AuthError)):
        await admin.with_credential(key).list_agents()


def test_hierarchy_mirrors_the_core() -> None:
    from tokenrelay.errors import _from_native

    r = _from_native("rate_limited", "slow down", "rate_limited", 429, 2.5)
    assert isinstance(r, tokenrelay.RateLimitedError) and r.retry_after == 2.5
    assert isinstance(_from_native("payment_required", "m", "invalid_billing", 402, None), tokenrelay.PaymentRequiredError)
    assert isinstance(_from_native("timeout", "m", None, None, None), TimeoutError)
    assert isinstance(_from_native("closed", "m", None, None, None), tokenrelay.ConnectionClosed)
    assert isinstance(_from_native("protocol", "m", None, None, None), tokenrelay.ProtocolError)
    for kind in ("unauthorized", "forbidden", "not_found", "server", "transport", "config"):
        err = _from_native(kind, "m", None, None, None)
        assert isinstance(err, tokenrelay.Error) and err.kind == kind


async def test_rate_limited_and_payment_required() -> None:
    from conftest import run_server

    with run_server(rate_limit=2) as strict:
        admin = tokenrelay.AdminClient(strict.http_url, strict.org_key)
        with pytest.raises(tokenrelay.RateLimitedError) as e:
            for _ in range(10):
                await admin.stream_token()
        assert e.value.status == 429
        assert e.value.retry_after is not None and e.value.retry_after > 0
    with run_server(credits=0) as broke:
        admin = tokenrelay.AdminClient(broke.http_url, broke.org_key)
        with pytest.raises(tokenrelay.PaymentRequiredError) as p:
            await admin.stream_token()
        assert p.value.status == 402
