"""DaskWorkerGroup: keep exactly `spec.worker.replicas` worker pods, scaling down without losing data.

Each pass observes the group, its cluster and its pods (fixed labels and our ownerReference, so a user's labels
cannot confuse it), then `decide` plans with `worker_pods.plan_worker_group`: delete what never joined or has
finished, retire connected workers through the scheduler and delete only the pods it retired, create the missing
pods concurrently. The scheduler is asked who is connected only once the pods that need no answer from it are
being created: a scheduler that is not up yet must not delay the workers that will join it. So a pass that
creates or deletes pods acts on that first, looks again, asks the scheduler, and decides the rest (retirements,
workers whose pods are gone, the status). A group created by `kubectl apply` is adopted by its cluster.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kr8s.asyncio.objects import Pod

from .. import naming, specs, status, validation
from ..kinds import DaskCluster, DaskWorkerGroup
from ..naming import ConditionType, Reason
from . import conditions, evictions, rollout, spec_check
from .act import act
from .context import OperatorContext
from .loops import Gone
from .objects import now_rfc3339
from .plan import Delete, Event, Patch, Plan, SchedulerCall
from .scheduler_rpc import SchedulerUnreachable
from .settings import OperatorSettings
from .worker_pods import (
    PodPlan,
    PodView,
    WorkerView,
    capped_replicas,
    joined,
    overdue_workers,
    plan_worker_group,
    podless_workers,
)

Obj = Mapping[str, Any]
CLUSTERS = naming.PLURALS[naming.DASKCLUSTER]
# How long a connected worker may have no pod before the scheduler is told it is gone. A pod deleted the normal
# way disappears only after its process stopped, so its worker disconnected first; one that stays connected was
# force-deleted on an unreachable node, and Dask alone would keep its tasks until worker-ttl (5 minutes).
PODLESS_WORKER_SECONDS = 15.0


@dataclass(frozen=True)
class GroupMemory:
    """What a group's loop keeps between passes."""

    validated: spec_check.Checked | None = None
    reported: str | None = None  # the last invalid-spec message posted as an Event
    deleted: frozenset[str] = frozenset()  # uids of pods this operator deleted itself (so not "lost")
    replaced: frozenset[str] = frozenset()  # uids of lost pods already reported replaced
    podless: Mapping[str, float] = field(default_factory=dict)  # connected worker with no pod -> first seen
    evicted: frozenset[str] = frozenset()  # uids of pods deleted by someone else whose workers were retired


@dataclass(frozen=True)
class GroupView:
    """What a pass read. `workers` is None both before the scheduler was asked and when it did not answer."""

    group: Obj
    cluster: Obj | None = None
    spec: spec_check.SpecCheck = field(default_factory=spec_check.SpecCheck)
    pods: Sequence[Obj] = ()  # the group's own worker pods
    cluster_pods: Sequence[Obj] = ()  # every worker pod of the cluster, terminating ones and creates in flight too
    other_groups: Mapping[str, int] | None = None  # desired replicas of the cluster's groups, read under the cap
    workers: Sequence[WorkerView] | None = None
    asked: bool = False  # whether the scheduler was asked
    now: str = ""  # RFC 3339, for grace periods


def live_counts(cluster_pods: Sequence[Obj]) -> dict[str, int]:
    """Live worker pods per group name."""
    live: dict[str, int] = {}
    for pod in cluster_pods:
        if PodView.from_pod(pod).live:
            owner = (pod["metadata"].get("labels") or {}).get(naming.WORKERGROUP_LABEL, "")
            live[owner] = live.get(owner, 0) + 1
    return live


def wanted(group: Obj) -> int:
    return int(group["spec"]["worker"].get("replicas", 1))


def within_cap(group: Obj, cluster_pods: Sequence[Obj], cap: int) -> bool:
    """The common case: the group's wish fits under `max-workers-per-cluster` with what the others run, so the
    other groups' specs need not be read."""
    name = group["metadata"]["name"]
    return wanted(group) + sum(n for g, n in live_counts(cluster_pods).items() if g != name) <= cap


def desired(view: GroupView, cap: int) -> int:
    """The group's replicas under `max-workers-per-cluster`, shared by all the cluster's groups."""
    if view.other_groups is None:
        return wanted(view.group)
    name = view.group["metadata"]["name"]
    return capped_replicas(name, {**view.other_groups, name: wanted(view.group)}, live_counts(view.cluster_pods), cap)


def why_lost(pod: Obj) -> str:
    """How a pod was lost, in the words of its status: evicted from a node, deleted, or finished."""
    node = (pod.get("spec") or {}).get("nodeName") or "no node"
    disruption = status.condition(pod, "DisruptionTarget")
    if disruption.get("status") == "True":
        return f"{disruption.get('reason', 'disrupted')} on node {node}: {disruption.get('message', '')}".rstrip(": ")
    if status.deleting(pod):
        return f"deleted, still terminating on node {node}"
    return f"{status.phase(pod)} on node {node}"


def decide(view: GroupView, memory: GroupMemory, now: float, settings: OperatorSettings) -> Plan[GroupMemory]:
    """The next step of a worker group. Pure: `now` is monotonic, `view.now` the wall time."""
    group = view.group
    cluster_name = group["spec"]["cluster"]
    if view.cluster is None:
        return _status(group, 0, 0, [conditions.condition(
            ConditionType.READY, False, Reason.CLUSTER_MISSING, f"DaskCluster {cluster_name} does not exist")],
            requeue=settings.resync_seconds)
    adopt = _adoption(group, view.cluster)
    if view.spec.error is not None:
        invalid = _invalid(group, memory, view.spec.error)
        invalid.patch = [p for p in (adopt,) if p is not None]
        return invalid
    memory = replace(memory, validated=view.spec.valid or memory.validated)
    views = [PodView.from_pod(p) for p in view.pods]
    target = desired(view, settings.max_workers_per_cluster)
    template = rollout.template_hash(group["spec"]["worker"])
    old = rollout.outdated(view.pods, template)
    if old:
        surge, unavailable = rollout.bounds(group["spec"]["worker"], target)
        pod_plan = rollout.step(target, views, old, view.workers if view.asked else None, surge, unavailable)
    else:
        pod_plan = plan_worker_group(target, views, view.workers if view.asked else None)
    plan: Plan[GroupMemory] = Plan(patch=[p for p in (adopt,) if p is not None])
    if not view.asked and pod_plan.waiting:
        # Connected workers must go: which ones, only the scheduler can say.
        plan.needs_scheduler, plan.memory = True, memory
        return plan
    memory = _pod_actions(plan, view, pod_plan, memory, settings, template, rolling=bool(old))
    if not view.asked:
        plan.needs_scheduler, plan.memory = True, memory
        return plan
    workers = view.workers
    if workers is not None:
        overdue = overdue_workers(views, workers, view.now)
        if overdue:
            plan.scheduler.append(SchedulerCall("remove", cluster_name, {n: n for n in overdue}, Event(
                Reason.WORKERS_LOST, "removed {count} worker(s) from the scheduler, still connected after their "
                "pods' grace period (their node is unreachable); what they held is recomputed: {names}", True)))
        memory = _podless(plan, view, workers, memory, now)
        memory = _evicted(plan, view, workers, memory)
    live = [v for v in views if v.live]
    leaving = set(pod_plan.delete) | set(pod_plan.retire)
    replicas = len([v for v in live if v.name not in leaving]) + pod_plan.create
    ready = len(joined(live, workers)) if workers is not None else 0
    wanted_conditions = _conditions(target, ready, [v.name for v in live if v.unschedulable], workers is not None,
                                    view.pods)
    status_plan = _status(group, replicas, ready, wanted_conditions)
    plan.status, plan.conditions, plan.wake_on_status = status_plan.status, status_plan.conditions, \
        status_plan.wake_on_status
    updated, total = rollout.progress(view.pods, template)
    plan.status["updatedReplicas"] = updated
    assert plan.conditions is not None
    plan.conditions.append(_rollout_condition(updated, total, old))
    if not pod_plan.empty or pod_plan.waiting or ready != target or old:
        plan.requeue = 1.0
    elif memory.podless:
        plan.requeue = max(1.0, PODLESS_WORKER_SECONDS - (now - min(memory.podless.values())))
    plan.memory = memory
    return plan


def _rollout_condition(updated: int, total: int, old: set[str]) -> dict[str, Any]:
    if old:
        return conditions.condition(ConditionType.WORKERS_UPDATED, False, Reason.ROLLING_OUT, (
            f"{updated}/{total} worker pods on the current template; the others are retired through the "
            "scheduler (their data moves first) and replaced, within maxSurge and maxUnavailable"))
    return conditions.condition(ConditionType.WORKERS_UPDATED, True, Reason.ROLLED_OUT,
                                "every worker pod is on the current template")


def _pod_actions(plan: Plan[GroupMemory], view: GroupView, pod_plan: PodPlan, memory: GroupMemory,
                 settings: OperatorSettings, template: str, rolling: bool) -> GroupMemory:
    """Creates, deletes and retirements of the pod plan, into `plan`; the memory that goes with them."""
    group, cluster = view.group, view.cluster
    assert cluster is not None
    by_name = {p["metadata"]["name"]: p for p in view.pods}
    uids = {p["metadata"]["uid"] for p in view.pods}
    finished = {n for n, p in by_name.items() if status.finished(p)}
    deleted = (memory.deleted & uids) | {by_name[n]["metadata"]["uid"] for n in pod_plan.delete + pod_plan.retire
                                         if n not in finished}
    plan.delete += [Delete("Pod", n) for n in pod_plan.delete]
    unjoined = [n for n in pod_plan.delete if n not in finished]
    if unjoined:  # e.g. retired by an operator killed before it could delete them: say so
        plan.events.append(Event(Reason.SCALED_DOWN, f"deleted {len(unjoined)} worker pod(s) whose worker was not "
                                                     "connected to the scheduler (never joined, or already retired): "
                                                     f"{', '.join(unjoined)}"))
    if pod_plan.retire:
        assert view.workers is not None
        connected = joined([PodView.from_pod(by_name[n]) for n in pod_plan.retire], view.workers)
        plan.scheduler.append(SchedulerCall("retire", group["spec"]["cluster"], {
            connected[n].name: n for n in pod_plan.retire}, Event(
            Reason.ROLLING_OUT, "retired {count} worker(s) on an older template through the scheduler (their data "
                                "moved first) and deleted their pods: {names}") if rolling else Event(
            Reason.WORKERS_RETIRED, "retired {count} worker(s) through the scheduler (their data moved first) and "
                                    "deleted their pods: {names}")))
    replaced = memory.replaced & uids
    if pod_plan.create:
        tls_secret = specs.tls_secret_of(cluster)
        plan.create = [rollout.stamp(specs.worker_pod(group, group["spec"]["cluster"], settings.cluster_domain,
                                                      tls_secret=tls_secret,
                                                      grace_seconds=settings.worker_grace_seconds), template)
                       for _ in range(pod_plan.create)]
        plan.tolerate_failed_creates = True
        lost = [p for p in view.pods if p["metadata"]["uid"] not in deleted | replaced
                and (status.deleting(p) or status.finished(p))]
        if lost:
            replaced |= {p["metadata"]["uid"] for p in lost}
            plan.replacement_event = Event(
                Reason.WORKER_REPLACED, f"created {pod_plan.create} worker pod(s) to replace {len(lost)} lost: "
                + "; ".join(f"{p['metadata']['name']} ({why_lost(p)})" for p in lost))
    return replace(memory, deleted=frozenset(deleted), replaced=frozenset(replaced))


def _podless(plan: Plan[GroupMemory], view: GroupView, workers: Sequence[WorkerView], memory: GroupMemory,
             now: float) -> GroupMemory:
    """Tell the scheduler that workers whose pods no longer exist are gone, once they have been so for
    PODLESS_WORKER_SECONDS (see worker_pods.podless_workers)."""
    names = podless_workers(view.group["metadata"]["name"], {p["metadata"]["name"] for p in view.cluster_pods},
                            workers)
    seen = {n: memory.podless.get(n, now) for n in names}
    due = [n for n in names if now - seen[n] >= PODLESS_WORKER_SECONDS]
    if due:
        plan.scheduler.append(SchedulerCall("remove", view.group["spec"]["cluster"], {n: n for n in due}, Event(
            Reason.WORKERS_LOST, "removed {count} worker(s) from the scheduler, still connected "
            f"{PODLESS_WORKER_SECONDS:.0f}s after their pods were deleted without waiting for them (force-deleted, "
            "their node unreachable); what they held is recomputed: {names}", True)))
    return replace(memory, podless=seen)


def _evicted(plan: Plan[GroupMemory], view: GroupView, workers: Sequence[WorkerView], memory: GroupMemory
             ) -> GroupMemory:
    """Retire at once the workers of pods someone else deleted, while their preStop hooks keep them alive."""
    retire = evictions.to_retire(view.pods, workers, view.now, memory.deleted, memory.evicted)
    current = evictions.uids(view.pods, {p["metadata"]["name"] for p in view.pods})
    if not retire:
        return replace(memory, evicted=memory.evicted & current)
    plan.scheduler.append(SchedulerCall("retire", view.group["spec"]["cluster"], retire, Event(
        Reason.EVICTED_WORKERS_RETIRED, "retired {count} worker(s) whose pods were deleted by someone else "
        "(evicted, drained, deleted by hand): their data moved to other workers during the pods' grace period: "
        "{names}"), delete_pods=False))
    return replace(memory, evicted=(memory.evicted & current) | evictions.uids(view.pods, set(retire.values())))


def _conditions(desired: int, ready: int, unschedulable: list[str], reachable: bool,
                pods: Sequence[Obj]) -> list[dict[str, Any]]:
    if unschedulable:
        first = next((p for p in pods if p["metadata"]["name"] == unschedulable[0]), None)
        message = (status.unscheduled(first) or {}).get("message", "")
        cond = conditions.condition(ConditionType.WORKERS_READY, False, Reason.WORKERS_UNSCHEDULABLE,
                                    f"{len(unschedulable)} worker pod(s) cannot be scheduled: {message}")
    elif not reachable:
        cond = conditions.condition(ConditionType.WORKERS_READY, False, Reason.SCHEDULER_STARTING,
                                    "the scheduler does not answer yet")
    else:
        ok = ready >= desired
        cond = conditions.condition(ConditionType.WORKERS_READY, ok,
                                    Reason.WORKERS_CONNECTED if ok else Reason.WORKERS_STARTING,
                                    f"{ready}/{desired} workers connected")
    return [conditions.condition(ConditionType.SPEC_VALID, True, Reason.VALID), cond,
            conditions.condition(ConditionType.READY, cond["status"] == "True", cond["reason"], cond["message"])]


def _status(group: Obj, replicas: int, ready: int, wanted_conditions: list[dict[str, Any]],
            requeue: float | None = None) -> Plan[GroupMemory]:
    meta = group["metadata"]
    cluster = group["spec"]["cluster"]
    new = {"replicas": max(replicas, 0), "readyReplicas": ready,
           "selector": naming.selector_string(naming.worker_selector(cluster, meta["name"])),
           "observedGeneration": meta.get("generation", 1)}
    # The cluster aggregates its default group's counts: let it see the change now.
    return Plan(status=new, conditions=wanted_conditions, wake_on_status=[(CLUSTERS, meta["namespace"], cluster)],
                requeue=requeue)


def _invalid(group: Obj, memory: GroupMemory, message: str) -> Plan[GroupMemory]:
    meta = group["metadata"]
    plan = _status(group, 0, 0, [
        conditions.condition(ConditionType.SPEC_VALID, False, Reason.INVALID_SPEC, message, meta.get("generation")),
        conditions.condition(ConditionType.READY, False, Reason.INVALID_SPEC, message)])
    plan.memory = replace(memory, reported=plan.warn_once(memory.reported, Reason.INVALID_SPEC, message))
    return plan


def _adoption(group: Obj, cluster: Obj) -> Patch | None:
    body = specs.adoption(group, cluster, naming.Component.WORKERGROUP)
    return Patch(naming.DASKWORKERGROUP, group["metadata"]["name"], body) if body is not None else None


class WorkerGroupReconciler:
    """One DaskWorkerGroup's loop: its memory lives here, and goes with the loop."""

    def __init__(self, ctx: OperatorContext, namespace: str, name: str) -> None:
        self.ctx, self.namespace, self.name = ctx, namespace, name
        self.memory = GroupMemory()

    async def reconcile(self) -> float | None:
        observed = await self._observe()
        if observed is None:
            raise Gone()
        obj, view = observed
        plan = decide(view, self.memory, time.monotonic(), self.ctx.settings)
        if plan.needs_scheduler:
            if plan.acts:  # pods that need no scheduler first; then look again
                await self._act(obj, plan)
                observed = await self._observe()
                if observed is None:
                    raise Gone()
                obj, view = observed
            view = replace(view, workers=await self._workers(view), asked=True)
            plan = decide(view, self.memory, time.monotonic(), self.ctx.settings)
        await self._act(obj, plan)
        return plan.requeue

    async def _act(self, obj: DaskWorkerGroup, plan: Plan[GroupMemory]) -> None:
        await act(self.ctx, obj, plan)
        if plan.memory is not None:
            self.memory = plan.memory

    async def _observe(self) -> tuple[DaskWorkerGroup, GroupView] | None:
        objects, ns = self.ctx.objects, self.namespace
        group = await objects.get(DaskWorkerGroup, self.name, ns)
        if group is None or status.deleting(group.raw):
            return None
        raw = group.raw
        cluster_name = raw["spec"]["cluster"]
        cluster = await objects.get(DaskCluster, cluster_name, ns)
        if cluster is None:
            return group, GroupView(raw)
        worker = {k: v for k, v in raw["spec"]["worker"].items() if k != "replicas"}
        checked = await spec_check.check(
            objects, (raw["metadata"]["uid"], spec_check.fingerprint(worker)), self.memory.validated,
            validation.pod_spec_problems(worker.get("spec"), "spec.worker.spec"),
            lambda: self._dry_runs(raw, cluster_name, worker))
        if checked.error is not None:
            return group, GroupView(raw, cluster.raw, checked)
        # Other groups' creates in flight count against the cap too: they may be deciding at this very moment.
        cluster_pods = await objects.list(Pod, ns, naming.worker_selector(cluster_name), creating=True)
        others = None
        if not within_cap(raw, cluster_pods, self.ctx.settings.max_workers_per_cluster):
            groups = await objects.list(DaskWorkerGroup, ns, naming.cluster_selector(cluster_name))
            others = {g["metadata"]["name"]: wanted(g) for g in groups if g["spec"].get("cluster") == cluster_name}
        pods = [p for p in cluster_pods if status.owned_by(p, raw["metadata"]["uid"])]
        return group, GroupView(raw, cluster.raw, checked, pods, cluster_pods, others, now=now_rfc3339())

    def _dry_runs(self, raw: Obj, cluster_name: str, worker: Obj) -> list[tuple[dict[str, Any], str]]:
        """A worker pod, as the API server would be asked to create it; none when this group's cluster has just
        had the same template checked (spec_check.Vouched). Only called when the spec is not known valid."""
        if spec_check.worker_template(self.namespace, self.name, cluster_name, worker) in self.ctx.vouched:
            return []
        return [(specs.worker_pod(raw, cluster_name, self.ctx.settings.cluster_domain,
                                  grace_seconds=self.ctx.settings.worker_grace_seconds),
                 "spec.worker.spec: the API server would reject a worker pod")]

    async def _workers(self, view: GroupView) -> list[WorkerView] | None:
        """Connected workers, or None when the scheduler does not answer (then nothing connected is touched)."""
        try:
            identity = await self.ctx.scheduler.workers(self.namespace, view.group["spec"]["cluster"])
        except SchedulerUnreachable:
            return None
        return [WorkerView.from_identity(w) for w in identity.values()]
