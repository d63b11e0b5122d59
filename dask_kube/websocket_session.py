"""The port-forward's WebSocket session: binary messages framed and masked in one pass of C.

A client masks every frame it sends with a fresh random key (RFC 6455, 5.3). wsproto, under httpx-ws, masks in
Python (strided `translate`s over four copies of the payload): that alone held a port-forward near 300 MB/s, under
what TLS and the sockets cost. tornado, a dependency of distributed, ships the same XOR in C
(`tornado.speedups.websocket_mask`); without its extension (a pure-Python tornado) wsproto's masker is the
fallback. Only sending binary messages changes: the handshake, reading, pings and the close stay httpx-ws's,
reached through its documented `session_class` hook.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

import httpcore
import httpx_ws
import wsproto
from wsproto.frame_protocol import CloseReason, XorMaskerSimple
from wsproto.utilities import LocalProtocolError

BINARY_FINAL = 0x82  # FIN bit and the binary opcode
MASKED = 0x80


def _mask_python(key: bytes, data: bytes) -> bytes:
    return bytes(XorMaskerSimple(bytearray(key)).process(bytearray(data)))


def _load_mask() -> Callable[[bytes, bytes], bytes]:
    try:
        from tornado.speedups import websocket_mask
    except ImportError:  # tornado without its C extension
        return _mask_python
    return websocket_mask


mask: Callable[[bytes, bytes], bytes] = _load_mask()


def binary_frame(key: bytes, *parts: bytes) -> bytes:
    """One final, masked binary frame whose payload is `parts` in order, masked part by part (no joined copy)."""
    length = sum(len(part) for part in parts)
    if length < 126:
        header = struct.pack("!BB", BINARY_FINAL, MASKED | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", BINARY_FINAL, MASKED | 126, length)
    else:
        header = struct.pack("!BBQ", BINARY_FINAL, MASKED | 127, length)
    pieces = [header, key]
    offset = 0
    for part in parts:
        turn = offset % 4  # the key runs on across parts
        pieces.append(mask(key[turn:] + key[:turn], part))
        offset += len(part)
    return b"".join(pieces)


class BinarySession(httpx_ws.AsyncWebSocketSession):
    """httpx-ws's session, with binary messages sent as one C-masked frame each."""

    async def send_bytes(self, data: bytes) -> None:
        await self.send_parts(data)

    async def send_parts(self, *parts: bytes) -> None:
        """Send `parts`, concatenated, as one binary message (a channel byte and its data, without a copy)."""
        if self.connection.state is not wsproto.connection.ConnectionState.OPEN:
            raise LocalProtocolError(f"cannot send a message in state {self.connection.state}")
        frame = binary_frame(os.urandom(4), *parts)
        try:
            async with self._write_lock:
                await self.stream.write(frame)
        except httpcore.WriteError as err:
            await self.close(CloseReason.INTERNAL_ERROR, "Stream write error")
            raise httpx_ws.WebSocketNetworkError() from err
