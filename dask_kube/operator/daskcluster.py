"""DaskCluster: validate, then TLS Secret, scheduler Service, scheduler Pod, default DaskWorkerGroup; status; idle
timeout.

The status is computed from what exists: `Running` means the scheduler answers RPC, not merely that its
Service exists. A lost or finished scheduler pod is recreated. Replica counts flow both ways between the
cluster and its default worker group, so that `kubectl scale daskcluster` and `kubectl scale daskworkergroup`
both work; `status.appliedWorkerReplicas` remembers which side changed last. A TLS cluster's Secret is generated
(or, when the spec names one, checked) before its scheduler pod is created, since the pod reads it at start.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kr8s
from kr8s.asyncio.objects import Pod, Secret, Service

from .. import naming, specs, tls, validation
from ..errors import SpecError
from ..naming import ClusterPhase, ConditionType, Reason
from ..resources import DaskCluster, DaskWorkerGroup
from . import conditions
from .access import SchedulerUnreachable
from .context import OperatorContext
from .kube import fingerprint, now_rfc3339
from .planning import seconds_overdue

log = logging.getLogger(__name__)
PLURAL = naming.PLURALS[naming.DASKCLUSTER]
UNREACHABLE_FAST_POLL_SECONDS = 30.0
# A terminating scheduler pod still there this long after its grace period ended is on a node that stopped
# answering (a healthy kubelet removes it within a second or two); with its fixed name it would block a new
# scheduler until the node came back, so it is force-deleted.
STRANDED_SCHEDULER_SECONDS = 15.0


def spec_problems(cluster: dict[str, Any]) -> list[SpecError]:
    """What the operator can tell is wrong without asking the API server."""
    problems: list[SpecError] = []
    try:
        validation.validate_cluster_name(cluster["metadata"]["name"])
    except SpecError as err:
        problems.append(SpecError(err.message, "metadata.name"))
    spec = cluster.get("spec") or {}
    problems += validation.pod_spec_problems((spec.get("scheduler") or {}).get("spec"), "spec.scheduler.spec")
    problems += validation.pod_spec_problems((spec.get("worker") or {}).get("spec"), "spec.worker.spec")
    return problems


def scheduler_diagnosis(pod: dict[str, Any] | None) -> tuple[str, str]:
    """Why a scheduler does not answer yet, as (reason, message), from its pod's status."""
    if pod is None:
        return Reason.SCHEDULER_STARTING, "the scheduler pod is being created"
    status = pod.get("status") or {}
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return Reason.SCHEDULER_UNSCHEDULABLE, f"scheduler pod cannot be scheduled: {cond.get('message', '')}"
    for cs in status.get("containerStatuses") or ():
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if reason == "CrashLoopBackOff":
            return Reason.SCHEDULER_CRASH_LOOP, f"scheduler container {cs.get('name')} is crash-looping: " \
                                                f"{waiting.get('message', '')}"
        if reason in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName"):
            return Reason.SCHEDULER_IMAGE_PULL, f"scheduler image cannot be pulled: {waiting.get('message', reason)}"
        if reason and reason != "ContainerCreating":
            return Reason.SCHEDULER_STARTING, f"scheduler container {cs.get('name')} is waiting: {reason}"
    return Reason.SCHEDULER_STARTING, f"the scheduler pod is {status.get('phase', 'Pending')}"


class ClusterReconciler:
    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self._validated: dict[tuple[str, str], tuple[str, str]] = {}  # (ns, name) -> (uid, spec fingerprint)
        self._unreachable_since: dict[tuple[str, str], float] = {}
        self._reported: dict[tuple[str, str], str] = {}  # (ns, name) -> last error reported as an Event

    async def reconcile(self, namespace: str, name: str) -> float | None:
        ctx, kube = self.ctx, self.ctx.kube
        cluster = await kube.get(DaskCluster, name, namespace)
        if cluster is None or cluster.raw["metadata"].get("deletionTimestamp"):
            await ctx.scheduler.forget(namespace, name)
            self._validated.pop((namespace, name), None)
            self._unreachable_since.pop((namespace, name), None)
            return None
        raw = cluster.raw
        generation = raw["metadata"].get("generation", 1)
        status = raw.get("status") or {}
        if not status.get("phase"):
            await kube.patch_status(cluster, {"phase": ClusterPhase.CREATED})
        error = await self._validate(cluster)
        if error:
            await self._report_error(cluster, error)
            return None
        service = await kube.get(Service, naming.scheduler_name(name), namespace)
        if service is None:
            await kube.create(specs.scheduler_service(raw))
        pod = await kube.get(Pod, naming.scheduler_name(name), namespace)
        if pod is None:
            problem = await self._ensure_tls_secret(cluster)
            if problem:
                await self._report_tls_problem(cluster, problem)
                return ctx.settings.resync_seconds  # Secrets are not watched: look again
        gone_at = pod.raw["metadata"].get("deletionTimestamp") if pod is not None else None
        pod = await self._ensure_scheduler_pod(cluster, pod)
        group = await self._ensure_default_group(cluster)
        delay = await self._update_status(cluster, pod, group, generation)
        if gone_at and pod is None:  # a stranded pod sends no events: look again when it would count as one
            recheck = max(1.0, STRANDED_SCHEDULER_SECONDS - seconds_overdue(gone_at, now_rfc3339()))
            delay = recheck if delay is None else min(delay, recheck)
        return delay

    async def _validate(self, cluster: DaskCluster) -> str | None:
        raw = cluster.raw
        meta = raw["metadata"]
        key = (meta["namespace"], meta["name"])
        spec = dict(raw.get("spec") or {})
        spec["worker"] = {k: v for k, v in (spec.get("worker") or {}).items() if k != "replicas"}
        checked = (meta["uid"], fingerprint({"name": meta["name"], "spec": spec}))
        if self._validated.get(key) == checked:
            return None
        problems = spec_problems(raw)
        if problems:
            return "; ".join(str(p) for p in problems)
        if await self.ctx.kube.get(Pod, naming.scheduler_name(meta["name"]), meta["namespace"]) is None:
            group = specs.default_worker_group(raw)
            group["metadata"].update(namespace=meta["namespace"], uid=meta["uid"])  # a stand-in owner for the check
            verdict = await self.ctx.kube.validate(
                (body, f"{field}: the API server would reject it") for body, field in (
                    (specs.scheduler_pod(raw), "spec.scheduler.spec"),
                    (specs.scheduler_service(raw), "spec.scheduler.service"),
                    (specs.worker_pod(group, meta["name"], self.ctx.settings.cluster_domain), "spec.worker.spec")))
            if verdict.rejection or not verdict.known:
                return verdict.rejection  # unknown is not invalid: go on, check again next pass
        self._validated[key] = checked
        return None

    async def _report_error(self, cluster: DaskCluster, message: str) -> None:
        meta = cluster.raw["metadata"]
        key = (meta["namespace"], meta["name"])
        current = cluster.raw.get("status") or {}
        wanted = [conditions.condition(ConditionType.SPEC_VALID, False, Reason.INVALID_SPEC, message,
                                       meta.get("generation")),
                  conditions.condition(ConditionType.READY, False, Reason.INVALID_SPEC, message)]
        if current.get("phase") != ClusterPhase.ERROR or not conditions.same(current.get("conditions"), wanted):
            await self.ctx.kube.patch_status(cluster, {
                "phase": ClusterPhase.ERROR, "observedGeneration": meta.get("generation"),
                "conditions": conditions.merge(current.get("conditions"), wanted)})
        if self._reported.get(key) != message:
            self._reported[key] = message
            log.warning("DaskCluster %s/%s is invalid: %s", *key, message)
            await self.ctx.kube.event(cluster, Reason.INVALID_SPEC, message, warning=True)

    async def _ensure_tls_secret(self, cluster: DaskCluster) -> str | None:
        """Generate the cluster's CA and certificate unless they exist, or check the Secret the spec names; why
        the scheduler cannot start yet, or None. Only the Secret's name is ever reported, never its content."""
        raw = cluster.raw
        secret_name = specs.tls_secret_of(raw)
        if secret_name is None:
            return None
        meta = raw["metadata"]
        generated = not raw["spec"]["tls"].get("secretName")
        secret = await self.ctx.kube.get(Secret, secret_name, meta["namespace"])
        if secret is None and not generated:
            return f"Secret {secret_name} (spec.tls.secretName) does not exist"
        if secret is None:
            certs = tls.generate(meta["name"], meta["namespace"], self.ctx.settings.cluster_domain)
            secret = await self.ctx.kube.create(specs.tls_secret(raw, certs.secret_data()))
            log.info("DaskCluster %s/%s: generated a CA and a certificate in Secret %s", meta["namespace"],
                     meta["name"], secret_name)
            await self.ctx.kube.event(cluster, Reason.TLS_SECRET_CREATED,
                                      f"generated a CA and a certificate in Secret {secret_name}")
        owners = [r.get("uid") for r in secret.raw["metadata"].get("ownerReferences") or () if r.get("controller")]
        if generated and meta["uid"] not in owners:
            # Not generated for this cluster: an earlier cluster's, not yet garbage-collected (or orphaned by a
            # `--cascade=orphan` delete), or somebody else's. Never trust a CA whose key someone else may hold.
            return f"Secret {secret_name} was not generated for this cluster (an earlier cluster of this name?): " \
                   "waiting for it to be deleted; delete it, or name a Secret of yours in spec.tls.secretName"
        try:
            tls.from_secret_data(secret.raw.get("data"), secret_name)
        except tls.TLSSecretError as err:
            return str(err)
        return None

    async def _report_tls_problem(self, cluster: DaskCluster, message: str) -> None:
        meta = cluster.raw["metadata"]
        key = (meta["namespace"], meta["name"])
        current = cluster.raw.get("status") or {}
        wanted = [conditions.condition(ConditionType.SPEC_VALID, True, Reason.VALID, "", meta.get("generation")),
                  conditions.condition(ConditionType.SCHEDULER_READY, False, Reason.TLS_SECRET_INVALID, message),
                  conditions.condition(ConditionType.READY, False, Reason.TLS_SECRET_INVALID, message)]
        secret = specs.tls_secret_of(cluster.raw)
        if current.get("phase") != ClusterPhase.PENDING or current.get("tlsSecretName") != secret or \
                not conditions.same(current.get("conditions"), wanted):
            await self.ctx.kube.patch_status(cluster, {
                "phase": ClusterPhase.PENDING, "tlsSecretName": secret,
                "conditions": conditions.merge(current.get("conditions"), wanted)})
        if self._reported.get(key) != message:
            self._reported[key] = message
            log.warning("DaskCluster %s/%s cannot start its scheduler: %s", *key, message)
            await self.ctx.kube.event(cluster, Reason.TLS_SECRET_INVALID, message, warning=True)

    async def _ensure_scheduler_pod(self, cluster: DaskCluster, pod: Pod | None) -> Pod | None:
        raw = cluster.raw
        if pod is not None and not pod.raw["metadata"].get("deletionTimestamp"):
            phase = (pod.raw.get("status") or {}).get("phase")
            if phase not in ("Succeeded", "Failed"):
                return pod
            log.info("scheduler pod %s/%s is %s; replacing it", pod.namespace, pod.name, phase)
            await self.ctx.kube.delete(pod, grace_period=0)
            return None
        if pod is not None:  # terminating: recreate once it is gone
            overdue = seconds_overdue(pod.raw["metadata"]["deletionTimestamp"], now_rfc3339())
            if overdue >= STRANDED_SCHEDULER_SECONDS:
                message = (f"the scheduler pod {pod.name} on node {(pod.raw.get('spec') or {}).get('nodeName')} is "
                           f"still terminating {overdue:.0f}s after its grace period ended: its node does not "
                           "answer. Force-deleting it so that a new scheduler can start (the old process is "
                           "stopped when the node comes back); workers reconnect to the new one")
                log.warning("DaskCluster %s/%s: %s", pod.namespace, cluster.name, message)
                await self.ctx.kube.event(cluster, Reason.SCHEDULER_STRANDED, message, warning=True)
                await self.ctx.kube.delete(pod, grace_period=0)
            return None
        previous = (raw.get("status") or {}).get("schedulerPodUID")
        created = await self.ctx.kube.create(specs.scheduler_pod(raw))
        uid = created.raw["metadata"].get("uid")
        if previous and previous != uid:
            await self.ctx.kube.event(cluster, Reason.SCHEDULER_RECREATED,
                                      "the scheduler pod was lost and has been recreated; workers reconnect to it")
        await self.ctx.kube.patch_status(cluster, {"schedulerPodUID": uid})
        return created  # type: ignore[return-value]

    async def _ensure_default_group(self, cluster: DaskCluster) -> DaskWorkerGroup:
        raw = cluster.raw
        meta = raw["metadata"]
        name = naming.default_worker_group_name(meta["name"])
        group = await self.ctx.kube.get(DaskWorkerGroup, name, meta["namespace"])
        desired = raw["spec"]["worker"].get("replicas", 1)
        applied = (raw.get("status") or {}).get("appliedWorkerReplicas")
        if group is None:
            group = await self.ctx.kube.create(specs.default_worker_group(raw))  # type: ignore[assignment]
            await self.ctx.kube.patch_status(cluster, {"appliedWorkerReplicas": desired})
            return group  # type: ignore[return-value]
        group_desired = group.raw["spec"]["worker"].get("replicas", 1)
        if applied is None or desired != applied:
            if group_desired != desired:
                await group.patch({"spec": {"worker": {"replicas": desired}}})
            await self.ctx.kube.patch_status(cluster, {"appliedWorkerReplicas": desired})
        elif group_desired != desired:  # the group was scaled directly: mirror it on the cluster
            await cluster.patch({"spec": {"worker": {"replicas": group_desired}}})
            await self.ctx.kube.patch_status(cluster, {"appliedWorkerReplicas": group_desired})
        return group  # type: ignore[return-value]

    async def _update_status(self, cluster: DaskCluster, pod: Pod | None, group: DaskWorkerGroup,
                             generation: int) -> float | None:
        ctx = self.ctx
        meta = cluster.raw["metadata"]
        ns, name = meta["namespace"], meta["name"]
        reachable = False
        idle_for = 0.0
        if pod is not None and (pod.raw.get("status") or {}).get("phase") == "Running":
            try:
                idle_since = await ctx.scheduler.idle_since(ns, name)
                reachable = True
                if idle_since is not None and cluster.raw["spec"].get("idleTimeout") and await ctx.scheduler.clients(
                        ns, name):
                    idle_since = None  # no tasks, but a connected client: not idle
                idle_for = ctx.idle.idle_for((ns, name), idle_since)
            except (SchedulerUnreachable, kr8s.ServerError) as err:
                log.debug("scheduler of %s/%s not answering: %s", ns, name, err)
        group_status = group.raw.get("status") or {}
        desired = group.raw["spec"]["worker"].get("replicas", 1)
        ready = group_status.get("readyReplicas", 0)
        if reachable:
            sched = conditions.condition(ConditionType.SCHEDULER_READY, True, Reason.SCHEDULER_RUNNING,
                                         "the scheduler answers")
        else:
            reason, message = scheduler_diagnosis(pod.raw if pod is not None else None)
            if reason == Reason.SCHEDULER_CRASH_LOOP and pod is not None:
                message += "\nlast log lines:\n" + await ctx.kube.pod_logs(pod, tail=10)
            sched = conditions.condition(ConditionType.SCHEDULER_READY, False, reason, message)
        workers_ok = reachable and ready >= desired
        wanted = [
            conditions.condition(ConditionType.SPEC_VALID, True, Reason.VALID, "", generation),
            sched,
            conditions.condition(ConditionType.WORKERS_READY, workers_ok,
                                 Reason.WORKERS_CONNECTED if workers_ok else Reason.WORKERS_STARTING,
                                 f"{ready}/{desired} workers connected"),
            conditions.condition(ConditionType.READY, reachable and workers_ok,
                                 Reason.SCHEDULER_RUNNING if reachable else sched["reason"], ""),
        ]
        current = cluster.raw.get("status") or {}
        phase = ClusterPhase.RUNNING if reachable else ClusterPhase.PENDING
        new: dict[str, Any] = {"phase": phase, "observedGeneration": generation,
               "replicas": group_status.get("replicas", 0), "readyReplicas": ready,
               "selector": group_status.get("selector", naming.selector_string(
                   naming.worker_selector(name, naming.default_worker_group_name(name))))}
        secret = specs.tls_secret_of(cluster.raw)
        if secret:
            new["tlsSecretName"] = secret
        if any(current.get(k) != v for k, v in new.items()) or not conditions.same(current.get("conditions"),
                                                                                     wanted):
            new["conditions"] = conditions.merge(current.get("conditions"), wanted)
            await ctx.kube.patch_status(cluster, new)
            if phase == ClusterPhase.RUNNING and current.get("phase") != ClusterPhase.RUNNING:
                log.info("DaskCluster %s/%s is Running", ns, name)
            if not reachable and sched["reason"] != Reason.SCHEDULER_STARTING and self._reported.get(
                    (ns, name)) != sched["message"]:
                self._reported[(ns, name)] = sched["message"]
                await ctx.kube.event(cluster, sched["reason"], sched["message"], warning=True)
        timeout = int(cluster.raw["spec"].get("idleTimeout") or 0)
        if timeout and reachable and idle_for >= timeout:
            message = f"the scheduler has been idle for {idle_for:.0f}s (idleTimeout {timeout}s): deleting"
            log.info("DaskCluster %s/%s: %s", ns, name, message)
            await ctx.kube.event(cluster, Reason.IDLE_TIMEOUT, message)
            await ctx.kube.delete(cluster)
            return None
        if not reachable:
            if pod is None or (pod.raw.get("status") or {}).get("phase") != "Running":
                # Nothing to poll before the process runs: the pod's events wake the loop when it changes.
                self._unreachable_since.pop((ns, name), None)
                return None
            # Poll a started scheduler every second until it listens, but one that has not answered for a while
            # only as often as the resync period: pod events still wake the loop the moment anything changes.
            since = self._unreachable_since.setdefault((ns, name), time.monotonic())
            return 1.0 if time.monotonic() - since < UNREACHABLE_FAST_POLL_SECONDS else ctx.settings.resync_seconds
        self._unreachable_since.pop((ns, name), None)
        if timeout:
            return min(ctx.settings.resync_seconds, max(1.0, timeout - idle_for))
        return None
