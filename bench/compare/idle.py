"""Scenario 6: API requests per minute made by an idle cluster of 10 workers: the operator plus the client (a connected
`KubeCluster` with a `Client`), counted by LocalKube over a window after the cluster is ready (5 s after it). A
request counts when it is served: a watch that stays open through the window counts once, when it opened (kopf
re-opens dask-kubernetes's watches every 120 s); each port-forward connection is one request."""

from __future__ import annotations

import asyncio

from common import WORKER_OPTS, operator, runner
from report import Row

NS = "idle"
SETTLE = 5.0


async def run(ctx) -> list[Row]:  # type: ignore[no-untyped-def]
    kube, window = ctx.kube, ctx.args.idle_seconds
    await kube.ensure_namespace(NS)
    scaled = "" if window == 60 else f", measured over {window:.0f} s and scaled to a minute"
    total = Row("6 idle", f"API requests/min, idle 10-worker cluster, operator + client{scaled}", "req/min",
                key="idle")
    split = Row("6 idle", "of which kopf (operator watches and handlers) / kr8s (operator and client calls)", "")
    for key in ("ours", "dk"):
        tool = ctx.tools.get(key)
        if tool is None:
            getattr(total, key).note = ctx.missing.get(key, "not run")
            continue
        parts = []
        async with operator(tool, kube, "idle"):
            for r in range(ctx.rounds):
                args = {"name": f"idle-{key}-{r}", "namespace": NS, "image": tool.image, "workers": 10,
                        "worker_command": tool.worker_command + WORKER_OPTS}
                try:
                    async with runner(tool, kube, "hold", args, f"idle-{r}") as run:
                        await run.event(timeout=600)
                        await asyncio.sleep(SETTLE)
                        before = kube.counts()
                        await asyncio.sleep(window)
                        after = kube.counts()
                except Exception as err:
                    getattr(total, key).note = ctx.failure(key, "idle", err)
                    break
                delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                getattr(total, key).values.append(sum(delta.values()) * 60 / window)
                parts.append(" / ".join(f"{delta.get(k, 0) * 60 / window:.0f}" for k in ("kopf", "kr8s"))
                             + "".join(f", {k} {v * 60 / window:.0f}" for k, v in delta.items()
                                       if k not in ("kopf", "kr8s") and v))
        getattr(split, key).text = "; ".join(parts)
    return [total, split]
