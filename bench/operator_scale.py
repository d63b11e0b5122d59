"""The operator at work on LocalKube: time to a working cluster, and scale with simulated pods.

1. A DaskCluster with 2 real workers, from create to both workers connected (readyReplicas 2).
2. Simulated pods: one cluster scaled to 1,000 workers; 100 clusters of 10 workers. Simulated schedulers never
   answer, so these clusters stay Pending: this measures the operator's pod management, not Dask.
Each reports wall time and the API requests the operator made (kopf + kr8s), counted by LocalKube. Reported,
never asserted.

    .venv/bin/python bench/operator_scale.py [--workers 1000] [--clusters 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from localkube.cluster import LocalKube, ThreadedLocalKube

from dask_kube import specs

CRDS = Path(__file__).parents[1] / "dask_kube" / "operator" / "crds"
SIMULATE = {"localkube.dask.org/simulate": "true"}


def _operator_requests(kube: ThreadedLocalKube) -> int:
    counts = kube.call(kube.kube.request_counts)
    return counts.get("kopf", 0) + counts.get("kr8s", 0)


def _start_operator(kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    proc = subprocess.Popen([sys.executable, "-m", "dask_kube.operator", "-A", "--verbose"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while b"operator started" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the operator did not start:\n" + log.read_text())
        time.sleep(0.05)
    return proc


def _cluster(name: str, workers: int, simulate: bool) -> dict[str, Any]:
    obj = specs.make_cluster_spec(name, n_workers=workers, worker_command="dask worker --nthreads 1 --no-dashboard")
    if simulate:
        obj["spec"]["worker"]["metadata"] = {"annotations": SIMULATE}
        obj["spec"]["scheduler"]["metadata"] = {"annotations": SIMULATE}
    return obj


async def _until(check, limit: float, what: str) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    while not await check():
        if time.perf_counter() - start > limit:
            raise TimeoutError(f"{what} not reached within {limit}s")
        await asyncio.sleep(0.5)  # listing 1,000 pods is work for the server: do not measure our own polling
    return time.perf_counter() - start


async def _count_running(http: aiohttp.ClientSession, selector: str) -> int:
    async with http.get("/api/v1/pods", params={"labelSelector": selector,
                                                 "fieldSelector": "status.phase=Running"}) as resp:
        return len((await resp.json())["items"])


async def scenario_real(http: aiohttp.ClientSession, kube: ThreadedLocalKube) -> tuple[float, int]:
    before = _operator_requests(kube)
    start = time.perf_counter()
    async with http.post("/apis/kubernetes.dask.org/v1/namespaces/default/daskclusters",
                         json=_cluster("real", 2, simulate=False)) as resp:
        assert resp.status == 201, await resp.text()

    async def ready() -> bool:
        async with http.get("/apis/kubernetes.dask.org/v1/namespaces/default/daskclusters/real") as resp:
            status = (await resp.json()).get("status") or {}
        return status.get("phase") == "Running" and status.get("readyReplicas") == 2

    await _until(ready, 180, "2 workers connected")
    elapsed = time.perf_counter() - start
    async with http.delete("/apis/kubernetes.dask.org/v1/namespaces/default/daskclusters/real"):
        pass
    return elapsed, _operator_requests(kube) - before


async def scenario_many(http: aiohttp.ClientSession, kube: ThreadedLocalKube, ns: str, clusters: int,
                        workers: int) -> tuple[float, int]:
    async with http.post("/api/v1/namespaces", json={"metadata": {"name": ns}}) as resp:
        assert resp.status == 201
    before = _operator_requests(kube)
    start = time.perf_counter()
    for i in range(clusters):
        async with http.post(f"/apis/kubernetes.dask.org/v1/namespaces/{ns}/daskclusters",
                             json=_cluster(f"c{i}", workers, simulate=True)) as resp:
            assert resp.status == 201, await resp.text()
    total = clusters * workers

    async def all_running() -> bool:
        return await _count_running(http, "dask.org/component=worker") >= total

    await _until(all_running, 600, f"{total} worker pods Running")
    elapsed = time.perf_counter() - start
    requests = _operator_requests(kube) - before
    async with http.delete(f"/api/v1/namespaces/{ns}"):
        pass

    async def gone() -> bool:
        return await _count_running(http, "dask.org/component=worker") == 0

    await _until(gone, 600, "namespace emptied")
    return elapsed, requests


async def run(url: str, kube: ThreadedLocalKube, workers: int, clusters: int) -> list[tuple[str, float, int]]:
    rows = []
    async with aiohttp.ClientSession(base_url=url) as http:
        seconds, requests = await scenario_real(http, kube)
        rows.append(("DaskCluster create -> 2 real workers connected", seconds, requests))
        seconds, requests = await scenario_many(http, kube, "one", 1, workers)
        rows.append((f"1 cluster -> {workers} simulated workers Running", seconds, requests))
        seconds, requests = await scenario_many(http, kube, "many", clusters, 10)
        rows.append((f"{clusters} clusters x 10 simulated workers Running", seconds, requests))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalKube.in_thread(http_port=0) as kube:
        subprocess.run(["kubectl", "apply", "-f", str(CRDS)], check=True, capture_output=True,
                       env=dict(os.environ, KUBECONFIG=str(kube.kubeconfig), KUBECACHEDIR=tmp))
        proc = _start_operator(kube.kubeconfig, Path(tmp) / "operator.log")
        try:
            rows = asyncio.run(run(kube.http_url, kube, args.workers, args.clusters))
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'scenario':52} {'seconds':>9} {'operator API requests':>22}")
    for name, seconds, requests in rows:
        print(f"{name:52} {seconds:9.2f} {requests:22d}")


if __name__ == "__main__":
    main()
