"""Dask itself on LocalKube: `dask scheduler` and `dask worker` pods find each other as they would in a cluster.

LocalKube knows nothing of Dask and its own tests need no Dask; these check the networking that Dask relies on
(Service DNS, advertised pod IPs, load balancers, kr8s port-forward) with real Dask processes.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
import yaml
from kr8s.objects import Pod
from localkube.testing import free_port, until

pytestmark = pytest.mark.e2e

IMAGE = "ghcr.io/dask/dask:latest"


def _apply(kubectl, *docs: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def _scheduler(service_type: str = "ClusterIP") -> list[dict[str, Any]]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sched", "labels": {"role": "sched"}},
           "spec": {"containers": [{
               "name": "scheduler", "image": IMAGE, "args": ["dask", "scheduler"],
               "ports": [{"name": "tcp-comm", "containerPort": 8786},
                         {"name": "http-dashboard", "containerPort": 8787}],
               "readinessProbe": {"httpGet": {"path": "/health", "port": "http-dashboard"}, "periodSeconds": 1}}]}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sched"},
               "spec": {"type": service_type, "selector": {"role": "sched"}, "ports": [
                   {"name": "tcp-comm", "port": 8786, "targetPort": "tcp-comm"}]}}
    return [pod, service]


def _worker(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{
        "name": "worker", "image": IMAGE,
        "args": ["dask", "worker", f"tcp://sched.{namespace}.svc.cluster.local:8786", "--name",
                 "$(POD_NAME)", "--nthreads", "1", "--no-dashboard"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}


def _wait_ready(kubectl, *pods: str, timeout: int = 60) -> None:  # type: ignore[no-untyped-def]
    kubectl("wait", "--for=condition=Ready", *[f"pod/{p}" for p in pods], f"--timeout={timeout}s",
            timeout=timeout + 10)


def _pod_ip(kubectl, name: str) -> str:  # type: ignore[no-untyped-def]
    return kubectl("get", "pod", name, "-o", "jsonpath={.status.podIP}").stdout


def test_dask_scheduler_and_two_workers_compute_through_kr8s_port_forward(kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    from distributed import Client

    _apply(kubectl, *_scheduler(), *(_worker(f"worker-{i}", namespace) for i in range(2)))
    _wait_ready(kubectl, "sched")
    pod = Pod.get("sched", namespace=namespace)
    with pod.portforward(8786, local_port=free_port()) as port, Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
        names = sorted(w["name"] for w in client.scheduler_info()["workers"].values())
        assert names == ["worker-0", "worker-1"]
        futures = client.map(lambda x: x * x, range(100))
        assert client.submit(sum, futures).result(timeout=60) == 328350


def test_dask_through_a_load_balancer_advertises_pod_ips(kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    """The scheduler and the worker advertise their pod IPs (distributed's `get_ip()` answers the pod IP), and a
    client outside the cluster reaches the scheduler through the LoadBalancer's ingress address."""
    from distributed import Client

    probe = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "getip"}, "spec": {"restartPolicy": "Never",
             "containers": [{"name": "c", "image": IMAGE, "command": [
                 "python", "-c", "from distributed.utils import get_ip; print(get_ip())"]}]}}
    _apply(kubectl, *_scheduler("LoadBalancer"), _worker("worker-0", namespace), probe)
    _wait_ready(kubectl, "sched", "worker-0")
    until(lambda: kubectl("get", "pod", "getip", "-o", "jsonpath={.status.phase}").stdout == "Succeeded",
          what="the get_ip pod to finish")
    assert kubectl("logs", "getip").stdout.strip() == _pod_ip(kubectl, "getip")

    service = until(lambda: (svc := json.loads(kubectl("get", "service", "sched", "-o", "json").stdout))[
        "status"].get("loadBalancer", {}).get("ingress") and svc, what="the load balancer's ingress")
    address = f"tcp://{service['status']['loadBalancer']['ingress'][0]['ip']}:8786"
    with Client(address, timeout=30) as client:
        client.wait_for_workers(1, timeout=60)
        assert client.submit(sum, range(10)).result(timeout=60) == 45
        info = client.scheduler_info()
    assert info["address"] == f"tcp://{_pod_ip(kubectl, 'sched')}:8786"
    assert [w.split("//")[1].rsplit(":", 1)[0] for w in info["workers"]] == [_pod_ip(kubectl, "worker-0")]


def test_dask_dashboard_through_the_api_server_service_proxy(kube, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    """The dashboard at `.../services/sched:http-dashboard/proxy/status`, the URL `kubectl proxy` users open: the
    request goes to the API server with the session's token and CA, never to the pod directly."""
    pod, service = _scheduler()
    service["spec"]["ports"].append({"name": "http-dashboard", "port": 8787, "targetPort": "http-dashboard"})
    _apply(kubectl, pod, service)
    _wait_ready(kubectl, "sched")
    api = kube.api
    base = f"{api.server}/api/v1/namespaces/{namespace}/services/sched:http-dashboard/proxy"

    def get(path: str) -> tuple[int, str, bytes]:
        request = urllib.request.Request(base + path, headers=api.headers)
        try:
            with urllib.request.urlopen(request, timeout=30, context=api.context) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get("Content-Type", ""), err.read()

    # The Endpoints follow the pod's readiness a moment later; until then the proxy answers 503.
    health = until(lambda: (r := get("/health"))[0] == 200 and r, what="the scheduler's /health through the proxy",
                   explain=lambda: repr(get("/health")))
    assert health[2] == b"ok"
    status, content_type, page = get("/status")
    assert status == 200, page[:500]
    assert content_type.startswith("text/html")
    # The dashboard itself (bokeh is in the test extra, as in the Dask images), and its assets through the same
    # proxy path: the page links them relatively, so a browser behind `kubectl proxy` gets them.
    scripts = re.findall(rb'src="(static/js/bokeh\.min\.js[^"]*)"', page)
    assert scripts, page[:500]
    status, content_type, script = get("/" + scripts[0].decode())
    assert status == 200 and "javascript" in content_type and len(script) > 100_000
