"""DaskJob: a DaskCluster and a runner pod; the job ends when the runner does, and it always ends.

`decide` is the whole lifecycle as a pure function of what exists (the job, its cluster, its runner pod) and the
time: `JobCreated` -> `ClusterCreated` (the cluster exists; the runner pod is created once its scheduler answers)
-> `Running` (the runner pod runs) -> `Successful` or `Failed`. Flyte polls only `jobStatus`,
so every way a job can get stuck (its cluster invalid or never starting, its runner deleted, unschedulable or
crash-looping, its deadline passed) ends in `Failed` with a condition and an Event saying why. The reconciler
observes, decides, then acts; the runner pod stays after the job finished (its logs are the job's output) until
the DaskJob is deleted, by hand or by `ttlSecondsAfterFinished`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kr8s
from kr8s.asyncio.objects import Pod

from .. import naming, specs
from ..naming import ClusterPhase, ConditionType, JobStatus, Reason
from ..resources import DaskCluster, DaskJob
from . import conditions
from .context import OperatorContext

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]

# How long a job's scheduler may be not ready, or its runner pod pending, before the job fails. A module
# constant because settings.py is not this module's to change; a job that needs less sets activeDeadlineSeconds.
START_TIMEOUT_SECONDS = 600.0
# Restarts of a runner with restartPolicy OnFailure before the job fails (Kubernetes Job's backoffLimit default).
RUNNER_RESTART_LIMIT = 6

# While waiting for its cluster to run, a job looks at it this often (cluster events wake only the cluster's loop).
CLUSTER_POLL_SECONDS = 2.0

FINISHED = (JobStatus.SUCCESSFUL, JobStatus.FAILED)
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Decision:
    """What one pass should do: status fields to merge, wanted conditions, children to create or delete."""

    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[dict[str, Any]] | None = None  # None: leave the job's conditions as they are
    create_cluster: bool = False
    create_runner: bool = False
    delete_cluster: bool = False
    delete_runner: bool = False
    delete_job: bool = False
    event: tuple[str, str, bool] | None = None  # (reason, message, warning)
    requeue: float | None = None  # seconds until a timer fires (None: wait for events or the resync)


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _owned_by(obj: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or ())


def _gone(obj: Obj | None) -> bool:
    return obj is None or bool(obj["metadata"].get("deletionTimestamp"))


def _runner_exit(runner: Obj) -> str:
    """Why a runner pod ended, from its containers' last terminated states."""
    parts = []
    for cs in (runner.get("status") or {}).get("containerStatuses") or ():
        term = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if term:
            text = f"container {cs.get('name')} exited with code {term.get('exitCode')}"
            if term.get("reason"):
                text += f" ({term['reason']})"
            if term.get("message"):
                text += f": {term['message']}"
            parts.append(text)
    return "; ".join(parts) or "the runner pod failed"


def _restarts(runner: Obj) -> int:
    return max((int(cs.get("restartCount") or 0) for cs in (runner.get("status") or {}).get("containerStatuses")
                or ()), default=0)


def _runner_pending(runner: Obj) -> str:
    """Why a runner pod has not started: unschedulable, a waiting container, or just pending."""
    status = runner.get("status") or {}
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"the runner pod cannot be scheduled: {cond.get('message') or cond.get('reason', '')}"
    for cs in status.get("containerStatuses") or ():
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return f"runner container {cs.get('name')} is waiting: {waiting['reason']} {waiting.get('message', '')}"
    return "the runner pod is pending"


def _scheduler_not_ready(cluster: Obj) -> tuple[dt.datetime | None, str]:
    """Since when the cluster's scheduler has not been ready (None: it is ready), and why."""
    status = cluster.get("status") or {}
    if status.get("phase") == ClusterPhase.RUNNING:
        return None, ""
    for cond in status.get("conditions") or ():
        if cond.get("type") == ConditionType.SCHEDULER_READY and cond.get("status") == "False":
            since = parse_time(cond.get("lastTransitionTime"))
            return since or parse_time(cluster["metadata"].get("creationTimestamp")), cond.get("message", "")
    return parse_time(cluster["metadata"].get("creationTimestamp")), f"the cluster is {status.get('phase', 'new')}"


def _cluster_error(cluster: Obj) -> str:
    for cond in (cluster.get("status") or {}).get("conditions") or ():
        if cond.get("type") == ConditionType.SPEC_VALID and cond.get("status") == "False":
            return cond.get("message", "")
    return "the cluster is in phase Error"


def finish(job: Obj, outcome: JobStatus, reason: str, message: str, now: dt.datetime) -> Decision:
    """The transition to Successful or Failed: status, condition, Event; the cleanup follows on the next pass."""
    ok = outcome == JobStatus.SUCCESSFUL
    type_ = ConditionType.JOB_COMPLETE if ok else ConditionType.JOB_FAILED
    return Decision(
        status={"jobStatus": outcome, "endTime": rfc3339(now),
                "observedGeneration": job["metadata"].get("generation", 1)},
        conditions=[conditions.condition(type_, True, reason, message)],
        event=(reason, message, not ok), requeue=0.0)


def decide(job: Obj, cluster: Obj | None, runner: Obj | None, now: dt.datetime) -> Decision:
    """The next step of a DaskJob, from what exists now. Pure: no I/O, `now` is given."""
    meta, spec = job["metadata"], job["spec"]
    status = job.get("status") or {}
    state = status.get("jobStatus")
    created = parse_time(meta.get("creationTimestamp")) or now
    ours = cluster is not None and _owned_by(cluster, meta.get("uid", ""))

    if state in FINISHED:
        # Clean up (again, if a pass was interrupted), then wait out the TTL.
        delete_cluster = ours and not _gone(cluster)
        delete_runner = not _gone(runner) and (runner.get("status") or {}).get("phase") not in TERMINAL_PHASES
        ttl = spec.get("ttlSecondsAfterFinished")
        ended = parse_time(status.get("endTime")) or now
        if ttl is None:
            return Decision(delete_cluster=delete_cluster, delete_runner=delete_runner)
        left = (ended + dt.timedelta(seconds=int(ttl)) - now).total_seconds()
        if left <= 0:
            return Decision(delete_cluster=delete_cluster, delete_runner=delete_runner, delete_job=True)
        return Decision(delete_cluster=delete_cluster, delete_runner=delete_runner, requeue=left)

    # A finished runner decides the job, even one that finished just after its deadline.
    phase = (runner.get("status") or {}).get("phase") if runner is not None else None
    if phase == "Succeeded":
        return finish(job, JobStatus.SUCCESSFUL, Reason.JOB_SUCCEEDED, "the runner pod completed", now)
    # A runner being deleted may pass through phase Failed on its way out: that is a deletion, not a failure.
    if status.get("jobRunnerPodName") and _gone(runner):
        return finish(job, JobStatus.FAILED, Reason.RUNNER_DELETED, "the runner pod was deleted", now)
    if phase == "Failed":
        return finish(job, JobStatus.FAILED, Reason.JOB_FAILED, _runner_exit(runner), now)  # type: ignore[arg-type]

    timers: list[float] = []
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None:
        left = (created + dt.timedelta(seconds=int(deadline)) - now).total_seconds()
        if left <= 0:
            return finish(job, JobStatus.FAILED, Reason.DEADLINE_EXCEEDED,
                          f"the job did not finish within activeDeadlineSeconds={deadline}", now)
        timers.append(left)

    cluster_created = bool(status.get("clusterName")) and state != JobStatus.JOB_CREATED
    if cluster_created and _gone(cluster):
        return finish(job, JobStatus.FAILED, Reason.CLUSTER_MISSING, "the job's DaskCluster was deleted", now)

    if cluster is not None:
        if (cluster.get("status") or {}).get("phase") == ClusterPhase.ERROR:
            return finish(job, JobStatus.FAILED, Reason.CLUSTER_FAILED,
                          f"the job's DaskCluster is invalid: {_cluster_error(cluster)}", now)
        since, why = _scheduler_not_ready(cluster)
        if since is not None:
            left = (since + dt.timedelta(seconds=START_TIMEOUT_SECONDS) - now).total_seconds()
            if left <= 0:
                return finish(job, JobStatus.FAILED, Reason.CLUSTER_FAILED,
                              f"the scheduler has not been ready for {START_TIMEOUT_SECONDS:.0f}s: {why}", now)
            timers.append(left)

    if runner is not None and not _gone(runner):
        if phase in (None, "Pending"):
            since = parse_time(runner["metadata"].get("creationTimestamp")) or now
            left = (since + dt.timedelta(seconds=START_TIMEOUT_SECONDS) - now).total_seconds()
            if left <= 0:
                return finish(job, JobStatus.FAILED, Reason.RUNNER_NOT_STARTED,
                              f"not started after {START_TIMEOUT_SECONDS:.0f}s: {_runner_pending(runner)}", now)
            timers.append(left)
        if _restarts(runner) >= RUNNER_RESTART_LIMIT:
            return finish(job, JobStatus.FAILED, Reason.BACKOFF_LIMIT_EXCEEDED,
                          f"the runner restarted {_restarts(runner)} times: {_runner_exit(runner)}", now)

    if not state:
        # Flyte polls jobStatus: say at once that the job was seen, then create its children.
        return Decision(status={"jobStatus": JobStatus.JOB_CREATED,
                                "observedGeneration": meta.get("generation", 1)}, requeue=0.0)
    name = meta["name"]
    new: dict[str, Any] = {}
    if state == JobStatus.JOB_CREATED:
        new.update(jobStatus=JobStatus.CLUSTER_CREATED, clusterName=name)
    # The runner starts once its scheduler answers: a client that finds no scheduler fails or hangs.
    cluster_running = cluster is not None and (cluster.get("status") or {}).get("phase") == ClusterPhase.RUNNING
    create_runner = runner is None and cluster_running
    if (runner is not None or create_runner) and not status.get("jobRunnerPodName"):
        new["jobRunnerPodName"] = naming.job_runner_name(name)
    if phase == "Running" and state != JobStatus.RUNNING:
        new.update(jobStatus=JobStatus.RUNNING, startTime=status.get("startTime") or rfc3339(now))
    if runner is None and not cluster_running:
        timers.append(CLUSTER_POLL_SECONDS)  # cluster changes do not wake this loop: look again soon
    return Decision(status=new, create_cluster=cluster is None, create_runner=create_runner,
                    requeue=min(timers) if timers else None)


class JobReconciler:
    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx

    async def reconcile(self, namespace: str, name: str) -> float | None:
        kube = self.ctx.kube
        job = await kube.get(DaskJob, name, namespace)
        if job is None or job.raw["metadata"].get("deletionTimestamp"):
            return None
        cluster = await kube.get(DaskCluster, name, namespace)
        runner = await kube.get(Pod, naming.job_runner_name(name), namespace)
        now = dt.datetime.now(dt.UTC)
        decision = decide(job.raw, cluster.raw if cluster else None, runner.raw if runner else None, now)
        try:
            await self._create(job, decision)
        except kr8s.ServerError as err:
            if err.response is None or err.response.status_code not in (400, 422):
                raise
            # The API server rejects the cluster or runner as written: that job can never run.
            decision = finish(job.raw, JobStatus.FAILED, Reason.INVALID_SPEC, f"the API server rejected it: {err}",
                              now)
        await self._write_status(job, decision)
        if decision.event is not None:
            reason, message, warning = decision.event
            log.log(logging.WARNING if warning else logging.INFO, "DaskJob %s/%s %s: %s", namespace, name,
                    decision.status.get("jobStatus"), message)
            await kube.event(job, reason, message, warning=warning)
        if decision.delete_runner and runner is not None:
            await kube.delete(runner)
        if decision.delete_cluster and cluster is not None:
            await kube.delete(cluster)
        if decision.delete_job:
            log.info("DaskJob %s/%s: ttlSecondsAfterFinished passed; deleting it", namespace, name)
            await kube.delete(job)
            return None
        return decision.requeue

    async def _create(self, job: DaskJob, decision: Decision) -> None:
        if decision.create_cluster:
            await self.ctx.kube.create(specs.job_cluster(job.raw))
        if decision.create_runner:
            await self.ctx.kube.create(specs.job_runner_pod(job.raw, self.ctx.settings.cluster_domain))

    async def _write_status(self, job: DaskJob, decision: Decision) -> None:
        status = dict(decision.status)
        current = job.raw.get("status") or {}
        if decision.conditions is not None and not conditions.same(current.get("conditions"), decision.conditions):
            status["conditions"] = conditions.merge(current.get("conditions"), decision.conditions)
        if status:
            await self.ctx.kube.patch_status(job, status)
