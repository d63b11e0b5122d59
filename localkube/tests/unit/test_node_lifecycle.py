"""The node lifecycle's pure decisions: a node's taints and conditions per fault, and when a pod is evicted."""

from __future__ import annotations

from typing import Any

from localkube.controllers.nodelifecycle import eviction_delay
from localkube.controllers.nodes import (
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    NodeConfig,
    node_object,
    node_status,
    plan_readiness,
)

NOW = "2026-11-22T03:00:00Z"
LATER = "2026-11-22T03:00:30Z"
T0 = 1_795_316_400.0  # NOW as seconds since the epoch


def _node(**config: Any) -> dict[str, Any]:
    node = node_object(NodeConfig(**config))
    node["status"] = node_status(NodeConfig(**config), NOW, "v1.32.0")
    return node


def _apply(node: dict[str, Any], taints: list[dict[str, Any]], conditions: list[dict[str, Any]]) -> dict[str, Any]:
    return {**node, "spec": {**node["spec"], "taints": taints}, "status": {**node["status"], "conditions": conditions}}


def _statuses(conditions: list[dict[str, Any]]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in conditions}


def test_not_ready_and_unreachable_taints_and_conditions() -> None:
    node = _node(taints=({"key": "gpu", "effect": "NoSchedule"},))
    taints, conditions = plan_readiness(node, False, NOW)
    assert {(t["key"], t["effect"]) for t in taints} == {
        ("gpu", "NoSchedule"), (NOT_READY_TAINT, "NoSchedule"), (NOT_READY_TAINT, "NoExecute")}
    assert _statuses(conditions)["Ready"] == "False"
    # The partition: every condition Unknown, the unreachable taints instead of the not-ready ones.
    cut = _apply(node, taints, conditions)
    taints, conditions = plan_readiness(cut, False, LATER, reachable=False)
    assert {(t["key"], t["effect"]) for t in taints} == {
        ("gpu", "NoSchedule"), (UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute")}
    assert set(_statuses(conditions).values()) == {"Unknown"}
    assert all(c["reason"] == "NodeStatusUnknown" for c in conditions)
    # The same fault again keeps the taints' timeAdded (the eviction clock does not restart).
    again, _ = plan_readiness(_apply(cut, taints, conditions), False, "2026-11-22T03:05:00Z", reachable=False)
    assert again == taints
    # Healed: Ready, the pressures reported again, only the user's taint left.
    taints, conditions = plan_readiness(_apply(cut, taints, conditions), True, LATER)
    assert taints == [{"key": "gpu", "effect": "NoSchedule"}]
    assert _statuses(conditions) == {"MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False",
                                     "Ready": "True"}


def test_unreachable_then_reporting_not_ready() -> None:
    node = _node()
    cut = _apply(node, *plan_readiness(node, False, NOW, reachable=False))
    taints, conditions = plan_readiness(cut, False, LATER)
    assert _statuses(conditions)["Ready"] == "False"
    assert {t["key"] for t in taints} == {NOT_READY_TAINT}


def _tainted(key: str, added: str | None = NOW) -> dict[str, Any]:
    taint = {"key": key, "effect": "NoExecute", **({"timeAdded": added} if added else {})}
    return {"metadata": {"name": "n"}, "spec": {"taints": [taint, {"key": key, "effect": "NoSchedule"}]}}


def _pod(*tolerations: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"tolerations": list(tolerations)}}


def test_eviction_delay_follows_the_tolerations() -> None:
    node = _tainted(UNREACHABLE_TAINT)
    default = {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    short = {**default, "tolerationSeconds": 2}
    forever = {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"}
    assert eviction_delay(_pod(), node, T0) == 0  # nothing tolerates it: at once
    assert eviction_delay(_pod({"key": NOT_READY_TAINT, "operator": "Exists"}), node, T0) == 0
    assert eviction_delay(_pod(default), node, T0 + 100) == 200
    assert eviction_delay(_pod(default, short), node, T0 + 1) == 1  # the shortest matching toleration
    assert eviction_delay(_pod(short), node, T0 + 60) == 0  # overdue: now
    assert eviction_delay(_pod(forever), node, T0 + 10**6) is None
    assert eviction_delay(_pod({"operator": "Exists"}), node, T0) is None  # tolerates everything
    assert eviction_delay(_pod(), _tainted(UNREACHABLE_TAINT, added=None), T0) == 0
    assert eviction_delay(_pod(short), _tainted(UNREACHABLE_TAINT, added=None), T0) == 2  # from now
    assert eviction_delay(_pod(), {"metadata": {"name": "n"}, "spec": {}}, T0) is None  # no NoExecute taint
