"""DaskAutoscaler: size a worker group from the scheduler's adaptive target, between minimum and maximum.

Once per interval (however often events wake the loop): ask the scheduler how many workers it wants
(`adaptive_target`, which weighs queued work against `distributed.adaptive.target-duration`), subtract the
workers of the cluster's other groups, and let `recommend` turn that into a replica count: up at once, down
only after the target stayed lower for a few consecutive samples (hysteresis, as distributed's
`Adaptive.wait_count`) and by at most a quarter of the group per sample (as the reference; both are
`AutoscalerSettings`, `kubernetes.operator.autoscaler.*`), so that a pause
between two batches of tasks does not cost the workers and their data. The result is one patch of the group's
`spec.worker.replicas`; the group's own reconciler retires workers through the scheduler before deleting their
pods. Deleting the autoscaler leaves the group at its current size.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Any

from .. import naming, specs
from ..naming import ConditionType, Reason
from ..resources import DaskAutoscaler, DaskCluster, DaskWorkerGroup
from . import conditions
from .access import SchedulerUnreachable
from .context import OperatorContext
from .kube import now_rfc3339
from .settings import AutoscalerSettings

log = logging.getLogger(__name__)

DEFAULT_POLICY = AutoscalerSettings()
History = tuple[int, ...]  # the clamped targets of the latest consecutive passes that wanted fewer workers


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


def group_target(cluster_target: int, worker_names: Iterable[str], group: str) -> int:
    """The cluster-wide target minus the workers that other groups of the cluster contribute."""
    prefix = f"{group}-worker-"
    others = sum(1 for name in worker_names if not str(name).startswith(prefix))
    return max(0, cluster_target - others)


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or ())


class AutoscalerReconciler:
    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self._history: dict[str, History] = {}  # autoscaler uid -> history (lost on restart: waits again, safely)
        self._reported: dict[str, str] = {}  # autoscaler uid -> last problem posted as an Event
        self._sampled: dict[str, float] = {}  # autoscaler uid -> monotonic time of its last sample

    @property
    def interval(self) -> float:
        return min(self.ctx.settings.autoscaler.interval_seconds, self.ctx.settings.resync_seconds)

    async def reconcile(self, namespace: str, name: str) -> float | None:
        ctx, kube = self.ctx, self.ctx.kube
        scaler = await kube.get(DaskAutoscaler, name, namespace)
        if scaler is None or scaler.raw["metadata"].get("deletionTimestamp"):
            return None
        raw = scaler.raw
        uid = raw["metadata"]["uid"]
        spec = raw["spec"]
        minimum, maximum = int(spec["minimum"]), int(spec["maximum"])
        if minimum > maximum:
            await self._problem(scaler, ConditionType.SPEC_VALID, Reason.INVALID_BOUNDS,
                                f"spec.minimum ({minimum}) is greater than spec.maximum ({maximum})")
            return None
        # One sample per interval, however often events wake the loop (its own status writes do): the
        # hysteresis and the rate limit count samples, so samples must be evenly spaced.
        since = time.monotonic() - self._sampled.get(uid, -math.inf)
        if since < self.interval:
            return self.interval - since
        self._sampled[uid] = time.monotonic()
        cluster_name = spec["cluster"]
        cluster = await kube.get(DaskCluster, cluster_name, namespace)
        if cluster is None:
            await self._problem(scaler, ConditionType.READY, Reason.CLUSTER_MISSING,
                                f"DaskCluster {cluster_name} does not exist")
            return ctx.settings.resync_seconds
        await self._adopt(scaler, cluster)
        group_name = spec.get("workerGroup") or naming.default_worker_group_name(cluster_name)
        group = await kube.get(DaskWorkerGroup, group_name, namespace)
        if group is None or group.raw["spec"].get("cluster") != cluster_name:
            await self._problem(scaler, ConditionType.READY, Reason.WORKER_GROUP_MISSING,
                                f"DaskWorkerGroup {group_name} of cluster {cluster_name} does not exist")
            return ctx.settings.resync_seconds
        rival = await self._senior_rival(scaler, cluster_name, group_name)
        if rival is not None:
            await self._problem(scaler, ConditionType.READY, Reason.CONFLICTING_AUTOSCALER,
                                f"DaskAutoscaler {rival} already scales {group_name}; only the oldest autoscaler "
                                "of a worker group acts (delete one of them)")
            return ctx.settings.resync_seconds
        try:
            target = await ctx.scheduler.adaptive_target(namespace, cluster_name)
            workers = await ctx.scheduler.workers(namespace, cluster_name)
        except SchedulerUnreachable as err:
            # Expected while a cluster starts: a condition, not an Event every few seconds.
            log.debug("autoscaler %s/%s: scheduler not reachable: %s", namespace, name, err)
            await self._status(scaler, None, [conditions.condition(
                ConditionType.READY, False, Reason.SCHEDULER_STARTING, "the scheduler does not answer yet")])
            return self.interval
        wanted = group_target(target, (w.get("name", "") for w in workers.values()), group_name)
        current = int(group.raw["spec"]["worker"].get("replicas", 1))
        replicas, self._history[uid] = recommend(current, wanted, minimum, maximum, self._history.get(uid, ()),
                                                 ctx.settings.autoscaler)
        scaled = None
        if replicas != current:
            await group.patch({"spec": {"worker": {"replicas": replicas}}})
            scaled = now_rfc3339()
            message = (f"scaled {group_name} {'up' if replicas > current else 'down'} from {current} to {replicas} "
                       f"workers (scheduler target {target}, bounds {minimum}..{maximum})")
            log.info("autoscaler %s/%s %s", namespace, name, message)
            await kube.event(scaler, Reason.AUTOSCALED, message)
        ready = conditions.condition(ConditionType.READY, True, Reason.AUTOSCALED,
                                     f"scaling {group_name} between {minimum} and {maximum} workers")
        await self._status(scaler, replicas, [ready], scaled)
        self._reported.pop(uid, None)
        return self.interval

    async def _senior_rival(self, scaler: DaskAutoscaler, cluster: str, group: str) -> str | None:
        """The name of an older autoscaler of the same worker group, if any: two would fight (like HPA's
        AmbiguousSelector), so the oldest acts and the others say why they do not."""
        meta = scaler.raw["metadata"]
        mine = (meta.get("creationTimestamp", ""), meta["name"])
        default = naming.default_worker_group_name(cluster)
        rivals = []
        for other in await self.ctx.kube.list(DaskAutoscaler, meta["namespace"], naming.cluster_selector(cluster)):
            ospec, ometa = other.raw["spec"], other.raw["metadata"]
            if (ometa["uid"] == meta["uid"] or ometa.get("deletionTimestamp") or ospec.get("cluster") != cluster
                    or (ospec.get("workerGroup") or default) != group):
                continue
            if (ometa.get("creationTimestamp", ""), ometa["name"]) < mine:
                rivals.append(ometa["name"])
        return min(rivals) if rivals else None

    async def _status(self, scaler: DaskAutoscaler, desired: int | None, wanted: list[dict[str, Any]],
                      scaled: str | None = None) -> None:
        meta = scaler.raw["metadata"]
        wanted = [conditions.condition(ConditionType.SPEC_VALID, True, Reason.VALID, "", meta.get("generation")),
                  *wanted]
        current = scaler.raw.get("status") or {}
        new: dict[str, Any] = {"observedGeneration": meta.get("generation", 1)}
        if desired is not None:
            new["desiredWorkers"] = desired
        if scaled is not None:
            new["lastScaleTime"] = scaled
        if not conditions.same(current.get("conditions"), wanted):
            new["conditions"] = conditions.merge(current.get("conditions"), wanted)
        await self.ctx.kube.patch_status(scaler, new)

    async def _problem(self, scaler: DaskAutoscaler, type_: str, reason: str, message: str) -> None:
        """A condition saying why the autoscaler does nothing, and one Warning Event per distinct problem."""
        meta = scaler.raw["metadata"]
        current = scaler.raw.get("status") or {}
        wanted = [conditions.condition(type_, False, reason, message, meta.get("generation"))]
        if type_ != ConditionType.SPEC_VALID:
            wanted.insert(0, conditions.condition(ConditionType.SPEC_VALID, True, Reason.VALID, "",
                                                  meta.get("generation")))
        else:
            wanted.append(conditions.condition(ConditionType.READY, False, reason, message))
        if not conditions.same(current.get("conditions"), wanted):
            await self.ctx.kube.patch_status(scaler, {"observedGeneration": meta.get("generation", 1),
                                                      "conditions": conditions.merge(current.get("conditions"),
                                                                                     wanted)})
        if self._reported.get(meta["uid"]) != message:
            self._reported[meta["uid"]] = message
            log.warning("DaskAutoscaler %s/%s: %s", meta["namespace"], meta["name"], message)
            await self.ctx.kube.event(scaler, reason, message, warning=True)

    async def _adopt(self, scaler: DaskAutoscaler, cluster: DaskCluster) -> None:
        """Owned by its cluster (deleted with it) and labelled with it, as the reference's adoption did."""
        meta = scaler.raw["metadata"]
        labels = meta.get("labels") or {}
        if _owned_by(scaler.raw, cluster.raw["metadata"]["uid"]) and labels.get(naming.CLUSTER_LABEL) == cluster.name:
            return
        refs = [r for r in meta.get("ownerReferences") or () if r.get("controller") is not True]
        refs.append(specs.owner_reference(cluster.raw))
        await scaler.patch({"metadata": {"ownerReferences": refs, "labels": {
            naming.CLUSTER_LABEL: cluster.name, naming.COMPONENT_LABEL: naming.Component.AUTOSCALER}}})
        log.info("DaskAutoscaler %s/%s adopted by DaskCluster %s", meta["namespace"], meta["name"], cluster.name)
