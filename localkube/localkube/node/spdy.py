"""Sans-IO SPDY/3.1: just the subset kubectl's port-forward speaks.

kubectl multiplexes port-forward connections over SPDY/3.1 (raw, or tunnelled in a WebSocket). This module
only turns bytes into frames and frames into bytes, so the same code drives both transports and is testable
without sockets. Flow control, priorities, server push and settings are not implemented: kubectl never needs
them (it sends no WINDOW_UPDATE and works without them).

Header blocks are zlib streams preset with the SPDY/3 dictionary, with *one* context per direction for the
whole connection. Every header block must therefore be decoded in arrival order (including ones we ignore),
and every block we build must be sent in the order it was built.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "FLAG_FIN",
    "SPDY3_DICTIONARY",
    "ControlFrame",
    "DataFrame",
    "Frame",
    "FrameParser",
    "FrameType",
    "GoAway",
    "HeaderCompressor",
    "HeaderDecompressor",
    "Headers",
    "Ping",
    "RstStatus",
    "RstStream",
    "SpdyConnection",
    "SpdyError",
    "SynReply",
    "SynStream",
    "build_data",
    "build_goaway",
    "build_ping",
    "build_rst_stream",
    "decode_header_block",
    "encode_header_block",
]

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
MAX_LENGTH = 0xFFFFFF  # 24-bit length field
_STREAM_ID_MASK = 0x7FFFFFFF


_DICTIONARY_WORDS = """
    options|head|post|put|delete|trace|accept|accept-charset|accept-encoding|accept-language|accept-ranges|
    age|allow|authorization|cache-control|connection|content-base|content-encoding|content-language|
    content-length|content-location|content-md5|content-range|content-type|date|etag|expect|expires|from|
    host|if-match|if-modified-since|if-none-match|if-range|if-unmodified-since|last-modified|location|
    max-forwards|pragma|proxy-authenticate|proxy-authorization|range|referer|retry-after|server|te|trailer|
    transfer-encoding|upgrade|user-agent|vary|via|warning|www-authenticate|method|get|status|200OK|version|
    HTTP/1.1|url|public|set-cookie|keep-alive|origin
"""


def _build_dictionary() -> bytes:
    """Rebuild the SPDY/3 zlib preset dictionary (1423 bytes, from the SPDY/3 draft).

    It is 65 words, each prefixed by its 32-bit length as in a header block, followed by a run of bare
    strings. Any byte difference changes its Adler-32 and peers then refuse our header blocks.
    """
    words = "".join(_DICTIONARY_WORDS.split()).replace("200OK", "200 OK").split("|")
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
        "503 Service Unavailable"
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + tail.encode()


SPDY3_DICTIONARY = _build_dictionary()
assert len(SPDY3_DICTIONARY) == 1423 and zlib.adler32(SPDY3_DICTIONARY) == 0xE3C6A7C2


class SpdyError(Exception):
    """The peer sent bytes that are not the SPDY/3 we understand; the session cannot continue."""


class FrameType(IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(IntEnum):
    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6


Headers = dict[str, str]  # several values of one name are joined with NUL, as SPDY does on the wire


# --------------------------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    data: bytes
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    associated_id: int = 0
    priority: int = 0
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass(frozen=True)
class ControlFrame:
    """A control frame we parse no further (SETTINGS, WINDOW_UPDATE, HEADERS, unknown types)."""

    type: int
    flags: int
    payload: bytes = field(repr=False)


Frame = DataFrame | SynStream | SynReply | RstStream | Ping | GoAway | ControlFrame


def _control(frame_type: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise ValueError("SPDY frame payload too large")
    return struct.pack(">HHI", 0x8000 | VERSION, frame_type, (flags << 24) | len(payload)) + payload


def build_data(stream_id: int, data: bytes = b"", fin: bool = False) -> bytes:
    """One DATA frame; callers chunk their reads below 16 MiB (the 24-bit length limit)."""
    if len(data) > MAX_LENGTH:
        raise ValueError("SPDY DATA payload too large")
    flags = FLAG_FIN if fin else 0
    return struct.pack(">II", stream_id & _STREAM_ID_MASK, (flags << 24) | len(data)) + data


def build_rst_stream(stream_id: int, status: int = RstStatus.CANCEL) -> bytes:
    return _control(FrameType.RST_STREAM, 0, struct.pack(">II", stream_id & _STREAM_ID_MASK, status))


def build_ping(ping_id: int) -> bytes:
    """A PING frame; a server answers a client's PING by sending back this exact frame."""
    return _control(FrameType.PING, 0, struct.pack(">I", ping_id))


def build_goaway(last_good_stream_id: int, status: int = 0) -> bytes:
    return _control(FrameType.GOAWAY, 0, struct.pack(">II", last_good_stream_id & _STREAM_ID_MASK, status))


# ------------------------------------------------------------------------------------- header blocks


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed SPDY/3 name/value block: u32 count, then u32-length-prefixed names and values."""
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        for text in (name.lower(), value):
            raw = text.encode()
            parts.append(struct.pack(">I", len(raw)) + raw)
    return b"".join(parts)


def decode_header_block(block: bytes) -> Headers:
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos, headers = 4, {}
        for _ in range(count):
            name, pos = _read_string(block, pos)
            value, pos = _read_string(block, pos)
            headers[name.lower()] = f"{headers[name.lower()]}\0{value}" if name.lower() in headers else value
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyError(f"malformed header block: {exc}") from exc
    return headers


def _read_string(block: bytes, pos: int) -> tuple[str, int]:
    (length,) = struct.unpack_from(">I", block, pos)
    end = pos + 4 + length
    if end > len(block):
        raise SpdyError("header block truncated")
    return block[pos + 4 : end].decode(), end


class HeaderCompressor:
    """Our outgoing zlib context; each block ends with a sync flush so the peer can decode it at once."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, SPDY3_DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        return self._z.compress(encode_header_block(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The peer's zlib context, shared by all header blocks of one connection direction."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(zdict=SPDY3_DICTIONARY)

    def decompress(self, data: bytes) -> Headers:
        try:
            block = self._z.decompress(data)
        except zlib.error as exc:
            raise SpdyError(f"header block does not decompress: {exc}") from exc
        return decode_header_block(block)


# -------------------------------------------------------------------------------------------- parser


class FrameParser:
    """Turns an arbitrarily chunked byte stream into frames (message boundaries carry no meaning)."""

    def __init__(self, max_length: int = MAX_LENGTH) -> None:
        self._buf = bytearray()
        self._inflate = HeaderDecompressor()
        self._max_length = max_length

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            length = int.from_bytes(self._buf[5:8], "big")
            if length > self._max_length:
                raise SpdyError(f"frame of {length} bytes exceeds the limit")
            if len(self._buf) < 8 + length:
                break
            head, payload = bytes(self._buf[:8]), bytes(self._buf[8 : 8 + length])
            del self._buf[: 8 + length]
            frames.append(self._frame(head, payload))
        return frames

    def _frame(self, head: bytes, payload: bytes) -> Frame:
        word, flags = int.from_bytes(head[:4], "big"), head[4]
        if not word & 0x80000000:
            return DataFrame(word & _STREAM_ID_MASK, payload, flags)
        version, frame_type = (word >> 16) & 0x7FFF, word & 0xFFFF
        if version != VERSION:
            raise SpdyError(f"unsupported SPDY version {version}")
        try:
            return self._control(frame_type, flags, payload)
        except struct.error as exc:
            raise SpdyError(f"short control frame of type {frame_type}") from exc

    def _control(self, frame_type: int, flags: int, payload: bytes) -> Frame:
        if frame_type == FrameType.SYN_STREAM:
            stream_id, assoc, prio = struct.unpack_from(">IIB", payload)
            headers = self._inflate.decompress(payload[10:])
            return SynStream(stream_id & _STREAM_ID_MASK, headers, assoc & _STREAM_ID_MASK, prio >> 5, flags)
        if frame_type == FrameType.SYN_REPLY:
            (stream_id,) = struct.unpack_from(">I", payload)
            return SynReply(stream_id & _STREAM_ID_MASK, self._inflate.decompress(payload[4:]), flags)
        if frame_type == FrameType.HEADERS:
            self._inflate.decompress(payload[4:])  # keep the shared zlib context in step
        elif frame_type == FrameType.RST_STREAM:
            stream_id, status = struct.unpack_from(">II", payload)
            return RstStream(stream_id & _STREAM_ID_MASK, status)
        elif frame_type == FrameType.PING:
            return Ping(struct.unpack_from(">I", payload)[0])
        elif frame_type == FrameType.GOAWAY:
            (last,) = struct.unpack_from(">I", payload)
            status = struct.unpack_from(">I", payload, 4)[0] if len(payload) >= 8 else 0
            return GoAway(last & _STREAM_ID_MASK, status)
        return ControlFrame(frame_type, flags, payload)


class SpdyConnection:
    """One SPDY/3 connection's codec state: the frame parser (with the inbound zlib context) plus the
    outbound zlib context for the header-bearing frames we build."""

    def __init__(self) -> None:
        self.parser = FrameParser()
        self._deflate = HeaderCompressor()

    def receive(self, data: bytes) -> list[Frame]:
        return self.parser.feed(data)

    def syn_reply(self, stream_id: int, headers: Headers | None = None, fin: bool = False) -> bytes:
        """Must be sent in build order: the bytes depend on every block compressed before."""
        block = self._deflate.compress(headers or {})
        return _control(FrameType.SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + block)

    def syn_stream(
        self, stream_id: int, headers: Headers, associated_id: int = 0, priority: int = 0, fin: bool = False
    ) -> bytes:
        """The client side's opening frame (used by tests and any future client)."""
        block = self._deflate.compress(headers)
        fixed = struct.pack(">IIBB", stream_id, associated_id, (priority & 0x7) << 5, 0)
        return _control(FrameType.SYN_STREAM, FLAG_FIN if fin else 0, fixed + block)
