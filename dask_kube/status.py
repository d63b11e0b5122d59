"""Pure reading of what the API server reports: phases, conditions, why a pod is stuck, who owns what, times.

No I/O. The client, legacy mode and the operator read objects through these, so that "finished", "stuck" and "ours"
mean one thing everywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import naming

Obj = Mapping[str, Any]

TERMINAL_PHASES = ("Succeeded", "Failed")
CRASHING = ("CrashLoopBackOff", "Error")
IMAGE_PULL = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName")
# Waiting reasons after which a container will not start unless someone changes something.
STUCK = frozenset({"CrashLoopBackOff", *IMAGE_PULL, "CreateContainerError", "CreateContainerConfigError",
                   "RunContainerError"})
CREATING = "ContainerCreating"  # a container on its way up: not a reason to worry


def phase(raw: Obj | None) -> str | None:
    return ((raw or {}).get("status") or {}).get("phase")


def condition(raw: Obj | None, type_: str) -> Mapping[str, Any]:
    """The condition of that type, or {}."""
    return next((c for c in ((raw or {}).get("status") or {}).get("conditions") or () if c.get("type") == type_), {})


def deleting(raw: Obj) -> bool:
    return bool(raw["metadata"].get("deletionTimestamp"))


def gone(raw: Obj | None) -> bool:
    """Absent, or on its way out."""
    return raw is None or deleting(raw)


def finished(raw: Obj | None) -> bool:
    return phase(raw) in TERMINAL_PHASES


def owned_by(raw: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in raw["metadata"].get("ownerReferences") or ())


def without_nulls(value: Any) -> Any:
    """A copy of `value` with every null mapping entry dropped, at any depth. The API server reads a null field of
    a Pod spec as an absent one (`env: null`, `resources: null`, `metadata.labels: null`, as dask-kubernetes'
    helpers write them) and keeps such nulls in custom resources: every reader of a template must do the same."""
    if isinstance(value, Mapping):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def client_lease_seconds(raw: Obj) -> int | None:
    """A cluster's client-lease timeout (its annotation), or None: not leased, or not a positive whole number (a
    hand-edited annotation never makes the operator delete a cluster)."""
    value = (raw["metadata"].get("annotations") or {}).get(naming.CLIENT_LEASE_ANNOTATION)
    try:
        seconds = int(value) if value is not None else 0
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def controller_uids(raw: Obj) -> list[str]:
    return [r.get("uid", "") for r in raw["metadata"].get("ownerReferences") or () if r.get("controller")]


# -- pods ---------------------------------------------------------------------------------------------------------


def is_ready(raw: Obj | None) -> bool:
    """The pod's Ready condition is True (its readiness probe passes, so its Service routes to it)."""
    return condition(raw, "Ready").get("status") == "True"


def restarts(raw: Obj | None) -> int:
    """The most restarts of any of its containers."""
    return max((int(cs.get("restartCount") or 0) for cs in _container_statuses(raw)), default=0)


def unscheduled(raw: Obj | None) -> Mapping[str, Any] | None:
    """The PodScheduled condition when it is False (the scheduler found no node), else None."""
    cond = condition(raw, "PodScheduled")
    return cond if cond.get("status") == "False" else None


@dataclass(frozen=True)
class Waiting:
    container: str
    reason: str
    message: str


def waiting(raw: Obj | None, creating_counts: bool = False) -> Waiting | None:
    """The first container waiting for a reason (ContainerCreating only when `creating_counts`)."""
    for cs in _container_statuses(raw):
        state = (cs.get("state") or {}).get("waiting") or {}
        reason = state.get("reason")
        if reason and (creating_counts or reason != CREATING):
            return Waiting(str(cs.get("name")), reason, state.get("message", ""))
    return None


def pod_state(raw: Obj | None) -> tuple[str, str | None, str]:
    """(phase, reason, message) of a pod, where reason is the most telling one: Unschedulable, a container's
    waiting reason (ImagePullBackOff, CrashLoopBackOff) or its last termination reason."""
    if raw is None:
        return "Missing", None, "the pod does not exist"
    pod_phase = phase(raw) or "Pending"
    cond = unscheduled(raw)
    if cond is not None:
        return pod_phase, cond.get("reason") or "Unschedulable", cond.get("message", "")
    for cs in _container_statuses(raw):
        state = (cs.get("state") or {}).get("waiting") or {}
        if state.get("reason") and state["reason"] != CREATING:
            return pod_phase, state["reason"], state.get("message", "")
        terminated = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if terminated and terminated.get("exitCode"):
            return pod_phase, terminated.get("reason") or "Error", f"exit code {terminated.get('exitCode')}"
    return pod_phase, None, ""


def exits(raw: Obj) -> str:
    """Why a pod's containers ended, from their last terminated states."""
    parts = []
    for cs in _container_statuses(raw):
        term = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if term:
            text = f"container {cs.get('name')} exited with code {term.get('exitCode')}"
            if term.get("reason"):
                text += f" ({term['reason']})"
            if term.get("message"):
                text += f": {term['message']}"
            parts.append(text)
    return "; ".join(parts)


def _container_statuses(raw: Obj | None) -> list[Mapping[str, Any]]:
    return list(((raw or {}).get("status") or {}).get("containerStatuses") or ())


# -- services -----------------------------------------------------------------------------------------------------


def service_port(service: Obj, name: str, node_port: bool = False) -> int | None:
    """The port of a Service named `name`: the one clients dial (or its node port), which may differ from the pod's."""
    for port in (service.get("spec") or {}).get("ports") or ():
        if port.get("name") == name:
            value = port.get("nodePort") if node_port else port.get("port")
            return int(value) if value else None
    return None


def load_balancer_host(service: Obj | None) -> str | None:
    """The first ingress address of a LoadBalancer Service, once the cloud has provisioned one."""
    ingress = (((service or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return (ingress[0].get("ip") or ingress[0].get("hostname")) if ingress else None


def has_ready_address(endpoints: Obj | None) -> bool:
    return any(subset.get("addresses") for subset in (endpoints or {}).get("subsets") or ())


# -- times --------------------------------------------------------------------------------------------------------


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def seconds_between(earlier: str, later: str) -> float:
    """Seconds from one RFC 3339 time to another (negative if `later` is earlier)."""
    start, end = parse_time(earlier), parse_time(later)
    assert start is not None and end is not None
    return (end - start).total_seconds()
