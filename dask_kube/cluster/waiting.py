"""Bounded waits on Kubernetes objects through watches, and the explanations given when they time out.

`wait_for` refreshes once, then follows a watch (re-established when the server ends it) until a predicate holds,
under one deadline. When the deadline passes it raises what `explain` builds, so a timeout says *why*: the
scheduler pod's phase and waiting reason, its last log lines, or that no operator ever acted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
import kr8s
from distributed.exceptions import WorkerStartTimeoutError
from kr8s.asyncio.objects import APIObject, Pod

from .. import naming
from ..errors import OperatorNotRunningError, SchedulerStartTimeoutError, SchedulerStartupError, SpecError
from ..naming import ClusterPhase, ConditionType, Reason
from ..resources import DaskCluster

log = logging.getLogger(__name__)
Obj = dict[str, Any]
T = TypeVar("T", bound=APIObject)
CRASHING = ("CrashLoopBackOff", "Error")
IMAGE_PULL = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName")
TRANSIENT = (httpx.TransportError, kr8s.ServerError, OSError)


async def wait_for(
    obj: T,
    done: Callable[[Obj | None], bool],
    within: float | None,
    explain: Callable[[T], Awaitable[BaseException]] | None = None,
    on_change: Callable[[Obj | None], None] | None = None,
) -> T:
    """Wait until `done(obj.raw)` (or `done(None)` once the object is gone), for at most `within` seconds
    (None: until cancelled, for background followers)."""
    api = obj.api
    assert api is not None
    try:
        async with asyncio.timeout(within):
            while True:
                try:
                    try:
                        await obj.refresh()
                        raw: Obj | None = obj.raw
                    except kr8s.NotFoundError:
                        raw = None
                    if on_change:
                        on_change(raw)
                    if done(raw):
                        return obj
                    since = raw["metadata"].get("resourceVersion") if raw else None
                    # aclosing: the watch's stream is closed here, in this task, not later by the garbage collector.
                    async with contextlib.aclosing(api.async_watch(
                            type(obj), namespace=obj.namespace, field_selector=f"metadata.name={obj.name}",
                            since=since)) as events:
                        async for event, new in events:
                            raw = None if event == "DELETED" else new.raw
                            if raw is not None:
                                obj.raw = raw
                            if on_change:
                                on_change(raw)
                            if done(raw):
                                return obj
                except TRANSIENT as err:  # an API server restart or a dropped watch: look again shortly
                    log.debug("watch of %s %s interrupted: %s", obj.kind, obj.name, err)
                    await asyncio.sleep(0.5)
    except TimeoutError:
        if explain is None:
            raise TimeoutError(f"{obj.kind} {obj.namespace}/{obj.name}: condition not met within {within}s")
        raise await explain(obj) from None


# -- reading status --------------------------------------------------------------------------------------------


def phase(raw: Obj | None) -> str | None:
    return ((raw or {}).get("status") or {}).get("phase")


def condition(raw: Obj | None, type_: str) -> Mapping[str, Any]:
    return next((c for c in ((raw or {}).get("status") or {}).get("conditions") or () if c.get("type") == type_), {})


def pod_state(raw: Obj | None) -> tuple[str, str | None, str]:
    """(phase, reason, message) of a pod, where reason is the most telling one: Unschedulable, a container's
    waiting reason (ImagePullBackOff, CrashLoopBackOff) or its last termination reason."""
    if raw is None:
        return "Missing", None, "the pod does not exist"
    status = raw.get("status") or {}
    pod_phase = status.get("phase") or "Pending"
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return pod_phase, cond.get("reason") or "Unschedulable", cond.get("message", "")
    for cs in status.get("containerStatuses") or ():
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") and waiting["reason"] != "ContainerCreating":
            return pod_phase, waiting["reason"], waiting.get("message", "")
        terminated = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if terminated and terminated.get("exitCode"):
            return pod_phase, terminated.get("reason") or "Error", f"exit code {terminated.get('exitCode')}"
    return pod_phase, None, ""


def is_ready(raw: Obj | None) -> bool:
    """The pod's Ready condition is True (its readiness probe passes, so its Service routes to it)."""
    return condition(raw, "Ready").get("status") == "True"


def restarted(raw: Obj | None) -> bool:
    return any(cs.get("restartCount", 0) for cs in ((raw or {}).get("status") or {}).get("containerStatuses") or ())


async def pod_logs(pod: Pod, container: str | None = None, previous: bool = False, tail: int | None = None) -> str:
    """A pod's log as one string; an empty string when there is none (yet)."""
    try:
        lines = [line async for line in pod.logs(container=container, previous=previous, tail_lines=tail,
                                                 timeout=30)]
    except (kr8s.ServerError, kr8s.NotFoundError, httpx.HTTPError) as err:
        log.debug("no logs for %s (previous=%s): %s", pod.name, previous, err)
        return ""
    return "\n".join(lines)


async def crash_logs(pod: Pod, tail: int = 50) -> str:
    """The last lines of the crashed instance, else of the current one."""
    return await pod_logs(pod, previous=True, tail=tail) or await pod_logs(pod, tail=tail)


# -- the cluster start-up ---------------------------------------------------------------------------------------


def startup_settled(raw: Obj | None) -> bool:
    """Stop waiting: Running, Error, a crash-looping scheduler, or the cluster is gone."""
    return (raw is None or phase(raw) in (ClusterPhase.RUNNING, ClusterPhase.ERROR)
            or condition(raw, ConditionType.SCHEDULER_READY).get("reason") == Reason.SCHEDULER_CRASH_LOOP)


async def scheduler_pod(cluster: DaskCluster) -> Pod | None:
    try:
        pod = Pod({"metadata": {"name": naming.scheduler_name(cluster.name)}}, namespace=cluster.namespace,
                  api=cluster.api)
        await pod.refresh()
        return pod
    except kr8s.NotFoundError:
        return None


async def explain_startup(cluster: DaskCluster, within: float) -> BaseException:
    """Why a DaskCluster is not Running after `within` seconds, as the exception to raise."""
    ref = f"DaskCluster {cluster.namespace}/{cluster.name}"
    if not phase(cluster.raw):
        return OperatorNotRunningError(
            f"{ref} was created but no operator acted on it within {within:g}s (status.phase is still unset). "
            "Is the dask_kube operator running and watching this namespace? "
            "Check with `kubectl get pods -A -l app.kubernetes.io/name=dask-kube-operator` and its logs; "
            "docs/install.md shows how to install it.")
    pod = await scheduler_pod(cluster)
    pod_phase, reason, message = pod_state(pod.raw if pod else None)
    cond = condition(cluster.raw, ConditionType.SCHEDULER_READY)
    lines = [f"The scheduler of {ref} did not start within {within:g}s: pod {pod_phase}"
             + (f", {reason}" if reason else "") + (f": {message}" if message else "")]
    if cond.get("message"):
        lines.append(f"operator says: {cond['message']}")
    logs = ""
    if pod is not None and (reason in CRASHING or restarted(pod.raw)):
        logs = await crash_logs(pod)
        lines.append("last log lines:\n" + (logs or "(none)"))
    if reason == "Unschedulable":
        lines.append("Free capacity (or relax the pod's resources, nodeSelector, tolerations).")
    elif reason in IMAGE_PULL:
        lines.append("Check the image name and that the cluster can pull it (imagePullSecrets).")
    return SchedulerStartTimeoutError("\n".join(lines), phase=pod_phase, reason=reason, logs=logs or None)


async def startup_failure(cluster: DaskCluster) -> BaseException | None:
    """The error to raise when the start-up settled on something other than Running, else None."""
    raw = cluster.raw
    ref = f"DaskCluster {cluster.namespace}/{cluster.name}"
    if raw is None or phase(raw) == ClusterPhase.RUNNING:
        return None
    if phase(raw) == ClusterPhase.ERROR:
        message = (condition(raw, ConditionType.SPEC_VALID).get("message")
                   or condition(raw, ConditionType.READY).get("message") or "the operator rejected it")
        return SpecError(f"{ref} is invalid: {message}")
    pod = await scheduler_pod(cluster)
    logs = await crash_logs(pod) if pod is not None else ""
    return SchedulerStartupError(f"The scheduler of {ref} failed to start (CrashLoopBackOff). "
                                 f"Scheduler pod logs:\n{logs or '(none)'}", logs=logs)


# -- workers ----------------------------------------------------------------------------------------------------


class WorkersNotReadyError(WorkerStartTimeoutError):
    """`WorkerStartTimeoutError` that also says what the missing workers' pods are doing."""

    def __init__(self, available: int, expected: int, timeout: float, explanation: str) -> None:
        super().__init__(available, expected, timeout)
        self.explanation = explanation

    def __str__(self) -> str:
        return f"{super().__str__()}. {self.explanation}"


def describe_worker_pods(pods: list[Obj]) -> str:
    """'3 worker pods: 1 Running, 2 Pending (Unschedulable: 0/1 nodes are available: ...)'."""
    if not pods:
        return "No worker pods exist: is the operator running, and did the worker group get created?"
    counts: dict[str, int] = {}
    details: dict[str, str] = {}
    for raw in pods:
        pod_phase, reason, message = pod_state(raw)
        key = f"{pod_phase} ({reason})" if reason else pod_phase
        counts[key] = counts.get(key, 0) + 1
        if reason and message:
            details.setdefault(key, message)
    parts = [f"{n} {key}" + (f": {details[key]}" if key in details else "") for key, n in sorted(counts.items())]
    return f"{len(pods)} worker pods: " + "; ".join(parts)


async def list_pods(api: kr8s.asyncio.Api, namespace: str, selector: Mapping[str, str]) -> list[Pod]:
    pods = []
    with contextlib.suppress(kr8s.ServerError):
        async for pod in api.async_get(Pod, namespace=namespace, label_selector=dict(selector)):
            pods.append(pod)
    return pods
