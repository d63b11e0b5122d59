"""How a worker pod ends without losing data: a grace period long enough to retire it, and a preStop hook.

Whoever deletes a worker pod (a node drain, the cluster autoscaler, a spot reclaim, `kubectl delete pod`), the
kubelet runs the pod's preStop hook first and sends SIGTERM only once it ends; `dask worker` closes at once on
SIGTERM, and what it held would go with it. So the worker container waits in its hook while the scheduler still
counts its worker: the operator retires that worker as soon as it sees the pod terminating, the scheduler moves its
data to other workers and lets it go, and the hook ends. If nobody has retired it after a few seconds, the hook
asks the scheduler itself. A worker the scheduler no longer knows (already retired by a scale-down, or a scheduler
that is gone) ends its hook at once. The hook never outlasts its budget, which leaves the worker time to close
before the grace period ends.

Pure: builds dicts, imports no I/O library (the hook's script runs in the worker's image, which has distributed).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from . import naming

DEFAULT_GRACE_SECONDS = 120  # the operator's default for worker pods (kubernetes.operator.worker-grace-seconds)
CLOSE_SECONDS = 15  # what the hook leaves of the grace period for the worker to close after SIGTERM
WORKER_CONTAINER = "worker"

# Runs in the worker container: `python -c HOOK_SCRIPT BUDGET`. `ncores` with a worker name answers with its
# address while the scheduler has it (`ncores_running`: and is not retiring it); once the worker is gone the name
# is no address and the scheduler says so (ValueError). A worker that nobody retires within OPERATOR_SECONDS (the
# operator is down, or the pod went with its deleted DaskWorkerGroup) retires itself; a second retirement of a
# worker being retired is harmless.
OPERATOR_SECONDS = 5
HOOK_SCRIPT = f"""\
import asyncio, os, sys, time
from distributed.core import rpc
from distributed.security import Security

async def main(budget):
    start = time.monotonic()
    name = os.environ["{naming.WORKER_NAME_ENV}"]
    args = Security().get_connection_args("client")
    r = rpc(os.environ["{naming.SCHEDULER_ADDRESS_ENV}"], connection_args=args, timeout=10)
    try:
        while time.monotonic() - start < budget:
            try:
                if not await asyncio.wait_for(r.ncores(workers=[name]), 10):
                    return
                if time.monotonic() - start > {OPERATOR_SECONDS} and await r.ncores_running(workers=[name]):
                    left = budget - (time.monotonic() - start)
                    await asyncio.wait_for(r.retire_workers(names=[name], remove=True), max(left, 1))
                    return
            except (OSError, ValueError, TimeoutError):  # gone from the scheduler, or no scheduler to wait for
                return
            await asyncio.sleep(0.5)
    finally:
        await r.close_rpc()

asyncio.run(main(float(sys.argv[1])))
"""


def hook_budget(grace_seconds: float) -> float:
    """Seconds the hook may wait for retirement within a grace period."""
    return max(grace_seconds - CLOSE_SECONDS, grace_seconds / 2)


def pre_stop_hook(grace_seconds: float) -> dict[str, Any]:
    return {"exec": {"command": ["python", "-c", HOOK_SCRIPT, f"{hook_budget(grace_seconds):g}"]}}


def with_retirement(pod_spec: Mapping[str, Any], grace_seconds: int) -> dict[str, Any]:
    """The pod spec with the grace period (unless it sets its own) and the hook on its worker container (the one
    named `worker`, else the first), unless that container has a preStop hook of its own."""
    spec = copy.deepcopy(dict(pod_spec))
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = grace_seconds
    containers = spec.get("containers") or []
    worker = next((c for c in containers if c.get("name") == WORKER_CONTAINER), containers[0] if containers else None)
    if worker is not None:
        lifecycle = worker.get("lifecycle") or {}
        if not lifecycle.get("preStop"):
            worker["lifecycle"] = {**lifecycle, "preStop": pre_stop_hook(spec["terminationGracePeriodSeconds"])}
    return spec
