"""Port-forward throughput through one LocalKube: direct TCP, our forward, dask-kubernetes's, kubectl's.

Every path carries the same payload from this process into the same sink pod (`_transfer.py`); each forward runs
in its own process, as a client would: our `SchedulerForward` and dask-kubernetes's `port_forward_service` through
bench/compare's runners (theirs only when its environment exists), kubectl over WebSocket and over SPDY. Besides
MB/s, it prints the CPU each process spent per MB (user + system): on a shared machine the MB/s move with the
load, the CPU per MB much less, and it shows which process is the bottleneck. Reported, never asserted.

    .venv/bin/python bench/port_forward.py [--megabytes 100] [--rounds 3] [--dk-venv /abs/.venv-bench-dk]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kr8s.asyncio
import psutil
from _localkube import start_localkube
from _transfer import SINK, SINK_PORT, send
from kr8s.asyncio.objects import Pod, Service
from localkube.cluster import LocalKube

HERE = Path(__file__).resolve().parent
CLUSTER = "bw"  # the sink stands in for the scheduler of DaskCluster "bw", as bench/compare's scenario 5
LABELS = {"dask.org/cluster-name": CLUSTER, "dask.org/component": "scheduler"}


@contextmanager
def _forwarder(name: str, kubeconfig: Path, dk_venv: Path | None) -> Iterator[tuple[int, psutil.Process]]:
    """A forward in its own process: (local port, that process)."""
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    args = json.dumps({"namespace": "default", "cluster": CLUSTER, "port": SINK_PORT})
    if name in ("ours", "dask-kubernetes"):
        python = sys.executable if name == "ours" else str(dk_venv / "bin" / "python")  # type: ignore[operator]
        script = HERE / "compare" / ("ours_runner.py" if name == "ours" else "dk_runner.py")
        argv = [python, str(script), "forward", args]
    else:
        if name == "kubectl-spdy":
            env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = "false"
        argv = ["kubectl", "port-forward", f"pod/{CLUSTER}-scheduler", f":{SINK_PORT}"]
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("@@ "):
                port = int(json.loads(line[3:])["port"])
                break
            if "127.0.0.1:" in line:  # kubectl: "Forwarding from 127.0.0.1:PORT -> 9000"
                port = int(line.split("127.0.0.1:")[1].split()[0])
                break
        else:
            raise RuntimeError(f"{name}: the forward exited with {proc.wait()}")
        yield port, psutil.Process(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def _cpu(*procs: psutil.Process) -> list[float]:
    return [sum(p.cpu_times()[:2]) for p in procs]


async def _measure(port: int, payload: bytes, rounds: int, procs: dict[str, psutil.Process],
                   host: str = "127.0.0.1") -> tuple[float, dict[str, float]]:
    """Median MB/s over `rounds`, and each process's CPU ms per MB over all of them."""
    before = _cpu(*procs.values())
    rates = [await send(host, port, payload) for _ in range(rounds)]
    after = _cpu(*procs.values())
    megabytes = len(payload) * rounds / 1e6
    spent = {k: 1000 * (a - b) / megabytes for k, a, b in zip(procs, after, before, strict=True)}
    return statistics.median(rates), spent


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dk-venv", type=Path, default=HERE.parent / ".venv-bench-dk")
    parser.add_argument("--paths", default="ours,dask-kubernetes,kubectl-ws,kubectl-spdy")
    parser.add_argument("--in-process", action="store_true",
                        help="run LocalKube on a thread of this process, as bench/compare does (it then shares "
                             "the sender's GIL and its CPU column)")
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p != "dask-kubernetes" or (args.dk_venv / "bin" / "python").exists()]
    payload = os.urandom(1 << 20) * args.megabytes
    rows: list[tuple[str, float, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.in_process:
            threaded = stack.enter_context(LocalKube.in_thread(http_port=0))
            proc, kubeconfig = None, threaded.kubeconfig
        else:
            proc, kubeconfig, _url = start_localkube(Path(tmp))
        try:
            api = await kr8s.asyncio.api(kubeconfig=str(kubeconfig))
            pod = await Pod({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": f"{CLUSTER}-scheduler", "namespace": "default", "labels": LABELS},
                             "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                                 "name": "sink", "image": "python", "command": ["python", "-c", SINK],
                                 "readinessProbe": {"tcpSocket": {"port": SINK_PORT}, "periodSeconds": 1}}]}},
                            api=api)
            await pod.create()
            await (await Service({"apiVersion": "v1", "kind": "Service",
                                  "metadata": {"name": f"{CLUSTER}-scheduler", "namespace": "default"},
                                  "spec": {"selector": LABELS, "ports": [{"port": SINK_PORT}]}}, api=api)).create()
            await pod.wait("condition=Ready", timeout=60)
            localkube = psutil.Process(proc.pid if proc is not None else None)
            sink = next(c for c in localkube.children(recursive=True) if "create_server" in " ".join(c.cmdline()))
            me = psutil.Process()
            rate, cpu = await _measure(SINK_PORT, payload, args.rounds, {"sender": me, "sink": sink},
                                       host=pod.status.podIP)
            rows.append(("direct TCP to the pod", rate, cpu))
            for name in paths:
                with _forwarder(name, kubeconfig, args.dk_venv) as (port, fwd):
                    rate, cpu = await _measure(port, payload, args.rounds,
                                               {"sender": me, "forward": fwd, "localkube": localkube, "sink": sink})
                rows.append((name, rate, cpu))
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    direct = rows[0][1]
    theirs = next((r for n, r, _ in rows if n == "dask-kubernetes"), None)
    print(f"{args.megabytes} MB x {args.rounds}, machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'path':24} {'MB/s':>7} {'/direct':>8} {'/theirs':>8}   CPU ms per MB: sender forward localkube sink")
    for name, rate, cpu in rows:
        vs_theirs = f"{rate / theirs:8.2f}" if theirs else f"{'-':>8}"
        cost = "  ".join(f"{cpu.get(k, 0):6.2f}" if k in cpu else f"{'-':>6}"
                         for k in ("sender", "forward", "localkube", "sink"))
        print(f"{name:24} {rate:7.0f} {rate / direct:8.3f} {vs_theirs}   {cost}")


if __name__ == "__main__":
    asyncio.run(main())
