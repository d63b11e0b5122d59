"""How a worker pod ends without losing data: a grace period long enough to retire it, and a preStop hook.

Whoever deletes a worker pod (a node drain, the cluster autoscaler, a spot reclaim, `kubectl delete pod`), the
kubelet runs the pod's preStop hook first and sends SIGTERM only once it ends; `dask worker` closes at once on
SIGTERM, and what it held would go with it. So the worker container waits in its hook while the scheduler still
counts its worker: the operator retires that worker as soon as it sees the pod terminating, the scheduler moves its
data to other workers and lets it go, and the hook ends. If nobody has retired it after a few seconds, the hook
asks the scheduler itself. A worker the scheduler no longer knows (already retired by a scale-down, or a scheduler
that is gone) ends its hook at once. The hook never outlasts its budget, which leaves the worker time to close
before the grace period ends.

A whole cluster that is closed on purpose (`KubeCluster.close()`) needs none of that, and the order matters: a
worker whose scheduler closes first goes through distributed's slow path (its process lingers about 2 s after
"scheduler-close", sometimes killed after 4 s), while a worker sent SIGTERM with its scheduler still up is gone
in a quarter of a second. So whoever closes a cluster marks it closing in the scheduler's metadata
(`CLOSING_KEYS`) once its deletion is under way: the scheduler's own preStop hook then stops every worker through
its nanny (the same fast path as SIGTERM) and keeps the scheduler up until they have left (at most
`SCHEDULER_WAIT_SECONDS`); a worker's hook that still reaches the scheduler ends at once. Unmarked (a
`kubectl delete` of a DaskCluster, a drained or evicted scheduler pod), the scheduler's hook ends at once.

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

# The scheduler metadata that marks a cluster as being closed on purpose: set before its deletion.
CLOSING_KEYS = ("dask-kube", "closing")
# How long a closing cluster's scheduler waits in its preStop hook for its workers to leave.
SCHEDULER_WAIT_SECONDS = 10
SCHEDULER_CONTAINER = "scheduler"

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
                if await asyncio.wait_for(r.get_metadata(keys={list(CLOSING_KEYS)!r}, default=False), 10):
                    return  # the whole cluster is being closed: nothing to retire to
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


# Runs in the scheduler container: `python -c SCHEDULER_HOOK_SCRIPT SCHEME PORT BUDGET`. It reaches the scheduler
# at its pod IP (a terminating pod is no endpoint of its Service any more); exec hooks get the container's
# environment but no `$(VAR)` expansion, so the script reads it. Unmarked, it ends at once.
SCHEDULER_HOOK_SCRIPT = f"""\
import asyncio, os, sys, time
from distributed.core import rpc
from distributed.security import Security

ARGS = Security().get_connection_args("client")

async def stop(address):
    r = rpc(address, connection_args=ARGS, timeout=5)
    try:
        await asyncio.wait_for(r.terminate(reason="cluster-closing"), 5)
    except (OSError, TimeoutError):  # it closed before it answered, or was gone
        pass
    finally:
        await r.close_rpc()

async def main(address, budget):
    start = time.monotonic()
    r = rpc(address, connection_args=ARGS, timeout=5)
    try:
        if not await asyncio.wait_for(r.get_metadata(keys={list(CLOSING_KEYS)!r}, default=False), 5):
            return
        workers = (await asyncio.wait_for(r.identity(), 5)).get("workers") or {{}}
        await asyncio.gather(*(stop(w.get("nanny") or a) for a, w in workers.items()))
        while time.monotonic() - start < budget and await asyncio.wait_for(r.ncores(), 5):
            await asyncio.sleep(0.05)
    except (OSError, TimeoutError):  # no scheduler to keep up
        return
    finally:
        await r.close_rpc()

address = f"{{sys.argv[1]}}://{{os.environ['{naming.POD_IP_ENV}']}}:{{sys.argv[2]}}"
asyncio.run(main(address, float(sys.argv[3])))
"""


def hook_budget(grace_seconds: float) -> float:
    """Seconds the hook may wait for retirement within a grace period."""
    return max(grace_seconds - CLOSE_SECONDS, grace_seconds / 2)


def pre_stop_hook(grace_seconds: float) -> dict[str, Any]:
    return {"exec": {"command": ["python", "-c", HOOK_SCRIPT, f"{hook_budget(grace_seconds):g}"]}}


def scheduler_pre_stop_hook(scheme: str, port: int | str) -> dict[str, Any]:
    return {"exec": {"command": ["python", "-c", SCHEDULER_HOOK_SCRIPT, scheme, str(port),
                                 f"{SCHEDULER_WAIT_SECONDS:g}"]}}


def with_orderly_close(pod_spec: Mapping[str, Any], tls: bool) -> dict[str, Any]:
    """The scheduler pod spec with the hook that keeps a closing cluster's scheduler up until its workers left,
    on its scheduler container (named `scheduler`, else the first), unless that container has a preStop hook of
    its own. The hook reaches the scheduler at its pod IP (downward API) on the container's `tcp-comm` port."""
    spec = copy.deepcopy(dict(pod_spec))
    main = _unhooked_container(spec, SCHEDULER_CONTAINER)
    if main is None:
        return spec
    port, _ = naming.scheduler_ports([main])
    main["lifecycle"] = {**(main.get("lifecycle") or {}),
                         "preStop": scheduler_pre_stop_hook(naming.TLS_SCHEME if tls else naming.TCP_SCHEME, port)}
    env = main["env"] = list(main.get("env") or ())
    if not any(isinstance(e, Mapping) and e.get("name") == naming.POD_IP_ENV for e in env):
        env.append({"name": naming.POD_IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    return spec


def with_retirement(pod_spec: Mapping[str, Any], grace_seconds: int) -> dict[str, Any]:
    """The pod spec with the grace period (unless it sets its own) and the hook on its worker container (the one
    named `worker`, else the first), unless that container has a preStop hook of its own."""
    spec = copy.deepcopy(dict(pod_spec))
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = grace_seconds
    worker = _unhooked_container(spec, WORKER_CONTAINER)
    if worker is not None:
        worker["lifecycle"] = {**(worker.get("lifecycle") or {}),
                               "preStop": pre_stop_hook(spec["terminationGracePeriodSeconds"])}
    return spec


def _unhooked_container(spec: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The container named `name` (else the first) to get our preStop hook; None if it has one of its own."""
    containers: list[dict[str, Any]] = spec.get("containers") or []
    chosen = next((c for c in containers if c.get("name") == name), containers[0] if containers else None)
    if chosen is None or (chosen.get("lifecycle") or {}).get("preStop"):
        return None
    return chosen
