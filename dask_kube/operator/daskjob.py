"""DaskJob: a DaskCluster and a runner pod; the job ends when the runner does, and it always ends.

`decide` is the whole lifecycle as a pure function of what exists (the job, its cluster, its runner pod) and the
time: `JobCreated` -> `ClusterCreated` (the cluster exists; the runner pod is created once its scheduler answers)
-> `Running` (the runner pod runs) -> `Successful` or `Failed`. Flyte polls only `jobStatus`,
so every way a job can get stuck (its cluster invalid or never starting, its runner deleted, unschedulable or
crash-looping, its deadline passed) ends in `Failed` with a condition and an Event saying why. The reconciler
observes, decides, then acts; the runner pod stays after the job finished (its logs are the job's output) until
the DaskJob is deleted, by hand or by `ttlSecondsAfterFinished`. A pod with the runner's name that this job does not
own (a leftover of an earlier job of the same name) decides nothing: it is reported, deleted and replaced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import kr8s
from kr8s.asyncio.objects import Pod

from .. import kubernetes_api, naming, specs, status
from ..kinds import DaskCluster, DaskJob
from ..naming import ClusterPhase, ConditionType, JobStatus, Reason
from . import conditions
from .act import act
from .context import OperatorContext
from .loops import Gone
from .plan import Delete, Event, Plan

Obj = Mapping[str, Any]
JobPlan = Plan[None]

# How long a job's scheduler may be not ready, or its runner pod pending, before the job fails. A job that needs
# less sets activeDeadlineSeconds.
START_TIMEOUT_SECONDS = 600.0
# Restarts of a runner with restartPolicy OnFailure before the job fails (Kubernetes Job's backoffLimit default).
RUNNER_RESTART_LIMIT = 6

# While waiting for its cluster to run, a job looks at it this often (cluster events wake only the cluster's loop).
CLUSTER_POLL_SECONDS = 2.0

FINISHED = (JobStatus.SUCCESSFUL, JobStatus.FAILED)


def _runner_exit(runner: Obj) -> str:
    """Why a runner pod ended, from its containers' last terminated states."""
    return status.exits(runner) or "the runner pod failed"


def _runner_pending(runner: Obj) -> str:
    """Why a runner pod has not started: unschedulable, a waiting container, or just pending."""
    cond = status.unscheduled(runner)
    if cond is not None:
        return f"the runner pod cannot be scheduled: {cond.get('message') or cond.get('reason', '')}"
    waiting = status.waiting(runner, creating_counts=True)
    if waiting is not None:
        return f"runner container {waiting.container} is waiting: {waiting.reason} {waiting.message}"
    return "the runner pod is pending"


def _scheduler_not_ready(cluster: Obj) -> tuple[dt.datetime | None, str]:
    """Since when the cluster's scheduler has not been ready (None: it is ready), and why."""
    if status.phase(cluster) == ClusterPhase.RUNNING:
        return None, ""
    for cond in (cluster.get("status") or {}).get("conditions") or ():
        if cond.get("type") == ConditionType.SCHEDULER_READY and cond.get("status") == "False":
            since = status.parse_time(cond.get("lastTransitionTime"))
            return since or status.parse_time(cluster["metadata"].get("creationTimestamp")), cond.get("message", "")
    phase = status.phase(cluster) or "new"
    return status.parse_time(cluster["metadata"].get("creationTimestamp")), f"the cluster is {phase}"


def _cluster_error(cluster: Obj) -> str:
    for cond in (cluster.get("status") or {}).get("conditions") or ():
        if cond.get("type") == ConditionType.SPEC_VALID and cond.get("status") == "False":
            return str(cond.get("message", ""))
    return "the cluster is in phase Error"


def finish(job: Obj, outcome: JobStatus, reason: str, message: str, now: dt.datetime) -> JobPlan:
    """The transition to Successful or Failed: status, condition, Event; the cleanup follows on the next pass."""
    ok = outcome == JobStatus.SUCCESSFUL
    type_ = ConditionType.JOB_COMPLETE if ok else ConditionType.JOB_FAILED
    return Plan(
        status={"jobStatus": outcome, "endTime": status.rfc3339(now),
                "observedGeneration": job["metadata"].get("generation", 1)},
        conditions=[conditions.condition(type_, True, reason, message)],
        events=[Event(reason, message, not ok)], requeue=0.0)


def decide(job: Obj, cluster: Obj | None, runner: Obj | None, now: dt.datetime,
           domain: str = naming.DEFAULT_CLUSTER_DOMAIN) -> JobPlan:
    """The next step of a DaskJob, from what exists now. Pure: no I/O, `now` is given."""
    meta, spec = job["metadata"], job["spec"]
    current = job.get("status") or {}
    state = current.get("jobStatus")
    name = meta["name"]
    created = status.parse_time(meta.get("creationTimestamp")) or now
    ours = cluster is not None and status.owned_by(cluster, meta.get("uid", ""))
    foreign = None
    if runner is not None and not status.owned_by(runner, meta.get("uid", "")):
        foreign, runner = runner, None  # not this job's runner: never its outcome
    runner_phase = status.phase(runner)

    if state in FINISHED:
        # Clean up (again, if a pass was interrupted), then wait out the TTL.
        cleanup = []
        if ours and not status.gone(cluster):
            cleanup.append(Delete(naming.DASKCLUSTER, name))
        if not status.gone(runner) and not status.finished(runner):
            cleanup.append(Delete("Pod", naming.job_runner_name(name)))
        ttl = spec.get("ttlSecondsAfterFinished")
        ended = status.parse_time(current.get("endTime")) or now
        if ttl is None:
            return Plan(delete=cleanup)
        left = (ended + dt.timedelta(seconds=int(ttl)) - now).total_seconds()
        if left <= 0:
            return Plan(delete=cleanup, delete_self=True, log=["ttlSecondsAfterFinished passed; deleting it"])
        return Plan(delete=cleanup, requeue=left)

    # A finished runner decides the job, even one that finished just after its deadline.
    if runner_phase == "Succeeded":
        return finish(job, JobStatus.SUCCESSFUL, Reason.JOB_SUCCEEDED, "the runner pod completed", now)
    # A runner being deleted may pass through phase Failed on its way out: that is a deletion, not a failure.
    if current.get("jobRunnerPodName") and status.gone(runner):
        return finish(job, JobStatus.FAILED, Reason.RUNNER_DELETED, "the runner pod was deleted", now)
    if runner is not None and runner_phase == "Failed":
        return finish(job, JobStatus.FAILED, Reason.JOB_FAILED, _runner_exit(runner), now)

    timers: list[float] = []
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None:
        left = (created + dt.timedelta(seconds=int(deadline)) - now).total_seconds()
        if left <= 0:
            return finish(job, JobStatus.FAILED, Reason.DEADLINE_EXCEEDED,
                          f"the job did not finish within activeDeadlineSeconds={deadline}", now)
        timers.append(left)

    cluster_created = bool(current.get("clusterName")) and state != JobStatus.JOB_CREATED
    if cluster_created and status.gone(cluster):
        return finish(job, JobStatus.FAILED, Reason.CLUSTER_MISSING, "the job's DaskCluster was deleted", now)

    if cluster is not None:
        if status.phase(cluster) == ClusterPhase.ERROR:
            return finish(job, JobStatus.FAILED, Reason.CLUSTER_FAILED,
                          f"the job's DaskCluster is invalid: {_cluster_error(cluster)}", now)
        since, why = _scheduler_not_ready(cluster)
        if since is not None:
            left = (since + dt.timedelta(seconds=START_TIMEOUT_SECONDS) - now).total_seconds()
            if left <= 0:
                return finish(job, JobStatus.FAILED, Reason.CLUSTER_FAILED,
                              f"the scheduler has not been ready for {START_TIMEOUT_SECONDS:.0f}s: {why}", now)
            timers.append(left)

    if runner is not None and not status.gone(runner):
        if runner_phase in (None, "Pending"):
            since = status.parse_time(runner["metadata"].get("creationTimestamp")) or now
            left = (since + dt.timedelta(seconds=START_TIMEOUT_SECONDS) - now).total_seconds()
            if left <= 0:
                return finish(job, JobStatus.FAILED, Reason.RUNNER_NOT_STARTED,
                              f"not started after {START_TIMEOUT_SECONDS:.0f}s: {_runner_pending(runner)}", now)
            timers.append(left)
        if status.restarts(runner) >= RUNNER_RESTART_LIMIT:
            return finish(job, JobStatus.FAILED, Reason.BACKOFF_LIMIT_EXCEEDED,
                          f"the runner restarted {status.restarts(runner)} times: {_runner_exit(runner)}", now)

    if not state:
        # Flyte polls jobStatus: say at once that the job was seen, then create its children.
        return Plan(status={"jobStatus": JobStatus.JOB_CREATED, "observedGeneration": meta.get("generation", 1)},
                    requeue=0.0)
    new: dict[str, Any] = {}
    if state == JobStatus.JOB_CREATED:
        new.update(jobStatus=JobStatus.CLUSTER_CREATED, clusterName=name)
    # The runner starts once its scheduler answers: a client that finds no scheduler fails or hangs.
    cluster_running = cluster is not None and status.phase(cluster) == ClusterPhase.RUNNING
    create_runner = runner is None and cluster_running
    if (runner is not None or create_runner) and not current.get("jobRunnerPodName"):
        new["jobRunnerPodName"] = naming.job_runner_name(name)
    if runner_phase == "Running" and state != JobStatus.RUNNING:
        new.update(jobStatus=JobStatus.RUNNING, startTime=current.get("startTime") or status.rfc3339(now))
    if runner is None and not cluster_running:
        timers.append(CLUSTER_POLL_SECONDS)  # cluster changes do not wake this loop: look again soon
    create = []
    if cluster is None:
        create.append(specs.job_cluster(job))
    plan: JobPlan = Plan(status=new, create=create)
    if foreign is not None:
        _replace_foreign_runner(plan, foreign)
        timers.append(CLUSTER_POLL_SECONDS)  # its name is free once it is gone
        plan.status.pop("jobRunnerPodName", None)
    elif create_runner:
        create.append(specs.job_runner_pod(job, domain))
    plan.requeue = min(timers) if timers else None
    return plan


def _replace_foreign_runner(plan: JobPlan, foreign: Obj) -> None:
    """Delete a pod with the runner's name that this job did not create (once); its own runner follows."""
    if status.deleting(foreign):
        return
    pod = foreign["metadata"]["name"]
    owners = ", ".join(f"{r.get('kind', '?')} {r.get('name', '?')} (uid {r.get('uid')})"
                       for r in foreign["metadata"].get("ownerReferences") or ()) or "nobody"
    plan.events.append(Event(Reason.RUNNER_NOT_OWNED, (
        f"pod {pod} has this job's runner name but was not created by it (owned by {owners}: a leftover of an "
        "earlier job of this name?); deleting it, and this job's own runner starts once the name is free"),
        warning=True))
    plan.delete.append(Delete("Pod", pod))


def rejected(job: Obj, err: kr8s.ServerError, now: dt.datetime) -> JobPlan:
    """The API server refused the job's cluster or runner as written: that job can never run."""
    return finish(job, JobStatus.FAILED, Reason.INVALID_SPEC, f"the API server rejected it: {err}", now)


class JobReconciler:
    """One DaskJob's loop: observe the job, its cluster and its runner; decide; act."""

    def __init__(self, ctx: OperatorContext, namespace: str, name: str) -> None:
        self.ctx, self.namespace, self.name = ctx, namespace, name

    async def reconcile(self) -> float | None:
        objects, ns, name = self.ctx.objects, self.namespace, self.name
        job = await objects.get(DaskJob, name, ns)
        if job is None or status.deleting(job.raw):
            raise Gone()
        cluster = await objects.get(DaskCluster, name, ns)
        runner = await objects.get(Pod, naming.job_runner_name(name), ns)
        now = dt.datetime.now(dt.UTC)
        plan = decide(job.raw, cluster.raw if cluster else None, runner.raw if runner else None, now,
                      self.ctx.settings.cluster_domain)
        try:
            await act(self.ctx, job, plan)
        except kr8s.ServerError as err:
            if not (plan.create and kubernetes_api.is_rejection(err)):
                raise
            plan = rejected(job.raw, err, now)  # creates come first in a plan: nothing else of it was applied
            await act(self.ctx, job, plan)
        return None if plan.delete_self else plan.requeue
