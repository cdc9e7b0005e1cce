"""Latency through the Python SDK, as a person watching a reply feels it
(issue #11): the same suite as the Rust bench (tests/e2e/benches/latency.rs)
against the release reference server over loopback, started the way the
pytest harness starts it (tests/conftest.py: fault injection on, relaxed
limits).

* first token minus the scripted engine's pace (`[tokens=3 pace_ms=20|0]`);
* |gap - 20 ms| between tokens at `[tokens=50 pace_ms=20]`, and the gaps of
  a `[tokens=5000]` reply at full speed;
* the freeze (longest gap between two tokens, minus the 2 ms pace) of a
  `[tokens=200 pace_ms=2]` reply whose socket is cut after token 100 by
  `POST /debug/faults` (close_1001, close_1011, close_4001, drop), with a
  token provider answering at once and one taking 100 ms;
* a silent drop (a proxy stops forwarding, nothing closes).

Every reply must arrive whole, each token (`t0 `, `t1 `, ...) exactly once
and in order: that is asserted (a failure exits non-zero). Timings are only
printed (ms: p50 p99 max n), never judged.

Run by sdk-python/bench/latency.sh (full, 200 rounds) and at the end of
sdk-python/test.sh (`--short`, 20 rounds).

    python bench/latency.py [--short]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import httpx

import tokenrelay

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from conftest import Server, new_context, run_server  # noqa: E402  (the pytest harness's server)

# Upper bound of one reply, so a bug fails the bench instead of hanging it.
WAIT = 30.0
# The idle timeout the silent-drop row runs with (the default is 45 s).
SILENT_IDLE_TIMEOUT = 2.0


def pct(values: List[float], p: float) -> float:
    """Nearest-rank percentile, as the Rust bench computes it."""
    if not values:
        return float("nan")
    v = sorted(values)
    i = round((p / 100.0) * (len(v) - 1))
    return v[min(i, len(v) - 1)]


def row(name: str, values: List[float]) -> None:
    print(
        f"  {name:<52} {pct(values, 50):>8.2f} {pct(values, 99):>8.2f} "
        f"{pct(values, 100):>8.2f} {len(values):>6}",
        flush=True,
    )


_expected: Dict[int, List[str]] = {}


def expected(n: int) -> List[str]:
    """The scripted engine's tokens for `[tokens=n]`: `t0 `, `t1 `, ..., `t{n-1}`."""
    if n not in _expected:
        _expected[n] = [f"t{i} " for i in range(n - 1)] + [f"t{n - 1}"]
    return _expected[n]


async def timed_reply(
    conn: tokenrelay.Connection,
    text: str,
    n: int,
    on_token: Optional[Callable[[int], None]] = None,
    wait: float = WAIT,
) -> Tuple[float, List[float]]:
    """Streams one reply of `n` tokens; returns when it was asked and when
    each token arrived, after checking every token arrived once, in order.
    `on_token(i)` runs as token `i` (1-based) arrives."""

    async def run() -> Tuple[float, List[float]]:
        want = expected(n)
        arrivals: List[float] = []
        asked = time.perf_counter()
        stream = conn.stream(text)
        async for token in stream:
            now = time.perf_counter()
            i = len(arrivals)
            if i >= n or token != want[i]:
                raise AssertionError(
                    f"{text}: token #{i} is {token!r}, expected "
                    f"{want[i] if i < n else 'the end'!r} (every token exactly once, in order)"
                )
            arrivals.append(now)
            if on_token is not None:
                on_token(i + 1)
        if len(arrivals) != n:
            raise AssertionError(f"{text}: {len(arrivals)} tokens, expected {n}")
        r = stream.response
        if r is None or r.status != "complete" or r.text != "".join(want):
            raise AssertionError(f"{text}: the reply ended {r!r}")
        return asked, arrivals

    return await asyncio.wait_for(run(), wait)


def worst_gap(arrivals: List[float]) -> float:
    """The longest gap between two tokens, ms."""
    return max((b - a) * 1000.0 for a, b in zip(arrivals, arrivals[1:]))


class Provider:
    """What an app's backend does: a fresh client key scoped to the context
    from the server's REST API on every call, after `delay` seconds (the
    backend's own time)."""

    def __init__(self, server: Server, delay: float) -> None:
        self.admin = tokenrelay.AdminClient(server.http_url, server.org_key)
        self.org_id = server.org_id
        self.delay = delay
        # The time of each call, ms.
        self.times: List[float] = []

    async def __call__(self, context_id: str) -> str:
        t0 = time.perf_counter()
        if self.delay:
            await asyncio.sleep(self.delay)
        key = await self.admin.generate_client_key(self.org_id, context_id=context_id)
        self.times.append((time.perf_counter() - t0) * 1000.0)
        return str(key.token)


class Proxy:
    """A TCP proxy between the client and the server that can make the
    connections it carries go silent: bytes are read and forgotten in both
    directions and nothing is closed, as a network dropping a flow does."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        self.upstream = (host, int(port))
        self.next = 0
        self.silent_below = 0
        self.writers: List[asyncio.StreamWriter] = []
        self.tasks: List["asyncio.Task[None]"] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"ws://{host}:{port}/ws"

    def black_hole(self) -> None:
        """Every connection open now goes silent; new ones pass."""
        self.silent_below = self.next

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ident = self.next
        self.next += 1
        try:
            sr, sw = await asyncio.open_connection(*self.upstream)
        except OSError:
            cw.close()
            return
        self.writers += [cw, sw]
        loop = asyncio.get_running_loop()
        self.tasks.append(loop.create_task(self._pipe(cr, sw, ident)))
        self.tasks.append(loop.create_task(self._pipe(sr, cw, ident)))

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, ident: int) -> None:
        try:
            while True:
                data = await r.read(16384)
                silent = ident < self.silent_below
                if not data:
                    # A black hole does not pass a close on either.
                    if not silent:
                        w.close()
                    return
                if silent:
                    continue
                w.write(data)
                await w.drain()
        except (OSError, asyncio.CancelledError):
            return

    async def stop(self) -> None:
        self.server.close()
        for t in self.tasks:
            t.cancel()
        for w in self.writers:
            w.close()


async def measure(server: Server, rounds: int, short: bool) -> None:
    admin = tokenrelay.AdminClient(server.http_url, server.org_key)
    ctx = await new_context(admin)
    http = httpx.AsyncClient()

    async def fault(kind: str) -> None:
        r = await http.post(
            f"{server.http_url}/debug/faults",
            headers={"Authorization": f"Bearer {server.org_key}"},
            json={"context_id": ctx, "fault": kind},
        )
        r.raise_for_status()
        if r.json().get("sockets", 0) < 1:
            raise AssertionError(f"fault {kind} reached no socket: {r.text}")

    # Time to first token minus the engine's own pace; evenness.
    client = tokenrelay.Client(server.ws_url, token_provider=Provider(server, 0.0))
    async with client.connect(ctx) as conn:
        for pace in (20, 0):
            added = []
            for _ in range(rounds):
                asked, arrivals = await timed_reply(conn, f"[tokens=3 pace_ms={pace}]", 3)
                added.append((arrivals[0] - asked) * 1000.0 - pace)
            row(f"first token - pace (pace {pace} ms)", added)
        jitter = []
        for _ in range(max(rounds // 10, 2)):
            _, arrivals = await timed_reply(conn, "[tokens=50 pace_ms=20]", 50)
            jitter += [abs((b - a) * 1000.0 - 20.0) for a, b in zip(arrivals, arrivals[1:])]
        row("|gap - 20 ms| (pace 20 ms)", jitter)
        _, arrivals = await timed_reply(conn, "[tokens=5000]", 5000)
        row("gap at full speed (5,000 tokens)", [(b - a) * 1000.0 for a, b in zip(arrivals, arrivals[1:])])

    # The freeze when the socket dies after token 100 of 200 (pace 2 ms).
    # The Python SDK exposes no reconnect policy: the default one counts a
    # connection as healthy only after 5 s up and backs off between quicker
    # cuts (flapping protection). The first reconnect of a connection is
    # immediate by design, so each cut here is on a fresh connection (the
    # connect itself, and its key, are not timed).
    print(
        "  (no reconnect policy in the Python API: each cut on a fresh connection, "
        "whose first reconnect is immediate; one uncounted warm-up cut first)",
        flush=True,
    )

    async def freeze(client: tokenrelay.Client, kind: str) -> float:
        cut: List["asyncio.Task[None]"] = []

        def at(i: int) -> None:
            if i == 100:
                # Off the reading path: the reader keeps timing.
                cut.append(asyncio.get_running_loop().create_task(fault(kind)))

        async with client.connect(ctx) as conn:
            _, arrivals = await timed_reply(conn, "[tokens=200 pace_ms=2]", 200, at)
        # The cut reached the socket (or this raises).
        await asyncio.wait_for(cut[0], WAIT)
        return worst_gap(arrivals) - 2.0

    # Cuts per fault and provider (the Rust bench: rounds / 4).
    cuts = 3 if short else rounds // 4
    # With a 100 ms provider, refresh-ahead off (the key fetched on
    # reconnect) and on (the default: the next key fetched while connected).
    # The variants and faults take turns, cut after cut, so that a change
    # in the machine's load weighs on every row alike.
    variants = []
    for delay, refresh, label in ((0.0, True, ""), (0.1, False, ", on demand"), (0.1, True, ", ahead")):
        provider = Provider(server, delay)
        client = tokenrelay.Client(server.ws_url, token_provider=provider, refresh_ahead=refresh)
        variants.append((f"provider {int(delay * 1000)} ms{label}", provider, client))
    faults = ("close_1001", "close_1011", "close_4001", "drop")
    await freeze(variants[0][2], "drop")
    variants[0][1].times.clear()
    freezes: Dict[Tuple[int, str], List[float]] = {}
    for _ in range(cuts):
        for v, (_, _, client) in enumerate(variants):
            for kind in faults:
                freezes.setdefault((v, kind), []).append(await freeze(client, kind))
    for v, (label, provider, _) in enumerate(variants):
        for kind in faults:
            row(f"freeze, {kind}, {label}", freezes[(v, kind)])
        if v == 0:
            # The provider's own time: what a reconnect waits for when no
            # key was fetched ahead (a REST call minting a key).
            row("token provider call (provider 0 ms)", provider.times)

    # A silent drop: the network stops carrying the flow and nothing
    # closes. Only the client's keepalive can tell; as in the Rust bench,
    # ping after 500 ms of quiet and dead after 2 s of silence (the
    # defaults are 15 s and 45 s: the freeze is the idle timeout plus a
    # reconnect, whatever its value).
    proxy = Proxy(server.ws_url)
    url = await proxy.start()
    client = tokenrelay.Client(
        url,
        token_provider=Provider(server, 0.0),
        ping_interval=0.5,
        idle_timeout=SILENT_IDLE_TIMEOUT,
    )
    freezes = []
    async with client.connect(ctx) as conn:
        for _ in range(max(rounds // 20, 2)):
            _, arrivals = await timed_reply(
                conn,
                "[tokens=200 pace_ms=2]",
                200,
                lambda i: proxy.black_hole() if i == 100 else None,
                wait=2 * SILENT_IDLE_TIMEOUT + WAIT,
            )
            freezes.append(worst_gap(arrivals))
    row("freeze, silent drop (idle timeout 2 s)", freezes)
    await proxy.stop()
    await http.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true", help="20 rounds (CI)")
    args = ap.parse_args()
    rounds = 20 if args.short else 200
    print(
        f"latency, Python SDK (CPython {sys.version.split()[0]}), loopback, {rounds} rounds"
        f"{' (short)' if args.short else ''}: ms p50 p99 max n",
        flush=True,
    )
    with run_server() as server:
        asyncio.run(measure(server, rounds, args.short))


if __name__ == "__main__":
    main()
