"""Worker pods deleted by someone else (a node drain, the cluster autoscaler, a spot reclaim, `kubectl delete pod`):
which of their workers to retire now, so that their data moves while the pods' preStop hooks keep them alive
(see dask_kube/worker_lifecycle.py).

Pure. A pod qualifies while it is terminating, its grace period has not ended, this operator did not delete it
itself (its own deletions retire first), its worker is still connected, it was not handed to the scheduler
already (one retirement per pod: a second one of the same worker would race the first), and its node still
answers: a pod whose node stopped answering (Ready False, then evicted by the taint manager) has a worker that
cannot hand anything over, and retiring it would hold its keys hostage until the scheduler gave up on it; such
workers are removed as lost instead, and what they held is recomputed.

The scheduler, one pod whose loss loses the cluster's state, may instead be protected by a PodDisruptionBudget
(`spec.scheduler.disruptionBudget`): evictions of it are then refused and a drain waits for someone to move it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from .. import naming, specs
from .plan import Delete, Plan
from .worker_pods import PodView, WorkerView, joined

BUDGET_STATUS = "schedulerDisruptionBudget"  # DaskCluster status: whether the scheduler's budget should exist


def to_retire(pods: Sequence[Mapping[str, Any]], workers: Sequence[WorkerView], now: str,
              deleted_by_us: Collection[str], handled: Collection[str]) -> dict[str, str]:
    """Worker name -> pod name of the evicted workers to retire. `now` is RFC 3339 like the pods' timestamps;
    `deleted_by_us` and `handled` are pod uids."""
    candidates = {}
    for pod in pods:
        meta = pod["metadata"]
        view = PodView.from_pod(pod)
        if view.deleting and view.gone_at > now and meta["uid"] not in deleted_by_us and meta["uid"] not in handled \
                and not view.unreachable:
            candidates[view.name] = view
    return {worker.name: pod for pod, worker in joined(list(candidates.values()), workers).items()}


def scheduler_budget_wanted(cluster: Mapping[str, Any], default: bool) -> bool:
    """Whether the cluster's scheduler gets a PodDisruptionBudget: its spec says, else the operator's default."""
    value = ((cluster.get("spec") or {}).get("scheduler") or {}).get("disruptionBudget")
    return default if value is None else bool(value)


def scheduler_budget(cluster: Mapping[str, Any], exists: bool, default: bool, plan: Plan[Any]) -> None:
    """Create or delete the scheduler's PodDisruptionBudget as the spec asks; the status says which holds."""
    wanted = scheduler_budget_wanted(cluster, default)
    if wanted and not exists:
        plan.create.append(specs.scheduler_disruption_budget(cluster))
    elif exists and not wanted:
        plan.delete.append(Delete("PodDisruptionBudget", naming.scheduler_name(cluster["metadata"]["name"])))
    plan.status[BUDGET_STATUS] = wanted


def uids(pods: Sequence[Mapping[str, Any]], names: Collection[str]) -> frozenset[str]:
    return frozenset(p["metadata"]["uid"] for p in pods if p["metadata"]["name"] in names)
