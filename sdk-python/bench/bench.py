"""Receive N `on_token` frames from a local server four ways, one run side
by side: (a) tokenrelay `conn.stream()` yielding every token to Python,
(b) tokenrelay `conn.ask()` accumulating in Rust, (c) a pure-Python client
on `websockets`, (d) one on `aiohttp`. Prints a Markdown table.

The server is `blast_server.py` in its own process (pre-encoded frames,
TCP backpressure), so what is measured is the client.

    python bench.py [--tokens 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable, Dict, List, Tuple

import aiohttp
import websockets

import tokenrelay

HERE = Path(__file__).resolve().parent


def hello() -> str:
    params = {"context_id": "bench", "access_token": "bench"}
    return json.dumps({"method": "connect_to_context", "id": "c", "params": params})


def ask(message: str) -> str:
    return json.dumps({"method": "add_message", "id": "m", "params": {"message": message}})


async def raw_websockets(ws_url: str, message: str) -> int:
    count = 0
    async with websockets.connect(ws_url, max_size=None) as ws:
        await ws.send(hello())
        while json.loads(await ws.recv()).get("id") != "c":
            pass
        await ws.send(ask(message))
        async for raw in ws:
            method = json.loads(raw).get("method")
            if method == "on_token":
                count += 1
            elif method == "on_stop_token":
                break
    return count


async def raw_aiohttp(ws_url: str, message: str) -> int:
    count = 0
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            await ws.send_str(hello())
            while json.loads(await ws.receive_str()).get("id") != "c":
                pass
            await ws.send_str(ask(message))
            async for msg in ws:
                method = json.loads(msg.data).get("method")
                if method == "on_token":
                    count += 1
                elif method == "on_stop_token":
                    break
    return count


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=1_000_000)
    args = p.parse_args()
    n = args.tokens
    message = f"[tokens={n}]"
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        server = subprocess.Popen([sys.executable, str(HERE / "blast_server.py"), str(port_file), str(n)])
        try:
            while not port_file.exists() or not port_file.read_text():
                await asyncio.sleep(0.1)
            ws_url = f"ws://127.0.0.1:{port_file.read_text()}/ws"
            client = tokenrelay.Client(ws_url, token_provider=tokenrelay.Static("bench"), invocation_timeout=600)

            async def sdk_stream() -> int:
                async with client.connect("bench") as conn:
                    count = 0
                    async for _ in conn.stream(message):
                        count += 1
                    return count

            async def sdk_ask() -> int:
                async with client.connect("bench") as conn:
                    reply = await conn.ask(message)
                    assert reply.status == "complete", reply.status
                    return reply.text.count(" ") + 1

            runs: List[Tuple[str, Callable[[], Awaitable[int]]]] = [
                ("(a) tokenrelay `conn.stream()`", sdk_stream),
                ("(b) tokenrelay `conn.ask()`", sdk_ask),
                ("(c) `websockets` (pure Python)", lambda: raw_websockets(ws_url, message)),
                ("(d) `aiohttp` (pure Python)", lambda: raw_aiohttp(ws_url, message)),
            ]
            results: Dict[str, float] = {}
            for name, run in runs:
                t0 = time.perf_counter()
                got = await run()
                dt = time.perf_counter() - t0
                assert got == n, f"{name}: {got} tokens, expected {n}"
                results[name] = n / dt
                print(f"{name}: {dt:.2f} s, {n / dt / 1e6:.3f} M frames/s", flush=True)
        finally:
            server.terminate()
            server.wait()
    aio = results["(d) `aiohttp` (pure Python)"]
    print()
    print(f"| client ({n:,} `on_token` frames) | M frames/s | × aiohttp |")
    print("|---|---:|---:|")
    for name, rate in results.items():
        print(f"| {name} | {rate / 1e6:.3f} | {rate / aio:.1f}× |")
    # For `cargo xtask bench`: each tokenrelay mode beside the pure-Python clients.
    peers = ", ".join(
        f"{name.split(' ', 1)[1]}: {rate / 1e6:.3f} M"
        for name, rate in results.items()
        if "tokenrelay" not in name
    )
    for name, rate in results.items():
        if "tokenrelay" in name:
            print(
                f"bench-result\tPython SDK\tframes/s, {name.split(' ', 1)[1]} ({rate / aio:.1f}× aiohttp)"
                f"\t{rate / 1e6:.3f} M\t{peers}"
            )


if __name__ == "__main__":
    asyncio.run(main())
