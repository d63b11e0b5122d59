"""Scenario 4: examples/manifests/sum-daskjob.yaml (a runner summing squares on its own 2-worker cluster),
from create to `status.jobStatus == Successful`. Images are renamed to each tool's image; nothing else changes.
A second variant adds a tcpSocket readinessProbe on the scheduler's comm port. dask-kubernetes starts the runner
pod at once, without waiting for the scheduler; the example's scheduler has no readiness probe, so its pod is
Ready (an endpoint of the Service) before the scheduler listens. On LocalKube the Service proxy accepts the
runner's connection and then resets it when the scheduler refuses, so `Client()` fails in its handshake
(CommClosedError, not retried) and with `restartPolicy: Never` the job ends Failed; behind a real kube-proxy the
connection itself is refused, which distributed retries. With the probe the Service has no ready endpoint until
the scheduler listens, so connections are refused and retried on LocalKube too. The floor runs the example's
scheduler, 2 workers (`--nthreads 1`) and runner command directly, from spawn to the runner's exit 0."""

from __future__ import annotations

import asyncio
import copy
import sys
import time
from pathlib import Path

import floor
import yaml
from common import GROUP, Sample, operator, until
from report import Row

EXAMPLE = Path(__file__).parents[2] / "examples" / "manifests" / "sum-daskjob.yaml"


def _retag(obj, image: str):  # type: ignore[no-untyped-def]
    if isinstance(obj, dict):
        return {k: (image if k == "image" else _retag(v, image)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_retag(v, image) for v in obj]
    return obj


def _with_probe(job):  # type: ignore[no-untyped-def]
    """The same job with a readinessProbe on the scheduler's comm port, so that its Service has no ready endpoint
    (connections are refused, and Dask retries) until the scheduler listens."""
    job = copy.deepcopy(job)
    for container in job["spec"]["cluster"]["spec"]["scheduler"]["spec"]["containers"]:
        container["readinessProbe"] = {"tcpSocket": {"port": "tcp-comm"}, "periodSeconds": 1}
    return job


async def _why(kube, ns: str, name: str) -> str:  # type: ignore[no-untyped-def]
    """The runner's last log line: why the job failed."""
    try:
        async with kube.http.get(f"/api/v1/namespaces/{ns}/pods/{name}-runner/log",
                                 params={"tailLines": "1"}) as resp:
            return (await resp.text()).strip()[-200:]
    except Exception as err:
        return repr(err)


def _load() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def _runner_command(job) -> list[str]:  # type: ignore[no-untyped-def]
    """The runner container's command, with this environment's interpreter for `python`."""
    container = job["spec"]["job"]["spec"]["containers"][0]
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    return [sys.executable if a == "python" else a for a in argv]


async def run(ctx) -> list[Row]:  # type: ignore[no-untyped-def]
    job = _load()
    floor_sample = Sample()
    for _ in range(ctx.rounds):
        floor_sample.values.append(await asyncio.to_thread(
            floor.job, _runner_command(job), 2, ["--nthreads", "1"], ctx.kube.tmp / "floor-job.log"))
    baseline = f"floor (scheduler, 2 workers and the runner started directly): {floor_sample.median:.2f} s"
    rows = [await _variant(ctx, job, "sum-daskjob.yaml as shipped", "plain"),
            await _variant(ctx, _with_probe(job), "the same + scheduler readinessProbe (tcpSocket tcp-comm)",
                           "probe")]
    for row in rows:
        row.baseline, row.floor = baseline, floor_sample.median
    return rows


async def _variant(ctx, job, label: str, tag: str) -> Row:  # type: ignore[no-untyped-def]
    kube = ctx.kube
    row = Row("4 DaskJob", f"create -> Successful: {label}", "s", key=f"job-{tag}")
    for key in ("ours", "dk"):
        tool = ctx.tools.get(key)
        sample = getattr(row, key)
        if tool is None:
            sample.note = ctx.missing.get(key, "not run")
            continue
        async with operator(tool, kube, f"job-{tag}"):
            for r in range(ctx.rounds):
                ns = f"job-{tag}-{key}-{r}"
                await kube.ensure_namespace(ns)
                body = _retag(copy.deepcopy(job), tool.image)
                body["metadata"]["namespace"] = ns
                name = body["metadata"]["name"]
                path = f"{GROUP}/namespaces/{ns}/daskjobs"
                state: dict[str, str] = {}

                async def done(path: str = path, name: str = name, state: dict[str, str] = state) -> bool:
                    status = (await kube.get(f"{path}/{name}")).get("status") or {}
                    state["s"] = status.get("jobStatus", "")
                    return state["s"] in ("Successful", "Failed")

                start = time.perf_counter()
                await kube.request("POST", path, body)
                try:
                    await until(done, 300, f"DaskJob {ns}/{name} finished", 0.1)
                except TimeoutError as err:
                    sample.note = ctx.failure(key, "DaskJob", err) + f" (last jobStatus {state.get('s')!r})"
                    break
                elapsed = time.perf_counter() - start
                if state["s"] != "Successful":
                    why = await _why(kube, ns, name)
                    sample.note = ctx.failure(key, f"DaskJob ({label})",
                                              RuntimeError(f"jobStatus {state['s']}; runner's last line: {why}"))
                    await kube.delete_namespace(ns)
                    break
                sample.values.append(elapsed)
                await kube.delete_namespace(ns)
    return row
