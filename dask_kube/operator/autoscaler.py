"""DaskAutoscaler: size a worker group from the scheduler's adaptive target, between minimum and maximum.

Once per interval (however often events wake the loop): ask the scheduler how many workers it wants
(`adaptive_target`, which weighs queued work against `distributed.adaptive.target-duration`), subtract the
workers of the cluster's other groups (connected, pending or wanted: `group_target`), and let `recommend` turn
that into a replica count: up at once, down
only after the target stayed lower for a few consecutive samples (hysteresis, as distributed's
`Adaptive.wait_count`) and by at most a quarter of the group per sample (as dask-kubernetes does; both are
`AutoscalerSettings`, `kubernetes.operator.autoscaler.*`), so that a pause
between two batches of tasks does not cost the workers and their data. The result is one patch of the group's
`spec.worker.replicas`; the group's own reconciler retires workers through the scheduler before deleting their
pods. Deleting the autoscaler leaves the group at its current size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kr8s.asyncio.objects import Pod

from .. import naming, specs, status
from ..kinds import DaskAutoscaler, DaskCluster, DaskWorkerGroup
from ..naming import ConditionType, Reason
from . import conditions
from .act import act
from .context import OperatorContext
from .loops import Gone
from .objects import now_rfc3339
from .plan import Event, Patch, Plan
from .scheduler_rpc import SchedulerUnreachable
from .settings import AutoscalerSettings, OperatorSettings

Obj = Mapping[str, Any]
DEFAULT_POLICY = AutoscalerSettings()
History = tuple[int, ...]  # the clamped targets of the latest consecutive passes that wanted fewer workers


@dataclass(frozen=True)
class AutoscalerMemory:
    """What an autoscaler's loop keeps between passes (lost on restart: it waits again, which is safe)."""

    history: History = ()
    reported: str | None = None  # the last problem posted as an Event
    sampled: float = -math.inf  # time.monotonic() of the last sample


@dataclass(frozen=True)
class AutoscalerView:
    """What one sample reads. Observation stops at the first thing missing, as `decide` looks no further."""

    scaler: Obj
    cluster: Obj | None = None
    group: Obj | None = None
    autoscalers: Sequence[Obj] = ()  # the cluster's autoscalers, this one included
    target: int | None = None  # the scheduler's adaptive target; None: it did not answer
    workers: Sequence[str] = field(default_factory=list)  # names of the connected workers
    groups: Sequence[Obj] = ()  # the cluster's worker groups
    pods: Sequence[Obj] = ()  # the cluster's worker pods


def recommend(current: int, target: int, minimum: int, maximum: int, history: History = (),
              policy: AutoscalerSettings = DEFAULT_POLICY) -> tuple[int, History]:
    """The group's next replica count and the history to pass next time. Pure.

    Bounds win at once (a group above `maximum` shrinks to it now); scale-up is immediate; scale-down waits
    until the target has been lower for `policy.scale_down_wait` passes, then goes to the highest of those
    targets, by at most `policy.max_scale_down_fraction` of the group (at least one worker) per pass.
    """
    wanted = min(maximum, max(minimum, target))
    if current > maximum:
        return maximum, ()
    if wanted >= current:  # also a group below minimum: wanted >= minimum
        return wanted, ()
    wait = max(1, policy.scale_down_wait)
    history = (*history, wanted)[-wait:]
    if len(history) < wait:
        return current, history
    step = max(1, int(current * policy.max_scale_down_fraction))
    return max(current - step, max(history)), history


def group_target(cluster_target: int, worker_names: Iterable[str], group: str, groups: Iterable[Obj] = (),
                 pods: Iterable[Obj] = ()) -> int:
    """The cluster-wide target minus the workers that the cluster's other groups contribute or soon will.

    Per other group, the most of: its connected workers, its live pods (pending ones included: their workers
    have not connected yet) and its desired replicas (pods not created yet). Counting only connected workers,
    two autoscaled groups whose pods were on their way would each chase the whole target. Connected workers of
    no known group (named by address) count too.
    """
    names = [str(n) for n in worker_names]
    others = {str(g["metadata"]["name"]) for g in groups} - {group}
    live: dict[str, int] = {}
    for pod in pods:
        owner = (pod["metadata"].get("labels") or {}).get(naming.WORKERGROUP_LABEL)
        if owner in others and not status.gone(pod) and not status.finished(pod):
            live[owner] = live.get(owner, 0) + 1
    contributed = 0
    for other in groups:
        name = str(other["metadata"]["name"])
        if name == group:
            continue
        connected = sum(1 for n in names if n.startswith(f"{name}-worker-"))
        desired = int(((other.get("spec") or {}).get("worker") or {}).get("replicas") or 0)
        contributed += max(connected, live.get(name, 0), desired)
    known = (group, *others)
    contributed += sum(1 for n in names if not n.startswith(tuple(f"{g}-worker-" for g in known)))
    return max(0, cluster_target - contributed)


def interval(settings: OperatorSettings) -> float:
    return min(settings.autoscaler.interval_seconds, settings.resync_seconds)


def _group_name(scaler: Obj) -> str:
    spec = scaler["spec"]
    return str(spec.get("workerGroup") or naming.default_worker_group_name(spec["cluster"]))


def senior_rival(scaler: Obj, autoscalers: Iterable[Obj], group: Obj | None = None) -> str | None:
    """The name of the autoscaler of the same worker group that acts instead of this one, if any: two would fight
    (like HPA's AmbiguousSelector), so one acts and the others say why they do not.

    The one that acts is the one the group names (`naming.AUTOSCALED_BY_ANNOTATION`) while it exists, else the
    oldest (creation time to the second, then name). An autoscaler claims the group with a patch conditional on
    the resourceVersion it read, so two that decide at once (neither seeing the other yet, or created in the same
    second) cannot both win: the loser's write fails with 409, and its next pass sees the claim."""
    meta, cluster, group_name = scaler["metadata"], scaler["spec"]["cluster"], _group_name(scaler)
    rivals: dict[str, tuple[str, str]] = {}
    for other in autoscalers:
        ometa, ospec = other["metadata"], other["spec"]
        if (ometa["uid"] == meta["uid"] or status.deleting(other) or ospec.get("cluster") != cluster
                or _group_name(other) != group_name):
            continue
        rivals[ometa["name"]] = (ometa.get("creationTimestamp", ""), ometa["name"])
    claimed = _claimed_by(group)
    if claimed == meta["name"]:
        return None
    if claimed in rivals:
        return claimed
    mine = (meta.get("creationTimestamp", ""), meta["name"])
    older = [name for name, rank in rivals.items() if rank < mine]
    return min(older) if older else None


def _claimed_by(group: Obj | None) -> str | None:
    annotations = ((group or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(naming.AUTOSCALED_BY_ANNOTATION)


def _scale_patch(scaler: Obj, group: Obj, current: int, replicas: int) -> Patch | None:
    """The group's new replicas, and this autoscaler's claim on the group unless the group names it already (a
    claim is conditional on the group's resourceVersion as read: see `senior_rival`)."""
    body: dict[str, Any] = {}
    if replicas != current:
        body["spec"] = {"worker": {"replicas": replicas}}
    name = scaler["metadata"]["name"]
    if _claimed_by(group) != name:
        claim: dict[str, Any] = {"annotations": {naming.AUTOSCALED_BY_ANNOTATION: name}}
        if group["metadata"].get("resourceVersion"):
            claim["resourceVersion"] = group["metadata"]["resourceVersion"]
        body["metadata"] = claim
    return Patch(naming.DASKWORKERGROUP, group["metadata"]["name"], body) if body else None


def _problem(scaler: Obj, memory: AutoscalerMemory, type_: str, reason: str, message: str,
             requeue: float | None) -> Plan[AutoscalerMemory]:
    """A condition saying why the autoscaler does nothing, and one Warning Event per distinct problem."""
    generation = scaler["metadata"].get("generation")
    wanted = [conditions.condition(type_, False, reason, message, generation)]
    if type_ != ConditionType.SPEC_VALID:
        wanted.insert(0, conditions.condition(ConditionType.SPEC_VALID, True, Reason.VALID, "", generation))
    else:
        wanted.append(conditions.condition(ConditionType.READY, False, reason, message))
    plan: Plan[AutoscalerMemory] = Plan(conditions=wanted, requeue=requeue)
    if not conditions.same((scaler.get("status") or {}).get("conditions"), wanted):
        plan.status = {"observedGeneration": scaler["metadata"].get("generation", 1)}
    plan.memory = replace(memory, reported=plan.warn_once(memory.reported, reason, message))
    return plan


def gate(scaler: Obj, memory: AutoscalerMemory, now: float, settings: OperatorSettings
         ) -> Plan[AutoscalerMemory] | None:
    """Before anything else is read: bounds that can never hold, or a sample not due yet (one sample per
    interval, however often events wake the loop, since hysteresis and the rate limit count samples). None: go
    on and sample."""
    minimum, maximum = int(scaler["spec"]["minimum"]), int(scaler["spec"]["maximum"])
    if minimum > maximum:
        return _problem(scaler, memory, ConditionType.SPEC_VALID, Reason.INVALID_BOUNDS,
                        f"spec.minimum ({minimum}) is greater than spec.maximum ({maximum})", None)
    since = now - memory.sampled
    if since < interval(settings):
        return Plan(requeue=interval(settings) - since)
    return None


def decide(view: AutoscalerView, memory: AutoscalerMemory, now: float, settings: OperatorSettings,
           scaled_at: str = "") -> Plan[AutoscalerMemory]:
    """One sample: the group's replicas, from the scheduler's target, within bounds. Pure; `now` is monotonic,
    `scaled_at` the wall time to record as `lastScaleTime` should it scale."""
    scaler = view.scaler
    spec = scaler["spec"]
    memory = replace(memory, sampled=now)
    cluster_name, group_name = spec["cluster"], _group_name(scaler)
    resync = settings.resync_seconds
    if view.cluster is None:
        return _problem(scaler, memory, ConditionType.READY, Reason.CLUSTER_MISSING,
                        f"DaskCluster {cluster_name} does not exist", resync)
    adopt = _adoption(scaler, view.cluster)
    if view.group is None or view.group["spec"].get("cluster") != cluster_name:
        plan = _problem(scaler, memory, ConditionType.READY, Reason.WORKER_GROUP_MISSING,
                        f"DaskWorkerGroup {group_name} of cluster {cluster_name} does not exist", resync)
    elif (rival := senior_rival(scaler, view.autoscalers, view.group)) is not None:
        plan = _problem(scaler, memory, ConditionType.READY, Reason.CONFLICTING_AUTOSCALER,
                        f"DaskAutoscaler {rival} already scales {group_name}; only one autoscaler of a worker "
                        "group acts (delete one of them)", resync)
    elif view.target is None:
        # Expected while a cluster starts: a condition, not an Event every few seconds.
        plan = _status(scaler, None, conditions.condition(
            ConditionType.READY, False, Reason.SCHEDULER_STARTING, "the scheduler does not answer yet"))
        plan.requeue = interval(settings)
    else:
        minimum, maximum = int(spec["minimum"]), int(spec["maximum"])
        wanted = group_target(view.target, view.workers, group_name, view.groups, view.pods)
        current = int(view.group["spec"]["worker"].get("replicas", 1))
        replicas, history = recommend(current, wanted, minimum, maximum, memory.history, settings.autoscaler)
        ready = conditions.condition(ConditionType.READY, True, Reason.AUTOSCALED,
                                     f"scaling {group_name} between {minimum} and {maximum} workers")
        plan = _status(scaler, replicas, ready, scaled_at if replicas != current else None)
        if (patch := _scale_patch(scaler, view.group, current, replicas)) is not None:
            plan.patch.append(patch)
        if replicas != current:
            plan.events.append(Event(
                Reason.AUTOSCALED, f"scaled {group_name} {'up' if replicas > current else 'down'} from {current} "
                                   f"to {replicas} workers (scheduler target {view.target}, bounds "
                                   f"{minimum}..{maximum})"))
        plan.requeue = interval(settings)
        memory = replace(memory, history=history, reported=None)
    plan.memory = replace(plan.memory or memory, sampled=now)
    if adopt is not None:
        plan.patch.insert(0, adopt)
        plan.log.append(f"adopted by DaskCluster {cluster_name}")
    return plan


def _status(scaler: Obj, desired: int | None, cond: dict[str, Any], scaled: str | None = None
            ) -> Plan[AutoscalerMemory]:
    meta = scaler["metadata"]
    new: dict[str, Any] = {"observedGeneration": meta.get("generation", 1)}
    if desired is not None:
        new["desiredWorkers"] = desired
    if scaled is not None:
        new["lastScaleTime"] = scaled
    wanted = [conditions.condition(ConditionType.SPEC_VALID, True, Reason.VALID, "", meta.get("generation")), cond]
    return Plan(status=new, conditions=wanted)


def _adoption(scaler: Obj, cluster: Obj) -> Patch | None:
    """Owned by its cluster (deleted with it) and labelled with it, as dask-kubernetes's adoption did."""
    body = specs.adoption(scaler, cluster, naming.Component.AUTOSCALER)
    return Patch(naming.DASKAUTOSCALER, scaler["metadata"]["name"], body) if body is not None else None


class AutoscalerReconciler:
    """One DaskAutoscaler's loop: its memory lives here, and goes with the loop."""

    def __init__(self, ctx: OperatorContext, namespace: str, name: str) -> None:
        self.ctx, self.namespace, self.name = ctx, namespace, name
        self.memory = AutoscalerMemory()

    async def reconcile(self) -> float | None:
        objects, ns = self.ctx.objects, self.namespace
        scaler = await objects.get(DaskAutoscaler, self.name, ns)
        if scaler is None or status.deleting(scaler.raw):
            raise Gone()
        plan = gate(scaler.raw, self.memory, time.monotonic(), self.ctx.settings)
        if plan is None:
            plan = decide(await self._observe(scaler.raw), self.memory, time.monotonic(), self.ctx.settings,
                          now_rfc3339())
        await act(self.ctx, scaler, plan)
        if plan.memory is not None:
            self.memory = plan.memory
        return plan.requeue

    async def _observe(self, scaler: Obj) -> AutoscalerView:
        objects, ns = self.ctx.objects, self.namespace
        cluster_name = scaler["spec"]["cluster"]
        cluster = await objects.get(DaskCluster, cluster_name, ns)
        if cluster is None:
            return AutoscalerView(scaler)
        group = await objects.get(DaskWorkerGroup, _group_name(scaler), ns)
        view = AutoscalerView(scaler, cluster.raw, group.raw if group else None)
        if group is None:
            return view
        autoscalers = await objects.list(DaskAutoscaler, ns, naming.cluster_selector(cluster_name))
        view = replace(view, autoscalers=autoscalers)
        if senior_rival(scaler, autoscalers, view.group) is not None:
            return view
        try:
            target = await self.ctx.scheduler.adaptive_target(ns, cluster_name)
            workers = await self.ctx.scheduler.workers(ns, cluster_name)
        except SchedulerUnreachable:
            return view
        groups = await objects.list(DaskWorkerGroup, ns, naming.cluster_selector(cluster_name))
        pods = await objects.list(Pod, ns, naming.worker_selector(cluster_name))
        return replace(view, target=target, workers=[str(w.get("name", "")) for w in workers.values()],
                       groups=groups, pods=pods)
