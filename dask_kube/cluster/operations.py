"""What one does to an existing cluster, the same from Python (`KubeCluster`) and from the shell (`dask kube`):
find it, scale a worker group, delete it.

Plain async functions over a kr8s client: they raise dask_kube's errors and print nothing; each caller shows the
lines they return its own way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import kr8s
import kr8s.asyncio

from .. import kubernetes_api, naming, specs, validation, waits
from ..errors import SpecError
from ..kinds import DaskAutoscaler, DaskCluster, DaskWorkerGroup


def missing(namespace: str, name: str) -> str:
    return f"there is no DaskCluster {name!r} in namespace {namespace!r}"


async def get_cluster(api: kr8s.asyncio.Api, namespace: str, name: str) -> DaskCluster:
    """The DaskCluster, or `ClusterNotFoundError` / `CRDsNotInstalledError` saying which is missing."""
    cluster = await kubernetes_api.get(DaskCluster, name, namespace, api)
    if cluster is None:
        raise await kubernetes_api.cluster_missing(api, missing(namespace, name))
    return cluster


def autoscaler_name(cluster: str, worker_group: str) -> str:
    group = None if worker_group == naming.DEFAULT_WORKER_GROUP else worker_group
    return str(specs.make_autoscaler(cluster, 0, 0, worker_group=group)["metadata"]["name"])


async def remove_autoscaler(api: kr8s.asyncio.Api, namespace: str, cluster: str, worker_group: str) -> str | None:
    """Delete the DaskAutoscaler of a worker group, if it has one; its name if it did."""
    name = autoscaler_name(cluster, worker_group)
    if await kubernetes_api.delete(kubernetes_api.ref(DaskAutoscaler, name, namespace, api)):
        return name
    return None


async def scale(api: kr8s.asyncio.Api, namespace: str, name: str, n: int,
                worker_group: str = naming.DEFAULT_WORKER_GROUP) -> list[str]:
    """Set a worker group's replicas and return what was done, one line each.

    The default group is scaled through the DaskCluster's `spec.worker.replicas` (the operator passes it on),
    another through its DaskWorkerGroup. The group's DaskAutoscaler, if any, is deleted first, so that the two do
    not fight: a fixed size replaces adaptive scaling.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise SpecError(f"must be an integer >= 0, not {n!r}", "n")
    validation.validate_worker_group_name(worker_group)
    done = []
    scaler = await remove_autoscaler(api, namespace, name, worker_group)
    if scaler is not None:
        done.append(f"Deleted DaskAutoscaler {namespace}/{scaler}: a fixed size replaces adaptive scaling")
    patch = {"spec": {"worker": {"replicas": n}}}
    if worker_group == naming.DEFAULT_WORKER_GROUP:
        target = f"DaskCluster {namespace}/{name}"
        try:
            await kubernetes_api.ref(DaskCluster, name, namespace, api).patch(patch)
        except kr8s.NotFoundError:
            raise await kubernetes_api.cluster_missing(api, missing(namespace, name)) from None
    else:
        group_name = naming.worker_group_name(name, worker_group)
        target = f"DaskWorkerGroup {namespace}/{group_name}"
        try:
            await kubernetes_api.ref(DaskWorkerGroup, group_name, namespace, api).patch(patch)
        except kr8s.NotFoundError:
            await get_cluster(api, namespace, name)  # the cluster itself may be what is missing
            groups = await kubernetes_api.list_objects(DaskWorkerGroup, namespace, api, naming.cluster_selector(name))
            known = ", ".join(sorted(g.name.removeprefix(f"{name}-") for g in groups)) or "none"
            raise SpecError(f"cluster {name} has no worker group {worker_group!r} (its groups: {known})",
                            "worker_group") from None
    done.append(f"Scaled {target} to {n} workers")
    return done


async def delete(api: kr8s.asyncio.Api, namespace: str, name: str, within: float | None,
                 accepted: Callable[[], Awaitable[None]] | None = None) -> bool:
    """Delete a DaskCluster with foreground propagation: it goes only after its pods, Services, worker groups and
    autoscalers. With `within`, return once it is gone, waiting at most that long (`accepted` runs once the
    deletion is under way, before the wait); whether it existed."""
    cluster = kubernetes_api.ref(DaskCluster, name, namespace, api)
    if within is None:
        return await kubernetes_api.delete(cluster, propagation_policy="Foreground")

    async def explain(obj: DaskCluster) -> BaseException:
        return TimeoutError(f"DaskCluster {namespace}/{name} still exists {within:g}s after deletion: its "
                            "finalizers need the operator (is it running?); `kubectl get daskcluster "
                            f"{name} -n {namespace} -o yaml` shows what holds it")

    return await waits.delete_and_wait(cluster, within, explain, propagation_policy="Foreground", accepted=accepted)
