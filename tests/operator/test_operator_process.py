"""The operator process itself: liveness endpoint, namespace scoping, and crash-looping schedulers explained."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from localkube.testing import until

from dask_kube import specs

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_liveness_endpoint_and_single_namespace_scope(kube, crds, kubectl, namespace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()
    log = tmp_path / "op.log"
    env = {"KUBECONFIG": str(kube.kubeconfig), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "dask_kube.operator", "--namespace", namespace,
                             "--liveness", f"http://127.0.0.1:{port}/healthz", "--verbose"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    body = json.loads(resp.read())
                    break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no liveness endpoint:\n" + log.read_text()
                time.sleep(0.1)
        assert "reconcile_loops" in body  # the probe reports the number of running loops
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def test_crash_looping_scheduler_is_explained_with_its_logs(kubectl, operator, namespace) -> None:  # type: ignore[no-untyped-def]
    cluster = specs.make_cluster_spec("crashy", n_workers=0)
    container = cluster["spec"]["scheduler"]["spec"]["containers"][0]
    container["args"] = ["python", "-c", "import sys; print('scheduler config is broken: boom', flush=True); "
                                          "sys.exit(1)"]
    kubectl("apply", "-f", "-", input=yaml.safe_dump(cluster))
    deadline = time.monotonic() + 60
    while True:
        obj = json.loads(kubectl("get", "daskcluster", "crashy", "-o", "json").stdout)
        conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or ()}
        sched = conds.get("SchedulerReady", {})
        if sched.get("reason") == "SchedulerCrashLoopBackOff" and "boom" in sched.get("message", ""):
            break
        assert time.monotonic() < deadline, f"no crash-loop diagnosis: {obj.get('status')}"
        time.sleep(0.2)
    assert obj["status"]["phase"] == "Pending" and sched["status"] == "False"
    # The operator writes the condition first and posts the Event after it: wait for the Event too.
    def crash_loop_events() -> list[dict[str, object]]:
        return json.loads(kubectl("get", "events", "--field-selector", "reason=SchedulerCrashLoopBackOff",
                                  "-o", "json").stdout)["items"]

    events = until(crash_loop_events, "a SchedulerCrashLoopBackOff Event", within=30)
    assert events[0]["type"] == "Warning"
