"""Why a cluster is not ready yet, in words a person can act on: the explanations KubeCluster raises.

A start-up that times out says what the scheduler pod is doing (its phase and waiting reason, its last log lines)
or that no operator ever acted; a `wait_for_workers` that times out says what the worker pods are doing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kr8s
import kr8s.asyncio
from distributed.core import Status
from distributed.exceptions import WorkerStartTimeoutError
from kr8s.asyncio.objects import Pod

from .. import kubernetes_api, naming, status
from ..errors import OperatorNotRunningError, SchedulerStartTimeoutError, SchedulerStartupError, SpecError
from ..kinds import DaskCluster
from ..naming import ClusterPhase, ConditionType, Reason

Raw = Mapping[str, Any]
# How long `wait_for_workers` sleeps between looks at the scheduler. The worker stream wakes it on every arrival
# and departure, so the long wait only guards against a stream that broke silently. But a worker arrives as
# "init" and reports "running" a moment later, on a message the stream does not carry: while one is in between,
# look again soon (as often as distributed's own Client polls), not 2 s later.
WORKER_STREAM_GUARD_SECONDS = 2.0
WORKER_SETTLING_SECONDS = 0.05


def running_workers(workers: Mapping[str, Raw]) -> int:
    """Workers the scheduler counts as running (`scheduler_info["workers"]`), as `Client.wait_for_workers` does."""
    return sum(1 for ws in workers.values() if ws.get("status") == Status.running.name)


def next_look(workers: Mapping[str, Raw], remaining: float) -> float:
    """Seconds until `wait_for_workers` asks the scheduler again, unless the worker stream wakes it first."""
    settling = any(ws.get("status") == Status.init.name for ws in workers.values())  # not paused ones: they stay
    return min(remaining, WORKER_SETTLING_SECONDS if settling else WORKER_STREAM_GUARD_SECONDS)


def settled(raw: Raw | None) -> bool:
    """Stop waiting: Running, Error, a crash-looping scheduler, or the cluster is gone."""
    return (raw is None or status.phase(raw) in (ClusterPhase.RUNNING, ClusterPhase.ERROR)
            or status.condition(raw, ConditionType.SCHEDULER_READY).get("reason") == Reason.SCHEDULER_CRASH_LOOP)


async def _scheduler_pod(cluster: DaskCluster) -> Pod | None:
    assert cluster.api is not None
    return await kubernetes_api.get(Pod, naming.scheduler_name(cluster.name), cluster.namespace, cluster.api)


async def explain_timeout(cluster: DaskCluster, within: float) -> BaseException:
    """Why a DaskCluster is not Running after `within` seconds, as the exception to raise."""
    ref = f"DaskCluster {cluster.namespace}/{cluster.name}"
    if not status.phase(cluster.raw):
        return OperatorNotRunningError(
            f"{ref} was created but no operator acted on it within {within:g}s (status.phase is still unset). "
            "Is the dask_kube operator running and watching this namespace? "
            "Check with `kubectl get pods -A -l app.kubernetes.io/name=dask-kube-operator` and its logs; "
            "docs/install.md shows how to install it.")
    pod = await _scheduler_pod(cluster)
    pod_phase, reason, message = status.pod_state(pod.raw if pod else None)
    cond = status.condition(cluster.raw, ConditionType.SCHEDULER_READY)
    lines = [f"The scheduler of {ref} did not start within {within:g}s: pod {pod_phase}"
             + (f", {reason}" if reason else "") + (f": {message}" if message else "")]
    if cond.get("message"):
        lines.append(f"operator says: {cond['message']}")
    logs = ""
    if pod is not None and (reason in status.CRASHING or status.restarts(pod.raw)):
        logs = await kubernetes_api.crash_logs(pod)
        lines.append("last log lines:\n" + (logs or "(none)"))
    if reason == "Unschedulable":
        lines.append("Free capacity (or relax the pod's resources, nodeSelector, tolerations).")
    elif reason in status.IMAGE_PULL:
        lines.append("Check the image name and that the cluster can pull it (imagePullSecrets).")
    return SchedulerStartTimeoutError("\n".join(lines), phase=pod_phase, reason=reason, logs=logs or None)


async def failure(cluster: DaskCluster) -> BaseException | None:
    """The error to raise when the start-up settled on something other than Running, else None."""
    raw = cluster.raw
    ref = f"DaskCluster {cluster.namespace}/{cluster.name}"
    if status.phase(raw) == ClusterPhase.RUNNING:
        return None
    if status.phase(raw) == ClusterPhase.ERROR:
        message = (status.condition(raw, ConditionType.SPEC_VALID).get("message")
                   or status.condition(raw, ConditionType.READY).get("message") or "the operator rejected it")
        return SpecError(f"{ref} is invalid: {message}")
    pod = await _scheduler_pod(cluster)
    logs = await kubernetes_api.crash_logs(pod) if pod is not None else ""
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


def describe_worker_pods(pods: list[Raw]) -> str:
    """'3 worker pods: 1 Running, 2 Pending (Unschedulable: 0/1 nodes are available: ...)'."""
    if not pods:
        return "No worker pods exist: is the operator running, and did the worker group get created?"
    counts: dict[str, int] = {}
    details: dict[str, str] = {}
    for raw in pods:
        pod_phase, reason, message = status.pod_state(raw)
        key = f"{pod_phase} ({reason})" if reason else pod_phase
        counts[key] = counts.get(key, 0) + 1
        if reason and message:
            details.setdefault(key, message)
    parts = [f"{n} {key}" + (f": {details[key]}" if key in details else "") for key, n in sorted(counts.items())]
    return f"{len(pods)} worker pods: " + "; ".join(parts)


async def list_pods(api: kr8s.asyncio.Api, namespace: str, selector: Mapping[str, str]) -> list[Pod]:
    """The pods, or none when they cannot be listed (an explanation must not fail for want of permission)."""
    try:
        return await kubernetes_api.list_objects(Pod, namespace, api, selector)
    except kr8s.ServerError:
        return []
