"""The floor: the same Dask processes started directly, no Kubernetes (a scheduler and N `dask worker`s)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(address: str, options: list[str], log) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    return subprocess.Popen([str(BIN / "dask"), "worker", address, "--dashboard-address", ":0", *options],
                            stdout=log, stderr=subprocess.STDOUT)


def start_then_add(first: int, then: int, options: list[str], log_path: Path) -> tuple[float, float | None]:
    """Seconds from spawning a scheduler and `first` workers to all connected; then seconds for `then` more."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ)
    with log_path.open("ab") as log:
        try:
            start = time.perf_counter()
            procs.append(subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                           str(port), "--dashboard-address", ":0"], stdout=log,
                                          stderr=subprocess.STDOUT, env=env))
            procs += [_worker(address, options, log) for _ in range(first)]
            client = Client(address, timeout=60)
            client.wait_for_workers(first, timeout=120)
            up = time.perf_counter() - start
            more = None
            if then:
                start = time.perf_counter()
                procs += [_worker(address, options, log) for _ in range(then)]
                client.wait_for_workers(first + then, timeout=300)
                more = time.perf_counter() - start
            client.close()
            return up, more
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(20)
                if proc.poll() is None:
                    proc.kill()
