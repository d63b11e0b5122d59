"""The DaemonSet controller's decisions, without a server: which nodes get a pod, rolling updates, status."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from localkube.controllers.daemonsets import daemon_pod, daemonset_status, node_fit, plan_daemonset, target_node
from localkube.controllers.nodes import NodeConfig, node_object, node_status, plan_readiness

NOW = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
STAMP = "2025-01-01T11:00:00Z"


def node(name: str, labels: dict[str, str] | None = None, taints: tuple[dict[str, Any], ...] = (),
         ready: bool = True, cordoned: bool = False) -> dict[str, Any]:
    config = NodeConfig(name=name, labels=labels or {}, taints=taints)
    obj = node_object(config)
    obj["status"] = node_status(config, STAMP, "v1.32.0")
    if cordoned:
        obj["spec"]["unschedulable"] = True
    if not ready:
        obj["spec"]["taints"], obj["status"]["conditions"] = plan_readiness(obj, False, STAMP)
    return obj


def ds(*, selector: dict[str, str] | None = None, tolerations: list[dict[str, Any]] | None = None,
       strategy: str = "RollingUpdate", max_unavailable: Any = 1, min_ready: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "pause"}]}
    if selector:
        spec["nodeSelector"] = selector
    if tolerations:
        spec["tolerations"] = tolerations
    update: dict[str, Any] = {"type": strategy}
    if strategy == "RollingUpdate":
        update["rollingUpdate"] = {"maxUnavailable": max_unavailable, "maxSurge": 0}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "ns", "uid": "ds-uid", "generation": 3},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "updateStrategy": update,
                     "minReadySeconds": min_ready,
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec}}}


def pod(name: str, node_name: str | None, hash_: str = "h2", *, ready: bool = True, phase: str = "Running",
        created: str = STAMP, bound: bool = True, deleting: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}}}}
    if bound:
        spec["nodeName"] = node_name
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created, "labels": {"controller-revision-hash": hash_}}
    if deleting:
        meta["deletionTimestamp"] = STAMP
    return {"metadata": meta, "spec": spec,
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                       "lastTransitionTime": STAMP}]}}


NO_EXECUTE = {"key": "evict", "value": "x", "effect": "NoExecute"}
NO_SCHEDULE = {"key": "dedicated", "value": "x", "effect": "NoSchedule"}
A, B, C = node("a"), node("b"), node("c")
NO_GPU = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]}}}


@pytest.mark.parametrize(("the_ds", "nodes", "pods", "expected"), [
    # one pod per node
    (ds(), [A, B], [], (["a", "b"], [])),
    (ds(), [A, B], [pod("p1", "a")], (["b"], [])),
    # an unbound pod already pinned to a node counts for it
    (ds(), [A], [pod("p1", "a", bound=False)], ([], [])),
    # nodeSelector: no pod where it does not match, and a pod there goes
    (ds(selector={"gpu": "yes"}), [A, node("g", {"gpu": "yes"})], [pod("p1", "a")], (["g"], ["p1"])),
    # NoSchedule taints keep new pods off but let a running one stay; NoExecute ones evict it
    (ds(), [node("t", taints=(NO_SCHEDULE,))], [], ([], [])),
    (ds(), [node("t", taints=(NO_SCHEDULE,))], [pod("p1", "t")], ([], [])),
    (ds(), [node("t", taints=(NO_EXECUTE,))], [pod("p1", "t")], ([], ["p1"])),
    (ds(tolerations=[{"key": "dedicated", "operator": "Exists"}]), [node("t", taints=(NO_SCHEDULE,))], [],
     (["t"], [])),
    # daemon pods run on cordoned nodes and stay on NotReady ones (but are not started there)
    (ds(), [node("k", cordoned=True)], [], (["k"], [])),
    (ds(), [node("n", ready=False)], [], ([], [])),
    (ds(), [node("n", ready=False)], [pod("p1", "n")], ([], [])),
    # duplicates: the oldest stays; finished pods are replaced; pods of nodes that are gone are deleted
    (ds(), [A], [pod("new", "a", created="2025-01-01T11:30:00Z"), pod("old", "a")], ([], ["new"])),
    (ds(), [A], [pod("p1", "a", phase="Failed", ready=False)], (["a"], ["p1"])),
    (ds(), [A], [pod("p1", "a"), pod("p2", "gone")], ([], ["p2"])),
    (ds(), [A], [pod("p1", "a", deleting=True)], (["a"], [])),
    # rolling update: old pods replaced within maxUnavailable, unavailable old pods at once
    (ds(), [A, B, C], [pod("pa", "a", "h1"), pod("pb", "b", "h1"), pod("pc", "c", "h1")], ([], ["pa"])),
    (ds(max_unavailable="50%"), [A, B, C, node("d")],
     [pod("pa", "a", "h1"), pod("pb", "b", "h1"), pod("pc", "c", "h1"), pod("pd", "d", "h1")], ([], ["pa", "pb"])),
    (ds(), [A, B, C], [pod("pa", "a"), pod("pb", "b", "h1"), pod("pc", "c", "h1", ready=False)], ([], ["pc"])),
    (ds(), [A, B], [pod("pa", "a", ready=False), pod("pb", "b", "h1")], ([], [])),
    (ds(), [A, B], [pod("pb", "b", "h1")], (["a"], [])),
    (ds(min_ready=7200), [A, B], [pod("pa", "a", "h1"), pod("pb", "b", "h1")], ([], ["pa", "pb"])),
    (ds(strategy="OnDelete"), [A, B], [pod("pa", "a", "h1"), pod("pb", "b", "h1")], ([], [])),
])
def test_plan_daemonset(the_ds: dict[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]],
                        expected: tuple[list[str], list[str]]) -> None:
    result = plan_daemonset(the_ds, nodes, pods, "h2", NOW)
    assert (result.create, result.delete) == expected


def test_node_fit_says_whether_to_start_and_whether_to_keep() -> None:
    assert node_fit(ds(), A) == (True, True)
    assert node_fit(ds(), node("t", taints=(NO_SCHEDULE,))) == (False, True)
    assert node_fit(ds(), node("t", taints=(NO_EXECUTE,))) == (False, False)
    assert node_fit(ds(selector={"x": "y"}), A) == (False, False)


def test_status_counts_per_node() -> None:
    nodes = [A, B, C, node("g", {"gpu": "yes"})]
    the_ds = ds(selector=None, min_ready=0)
    the_ds["spec"]["template"]["spec"]["affinity"] = NO_GPU
    pods = [pod("pa", "a"), pod("pb", "b", "h1", ready=False), pod("pg", "g")]
    status, recheck = daemonset_status(the_ds, nodes, pods, "h2", NOW)
    assert status == {"desiredNumberScheduled": 3, "currentNumberScheduled": 2, "numberMisscheduled": 1,
                      "numberReady": 1, "numberAvailable": 1, "numberUnavailable": 2, "updatedNumberScheduled": 1,
                      "observedGeneration": 3}
    assert recheck is None


def test_status_waits_for_min_ready_seconds_and_omits_zero_counters() -> None:
    status, recheck = daemonset_status(ds(min_ready=3630), [A], [pod("pa", "a", "h1")], "h2", NOW)
    assert status == {"desiredNumberScheduled": 1, "currentNumberScheduled": 1, "numberMisscheduled": 0,
                      "numberReady": 1, "numberUnavailable": 1, "observedGeneration": 3}
    assert recheck == pytest.approx(30)


def test_daemon_pod_is_pinned_to_its_node_and_tolerates_what_daemons_tolerate() -> None:
    the_ds = ds(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                              "effect": "NoSchedule"}])
    the_ds["spec"]["template"]["spec"]["affinity"] = NO_GPU
    made = daemon_pod(the_ds, "b", "h2")
    assert made["metadata"]["generateName"] == "agent-"
    assert made["metadata"]["labels"] == {"app": "agent", "controller-revision-hash": "h2",
                                          "pod-template-generation": "3"}
    assert made["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}
    assert target_node(made) == "b"
    keys = [(t["key"], t["effect"]) for t in made["spec"]["tolerations"]]
    assert keys == [("node.kubernetes.io/unschedulable", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute"),
                    ("node.kubernetes.io/unreachable", "NoExecute"), ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                    ("node.kubernetes.io/pid-pressure", "NoSchedule")]
    template_terms = the_ds["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert template_terms == [{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]  # untouched
