"""The channel port-forward's frame reader: client frames (masked by wsproto, as kr8s's are) in any pieces."""

from __future__ import annotations

import os
import random

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from localkube.node import channel_websocket
from localkube.node.channel_websocket import OP_CLOSE, OP_PING, FrameReader, ProtocolError


class Recorder:
    def __init__(self) -> None:
        self.by_channel: dict[int, bytearray] = {}
        self.controls: list[tuple[int, bytes]] = []
        self.ends: list[BaseException | None] = []

    def data(self, channel: int, payload: bytearray | memoryview) -> None:
        self.by_channel.setdefault(channel, bytearray()).extend(payload)

    def control(self, opcode: int, payload: bytes) -> None:
        self.controls.append((opcode, payload))

    def ended(self, error: BaseException | None) -> None:
        self.ends.append(error)


def _client_bytes(*events: object) -> bytes:
    client = Connection(ConnectionType.CLIENT)
    return b"".join(client.send(event) for event in events)  # type: ignore[arg-type]


def _feed_in_pieces(reader: FrameReader, data: bytes, seed: int) -> None:
    rng, pos = random.Random(seed), 0
    while pos < len(data):
        step = rng.choice([1, 2, 3, 7, 100, 4096, 70_000])
        reader.feed_data(data[pos:pos + step])
        pos += step


@pytest.mark.parametrize("seed", range(5))
def test_channels_get_their_bytes_whatever_the_pieces(seed: int) -> None:
    a, b = os.urandom(70_000), os.urandom(300)
    wire = _client_bytes(BytesMessage(b"\x00" + a), TextMessage("ignored"), BytesMessage(b"\x02" + b),
                         BytesMessage(b"\x00"), BytesMessage(b"\x00" + a[:5]),
                         BytesMessage(b"\x02" + b[:10], message_finished=False), BytesMessage(b[10:]))
    got = Recorder()
    _feed_in_pieces(FrameReader(got), wire, seed)
    assert bytes(got.by_channel[0]) == a + a[:5]
    assert bytes(got.by_channel[2]) == b + b  # a continuation frame keeps its message's channel
    assert got.ends == []


def test_ping_and_close_are_controls_and_close_ends() -> None:
    got = Recorder()
    reader = FrameReader(got)
    late = _client_bytes(BytesMessage(b"\x00late"))
    reader.feed_data(_client_bytes(Ping(b"hi"), CloseConnection(1000, "bye")) + late)
    assert got.controls[0] == (OP_PING, b"hi")
    assert got.controls[1][0] == OP_CLOSE and got.controls[1][1][:2] == (1000).to_bytes(2, "big")
    assert got.ends == [None]
    assert got.by_channel == {}  # nothing after the close


def test_an_unmasked_frame_is_a_protocol_error() -> None:
    got = Recorder()
    FrameReader(got).feed_data(channel_websocket.frame_header(channel_websocket.OP_BINARY, 3) + b"\x00ab")
    assert len(got.ends) == 1 and isinstance(got.ends[0], ProtocolError)


def test_the_end_of_the_connection_ends_once() -> None:
    got = Recorder()
    reader = FrameReader(got)
    reader.feed_eof()
    reader.feed_eof()
    assert got.ends == [None]


def test_accept_key_is_the_rfc_example() -> None:
    assert channel_websocket.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
