"""Test tiers: tests/unit needs no server; the rest use the session cluster of LocalKube's pytest plugin
(`localkube.pytest_plugin`, loaded by its entry point: `--kube=local|existing|kind`).

The `operator` fixture installs the CRDs and runs the real operator as a subprocess (`python -m
dask_kube.operator --all-namespaces`), as users run it; tests that need it restarted or killed use its
methods, and `held` reads what it keeps per object from its probe endpoint. Its log is printed when a test fails.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from localkube.testing import free_port

CRDS = Path(__file__).parents[1] / "dask_kube" / "operator" / "crds"


class OperatorProcess:
    """`args` are added to the command line, `env` to the environment; `start` returns once the log says `ready`
    (a standby of leader election says it waits for the Lease, and starts the operator only once it leads)."""

    def __init__(self, kubeconfig: Path, log_path: Path, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, ready: bytes = b"operator started") -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.args = args
        self.env = env or {}
        self.ready = ready
        self.proc: subprocess.Popen[bytes] | None = None
        self.probe_url = ""
        self.metrics_url = ""

    def start(self) -> None:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig),
                   # Faster resync and reconnects than production: tests wait on conditions, not clocks.
                   DASK_KUBERNETES__OPERATOR__RESYNC_SECONDS="2", **self.env)
        log = self.log_path.open("ab")
        offset = log.tell()  # only this start's lines count: earlier runs said "started" too
        self.probe_url = f"http://127.0.0.1:{free_port()}/healthz"
        self.proc = subprocess.Popen([sys.executable, "-m", "dask_kube.operator", "--all-namespaces", "--verbose",
                                      "--liveness", self.probe_url, "--metrics-port", "0", *self.args],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while self.ready not in self.log_path.read_bytes()[offset:]:
            assert self.proc.poll() is None, self.tail()
            assert time.monotonic() < deadline, "the operator did not start:\n" + self.tail()
            time.sleep(0.05)
        port = re.search(rb"serving metrics on :(\d+)/metrics", self.log_path.read_bytes()[offset:])
        assert port is not None, self.tail()
        self.metrics_url = f"http://127.0.0.1:{int(port[1])}/metrics"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crashed or evicted operator pod."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def metrics(self) -> str:
        """Its /metrics page (Prometheus' text format)."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as resp:
            return str(resp.read().decode())

    def held(self, namespace: str) -> dict[str, int]:
        """What the operator keeps for the objects of `namespace` (its probe; kopf caches probes for 10 s)."""
        with urllib.request.urlopen(self.probe_url, timeout=10) as resp:
            return dict(json.loads(resp.read())["held_by_namespace"].get(namespace, {}))

    def tail(self, lines: int = 60) -> str:
        text = self.log_path.read_bytes().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(autouse=True)
def _fresh_kr8s_clients() -> Iterator[None]:
    """kr8s caches one client per thread and event loop, holding the kubeconfig it was built from: a test that
    points KUBECONFIG at a LocalKube of its own must not leave that client to the next test."""
    # kr8s's package namespace shadows its `_api` module with a function of that name: import the module itself.
    importlib.import_module("kr8s._api").Api._instances.clear()
    yield


@pytest.fixture(scope="session")
def crds(kube) -> Path:  # type: ignore[no-untyped-def]
    kube.kubectl("apply", "-f", str(CRDS))
    for crd in ("daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"):
        kube.kubectl("wait", "--for=condition=Established", f"crd/{crd}.kubernetes.dask.org", "--timeout=30s")
    return CRDS


@pytest.fixture(scope="session")
def operator(kube, crds, tmp_path_factory) -> Iterator[OperatorProcess]:  # type: ignore[no-untyped-def]
    handle = OperatorProcess(kube.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    handle.start()
    yield handle
    handle.stop()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    handle = item.funcargs.get("operator") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(handle, OperatorProcess):
        report.sections.append(("operator log (last lines)", handle.tail()))
