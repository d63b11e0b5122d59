"""Shared by the port-forward benchmarks: a sink that a pod runs and the sender that measures MB/s into it.

The protocol is the smallest that proves every byte arrived: an 8-byte big-endian length, the payload, and a
2-byte `ok` from the sink once it has read all of it.
"""

from __future__ import annotations

import asyncio
import time

SINK_PORT = 9000
CHUNK = 1 << 20

# Run in the pod as `python -c SINK`; it serves one transfer per connection, forever.
SINK = (
    "import socket\n"
    f"srv = socket.create_server(('0.0.0.0', {SINK_PORT}))\n"
    "while True:\n"
    "    conn, _ = srv.accept()\n"
    "    f = conn.makefile('rb')\n"
    "    left = int.from_bytes(f.read(8) or bytes(8), 'big')\n"
    "    while left:\n"
    f"        chunk = f.read(min(left, {CHUNK}))\n"
    "        if not chunk:\n"
    "            break\n"
    "        left -= len(chunk)\n"
    "    try:\n"
    "        conn.sendall(b'ok')\n"
    "    except OSError:\n"
    "        pass\n"
    "    conn.close()\n"
)


async def send(host: str, port: int, payload: bytes, ack_within: float = 120) -> float:
    """Send `payload` to a sink at host:port; MB/s from connect to the sink's acknowledgement."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(len(payload).to_bytes(8, "big"))
    for i in range(0, len(payload), CHUNK):
        writer.write(payload[i:i + CHUNK])
        await writer.drain()
    assert await asyncio.wait_for(reader.read(2), ack_within) == b"ok"
    writer.close()
    return len(payload) / (time.perf_counter() - start) / 1e6
