"""The client side of each scenario, run in the tool's own environment (imports neither tool: an adapter does).

    python dk_runner.py|ours_runner.py COMMAND 'JSON ARGS'

Protocol: every result is one stdout line `@@ {json}`; the harness writes `stop` on stdin to end a long-lived
command. Any other output goes to the runner's log. Only the standard library and distributed are imported here,
so that the same file serves both environments.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Adapter:
    """What differs between the tools: how a cluster is made, and how a port is forwarded."""

    # () -> None: imports the tool's cluster class, which a script does before it calls KubeCluster()
    load: Callable[[], None]
    # (name, namespace, n_workers, image, worker_command, extra) -> a distributed Cluster
    make_cluster: Callable[..., Any]
    # (namespace, cluster name, remote port) -> local port on 127.0.0.1, forwarding until the process ends
    forward: Callable[[str, str, int], int]


def emit(**event: Any) -> None:
    sys.stdout.write("@@ " + json.dumps(event) + "\n")
    sys.stdout.flush()


def wait_stop() -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            return


def _workers(client: Any) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


def _wait_workers(client: Any, n: int, exact: bool, limit: float) -> None:
    deadline = time.monotonic() + limit
    while (_workers(client) != n) if exact else (_workers(client) < n):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{_workers(client)} workers, not {n}, after {limit:.0f} s")
        time.sleep(0.05)


def cold(adapter: Adapter, args: dict[str, Any]) -> None:
    """KubeCluster(n_workers=2) until both workers are connected, then close. The clock starts at the call, as
    the row says: importing the tool's module (timed apart) happens once per script, before it."""
    from distributed import Client

    start = time.perf_counter()
    adapter.load()
    imported = time.perf_counter() - start
    start = time.perf_counter()
    cluster = adapter.make_cluster(args["name"], args["namespace"], 2, args["image"], args["worker_command"],
                                   args.get("extra") or {})
    client = Client(cluster)
    client.wait_for_workers(2, timeout=args.get("timeout", 300))
    up = time.perf_counter() - start
    client.close()
    start = time.perf_counter()
    cluster.close()
    emit(event="result", seconds=up, close_seconds=time.perf_counter() - start, import_seconds=imported)


def scale(adapter: Adapter, args: dict[str, Any]) -> None:
    """2 -> N workers until connected; then N -> 2 with scattered data held by the workers: is any lost?"""
    from distributed import Client

    high, low, limit = args["high"], args["low"], args.get("timeout", 600)
    cluster = adapter.make_cluster(args["name"], args["namespace"], low, args["image"], args["worker_command"],
                                   args.get("extra") or {})
    client = Client(cluster)
    client.wait_for_workers(low, timeout=limit)
    start = time.perf_counter()
    cluster.scale(high)
    _wait_workers(client, high, exact=False, limit=limit)
    up = time.perf_counter() - start

    # Scattered data cannot be recomputed: a block on a worker removed without retiring it is lost for good.
    blocks = [bytes([i % 256]) * args.get("block_bytes", 1_000_000) for i in range(args.get("blocks", 64))]
    futures = client.scatter(blocks)
    holders = {w for ws in client.who_has(futures).values() for w in ws}
    start = time.perf_counter()
    cluster.scale(low)
    _wait_workers(client, low, exact=True, limit=limit)
    down = time.perf_counter() - start
    time.sleep(1.0)  # let the scheduler report what it lost
    lost = [f.key for f in futures if f.status != "finished"]
    intact = False
    if not lost:
        try:
            got = client.gather(futures, errors="raise", direct=False)
            intact = all(g == b for g, b in zip(got, blocks, strict=True))
        except Exception as err:  # a lost key raises here
            print("gather failed:", repr(err), file=sys.stderr)
    emit(event="result", up_seconds=up, down_seconds=down, holders=len(holders), lost_keys=len(lost),
         intact=intact)
    client.close()
    cluster.close()


def hold(adapter: Adapter, args: dict[str, Any]) -> None:
    """A cluster of N workers, connected, held until `stop` (the idle-requests scenario)."""
    from distributed import Client

    cluster = adapter.make_cluster(args["name"], args["namespace"], args["workers"], args["image"],
                                   args["worker_command"], args.get("extra") or {})
    client = Client(cluster)
    client.wait_for_workers(args["workers"], timeout=args.get("timeout", 600))
    emit(event="ready", workers=_workers(client))
    wait_stop()
    client.close()
    cluster.close()
    emit(event="closed")


def forward(adapter: Adapter, args: dict[str, Any]) -> None:
    """The tool's own port-forward to the "scheduler" of cluster `cluster`, until `stop`."""
    port = adapter.forward(args["namespace"], args["cluster"], args["port"])
    emit(event="ready", port=port)
    wait_stop()


COMMANDS = {"cold": cold, "scale": scale, "hold": hold, "forward": forward}


def main(adapter: Adapter) -> None:
    command, args = sys.argv[1], json.loads(sys.argv[2])
    try:
        COMMANDS[command](adapter, args)
    except BaseException as err:
        traceback.print_exc()
        emit(event="error", error=f"{type(err).__name__}: {err}")
        sys.stdout.flush()
        # A sync KubeCluster's loop thread may hold the process open: leave now.
        import os

        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    if threading.active_count() > 1:  # forward threads are never stopped by dask-kubernetes
        import os

        os._exit(0)
