"""Scenario 1: `KubeCluster(n_workers=2)` until both workers are connected; the floor is the same processes
started directly, the fastest way (floor.py). dask-kubernetes's client first tries to resolve the scheduler
Service's cluster DNS name (20 tries, 0.5 s apart) before port-forwarding; `port_forward_cluster_ip=True` skips
that, so both settings are run. The clock starts when `KubeCluster(...)` is called: importing the tool's module,
which a script does once before, is timed apart (its own row). Each round starts once the previous round's pods
are gone (dask-kubernetes deletes in the background), so that no round pays for another's shutdown."""

from __future__ import annotations

import asyncio

from common import Sample, operator, runner, until
from floor import start_then_add
from report import Row

NS = "cold"


async def run(ctx) -> list[Row]:  # type: ignore[no-untyped-def]
    kube = ctx.kube
    await kube.ensure_namespace(NS)
    floor = Sample()
    for _ in range(ctx.rounds):
        up, _ = await asyncio.to_thread(start_then_add, 2, 0, [], kube.tmp / "floor.log")
        floor.values.append(up)
    variants = [("default settings", {}, "cold-default")]
    if not ctx.quick:
        variants.append(("port_forward_cluster_ip=True", {"port_forward_cluster_ip": True}, "cold-pf"))
    rows = []
    imports = Row("1 cold start", "importing the client module (before KubeCluster() is called; not in the row "
                  "below)", "s")
    for label, extra, key in variants:
        row = Row("1 cold start", f"KubeCluster(n_workers=2) -> 2 workers connected ({label})", "s",
                  baseline=f"floor (scheduler + 2 workers started directly): {floor.median:.2f} s"
                  if floor.median else "", key=key, floor=floor.median)
        close = Row("1 cold start", f"close() ({label})", "s")
        for key in ("ours", "dk"):
            tool = ctx.tools.get(key)
            sample, close_sample = getattr(row, key), getattr(close, key)
            if tool is None:
                sample.note = close_sample.note = ctx.missing.get(key, "not run")
                continue
            async with operator(tool, kube, f"cold-{len(rows)}"):
                for r in range(ctx.rounds):
                    args = {"name": f"cold-{key}-{len(rows)}-{r}", "namespace": NS, "image": tool.image,
                            "worker_command": tool.worker_command, "extra": extra}
                    try:
                        await until(lambda: _no_pods(kube), 300, f"the pods of namespace {NS} gone", 0.1)
                        async with runner(tool, kube, "cold", args, f"cold-{len(rows)}-{r}") as run:
                            event = await run.event(timeout=400)
                        sample.values.append(event["seconds"])
                        close_sample.values.append(event["close_seconds"])
                        getattr(imports, key).values.append(event["import_seconds"])
                    except Exception as err:
                        sample.note = close_sample.note = ctx.failure(key, "cold start", err)
                        break
        rows += [row, close]
    return [imports, *rows]


async def _no_pods(kube) -> bool:  # type: ignore[no-untyped-def]
    return not await kube.pods(NS)
