"""`SchedulerForward` on LocalKube: every byte arrives, both ways, in order, for bulk and small messages alike.

The forward frames and masks its WebSocket messages itself and reads and writes the bare local socket
(`websocket_session.py`, `port_forward.py`); an echo pod labelled as a cluster's scheduler stands behind it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import kr8s.asyncio
import pytest
import yaml

from dask_kube import naming
from dask_kube.port_forward import READ_CHUNK, SchedulerForward

CLUSTER = "echo"
PORT = 7000
# Echoes every connection until its client closes it; one thread per connection.
ECHO = (
    "import socket, threading\n"
    f"srv = socket.create_server(('0.0.0.0', {PORT}))\n"
    "def echo(conn):\n"
    "    with conn:\n"
    "        while data := conn.recv(1 << 20):\n"
    "            conn.sendall(data)\n"
    "while True:\n"
    "    threading.Thread(target=echo, args=(srv.accept()[0],), daemon=True).start()\n"
)


@pytest.fixture
async def forward(kubectl, kubeconfig, namespace) -> AsyncIterator[SchedulerForward]:  # type: ignore[no-untyped-def]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": naming.scheduler_name(CLUSTER), "labels": naming.scheduler_selector(CLUSTER)},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
               "name": "echo", "image": "python", "command": ["python", "-c", ECHO],
               "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1}}]}}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
    await asyncio.to_thread(kubectl, "wait", "--for=condition=Ready", f"pod/{naming.scheduler_name(CLUSTER)}",
                            "--timeout=60s", timeout=70)
    api = await kr8s.asyncio.api(kubeconfig=str(kubeconfig))
    fwd = SchedulerForward(api, namespace, CLUSTER, PORT)
    await fwd.start()
    try:
        yield fwd
    finally:
        await fwd.stop()


async def _echo(port: int, payload: bytes) -> bytes:
    """Send `payload` while reading the echo, as a Dask comm does (no half-close): what came back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def write() -> None:
        for i in range(0, len(payload), 100_000):  # pieces that straddle the forward's reads
            writer.write(payload[i:i + 100_000])
            await writer.drain()

    sending = asyncio.create_task(write())
    try:
        received = await asyncio.wait_for(reader.readexactly(len(payload)), 60)
        await sending
    finally:
        writer.close()
    return received


async def test_bulk_bytes_arrive_intact_both_ways(forward: SchedulerForward) -> None:
    payload = os.urandom(3 * READ_CHUNK + 12345)  # several full frames and a partial one
    received = await _echo(forward.local_port, payload)
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()


async def test_small_messages_go_at_once_and_connections_come_and_go(forward: SchedulerForward) -> None:
    for size in (1, 125, 126, 65535, 65536):  # each length encoding of a WebSocket frame
        payload = os.urandom(size)
        assert await _echo(forward.local_port, payload) == payload
    reader, writer = await asyncio.open_connection("127.0.0.1", forward.local_port)
    try:
        for i in range(20):  # request/response: nothing waits for a buffer to fill
            writer.write(b"ping %d" % i)
            assert await asyncio.wait_for(reader.readexactly(len(b"ping %d" % i)), 30) == b"ping %d" % i
    finally:
        writer.close()


async def test_stop_closes_the_listener_and_every_connection(forward: SchedulerForward) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", forward.local_port)
    writer.write(b"hello")
    assert await asyncio.wait_for(reader.readexactly(5), 30) == b"hello"
    await forward.stop()
    assert not forward.running
    assert await asyncio.wait_for(reader.read(), 30) == b""  # the open connection was closed
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", forward.local_port)
