"""Scenario 5: bytes/s through each client's scheduler port-forward, against direct loopback TCP to the pod.

A sink pod stands in for a scheduler (named and labelled as one, behind a `<cluster>-scheduler` Service), so
that each tool's own forward reaches it exactly as it reaches a scheduler: dask-kubernetes's
`port_forward_service` (a kr8s Service forward on a thread) and dask_kube's `SchedulerForward`. The payload is
sent from the harness process in both cases."""

from __future__ import annotations

import os

from _transfer import SINK, SINK_PORT, send
from common import Sample, runner, until
from report import Row

NS = "fwd"
CLUSTER = "bw"
PORT = SINK_PORT
LABELS = {"dask.org/cluster-name": CLUSTER, "dask.org/component": "scheduler"}



async def _sink(kube) -> str:  # type: ignore[no-untyped-def]
    await kube.ensure_namespace(NS)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{CLUSTER}-scheduler", "labels": LABELS},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
               "name": "sink", "image": "python", "command": ["python", "-c", SINK],
               "ports": [{"name": "tcp-comm", "containerPort": PORT}],
               "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1}}]}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{CLUSTER}-scheduler", "labels": LABELS},
           "spec": {"selector": LABELS, "ports": [{"name": "tcp-comm", "port": PORT, "targetPort": PORT}]}}
    await kube.request("POST", f"/api/v1/namespaces/{NS}/pods", pod)
    await kube.request("POST", f"/api/v1/namespaces/{NS}/services", svc)
    path = f"/api/v1/namespaces/{NS}/pods/{CLUSTER}-scheduler"

    async def ready() -> bool:
        status = (await kube.get(path)).get("status") or {}
        return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])

    await until(ready, 60, "sink pod Ready")
    return (await kube.get(path))["status"]["podIP"]


async def run(ctx) -> list[Row]:  # type: ignore[no-untyped-def]
    kube = ctx.kube
    ip = await _sink(kube)
    payload = os.urandom(1 << 20) * ctx.args.megabytes
    direct = Sample()
    for _ in range(ctx.rounds):
        direct.values.append(await send(ip, PORT, payload))
    row = Row("5 port-forward", f"client's scheduler forward, {ctx.args.megabytes} MB per transfer", "MB/s",
              baseline=f"direct loopback TCP to the pod: {direct.median:,.0f} MB/s", key="forward", floor=direct.median)
    ratio = Row("5 port-forward", "ratio forward / direct TCP", "")
    for key in ("ours", "dk"):
        tool = ctx.tools.get(key)
        sample = getattr(row, key)
        if tool is None:
            sample.note = getattr(ratio, key).note = ctx.missing.get(key, "not run")
            continue
        try:
            async with runner(tool, kube, "forward", {"namespace": NS, "cluster": CLUSTER, "port": PORT},
                              "forward") as run:
                port = (await run.event(timeout=120))["port"]
                for _ in range(ctx.rounds):
                    sample.values.append(await send("127.0.0.1", port, payload))
        except Exception as err:
            sample.note = ctx.failure(key, "port-forward", err)
            continue
        getattr(ratio, key).values.extend(v / direct.median for v in sample.values)  # type: ignore[operator]
    await kube.delete_namespace(NS)
    return [row, ratio]
