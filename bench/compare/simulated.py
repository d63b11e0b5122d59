"""Scenario 3: simulated pods (annotation `localkube.dask.org/simulate: "true"` on the scheduler and worker pod
metadata, `spec.{scheduler,worker}.metadata.annotations`): pods become Running with no process, so this measures
each operator's management of pods, not Dask. One cluster of 1,000 workers, and 100 clusters of 10 workers,
created by the harness over HTTP; time until every worker pod is Running, the API requests the operator made,
and the operator process's peak RSS (VmHWM) and CPU seconds (a fresh operator per round).
A probe cluster first checks that the tool puts the annotation on its pods; without it the pods would be real
processes, and the scenario is reported as not runnable for that tool."""

from __future__ import annotations

import time
from typing import Any

from common import GROUP, SIMULATE, Sample, operator, until
from report import Row

from dask_kube import specs


def _cluster(name: str, workers: int, image: str) -> dict[str, Any]:
    """A DaskCluster both tools accept (same schema), with simulated scheduler and workers."""
    obj = specs.make_cluster_spec(name, n_workers=workers, image=image,
                                  worker_command="dask worker --nthreads 1 --no-dashboard")
    obj["spec"]["worker"]["metadata"] = {"annotations": dict(SIMULATE)}
    obj["spec"]["scheduler"]["metadata"] = {"annotations": dict(SIMULATE)}
    return obj


async def _create(kube, ns: str, clusters: int, workers: int, image: str) -> None:  # type: ignore[no-untyped-def]
    await kube.ensure_namespace(ns)
    for i in range(clusters):
        await kube.request("POST", f"{GROUP}/namespaces/{ns}/daskclusters", _cluster(f"c{i}", workers, image))


async def _probe(ctx, tool) -> str:  # type: ignore[no-untyped-def]
    """Empty when the tool propagates the annotation to scheduler and worker pods, else why not."""
    kube, ns = ctx.kube, f"probe-{tool.key}"
    await _create(kube, ns, 1, 2, tool.image)
    pods: list[dict[str, Any]] = []

    async def created() -> bool:
        nonlocal pods
        pods = await kube.pods(ns, "dask.org/cluster-name=c0")
        return len(pods) >= 3

    try:
        await until(created, 120, "probe pods created", 0.2)
    except TimeoutError:
        return f"{tool.label} did not create the probe cluster's pods within 120 s"
    finally:
        plain = [p["metadata"]["name"] for p in pods
                 if (p["metadata"].get("annotations") or {}).get("localkube.dask.org/simulate") != "true"]
        await kube.delete_namespace(ns)
    if plain:
        return f"{tool.label} does not copy spec.*.metadata.annotations onto pods ({', '.join(plain)})"
    return ""


async def _measure(ctx, tool, ns: str, clusters: int, workers: int, tag: str):  # type: ignore[no-untyped-def]
    kube = ctx.kube
    total = clusters * workers
    async with operator(tool, kube, tag) as op:
        before = kube.counts()
        start = time.perf_counter()
        await _create(kube, ns, clusters, workers, tool.image)

        async def all_running() -> bool:
            return len(await kube.pods(ns, "dask.org/component=worker", phase="Running")) >= total

        # Listing 1,000 pods is work for the server: poll twice a second, as bench/operator_scale.py does.
        await until(all_running, ctx.args.sim_limit, f"{total} worker pods Running", 0.5)
        elapsed = time.perf_counter() - start
        after = kube.counts()
        usage = op.usage()
        # Deleted while the operator runs: it may hold finalizers on its objects.
        await kube.delete_namespace(ns, within=900)
    return elapsed, sum(after.values()) - sum(before.values()), usage


async def run(ctx) -> list[Row]:  # type: ignore[no-untyped-def]
    n, c = ctx.args.workers, ctx.args.clusters
    cases = [(f"1 cluster x {n:,} workers", "one", 1, n), (f"{c} clusters x 10 workers", "many", c, 10)]
    keys = {"time to all worker pods Running": "time", "API requests by the operator": "requests",
            "operator peak RSS": "rss", "operator CPU seconds": "cpu"}
    rows: list[Row] = []
    table: dict[tuple[str, str], Row] = {}
    for title, case, _, _ in cases:
        for metric, unit in (("time to all worker pods Running", "s"), ("API requests by the operator", "req"),
                             ("operator peak RSS", "MB"), ("operator CPU seconds", "s")):
            row = Row("3 simulated", f"{title}: {metric}", unit, key=f"sim-{case}-{keys[metric]}")
            table[(title, metric)] = row
            rows.append(row)
    for key in ("ours", "dk"):
        tool = ctx.tools.get(key)
        why = ctx.missing.get(key, "not run") if tool is None else ""
        if tool is not None:
            async with operator(tool, ctx.kube, "probe"):
                why = await _probe(ctx, tool)
        if why:
            for row in rows:
                getattr(row, key).note = why
            continue
        for title, ns, clusters, workers in cases:
            samples = {m: getattr(table[(title, m)], key) for (t, m) in table if t == title}
            for r in range(ctx.args.sim_rounds):
                try:
                    elapsed, requests, usage = await _measure(ctx, tool, f"{ns}-{key}-{r}", clusters, workers,
                                                              f"{ns}-{r}")
                except Exception as err:
                    note = ctx.failure(key, title, err)
                    for sample in samples.values():
                        sample.note = note
                    break
                samples["time to all worker pods Running"].values.append(elapsed)
                samples["API requests by the operator"].values.append(requests)
                samples["operator peak RSS"].values.append(usage.peak_rss_mb)
                samples["operator CPU seconds"].values.append(usage.cpu_seconds)
    return rows


__all__ = ["Sample", "run"]
