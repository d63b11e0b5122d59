"""The server side of a WebSocket, spoken on the raw upgraded connection, for the channel port-forward's bulk bytes.

aiohttp's WebSocket reader assembles each message before handing it over: a masked message that spans several
reads is copied four times (fragments, join, a bytearray to unmask, bytes), then the relay copied it once more
to drop its channel byte. A port-forward is a byte stream, so message boundaries carry nothing but that first
byte: `FrameReader` unmasks each piece of payload as it arrives (one copy, XOR in place with aiohttp's C masker)
and hands it to the relay at once, from the connection's own `data_received`, with no queue and no task switch.

Only what the channel protocol uses is here: binary and continuation frames carry data, text frames are ignored,
pings are answered, a close frame or the end of the connection ends the session. Extensions (compression) are
never negotiated, and unmasked client frames are a protocol error, as RFC 6455 says.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import struct
from typing import Protocol

try:  # aiohttp's own masker: its C version when built, else its Python one
    from aiohttp._websocket.helpers import websocket_mask
except ImportError:  # pragma: no cover - an aiohttp that moved it
    from aiohttp.http_websocket import websocket_mask  # type: ignore[attr-defined,no-redef]

__all__ = ["FrameReader", "ProtocolError", "accept_key", "frame_header"]

log = logging.getLogger(__name__)

_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class ProtocolError(Exception):
    """The client broke RFC 6455 (an unmasked frame, a bad opcode, a long control frame): close with 1002."""


def accept_key(key: str) -> str:
    """`Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (SHA-1, as RFC 6455 specifies)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _ACCEPT_GUID).digest()).decode()


def frame_header(opcode: int, length: int) -> bytes:
    """The header of a final, unmasked (server) frame of `length` payload bytes."""
    if length < 126:
        return struct.pack("!BB", 0x80 | opcode, length)
    if length < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, 127, length)


class Handler(Protocol):
    def data(self, channel: int, payload: bytearray | memoryview) -> None: ...
    def control(self, opcode: int, payload: bytes) -> None: ...
    def ended(self, error: BaseException | None) -> None: ...


class FrameReader:
    """Parses client frames fed by the connection (`feed_data`, as aiohttp's `set_parser` expects).

    Data reaches `handler.data(channel, payload)` piece by piece, unmasked; `handler.control` gets pings, pongs
    and closes whole; `handler.ended` is called once, at a close frame, the end of the connection or an error.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._pending = b""  # an incomplete frame header
        self._left = 0  # payload bytes of the current frame still to come
        self._key = b""
        self._phase = 0  # how far into the masking key the next payload byte is
        self._opcode = 0
        self._control = bytearray()  # a control frame's payload, delivered whole
        self._message = OP_BINARY  # the data opcode of the message in progress
        self._channel = -1  # its channel, once its first byte has come; -1 at a message's start
        self._fin = True
        self._in_frame = False  # between a frame's header and its last payload byte
        self._done = False

    # aiohttp's payload parser interface
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._done:
            return False, b""
        try:
            self._feed(self._pending + data if self._pending else data)
        except ProtocolError as err:
            self._end(err)
        return False, b""

    def feed_eof(self) -> None:
        self._end(None)

    def _end(self, error: BaseException | None) -> None:
        if not self._done:
            self._done = True
            self._handler.ended(error)

    def _feed(self, data: bytes) -> None:
        self._pending = b""
        view = memoryview(data)
        pos, size = 0, len(data)
        while pos < size and not self._done:
            if self._left == 0 and not self._in_frame:
                header = self._header(view, pos)
                if header is None:
                    self._pending = bytes(view[pos:])
                    return
                pos = header
                if self._left == 0:
                    self._finish_frame()
                continue
            take = min(self._left, size - pos)
            piece = bytearray(view[pos:pos + take])
            key = self._key[self._phase:] + self._key[:self._phase]
            websocket_mask(key, piece)
            self._phase = (self._phase + take) % 4
            self._left -= take
            pos += take
            self._payload(piece)
            if self._left == 0:
                self._finish_frame()

    def _header(self, view: memoryview, pos: int) -> int | None:
        """Parse a frame header at `pos`; the position after it, or None when it is not all here yet."""
        if len(view) - pos < 2:
            return None
        first, second = view[pos], view[pos + 1]
        length, at = second & 0x7F, pos + 2
        if length == 126:
            if len(view) - at < 2:
                return None
            length, at = struct.unpack_from("!H", view, at)[0], at + 2
        elif length == 127:
            if len(view) - at < 8:
                return None
            length, at = struct.unpack_from("!Q", view, at)[0], at + 8
        if not second & 0x80:
            raise ProtocolError("client frames must be masked")
        if len(view) - at < 4:
            return None
        opcode, fin = first & 0x0F, bool(first & 0x80)
        if first & 0x70:
            raise ProtocolError("no extension was negotiated: RSV bits must be 0")
        if opcode >= OP_CLOSE and (length > 125 or not fin):
            raise ProtocolError("control frames are final and at most 125 bytes")
        if opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
            raise ProtocolError(f"unknown opcode {opcode}")
        if opcode in (OP_TEXT, OP_BINARY):
            self._message, self._channel = opcode, -1
        self._key, self._phase, self._left, self._opcode = bytes(view[at:at + 4]), 0, length, opcode
        self._fin = fin
        self._in_frame = True
        return at + 4

    def _payload(self, piece: bytearray) -> None:
        if self._opcode >= OP_CLOSE:
            self._control += piece
            return
        if self._message != OP_BINARY or not piece:
            return  # text messages carry nothing for a port-forward
        if self._channel < 0:
            self._channel = piece[0]
            if len(piece) == 1:
                return
            self._handler.data(self._channel, memoryview(piece)[1:])
            return
        self._handler.data(self._channel, piece)

    def _finish_frame(self) -> None:
        self._in_frame = False
        if self._opcode >= OP_CLOSE:
            payload, self._control = bytes(self._control), bytearray()
            self._handler.control(self._opcode, payload)
            if self._opcode == OP_CLOSE:
                self._end(None)
        elif self._fin:
            self._channel = -1
