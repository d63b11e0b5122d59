"""The StatefulSet controller's decisions and ControllerRevision history, without a server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from localkube.controllers.revisions import new_revision, plan_history, revision_data, template_of
from localkube.controllers.statefulsets import (
    ordinal_of,
    plan_statefulset,
    statefulset_claims,
    statefulset_pod,
    statefulset_status,
)

NOW = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def _stamp(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def sts(replicas: int = 3, *, policy: str = "OrderedReady", strategy: str = "RollingUpdate",
        partition: int | None = 0, min_ready: int = 0, start: int | None = None, **status: Any) -> dict[str, Any]:
    update: dict[str, Any] = {"type": strategy}
    if partition is not None:
        update["rollingUpdate"] = {"partition": partition}
    spec: dict[str, Any] = {"replicas": replicas, "podManagementPolicy": policy, "updateStrategy": update,
                            "minReadySeconds": min_ready, "serviceName": "web",
                            "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    if start is not None:
        spec["ordinals"] = {"start": start}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": "sts-uid", "generation": 2}, "spec": spec,
            "status": status}


def pod(ordinal: int, rev: str = "r1", *, phase: str = "Running", ready: bool = True, deleting: bool = False,
        ready_for: float = 600) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"web-{ordinal}", "labels": {"controller-revision-hash": rev}}
    if deleting:
        meta["deletionTimestamp"] = _stamp(0)
    conditions = [{"type": "Ready", "status": "True" if ready else "False",
                   "lastTransitionTime": _stamp(ready_for)}]
    return {"metadata": meta, "status": {"phase": phase, "conditions": conditions}}


def plan(the_sts: dict[str, Any], pods: list[dict[str, Any]], current: str = "r1", update: str = "r1"
         ) -> tuple[list[tuple[int, str]], list[str]]:
    result = plan_statefulset(the_sts, pods, current, update, NOW)
    return result.create, result.delete


HEALTHY = [pod(0), pod(1), pod(2)]


@pytest.mark.parametrize(("the_sts", "pods", "revisions", "expected"), [
    # OrderedReady creates one ordinal at a time, each after the previous is Running and Ready
    (sts(), [], ("r1", "r1"), ([(0, "r1")], [])),
    (sts(), [pod(0)], ("r1", "r1"), ([(1, "r1")], [])),
    (sts(), [pod(0, ready=False)], ("r1", "r1"), ([], [])),
    (sts(), [pod(0, phase="Pending", ready=False)], ("r1", "r1"), ([], [])),
    # ... and available for minReadySeconds
    (sts(min_ready=30), [pod(0, ready_for=10)], ("r1", "r1"), ([], [])),
    (sts(min_ready=30), [pod(0, ready_for=40)], ("r1", "r1"), ([(1, "r1")], [])),
    # Parallel creates every missing ordinal at once, whatever the others' state
    (sts(policy="Parallel"), [], ("r1", "r1"), ([(0, "r1"), (1, "r1"), (2, "r1")], [])),
    (sts(policy="Parallel"), [pod(1, ready=False)], ("r1", "r1"), ([(0, "r1"), (2, "r1")], [])),
    # a deleted ordinal is recreated under the same name
    (sts(), [pod(0), pod(2)], ("r1", "r1"), ([(1, "r1")], [])),
    # a finished pod is deleted, then recreated once gone
    (sts(), [pod(0), pod(1, phase="Failed", ready=False), pod(2)], ("r1", "r1"), ([], ["web-1"])),
    # scale down: the highest ordinal first, one at a time (OrderedReady) or all at once (Parallel)
    (sts(3), [*HEALTHY, pod(3), pod(4)], ("r1", "r1"), ([], ["web-4"])),
    (sts(3, policy="Parallel"), [*HEALTHY, pod(3), pod(4)], ("r1", "r1"), ([], ["web-4", "web-3"])),
    (sts(3), [*HEALTHY, pod(3), pod(4, deleting=True)], ("r1", "r1"), ([], [])),
    (sts(0), [pod(0)], ("r1", "r1"), ([], ["web-0"])),
    # an unhealthy condemned pod only goes first when it is the first unhealthy one
    (sts(3), [*HEALTHY, pod(3, ready=False), pod(4, ready=False)], ("r1", "r1"), ([], [])),
    (sts(3), [*HEALTHY, pod(3), pod(4, ready=False)], ("r1", "r1"), ([], ["web-4"])),
    # rolling update: from the highest ordinal down, one pod at a time, waiting for each to be healthy again
    (sts(), HEALTHY, ("r1", "r2"), ([], ["web-2"])),
    (sts(), [pod(0), pod(1), pod(2, "r2")], ("r1", "r2"), ([], ["web-1"])),
    (sts(policy="Parallel"), [pod(0), pod(1), pod(2, "r2", ready=False)], ("r1", "r2"), ([], [])),
    (sts(), [pod(0), pod(1, "r2"), pod(2, "r2")], ("r1", "r2"), ([], ["web-0"])),
    (sts(), [pod(0, "r2"), pod(1, "r2"), pod(2, "r2")], ("r1", "r2"), ([], [])),
    # ... down to the partition; a pod recreated below it keeps the current revision
    (sts(partition=2), [pod(0), pod(1), pod(2, "r2")], ("r1", "r2"), ([], [])),
    (sts(partition=2), [pod(0), pod(2, "r2")], ("r1", "r2"), ([(1, "r1")], [])),
    (sts(partition=2), [pod(0), pod(1)], ("r1", "r2"), ([(2, "r2")], [])),
    # without a rollingUpdate block, recreated pods below status.currentReplicas keep the current revision
    (sts(partition=None, currentReplicas=2), [pod(0), pod(2)], ("r1", "r2"), ([(1, "r1")], [])),
    # OnDelete: nothing is replaced, but a pod deleted by hand comes back at the update revision
    (sts(strategy="OnDelete", partition=None), HEALTHY, ("r1", "r2"), ([], [])),
    (sts(strategy="OnDelete", partition=None), [pod(0), pod(2)], ("r1", "r2"), ([(1, "r2")], [])),
    # spec.ordinals.start shifts the names
    (sts(2, start=5), [], ("r1", "r1"), ([(5, "r1")], [])),
    (sts(2, start=5), [pod(5), pod(6), pod(0)], ("r1", "r1"), ([], ["web-0"])),
])
def test_plan_statefulset(the_sts: dict[str, Any], pods: list[dict[str, Any]], revisions: tuple[str, str],
                          expected: tuple[list[tuple[int, str]], list[str]]) -> None:
    assert plan(the_sts, pods, *revisions) == expected


def test_a_deleting_statefulset_plans_nothing() -> None:
    deleting = sts()
    deleting["metadata"]["deletionTimestamp"] = _stamp(0)
    assert plan(deleting, []) == ([], [])


@pytest.mark.parametrize(("sts_name", "pod_name", "expected"), [
    ("web", "web-0", 0), ("web", "web-12", 12), ("web", "web-01", None), ("web", "web-x", None),
    ("web", "webby-1", None), ("web-1", "web-1-2", 2), ("web", "web-1-2", None),
])
def test_ordinal_of(sts_name: str, pod_name: str, expected: int | None) -> None:
    assert ordinal_of(sts_name, pod_name) == expected


def test_status_counts_revisions_readiness_and_availability() -> None:
    status, recheck = statefulset_status(sts(min_ready=30), [pod(0), pod(1, "r2", ready_for=10),
                                                           pod(2, "r2", ready=False), pod(3, deleting=True)],
                                         "r1", "r2", NOW)
    assert status == {"observedGeneration": 2, "replicas": 4, "readyReplicas": 3, "availableReplicas": 2,
                      "currentReplicas": 1, "updatedReplicas": 2, "currentRevision": "r1", "updateRevision": "r2",
                      "collisionCount": 0}
    assert recheck == pytest.approx(20)


def test_status_completes_the_rolling_update_when_all_pods_are_updated_and_ready() -> None:
    status, _ = statefulset_status(sts(), [pod(0, "r2"), pod(1, "r2")], "r1", "r2", NOW)
    assert (status["currentRevision"], status["currentReplicas"], status["updatedReplicas"]) == ("r2", 2, 2)
    status, _ = statefulset_status(sts(strategy="OnDelete", partition=None), [pod(0, "r2")], "r1", "r2", NOW)
    assert status["currentRevision"] == "r1" and "currentReplicas" not in status


def test_status_of_no_pods_keeps_the_counters_real_objects_always_show() -> None:
    status, recheck = statefulset_status(sts(0, collisionCount=1), [], "r1", "r1", NOW)
    assert status == {"observedGeneration": 2, "replicas": 0, "availableReplicas": 0, "currentRevision": "r1",
                      "updateRevision": "r1", "collisionCount": 1}
    assert recheck is None


def test_pod_identity_hostname_and_claims() -> None:
    the_sts = sts()
    the_sts["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data", "labels": {"tier": "db"}},
                                                "spec": {"accessModes": ["ReadWriteOnce"]}}]
    the_sts["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    made = statefulset_pod(the_sts, the_sts["spec"]["template"], 1, "web-abc")
    assert made["metadata"]["name"] == "web-1"
    assert made["metadata"]["labels"] == {"app": "web", "controller-revision-hash": "web-abc",
                                          "statefulset.kubernetes.io/pod-name": "web-1",
                                          "apps.kubernetes.io/pod-index": "1"}
    assert made["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                                    "uid": "sts-uid", "controller": True,
                                                    "blockOwnerDeletion": True}]
    assert (made["spec"]["hostname"], made["spec"]["subdomain"]) == ("web-1", "web")
    assert made["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {}},
                                       {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}}]
    [claim] = statefulset_claims(the_sts, 1)
    assert claim["metadata"] == {"name": "data-web-1", "namespace": "ns", "labels": {"tier": "db", "app": "web"}}
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"]}
    the_sts["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete", "whenScaled": "Retain"}
    [claim] = statefulset_claims(the_sts, 1)
    assert claim["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                                     "uid": "sts-uid"}]


def test_revision_round_trip_and_naming() -> None:
    the_sts = sts()
    template = the_sts["spec"]["template"]
    revision = new_revision(the_sts, template, 3, 0)
    digest = revision["metadata"]["labels"]["controller.kubernetes.io/hash"]
    assert revision["metadata"]["name"] == f"web-{digest}"
    assert revision["metadata"]["labels"]["app"] == "web"
    assert revision["revision"] == 3
    assert revision["data"] == revision_data(template)
    assert revision["data"]["spec"]["template"]["$patch"] == "replace"
    assert template_of(revision) == template
    assert new_revision(the_sts, template, 3, 1)["metadata"]["name"] != revision["metadata"]["name"]


def _rev(name: str, number: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "revision": number}


@pytest.mark.parametrize(("numbers", "in_use", "limit", "expected"), [
    ([1, 2, 3, 4, 5], {"r5", "r3"}, 2, ["r1"]),
    ([1, 2, 3], {"r3"}, 10, []),
    ([1, 2, 3], {"r3"}, 0, ["r1", "r2"]),
    ([3, 1, 2], set(), 1, ["r1", "r2"]),
])
def test_plan_history_drops_the_oldest_unused_revisions(numbers: list[int], in_use: set[str], limit: int,
                                                        expected: list[str]) -> None:
    assert plan_history([_rev(f"r{n}", n) for n in numbers], in_use, limit) == expected
