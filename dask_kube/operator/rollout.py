"""Rollouts: a changed worker template replaces a group's workers gradually, as a Deployment replaces its pods.

Pure. Each worker pod carries the hash of the template it was made from (`naming.TEMPLATE_HASH_ANNOTATION`); a
pod without one predates rollouts and counts as current, so upgrading the operator restarts nothing. While some
live pods are outdated, `step` plans the group instead of the plain count planner (worker_pods.py): new pods while
the group has fewer than `replicas` current ones and at most `maxSurge` extra pods in all; outdated pods whose worker
never joined go at once (they serve nothing); outdated connected workers are retired through the scheduler (their
data moves first, then their pods are deleted) only while at least `replicas - maxUnavailable` workers stay
connected, least busy and holding the least data first. `maxSurge` and `maxUnavailable` sit in
`spec.worker.rollingUpdate`, integers or percentages of `replicas` as for a Deployment (surge rounds up,
unavailable down; both 0 would never progress, so unavailable becomes 1). The scheduler's template is not rolled:
its hash on the scheduler pod only lets the cluster say that a change waits for the next scheduler start.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from .. import naming, status
from ..naming import ConditionType, Reason
from . import conditions, spec_check
from .worker_pods import PodPlan, PodView, WorkerView, joined

DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"
HASH_LENGTH = 10
ROLLING_UPDATE = "rollingUpdate"  # the field of spec.worker
NOT_TEMPLATE = ("replicas", ROLLING_UPDATE)  # fields of spec.worker whose change needs no new pods


def template_hash(template: Mapping[str, Any], ignore: Collection[str] = NOT_TEMPLATE) -> str:
    """The hash of what pods are made from: `spec.worker` (or `spec.scheduler`) but the fields in `ignore`. A null
    field hashes as an absent one, as the API server reads it: a merge patch that drops the nulls changes nothing."""
    kept = {k: v for k, v in template.items() if k not in ignore}
    return spec_check.fingerprint(status.without_nulls(kept))[:HASH_LENGTH]


def scheduler_hash(scheduler: Mapping[str, Any]) -> str:
    """What a scheduler pod is made from: its `metadata` and `spec` (a Service or budget change needs no restart)."""
    return template_hash({k: scheduler.get(k) for k in ("metadata", "spec")}, ())


def stamp(pod: dict[str, Any], hash_: str) -> dict[str, Any]:
    """The pod, annotated with the hash of its template."""
    pod["metadata"].setdefault("annotations", {})[naming.TEMPLATE_HASH_ANNOTATION] = hash_
    return pod


def hash_of(pod: Mapping[str, Any]) -> str | None:
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(naming.TEMPLATE_HASH_ANNOTATION)


def outdated(pods: Sequence[Mapping[str, Any]], current: str) -> set[str]:
    """Names of the live pods made from another template (pods without a hash count as current)."""
    return {p["metadata"]["name"] for p in pods
            if PodView.from_pod(p).live and hash_of(p) not in (None, current)}


def _amount(value: Any, replicas: int, default: str, round_up: bool) -> int:
    value = default if value is None else value
    if isinstance(value, str) and value.endswith("%"):
        share = replicas * float(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def bounds(worker: Mapping[str, Any], replicas: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods."""
    rolling = worker.get(ROLLING_UPDATE) or {}
    surge = max(0, _amount(rolling.get("maxSurge"), replicas, DEFAULT_MAX_SURGE, True))
    unavailable = max(0, _amount(rolling.get("maxUnavailable"), replicas, DEFAULT_MAX_UNAVAILABLE, False))
    return surge, (1 if surge == 0 and unavailable == 0 else unavailable)


def step(desired: int, pods: Sequence[PodView], old: Collection[str], workers: Sequence[WorkerView] | None,
         surge: int, unavailable: int) -> PodPlan:
    """The next step of a rollout (see the module's docstring). `old` names the outdated pods."""
    live = [p for p in pods if p.live]
    plan = PodPlan(delete=[p.name for p in pods if not p.deleting and p.phase in status.TERMINAL_PHASES])
    stale = [p for p in live if p.name in old]
    fresh = [p for p in live if p.name not in old]
    plan.create = max(0, min(desired - len(fresh), desired + surge - len(live)))
    if workers is None:
        # Unknown who joined: only outdated pods that cannot have started a worker are safe to delete.
        safe = [p.name for p in stale if p.phase == "Pending" and not p.ip]
        plan.delete += safe
        plan.waiting = len(safe) < len(stale)
        return plan
    connected = joined(live, workers)
    plan.delete += [p.name for p in stale if p.name not in connected]
    room = sum(p.name in connected for p in live) - (desired - unavailable)
    candidates = sorted((p for p in stale if p.name in connected),
                        key=lambda p: (connected[p.name].busy, connected[p.name].stored))
    plan.retire = [p.name for p in candidates[:max(0, room)]]
    return plan


def progress(pods: Sequence[Mapping[str, Any]], current: str) -> tuple[int, int]:
    """(live pods on the current template, live pods)."""
    live = [p for p in pods if PodView.from_pod(p).live]
    return sum(hash_of(p) in (None, current) for p in live), len(live)


def merge_diff(have: Mapping[str, Any], want: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns `have` into `want`: removed keys become null."""
    patch: dict[str, Any] = {k: None for k in have if k not in want}
    for key, value in want.items():
        old = have.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            if value != old:
                patch[key] = merge_diff(old, value)
        elif key not in have or value != old:
            patch[key] = value
    return patch


def default_group_template(cluster_worker: Mapping[str, Any], group_worker: Mapping[str, Any]
                           ) -> dict[str, Any] | None:
    """The merge patch of `spec.worker` that gives a cluster's default group the cluster's worker template (all
    but `replicas`, which flows both ways): None when it has it. The cluster is where its default group's
    template is edited."""
    want = {k: v for k, v in cluster_worker.items() if k != "replicas"}
    have = {k: v for k, v in group_worker.items() if k != "replicas"}
    return None if want == have else merge_diff(have, want)


def scheduler_condition(cluster: Mapping[str, Any], pod: Mapping[str, Any] | None) -> dict[str, Any]:
    """Whether the scheduler pod runs the cluster's scheduler template. A changed one is not rolled out: a new
    scheduler has none of the old one's state, so it applies when the scheduler next starts."""
    stamped = hash_of(pod) if pod is not None else None
    if stamped is None or stamped == scheduler_hash(cluster["spec"]["scheduler"]):
        return conditions.condition(ConditionType.SCHEDULER_UPDATED, True, Reason.SCHEDULER_UP_TO_DATE,
                                    "the scheduler pod runs the current scheduler template")
    return conditions.condition(ConditionType.SCHEDULER_UPDATED, False, Reason.SCHEDULER_RESTART_PENDING, (
        "spec.scheduler changed; it applies when the scheduler pod next starts. Restarting it loses the "
        "scheduler's state (tasks in flight, results held by workers): once no work is in flight, delete pod "
        f"{naming.scheduler_name(cluster['metadata']['name'])} and the operator starts a new one "
        "(docs/operator.md, \"Changing a running cluster\")"))
