"""pytest plugin: kr8s's own test suite against LocalKube (`make conformance`, see run.py).

kr8s's suite ships inside its wheel (`kr8s/tests`, fixtures in `kr8s/conftest.py`) and expects what its
developers' root conftest gives it: a session fixture `k8s_cluster` (pytest-kind's `KindCluster`: `kubeconfig_path`,
`kubectl_path`, `kubectl(*args)`) that also points `KUBECONFIG` at the cluster, and `ensure_gc`. This plugin gives
the same, backed by a fresh LocalKube, and records every outcome so that run.py can write the report.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localkube import LocalKube, ThreadedLocalKube


class LocalKubeCluster:
    """What kr8s's tests use of pytest-kind's `KindCluster`."""

    def __init__(self, local: ThreadedLocalKube, kubectl_path: Path, cache: Path) -> None:
        self.local = local
        self.kubeconfig_path = Path(local.kubeconfig)
        self.kubectl_path = kubectl_path
        self._env = dict(os.environ, KUBECONFIG=str(self.kubeconfig_path), KUBECACHEDIR=str(cache))

    def kubectl(self, *args: str, **kwargs: Any) -> str:
        """Run kubectl against the cluster and return its output; raise if it fails (as KindCluster does)."""
        return subprocess.check_output([str(self.kubectl_path), *args], env=self._env, encoding="utf-8", **kwargs)


def _kubectl() -> Path:
    found = os.environ.get("CONFORMANCE_KUBECTL") or shutil.which("kubectl")
    if found is None:
        raise pytest.UsageError("kr8s's tests need kubectl: put one on PATH or set CONFORMANCE_KUBECTL")
    return Path(found)


@pytest.fixture(scope="session", autouse=True)
def k8s_cluster() -> Iterator[LocalKubeCluster]:
    saved = os.environ.get("KUBECONFIG")
    with tempfile.TemporaryDirectory(prefix="kr8s-conformance-") as tmp, LocalKube.in_thread() as local:
        os.environ["KUBECONFIG"] = str(local.kubeconfig)
        try:
            yield LocalKubeCluster(local, _kubectl(), Path(tmp) / "kubectl-cache")
        finally:
            if saved is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = saved


@pytest.fixture
def ensure_gc() -> Iterator[None]:
    gc.collect()
    yield
    gc.collect()


# -- the record run.py reads --------------------------------------------------------------------------------------

_RESULTS: dict[str, dict[str, Any]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _RESULTS.setdefault(report.nodeid, {"outcome": "passed", "duration": 0.0, "reason": ""})
    entry["duration"] += report.duration
    if report.when == "call" and hasattr(report, "wasxfail"):
        entry["outcome"] = "xfailed" if report.skipped else "xpassed"
        entry["reason"] = report.wasxfail
    elif report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        entry["reason"] = _reason(report)
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        entry["reason"] = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""


def _reason(report: pytest.TestReport) -> str:
    """The line that says what went wrong: the exception's last line."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return " ".join(text.strip().splitlines()[-1:])[:300]


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("CONFORMANCE_RESULTS")
    if target:
        Path(target).write_text(json.dumps(_RESULTS, indent=1, sort_keys=True))
