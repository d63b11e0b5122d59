"""The scheduler's decisions, without a server: filters, resource arithmetic, choice and message text."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from localkube.controllers.nodes import NodeConfig, node_object, node_status, plan_readiness
from localkube.controllers.scheduler import failure_message, fits, pick_node, pod_requests, tolerates, wants_scheduling

NOW = "2025-01-01T00:00:00Z"


def node(name: str = "n1", capacity: dict[str, str] | None = None, labels: dict[str, str] | None = None,
         taints: tuple[dict[str, Any], ...] = (), ready: bool = True, unschedulable: bool = False) -> dict[str, Any]:
    config = NodeConfig(name=name, capacity=capacity or {"cpu": "4", "memory": "8Gi", "pods": "10"},
                        labels=labels or {}, taints=taints)
    obj = node_object(config)
    obj["status"] = node_status(config, NOW, "v1.32.0")
    if unschedulable:
        obj["spec"]["unschedulable"] = True
    if not ready:
        taints_now, conditions = plan_readiness(obj, False, NOW)
        obj["spec"]["taints"], obj["status"]["conditions"] = taints_now, conditions
    return obj


def pod(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None, *, phase: str = "Pending",
        node_selector: dict[str, str] | None = None, tolerations: list[dict[str, Any]] | None = None,
        affinity: list[dict[str, Any]] | None = None, init: list[dict[str, str]] | None = None,
        overhead: dict[str, str] | None = None, name: str = "p") -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x", "resources": resources}],
                            "schedulerName": "default-scheduler", "preemptionPolicy": "PreemptLowerPriority"}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations is not None:
        spec["tolerations"] = tolerations
    if affinity is not None:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": affinity}}}
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "image": "x", "resources": {"requests": r}}
                                  for i, r in enumerate(init)]
    if overhead:
        spec["overhead"] = overhead
    return {"metadata": {"name": name, "namespace": "default", "uid": name}, "spec": spec,
            "status": {"phase": phase}}


@pytest.mark.parametrize(("the_pod", "expected"), [
    (pod({"cpu": "500m", "memory": "1Gi"}), {"cpu": Decimal("0.5"), "memory": Decimal(2**30)}),
    (pod(limits={"cpu": "2", "nvidia.com/gpu": "1"}), {"cpu": Decimal(2), "nvidia.com/gpu": Decimal(1)}),
    (pod({"cpu": "1"}, limits={"cpu": "2"}), {"cpu": Decimal(1)}),
    (pod({"cpu": "1"}, init=[{"cpu": "3"}]), {"cpu": Decimal(3)}),
    (pod({"cpu": "2"}, init=[{"cpu": "1"}]), {"cpu": Decimal(2)}),
    (pod({"cpu": "1"}, overhead={"cpu": "250m"}), {"cpu": Decimal("1.25")}),
    (pod(), {}),
])
def test_pod_requests(the_pod: dict[str, Any], expected: dict[str, Decimal]) -> None:
    assert pod_requests(the_pod) == expected


@pytest.mark.parametrize(("toleration", "taint", "expected"), [
    ({"operator": "Exists"}, {"key": "a", "value": "b", "effect": "NoSchedule"}, True),
    ({"key": "a", "operator": "Exists"}, {"key": "a", "value": "b", "effect": "NoExecute"}, True),
    ({"key": "a", "operator": "Equal", "value": "b"}, {"key": "a", "value": "b", "effect": "NoSchedule"}, True),
    ({"key": "a", "value": "b"}, {"key": "a", "value": "b", "effect": "NoSchedule"}, True),
    ({"key": "a", "operator": "Equal", "value": "c"}, {"key": "a", "value": "b", "effect": "NoSchedule"}, False),
    ({"key": "a", "operator": "Exists", "effect": "NoExecute"}, {"key": "a", "effect": "NoSchedule"}, False),
    ({"key": "b", "operator": "Exists"}, {"key": "a", "effect": "NoSchedule"}, False),
])
def test_tolerates(toleration: dict[str, Any], taint: dict[str, Any], expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


@pytest.mark.parametrize(("the_pod", "the_node", "bound", "expected"), [
    (pod({"cpu": "1"}), node(), [], []),
    (pod({"cpu": "5"}), node(), [], ["Insufficient cpu"]),
    (pod({"cpu": "3"}), node(), [pod({"cpu": "2"}, phase="Running")], ["Insufficient cpu"]),
    # Finished pods free their resources.
    (pod({"cpu": "3"}), node(), [pod({"cpu": "2"}, phase="Succeeded")], []),
    (pod({"cpu": "5", "memory": "9Gi"}), node(), [], ["Insufficient cpu", "Insufficient memory"]),
    (pod(limits={"nvidia.com/gpu": "1"}), node(), [], ["Insufficient nvidia.com/gpu"]),
    (pod(limits={"nvidia.com/gpu": "1"}), node(capacity={"cpu": "4", "pods": "10", "nvidia.com/gpu": "1"}), [], []),
    (pod(), node(capacity={"cpu": "4", "pods": "1"}), [pod(phase="Running")], ["Too many pods"]),
    (pod(node_selector={"disk": "ssd"}), node(labels={"disk": "ssd"}), [], []),
    (pod(node_selector={"disk": "ssd"}), node(), [], ["node(s) didn't match Pod's node affinity/selector"]),
    (pod(), node(taints=(GPU_TAINT,)), [], ["node(s) had untolerated taint {nvidia.com/gpu: present}"]),
    (pod(tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}]), node(taints=(GPU_TAINT,)), [], []),
    (pod(), node(taints=({"key": "soft", "effect": "PreferNoSchedule"},)), [], []),
    (pod(), node(ready=False), [], ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]),
    # The default tolerations (NoExecute for 300 s) do not let a pod onto a NotReady node.
    (pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                       "tolerationSeconds": 300}]), node(ready=False), [],
     ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]),
    (pod(), node(unschedulable=True), [], ["node(s) were unschedulable"]),
])
def test_fits(the_pod: dict[str, Any], the_node: dict[str, Any], bound: list[dict[str, Any]],
              expected: list[str]) -> None:
    assert fits(the_pod, the_node, bound) == expected


def _expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


@pytest.mark.parametrize(("terms", "labels", "matches"), [
    ([_expr("zone", "In", "a", "b")], {"zone": "b"}, True),
    ([_expr("zone", "In", "a")], {"zone": "b"}, False),
    ([_expr("zone", "NotIn", "a")], {}, True),
    ([_expr("zone", "NotIn", "a")], {"zone": "a"}, False),
    ([_expr("gpu", "Exists")], {"gpu": ""}, True),
    ([_expr("gpu", "DoesNotExist")], {"gpu": ""}, False),
    ([_expr("cores", "Gt", "8")], {"cores": "16"}, True),
    ([_expr("cores", "Gt", "8")], {"cores": "4"}, False),
    ([_expr("cores", "Lt", "8")], {"cores": "4"}, True),
    ([_expr("cores", "Lt", "8")], {"cores": "x"}, False),
    ([_expr("zone", "In", "a"), _expr("gpu", "Exists")], {"gpu": "1"}, True),  # terms are ORed
    ([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                            {"key": "gpu", "operator": "Exists"}]}], {"zone": "a"}, False),  # expressions ANDed
    ([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}], {}, True),
    ([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}], {}, False),
    ([{}], {}, False),  # an empty term matches nothing
])
def test_node_affinity(terms: list[dict[str, Any]], labels: dict[str, str], matches: bool) -> None:
    reasons = fits(pod(affinity=terms), node("n1", labels=labels), [])
    assert (reasons == []) is matches


def test_pick_node_prefers_least_allocated_and_is_deterministic() -> None:
    nodes = [node("a"), node("b"), node("c")]
    busy = {"a": [pod({"cpu": "2"}, phase="Running")], "b": [], "c": []}
    assert pick_node(pod({"cpu": "1"}), nodes, busy) == ("b", "")
    assert pick_node(pod({"cpu": "1"}), list(reversed(nodes)), busy) == ("b", "")


def test_pick_node_filters_before_scoring() -> None:
    nodes = [node("small"), node("gpu", capacity={"cpu": "1", "pods": "10", "nvidia.com/gpu": "2"})]
    assert pick_node(pod(limits={"nvidia.com/gpu": "1"}), nodes, {}) == ("gpu", "")


@pytest.mark.parametrize(("the_pod", "nodes", "message"), [
    (pod(limits={"nvidia.com/gpu": "1"}), [node()],
     "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: "
     "1 No preemption victims found for incoming pod.."),
    (pod(node_selector={"disk": "ssd"}), [node()],
     "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are "
     "available: 1 Preemption is not helpful for scheduling.."),
    (pod({"cpu": "5", "memory": "9Gi"}), [node("a"), node("b", ready=False)],
     "0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 node(s) had untolerated taint "
     "{node.kubernetes.io/not-ready: }. preemption: 0/2 nodes are available: 1 No preemption victims found for "
     "incoming pod, 1 Preemption is not helpful for scheduling.."),
    (pod({"cpu": "5"}), [node("a"), node("b")],
     "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: "
     "2 No preemption victims found for incoming pod.."),
    (pod(), [], "no nodes available to schedule pods"),
])
def test_unschedulable_message(the_pod: dict[str, Any], nodes: list[dict[str, Any]], message: str) -> None:
    assert pick_node(the_pod, nodes, {}) == (None, message)


def test_preemption_never_is_reported() -> None:
    the_pod = pod({"cpu": "5"})
    the_pod["spec"]["preemptionPolicy"] = "Never"
    assert failure_message(the_pod, {"a": ["Insufficient cpu"]}) == (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.")


@pytest.mark.parametrize(("change", "wanted"), [
    ({}, True),
    ({"nodeName": "n1"}, False),
    ({"schedulerName": "other"}, False),
    ({"schedulerName": None}, True),
])
def test_wants_scheduling(change: dict[str, Any], wanted: bool) -> None:
    the_pod = pod()
    the_pod["spec"].update(change)
    assert wants_scheduling(the_pod) is wanted


def test_not_ready_round_trip_keeps_other_taints() -> None:
    obj = node(taints=(GPU_TAINT,))
    taints, conditions = plan_readiness(obj, False, NOW)
    assert {t["key"] for t in taints} == {"nvidia.com/gpu", "node.kubernetes.io/not-ready"}
    assert {t["effect"] for t in taints if t["key"] == "node.kubernetes.io/not-ready"} == {"NoSchedule", "NoExecute"}
    assert next(c for c in conditions if c["type"] == "Ready")["status"] == "False"
    obj["spec"]["taints"], obj["status"]["conditions"] = taints, conditions
    taints, conditions = plan_readiness(obj, True, NOW)
    assert taints == [GPU_TAINT]
    assert next(c for c in conditions if c["type"] == "Ready")["reason"] == "KubeletReady"


def test_pods_without_requests_spread_by_count() -> None:
    nodes = [node("a"), node("b")]
    assert pick_node(pod(), nodes, {"a": [pod(phase="Running")]}) == ("b", "")
    assert pick_node(pod(), nodes, {"b": [pod(phase="Running")]}) == ("a", "")
