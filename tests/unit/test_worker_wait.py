"""How often `KubeCluster.wait_for_workers` looks at the scheduler. A worker arrives on the worker stream as "init"
and turns "running" on a message that stream never carries: the wait must look again soon, not when the stream's
2-second guard runs out (cold starts took 1.5-2 s longer about half the time)."""

from __future__ import annotations

import asyncio

from distributed import Scheduler, Worker
from distributed.core import rpc

from dask_kube.cluster import startup


def test_a_worker_between_init_and_running_is_looked_at_again_soon() -> None:
    init, running = {"status": "init"}, {"status": "running"}
    assert startup.running_workers({"a": init, "b": running}) == 1
    assert startup.next_look({"a": init, "b": running}, 30.0) == startup.WORKER_SETTLING_SECONDS
    assert startup.next_look({"b": running}, 30.0) == startup.WORKER_STREAM_GUARD_SECONDS  # the stream wakes it
    assert startup.next_look({}, 30.0) == startup.WORKER_STREAM_GUARD_SECONDS
    # A paused worker (memory) may stay so for minutes: no reason to ask 20 times a second.
    assert startup.next_look({"p": {"status": "paused"}}, 30.0) == startup.WORKER_STREAM_GUARD_SECONDS
    assert startup.next_look({"a": init}, 0.01) == 0.01  # never past the deadline


def test_the_worker_stream_announces_a_worker_before_it_runs() -> None:
    """Why the short look exists, checked against distributed itself: the stream's "add" is not "running"."""

    async def main() -> str:
        async with Scheduler(dashboard_address=":0", port=0) as scheduler, rpc(scheduler.address) as remote:
            comm = await remote.live_comm()
            await comm.write({"op": "subscribe_worker_status"})
            await comm.read()  # the scheduler's identity, no workers yet
            async with Worker(scheduler.address, dashboard_address=":0", nthreads=1):
                while True:
                    for op, msg in await asyncio.wait_for(comm.read(), 30):
                        if op == "add":
                            await comm.close()
                            (ident,) = msg["workers"].values()
                            return str(ident["status"])

    status = asyncio.run(main())
    assert status == "init"
    assert startup.next_look({"w": {"status": status}}, 30.0) == startup.WORKER_SETTLING_SECONDS
