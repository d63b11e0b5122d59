"""The forward's listener under cancellation: stopping it while a connection arrives loses nothing and logs no
error (asyncio's own `sock_accept` fails there with InvalidStateError and leaks the accepted socket)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from dask_kube.port_forward import SchedulerForward


async def test_cancelling_the_listener_as_a_connection_arrives_is_clean() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    # The API client is never reached: the one connection is refused, not forwarded.
    forward = SchedulerForward(api=None, namespace="ns", cluster="c", remote_port=8786)  # type: ignore[arg-type]
    await forward.start()
    await asyncio.sleep(0)  # the accept task is now waiting for the listener to become readable
    accepting = forward._accepting
    assert accepting is not None and not accepting.done()
    client = socket.create_connection(("127.0.0.1", forward.local_port))
    try:
        # Cancel in the next loop pass, ahead of the listener's readiness callback in that same pass: the order
        # in which asyncio's sock_accept accepts for a waiter that is already cancelled.
        loop.call_soon(accepting.cancel)
        done, _ = await asyncio.wait([accepting], timeout=10)
        assert done and accepting.cancelled()
        for _ in range(3):  # let any callback queued in that pass run
            await asyncio.sleep(0)
        assert errors == []
        assert forward._connections == set()  # nothing accepted, so nothing to leak
        await forward.stop()
        client.settimeout(10)  # the connection in the backlog is refused with the listener, not left hanging
        try:
            assert client.recv(1) == b""
        except ConnectionResetError:
            pass
    finally:
        client.close()
        loop.set_exception_handler(None)
