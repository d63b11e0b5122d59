"""The port-forward's own frames: what a WebSocket server (wsproto's) reads from them is what was sent."""

from __future__ import annotations

import os

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage

from dask_kube import websocket_session


def _server_reads(frame: bytes) -> bytes:
    server = Connection(ConnectionType.SERVER)
    server.receive_data(frame)
    messages = list(server.events())
    assert len(messages) == 1 and isinstance(messages[0], BytesMessage) and messages[0].message_finished
    return bytes(messages[0].data)


@pytest.mark.parametrize("size", [0, 1, 124, 125, 126, 65535, 65536, 300_001])  # each length encoding's edges
def test_a_frame_carries_its_parts_masked(size: int) -> None:
    data = os.urandom(size)
    key = os.urandom(4)
    frame = websocket_session.binary_frame(key, b"\x00", data)
    assert _server_reads(frame) == b"\x00" + data
    assert data[:64] not in frame or size < 8  # masked on the wire, not sent as is


def test_the_key_runs_on_across_parts_of_any_length() -> None:
    parts = [os.urandom(n) for n in (1, 3, 2, 7, 0, 5)]
    assert _server_reads(websocket_session.binary_frame(os.urandom(4), *parts)) == b"".join(parts)


def test_the_c_masker_and_the_fallback_agree() -> None:
    key, data = os.urandom(4), os.urandom(1001)
    assert websocket_session.mask(key, data) == websocket_session._mask_python(key, data)
    assert websocket_session.mask is not websocket_session._mask_python  # tornado's C extension is installed


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 124, 125, 126, 127, 65534, 65535, 65536, 200_000])
def test_a_frame_buffer_becomes_the_same_frame_in_place(size: int) -> None:
    buffer = websocket_session.FrameBuffer(b"\x00", 200_000)
    data = os.urandom(size)
    buffer.data[:size] = data
    key = os.urandom(4)
    frame = buffer.frame(key, size)
    assert frame == websocket_session.binary_frame(key, b"\x00", data)
    assert _server_reads(frame) == b"\x00" + data
    assert _server_reads(buffer.frame(key, size)) == b"\x00" + data  # the buffer can be framed again
