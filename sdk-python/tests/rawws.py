"""A tiny WebSocket server speaking just enough of the protocol to send
frames the reference server never would: `on_token` frames whose raw JSON
the test writes itself (a token boundary inside a grapheme, a surrogate pair
escape split across two frames). The reference server's engine splits at
whitespace and serde_json writes non-ASCII raw, so neither can come from it.

It answers `connect_to_context` like a base server (no extensions), answers
each `add_message` with `{success, response_id}` at once (as the reference
server does), then sends the scripted tokens and `on_stop_token`. Only what
the SDK sends is parsed; frames are written by hand, byte for byte."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
from typing import Any, List, Optional

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(2)
    opcode = head[0] & 0x0F
    masked = head[1] & 0x80
    length = head[1] & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if masked else b"\0\0\0\0"
    data = bytearray(await reader.readexactly(length))
    for i in range(length):
        data[i] ^= mask[i % 4]
    return opcode, bytes(data)


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


class RawTokenServer:
    """Serves `ws://127.0.0.1:<port>/ws`; every `add_message` is answered
    with one `on_token` frame per entry of `raw_tokens`, each entry the
    exact JSON string literal (quotes included) put in the frame."""

    def __init__(self, raw_tokens: List[str]) -> None:
        self.raw_tokens = raw_tokens
        self.requests: List[Any] = []
        self._server: Optional[asyncio.AbstractServer] = None
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def __aenter__(self) -> "RawTokenServer":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), 10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            key = next(
                line.split(":", 1)[1].strip()
                for line in head.split("\r\n")
                if line.lower().startswith("sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
            writer.write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
            n = 0
            while True:
                opcode, data = await _read_frame(reader)
                if opcode == 0x8:
                    writer.write(_frame(0x8, data[:2]))
                    break
                if opcode == 0x9:
                    writer.write(_frame(0xA, data))
                    continue
                if opcode != 0x1:
                    continue
                request = json.loads(data)
                self.requests.append(request)
                method, rid = request.get("method"), request.get("id")
                if method == "connect_to_context":
                    self._send(writer, {"id": rid, "result": {"success": True, "agent_speaks_first": False}})
                elif method == "add_message":
                    n += 1
                    response_id = f"raw-{n}"
                    self._send(writer, {"id": rid, "result": {"success": True, "response_id": response_id}})
                    for raw in self.raw_tokens:
                        # The token literal goes into the frame as written.
                        writer.write(_frame(0x1, (
                            '{"method":"on_token","params":{"token":' + raw
                            + ',"response_id":"' + response_id + '"}}'
                        ).encode("utf-8")))
                        # One socket write per frame, each flushed: the
                        # client reads them as separate frames.
                        await writer.drain()
                    self._send(writer, {"method": "on_stop_token", "params": {"response_id": response_id}})
                elif rid is not None:
                    self._send(writer, {"id": rid, "result": {"success": True}})
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _send(writer: asyncio.StreamWriter, obj: Any) -> None:
        writer.write(_frame(0x1, json.dumps(obj).encode()))
