"""Scenario 1: `KubeCluster(n_workers=2)` until both workers are connected; the floor is the same processes
started directly, the fastest way (floor.py). dask-kubernetes's client first tries to resolve the scheduler
Service's cluster DNS name (20 tries, 0.5 s apart) before port-forwarding; `port_forward_cluster_ip=True` skips
that, so both settings are run."""

from __future__ import annotations

import asyncio

from common import Sample, operator, runner
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
                        async with runner(tool, kube, "cold", args, f"cold-{len(rows)}-{r}") as run:
                            event = await run.event(timeout=400)
                        sample.values.append(event["seconds"])
                        close_sample.values.append(event["close_seconds"])
                    except Exception as err:
                        sample.note = close_sample.note = ctx.failure(key, "cold start", err)
                        break
        rows += [row, close]
    return rows
