"""The least a kr8s client spends creating N simulated pods, as a floor for the operator's scale rows.

LocalKube runs on a thread of this process, as `bench/compare` runs it (HTTPS, kubeconfig); the client is a
separate process, as the operator is, that only POSTs N pod bodies through kr8s (`call_api`, the operator's own
path) with bounded concurrency: no watch, no cache, no handler. It prints the wall time of the creates and the
client's CPU seconds. Reported, never asserted.

    .venv/bin/python bench/kr8s_creates.py [--pods 1000] [--concurrency 20,50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from localkube.cluster import LocalKube
from localkube.testing import until

CLIENT = r"""
import asyncio, json, resource, sys, time
import kr8s.asyncio

async def main(count: int, concurrency: int) -> None:
    api = await kr8s.asyncio.api()
    limit = asyncio.Semaphore(concurrency)

    def body(i: int) -> dict:
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"sim-{i}", "annotations": {"localkube.dask.org/simulate": "true"}},
                "spec": {"containers": [{"name": "c", "image": "python", "command": ["python", "-c", "pass"]}]}}

    async def create(i: int) -> None:
        async with limit, api.call_api("POST", version="v1", url="pods", namespace="default",
                                       content=json.dumps(body(i)),
                                       headers={"Content-Type": "application/json"}) as resp:
            resp.json()

    start = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(count)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": time.perf_counter() - start, "cpu": usage.ru_utime + usage.ru_stime}))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--concurrency", default="20,50")
    args = parser.parse_args()
    print(f"{'concurrency':>12} {'creates (s)':>12} {'client CPU (s)':>15}")
    with tempfile.TemporaryDirectory() as tmp, LocalKube.in_thread(http_port=0) as kube:
        env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig), KUBECACHEDIR=tmp)
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            out = subprocess.run([sys.executable, "-c", CLIENT, str(args.pods), str(concurrency)], env=env,
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout)
            print(f"{concurrency:>12} {result['seconds']:>12.2f} {result['cpu']:>15.2f}")
            subprocess.run(["kubectl", "delete", "pods", "--all", "--grace-period=0", "--force"], env=env,
                           capture_output=True, check=True)

            def empty() -> bool:
                listed = subprocess.run(["kubectl", "get", "pods", "-o", "json"], env=env, capture_output=True,
                                        text=True, check=True)
                return not json.loads(listed.stdout)["items"]

            until(empty, "the pods deleted", 300)


if __name__ == "__main__":
    main()
