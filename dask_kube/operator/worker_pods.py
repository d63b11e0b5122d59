"""Which worker pods a group should create, delete, or retire first, and which connected workers lost their pod.

Pure. Scale-down never loses data: pods whose worker never joined the scheduler go first (unschedulable, then
pending, then newest); workers that did join are retired through the scheduler, which moves their data,
before their pods are deleted, least busy and least loaded first. Without an answer from the scheduler,
joined workers are left alone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import naming, status


@dataclass(frozen=True)
class PodView:
    name: str
    phase: str = "Pending"
    ip: str | None = None
    created: str = ""
    deleting: bool = False
    unschedulable: bool = False
    gone_at: str = ""  # deletionTimestamp: when its grace period ends and the kubelet kills what is left
    unreachable: bool = False  # evicted because its node stopped answering: nobody can stop (or hear) its worker

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any]) -> PodView:
        meta = pod["metadata"]
        unscheduled = status.unscheduled(pod)
        return cls(name=meta["name"], phase=status.phase(pod) or "Pending", ip=(pod.get("status") or {}).get("podIP"),
                   created=meta.get("creationTimestamp", ""), deleting=status.deleting(pod),
                   unschedulable=unscheduled is not None and unscheduled.get("reason") == "Unschedulable",
                   gone_at=meta.get("deletionTimestamp") or "", unreachable=node_lost(pod))

    @property
    def live(self) -> bool:
        """Counted as one of the group's workers: neither terminating nor finished."""
        return not self.deleting and self.phase not in status.TERMINAL_PHASES


@dataclass(frozen=True)
class WorkerView:
    name: str
    host: str = ""
    busy: int = 0  # tasks executing or ready on it
    stored: int = 0  # bytes of data it holds

    @classmethod
    def from_identity(cls, info: Mapping[str, Any]) -> WorkerView:
        metrics = info.get("metrics") or {}
        task_counts = metrics.get("task_counts") or {}
        busy = int(metrics.get("executing", 0) or 0) + int(metrics.get("ready", 0) or 0) + int(
            task_counts.get("executing", 0) or 0)
        stored = int(metrics.get("managed_bytes") or 0)  # data it holds; "memory" would be the process's RSS
        return cls(name=str(info.get("name", "")), host=str(info.get("host", "")), busy=busy, stored=stored)


@dataclass
class PodPlan:
    create: int = 0
    delete: list[str] = field(default_factory=list)  # delete now: finished, failed, or never joined
    retire: list[str] = field(default_factory=list)  # retire through the scheduler, then delete
    waiting: bool = False  # more to do once the scheduler answers

    @property
    def empty(self) -> bool:
        return not (self.create or self.delete or self.retire)


def joined(pods: Sequence[PodView], workers: Sequence[WorkerView]) -> dict[str, WorkerView]:
    """Pod name -> its connected worker, matched by worker name (= pod name) or, failing that, by pod IP."""
    by_name = {w.name: w for w in workers}
    by_host = {w.host: w for w in workers if w.host}
    out = {}
    for pod in pods:
        worker = by_name.get(pod.name) or (by_host.get(pod.ip) if pod.ip else None)
        if worker is not None:
            out[pod.name] = worker
    return out


def plan_worker_group(desired: int, pods: Sequence[PodView], workers: Sequence[WorkerView] | None
                      ) -> PodPlan:
    """What to do so that exactly `desired` live worker pods exist, losing no data on the way down."""
    live = [p for p in pods if not p.deleting]
    finished = [p for p in live if p.phase in status.TERMINAL_PHASES]
    active = [p for p in live if p.phase not in status.TERMINAL_PHASES]
    plan = PodPlan(delete=[p.name for p in finished])
    excess = len(active) - desired
    if excess < 0:
        plan.create = -excess
        return plan
    if excess == 0:
        return plan
    if workers is None:
        # Unknown who joined: only pods that cannot have started a worker are safe to delete.
        safe = [p for p in active if p.phase == "Pending" and not p.ip]
        safe.sort(key=lambda p: (not p.unschedulable, _newest_first(p)))
        plan.delete += [p.name for p in safe[:excess]]
        plan.waiting = excess > len(safe)
        return plan
    connected = joined(active, workers)
    never = [p for p in active if p.name not in connected]
    never.sort(key=lambda p: (not p.unschedulable, p.phase != "Pending", _newest_first(p)))
    plan.delete += [p.name for p in never[:excess]]
    remaining = excess - min(excess, len(never))
    if remaining:
        candidates = sorted((p for p in active if p.name in connected),
                            key=lambda p: (connected[p.name].busy, connected[p.name].stored, _newest_first(p)))
        plan.retire = [p.name for p in candidates[:remaining]]
    return plan


def overdue_workers(pods: Sequence[PodView], workers: Sequence[WorkerView], now: str) -> list[str]:
    """Workers still connected although their pod's grace period has ended: the kubelet that should have killed
    them cannot (their node is unreachable: a partition), so they are silent, and the scheduler would keep their
    tasks until its worker-ttl (5 minutes by default) gives them up. A pod the taint manager evicted from an
    unreachable node is such a worker at once: waiting out its grace period (long, so that evicted workers can hand
    their data over) would only hold its tasks hostage. `now` is RFC 3339, as the timestamps."""
    overdue = [p for p in pods if p.deleting and (p.unreachable or (p.gone_at and p.gone_at <= now))]
    return sorted(w.name for w in joined(overdue, workers).values())


def node_lost(pod: Mapping[str, Any]) -> bool:
    """Marked not Ready and evicted by the taint manager: what Kubernetes does to the pods of a node that stopped
    answering (an admin's NoExecute taint on a healthy node leaves its pods Ready)."""
    target = status.condition(pod, "DisruptionTarget")
    return (status.deleting(pod) and status.condition(pod, "Ready").get("status") == "False"
            and target.get("status") == "True" and target.get("reason") == "DeletionByTaintManager")


def podless_workers(group: str, pod_names: Collection[str], workers: Sequence[WorkerView]) -> list[str]:
    """Connected workers named as the group's pods are, whose pod no longer exists at all: force-deleted while
    its node was unreachable (`kubectl delete --force`), so nobody stopped the process. `pod_names` are all the
    cluster's worker pods, terminating ones included."""
    return sorted(w.name for w in workers if w.name not in pod_names and naming.is_worker_pod_name(group, w.name))


def _newest_first(pod: PodView) -> tuple[int, ...]:
    # RFC 3339 timestamps of one format sort as strings; negate characters to sort newest first.
    return tuple(-ord(c) for c in pod.created)


def capped_replicas(group: str, desired: dict[str, int], live: dict[str, int], cap: int) -> int:
    """How many workers `group` may run under a per-cluster cap shared by all its groups.

    The cap is handed out in name order (so two greedy groups settle instead of taking turns), and a group
    never grows into room other groups still occupy (so the total never exceeds the cap, even mid-change).
    `desired` and `live` are by group name, for every group of the cluster.
    """
    allocated = 0
    share = 0
    for name in sorted(desired):
        share = min(desired[name], max(0, cap - allocated))
        if name == group:
            break
        allocated += share
    others_live = sum(n for name, n in live.items() if name != group)
    return max(0, min(share, cap - others_live))
