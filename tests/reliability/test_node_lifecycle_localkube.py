"""LocalKube's node faults on their own (no operator): what a NotReady node and a partitioned node do to a pod
with a real process, as the node lifecycle and taint eviction controllers and the kubelet would."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from localkube.apiserver.core import POD_KEY
from localkube.cluster import LocalKube
from localkube.controllers.nodes import NOT_READY_TAINT, UNREACHABLE_TAINT, NodeConfig
from localkube.testing import async_until

# An HTTP server probed by HTTP: frozen, it accepts connections (the kernel does) but never answers them.
SERVER = ["python", "-m", "http.server", "8080"]


def _pod(name: str, node: str, toleration_key: str, seconds: int) -> dict[str, Any]:
    liveness = {"httpGet": {"port": 8080, "path": "/"}, "periodSeconds": 1, "timeoutSeconds": 1,
                "failureThreshold": 1}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 1,
                     "tolerations": [{"key": toleration_key, "operator": "Exists", "effect": "NoExecute",
                                      "tolerationSeconds": seconds}],
                     "containers": [{"name": "c", "image": "python", "command": SERVER,
                                     "startupProbe": {**liveness, "failureThreshold": 60}, "livenessProbe": liveness}]}}


def _state(pid: int) -> str:
    """The process's scheduler state letter (R, S, T for stopped ...), or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _condition(pod: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    return next((c for c in ((pod or {}).get("status") or {}).get("conditions") or () if c["type"] == type_), {})


async def test_partitioned_node_freezes_its_pods_and_finishes_evictions_only_once_healed() -> None:
    async with LocalKube(nodes=[NodeConfig(name="near"), NodeConfig(name="far")]) as kube:
        core, kubelet = kube.core, kube.kubelet
        assert kubelet is not None
        core.create(core.kind_of(POD_KEY), "default", _pod("cut", "far", UNREACHABLE_TAINT, 1))

        def pod() -> dict[str, Any] | None:
            return core.store.get(POD_KEY, "default", "cut")

        await async_until(lambda: _condition(pod(), "Ready").get("status") == "True", "the pod Ready", 30)
        [worker] = kubelet.workers.values()
        pid = worker.containers[0].proc.pid  # type: ignore[union-attr]
        restarts = lambda: pod()["status"]["containerStatuses"][0]["restartCount"]  # noqa: E731
        kube.nodes.set_ready("far", False, reachable=False)
        await async_until(lambda: _state(pid) == "T", "the pod's process stopped (silent)", 10)
        node = core.store.get(("", "nodes"), "", "far")
        assert {t["key"] for t in node["spec"]["taints"]} == {UNREACHABLE_TAINT}
        assert _condition(node, "Ready")["status"] == "Unknown"
        await async_until(lambda: _condition(pod(), "Ready").get("status") == "False", "the pod marked unready", 10)
        # Evicted after its 1 s toleration: marked for deletion, but nobody can finish it.
        await async_until(lambda: (pod() or {}).get("metadata", {}).get("deletionTimestamp"), "the eviction", 10)
        assert _condition(pod(), "DisruptionTarget")["reason"] == "DeletionByTaintManager"
        events = [e for e in core.store.list(("", "events")) if e["involvedObject"]["name"] == "cut"]
        assert {"NodeNotReady", "TaintManagerEviction"} <= {e["reason"] for e in events}
        # Its liveness probe would fail on the frozen server; on a real partitioned node the process runs and
        # passes it: no restart for several probe periods (the kubelet would kill within 1 + 1 + 1 s).
        held = time.monotonic() + 4
        while time.monotonic() < held:
            assert _state(pid) == "T" and worker.containers[0].proc is not None
            assert worker.containers[0].proc.pid == pid, "the frozen container was restarted"
            await asyncio.sleep(0.2)
        assert restarts() == 0
        # Even a forced delete is not heard on the far side: the process lives on until the node is back.
        core.delete(core.kind_of(POD_KEY), "default", "cut", grace_period=0)
        assert pod() is None and _state(pid) == "T"
        kube.nodes.set_ready("far", True)
        await async_until(lambda: _state(pid) in ("", "Z"), "the process gone once the node is back", 15)
        assert "taints" not in core.store.get(("", "nodes"), "", "far")["spec"]


async def test_not_ready_node_evicts_pods_and_its_kubelet_terminates_them() -> None:
    async with LocalKube(nodes=[NodeConfig(name="sick")]) as kube:
        core = kube.core
        core.create(core.kind_of(POD_KEY), "default", _pod("evicted", "sick", NOT_READY_TAINT, 1))
        await async_until(lambda: _condition(core.store.get(POD_KEY, "default", "evicted"), "Ready").get("status")
                          == "True", "the pod Ready", 30)
        kube.nodes.set_ready("sick", False)
        # The kubelet still reaches the API server: the eviction completes and the pod goes.
        await async_until(lambda: core.store.get(POD_KEY, "default", "evicted") is None, "the pod evicted and gone",
                          20)
