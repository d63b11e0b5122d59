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

import anyio
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


def _header(length: int) -> bytes:
    if length < 126:
        return struct.pack("!BB", BINARY_FINAL, MASKED | length)
    if length < 1 << 16:
        return struct.pack("!BBH", BINARY_FINAL, MASKED | 126, length)
    return struct.pack("!BBQ", BINARY_FINAL, MASKED | 127, length)


def _turned(key: bytes, offset: int) -> bytes:
    """The key as it applies from `offset` bytes into the masked payload on."""
    turn = offset % 4
    return key[turn:] + key[:turn]


def binary_frame(key: bytes, *parts: bytes) -> bytes:
    """One final, masked binary frame whose payload is `parts` in order, masked part by part (no joined copy)."""
    pieces = [_header(sum(len(part) for part in parts)), key]
    offset = 0
    for part in parts:
        pieces.append(mask(_turned(key, offset), part))
        offset += len(part)
    return b"".join(pieces)


class FrameBuffer:
    """A buffer to read into that becomes a whole masked binary frame in one copy and one masking pass.

    It holds room for the longest header and key, then `prefix` (a port-forward channel byte), then `data`, the
    view a socket reads into. For a frame, the header and key go just before the prefix, pre-masked with the
    key's bytes at their positions: masking the whole span then turns them back into themselves (XOR twice) while
    it masks the payload. So a 256 KiB read costs one copy into `bytes` (what the C masker takes) and the mask,
    with no join of header and payload afterwards.
    """

    ROOM = 14  # the longest header (2 + 8 bytes of length) and the 4-byte key

    def __init__(self, prefix: bytes, size: int) -> None:
        self._start = self.ROOM + len(prefix)
        self._buffer = bytearray(self._start + size)
        self._buffer[self.ROOM:self._start] = prefix
        self._view = memoryview(self._buffer)
        self.data = self._view[self._start:]

    def frame(self, key: bytes, size: int) -> bytes:
        """The frame carrying the prefix and the first `size` bytes of `data`, masked with `key`."""
        head = _header(self._start - self.ROOM + size) + key
        begin = self.ROOM - len(head)
        turned = _turned(key, -len(head))  # phase 0 where the payload starts
        self._view[begin:self.ROOM] = mask(turned, head)
        return mask(turned, bytes(self._view[begin:self._start + size]))


class BinarySession(httpx_ws.AsyncWebSocketSession):
    """httpx-ws's session, with binary messages sent as one C-masked frame each."""

    async def send_bytes(self, data: bytes) -> None:
        await self.send_parts(data)

    async def send_parts(self, *parts: bytes) -> None:
        """Send `parts`, concatenated, as one binary message (a channel byte and its data, without a copy)."""
        self._check_open()
        await self.send_frame(binary_frame(os.urandom(4), *parts))

    async def send_buffer(self, buffer: FrameBuffer, size: int) -> None:
        """Send `buffer`'s prefix and first `size` bytes of data as one binary message."""
        self._check_open()
        await self.send_frame(buffer.frame(os.urandom(4), size))

    def _check_open(self) -> None:
        if self.connection.state is not wsproto.connection.ConnectionState.OPEN:
            raise LocalProtocolError(f"cannot send a message in state {self.connection.state}")

    async def send_frame(self, frame: bytes) -> None:
        """Write one whole frame, between the session's other writes (pongs, pings, the close).

        The lock is taken without a checkpoint when it is free, as it nearly always is: `async with` would pass
        through two cancel scopes per frame, each asking asyncio for the current task (a getpid() on 3.11).
        """
        try:
            try:
                self._write_lock.acquire_nowait()
            except anyio.WouldBlock:
                await self._write_lock.acquire()
            try:
                await self.stream.write(frame)
            finally:
                self._write_lock.release()
        except httpcore.WriteError as err:
            await self.close(CloseReason.INTERNAL_ERROR, "Stream write error")
            raise httpx_ws.WebSocketNetworkError() from err
