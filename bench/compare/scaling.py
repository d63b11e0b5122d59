"""Scenario 2: scale 2 -> 16 real workers (`--nthreads 1 --memory-limit 200MB`) until connected, then 16 -> 2
with 64 scattered 1 MB blocks held by the workers. Scattered data cannot be recomputed, so a worker removed
without being retired loses its blocks for good: "data lost" checks every future is still finished and gathers
intact. The floor starts 14 more workers directly (see floor.py)."""

from __future__ import annotations

import asyncio

from common import WORKER_OPTS, Sample, operator, runner
from floor import start_then_add
from report import Row

NS = "scale"


async def run(ctx) -> list[Row]:  # type: ignore[no-untyped-def]
    kube, high = ctx.kube, ctx.args.high
    await kube.ensure_namespace(NS)
    floor = Sample()
    for _ in range(ctx.rounds):
        _, more = await asyncio.to_thread(start_then_add, 2, high - 2, WORKER_OPTS, kube.tmp / "floor.log")
        floor.values.append(more or 0.0)
    up = Row("2 scale", f"scale(2 -> {high}) -> {high} workers connected", "s",
             baseline=f"floor ({high - 2} more workers started directly): {floor.median:.2f} s", key="scale-up",
             floor=floor.median)
    down = Row("2 scale", f"scale({high} -> 2) with data in memory -> 2 workers", "s")
    lost = Row("2 scale", "data lost on scale-down (64 scattered blocks)", "")
    for key in ("ours", "dk"):
        tool = ctx.tools.get(key)
        if tool is None:
            for row in (up, down, lost):
                getattr(row, key).note = ctx.missing.get(key, "not run")
            continue
        outcomes = []
        async with operator(tool, kube, "scale"):
            for r in range(ctx.rounds):
                args = {"name": f"scale-{key}-{r}", "namespace": NS, "image": tool.image, "high": high, "low": 2,
                        "worker_command": tool.worker_command + WORKER_OPTS}
                try:
                    async with runner(tool, kube, "scale", args, f"scale-{r}") as run:
                        event = await run.event(timeout=900)
                except Exception as err:
                    note = ctx.failure(key, "scale", err)
                    for row in (up, down, lost):
                        getattr(row, key).note = note
                    break
                getattr(up, key).values.append(event["up_seconds"])
                getattr(down, key).values.append(event["down_seconds"])
                gone = event["lost_keys"] or not event["intact"]
                outcomes.append(f"yes ({event['lost_keys']} of 64 lost)" if gone else "no")
                outcomes[-1] += f", held by {event['holders']} workers" if r == 0 else ""
        if outcomes:
            getattr(lost, key).text = "; ".join(outcomes)
    return [up, down, lost]
