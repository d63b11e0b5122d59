"""DaskAutoscaler with the real operator: a group grows under load and shrinks, step by step, when idle."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from distributed import Client, wait
from kr8s.objects import Pod
from localkube.testing import free_port, until

from dask_kube import naming, specs
from dask_kube.naming import ConditionType, Reason

pytestmark = pytest.mark.e2e
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _get(kubectl: Kubectl, kind: str, name: str) -> dict[str, Any]:
    return json.loads(kubectl("get", kind, name, "-o", "json").stdout)



def _replicas(kubectl: Kubectl, group: str) -> int:
    return int(_get(kubectl, "daskworkergroup", group)["spec"]["worker"]["replicas"])


def _events(kubectl: Kubectl, name: str, reason: str) -> list[dict[str, Any]]:
    items = json.loads(kubectl("get", "events", "-o", "json").stdout)["items"]
    return sorted((e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason),
                  key=lambda e: (e["metadata"]["creationTimestamp"], e["metadata"]["name"]))


def test_grows_under_load_and_shrinks_when_idle(kubectl: Kubectl, operator: Any, namespace: str) -> None:
    cluster = specs.make_cluster_spec("auto", n_workers=1, worker_command="dask worker --nthreads 1 --no-dashboard")
    # A short target duration makes the scheduler ask for workers after seconds of queued work, not minutes.
    cluster["spec"]["scheduler"]["spec"]["containers"][0]["env"].append(
        {"name": "DASK_DISTRIBUTED__ADAPTIVE__TARGET_DURATION", "value": "2s"})
    kubectl("apply", "-f", "-", input=yaml.safe_dump(cluster))
    until(lambda: (_get(kubectl, "daskcluster", "auto").get("status") or {}).get("readyReplicas") == 1,
           "the cluster with one worker", 90)
    kubectl("apply", "-f", "-", input=yaml.safe_dump(specs.make_autoscaler("auto", 1, 4)))

    def settled() -> dict[str, Any] | None:
        obj = _get(kubectl, "daskautoscaler", "auto")
        conds = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or ()}
        return obj if conds.get(ConditionType.READY) == "True" and obj["status"].get("desiredWorkers") == 1 else None
    scaler = until(settled, "the autoscaler to run")
    owner = scaler["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("DaskCluster", "auto", True)  # adopted
    assert _replicas(kubectl, "auto-default") == 1

    pod = Pod.get(naming.scheduler_name("auto"), namespace=namespace)
    with pod.portforward(8786, local_port=free_port()) as port, Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
        futures = client.map(time.sleep, [2] * 40, pure=False)
        until(lambda: _replicas(kubectl, "auto-default") == 4, "the group to grow to the maximum", 30)
        client.wait_for_workers(3, timeout=60)  # new workers join and take work
        wait(futures, timeout=120)
        assert len({w for ws in client.who_has(futures).values() for w in ws}) >= 3
        del futures
        status = _get(kubectl, "daskautoscaler", "auto")["status"]
        assert status["desiredWorkers"] == 4 and status["lastScaleTime"].endswith("Z")
        until(lambda: _replicas(kubectl, "auto-default") == 1, "the idle group to shrink to the minimum", 90)
        until(lambda: len(client.scheduler_info()["workers"]) == 1, "the extra workers to be retired", 60)

    moves = [tuple(int(n) for n in re.search(r"from (\d+) to (\d+)", e["message"]).groups())  # type: ignore[union-attr]
             for e in _events(kubectl, "auto", Reason.AUTOSCALED)]
    ups = [m for m in moves if m[1] > m[0]]
    downs = [m for m in moves if m[1] < m[0]]
    assert ups and ups[-1][1] == 4
    # Down one worker at a time (a quarter of four, at least one), never below the minimum.
    assert sorted(downs, reverse=True) == [(4, 3), (3, 2), (2, 1)], moves
    # ... one interval apart at least: the operator's resync in tests is 2 s, so the interval is 2 s.
    times = sorted(dt.datetime.fromisoformat(e["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
                   for e in _events(kubectl, "auto", Reason.AUTOSCALED) if "down" in e["message"])
    assert (times[-1] - times[0]).total_seconds() >= 3, times  # two intervals, less the timestamps' rounding
    assert _get(kubectl, "daskcluster", "auto")["spec"]["worker"]["replicas"] == 1  # mirrored to the cluster


def test_minimum_above_maximum_is_reported(kubectl: Kubectl, operator: Any, namespace: str) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(specs.make_autoscaler("nowhere", 5, 2)))

    def invalid() -> dict[str, Any] | None:
        conds = (_get(kubectl, "daskautoscaler", "nowhere").get("status") or {}).get("conditions") or ()
        return next((c for c in conds if c["type"] == ConditionType.SPEC_VALID and c["status"] == "False"), None)
    cond = until(invalid, "SpecValid False", 30)
    assert cond["reason"] == Reason.INVALID_BOUNDS and "minimum (5)" in cond["message"]
    [event] = until(lambda: _events(kubectl, "nowhere", Reason.INVALID_BOUNDS), "a Warning Event", 10)
    assert event["type"] == "Warning"
    kubectl("patch", "daskautoscaler", "nowhere", "--type=merge", "-p", '{"spec": {"maximum": 6}}')

    def missing_cluster() -> bool:
        conds = {c["type"]: c for c in (_get(kubectl, "daskautoscaler", "nowhere").get("status") or {}).get(
            "conditions") or ()}
        return conds[ConditionType.SPEC_VALID]["status"] == "True" and \
            conds.get(ConditionType.READY, {}).get("reason") == Reason.CLUSTER_MISSING
    until(missing_cluster, "the fixed autoscaler to wait for its cluster", 30)
