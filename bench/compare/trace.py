"""The timeline of one dask_kube cold start (or DaskJob) on LocalKube, to see which steps wait on which.

    .venv/bin/python bench/compare/trace.py [cold|job]

Starts LocalKube and our operator as the comparison does, then watches the namespace while `KubeCluster(n_workers=2)`
starts (cold) or examples/manifests/sum-daskjob.yaml runs (job), and prints every change of the Dask objects and
pods that matters for start-up (created, scheduled, Running, Ready, phases, conditions), in seconds since the
start. Reported, never asserted.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procs
from common import GROUP, OUR_IMAGE, Kube, operator, ours_tool, runner, until
from daskjob import _load, _retag
from localkube.cluster import LocalKube

NS = "trace"


def _summary(obj: dict[str, Any]) -> str:
    kind, st = obj.get("kind"), obj.get("status") or {}
    if kind == "Pod":
        ready = next((c["status"] for c in st.get("conditions") or () if c.get("type") == "Ready"), "-")
        gone = " deleting" if obj["metadata"].get("deletionTimestamp") else ""
        return f"phase={st.get('phase')} ready={ready} node={bool((obj.get('spec') or {}).get('nodeName'))}{gone}"
    if kind == "Service":
        return "exists"
    conds = ",".join(f"{c['type']}={c['status']}" for c in st.get("conditions") or ())
    return " ".join(f"{k}={st[k]}" for k in ("phase", "jobStatus", "replicas", "readyReplicas") if k in st) + \
        (f" [{conds}]" if conds else "")


async def _watch(kube: Kube, path: str, start: float, lines: list[str],
                 on_running: Callable[[str], None] = lambda name: None) -> None:
    assert kube.http is not None
    seen: dict[str, str] = {}
    running: set[str] = set()
    async with kube.http.get(path, params={"watch": "true"}, timeout=None) as resp:  # type: ignore[arg-type]
        async for raw in resp.content:
            event = json.loads(raw)
            obj = event["object"]
            name = obj["metadata"]["name"]
            key = f"{obj.get('kind')} {name}"
            text = f"{event['type']} {_summary(obj)}" if event["type"] != "MODIFIED" else _summary(obj)
            if obj.get("kind") == "Pod" and (obj.get("status") or {}).get("phase") == "Running" \
                    and name not in running:
                running.add(name)
                on_running(name)
            if seen.get(key) != text:
                seen[key] = text
                lines.append(f"{time.perf_counter() - start:7.3f}  {key:<40} {text}")


async def _follow_log(kube: Kube, name: str, start_wall: float, lines: list[str]) -> None:
    """A pod's log lines on the same clock as the watch: LocalKube stamps each line when it arrives
    (`timestamps=true`), which places the scheduler's listening and the workers' retries among the object
    changes. Followed from the pod's start, since the runner deletes the cluster as soon as it has measured."""
    assert kube.http is not None
    path = f"/api/v1/namespaces/{NS}/pods/{name}/log"
    async with kube.http.get(path, params={"timestamps": "true", "follow": "true"}, timeout=None) as resp:  # type: ignore[arg-type]
        async for raw in resp.content:
            stamp, _, message = raw.decode(errors="replace").rstrip().partition(" ")
            when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - start_wall
            lines.append(f"{when:7.3f}  log {name:<36} {message[:140]}")


async def main(what: str) -> None:
    with tempfile.TemporaryDirectory(prefix="trace-") as tmp, LocalKube.in_thread(http_port=0) as threaded:
        async with Kube(threaded, Path(tmp)) as kube:
            await kube.ensure_namespace(NS)
            tool = ours_tool()
            async with operator(tool, kube, "trace"):
                lines: list[str] = []
                start, start_wall = time.perf_counter(), time.time()
                logs: list[asyncio.Task[None]] = []

                def follow(name: str) -> None:
                    logs.append(asyncio.create_task(_follow_log(kube, name, start_wall, lines)))

                watches = [asyncio.create_task(_watch(kube, f"/api/v1/namespaces/{NS}/pods", start, lines, follow))]
                watches += [asyncio.create_task(_watch(kube, path, start, lines)) for path in (
                    f"/api/v1/namespaces/{NS}/services",
                    *(f"{GROUP}/namespaces/{NS}/{p}" for p in ("daskclusters", "daskworkergroups", "daskjobs")))]
                if what == "job":
                    body = _retag(copy.deepcopy(_load()), OUR_IMAGE)
                    body["metadata"]["namespace"] = NS
                    await kube.request("POST", f"{GROUP}/namespaces/{NS}/daskjobs", body)

                    async def done() -> bool:
                        got = await kube.get(f"{GROUP}/namespaces/{NS}/daskjobs/{body['metadata']['name']}")
                        return (got.get("status") or {}).get("jobStatus") in ("Successful", "Failed")

                    await until(done, 300, "the DaskJob finished", 0.05)
                    lines.append(f"{time.perf_counter() - start:7.3f}  job finished")
                else:
                    args = {"name": "trace", "namespace": NS, "image": tool.image,
                            "worker_command": tool.worker_command, "extra": {}}
                    async with runner(tool, kube, "cold", args, "trace") as run:
                        event = await run.event(timeout=300)
                    lines.append(f"{time.perf_counter() - start:7.3f}  client: 2 workers connected "
                                 f"{event['seconds']:.3f} s after KubeCluster() was called")
                for task in watches + logs:
                    task.cancel()
                await asyncio.gather(*watches, *logs, return_exceptions=True)
                print("\n".join(sorted(lines, key=lambda line: float(line.split()[0]))))


if __name__ == "__main__":
    procs.install()
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "cold"))
