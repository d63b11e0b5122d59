"""Job → Pods run to completion, as kube-controller-manager's Job controller does it, and the TTL-after-finished
controller that deletes finished Jobs.

The visible mechanics are reproduced because clients wait on them: `kubectl wait --for=condition=complete`, the
`active`/`ready`/`succeeded`/`failed`/`terminating` counters, `startTime`/`completionTime`, the conditions in the
order a 1.31+ server writes them (`SuccessCriteriaMet` or `FailureTarget` first, `Complete` or `Failed` once no pod
is left running), pods counted through the `batch.kubernetes.io/job-tracking` finalizer, Indexed completion (the
index annotation, label, hostname and `JOB_COMPLETION_INDEX`), `backoffLimit` with the pod failure back-off
(10 s doubling), `activeDeadlineSeconds`, `suspend` and `podReplacementPolicy`.

Decide, then act: `plan_job` is pure; the controller collects pods, calls it and writes what it says.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localkube.apiserver.core import POD_KEY
from localkube.apiserver.errors import ApiError
from localkube.apiserver.store import DELETED, Event
from localkube.controllers import events
from localkube.controllers.base import Key, KeyedController
from localkube.controllers.workloads import (
    controller_of,
    deletion_order,
    is_ready,
    is_terminating,
    owner_reference,
    parse_time,
)

Obj = dict[str, Any]

JOB_KEY = ("batch", "jobs")
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"  # annotation, and label (PodIndexLabel)
INDEX_ENV = "JOB_COMPLETION_INDEX"
COMPONENT = "job-controller"
BACKOFF_BASE = 10.0  # DefaultJobPodFailureBackOff
BACKOFF_CAP = 600.0  # MaxJobPodFailureBackOff

BACKOFF_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")


# --------------------------------------------------------------------------- small helpers


def _format_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def condition_of(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    """The job's condition of type `kind` when it is True."""
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def finished_at(job: Mapping[str, Any]) -> dt.datetime | None:
    """When the job got its Complete or Failed condition (None: not finished)."""
    for kind in ("Complete", "Failed"):
        cond = condition_of(job, kind)
        if cond is not None:
            return parse_time(cond.get("lastTransitionTime"))
    return None


def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def terminated(pod: Mapping[str, Any]) -> bool:
    """Done for counting: a terminal phase, or deleted and released by its kubelet (grace 0) or never bound."""
    if _phase(pod) in ("Succeeded", "Failed"):
        return True
    meta = pod["metadata"]
    return bool(meta.get("deletionTimestamp")) and (
        int(meta.get("deletionGracePeriodSeconds") or 0) == 0 or not (pod.get("spec") or {}).get("nodeName"))


def tracked(pod: Mapping[str, Any]) -> bool:
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or ())


def completion_index(pod: Mapping[str, Any]) -> int | None:
    text = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    return int(text) if isinstance(text, str) and text.isdigit() else None


def parse_indexes(text: str | None) -> set[int]:
    """`"1,3-5"` → {1, 3, 4, 5} (status.completedIndexes)."""
    out: set[int] = set()
    for part in (text or "").split(","):
        first, _, last = part.partition("-")
        if first.strip().isdigit():
            out.update(range(int(first), int(last if last.strip().isdigit() else first) + 1))
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    """Ascending ranges, `"1,3-5"`; consecutive pairs are a range too, as the real controller writes them."""
    parts: list[str] = []
    run: list[int] = []
    for index in sorted(set(indexes)):
        if run and index == run[-1] + 1:
            run.append(index)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [index]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def finish_time(pod: Mapping[str, Any]) -> dt.datetime | None:
    """When a pod finished: its last container's finishedAt, else when it stopped being Ready."""
    status = pod.get("status") or {}
    times = [parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for c in status.get("containerStatuses") or ()]
    found = [t for t in times if t is not None]
    if found:
        return max(found)
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready":
            return parse_time(cond.get("lastTransitionTime"))
    return parse_time(pod["metadata"].get("creationTimestamp"))


def backoff_remaining(pods: Sequence[Mapping[str, Any]], now: dt.datetime, base: float) -> float:
    """Seconds before pods may be created again: base * 2^(n-1) after n failures since the last success (capped)."""
    done = [(finish_time(p), _phase(p)) for p in pods if _phase(p) in ("Succeeded", "Failed")]
    successes = [t for t, phase in done if phase == "Succeeded" and t is not None]
    last_success = max(successes, default=None)
    failures = [t for t, phase in done if phase == "Failed" and t is not None
                and (last_success is None or t > last_success)]
    if not failures:
        return 0.0
    delay = min(base * 2 ** (len(failures) - 1), BACKOFF_CAP)
    return max(0.0, (max(failures) + dt.timedelta(seconds=delay) - now).total_seconds())


def past_backoff_limit_on_failure(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> bool:
    """restartPolicy OnFailure: container restarts of running pods count toward backoffLimit."""
    spec = job.get("spec") or {}
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = sum(int(c.get("restartCount") or 0) for p in pods if _phase(p) in ("Running", "Pending")
                   for c in [*((p.get("status") or {}).get("initContainerStatuses") or ()),
                             *((p.get("status") or {}).get("containerStatuses") or ())])
    limit = int(spec.get("backoffLimit", 6))
    return restarts > 0 if limit == 0 else restarts >= limit


def _condition(kind: str, reason: str, message: str, now: str, status: str = "True") -> Obj:
    return {"type": kind, "status": status, "lastProbeTime": now, "lastTransitionTime": now, "reason": reason,
            "message": message}


# --------------------------------------------------------------------------- decide


@dataclass
class JobPlan:
    create: list[int | None] = field(default_factory=list)  # completion indexes; None for NonIndexed pods
    delete: list[str] = field(default_factory=list)  # active pods to remove
    release: list[str] = field(default_factory=list)  # pods whose tracking finalizer comes off (now counted)
    status: Obj = field(default_factory=dict)
    recheck_in: float | None = None
    events: list[tuple[str, str, bool]] = field(default_factory=list)  # (reason, message, warning)


def plan_job(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: dt.datetime,
             backoff_base: float = BACKOFF_BASE) -> JobPlan:
    """Count finished pods, decide whether the job has met its success criteria or failed, and create or
    delete pods toward min(parallelism, remaining completions); the status describes the result."""
    spec = job.get("spec") or {}
    old = job.get("status") or {}
    stamp = _format_time(now)
    plan = JobPlan()
    conditions = [dict(c) for c in old.get("conditions") or ()]
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    parallelism = int(spec["parallelism"]) if spec.get("parallelism") is not None else 1
    done = {c["type"] for c in conditions if c.get("status") == "True"}
    finished = bool(done & {"Complete", "Failed"})
    target = next((c for c in conditions if c.get("type") in ("FailureTarget", "SuccessCriteriaMet")
                   and c.get("status") == "True"), None)
    failing = (target is not None and target["type"] == "FailureTarget") or "Failed" in done

    # Count what finished since the last pass; their tracking finalizers come off. A pod that ended without
    # failing (deleted while running) counts as failed only once the job is failing.
    newly = [p for p in pods if tracked(p) and terminated(p)]
    plan.release = [p["metadata"]["name"] for p in newly]
    succeeded_new = [p for p in newly if _phase(p) == "Succeeded"]
    failed = int(old.get("failed") or 0) + sum(
        1 for p in newly if _phase(p) == "Failed" or (failing and _phase(p) != "Succeeded"))
    completed: set[int] = set()
    if indexed:
        completed = parse_indexes(old.get("completedIndexes")) | {
            i for i in map(completion_index, succeeded_new) if i is not None and i < int(completions or 0)}
        succeeded = len(completed)
    else:
        succeeded = int(old.get("succeeded") or 0) + len(succeeded_new)
    active = [p for p in pods if not is_terminating(p) and _phase(p) not in ("Succeeded", "Failed")]
    terminating = [p for p in pods if is_terminating(p) and not terminated(p)]

    suspended = bool(spec.get("suspend"))
    start = old.get("startTime")
    if not finished and target is None:
        suspended_cond = next((c for c in conditions if c.get("type") == "Suspended"), None)
        if suspended and (suspended_cond is None or suspended_cond.get("status") != "True"):
            conditions = [c for c in conditions if c.get("type") != "Suspended"]
            conditions.append(_condition("Suspended", "JobSuspended", "Job suspended", stamp))
            plan.events.append(("Suspended", "Job suspended", False))
        elif not suspended and suspended_cond is not None and suspended_cond.get("status") == "True":
            suspended_cond.update(_condition("Suspended", "JobResumed", "Job resumed", stamp, "False"))
            start = stamp  # a resumed job's deadline counts from now
            plan.events.append(("Resumed", "Job resumed", False))
        if start is None and not suspended:
            start = stamp
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time(start)
        if int(spec.get("backoffLimit", 6)) < failed or past_backoff_limit_on_failure(job, pods):
            target = _condition("FailureTarget", *BACKOFF_EXCEEDED, stamp)
        elif deadline is not None and started is not None and not suspended:
            left = (started + dt.timedelta(seconds=int(deadline)) - now).total_seconds()
            if left <= 0:
                target = _condition("FailureTarget", *DEADLINE_EXCEEDED, stamp)
            else:
                plan.recheck_in = left
        if target is not None:
            conditions.append(target)
            failing = True

    if finished or target is not None:
        plan.delete = [p["metadata"]["name"] for p in active]
        plan.release = [p["metadata"]["name"] for p in pods if tracked(p) and (terminated(p) or finished)]
    elif suspended:
        plan.delete = [p["metadata"]["name"] for p in active]
    else:
        _manage(plan, job, pods, active, terminating, completed, succeeded, parallelism, now, backoff_base)
        if _complete(spec, indexed, completed, succeeded, len(active) - len(plan.delete) + len(plan.create)):
            target = _condition("SuccessCriteriaMet", *COMPLETIONS_REACHED, stamp)
            conditions.append(target)
            plan.delete = [p["metadata"]["name"] for p in active]
            plan.create = []

    still_active = [p for p in active if p["metadata"]["name"] not in plan.delete]
    left_running = len(still_active) + len(plan.create) + len(terminating) + len(plan.delete)
    completion_time = old.get("completionTime")
    if target is not None and not finished and left_running == 0:
        final = "Failed" if failing else "Complete"
        conditions.append(_condition(final, target["reason"], target["message"], stamp))
        if final == "Complete":
            completion_time = stamp
            plan.events.append(("Completed", "Job completed", False))
        else:
            plan.events.append((target["reason"], target["message"], True))

    status: Obj = {"active": len(still_active) + len(plan.create), "succeeded": succeeded, "failed": failed}
    status = {k: v for k, v in status.items() if v}  # omitempty
    status["ready"] = sum(1 for p in still_active if is_ready(p))
    status["terminating"] = len(terminating) + len(plan.delete)
    status["uncountedTerminatedPods"] = {}
    if start is not None:
        status["startTime"] = start
    if completion_time is not None:
        status["completionTime"] = completion_time
    if indexed and completed:
        status["completedIndexes"] = format_indexes(completed)
    if conditions:
        status["conditions"] = conditions
    plan.status = status
    return plan


def _complete(spec: Mapping[str, Any], indexed: bool, completed: set[int], succeeded: int, active: int) -> bool:
    completions = spec.get("completions")
    if completions is None:  # a work queue: done when one pod succeeded and none still runs
        return succeeded > 0 and active == 0
    if indexed:
        return len(completed) >= int(completions)
    return succeeded >= int(completions)


def _manage(plan: JobPlan, job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]],
            active: Sequence[Mapping[str, Any]], terminating: Sequence[Mapping[str, Any]], completed: set[int],
            succeeded: int, parallelism: int, now: dt.datetime, backoff_base: float) -> None:
    """manageJob: delete surplus active pods, create missing ones unless the failure back-off says wait."""
    spec = job.get("spec") or {}
    completions = spec.get("completions")
    wait_for_terminating = spec.get("podReplacementPolicy") == "Failed"
    if spec.get("completionMode") == "Indexed":
        total = int(completions or 0)
        keep: dict[int, Mapping[str, Any]] = {}
        for pod in sorted(active, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])):
            index = completion_index(pod)
            if index is None or index >= total or index in completed or index in keep:
                plan.delete.append(pod["metadata"]["name"])
            else:
                keep[index] = pod
        busy = set(keep) | ({completion_index(p) for p in terminating} if wait_for_terminating else set())
        room = min(parallelism, total - len(completed)) - len(keep)
        missing = [i for i in range(total) if i not in completed and i not in busy]
        wanted: list[int | None] = list(missing[:max(room, 0)])
    else:
        if completions is None:
            want = len(active) if succeeded > 0 else parallelism
        else:
            want = max(0, min(int(completions) - succeeded, parallelism))
        surplus = len(active) - want
        if surplus > 0:
            plan.delete += [p["metadata"]["name"] for p in deletion_order(active)[:surplus]]
        missing_count = want - len(active) - (len(terminating) if wait_for_terminating else 0)
        wanted = [None] * max(missing_count, 0)
    if not wanted:
        return
    wait = backoff_remaining(pods, now, backoff_base)
    if wait > 0:
        plan.recheck_in = wait if plan.recheck_in is None else min(plan.recheck_in, wait)
        return
    plan.create = wanted


def job_pod(job: Mapping[str, Any], index: int | None) -> Obj:
    """A pod of the job's template, tracked by the job's finalizer; Indexed pods carry their index."""
    template = (job.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    name = job["metadata"]["name"]
    meta: Obj = {"generateName": f"{name}-" if index is None else f"{name}-{index}-",
                 "namespace": job["metadata"]["namespace"], "labels": dict(tmeta.get("labels") or {}),
                 "ownerReferences": [owner_reference(job)],
                 "finalizers": [*(tmeta.get("finalizers") or ()), TRACKING_FINALIZER]}
    if tmeta.get("annotations"):
        meta["annotations"] = copy.deepcopy(tmeta["annotations"])
    spec = copy.deepcopy(template.get("spec") or {})
    if index is not None:
        meta.setdefault("annotations", {})[INDEX_KEY] = str(index)
        meta["labels"][INDEX_KEY] = str(index)
        spec["hostname"] = f"{name}-{index}"
        env_var = {"name": INDEX_ENV, "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                 "fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}}
        for group in ("initContainers", "containers"):
            for container in spec.get(group) or ():
                env = container.setdefault("env", [])
                if not any(e.get("name") == INDEX_ENV for e in env):
                    env.append(copy.deepcopy(env_var))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


# --------------------------------------------------------------------------- act


class JobController(KeyedController):
    """Runs each Job's pods to completion or failure and keeps its status; frees the pods it no longer tracks."""

    watched = JOB_KEY
    backoff_base = BACKOFF_BASE  # tests shorten the failure back-off

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self._orphans: set[Key] = set()

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key == JOB_KEY:
            return ((event.namespace, event.obj["metadata"]["name"]),)
        if event.key == POD_KEY:
            ref = controller_of(event.obj)
            if ref is not None and ref.get("kind") == "Job":
                return ((event.namespace, ref["name"]),)
            if tracked(event.obj) and event.type != DELETED:  # orphaned (--cascade=orphan): nobody counts it
                self._orphans.add((event.namespace, event.obj["metadata"]["name"]))
                self.kick()
        return ()

    def handle(self, event: Event | None) -> None:
        orphans, self._orphans = self._orphans, set()
        for namespace, name in sorted(orphans):
            pod = self.core.store.get(POD_KEY, namespace, name)
            if pod is not None and tracked(pod) and controller_of(pod) is None:
                self._release(namespace, name)
        super().handle(event)

    def sync(self, namespace: str, name: str) -> None:
        job = self.core.store.get(JOB_KEY, namespace, name)
        pods = [p for p in self.core.store.list(POD_KEY, namespace)
                if (ref := controller_of(p)) is not None and ref.get("kind") == "Job" and ref.get("name") == name]
        uid = job["metadata"]["uid"] if job is not None and not job["metadata"].get("deletionTimestamp") else None
        mine = [p for p in pods if (controller_of(p) or {}).get("uid") == uid]
        for pod in pods:  # pods of a job that is gone or going (or of a same-named predecessor) are not counted
            if pod not in mine and tracked(pod):
                self._release(namespace, pod["metadata"]["name"])
        if job is None or uid is None:
            return
        plan = plan_job(job, mine, self.now(), self.backoff_base)
        pod_kind = self.core.kind_of(POD_KEY)
        for pod_name in plan.release:
            self._release(namespace, pod_name)
        for pod_name in plan.delete:
            try:
                self.core.delete(pod_kind, namespace, pod_name)
                events.record(self.core, job, "SuccessfulDelete", f"Deleted pod: {pod_name}", COMPONENT)
            except ApiError as err:
                if err.code != 404:
                    raise
        for index in plan.create:
            pod = self.core.create(pod_kind, namespace, job_pod(job, index))[0]
            events.record(self.core, job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", COMPONENT)
        for reason, message, warning in plan.events:
            events.record(self.core, job, reason, message, COMPONENT, warning=warning)
        if plan.recheck_in is not None:
            self.sync_later((namespace, name), plan.recheck_in)
        if (job.get("status") or {}) != plan.status:
            status = plan.status
            self.core.mutate(self.core.kind_of(JOB_KEY), namespace, name,
                             lambda o: o.__setitem__("status", copy.deepcopy(status)), subresource="status")

    def _release(self, namespace: str, name: str) -> None:
        def drop(pod: Obj) -> None:
            pod["metadata"]["finalizers"] = [f for f in pod["metadata"].get("finalizers") or ()
                                             if f != TRACKING_FINALIZER]

        try:
            self.core.mutate(self.core.kind_of(POD_KEY), namespace, name, drop)
        except ApiError as err:
            if err.code != 404:
                raise


class TTLAfterFinishedController(KeyedController):
    """Deletes a finished Job `ttlSecondsAfterFinished` after its Complete or Failed condition (Foreground, so its
    pods go first, as the real ttl-after-finished controller deletes)."""

    watched = JOB_KEY

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key == JOB_KEY and event.type != DELETED:
            spec = event.obj.get("spec") or {}
            if spec.get("ttlSecondsAfterFinished") is not None and finished_at(event.obj) is not None:
                return ((event.namespace, event.obj["metadata"]["name"]),)
        return ()

    def sync(self, namespace: str, name: str) -> None:
        job = self.core.store.get(JOB_KEY, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        since = finished_at(job)
        if ttl is None or since is None:
            return
        left = (since + dt.timedelta(seconds=int(ttl)) - self.now()).total_seconds()
        if left > 0:
            self.sync_later((namespace, name), left)
            return
        try:
            self.core.delete(self.core.kind_of(JOB_KEY), namespace, name,
                             preconditions={"uid": job["metadata"]["uid"]}, propagation="Foreground")
        except ApiError as err:
            if err.code != 404:
                raise
