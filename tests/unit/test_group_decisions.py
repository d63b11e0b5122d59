"""The worker-group reconciler's decisions as tables: (what was observed, the clock) -> plan, with no server."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from dask_kube import naming
from dask_kube.naming import ConditionType, Reason
from dask_kube.operator import spec_check
from dask_kube.operator.plan import Delete, Patch
from dask_kube.operator.settings import OperatorSettings
from dask_kube.operator.worker_pods import WorkerView
from dask_kube.operator.workergroup import PODLESS_WORKER_SECONDS, GroupMemory, GroupView, decide

SETTINGS = OperatorSettings(resync_seconds=10, max_workers_per_cluster=10)
NOW = "2026-01-01T00:01:00Z"
GROUP_UID = "uid-group"
CLUSTER = {"apiVersion": naming.API_VERSION, "kind": naming.DASKCLUSTER,
           "metadata": {"name": "c", "namespace": "ns", "uid": "uid-cluster"}, "spec": {}}


def group(replicas: int = 3, owned: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "c-default", "namespace": "ns", "uid": GROUP_UID, "generation": 2,
                            "labels": {naming.CLUSTER_LABEL: "c"} if owned else {}}
    if owned:
        meta["ownerReferences"] = [{"uid": "uid-cluster", "controller": True}]
    return {"apiVersion": naming.API_VERSION, "kind": naming.DASKWORKERGROUP, "metadata": meta,
            "spec": {"cluster": "c", "worker": {"replicas": replicas, "spec": {"containers": [{"name": "w"}]}}}}


def pod(name: str, phase: str = "Running", *, deleting: str | None = None, unschedulable: bool = False,
        joined: bool = True, group_name: str = "c-default") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "creationTimestamp": "2026-01-01T00:00:00Z",
                            "labels": {naming.WORKERGROUP_LABEL: group_name},
                            "ownerReferences": [{"uid": GROUP_UID}]}
    if deleting:
        meta["deletionTimestamp"] = deleting
    status: dict[str, Any] = {"phase": phase, "conditions": []}
    if joined or phase == "Running":
        status["podIP"] = f"10.0.0.{len(name)}"
    if unschedulable:
        status["conditions"].append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                     "message": "0/1 nodes are available: 1 Insufficient cpu."})
    return {"metadata": meta, "status": status, "spec": {"nodeName": "node-a"}}


def worker(name: str, busy: int = 0) -> WorkerView:
    return WorkerView(name=name, busy=busy)


def view(pods: list[dict[str, Any]], workers: list[WorkerView] | None = None, *, asked: bool = True,
         **kwargs: Any) -> GroupView:
    return GroupView(group(**kwargs), CLUSTER, spec_check.SpecCheck(valid=(GROUP_UID, "f")), pods, pods,
                     workers=workers, asked=asked, now=NOW)


def test_a_failed_pod_is_replaced_and_the_status_counts_the_replacement() -> None:
    """3 desired, pods Running, Running, Failed: the failed one goes, one is created, and there will be 3."""
    pods = [pod("w1"), pod("w2"), pod("w3", "Failed")]
    plan = decide(view(pods, [worker("w1"), worker("w2")]), GroupMemory(), 0.0, SETTINGS)
    assert [body["kind"] for body in plan.create] == ["Pod"]
    assert plan.delete == [Delete("Pod", "w3")]
    assert plan.status["replicas"] == 3 and plan.status["readyReplicas"] == 2


@pytest.mark.parametrize(("replicas", "pods", "workers", "expected"), [
    pytest.param(3, [], [], 3, id="from-zero"),
    pytest.param(2, ["Running", "Running"], ["w0", "w1"], 2, id="steady"),
    pytest.param(3, ["Running", "Running", "Failed"], ["w0", "w1"], 3, id="failed-replaced"),
    pytest.param(2, ["Running", "Succeeded", "Failed"], ["w0"], 2, id="finished-cleared"),
    pytest.param(1, ["Running", "Running", "Running"], ["w0", "w1", "w2"], 1, id="retiring-two"),
    pytest.param(1, ["Running", "Pending"], ["w0"], 1, id="never-joined-deleted"),
    pytest.param(2, ["Running", "deleting"], ["w0"], 2, id="terminating-not-counted"),
    pytest.param(0, ["Running", "Failed"], ["w0"], 0, id="to-zero"),
])
def test_status_replicas_are_what_will_exist(replicas: int, pods: list[str], workers: list[str],
                                            expected: int) -> None:
    observed = [pod(f"w{i}", "Running" if p == "deleting" else p, deleting="2026-01-01T00:02:00Z" if p == "deleting"
                    else None, joined=p != "Pending") for i, p in enumerate(pods)]
    plan = decide(view(observed, [worker(w) for w in workers], replicas=replicas), GroupMemory(), 0.0, SETTINGS)
    assert plan.status["replicas"] == expected


def test_scaling_up_does_not_wait_for_the_scheduler() -> None:
    """Before the scheduler is asked: the missing pods are created, and the plan asks to decide again with it."""
    plan = decide(view([pod("w1")], asked=False), GroupMemory(), 0.0, SETTINGS)
    assert len(plan.create) == 2 and plan.needs_scheduler and plan.status == {}


def test_retiring_needs_the_scheduler_first() -> None:
    pods = [pod("w1"), pod("w2"), pod("w3")]
    blind = decide(view(pods, asked=False, replicas=1), GroupMemory(), 0.0, SETTINGS)
    assert blind.needs_scheduler and not blind.acts  # nothing is deleted blindly
    plan = decide(view(pods, [worker("w1", busy=1), worker("w2"), worker("w3")], replicas=1), GroupMemory(), 0.0,
                  SETTINGS)
    [call] = plan.scheduler
    assert call.op == "retire" and dict(call.workers) == {"w2": "w2", "w3": "w3"}
    assert call.event.reason == Reason.WORKERS_RETIRED and "{names}" in call.event.message
    assert plan.delete == [] and plan.requeue == 1.0


def test_an_unreachable_scheduler_touches_no_connected_worker() -> None:
    pods = [pod("w1"), pod("w2"), pod("w3", "Pending", joined=False)]
    plan = decide(view(pods, None, replicas=1), GroupMemory(), 0.0, SETTINGS)
    assert plan.delete == [Delete("Pod", "w3")] and plan.scheduler == []
    conds = {c["type"]: c for c in plan.conditions or ()}
    assert conds[ConditionType.WORKERS_READY]["reason"] == Reason.SCHEDULER_STARTING
    assert plan.status["readyReplicas"] == 0 and plan.requeue == 1.0


def test_a_missing_cluster_is_a_condition_and_a_resync() -> None:
    plan = decide(GroupView(group()), GroupMemory(), 0.0, SETTINGS)
    [cond] = plan.conditions or []
    assert (cond["reason"], cond["status"]) == (Reason.CLUSTER_MISSING, "False")
    assert plan.create == [] and plan.requeue == SETTINGS.resync_seconds


def test_an_invalid_spec_is_reported_once() -> None:
    observed = GroupView(group(), CLUSTER, spec_check.SpecCheck(error="spec.worker.spec: bad"))
    plan = decide(observed, GroupMemory(), 0.0, SETTINGS)
    assert [e.reason for e in plan.events] == [Reason.INVALID_SPEC] and plan.events[0].warning
    assert {c["reason"] for c in plan.conditions or ()} == {Reason.INVALID_SPEC}
    assert plan.memory is not None
    again = decide(observed, plan.memory, 1.0, SETTINGS)
    assert again.events == [] and again.conditions == plan.conditions


def test_a_group_applied_on_its_own_is_adopted() -> None:
    plan = decide(replace(view([pod("w1")], [worker("w1")], replicas=1), group=group(1, owned=False)), GroupMemory(),
                  0.0, SETTINGS)
    [patch] = plan.patch
    assert isinstance(patch, Patch) and patch.kind == naming.DASKWORKERGROUP
    assert patch.body["metadata"]["ownerReferences"][-1]["uid"] == "uid-cluster"


def test_unschedulable_workers_are_named_in_the_condition() -> None:
    pods = [pod("w1"), pod("w2", "Pending", unschedulable=True, joined=False)]
    plan = decide(view(pods, [worker("w1")], replicas=2), GroupMemory(), 0.0, SETTINGS)
    conds = {c["type"]: c for c in plan.conditions or ()}
    assert conds[ConditionType.WORKERS_READY]["reason"] == Reason.WORKERS_UNSCHEDULABLE
    assert "Insufficient cpu" in conds[ConditionType.WORKERS_READY]["message"]


def test_steady_state_asks_for_nothing() -> None:
    plan = decide(view([pod("w1"), pod("w2")], [worker("w1"), worker("w2")], replicas=2), GroupMemory(), 0.0,
                  SETTINGS)
    assert not plan.acts and plan.requeue is None and plan.events == []
    assert {c["type"]: c["status"] for c in plan.conditions or ()} == {
        ConditionType.SPEC_VALID: "True", ConditionType.WORKERS_READY: "True", ConditionType.READY: "True",
        ConditionType.WORKERS_UPDATED: "True"}
    assert plan.wake_on_status == [(naming.PLURALS[naming.DASKCLUSTER], "ns", "c")]


def test_a_worker_whose_pod_was_force_deleted_is_removed_after_a_while() -> None:
    lost = "c-default-worker-0123456789"
    observed = view([pod("w1")], [worker("w1"), worker(lost)], replicas=1)
    first = decide(observed, GroupMemory(), 100.0, SETTINGS)
    assert first.scheduler == [] and first.memory is not None and first.memory.podless == {lost: 100.0}
    assert first.requeue == PODLESS_WORKER_SECONDS
    later = decide(observed, first.memory, 100.0 + PODLESS_WORKER_SECONDS, SETTINGS)
    [call] = later.scheduler
    assert call.op == "remove" and list(call.workers) == [lost] and call.event.reason == Reason.WORKERS_LOST
    gone = decide(view([pod("w1")], [worker("w1")], replicas=1), later.memory or GroupMemory(), 200.0, SETTINGS)
    assert gone.memory is not None and gone.memory.podless == {}


def test_a_worker_still_connected_after_its_grace_period_is_removed() -> None:
    pods = [pod("w1"), pod("w2", deleting="2026-01-01T00:00:30Z")]  # its grace period ended before NOW
    plan = decide(view(pods, [worker("w1"), worker("w2")], replicas=1), GroupMemory(), 0.0, SETTINGS)
    [call] = plan.scheduler
    assert call.op == "remove" and list(call.workers) == ["w2"]


def test_a_lost_pod_is_reported_replaced_once() -> None:
    pods = [pod("w1"), pod("w2", "Failed")]
    plan = decide(view(pods, [worker("w1")], replicas=2), GroupMemory(), 0.0, SETTINGS)
    assert plan.replacement_event is not None and "w2 (Failed on node node-a)" in plan.replacement_event.message
    assert plan.memory is not None and plan.memory.replaced == {"uid-w2"}
    again = decide(view(pods, [worker("w1")], replicas=2), plan.memory, 1.0, SETTINGS)
    assert again.replacement_event is None


def test_pods_this_operator_deleted_are_not_lost() -> None:
    pods = [pod("w1"), pod("w2", "Pending", joined=False)]
    plan = decide(view(pods, [worker("w1")], replicas=1), GroupMemory(), 0.0, SETTINGS)
    assert plan.delete == [Delete("Pod", "w2")] and plan.memory is not None
    assert plan.memory.deleted == {"uid-w2"}
    assert [e.reason for e in plan.events] == [Reason.SCALED_DOWN]
    terminating = [pod("w1"), pod("w2", deleting="2026-01-01T00:02:00Z", joined=False), ]
    after = decide(view(terminating, [worker("w1")], replicas=2), plan.memory, 1.0, SETTINGS)
    assert len(after.create) == 1 and after.replacement_event is None


def test_the_per_cluster_cap_is_shared_by_the_groups() -> None:
    others = [pod(f"o{i}", group_name="c-big") for i in range(8)]
    observed = replace(view([pod("w1")], [worker("w1")], replicas=5), cluster_pods=[pod("w1"), *others],
                       other_groups={"c-big": 8})
    plan = decide(observed, GroupMemory(), 0.0, SETTINGS)
    assert len(plan.create) == 1  # "c-big" sorts first and holds 8 of the 10: 2 left for this group


def test_vouched_templates_are_per_group_and_bounded() -> None:
    worker = {"replicas": 3, "spec": {"containers": [{"name": "worker", "image": "x"}]}}
    vouched = spec_check.Vouched(size=2)
    vouched.add(spec_check.worker_template("ns", "c-default", "c", worker))
    assert spec_check.worker_template("ns", "c-default", "c", {**worker, "replicas": 9}) in vouched  # a scale
    assert spec_check.worker_template("ns", "c-extra", "c", worker) not in vouched  # another group's name
    assert spec_check.worker_template("other", "c-default", "c", worker) not in vouched  # another namespace
    changed = {**worker, "spec": {"containers": [{"name": "worker", "image": "y"}]}}
    assert spec_check.worker_template("ns", "c-default", "c", changed) not in vouched
    vouched.add(spec_check.worker_template("ns", "b-default", "b", worker))
    vouched.add(spec_check.worker_template("ns", "a-default", "a", worker))
    assert spec_check.worker_template("ns", "c-default", "c", worker) not in vouched  # the oldest is forgotten
