"""The operator keeps what it knows of an object only while the object exists: hundreds of DaskClusters come and
go, and afterwards it holds nothing for them (read from its probe endpoint, the way a Kubernetes probe would)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from localkube.testing import async_until

from dask_kube import kubernetes_api, specs
from dask_kube.kinds import DaskCluster, DaskWorkerGroup

pytestmark = pytest.mark.e2e
CLUSTERS = 200  # past httpx's pool of 100 connections: one held per cluster once exhausted it
SIMULATE = {"localkube.dask.org/simulate": "true"}  # Running pods without processes: schedulers never answer


def _cluster(name: str) -> dict[str, Any]:
    body = specs.make_cluster_spec(name, n_workers=0)
    body["spec"]["scheduler"]["metadata"] = {"annotations": SIMULATE}
    body["spec"]["worker"]["metadata"] = {"annotations": SIMULATE}
    return body


@pytest.mark.timeout(900)
async def test_the_operator_holds_nothing_for_deleted_clusters(kube, operator, namespace) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    limit = asyncio.Semaphore(50)
    async with kubernetes_api.private_client(str(kube.kubeconfig)) as api:

        async def create(i: int) -> None:
            async with limit:
                await DaskCluster(_cluster(f"c{i}"), namespace=namespace, api=api).create()

        await asyncio.gather(*(create(i) for i in range(CLUSTERS)))

        async def reconciled() -> bool:
            clusters = await kubernetes_api.list_objects(DaskCluster, namespace, api)
            return len(clusters) == CLUSTERS and all(
                (c.raw.get("status") or {}).get("phase") == "Pending" and "selector" in c.raw["status"]
                for c in clusters)

        await async_until(reconciled, f"{CLUSTERS} clusters reconciled", within=420, interval=2)

        async def held() -> dict[str, int]:
            return await asyncio.to_thread(operator.held, namespace)

        # While they exist: a loop for each cluster and its default group, a scheduler connection per cluster, and
        # in the cache each cluster, its group, its scheduler pod and its Service (no workers); the metric series of
        # each cluster and group.
        expected = {"loops": 2 * CLUSTERS, "scheduler_connections": CLUSTERS, "cached_objects": 4 * CLUSTERS,
                    "metric_series": 2 * CLUSTERS}
        await async_until(lambda: _equal(held(), expected), f"the operator to hold {expected}", within=60,
                          interval=1)

        async def delete(cluster: DaskCluster) -> None:
            async with limit:
                await kubernetes_api.delete(cluster)

        await asyncio.gather(*(delete(c) for c in await kubernetes_api.list_objects(DaskCluster, namespace, api)))

        async def all_gone() -> bool:
            return not await kubernetes_api.list_objects(DaskCluster, namespace, api)

        await async_until(all_gone, "every DaskCluster deleted", within=420, interval=2)
        deadline = time.monotonic() + 120
        while (now := await held()) != {}:
            groups = await kubernetes_api.list_objects(DaskWorkerGroup, namespace, api)
            assert time.monotonic() < deadline, f"still held: {now}; {len(groups)} worker groups left"
            await asyncio.sleep(1)
    assert time.monotonic() - started < 600, f"{CLUSTERS} clusters took over 10 minutes: too slow for the suite"


async def _equal(value: Any, expected: dict[str, int]) -> bool:
    return bool(await value == expected)

