"""DaskCluster: validate, then TLS Secret, scheduler Service, scheduler Pod, default DaskWorkerGroup; status; idle
timeout.

Each pass observes the cluster, its children and (once its pod runs) its scheduler, then `decide` says what to
do. The status is computed from what exists: `Running` means the scheduler answers RPC, not merely that its
Service exists. A cluster whose client holds it by a Lease is deleted once no client renews it
(`client_leases`). A lost or finished scheduler pod is recreated. Replica counts flow both ways between the
cluster and its default worker group, so that `kubectl scale daskcluster` and `kubectl scale daskworkergroup`
both work; `status.appliedWorkerReplicas` remembers which side changed last. A TLS cluster's Secret is generated
(or, when the spec names one, checked) before its scheduler pod is created, since the pod reads it at start.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import kr8s
from kr8s.asyncio.objects import NetworkPolicy, Pod, PodDisruptionBudget, Secret, Service

from .. import naming, specs, status, tls, validation
from ..errors import SpecError
from ..kinds import DaskCluster, DaskWorkerGroup, Lease
from ..naming import ClusterPhase, ConditionType, Reason
from . import client_leases, conditions, evictions, rollout, spec_check
from .act import act
from .context import OperatorContext
from .loops import Gone
from .objects import now_rfc3339
from .plan import Delete, Event, Patch, Plan
from .scheduler_rpc import SchedulerUnreachable
from .settings import OperatorSettings

Obj = Mapping[str, Any]
# A scheduler that runs but does not answer is polled every second for this long, then at the resync period.
UNREACHABLE_FAST_POLL_SECONDS = 30.0
# A terminating scheduler pod still there this long after its grace period ended is on a node that stopped
# answering (a healthy kubelet removes it within a second or two); with its fixed name it would block a new
# scheduler until the node came back, so it is force-deleted.
STRANDED_SCHEDULER_SECONDS = 15.0


@dataclass(frozen=True)
class ClusterMemory:
    """What a cluster's loop keeps between passes."""

    validated: spec_check.Checked | None = None
    reported: str | None = None  # the last problem posted as a Warning Event
    unreachable_since: float | None = None  # time.monotonic() since when its running scheduler has not answered
    # (the scheduler's own idle-since stamp, time.monotonic() when the operator first saw it): idleness measured on
    # the operator's clock, immune to skew between it and the scheduler.
    idle: tuple[float, float] | None = None
    scheduler_version: tuple[str, str] | None = None  # (scheduler pod uid, its distributed version): asked once
    lease: client_leases.Seen | None = None  # a leased cluster's last renewal seen


@dataclass(frozen=True)
class SchedulerView:
    reachable: bool = False
    idle_since: float | None = None  # None: it has work, or a client is connected
    distributed_version: str | None = None


@dataclass(frozen=True)
class ClusterView:
    cluster: Obj
    spec: spec_check.SpecCheck = field(default_factory=spec_check.SpecCheck)
    service: bool = False  # the scheduler Service exists
    pod: Obj | None = None  # the scheduler pod
    secret: Obj | None = None  # a TLS cluster's Secret (read while its scheduler pod is missing)
    new_secret_data: Mapping[str, str] | None = None  # fresh certificates, for a Secret that must be generated
    group: Obj | None = None  # the default worker group
    scheduler: SchedulerView = field(default_factory=SchedulerView)  # asked only while the pod runs
    logs: str = ""  # a crash-looping scheduler's last words
    now: str = ""  # RFC 3339
    lease: Obj | None = None  # the clients' Lease (read only for a leased cluster, when due)
    lease_read: bool = True  # whether `lease` was read on this pass
    network_policy: Obj | None = None  # the scheduler's NetworkPolicy (read while wanted or recorded in the status)
    budget: bool = False  # the scheduler's PodDisruptionBudget exists (read only when it should, or did)


def spec_problems(cluster: Obj) -> list[SpecError]:
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


def scheduler_diagnosis(pod: Obj | None) -> tuple[str, str]:
    """Why a scheduler does not answer yet, as (reason, message), from its pod's status."""
    if pod is None:
        return Reason.SCHEDULER_STARTING, "the scheduler pod is being created"
    cond = status.unscheduled(pod)
    if cond is not None:
        return Reason.SCHEDULER_UNSCHEDULABLE, f"scheduler pod cannot be scheduled: {cond.get('message', '')}"
    waiting = status.waiting(pod)
    if waiting is not None:
        if waiting.reason == "CrashLoopBackOff":
            return Reason.SCHEDULER_CRASH_LOOP, (f"scheduler container {waiting.container} is crash-looping: "
                                                 f"{waiting.message}")
        if waiting.reason in status.IMAGE_PULL:
            return Reason.SCHEDULER_IMAGE_PULL, f"scheduler image cannot be pulled: {waiting.message or waiting.reason}"
        return Reason.SCHEDULER_STARTING, f"scheduler container {waiting.container} is waiting: {waiting.reason}"
    return Reason.SCHEDULER_STARTING, f"the scheduler pod is {status.phase(pod) or 'Pending'}"


def running(pod: Obj | None) -> bool:
    """A scheduler pod whose process runs (and so may answer)."""
    return pod is not None and not status.deleting(pod) and status.phase(pod) == "Running"


def tls_problem(cluster: Obj, secret: Obj | None) -> str | None:
    """Why a TLS cluster's scheduler cannot start with the Secret that exists (None: it can, or none is needed,
    or one will be generated). Only the Secret's name is ever reported, never its content."""
    secret_name = specs.tls_secret_of(cluster)
    if secret_name is None:
        return None
    generated = not cluster["spec"]["tls"].get("secretName")
    if secret is None:
        return None if generated else f"Secret {secret_name} (spec.tls.secretName) does not exist"
    if generated and cluster["metadata"]["uid"] not in status.controller_uids(secret):
        # Not generated for this cluster: an earlier cluster's, not yet garbage-collected (or orphaned by a
        # `--cascade=orphan` delete), or somebody else's. Never trust a CA whose key someone else may hold.
        return (f"Secret {secret_name} was not generated for this cluster (an earlier cluster of this name?): "
                "waiting for it to be deleted; delete it, or name a Secret of yours in spec.tls.secretName")
    try:
        tls.from_secret_data(secret.get("data"), secret_name)
    except tls.TLSSecretError as err:
        return str(err)
    return None


def decide(view: ClusterView, memory: ClusterMemory, now: float, settings: OperatorSettings
           ) -> Plan[ClusterMemory]:
    """The next step of a DaskCluster. Pure: `now` is monotonic, `view.now` the wall time."""
    raw = view.cluster
    if not (raw.get("status") or {}).get("phase"):
        return Plan(status={"phase": ClusterPhase.CREATED}, requeue=0.0)  # say at once that an operator saw it
    lease = client_leases.check(raw, view.lease, memory.lease, now, view.lease_read)
    memory = replace(memory, lease=lease.seen)
    if lease.expired is not None:
        return Plan(events=[Event(Reason.CLIENT_LEASE_EXPIRED, lease.expired)], delete_self=True, memory=memory)
    plan = _decide(view, memory, now, settings)
    if lease.recheck is not None and not plan.delete_self:
        plan.requeue = lease.recheck if plan.requeue is None else min(plan.requeue, lease.recheck)
    if plan.memory is None:
        plan.memory = memory
    return plan


def _decide(view: ClusterView, memory: ClusterMemory, now: float, settings: OperatorSettings
            ) -> Plan[ClusterMemory]:
    raw = view.cluster
    if view.spec.error is not None:
        return _warn(_invalid(raw, view.spec.error), memory, Reason.INVALID_SPEC, view.spec.error)
    memory = replace(memory, validated=view.spec.valid or memory.validated)
    plan: Plan[ClusterMemory] = Plan()
    if not view.service:
        plan.create.append(specs.scheduler_service(raw))
    _network_policy(view, plan)
    if view.pod is None:
        first = _secret_first(view, plan, memory, settings)
        if first is not None:
            return first
    scheduler, stranded_recheck = _scheduler_pod(view, plan)
    evictions.scheduler_budget(raw, view.budget, settings.scheduler_disruption_budget, plan)
    desired = _default_group(view, plan)
    reachable = scheduler is not None and view.scheduler.reachable
    memory, idle_for = _idleness(view, memory, now, reachable)
    memory = _status(view, plan, memory, scheduler, reachable, desired)
    if plan.conditions is not None:
        plan.conditions.append(rollout.scheduler_condition(raw, view.pod))
    memory = _timers(view, plan, memory, now, settings, scheduler, reachable, idle_for)
    if stranded_recheck is not None and not plan.delete_self:
        plan.requeue = stranded_recheck if plan.requeue is None else min(plan.requeue, stranded_recheck)
    plan.memory = memory
    return plan


def _network_policy(view: ClusterView, plan: Plan[ClusterMemory]) -> None:
    """spec.networkPolicy: create the policy while wanted, delete ours once not; the status names it."""
    raw, policy = view.cluster, view.network_policy
    name = naming.network_policy_name(raw["metadata"]["name"])
    ours = policy is not None and raw["metadata"]["uid"] in status.controller_uids(policy)
    if specs.wants_network_policy(raw):
        if policy is None:
            plan.create.append(specs.scheduler_network_policy(raw))
        plan.status["networkPolicyName"] = name
        return
    if ours:
        plan.delete.append(Delete("NetworkPolicy", name))
    if (raw.get("status") or {}).get("networkPolicyName"):
        plan.status["networkPolicyName"] = None  # a merge patch's null removes the field


def _secret_first(view: ClusterView, plan: Plan[ClusterMemory], memory: ClusterMemory, settings: OperatorSettings
                  ) -> Plan[ClusterMemory] | None:
    """Before a TLS cluster's scheduler pod: its Secret. A plan that stops there, or None to go on."""
    raw = view.cluster
    problem = tls_problem(raw, view.secret)
    if problem is not None:
        blocked = _warn(_tls_blocked(raw, problem), memory, Reason.TLS_SECRET_INVALID, problem)
        blocked.create = plan.create
        blocked.requeue = settings.resync_seconds  # Secrets are not watched: look again
        return blocked
    secret_name = specs.tls_secret_of(raw)
    if secret_name is None or view.secret is not None:
        return None
    assert view.new_secret_data is not None
    plan.create.append(specs.tls_secret(raw, view.new_secret_data))
    plan.events.append(Event(Reason.TLS_SECRET_CREATED, f"generated a CA and a certificate in Secret {secret_name}"))
    plan.requeue, plan.memory = 0.0, memory  # the pod next: it reads the Secret when it starts
    return plan


def _scheduler_pod(view: ClusterView, plan: Plan[ClusterMemory]) -> tuple[Obj | None, float | None]:
    """Create, replace or force-delete the scheduler pod. The pod the status describes (None: being created or
    replaced), and when to look again at one stuck terminating."""
    pod = view.pod
    if pod is None:
        plan.create.append(rollout.stamp(specs.scheduler_pod(view.cluster),
                                         rollout.scheduler_hash(view.cluster["spec"]["scheduler"])))
        if (view.cluster.get("status") or {}).get("schedulerPodUID"):
            plan.events.append(Event(Reason.SCHEDULER_RECREATED,
                                     "the scheduler pod was lost and has been recreated; workers reconnect to it"))
        return None, None
    name = pod["metadata"]["name"]
    if not status.deleting(pod):
        if status.finished(pod):
            plan.log.append(f"scheduler pod {name} is {status.phase(pod)}; replacing it")
            plan.delete.append(Delete("Pod", name, grace_period=0))
            return None, None
        plan.status["schedulerPodUID"] = pod["metadata"].get("uid")
        return pod, None
    # Terminating: recreated once it is gone.
    overdue = status.seconds_between(pod["metadata"]["deletionTimestamp"], view.now)
    if overdue >= STRANDED_SCHEDULER_SECONDS:
        node = (pod.get("spec") or {}).get("nodeName")
        plan.events.append(Event(Reason.SCHEDULER_STRANDED, (
            f"the scheduler pod {name} on node {node} is still terminating {overdue:.0f}s after its grace period "
            "ended: its node does not answer. Force-deleting it so that a new scheduler can start (the old process "
            "is stopped when the node comes back); workers reconnect to the new one"), warning=True))
        plan.delete.append(Delete("Pod", name, grace_period=0))
    # A stranded pod sends no events: look again when it would count as one.
    return None, max(1.0, STRANDED_SCHEDULER_SECONDS - overdue)


def _default_group(view: ClusterView, plan: Plan[ClusterMemory]) -> int:
    """Create the default worker group, or carry the replica count over from whichever side changed last
    (`status.appliedWorkerReplicas` says which). The group's desired replicas, once the plan is applied."""
    raw, group = view.cluster, view.group
    desired = int(raw["spec"]["worker"].get("replicas", 1))
    applied = (raw.get("status") or {}).get("appliedWorkerReplicas")
    if group is None:
        plan.create.append(specs.default_worker_group(raw))
        plan.status["appliedWorkerReplicas"] = desired
        return desired
    template = rollout.default_group_template(raw["spec"]["worker"], group["spec"]["worker"])
    if template is not None:  # the cluster's worker template changed: the group rolls its workers out
        plan.patch.append(Patch(naming.DASKWORKERGROUP, group["metadata"]["name"], {"spec": {"worker": template}}))
    group_desired = int(group["spec"]["worker"].get("replicas", 1))
    if applied is None or desired != applied:
        if group_desired != desired:
            plan.patch.append(Patch(naming.DASKWORKERGROUP, group["metadata"]["name"],
                                    {"spec": {"worker": {"replicas": desired}}}))
        plan.status["appliedWorkerReplicas"] = desired
        return desired
    if group_desired != desired:  # the group was scaled directly: mirror it on the cluster
        plan.patch.append(Patch(naming.DASKCLUSTER, raw["metadata"]["name"],
                                {"spec": {"worker": {"replicas": group_desired}}}))
        plan.status["appliedWorkerReplicas"] = group_desired
    return group_desired


def _idleness(view: ClusterView, memory: ClusterMemory, now: float, reachable: bool
              ) -> tuple[ClusterMemory, float]:
    """How long the scheduler has been idle, on the operator's clock (it remembers when it first saw the
    scheduler's idle-since stamp)."""
    if not reachable:
        return memory, 0.0
    idle_since = view.scheduler.idle_since
    if idle_since is None:
        return replace(memory, idle=None), 0.0
    if memory.idle is None or memory.idle[0] != idle_since:
        return replace(memory, idle=(idle_since, now)), 0.0
    return memory, now - memory.idle[1]


def _status(view: ClusterView, plan: Plan[ClusterMemory], memory: ClusterMemory, scheduler: Obj | None,
            reachable: bool, desired: int) -> ClusterMemory:
    """Phase, conditions and counts from what exists; a Warning Event for a new way of not starting."""
    raw = view.cluster
    name, generation = raw["metadata"]["name"], raw["metadata"].get("generation", 1)
    current = raw.get("status") or {}
    group_status = (view.group or {}).get("status") or {}
    ready = int(group_status.get("readyReplicas", 0))
    if reachable:
        sched = conditions.condition(ConditionType.SCHEDULER_READY, True, Reason.SCHEDULER_RUNNING,
                                     "the scheduler answers")
    else:
        reason, message = scheduler_diagnosis(scheduler)
        if reason == Reason.SCHEDULER_CRASH_LOOP:
            message += "\nlast log lines:\n" + (view.logs or "(no logs)")
        sched = conditions.condition(ConditionType.SCHEDULER_READY, False, reason, message)
    workers_ok = reachable and ready >= desired
    plan.conditions = [
        conditions.condition(ConditionType.SPEC_VALID, True, Reason.VALID, "", generation),
        sched,
        conditions.condition(ConditionType.WORKERS_READY, workers_ok,
                             Reason.WORKERS_CONNECTED if workers_ok else Reason.WORKERS_STARTING,
                             f"{ready}/{desired} workers connected"),
        conditions.condition(ConditionType.READY, reachable and workers_ok,
                             Reason.SCHEDULER_RUNNING if reachable else sched["reason"], ""),
    ]
    phase = ClusterPhase.RUNNING if reachable else ClusterPhase.PENDING
    new: dict[str, Any] = {
        "phase": phase, "observedGeneration": generation, "replicas": group_status.get("replicas", 0),
        "readyReplicas": ready, "selector": group_status.get("selector", naming.selector_string(
            naming.worker_selector(name, naming.default_worker_group_name(name))))}
    secret = specs.tls_secret_of(raw)
    if secret:
        new["tlsSecretName"] = secret
    version = view.scheduler.distributed_version if reachable else None
    if version and scheduler is not None:
        new["distributedVersion"] = version
        memory = replace(memory, scheduler_version=(str(scheduler["metadata"].get("uid", "")), version))
    plan.status.update(new)
    if all(current.get(k) == v for k, v in new.items()) and conditions.same(current.get("conditions"),
                                                                              plan.conditions):
        return memory
    if phase == ClusterPhase.RUNNING and current.get("phase") != ClusterPhase.RUNNING:
        plan.log.append("is Running")
    if not reachable and sched["reason"] != Reason.SCHEDULER_STARTING:
        memory = replace(memory, reported=plan.warn_once(memory.reported, sched["reason"], sched["message"]))
    return memory


def _timers(view: ClusterView, plan: Plan[ClusterMemory], memory: ClusterMemory, now: float,
            settings: OperatorSettings, scheduler: Obj | None, reachable: bool, idle_for: float) -> ClusterMemory:
    """The idle timeout, and when to look again."""
    timeout = int(view.cluster["spec"].get("idleTimeout") or 0)
    if timeout and reachable and idle_for >= timeout:
        plan.events.append(Event(Reason.IDLE_TIMEOUT, f"the scheduler has been idle for {idle_for:.0f}s "
                                                      f"(idleTimeout {timeout}s): deleting"))
        plan.delete_self = True
        return memory
    if reachable:
        if timeout:
            plan.requeue = min(settings.resync_seconds, max(1.0, timeout - idle_for))
        return replace(memory, unreachable_since=None)
    if not running(scheduler):
        # Nothing to poll before the process runs: the pod's events wake the loop when it changes.
        return replace(memory, unreachable_since=None)
    # Poll a started scheduler every second until it listens, but one that has not answered for a while only as
    # often as the resync period: pod events still wake the loop the moment anything changes.
    since = memory.unreachable_since if memory.unreachable_since is not None else now
    plan.requeue = 1.0 if now - since < UNREACHABLE_FAST_POLL_SECONDS else settings.resync_seconds
    return replace(memory, unreachable_since=since)


def _warn(plan: Plan[ClusterMemory], memory: ClusterMemory, reason: str, message: str) -> Plan[ClusterMemory]:
    plan.memory = replace(memory, reported=plan.warn_once(memory.reported, reason, message))
    return plan


def _invalid(raw: Obj, message: str) -> Plan[ClusterMemory]:
    meta = raw["metadata"]
    return Plan(status={"phase": ClusterPhase.ERROR, "observedGeneration": meta.get("generation")}, conditions=[
        conditions.condition(ConditionType.SPEC_VALID, False, Reason.INVALID_SPEC, message, meta.get("generation")),
        conditions.condition(ConditionType.READY, False, Reason.INVALID_SPEC, message)])


def _tls_blocked(raw: Obj, message: str) -> Plan[ClusterMemory]:
    generation = raw["metadata"].get("generation")
    return Plan(status={"phase": ClusterPhase.PENDING, "tlsSecretName": specs.tls_secret_of(raw)}, conditions=[
        conditions.condition(ConditionType.SPEC_VALID, True, Reason.VALID, "", generation),
        conditions.condition(ConditionType.SCHEDULER_READY, False, Reason.TLS_SECRET_INVALID, message),
        conditions.condition(ConditionType.READY, False, Reason.TLS_SECRET_INVALID, message),
    ])


class ClusterReconciler:
    """One DaskCluster's loop: its memory lives here, and goes with the loop."""

    def __init__(self, ctx: OperatorContext, namespace: str, name: str) -> None:
        self.ctx, self.namespace, self.name = ctx, namespace, name
        self.memory = ClusterMemory()

    async def reconcile(self) -> float | None:
        cluster = await self.ctx.objects.get(DaskCluster, self.name, self.namespace)
        if cluster is None or status.deleting(cluster.raw):
            raise Gone()
        view = await self._observe(cluster.raw)
        plan = decide(view, self.memory, time.monotonic(), self.ctx.settings)
        await act(self.ctx, cluster, plan)
        if plan.memory is not None:
            self.memory = plan.memory
        return None if plan.delete_self else plan.requeue

    async def _observe(self, raw: Obj) -> ClusterView:
        objects, ns, name = self.ctx.objects, self.namespace, self.name
        if not (raw.get("status") or {}).get("phase"):
            return ClusterView(raw)
        lease, seconds = None, status.client_lease_seconds(raw)
        lease_read = seconds is not None and client_leases.due(self.memory.lease, seconds, time.monotonic())
        if lease_read:
            held = await objects.get(Lease, naming.client_lease_name(name), ns)
            lease = held.raw if held is not None else None
        scheduler_name = naming.scheduler_name(name)
        pod = await objects.get(Pod, scheduler_name, ns)
        checked = await spec_check.check(
            objects, (raw["metadata"]["uid"], spec_check.fingerprint(_validated_part(raw))), self.memory.validated,
            spec_problems(raw), None if pod is not None else lambda: self._dry_runs(raw))
        if checked.server_checked:  # the server accepted its worker pod: the default group need not ask again
            made = specs.default_worker_group(raw)
            self.ctx.vouched.add(spec_check.worker_template(ns, made["metadata"]["name"], name,
                                                            made["spec"]["worker"]))
        if checked.error is not None:
            return ClusterView(raw, checked, lease=lease, lease_read=lease_read)
        service = await objects.get(Service, scheduler_name, ns)
        secret = new_secret_data = None
        secret_name = specs.tls_secret_of(raw)
        if pod is None and secret_name is not None:
            found = await objects.get(Secret, secret_name, ns)
            secret = found.raw if found is not None else None
            if secret is None and not raw["spec"]["tls"].get("secretName"):
                new_secret_data = tls.generate(name, ns, self.ctx.settings.cluster_domain).secret_data()
        group = await objects.get(DaskWorkerGroup, naming.default_worker_group_name(name), ns)
        policy = None
        if specs.wants_network_policy(raw) or (raw.get("status") or {}).get("networkPolicyName"):
            policy = await objects.get(NetworkPolicy, naming.network_policy_name(name), ns)
        budget = False
        if evictions.scheduler_budget_wanted(raw, self.ctx.settings.scheduler_disruption_budget) or \
                (raw.get("status") or {}).get(evictions.BUDGET_STATUS):
            budget = await objects.get(PodDisruptionBudget, scheduler_name, ns) is not None
        scheduler = SchedulerView()
        logs = ""
        if pod is not None and running(pod.raw):
            scheduler = await self._ask_scheduler(raw, str(pod.raw["metadata"].get("uid", "")))
        if pod is not None and not scheduler.reachable and \
                scheduler_diagnosis(pod.raw)[0] == Reason.SCHEDULER_CRASH_LOOP:
            logs = await objects.last_logs(pod)
        return ClusterView(raw, checked, service is not None, pod.raw if pod else None, secret, new_secret_data,
                           group.raw if group else None, scheduler, logs, now_rfc3339(), lease, lease_read,
                           policy.raw if policy else None, budget=budget)

    async def _ask_scheduler(self, raw: Obj, pod_uid: str) -> SchedulerView:
        rpc = self.ctx.scheduler
        known = self.memory.scheduler_version
        try:
            idle_since = await rpc.idle_since(self.namespace, self.name)
            if idle_since is not None and raw["spec"].get("idleTimeout") and \
                    await rpc.clients(self.namespace, self.name):
                idle_since = None  # no tasks, but a connected client: not idle
            version = known[1] if known is not None and known[0] == pod_uid else \
                await rpc.distributed_version(self.namespace, self.name)
        except (SchedulerUnreachable, kr8s.ServerError):
            return SchedulerView()
        return SchedulerView(reachable=True, idle_since=idle_since, distributed_version=version)

    def _dry_runs(self, raw: Obj) -> list[tuple[dict[str, Any], str]]:
        """The scheduler pod and Service and a worker pod, as the API server would be asked to create them."""
        meta = raw["metadata"]
        group = specs.default_worker_group(raw)
        group["metadata"].update(namespace=meta["namespace"], uid=meta["uid"])  # a stand-in owner for the check
        return [(body, f"{where}: the API server would reject it") for body, where in (
            (specs.scheduler_pod(raw), "spec.scheduler.spec"),
            (specs.scheduler_service(raw), "spec.scheduler.service"),
            (specs.worker_pod(group, meta["name"], self.ctx.settings.cluster_domain,
                              grace_seconds=self.ctx.settings.worker_grace_seconds), "spec.worker.spec"))]


def _validated_part(raw: Obj) -> dict[str, Any]:
    """What validity depends on: the name and the spec but the replicas (a scale needs no re-check)."""
    spec = dict(raw.get("spec") or {})
    spec["worker"] = {k: v for k, v in (spec.get("worker") or {}).items() if k != "replicas"}
    return {"name": raw["metadata"]["name"], "spec": spec}
