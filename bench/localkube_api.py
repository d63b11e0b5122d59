"""LocalKube API throughput: object writes per second and watch fan-out to 50 watchers.

Runs LocalKube as its own process (as `make demo` and users do) and, as the baseline measured in the same run,
a bare aiohttp server answering the same requests with a canned body: the ratio is the cost of Kubernetes object
semantics on top of HTTP on this machine. Reported, never asserted.

    .venv/bin/python bench/localkube_api.py [--writes 3000] [--watchers 50] [--events 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from _localkube import start_localkube

CONCURRENCY = 16


_FLOOR = """
import asyncio, json
import aiohttp.web as web
BODY = json.dumps({"kind": "ConfigMap", "metadata": {"name": "x", "resourceVersion": "1"}})
async def handler(request):
    await request.read()
    return web.Response(text=BODY, status=201, content_type="application/json")
async def main():
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def _floor_server() -> tuple[subprocess.Popen[str], str]:
    """The baseline: a bare aiohttp server in its own process, like LocalKube, answering a canned object."""
    proc = subprocess.Popen([sys.executable, "-c", _FLOOR], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{proc.stdout.readline().strip()}"


async def _writes(url: str, n: int, namespace: str) -> float:
    """Creates then merge patches, CONCURRENCY at a time; returns writes per second."""
    sem = asyncio.Semaphore(CONCURRENCY)
    base = f"{url}/api/v1/namespaces/{namespace}/configmaps"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:

        async def create(i: int) -> None:
            async with sem:
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}, "data": {"i": "0"}}
                async with http.post(base, json=body) as resp:
                    assert resp.status == 201, await resp.text()

        async def patch(i: int) -> None:
            async with sem, http.patch(f"{base}/cm-{i}", data=json.dumps({"data": {"i": "1"}}),
                                  headers={"Content-Type": "application/merge-patch+json"}) as resp:
                assert resp.status in (200, 201), await resp.text()

        start = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(n // 2)))
        await asyncio.gather(*(patch(i) for i in range(n // 2)))
        return (n // 2 * 2) / (time.perf_counter() - start)


async def _fanout(url: str, watchers: int, events: int) -> tuple[float, float]:
    """`watchers` watches on one namespace, `events` writes; returns (events delivered/s, last-delivery latency)."""
    ns = "fanout"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/v1/namespaces", json={"metadata": {"name": ns}}) as resp:
            assert resp.status == 201
        base = f"{url}/api/v1/namespaces/{ns}/configmaps"
        streams = [await http.get(f"{base}?watch=true", timeout=aiohttp.ClientTimeout(total=None))
                   for _ in range(watchers)]
        done = asyncio.Event()
        counts = [0] * watchers
        finished = 0

        async def read(i: int, resp: aiohttp.ClientResponse) -> None:
            nonlocal finished
            while counts[i] < events:
                line = await resp.content.readline()
                if not line:
                    return
                counts[i] += 1
            finished += 1
            if finished == watchers:
                done.set()

        readers = [asyncio.create_task(read(i, s)) for i, s in enumerate(streams)]
        start = time.perf_counter()
        for i in range(events):
            async with http.post(base, json={"metadata": {"name": f"e-{i}"}, "data": {}}) as resp:
                assert resp.status == 201
        written = time.perf_counter()
        await asyncio.wait_for(done.wait(), 120)
        end = time.perf_counter()
        for task in readers:
            task.cancel()
        for s in streams:
            s.close()
        return watchers * events / (end - start), end - written


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, _, url = start_localkube(Path(tmp))
        floor_proc, floor_url = _floor_server()
        try:
            floor = await _writes(floor_url, args.writes, "default")
            ours = await _writes(url, args.writes, "default")
            delivered, lag = await _fanout(url, args.watchers, args.events)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
            floor_proc.terminate()
            floor_proc.wait(15)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'scenario':44} {'value':>12}")
    print(f"{'bare aiohttp floor (writes/s)':44} {floor:12.0f}")
    print(f"{'LocalKube writes/s (create + merge patch)':44} {ours:12.0f}")
    print(f"{'ratio LocalKube / floor':44} {ours / floor:12.2f}")
    print(f"{f'watch fan-out: events delivered/s to {args.watchers}':44} {delivered:12.0f}")
    print(f"{'watch fan-out: last delivery after last write':44} {lag * 1000:10.0f}ms")


if __name__ == "__main__":
    asyncio.run(main())
