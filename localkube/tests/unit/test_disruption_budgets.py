"""The disruption controller's status computation, without a server: a budget's numbers and condition from the
pods it selects and the scale of their controllers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from localkube.controllers.disruption import ScaleTarget, plan_budget

NOW = dt.datetime(2026, 12, 1, 10, 0, 0, tzinfo=dt.UTC)
STAMP = "2026-12-01T10:00:00Z"
EARLIER = "2026-12-01T09:00:00Z"

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment",
          "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid"}, "spec": {"replicas": 4}}
RS = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
      "metadata": {"name": "web-1", "namespace": "ns", "uid": "rs-uid",
                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid",
                                        "controller": True}]},
      "spec": {"replicas": 4}}
LONE_RS = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
           "metadata": {"name": "lone", "namespace": "ns", "uid": "lone-uid"}, "spec": {"replicas": 2}}
STS = {"apiVersion": "apps/v1", "kind": "StatefulSet",
       "metadata": {"name": "db", "namespace": "ns", "uid": "sts-uid"}, "spec": {"replicas": 3}}
WORLD = {("apps", "deployments"): [DEPLOY], ("apps", "replicasets"): [RS, LONE_RS], ("apps", "statefulsets"): [STS]}
SCALES = {("apps", "Deployment"): ScaleTarget(("apps", "deployments"), ".spec.replicas"),
          ("apps", "ReplicaSet"): ScaleTarget(("apps", "replicasets"), ".spec.replicas"),
          ("apps", "StatefulSet"): ScaleTarget(("apps", "statefulsets"), ".spec.replicas"),
          ("apps", "DaemonSet"): ScaleTarget(("apps", "daemonsets"), None),
          ("batch", "Job"): ScaleTarget(("batch", "jobs"), None)}


def get(key: tuple[str, str], namespace: str, name: str) -> dict[str, Any] | None:
    return next((o for o in WORLD.get(key, ()) if o["metadata"]["name"] == name), None)


def scale_of(group: str, kind: str) -> ScaleTarget | None:
    return SCALES.get((group, kind))


def owner(kind: str, name: str, uid: str, api_version: str = "apps/v1") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": True}


def pod(name: str, *, ready: bool = True, deleting: bool = False, ref: dict[str, Any] | None = None
        ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "labels": {"app": "web"}}
    if ref is not None:
        meta["ownerReferences"] = [ref]
    if deleting:
        meta["deletionTimestamp"] = STAMP
    return {"metadata": meta, "status": {"phase": "Running",
                                         "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def web(name: str, **kw: Any) -> dict[str, Any]:
    return pod(name, ref=owner("ReplicaSet", "web-1", "rs-uid"), **kw)


def budget(spec: dict[str, Any], status: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "web", "namespace": "ns", "generation": generation},
                           "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}
    if status is not None:
        obj["status"] = status
    return obj


def numbers(status: dict[str, Any]) -> tuple[int, int, int, int]:
    return (status["expectedPods"], status["desiredHealthy"], status["currentHealthy"], status["disruptionsAllowed"])


FOUR = [web(f"w{i}") for i in range(4)]


@pytest.mark.parametrize(("spec", "pods", "expected"), [
    # An integer minAvailable: expected is the number of selected pods.
    ({"minAvailable": 2}, FOUR, (4, 2, 4, 2)),
    ({"minAvailable": 2}, [web("a"), web("b", ready=False), web("c")], (3, 2, 2, 0)),
    ({"minAvailable": 5}, FOUR, (4, 5, 4, 0)),  # never negative
    ({"minAvailable": 2}, [*FOUR[:3], web("gone", deleting=True)], (4, 2, 3, 1)),  # deleting pods are not healthy
    ({"minAvailable": 0}, [], (0, 0, 0, 0)),  # nothing expected: nothing allowed
    # A percentage or maxUnavailable: taken of the controllers' scale (the Deployment's, through its ReplicaSet).
    ({"minAvailable": "50%"}, FOUR, (4, 2, 4, 2)),
    ({"minAvailable": "30%"}, FOUR, (4, 2, 4, 2)),  # rounded up
    ({"maxUnavailable": 1}, FOUR, (4, 3, 4, 1)),
    ({"maxUnavailable": 1}, FOUR[:3], (4, 3, 3, 0)),  # one replica missing spends the budget
    ({"maxUnavailable": "25%"}, FOUR, (4, 3, 4, 1)),
    ({"maxUnavailable": "10%"}, FOUR, (4, 3, 4, 1)),  # ceil(0.4) = 1
    ({"maxUnavailable": 0}, FOUR, (4, 4, 4, 0)),
    ({"maxUnavailable": 9}, FOUR, (4, 0, 4, 4)),  # desiredHealthy floors at 0
    # A StatefulSet's scale, a ReplicaSet without Deployment, several controllers each counted once.
    ({"maxUnavailable": 1}, [pod(f"db-{i}", ref=owner("StatefulSet", "db", "sts-uid")) for i in range(3)],
     (3, 2, 3, 1)),
    ({"maxUnavailable": 1}, [pod("l1", ref=owner("ReplicaSet", "lone", "lone-uid")), *FOUR], (6, 5, 5, 0)),
    # Pods without a controller are not in the scale: maxUnavailable over bare pods expects none.
    ({"maxUnavailable": 1}, [pod("bare-1"), pod("bare-2")], (0, 0, 2, 0)),
    ({"minAvailable": "50%"}, [pod("bare-1"), *FOUR], (4, 2, 5, 3)),
    ({"minAvailable": 1}, [pod("bare-1"), pod("bare-2")], (2, 1, 2, 1)),
    # Neither field: nothing is expected.
    ({}, FOUR, (0, 0, 4, 0)),
])
def test_budget_numbers(spec: dict[str, Any], pods: list[dict[str, Any]], expected: tuple[int, int, int, int]
                        ) -> None:
    status = plan_budget(budget(spec), pods, NOW, get, scale_of).status
    assert numbers(status) == expected
    assert status["observedGeneration"] == 1
    allowed = expected[3] > 0
    assert status["conditions"] == [{
        "type": "DisruptionAllowed", "status": "True" if allowed else "False",
        "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "", "observedGeneration": 1,
        "lastTransitionTime": STAMP}]


def test_scaling_the_deployment_moves_the_expected_count() -> None:
    scaled = dict(DEPLOY, spec={"replicas": 6})
    world = {**WORLD, ("apps", "deployments"): [scaled]}
    status = plan_budget(budget({"maxUnavailable": 1}), FOUR, NOW,
                         lambda key, ns, name: next((o for o in world.get(key, ()) if o["metadata"]["name"] == name),
                                                    None), scale_of).status
    assert numbers(status) == (6, 5, 4, 0)


@pytest.mark.parametrize(("pods", "message"), [
    ([pod("agent-1", ref=owner("DaemonSet", "agent", "ds-uid"))],
     "daemonsets.apps does not implement the scale subresource"),
    ([pod("job-1", ref=owner("Job", "job", "job-uid", "batch/v1"))],
     "jobs.batch does not implement the scale subresource"),
    ([pod("orphan", ref=owner("ReplicaSet", "deleted", "x-uid"))], 'found no controllers for pod "orphan"'),
    ([pod("w", ref=owner("ReplicaSet", "web-1", "other-uid"))], 'found no controllers for pod "w"'),  # a namesake
    ([pod("c", ref=owner("Widget", "w", "w-uid", "example.com/v1"))],
     'no matches for kind "Widget" in version "example.com/v1"'),
])
def test_an_uncomputable_budget_fails_safe(pods: list[dict[str, Any]], message: str) -> None:
    old = {"currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3, "disruptionsAllowed": 1,
           "observedGeneration": 1, "conditions": [{"type": "DisruptionAllowed", "status": "True",
                                                    "reason": "SufficientPods", "message": "",
                                                    "observedGeneration": 1, "lastTransitionTime": EARLIER}]}
    status = plan_budget(budget({"maxUnavailable": 1}, old), pods, NOW, get, scale_of).status
    assert status["disruptionsAllowed"] == 0
    assert (status["currentHealthy"], status["expectedPods"]) == (3, 3)  # the rest is left as it was
    assert status["conditions"] == [{"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed",
                                     "message": message, "observedGeneration": 1, "lastTransitionTime": STAMP}]
    # An integer minAvailable needs no scale, so the same pods are fine.
    assert numbers(plan_budget(budget({"minAvailable": 1}), pods, NOW, get, scale_of).status)[0] == len(pods)


def test_disrupted_pods_are_not_healthy_until_they_go_or_time_out() -> None:
    recent = (NOW - dt.timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    stale = (NOW - dt.timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = {"currentHealthy": 4, "desiredHealthy": 2, "expectedPods": 4, "disruptionsAllowed": 0,
           "observedGeneration": 1, "disruptedPods": {"w0": recent, "w1": stale, "w2": recent, "gone": recent}}
    pods = [web("w0"), web("w1"), web("w2", deleting=True), web("w3")]
    plan = plan_budget(budget({"minAvailable": 2}, old), pods, NOW, get, scale_of)
    # w0 was just approved for eviction; w1's approval is older than two minutes (it never went); w2 is going;
    # "gone" no longer exists. Only w0 stays recorded, and the budget is looked at again when it expires.
    assert plan.status["disruptedPods"] == {"w0": recent}
    assert numbers(plan.status) == (4, 2, 2, 0)
    assert plan.recheck_at == NOW + dt.timedelta(seconds=90)


def test_an_up_to_date_status_is_left_alone_and_a_new_generation_is_observed() -> None:
    first = plan_budget(budget({"minAvailable": 2}), FOUR, NOW, get, scale_of).status
    later = NOW + dt.timedelta(minutes=5)
    again = plan_budget(budget({"minAvailable": 2}, first), FOUR, later, get, scale_of)
    assert again.status is first or again.status == first
    assert again.recheck_at is None
    bumped = plan_budget(budget({"minAvailable": 3}, first, generation=2), FOUR, later, get, scale_of).status
    assert numbers(bumped) == (4, 3, 4, 1)
    assert bumped["observedGeneration"] == 2
    # Still allowed: the condition keeps its transition time; the generation it was observed at moves.
    assert bumped["conditions"][0]["lastTransitionTime"] == STAMP
    assert bumped["conditions"][0]["observedGeneration"] == 2
    flipped = plan_budget(budget({"minAvailable": 4}, bumped, generation=3), FOUR[:3], later, get, scale_of).status
    assert flipped["conditions"][0]["status"] == "False"
    assert flipped["conditions"][0]["lastTransitionTime"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
