"""Receive N on_token frames from a local reference server four ways, one
run side by side: (a) tokenrelay conn.stream() yielding every token to
Python, (b) tokenrelay conn.ask() accumulating in Rust, (c) a pure-Python
client on `websockets`, (d) one on `aiohttp`. Prints a Markdown table.

    python bench.py --server-bin target/release/tokenrelay-server [--tokens 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Tuple

import aiohttp
import websockets

import tokenrelay


def start_server(binary: str, tmp: str) -> Tuple[subprocess.Popen[str], str, str, str, str]:
    common = ["--db", str(Path(tmp) / "bench.sqlite3"), "--rate-limit-per-minute", "1000000",
              "--scripted-pace-ms", "0", "--max-frame-bytes", "1048576"]
    out = subprocess.run([binary, *common, "bootstrap"], check=True, capture_output=True, text=True).stdout
    fields = dict(line.split("=", 1) for line in out.split() if "=" in line)
    proc = subprocess.Popen([binary, *common, "--bind", "127.0.0.1:0", "serve"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, TOKENRELAY_LOG="warn,tokenrelay_server=info", NO_COLOR="1"))
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"ready.*http=(\S+).*ws=(\S+)", re.sub(r"\x1b\[[0-9;]*m", "", line))
        if m:
            stderr = proc.stderr
            threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()
            return proc, m.group(1), m.group(2), fields["org_id"], fields["org_api_key"]
    raise RuntimeError("server did not start")


async def raw_websockets(ws_url: str, ctx: str, key: str, message: str) -> int:
    count = 0
    async with websockets.connect(ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"method": "connect_to_context", "id": "1",
                                  "params": {"context_id": ctx, "access_token": key}}))
        while json.loads(await ws.recv()).get("id") != "1":
            pass
        await ws.send(json.dumps({"method": "add_message", "id": "2", "params": {"message": message}}))
        async for raw in ws:
            frame = json.loads(raw)
            method = frame.get("method")
            if method == "on_token":
                count += 1
            elif method == "on_stop_token":
                return count
    return count


async def raw_aiohttp(ws_url: str, ctx: str, key: str, message: str) -> int:
    count = 0
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            await ws.send_str(json.dumps({"method": "connect_to_context", "id": "1",
                                          "params": {"context_id": ctx, "access_token": key}}))
            while json.loads(await ws.receive_str()).get("id") != "1":
                pass
            await ws.send_str(json.dumps({"method": "add_message", "id": "2", "params": {"message": message}}))
            async for msg in ws:
                frame = json.loads(msg.data)
                method = frame.get("method")
                if method == "on_token":
                    count += 1
                elif method == "on_stop_token":
                    return count
    return count


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--server-bin", required=True)
    p.add_argument("--tokens", type=int, default=1_000_000)
    args = p.parse_args()
    n = args.tokens
    message = f"[tokens={n}]"
    with tempfile.TemporaryDirectory() as tmp:
        proc, http_url, ws_url, org_id, org_key = start_server(args.server_bin, tmp)
        try:
            admin = tokenrelay.AdminClient(http_url, org_key)
            agent = await admin.create_agent("bench", "")

            async def fresh_context() -> str:
                return str((await admin.create_context(agent["agent_id"]))["context_id"])

            client = tokenrelay.Client(ws_url, token_provider=tokenrelay.OrgKey(admin, org_id),
                                       invocation_timeout=600)

            async def sdk_stream() -> int:
                async with client.connect(await fresh_context()) as conn:
                    count = 0
                    async for _ in conn.stream(message):
                        count += 1
                    return count

            async def sdk_ask() -> int:
                async with client.connect(await fresh_context()) as conn:
                    reply = await conn.ask(message)
                    assert reply.status == "complete", reply.status
                    return reply.text.count(" ") + 1

            async def with_key(f: Callable[[str, str, str, str], Awaitable[int]]) -> int:
                ctx = await fresh_context()
                key = (await admin.generate_client_key(org_id, context_id=ctx))["token"]
                return await f(ws_url, ctx, key, message)

            runs: List[Tuple[str, Callable[[], Awaitable[int]]]] = [
                ("(a) tokenrelay `conn.stream()`", sdk_stream),
                ("(b) tokenrelay `conn.ask()`", sdk_ask),
                ("(c) `websockets` (pure Python)", lambda: with_key(raw_websockets)),
                ("(d) `aiohttp` (pure Python)", lambda: with_key(raw_aiohttp)),
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
            proc.terminate()
            proc.wait()
    aio = results["(d) `aiohttp` (pure Python)"]
    print()
    print(f"| client ({n:,} `on_token` frames) | M frames/s | × aiohttp |")
    print("|---|---:|---:|")
    for name, rate in results.items():
        print(f"| {name} | {rate / 1e6:.3f} | {rate / aio:.1f}× |")


if __name__ == "__main__":
    asyncio.run(main())
