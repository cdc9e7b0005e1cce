"""A minimal base-protocol server for the throughput benchmark: it answers
`connect_to_context`, and to `add_message` "[tokens=N]" it writes N
pre-encoded `on_token` frames and an `on_stop_token` as fast as TCP takes
them (backpressure, never a drop).

Why not the reference server: it generates faster than a pure-Python client
reads and closes a socket that falls too far behind (1011, "reconnect and
resume"), which the tokenrelay SDK handles but a raw websockets/aiohttp
loop does not. This server measures the clients, not the server's policy.

    python blast_server.py PORT_FILE   # writes the port it listens on
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import struct
import sys
from typing import Dict, Tuple

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_cache: Dict[Tuple[int, str], bytes] = {}


def frame(payload: bytes) -> bytes:
    """One unmasked server text frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + struct.pack("!H", n) + payload
    return bytes((0x81, 127)) + struct.pack("!Q", n) + payload


def tokens(n: int, rid: str = "r1") -> bytes:
    if (n, rid) not in _cache:
        parts = []
        for i in range(n):
            text = f"t{i} " if i < n - 1 else f"t{i}"
            body = json.dumps({"method": "on_token", "params": {"token": text, "response_id": rid}})
            parts.append(frame(body.encode()))
        parts.append(frame(json.dumps({"method": "on_stop_token", "params": {"response_id": rid}}).encode()))
        _cache[(n, rid)] = b"".join(parts)
    return _cache[(n, rid)]


async def read_frame(reader: asyncio.StreamReader) -> Tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = bytearray(await reader.readexactly(n))
    for i in range(n):
        data[i] ^= mask[i % 4]
    return b0 & 0x0F, bytes(data)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    key = re.search(r"(?i)sec-websocket-key:\s*(\S+)", head)
    if not key:
        writer.close()
        return
    accept = base64.b64encode(hashlib.sha1(key.group(1).encode() + GUID).digest()).decode()
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
    )
    # Response ids count per connection, so every connection's first reply
    # is "r1", whose frames were encoded before the port was announced (the
    # timed runs must not include the server encoding frames).
    responses = 0
    try:
        while True:
            op, data = await read_frame(reader)
            if op == 8:  # close
                writer.write(bytes((0x88, 0)))
                break
            if op != 1:
                continue
            req = json.loads(data)
            rid, method = req.get("id"), req.get("method")
            if method == "connect_to_context":
                result = {"success": True, "agent_speaks_first": False, "agent": {"agent_id": "bench"}}
                writer.write(frame(json.dumps({"id": rid, "result": result}).encode()))
            elif method == "add_message":
                responses += 1
                response_id = f"r{responses}"
                m = re.search(r"\[tokens=(\d+)\]", req["params"]["message"])
                result = {"success": True, "response_id": response_id}
                writer.write(frame(json.dumps({"id": rid, "result": result}).encode()))
                writer.write(tokens(int(m.group(1)) if m else 1, response_id))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    if len(sys.argv) > 2:
        tokens(int(sys.argv[2]))  # encode before announcing the port
    with open(sys.argv[1], "w") as f:
        f.write(str(port))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
