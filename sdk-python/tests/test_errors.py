"""Refusals map to the right exception classes."""

from __future__ import annotations

from typing import Callable, Type

import httpx
import pytest

import tokenrelay

from conftest import Server, client_for, new_context


async def test_connect_refusals(server: Server, admin: tokenrelay.AdminClient) -> None:
    ctx = await new_context(admin)
    other = await new_context(admin)
    # A key scoped to another context: forbidden, at once.
    scoped = (await admin.generate_client_key(server.org_id, context_id=other)).token
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
    key = (await admin.generate_client_key(server.org_id, context_id=ctx)).token
    with pytest.raises((tokenrelay.ForbiddenError, tokenrelay.AuthError)):
        await admin.with_credential(key).list_agents()


# The class of every core error kind (sdk-core `ErrorKind`). The binding's
# own table is an exhaustive match in sdk-python/src/errors.rs; this one is
# what it must say, so a kind the core adds fails here until it has a class.
EXPECTED_CLASS = {
    "unauthorized": tokenrelay.AuthError,
    "forbidden": tokenrelay.ForbiddenError,
    "not_found": tokenrelay.NotFoundError,
    "rate_limited": tokenrelay.RateLimitedError,
    "payment_required": tokenrelay.PaymentRequiredError,
    "invalid_request": tokenrelay.InvalidRequestError,
    "server": tokenrelay.ServerError,
    "protocol": tokenrelay.ProtocolError,
    "timeout": tokenrelay.TimeoutError,
    "connection_lost": tokenrelay.ConnectionLostError,
    "closed": tokenrelay.ConnectionClosed,
    "token_provider": tokenrelay.TokenProviderError,
    "expired_token": tokenrelay.ExpiredTokenError,
    "transport": tokenrelay.TransportError,
    "queue_full": tokenrelay.QueueFullError,
    "queue_expired": tokenrelay.QueueExpiredError,
    "closed_before_sent": tokenrelay.ClosedBeforeSentError,
    "events_dropped": tokenrelay.EventsDroppedError,
    "config": tokenrelay.ConfigError,
}


def test_every_core_error_kind_has_its_own_class() -> None:
    from tokenrelay import _native

    kinds = _native.error_kinds_for_tests()
    assert sorted(kinds) == sorted(EXPECTED_CLASS)
    for kind in kinds:
        err = _native.sample_error_for_tests(kind)
        # Exactly the class, never the `Error` base or a neighbour.
        assert type(err) is EXPECTED_CLASS[kind], (kind, type(err))
        assert err.kind == kind
        assert isinstance(err, tokenrelay.Error)
    limited = _native.sample_error_for_tests("rate_limited")
    assert isinstance(limited, tokenrelay.RateLimitedError) and limited.retry_after == 1.0
    assert isinstance(_native.sample_error_for_tests("timeout"), TimeoutError)


def _http_error(status: int) -> Exception:
    """What `response.raise_for_status()` raises in an httpx provider."""
    request = httpx.Request("POST", "http://backend.invalid/api/get-client-token")
    response = httpx.Response(status, request=request)
    return httpx.HTTPStatusError(f"backend answered HTTP {status}", request=request, response=response)


# The same failures, with the same classes, as sdk-wasm/tests/errors.test.js
# and the Kotlin suite (ClientTests.kt, "provider failures"): the core's
# one rule for a failed provider (`Error::from_provider`) decides.
PROVIDER_FAILURES = [
    ("status 500", lambda: _http_error(500), tokenrelay.ServerError),
    ("status 401", lambda: _http_error(401), tokenrelay.AuthError),
    ("status 403", lambda: _http_error(403), tokenrelay.ForbiddenError),
    ("status 429", lambda: _http_error(429), tokenrelay.RateLimitedError),
    ("timeout", lambda: TimeoutError("the backend did not answer"), tokenrelay.TokenProviderError),
    ("no status", lambda: RuntimeError("backend down"), tokenrelay.TokenProviderError),
]


def _urllib_error(status: int) -> Exception:
    import urllib.error
    from email.message import Message

    return urllib.error.HTTPError("http://backend.invalid", status, "unavailable", Message(), None)


# Where else Python HTTP clients put the status, and the SDK's own class.
PROVIDER_FAILURES += [
    ("urllib code 503", lambda: _urllib_error(503), tokenrelay.ServerError),
    ("own class wins", lambda: tokenrelay.NotFoundError("no such user", status=500), tokenrelay.NotFoundError),
]


@pytest.mark.parametrize(("case", "failure", "expected"), PROVIDER_FAILURES, ids=[c[0] for c in PROVIDER_FAILURES])
async def test_a_failed_provider_is_classified_as_in_every_binding(
    server: Server,
    admin: tokenrelay.AdminClient,
    case: str,
    failure: Callable[[], Exception],
    expected: Type[tokenrelay.Error],
) -> None:
    ctx = await new_context(admin)
    calls = 0

    async def provider(context_id: str) -> str:
        nonlocal calls
        calls += 1
        raise failure()

    with pytest.raises(tokenrelay.Error) as e:
        await client_for(server, provider, connect_timeout=1.0).connect(ctx)
    assert type(e.value) is expected, (case, e.value)
    if expected is tokenrelay.ForbiddenError:
        assert calls == 1  # terminal: not retried
    if case == "status 500":
        assert e.value.status == 500


async def test_rate_limited_and_payment_required() -> None:
    from conftest import run_server

    with run_server(rate_limit=2) as strict:
        admin = tokenrelay.AdminClient(strict.http_url, strict.org_key, max_retries=0)
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
