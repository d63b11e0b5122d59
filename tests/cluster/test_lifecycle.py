"""KubeCluster end to end on LocalKube with the real operator: start, compute, connect by name, close.

Clusters are reused across assertions to keep the count of scheduler/worker processes small on 2 cores.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request

import dask.bag as db
import pytest
from distributed import Client

from dask_kube import KubeCluster, kubernetes_api, naming
from dask_kube.kinds import DaskCluster

pytestmark = pytest.mark.e2e


def _names(kubectl, kind: str) -> list[str]:  # type: ignore[no-untyped-def]
    out = kubectl("get", kind, "-o", "json").stdout
    return [item["metadata"]["name"] for item in json.loads(out)["items"]]


def _refuses(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_sync_cluster_computes_then_close_leaves_nothing(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    cluster = KubeCluster(name="sync", namespace=namespace, n_workers=2, image="any", quiet=True)
    try:
        cluster.wait_for_workers(2, timeout=60)
        assert time.monotonic() - started < 40
        assert cluster.port_forwarded  # the test process is outside the cluster: ClusterIP means a forward
        assert cluster.shutdown_on_close  # it created the cluster
        with Client(cluster) as client:
            total = db.from_sequence(range(1000), npartitions=8).map(lambda i: i * 2).sum()
            assert client.compute(total).result() == 999_000
            assert len(client.scheduler_info()["workers"]) == 2
        link = cluster.dashboard_link
        assert link.startswith("http://127.0.0.1:") and link.endswith("/status")
        with urllib.request.urlopen(link.replace("/status", "/health"), timeout=10) as resp:
            assert resp.status == 200
        html = cluster._repr_html_()
        for text in ("sync", namespace, "Running", link):
            assert text in html
        logs = cluster.get_logs()
        assert naming.scheduler_name("sync") in logs
        worker_logs = [key for key in logs if "-default-worker-" in key]
        assert len(worker_logs) == 2
        assert "Creating cluster" in logs["Cluster"]
        ports = [f.local_port for f in cluster._forwards]
    finally:
        cluster.close()
    assert _names(kubectl, "daskclusters") == []
    assert _names(kubectl, "pods") == []
    assert _names(kubectl, "services") == []
    assert all(_refuses(port) for port in ports)


async def test_two_async_clusters_in_one_loop(operator, namespace) -> None:  # type: ignore[no-untyped-def]
    first = KubeCluster(name="one", namespace=namespace, n_workers=1, asynchronous=True, quiet=True)
    second = KubeCluster(name="two", namespace=namespace, n_workers=1, asynchronous=True, quiet=True)
    try:
        await asyncio.gather(first, second)
        assert first.scheduler_address != second.scheduler_address
        await asyncio.gather(first.wait_for_workers(1, timeout=60), second.wait_for_workers(1, timeout=60))
        for cluster, value in ((first, 1), (second, 2)):
            async with Client(cluster, asynchronous=True) as client:
                assert await client.submit(lambda v: v * 10, value) == value * 10
    finally:
        await asyncio.gather(first.close(), second.close())
    async for _ in DaskCluster.list(namespace=namespace):
        raise AssertionError("a DaskCluster outlived close()")


async def test_async_context_manager_with_custom_worker_command(operator, namespace) -> None:  # type: ignore[no-untyped-def]
    async with KubeCluster(name="cmd", namespace=namespace, n_workers=1, asynchronous=True, quiet=True,
                           worker_command="dask worker --nthreads 3") as cluster:
        await cluster.wait_for_workers(1, timeout=60)
        async with Client(cluster, asynchronous=True) as client:
            assert list((await client.nthreads()).values()) == [3]


async def test_close_stops_the_workers_before_their_scheduler(operator, namespace) -> None:  # type: ignore[no-untyped-def]
    """close() marks the cluster closing once its deletion is under way: the scheduler's preStop hook stops the
    workers through their nannies and stays up until they left, so every worker pod is gone before the scheduler
    pod. Unmarked, the scheduler closed first and its workers lingered in distributed's slow close."""
    cluster = await KubeCluster(name="order", namespace=namespace, n_workers=2, asynchronous=True, quiet=True)
    api = await kubernetes_api.client()
    listed, gone = asyncio.Event(), []

    async def follow() -> None:
        added = set()
        async for event, pod in api.watch("pods", namespace=namespace):
            if event == "ADDED":
                added.add(pod.name)
                if len(added) == 3:
                    listed.set()
            elif event == "DELETED":
                gone.append(pod.name)
                if len(gone) == 3:
                    return

    try:
        await cluster.wait_for_workers(2, timeout=60)
        watch = asyncio.create_task(follow())
        await asyncio.wait_for(listed.wait(), 30)
    finally:
        await cluster.close()
    await asyncio.wait_for(watch, 60)
    assert gone[-1] == naming.scheduler_name("order"), gone
    assert all("-default-worker-" in name for name in gone[:2]), gone


def test_from_name_sees_the_cluster_and_closing_it_keeps_it(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    with KubeCluster(name="shared", namespace=namespace, n_workers=1, quiet=True) as owner:
        owner.wait_for_workers(1, timeout=60)
        other = KubeCluster.from_name("shared", namespace=namespace, quiet=True)
        try:
            assert not other.shutdown_on_close
            assert other == owner
            assert other.scheduler_info["id"] == owner.scheduler_info["id"]
            assert other.n_workers == 1
        finally:
            other.close()
        assert _names(kubectl, "daskclusters") == ["shared"]
        # Connecting by name without from_name does not take ownership either.
        again = KubeCluster(name="shared", namespace=namespace, quiet=True)
        assert not again.shutdown_on_close
        again.close()
        # dask-ctl's discovery names clusters namespace/name.
        by_path = KubeCluster.from_name(f"{namespace}/shared", quiet=True)
        assert by_path.namespace == namespace and by_path.name == "shared"
        by_path.close()
        with Client(owner) as client:
            assert client.submit(sum, [1, 2]).result() == 3
    assert _names(kubectl, "daskclusters") == []
