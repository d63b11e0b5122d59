"""DaskWorkerGroup: keep exactly `spec.worker.replicas` worker pods, scaling down without losing data.

Each pass: find the group's pods (fixed labels and our ownerReference, so a user's labels cannot confuse
it), ask the scheduler who is connected, plan (planning.py), then act: delete what never joined or has
finished, retire connected workers through the scheduler and delete only the pods it retired, create the
missing pods concurrently. A group created by `kubectl apply` is adopted by its cluster.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kr8s.asyncio.objects import Pod

from .. import naming, specs, validation
from ..naming import ConditionType, Reason
from ..resources import DaskCluster, DaskWorkerGroup
from . import conditions
from .access import SchedulerUnreachable
from .context import OperatorContext
from .kube import fingerprint, now_rfc3339
from .planning import (
    TERMINAL_PHASES,
    PodView,
    WorkerView,
    capped_replicas,
    joined,
    overdue_workers,
    plan_worker_group,
    podless_workers,
)

log = logging.getLogger(__name__)
PLURAL = naming.PLURALS[naming.DASKWORKERGROUP]
# How long a connected worker may have no pod before the scheduler is told it is gone. A pod deleted the normal
# way disappears only after its process stopped, so its worker disconnected first; one that stays connected was
# force-deleted on an unreachable node, and Dask alone would keep its tasks until worker-ttl (5 minutes).
PODLESS_WORKER_SECONDS = 15.0


def _owned_by(pod: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or ())


def _why_lost(pod: dict[str, Any]) -> str:
    """How a pod was lost, in the words of its status: evicted from a node, deleted, or finished."""
    status = pod.get("status") or {}
    node = (pod.get("spec") or {}).get("nodeName") or "no node"
    disruption = next((c for c in status.get("conditions") or ()
                       if c.get("type") == "DisruptionTarget" and c.get("status") == "True"), None)
    if disruption is not None:
        return f"{disruption.get('reason', 'disrupted')} on node {node}: {disruption.get('message', '')}".rstrip(": ")
    if pod["metadata"].get("deletionTimestamp"):
        return f"deleted, still terminating on node {node}"
    return f"{status.get('phase')} on node {node}"


class WorkerGroupReconciler:
    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self._validated: dict[tuple[str, str], tuple[str, str]] = {}  # (ns, name) -> (uid, spec fingerprint)
        self._reported: dict[tuple[str, str], str] = {}
        # Pods this operator deleted itself, and lost pods already reported replaced (by uid), per group.
        self._deleted: dict[tuple[str, str], set[str]] = {}
        self._replaced: dict[tuple[str, str], set[str]] = {}
        # Connected workers of a group with no pod at all -> when first seen so (time.monotonic()).
        self._podless: dict[tuple[str, str], dict[str, float]] = {}

    async def reconcile(self, namespace: str, name: str) -> float | None:
        ctx, kube = self.ctx, self.ctx.kube
        group = await kube.get(DaskWorkerGroup, name, namespace)
        if group is None or group.raw["metadata"].get("deletionTimestamp"):
            self._validated.pop((namespace, name), None)
            self._deleted.pop((namespace, name), None)
            self._replaced.pop((namespace, name), None)
            self._podless.pop((namespace, name), None)
            return None
        raw = group.raw
        meta = raw["metadata"]
        cluster_name = raw["spec"]["cluster"]
        cluster = await kube.get(DaskCluster, cluster_name, namespace)
        if cluster is None:
            await self._set_status(group, 0, 0, cluster_name, [conditions.condition(
                ConditionType.READY, False, Reason.CLUSTER_MISSING, f"DaskCluster {cluster_name} does not exist")])
            return ctx.settings.resync_seconds
        await self._adopt(group, cluster)
        error = await self._validate(group, cluster_name)
        if error:
            await self._report_error(group, cluster_name, error)
            return None
        all_pods = await kube.list_pods(namespace, naming.worker_selector(cluster_name))
        pods = [p for p in all_pods if _owned_by(p.raw, meta["uid"])]
        views = [PodView.from_pod(p.raw) for p in pods]
        desired = await self._capped(group, cluster_name, all_pods)
        # Scaling up and clearing finished pods needs no scheduler: decide without it first, and ask it only
        # when connected workers must go. (It is asked anyway below, after acting, for the status.)
        plan = plan_worker_group(desired, views, None)
        workers: list[WorkerView] | None = None
        if plan.waiting:
            workers = await self._workers(namespace, cluster_name)
            plan = plan_worker_group(desired, views, workers)
        by_name = {p.name: p for p in pods}
        ours = self._deleted.setdefault((namespace, name), set())
        ours.intersection_update(p.raw["metadata"]["uid"] for p in pods)
        finished = {v.name for v in views if v.phase in TERMINAL_PHASES}
        ours.update(by_name[n].raw["metadata"]["uid"] for n in plan.delete + plan.retire if n not in finished)
        if plan.delete:
            await kube.delete_many(by_name[n] for n in plan.delete)
            unjoined = [n for n in plan.delete if n not in finished]
            if unjoined:  # e.g. retired by an operator killed before it could delete them: say so
                message = (f"deleted {len(unjoined)} worker pod(s) whose worker was not connected to the scheduler "
                           f"(never joined, or already retired): {', '.join(unjoined)}")
                log.info("DaskWorkerGroup %s/%s: %s", namespace, name, message)
                await kube.event(group, Reason.SCALED_DOWN, message)
        if plan.retire:
            assert workers is not None
            connected = joined(views, workers)
            names = [connected[p].name for p in plan.retire]
            retired = set(await ctx.scheduler.retire_workers(namespace, cluster_name, names))
            done = [p for p in plan.retire if connected[p].name in retired]
            await kube.delete_many(by_name[n] for n in done)
            if done:
                await kube.event(group, Reason.WORKERS_RETIRED,
                                 f"retired {len(done)} worker(s) through the scheduler (their data moved first) and "
                                 f"deleted their pods: {', '.join(done)}")
        if plan.create:
            tls_secret = specs.tls_secret_of(cluster.raw)
            bodies = [specs.worker_pod(raw, cluster_name, ctx.settings.cluster_domain, tls_secret=tls_secret)
                      for _ in range(plan.create)]
            results = await kube.create_many(bodies)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                log.warning("creating %d of %d worker pods of %s/%s failed: %s", len(failures), len(bodies),
                            namespace, name, failures[0])
            if len(failures) < len(bodies):
                await self._report_replacements(group, pods, len(bodies) - len(failures))
        if workers is None:
            workers = await self._workers(namespace, cluster_name)
        podless_recheck = None
        if workers is not None:
            await self._remove_overdue(group, cluster_name, views, workers)
            podless_recheck = await self._remove_podless(group, cluster_name, {p.name for p in all_pods}, workers)
        live = [v for v in views if not v.deleting and v.phase not in ("Succeeded", "Failed")]
        count = len(live) - len(plan.delete) - (len(plan.retire)) + plan.create
        ready = len(joined(live, workers)) if workers is not None else 0
        unschedulable = [v.name for v in live if v.unschedulable]
        wanted = self._conditions(desired, ready, unschedulable, workers is not None, pods)
        await self._set_status(group, max(count, 0), ready, cluster_name, wanted)
        if not plan.empty or plan.waiting or ready != desired:
            return 1.0
        return podless_recheck

    async def _remove_podless(self, group: DaskWorkerGroup, cluster: str, pod_names: set[str],
                              workers: list[WorkerView]) -> float | None:
        """Tell the scheduler that workers whose pods no longer exist are gone, once they have been so for
        PODLESS_WORKER_SECONDS (see podless_workers); when to look again while some are waiting, else None."""
        now = time.monotonic()
        names = podless_workers(group.name, pod_names, workers)
        seen = self._podless.setdefault((group.namespace, group.name), {})
        for gone in set(seen) - set(names):
            del seen[gone]
        for n in names:
            seen.setdefault(n, now)
        due = [n for n in names if now - seen[n] >= PODLESS_WORKER_SECONDS]
        if due:
            try:
                removed = await self.ctx.scheduler.remove_workers(group.namespace, cluster, due)
            except SchedulerUnreachable:
                return 1.0
            for n in removed:
                seen.pop(n, None)
            if removed:
                message = (f"removed {len(removed)} worker(s) from the scheduler, still connected "
                           f"{PODLESS_WORKER_SECONDS:.0f}s after their pods were deleted without waiting for them "
                           f"(force-deleted, their node unreachable); what they held is recomputed: "
                           f"{', '.join(removed)}")
                log.warning("DaskWorkerGroup %s/%s: %s", group.namespace, group.name, message)
                await self.ctx.kube.event(group, Reason.WORKERS_LOST, message, warning=True)
        if not seen:
            return None
        return max(1.0, PODLESS_WORKER_SECONDS - (now - min(seen.values())))

    async def _remove_overdue(self, group: DaskWorkerGroup, cluster: str, views: list[PodView],
                              workers: list[WorkerView]) -> None:
        """Tell the scheduler that workers whose pods are past their grace period are gone (see overdue_workers)."""
        overdue = overdue_workers(views, workers, now_rfc3339())
        if not overdue:
            return
        try:
            removed = await self.ctx.scheduler.remove_workers(group.namespace, cluster, overdue)
        except SchedulerUnreachable:
            return
        if removed:
            message = (f"removed {len(removed)} worker(s) from the scheduler, still connected after their pods' "
                       f"grace period (their node is unreachable); what they held is recomputed: {', '.join(removed)}")
            log.warning("DaskWorkerGroup %s/%s: %s", group.namespace, group.name, message)
            await self.ctx.kube.event(group, Reason.WORKERS_LOST, message, warning=True)

    async def _report_replacements(self, group: DaskWorkerGroup, pods: list[Pod], created: int) -> None:
        """Say (log and Event `WorkerReplaced`) which lost pods new ones replace: evicted, deleted by someone else,
        or finished. Each lost pod once; pods this operator deleted itself are not lost."""
        key = (group.namespace, group.name)
        ours = self._deleted.get(key, set())
        reported = self._replaced.setdefault(key, set())
        reported.intersection_update(p.raw["metadata"]["uid"] for p in pods)
        lost = [p for p in pods if p.raw["metadata"]["uid"] not in ours | reported
                and (p.raw["metadata"].get("deletionTimestamp")
                     or (p.raw.get("status") or {}).get("phase") in TERMINAL_PHASES)]
        if not lost:
            return
        reported.update(p.raw["metadata"]["uid"] for p in lost)
        message = (f"created {created} worker pod(s) to replace {len(lost)} lost: "
                   + "; ".join(f"{p.name} ({_why_lost(p.raw)})" for p in lost))
        log.info("DaskWorkerGroup %s/%s: %s", *key, message)
        await self.ctx.kube.event(group, Reason.WORKER_REPLACED, message)

    async def _capped(self, group: DaskWorkerGroup, cluster: str, cluster_pods: list[Pod]) -> int:
        """This group's replicas under `max-workers-per-cluster`, shared by all the cluster's groups."""
        wanted = int(group.raw["spec"]["worker"].get("replicas", 1))
        cap = self.ctx.settings.max_workers_per_cluster
        live: dict[str, int] = {}
        for pod in cluster_pods:
            view = PodView.from_pod(pod.raw)
            if not view.deleting and view.phase not in TERMINAL_PHASES:
                owner = pod.raw["metadata"].get("labels", {}).get(naming.WORKERGROUP_LABEL, "")
                live[owner] = live.get(owner, 0) + 1
        if wanted + sum(n for g, n in live.items() if g != group.name) <= cap:
            return wanted  # the common case: no need to look at the other groups' specs
        groups = await self.ctx.kube.list(DaskWorkerGroup, group.namespace, naming.cluster_selector(cluster))
        desired = {g.name: int(g.raw["spec"]["worker"].get("replicas", 1)) for g in groups
                   if g.raw["spec"].get("cluster") == cluster}
        desired[group.name] = wanted
        return capped_replicas(group.name, desired, live, cap)

    async def _workers(self, namespace: str, cluster: str) -> list[WorkerView] | None:
        """Connected workers, or None when the scheduler does not answer (then nothing connected is touched)."""
        try:
            identity = await self.ctx.scheduler.workers(namespace, cluster)
        except SchedulerUnreachable:
            return None
        return [WorkerView.from_identity(w) for w in identity.values()]

    def _conditions(self, desired: int, ready: int, unschedulable: list[str], reachable: bool,
                    pods: list[Pod]) -> list[dict[str, Any]]:
        if unschedulable:
            message = next((c.get("message", "") for p in pods if p.name == unschedulable[0]
                            for c in (p.raw.get("status") or {}).get("conditions") or ()
                            if c.get("type") == "PodScheduled"), "")
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

    async def _set_status(self, group: DaskWorkerGroup, replicas: int, ready: int, cluster: str,
                          wanted: list[dict[str, Any]]) -> None:
        current = group.raw.get("status") or {}
        new = {"replicas": replicas, "readyReplicas": ready,
               "selector": naming.selector_string(naming.worker_selector(cluster, group.name)),
               "observedGeneration": group.raw["metadata"].get("generation", 1)}
        if any(current.get(k) != v for k, v in new.items()) or not conditions.same(current.get("conditions"),
                                                                                     wanted):
            new["conditions"] = conditions.merge(current.get("conditions"), wanted)  # type: ignore[assignment]
            await self.ctx.kube.patch_status(group, new)
            # The cluster aggregates its default group's counts: let it see the change now.
            self.ctx.loops.wake((naming.PLURALS[naming.DASKCLUSTER], group.namespace, cluster))

    async def _adopt(self, group: DaskWorkerGroup, cluster: DaskCluster) -> None:
        """A group applied on its own joins its cluster: owned by it (deleted with it) and labelled."""
        meta = group.raw["metadata"]
        uid = cluster.raw["metadata"]["uid"]
        labels = meta.get("labels") or {}
        if _owned_by(group.raw, uid) and labels.get(naming.CLUSTER_LABEL) == cluster.name:
            return
        refs = [r for r in meta.get("ownerReferences") or () if r.get("controller") is not True]
        refs.append(specs.owner_reference(cluster.raw))
        await group.patch({"metadata": {"ownerReferences": refs, "labels": {
            naming.CLUSTER_LABEL: cluster.name, naming.COMPONENT_LABEL: naming.Component.WORKERGROUP.value}}})

    async def _validate(self, group: DaskWorkerGroup, cluster: str) -> str | None:
        meta = group.raw["metadata"]
        key = (meta["namespace"], meta["name"])
        worker = {k: v for k, v in group.raw["spec"]["worker"].items() if k != "replicas"}
        checked = (meta["uid"], fingerprint(worker))
        if self._validated.get(key) == checked:
            return None
        problems = validation.pod_spec_problems(worker.get("spec"), "spec.worker.spec")
        if problems:
            return "; ".join(str(p) for p in problems)
        verdict = await self.ctx.kube.validate([(specs.worker_pod(group.raw, cluster, self.ctx.settings.cluster_domain),
                                                 "spec.worker.spec: the API server would reject a worker pod")])
        if verdict.rejection or not verdict.known:
            return verdict.rejection  # unknown is not invalid: act now, check again next pass
        self._validated[key] = checked
        return None

    async def _report_error(self, group: DaskWorkerGroup, cluster: str, message: str) -> None:
        meta = group.raw["metadata"]
        wanted = [conditions.condition(ConditionType.SPEC_VALID, False, Reason.INVALID_SPEC, message,
                                       meta.get("generation")),
                  conditions.condition(ConditionType.READY, False, Reason.INVALID_SPEC, message)]
        await self._set_status(group, 0, 0, cluster, wanted)
        key = (meta["namespace"], meta["name"])
        if self._reported.get(key) != message:
            self._reported[key] = message
            log.warning("DaskWorkerGroup %s/%s is invalid: %s", *key, message)
            await self.ctx.kube.event(group, Reason.INVALID_SPEC, message, warning=True)
