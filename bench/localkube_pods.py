"""LocalKube pods: create -> Ready latency, port-forward throughput, 1,000 simulated pods.

Each number comes with its floor measured in the same run: spawning the same process directly, and direct
loopback TCP to the same pod. LocalKube runs as its own process, as users run it. Reported, never asserted.

    .venv/bin/python bench/localkube_pods.py [--rounds 10] [--megabytes 200] [--simulated 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import kr8s.asyncio
from _localkube import start_localkube
from _transfer import SINK, SINK_PORT, send
from kr8s.asyncio.objects import Pod

SLEEPER = ["python", "-c", "print('up', flush=True); import time; time.sleep(600)"]


def _pod(name: str, command: list[str], simulate: bool = False) -> dict:
    meta: dict = {"name": name, "namespace": "default"}
    if simulate:
        meta["annotations"] = {"localkube.dask.org/simulate": "true"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "python",
                                                                         "command": command}]}}


async def _spawn_floor() -> float:
    """The same process started directly, until it says it is up."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, *SLEEPER[1:], stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    await proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.kill()
    await proc.wait()
    return elapsed


async def _create_to_ready(api: kr8s.asyncio.Api, name: str) -> float:
    start = time.perf_counter()
    pod = await Pod(_pod(name, SLEEPER), api=api)
    await pod.create()
    await pod.wait("condition=Ready", timeout=60)
    elapsed = time.perf_counter() - start
    await pod.delete(force=True)
    return elapsed



async def _port_forward(api: kr8s.asyncio.Api, megabytes: int) -> tuple[float, float]:
    pod = await Pod(_pod("sink", ["python", "-c", SINK]), api=api)
    await pod.create()
    await pod.wait("condition=Ready", timeout=60)
    ip = pod.status.podIP
    payload = os.urandom(1 << 20) * megabytes
    deadline = time.monotonic() + 10
    while True:  # Ready means running; the socket may open a moment later
        try:
            direct = await send(ip, SINK_PORT, payload)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    async with pod.portforward(SINK_PORT, local_port="auto") as port:
        forwarded = await send("127.0.0.1", port, payload)
    return direct, forwarded


async def _simulated(url: str, count: int) -> float:
    start = time.perf_counter()
    async with aiohttp.ClientSession(base_url=url) as http:
        sem = asyncio.Semaphore(20)

        async def create(i: int) -> None:
            async with sem, http.post("/api/v1/namespaces/default/pods",
                                      json=_pod(f"sim-{i}", SLEEPER, simulate=True)) as resp:
                assert resp.status == 201

        await asyncio.gather(*(create(i) for i in range(count)))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            async with http.get("/api/v1/namespaces/default/pods",
                                params={"labelSelector": "", "fieldSelector": "status.phase=Running"}) as resp:
                items = (await resp.json())["items"]
            if sum(1 for p in items if p["metadata"]["name"].startswith("sim-")) == count:
                return time.perf_counter() - start
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{count} simulated pods were not all Running within 300 s (node capacity?)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--simulated", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, kubeconfig, url = start_localkube(Path(tmp))
        try:
            api = await kr8s.asyncio.api(kubeconfig=str(kubeconfig))
            floor = [await _spawn_floor() for _ in range(args.rounds)]
            ready = [await _create_to_ready(api, f"lat-{i}") for i in range(args.rounds)]
            direct, forwarded = await _port_forward(api, args.megabytes)
            simulated = await _simulated(url, args.simulated)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    f_med, r_med = statistics.median(floor), statistics.median(ready)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'scenario':52} {'value':>14}")
    print(f"{'spawn the process directly (median, floor)':52} {f_med * 1000:12.0f}ms")
    print(f"{'pod create -> Ready (median of ' + str(args.rounds) + ')':52} {r_med * 1000:12.0f}ms")
    print(f"{'ratio pod / direct spawn':52} {r_med / f_med:14.2f}")
    print(f"{'direct loopback TCP to the pod IP (floor)':52} {direct:10.0f} MB/s")
    print(f"{'kr8s port-forward':52} {forwarded:10.0f} MB/s")
    print(f"{'ratio port-forward / direct':52} {forwarded / direct:14.2f}")
    print(f"{str(args.simulated) + ' simulated pods created and Running':52} {simulated:13.2f}s")


if __name__ == "__main__":
    asyncio.run(main())
