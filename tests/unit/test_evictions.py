"""Evicted workers are retired at once, and worker pods carry what keeps them alive meanwhile: tables, no server."""

from __future__ import annotations

from typing import Any

import pytest

from dask_kube import naming, specs, worker_lifecycle
from dask_kube.naming import Reason
from dask_kube.operator.workergroup import GroupMemory, decide
from tests.unit.test_group_decisions import SETTINGS, group, pod, view, worker

LATER = "2026-01-01T00:03:00Z"  # a deletionTimestamp whose grace period has not ended at NOW
EARLIER = "2026-01-01T00:00:30Z"  # one that has


def _retirements(plan: Any) -> list[Any]:
    return [c for c in plan.scheduler if c.event.reason == Reason.EVICTED_WORKERS_RETIRED]


@pytest.mark.parametrize(("deleting", "connected", "memory", "retired"), [
    pytest.param(LATER, True, GroupMemory(), {"w2": "w2"}, id="evicted-connected"),
    pytest.param(None, True, GroupMemory(), {}, id="not-deleting"),
    pytest.param(LATER, False, GroupMemory(), {}, id="worker-already-gone"),
    pytest.param(EARLIER, True, GroupMemory(), {}, id="grace-period-over"),
    pytest.param(LATER, True, GroupMemory(deleted=frozenset({"uid-w2"})), {}, id="deleted-by-the-operator"),
    pytest.param(LATER, True, GroupMemory(evicted=frozenset({"uid-w2"})), {}, id="retired-already"),
])
def test_an_evicted_worker_is_retired_once_while_its_pod_terminates(
        deleting: str | None, connected: bool, memory: GroupMemory, retired: dict[str, str]) -> None:
    pods = [pod("w1"), pod("w2", deleting=deleting)]
    workers = [worker("w1")] + ([worker("w2")] if connected else [])
    plan = decide(view(pods, workers, replicas=2), memory, 0.0, SETTINGS)
    calls = _retirements(plan)
    assert {k: v for c in calls for k, v in c.workers.items()} == retired
    assert all(c.op == "retire" and not c.delete_pods for c in calls), "the pod is being deleted already"
    if retired:
        assert plan.memory is not None and "uid-w2" in plan.memory.evicted
        assert len(plan.create) == 1, "the evicted pod is replaced at once"


def test_a_worker_on_an_unreachable_node_is_not_retired() -> None:
    """Its node stopped answering (the pod is marked not Ready, then evicted by the taint manager): its worker can
    hand nothing over, so it is removed as lost at once (what it held is recomputed), not held retiring until the
    pod's long grace period ends."""
    unreachable = pod("w2", deleting=LATER)
    unreachable.setdefault("status", {})["conditions"] = [
        {"type": "Ready", "status": "False"},
        {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"}]
    plan = decide(view([pod("w1"), unreachable], [worker("w1"), worker("w2")], replicas=2), GroupMemory(), 0.0,
                  SETTINGS)
    assert _retirements(plan) == []
    removed = [c for c in plan.scheduler if c.event.reason == Reason.WORKERS_LOST]
    assert [c.op for c in removed] == ["remove"] and set(removed[0].workers) == {"w2"}, plan.scheduler


def test_what_the_loop_remembers_of_evictions_goes_with_the_pods() -> None:
    memory = GroupMemory(evicted=frozenset({"uid-w2", "uid-gone"}))
    plan = decide(view([pod("w1"), pod("w2", deleting=LATER)], [worker("w1"), worker("w2")], replicas=2), memory,
                  0.0, SETTINGS)
    assert plan.memory is not None and plan.memory.evicted == {"uid-w2"}
    assert _retirements(plan) == []


def test_worker_pods_get_a_grace_period_and_a_hook_that_waits_for_retirement() -> None:
    built = specs.worker_pod(group(), "c", grace_seconds=120)
    spec = built["spec"]
    assert spec["terminationGracePeriodSeconds"] == 120
    command = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["python", "-c"] and float(command[-1]) == 120 - worker_lifecycle.CLOSE_SECONDS
    assert naming.WORKER_NAME_ENV in command[2] and naming.SCHEDULER_ADDRESS_ENV in command[2]
    compile(command[2], "preStop", "exec")  # the script is valid Python
    assert "lifecycle" not in specs.worker_pod(group(), "c")["spec"]["containers"][0], "only when asked"


@pytest.mark.parametrize(("pod_spec", "grace", "hooked"), [
    pytest.param({"containers": [{"name": "sidecar"}, {"name": "worker"}]}, 120, "worker", id="worker-by-name"),
    pytest.param({"terminationGracePeriodSeconds": 20, "containers": [{"name": "w"}]}, 20, "w", id="user-grace"),
    pytest.param({"containers": [{"name": "w", "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}]}, 120, None,
                 id="user-hook-kept"),
])
def test_the_user_template_wins(pod_spec: dict[str, Any], grace: int, hooked: str | None) -> None:
    out = worker_lifecycle.with_retirement(pod_spec, 120)
    assert out["terminationGracePeriodSeconds"] == grace
    hooks = {c["name"]: c.get("lifecycle", {}).get("preStop") for c in out["containers"]}
    if hooked is None:
        assert hooks == {"w": {"sleep": {"seconds": 5}}}
    else:
        assert [n for n, h in hooks.items() if h] == [hooked]
        assert float(hooks[hooked]["exec"]["command"][-1]) == worker_lifecycle.hook_budget(grace)
    assert "lifecycle" not in pod_spec["containers"][0] or hooked is None, "the template itself is not changed"


def test_worker_hooks_end_at_once_in_a_closing_cluster() -> None:
    script = worker_lifecycle.HOOK_SCRIPT
    assert f"get_metadata(keys={list(worker_lifecycle.CLOSING_KEYS)!r}, default=False)" in script
    assert script.index("get_metadata") < script.index("ncores"), "checked before waiting for retirement"


@pytest.mark.parametrize(("tls", "ports", "scheme", "port"), [
    pytest.param(False, None, "tcp", naming.SCHEDULER_PORT, id="default"),
    pytest.param(True, None, "tls", naming.SCHEDULER_PORT, id="tls"),
    pytest.param(False, [{"name": naming.SCHEDULER_PORT_NAME, "containerPort": 9000}], "tcp", 9000, id="own-port"),
])
def test_the_scheduler_hook_reaches_its_own_scheduler(tls: bool, ports: Any, scheme: str, port: int) -> None:
    cluster = specs.make_cluster_spec("c", n_workers=1)
    cluster["metadata"] |= {"namespace": "ns", "uid": "u1"}
    if ports is not None:
        cluster["spec"]["scheduler"]["spec"]["containers"][0]["ports"] = ports
    if tls:
        cluster["spec"]["tls"] = {"enabled": True}
    container = specs.scheduler_pod(cluster)["spec"]["containers"][0]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["python", "-c"] and command[3:] == [scheme, str(port),
                                                               str(worker_lifecycle.SCHEDULER_WAIT_SECONDS)]
    compile(command[2], "preStop", "exec")
    assert naming.POD_IP_ENV in command[2] and "terminate" in command[2]
    assert {"name": naming.POD_IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in container["env"]


def test_a_scheduler_with_its_own_hook_keeps_it() -> None:
    own = {"preStop": {"sleep": {"seconds": 3}}}
    spec = {"containers": [{"name": "sidecar"}, {"name": "scheduler", "lifecycle": own}]}
    out = worker_lifecycle.with_orderly_close(spec, tls=False)
    assert out == spec and out is not spec
    hooked = worker_lifecycle.with_orderly_close({"containers": [{"name": "sidecar"}, {"name": "scheduler"}]}, False)
    assert [bool(c.get("lifecycle")) for c in hooked["containers"]] == [False, True], "the scheduler container"


def test_the_hook_budget_leaves_time_to_close() -> None:
    assert worker_lifecycle.hook_budget(120) == 105
    assert worker_lifecycle.hook_budget(10) == 5


def test_a_scale_down_retirement_is_not_an_eviction() -> None:
    """Pods the operator retired and deleted itself are remembered as its own: no second retirement."""
    first = decide(view([pod("w1"), pod("w2")], [worker("w1"), worker("w2", busy=5)], replicas=1), GroupMemory(),
                   0.0, SETTINGS)
    assert first.memory is not None and len(first.memory.deleted) == 1
    gone = next(iter(first.memory.deleted)).removeprefix("uid-")
    pods = [pod("w1", deleting=LATER if gone == "w1" else None), pod("w2", deleting=LATER if gone == "w2" else None)]
    again = decide(view(pods, [worker("w1"), worker("w2")], replicas=1), first.memory, 1.0, SETTINGS)
    assert _retirements(again) == []


@pytest.mark.parametrize(("spec_value", "default", "exists", "creates", "deletes"), [
    pytest.param(True, False, False, True, False, id="asked-created"),
    pytest.param(None, True, False, True, False, id="operator-default"),
    pytest.param(True, False, True, False, False, id="exists-kept"),
    pytest.param(False, True, True, False, True, id="no-longer-asked-deleted"),
    pytest.param(None, False, False, False, False, id="never"),
])
def test_the_scheduler_budget_follows_the_spec(spec_value: bool | None, default: bool, exists: bool,
                                               creates: bool, deletes: bool) -> None:
    from dask_kube.operator import evictions
    from dask_kube.operator.plan import Plan

    cluster = specs.make_cluster_spec("c")
    cluster["metadata"].update(namespace="ns", uid="uid-c")
    if spec_value is not None:
        cluster["spec"]["scheduler"]["disruptionBudget"] = spec_value
    plan: Plan[None] = Plan()
    evictions.scheduler_budget(cluster, exists, default, plan)
    budgets = [b for b in plan.create if b["kind"] == "PodDisruptionBudget"]
    assert bool(budgets) == creates and bool(plan.delete) == deletes
    if budgets:
        assert budgets[0]["spec"] == {"minAvailable": 1,
                                      "selector": {"matchLabels": naming.scheduler_selector("c")}}
        assert budgets[0]["metadata"]["ownerReferences"][0]["uid"] == "uid-c"
    assert plan.status[evictions.BUDGET_STATUS] is (creates or (exists and not deletes))
