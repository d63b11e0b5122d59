"""HorizontalPodAutoscalers served at autoscaling/v1 as well as v2 (where they are stored).

autoscaling/v1 is what `kubectl autoscale` (1.32) writes. v1 knows only a CPU utilization target: the first
`Resource` cpu `Utilization` metric of v2 maps onto `targetCPUUtilizationPercentage` (and the current value onto
`currentCPUUtilizationPercentage`); everything else v2 holds rides in the annotations kube-apiserver uses for
this (`autoscaling.alpha.kubernetes.io/metrics`, `.../behavior`, `.../conditions`, `.../current-metrics`), so a
read-modify-write at v1 loses nothing. LocalKube writes those annotations as v2 JSON, where kube-apiserver writes
v1-shaped metric structs.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from localkube.apiserver.core import ApiCore

Obj = dict[str, Any]
HPA_KEY = ("autoscaling", "horizontalpodautoscalers")
_PREFIX = "autoscaling.alpha.kubernetes.io/"
METRICS, BEHAVIOR, CONDITIONS, CURRENT = (f"{_PREFIX}{n}" for n in ("metrics", "behavior", "conditions",
                                                                     "current-metrics"))


def install(core: ApiCore) -> None:
    core.conversions[(HPA_KEY, "v1")] = (v1_to_v2, v2_to_v1)


def _is_cpu(metric: Any, part: str) -> bool:
    """A cpu Resource metric: in `spec` ("target") a Utilization one, in `status` ("current") any."""
    if not isinstance(metric, dict) or metric.get("type") != "Resource":
        return False
    resource = metric.get("resource") or {}
    return resource.get("name") == "cpu" and (part == "current" or (resource.get("target") or {}).get("type")
                                              == "Utilization")


def _pop_json(annotations: dict[str, Any], key: str) -> Any:
    try:
        return json.loads(annotations.pop(key))
    except (KeyError, TypeError, ValueError):
        return None


def v1_to_v2(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v2"
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    spec = out.get("spec") if isinstance(out.get("spec"), dict) else {}
    metrics: list[Any] = []
    target = spec.pop("targetCPUUtilizationPercentage", None)
    if target is not None:
        metrics.append({"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}})
    metrics += _pop_json(annotations, METRICS) or []
    if metrics:
        spec["metrics"] = metrics
    behavior = _pop_json(annotations, BEHAVIOR)
    if behavior is not None:
        spec["behavior"] = behavior
    status = out.get("status") if isinstance(out.get("status"), dict) else None
    current = _pop_json(annotations, CURRENT) or []
    conditions = _pop_json(annotations, CONDITIONS)
    if status is not None:
        used = status.pop("currentCPUUtilizationPercentage", None)
        if used is not None:
            cpu = {"name": "cpu", "current": {"averageUtilization": used}}
            current.insert(0, {"type": "Resource", "resource": cpu})
        if current:
            status["currentMetrics"] = current
        if conditions is not None:
            status["conditions"] = conditions
    meta["annotations"] = annotations
    if not annotations:
        del meta["annotations"]
    return out


def v2_to_v1(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v1"
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    spec = out.get("spec") if isinstance(out.get("spec"), dict) else {}
    metrics = list(spec.pop("metrics", None) or [])
    cpu = next((m for m in metrics if _is_cpu(m, "target")), None)
    if cpu is not None:
        spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"].get("averageUtilization")
        metrics.remove(cpu)
    if metrics:
        annotations[METRICS] = json.dumps(metrics, separators=(",", ":"))
    if spec.get("behavior") is not None:
        annotations[BEHAVIOR] = json.dumps(spec.pop("behavior"), separators=(",", ":"))
    status = out.get("status") if isinstance(out.get("status"), dict) else None
    if status is not None:
        current = list(status.pop("currentMetrics", None) or [])
        used = next((m for m in current if _is_cpu(m, "current")), None)
        if used is not None:
            value = (used["resource"].get("current") or {}).get("averageUtilization")
            if value is not None:
                status["currentCPUUtilizationPercentage"] = value
            current.remove(used)
        if current:
            annotations[CURRENT] = json.dumps(current, separators=(",", ":"))
        if status.get("conditions") is not None:
            annotations[CONDITIONS] = json.dumps(status.pop("conditions"), separators=(",", ":"))
        status.setdefault("currentReplicas", 0)
    if annotations:
        meta["annotations"] = annotations
    return out
