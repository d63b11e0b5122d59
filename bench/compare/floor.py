"""The floor: the same Dask processes started directly, no Kubernetes, the fastest way there is.

`python -m distributed.cli.dask_scheduler` and `python -m distributed.cli.dask_worker` of this environment (the
same distributed as both tools' pods), not the `dask` command: `dask` imports every `dask_cli` plugin before it
runs a subcommand, which a floor must not pay. A DaskJob's floor is its cluster started the same way and the
runner's own command run directly, from spawn to the runner's exit. Processes go through `procs`, so that none
outlives the harness.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import procs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(module: str) -> list[str]:
    return [sys.executable, "-m", f"distributed.cli.{module}"]


def _scheduler(port: int, log) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    return procs.popen([*_cli("dask_scheduler"), "--host", "127.0.0.1", "--port", str(port),
                        "--dashboard-address", ":0"], stdout=log, stderr=subprocess.STDOUT)


def _worker(address: str, options: list[str], log) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    return procs.popen([*_cli("dask_worker"), address, "--dashboard-address", ":0", *options], stdout=log,
                       stderr=subprocess.STDOUT)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _client(port: int, limit: float):  # type: ignore[no-untyped-def]
    """A Client of the floor's scheduler once it listens. The wait is the harness's own, which gives up as soon as
    the harness stops: `Client(timeout=...)` alone would keep retrying a scheduler killed by the clean-up."""
    from distributed import Client

    procs.wait_until(lambda: _listening(port), limit, "the floor's scheduler listening")
    return Client(f"tcp://127.0.0.1:{port}", timeout=30)


def _wait_workers(client, n: int, limit: float) -> None:  # type: ignore[no-untyped-def]
    """Until `n` workers are connected, or the harness stops; polled as often as `Client.wait_for_workers` does."""
    procs.wait_until(lambda: len(client.scheduler_info(n_workers=-1)["workers"]) >= n, limit,
                     f"{n} floor workers connected", every=0.1)


def _stop(started: list[subprocess.Popen[bytes]]) -> None:
    for proc in started:
        procs.stop(proc)


def start_then_add(first: int, then: int, options: list[str], log_path: Path) -> tuple[float, float | None]:
    """Seconds from spawning a scheduler and `first` workers to all connected; then seconds for `then` more."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    started: list[subprocess.Popen[bytes]] = []
    with log_path.open("ab") as log:
        try:
            start = time.perf_counter()
            started.append(_scheduler(port, log))
            started += [_worker(address, options, log) for _ in range(first)]
            client = _client(port, 60)
            _wait_workers(client, first, 120)
            up = time.perf_counter() - start
            more = None
            if then:
                start = time.perf_counter()
                started += [_worker(address, options, log) for _ in range(then)]
                _wait_workers(client, first + then, 300)
                more = time.perf_counter() - start
            client.close()
            return up, more
        finally:
            _stop(started)


def job(command: list[str], workers: int, options: list[str], log_path: Path, limit: float = 300) -> float:
    """Seconds from spawning a scheduler, `workers` workers and the runner's `command` (with
    DASK_SCHEDULER_ADDRESS, as the operator injects it) to the runner's successful exit."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    started: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ, DASK_SCHEDULER_ADDRESS=address)
    with log_path.open("ab") as log:
        try:
            start = time.perf_counter()
            started.append(_scheduler(port, log))
            started += [_worker(address, options, log) for _ in range(workers)]
            runner = procs.popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            started.append(runner)
            procs.wait_until(lambda: runner.poll() is not None, limit, "the floor's runner finished")
            code = runner.returncode
            elapsed = time.perf_counter() - start
            if code != 0:
                raise RuntimeError(f"the runner exited {code} (see {log_path})")
            return elapsed
        finally:
            _stop(started)
