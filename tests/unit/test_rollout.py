"""Rollouts as tables: which pods a changed template creates, deletes and retires at each step, with no server."""

from __future__ import annotations

from typing import Any

import pytest

from dask_kube import naming, specs
from dask_kube.naming import ConditionType, Reason
from dask_kube.operator import rollout
from dask_kube.operator.worker_pods import PodView, WorkerView
from dask_kube.operator.workergroup import GroupMemory, decide
from tests.unit.test_group_decisions import SETTINGS, group, pod, view, worker


def pods(old: int, new: int, *, pending_new: int = 0) -> list[PodView]:
    out = [PodView(f"old{i}", "Running", ip=f"10.0.0.{i}") for i in range(old)]
    out += [PodView(f"new{i}", "Running", ip=f"10.0.1.{i}") for i in range(new - pending_new)]
    out += [PodView(f"new{i}", "Pending") for i in range(new - pending_new, new)]
    return out


def connected(views: list[PodView]) -> list[WorkerView]:
    return [WorkerView(p.name) for p in views if p.phase == "Running"]


@pytest.mark.parametrize(("old", "new", "pending_new", "surge", "unavailable", "creates", "retires"), [
    pytest.param(4, 0, 0, 1, 1, 1, 1, id="start: one extra, one missing"),
    pytest.param(4, 0, 0, 1, 0, 1, 0, id="surge only: create first, retire nothing yet"),
    pytest.param(4, 1, 1, 1, 0, 0, 0, id="surge only: wait for the new one to join"),
    pytest.param(4, 1, 0, 1, 0, 0, 1, id="surge only: the new one joined, retire one"),
    pytest.param(3, 1, 0, 1, 0, 1, 0, id="surge only: room again, create"),
    pytest.param(4, 0, 0, 0, 1, 0, 1, id="no surge: retire first"),
    pytest.param(3, 0, 0, 0, 1, 1, 0, id="no surge: then create"),
    pytest.param(1, 4, 0, 1, 1, 0, 1, id="last old one"),
    pytest.param(4, 0, 0, 2, 2, 2, 2, id="wider bounds"),
])
def test_a_rollout_step_stays_within_its_bounds(old: int, new: int, pending_new: int, surge: int,
                                                unavailable: int, creates: int, retires: int) -> None:
    views = pods(old, new, pending_new=pending_new)
    plan = rollout.step(4, views, {p.name for p in views if p.name.startswith("old")}, connected(views), surge,
                        unavailable)
    assert (plan.create, len(plan.retire), plan.delete) == (creates, retires, [])
    assert all(n.startswith("old") for n in plan.retire)
    live_after = len(views) - retires + creates
    assert live_after <= 4 + surge
    assert len(connected(views)) - retires >= 4 - unavailable


def test_outdated_pods_that_never_joined_go_at_once() -> None:
    views = [PodView("old0", "Pending"), PodView("old1", "Running", ip="10.0.0.1"), PodView("new0", "Running",
                                                                                            ip="10.0.1.0")]
    plan = rollout.step(2, views, {"old0", "old1"}, [WorkerView("old1"), WorkerView("new0")], 1, 0)
    assert plan.delete == ["old0"] and plan.retire == []


def test_without_the_scheduler_only_unstarted_outdated_pods_go() -> None:
    views = [PodView("old0", "Pending"), PodView("old1", "Running", ip="10.0.0.1")]
    plan = rollout.step(2, views, {"old0", "old1"}, None, 1, 1)
    assert plan.delete == ["old0"] and plan.retire == [] and plan.waiting


@pytest.mark.parametrize(("rolling", "replicas", "expected"), [
    pytest.param({}, 4, (1, 1), id="defaults-25%"),
    pytest.param({}, 10, (3, 2), id="surge-up-unavailable-down"),
    pytest.param({"maxSurge": 0, "maxUnavailable": 0}, 4, (0, 1), id="both-zero-would-never-progress"),
    pytest.param({"maxSurge": "50%", "maxUnavailable": 2}, 4, (2, 2), id="mixed"),
])
def test_bounds(rolling: dict[str, Any], replicas: int, expected: tuple[int, int]) -> None:
    assert rollout.bounds({"rollingUpdate": rolling}, replicas) == expected


def test_the_hash_ignores_replicas_and_bounds() -> None:
    worker = specs.make_worker_spec(image="a")
    assert rollout.template_hash(worker) == rollout.template_hash({**worker, "replicas": 9,
                                                                   "rollingUpdate": {"maxSurge": 2}})
    assert rollout.template_hash(worker) != rollout.template_hash(specs.make_worker_spec(image="b"))


def test_a_group_with_outdated_pods_rolls_them_out_and_says_so() -> None:
    g = group(replicas=2)
    current = rollout.template_hash(g["spec"]["worker"])
    stale = [pod("w1"), pod("w2")]
    for p in stale:
        p["metadata"]["annotations"] = {naming.TEMPLATE_HASH_ANNOTATION: "0ldtemplat"}
    plan = decide(view(stale, [worker("w1"), worker("w2")], replicas=2), GroupMemory(), 0.0, SETTINGS)
    assert len(plan.create) == 1  # 25% of 2, rounded up
    assert plan.create[0]["metadata"]["annotations"][naming.TEMPLATE_HASH_ANNOTATION] == current
    assert plan.scheduler == []  # maxUnavailable 25% of 2 rounds down to 0: the new pod must join first
    joined = [*stale, {**pod("w3"), "metadata": {**pod("w3")["metadata"], "annotations": {
        naming.TEMPLATE_HASH_ANNOTATION: current}}}]
    plan = decide(view(joined, [worker("w1"), worker("w2"), worker("w3")], replicas=2), GroupMemory(), 0.0,
                  SETTINGS)
    assert [c.event.reason for c in plan.scheduler] == [Reason.ROLLING_OUT] and plan.create == []
    assert plan.status["updatedReplicas"] == 1
    cond = next(c for c in plan.conditions or () if c["type"] == ConditionType.WORKERS_UPDATED)
    assert cond["status"] == "False" and cond["reason"] == Reason.ROLLING_OUT and "1/3" in cond["message"]
    assert plan.requeue == 1.0


def test_pods_without_a_hash_predate_rollouts_and_are_current() -> None:
    plan = decide(view([pod("w1"), pod("w2")], [worker("w1"), worker("w2")], replicas=2), GroupMemory(), 0.0,
                  SETTINGS)
    assert not plan.acts and plan.status["updatedReplicas"] == 2


def test_merge_diff_removes_what_the_new_template_drops() -> None:
    have = {"spec": {"containers": [{"image": "a"}], "nodeSelector": {"x": "1"}}, "metadata": {"labels": {"a": "1"}}}
    want = {"spec": {"containers": [{"image": "b"}]}}
    assert rollout.merge_diff(have, want) == {"spec": {"containers": [{"image": "b"}], "nodeSelector": None},
                                              "metadata": None}
    assert rollout.default_group_template({"replicas": 3, **want}, {"replicas": 1, **want}) is None


def test_a_changed_scheduler_template_waits_for_the_next_start() -> None:
    cluster = specs.make_cluster_spec("c")
    stamped = rollout.stamp({"metadata": {}}, rollout.scheduler_hash(cluster["spec"]["scheduler"]))
    assert rollout.scheduler_condition(cluster, stamped)["status"] == "True"
    cluster["spec"]["scheduler"]["spec"]["containers"][0]["image"] = "other"
    cond = rollout.scheduler_condition(cluster, stamped)
    assert cond["status"] == "False" and cond["reason"] == Reason.SCHEDULER_RESTART_PENDING
    assert "delete pod c-scheduler" in cond["message"]
    assert rollout.scheduler_condition(cluster, {"metadata": {}})["status"] == "True", "no hash: predates this"


def test_a_null_field_hashes_as_an_absent_one() -> None:
    """A cluster's template with `env: null` (dask-kubernetes writes it) reaches its default group through a merge
    patch, which drops the nulls: the pods made before and after must not look outdated."""
    template = specs.make_cluster_spec("nulls", n_workers=2)["spec"]["worker"]
    nulled = {**template, "metadata": {"labels": None},
              "spec": {**template["spec"], "containers": [{**template["spec"]["containers"][0], "env": None}]}}
    dropped = {**template, "metadata": {},
               "spec": {**template["spec"], "containers": [
                   {k: v for k, v in template["spec"]["containers"][0].items() if k != "env"}]}}
    assert rollout.template_hash(nulled) == rollout.template_hash(dropped)
