"""PodDisruptionBudget facts shared by the Eviction API and the disruption controller.

Both must agree on which pods a budget covers, what a healthy pod is and how the `DisruptionAllowed` condition
reads, or an eviction could spend a budget the controller computed differently. The rules are Kubernetes':
a nil selector covers no pod and an empty one every pod of the namespace (policy/v1), a pod is healthy when its
Ready condition is True, and the condition follows `status.disruptionsAllowed`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from localkube.apiserver import selectors

Obj = dict[str, Any]

PDB_KEY = ("policy", "poddisruptionbudgets")
DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"
ALWAYS_ALLOW = "AlwaysAllow"
IF_HEALTHY_BUDGET = "IfHealthyBudget"


def selects(pdb: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Whether `pdb` covers `pod`: same namespace and a matching selector (an invalid selector matches nothing)."""
    if (pdb.get("metadata") or {}).get("namespace") != (pod.get("metadata") or {}).get("namespace"):
        return False
    try:
        selector = selectors.label_selector_from_spec((pdb.get("spec") or {}).get("selector"))
    except selectors.SelectorError:
        return False
    return selector.matches((pod.get("metadata") or {}).get("labels") or {})


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Healthy, as budgets count it: the Ready condition is True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def allowed_condition(disruptions_allowed: int, observed_generation: int) -> Obj:
    """The `DisruptionAllowed` condition that `disruptionsAllowed` implies (no message, as the real one has none)."""
    allowed = disruptions_allowed > 0
    return {"type": DISRUPTION_ALLOWED, "status": "True" if allowed else "False",
            "reason": SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS, "message": "",
            "observedGeneration": observed_generation}


def set_condition(conditions: list[Obj] | None, condition: Obj, now: str) -> list[Obj]:
    """`conditions` with `condition` put in: lastTransitionTime moves only when the status flips."""
    out = [copy.deepcopy(c) for c in conditions or ()]
    for i, current in enumerate(out):
        if current.get("type") == condition["type"]:
            since = current.get("lastTransitionTime") if current.get("status") == condition["status"] else None
            out[i] = {**condition, "lastTransitionTime": since or now}
            return out
    out.append({**condition, "lastTransitionTime": now})
    return out


def condition_up_to_date(pdb: Mapping[str, Any]) -> bool:
    """The condition agrees with `disruptionsAllowed` and the status is of the current generation."""
    status = pdb.get("status") or {}
    if int(status.get("observedGeneration") or 0) != int((pdb.get("metadata") or {}).get("generation") or 0):
        return False
    want = allowed_condition(int(status.get("disruptionsAllowed") or 0), 0)
    return any(c.get("type") == DISRUPTION_ALLOWED and c.get("status") == want["status"]
               and c.get("reason") == want["reason"] for c in status.get("conditions") or ())
