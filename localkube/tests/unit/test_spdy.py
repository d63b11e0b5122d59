"""The sans-IO SPDY/3.1 codec: frames, shared header compression contexts, arbitrary chunking."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from localkube.node import spdy


def _client_server() -> tuple[spdy.SpdyConnection, spdy.SpdyConnection]:
    return spdy.SpdyConnection(), spdy.SpdyConnection()


def test_dictionary_is_the_spdy3_constant() -> None:
    # 1423 bytes; peers check the Adler-32 (the zlib dictionary id) before inflating anything.
    assert len(spdy.SPDY3_DICTIONARY) == 1423
    assert zlib.adler32(spdy.SPDY3_DICTIONARY) == 0xE3C6A7C2
    assert spdy.SPDY3_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.SPDY3_DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (spdy.build_data(5, b"hello"), spdy.DataFrame(5, b"hello", 0)),
        (spdy.build_data(7, fin=True), spdy.DataFrame(7, b"", spdy.FLAG_FIN)),
        (spdy.build_rst_stream(3, spdy.RstStatus.CANCEL), spdy.RstStream(3, 5)),
        (spdy.build_ping(0x7FFFFFFF), spdy.Ping(0x7FFFFFFF)),
        (spdy.build_goaway(9, 1), spdy.GoAway(9, 1)),
    ],
)
def test_frame_round_trip(wire: bytes, expected: spdy.Frame) -> None:
    assert spdy.FrameParser().feed(wire) == [expected]


def test_data_frame_layout() -> None:
    assert spdy.build_data(1, b"ab", fin=True) == b"\x00\x00\x00\x01\x01\x00\x00\x02ab"
    assert spdy.DataFrame(1, b"", spdy.FLAG_FIN).fin


def test_ping_echo_is_byte_identical() -> None:
    client_ping = b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"
    (frame,) = spdy.FrameParser().feed(client_ping)
    assert frame == spdy.Ping(1)
    assert spdy.build_ping(frame.ping_id) == client_ping


def test_syn_stream_and_reply_round_trip() -> None:
    client, server = _client_server()
    headers = {"streamtype": "error", "port": "80", "requestid": "0"}
    (syn,) = server.receive(client.syn_stream(1, headers, priority=3, fin=False))
    assert syn == spdy.SynStream(1, headers, 0, 3, 0)
    (reply,) = client.receive(server.syn_reply(1))
    assert reply == spdy.SynReply(1, {}, 0)


def test_header_blocks_share_one_context_per_direction() -> None:
    # Later blocks back-reference earlier ones, so a fresh decompressor could not read them alone.
    client, server = _client_server()
    sent = [
        {"streamtype": kind, "port": str(8000 + i), "requestid": str(i)} for i in range(6) for kind in ("error", "data")
    ]
    wire = b"".join(client.syn_stream(2 * n + 1, h) for n, h in enumerate(sent))
    frames = server.receive(wire)
    assert [f.headers for f in frames] == sent
    assert [f.stream_id for f in frames] == [2 * n + 1 for n in range(len(sent))]
    replies = client.receive(b"".join(server.syn_reply(f.stream_id, {"x": str(i)}) for i, f in enumerate(frames)))
    assert [r.headers for r in replies] == [{"x": str(i)} for i in range(len(sent))]

    with pytest.raises(spdy.SpdyError):  # a later block on its own lacks the shared history
        spdy.FrameParser().feed(client.syn_stream(99, sent[0]))


def test_syn_stream_split_at_every_boundary() -> None:
    client = spdy.SpdyConnection()
    wire = client.syn_stream(1, {"streamtype": "data", "port": "80", "requestid": "0"}) + spdy.build_data(1, b"x")
    for cut in range(1, len(wire)):
        parser = spdy.FrameParser()
        frames = parser.feed(wire[:cut]) + parser.feed(wire[cut:])
        assert [type(f) for f in frames] == [spdy.SynStream, spdy.DataFrame], cut
        assert frames[0].headers["streamtype"] == "data"


def test_stream_in_random_pieces() -> None:
    # kubectl writes one frame as many tiny WebSocket messages (2, 2, 4, 4, 4, 1, 1, 51 bytes were seen).
    client, rng = spdy.SpdyConnection(), random.Random(7)
    wire = b"".join(
        [
            client.syn_stream(1, {"streamtype": "error", "port": "80", "requestid": "0"}),
            spdy.build_data(1, fin=True),
            client.syn_stream(3, {"streamtype": "data", "port": "80", "requestid": "0"}),
            spdy.build_data(3, bytes(range(256)) * 100),
            spdy.build_ping(1),
            spdy.build_rst_stream(3),
        ]
    )
    parser, frames, pos = spdy.FrameParser(), [], 0
    while pos < len(wire):
        step = rng.randint(0, 60)
        frames += parser.feed(wire[pos : pos + step])
        pos += step
    assert [type(f).__name__ for f in frames] == [
        "SynStream",
        "DataFrame",
        "SynStream",
        "DataFrame",
        "Ping",
        "RstStream",
    ]
    assert frames[3].data == bytes(range(256)) * 100


def test_multi_valued_header_and_case() -> None:
    block = struct.pack(">I", 2) + b"".join(struct.pack(">I", len(s)) + s for s in (b"Port", b"80", b"port", b"81"))
    assert spdy.decode_header_block(block) == {"port": "80\x0081"}
    assert spdy.decode_header_block(spdy.encode_header_block({"A": "b"})) == {"a": "b"}


def test_unknown_control_frames_are_passed_through() -> None:
    settings = b"\x80\x03\x00\x04\x00\x00\x00\x04\x00\x00\x00\x00"
    window_update = b"\x80\x03\x00\x09\x00\x00\x00\x08\x00\x00\x00\x01\x00\x01\x00\x00"
    frames = spdy.FrameParser().feed(settings + window_update)
    assert [f.type for f in frames] == [spdy.FrameType.SETTINGS, spdy.FrameType.WINDOW_UPDATE]


@pytest.mark.parametrize(
    "wire",
    [
        b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01",  # SPDY/2
        b"\x80\x03\x00\x01\x00\x00\x00\x02\x00\x00",  # SYN_STREAM too short
        b"\x80\x03\x00\x02\x00\x00\x00\x06\x00\x00\x00\x01\xff\xff",  # SYN_REPLY with garbage headers
    ],
)
def test_protocol_errors(wire: bytes) -> None:
    with pytest.raises(spdy.SpdyError):
        spdy.FrameParser().feed(wire)


def test_oversized_frame_is_refused_before_buffering() -> None:
    with pytest.raises(spdy.SpdyError):
        spdy.FrameParser(max_length=10).feed(spdy.build_data(1, b"x" * 11)[:8])
    with pytest.raises(ValueError):
        spdy.build_data(1, b"x" * (spdy.MAX_LENGTH + 1))
