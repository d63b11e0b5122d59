"""Pods that really run on the session LocalKube: services route, logs stream, port-forwards carry data,
Deployments roll out, and a real Dask cluster computes for a Client in the test process."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import socket
import subprocess
import threading
import time
import urllib.request
from typing import Any

import pytest
import yaml
from kr8s.objects import Pod

from localkube.testing import free_port, until

pytestmark = pytest.mark.e2e


def _apply(kubectl, *docs: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def _http_pod(name: str, labels: dict[str, str], port: int = 8080, probe: bool = True) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "web", "image": "python:3.11", "command": ["python", "-m", "http.server", str(port)],
        "ports": [{"name": "http", "containerPort": port}],
    }
    if probe:
        container["readinessProbe"] = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 2}}


def _service(name: str, selector: dict[str, str], port: int = 80, target: Any = "http",
             type_: str = "ClusterIP") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": type_, "selector": selector, "ports": [{"name": "http", "port": port,
                                                                     "targetPort": target}]}}


def _wait_ready(kubectl, *pods: str, timeout: int = 60) -> None:  # type: ignore[no-untyped-def]
    kubectl("wait", "--for=condition=Ready", *[f"pod/{p}" for p in pods], f"--timeout={timeout}s",
            timeout=timeout + 10)


def test_service_routes_by_name_to_both_pods(kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    _apply(kubectl, _http_pod("web-a", {"app": "web"}), _http_pod("web-b", {"app": "web"}),
           _service("web", {"app": "web"}))
    _wait_ready(kubectl, "web-a", "web-b")
    ips = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    assert len({p["status"]["podIP"] for p in ips}) == 2  # one IP per pod, both bound to port 8080
    # The third pod fetches by every name form; the server logs tell which pod answered.
    script = (
        "import urllib.request\n"
        f"for name in ['web', 'web.{namespace}', 'web.{namespace}.svc', 'web.{namespace}.svc.cluster.local']:\n"
        "    for _ in range(4):\n"
        "        print(name, urllib.request.urlopen(f'http://{name}:80/', timeout=10).status, flush=True)\n"
    )
    _apply(kubectl, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
                     "spec": {"restartPolicy": "Never", "containers": [
                         {"name": "c", "image": "python:3.11", "command": ["python", "-c", script]}]}})
    kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/client", "--timeout=60s", timeout=70)
    lines = kubectl("logs", "client").stdout.split("\n")
    assert sum(1 for line in lines if line.endswith(" 200")) == 16
    served = [kubectl("logs", p).stdout.count('"GET / HTTP/1.1" 200') for p in ("web-a", "web-b")]
    assert all(n > 0 for n in served), served  # both endpoints got traffic


def test_test_process_cannot_resolve_cluster_names(namespace) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(f"web.{namespace}.svc.cluster.local", 80)


def test_readiness_gates_ready_and_endpoints(kubectl, kube, namespace) -> None:  # type: ignore[no-untyped-def]
    # The server starts only once /tmp-like flag file exists: until then the probe fails.
    flag = f"/tmp/ready-{namespace}"
    pod = _http_pod("gated", {"app": "gated"})
    pod["spec"]["containers"][0]["readinessProbe"] = {"exec": {"command": ["test", "-e", flag]},
                                                      "periodSeconds": 1}
    _apply(kubectl, pod, _service("gated", {"app": "gated"}))
    kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/gated", "--timeout=60s", timeout=70)
    ep = json.loads(kubectl("get", "endpoints", "gated", "-o", "json").stdout)
    assert ep["subsets"][0]["notReadyAddresses"][0]["targetRef"]["name"] == "gated"
    assert "addresses" not in ep["subsets"][0]
    cond = kubectl("get", "pod", "gated", "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}').stdout
    assert cond == "False"
    try:
        open(flag, "w").close()
        _wait_ready(kubectl, "gated")
        deadline = time.monotonic() + 20
        while True:
            ep = json.loads(kubectl("get", "endpoints", "gated", "-o", "json").stdout)
            if ep.get("subsets") and ep["subsets"][0].get("addresses"):
                break
            assert time.monotonic() < deadline, ep
        assert ep["subsets"][0]["ports"][0]["port"] == 8080  # the named targetPort resolved
    finally:
        os.unlink(flag)


def test_kubectl_logs_follow_streams_until_exit(kube, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    # The container prints a line, then waits until the test creates a file, three times.
    script = ("import os, time\nfor i in range(3):\n    print('line', i, flush=True)\n"
              f"    while not os.path.exists('/tmp/go-{namespace}-' + str(i)):\n        time.sleep(0.05)\n")
    _apply(kubectl, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker"},
                     "spec": {"restartPolicy": "Never", "containers": [
                         {"name": "c", "image": "python:3.11", "command": ["python", "-c", script]}]}})
    kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/talker", "--timeout=60s", timeout=70)
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig), KUBECACHEDIR=str(kube.cache_dir))
    proc = subprocess.Popen(["kubectl", "-n", namespace, "logs", "-f", "talker"], stdout=subprocess.PIPE,
                            text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        for i in range(3):
            assert lines.get(timeout=20).strip() == f"line {i}"
            open(f"/tmp/go-{namespace}-{i}", "w").close()
        assert proc.wait(20) == 0  # the stream ends when the container exits
    finally:
        proc.kill()
        for i in range(3):
            if os.path.exists(f"/tmp/go-{namespace}-{i}"):
                os.unlink(f"/tmp/go-{namespace}-{i}")


def test_kubectl_port_forward_service_then_http_from_host(kube, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    _apply(kubectl, _http_pod("pf", {"app": "pf"}), _service("pf", {"app": "pf"}))
    _wait_ready(kubectl, "pf")
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig), KUBECACHEDIR=str(kube.cache_dir))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
    proc = subprocess.Popen(["kubectl", "-n", namespace, "port-forward", "svc/pf", f"{local}:80"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert "Forwarding from 127.0.0.1" in proc.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=10) as resp:
            assert resp.status == 200 and b"Directory listing" in resp.read()
    finally:
        proc.terminate()
        proc.wait(10)


def test_100mb_through_a_kr8s_port_forward_arrive_intact(kube, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    # A pod that reads a length-prefixed payload and answers with its sha256. (The websocket framing kr8s
    # speaks has no half-close, as on a real cluster, so the length says where the data ends.)
    script = (
        "import hashlib, socket\n"
        "srv = socket.create_server(('0.0.0.0', 9000))\n"
        "while True:\n"
        "    conn, _ = srv.accept()\n"
        "    f = conn.makefile('rb')\n"
        "    left = int.from_bytes(f.read(8), 'big')\n"
        "    h = hashlib.sha256()\n"
        "    while left:\n"
        "        chunk = f.read(min(left, 1 << 20))\n"
        "        h.update(chunk)\n"
        "        left -= len(chunk)\n"
        "    conn.sendall(h.hexdigest().encode())\n"
        "    conn.close()\n"
    )
    _apply(kubectl, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sink"}, "spec": {"containers": [
        {"name": "c", "image": "python:3.11", "command": ["python", "-c", script],
         "readinessProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 1}}]}})
    _wait_ready(kubectl, "sink")
    payload = os.urandom(1 << 20) * 100  # 100 MiB
    pod = Pod.get("sink", namespace=namespace)
    with pod.portforward(9000, local_port=free_port()) as port, socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(len(payload).to_bytes(8, "big") + payload)
        digest = b""
        while chunk := conn.recv(4096):
            digest += chunk
    assert digest.decode() == hashlib.sha256(payload).hexdigest()


def test_deployment_of_real_pods_rolls_out_and_scales(kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    template = _http_pod("x", {"app": "dep"})
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dep"},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "dep"}},
                           "template": {"metadata": template["metadata"] | {"name": None},
                                        "spec": template["spec"]}}}
    deployment["spec"]["template"]["metadata"].pop("name")
    _apply(kubectl, deployment)
    out = kubectl("rollout", "status", "deployment/dep", "--timeout=90s", timeout=100).stdout
    assert 'deployment "dep" successfully rolled out' in out
    kubectl("scale", "deployment/dep", "--replicas=3")
    kubectl("rollout", "status", "deployment/dep", "--timeout=90s", timeout=100)
    ready = kubectl("get", "deployment", "dep", "-o", "jsonpath={.status.readyReplicas}").stdout
    assert ready == "3"
    running = kubectl("get", "pods", "-l", "app=dep", "--field-selector=status.phase=Running", "-o", "name")
    assert len(running.stdout.split()) == 3


def test_kubectl_port_forward_pod_and_exec(kube, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    _apply(kubectl, _http_pod("pfpod", {"app": "pfpod"}))
    _wait_ready(kubectl, "pfpod")
    out = kubectl("exec", "pfpod", "--", "python", "-c", "import os; print(os.environ['HOSTNAME'])")
    assert out.stdout.strip() == "pfpod"
    failed = kubectl("exec", "pfpod", "--", "python", "-c", "raise SystemExit(3)", check=False)
    assert failed.returncode == 3
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig), KUBECACHEDIR=str(kube.cache_dir))
    proc = subprocess.Popen(["kubectl", "-n", namespace, "port-forward", "pod/pfpod", ":8080"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
        local = int(line.split("127.0.0.1:")[1].split()[0])
        for _ in range(3):  # several connections through one kubectl session
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=10) as resp:
                assert resp.status == 200
    finally:
        proc.terminate()
        proc.wait(10)


def test_service_connect_is_refused_like_kube_proxy_when_nothing_listens(kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    # Ready (no probe) but not listening, as a scheduler is for a moment after it starts.
    quiet = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "quiet", "labels": {"app": "quiet"}},
             "spec": {"containers": [{"name": "c", "image": "python:3.11",
                                      "command": ["python", "-c", "import time; time.sleep(600)"]}]}}
    script = (
        "import socket\n"
        "for name in ('quiet', 'empty'):\n"
        "    try:\n"
        "        socket.create_connection((name, 80), timeout=5).close()\n"
        "        print(name, 'connected', flush=True)\n"
        "    except ConnectionRefusedError:\n"
        "        print(name, 'refused', flush=True)\n"
    )
    _apply(kubectl, quiet, _service("quiet", {"app": "quiet"}, target=8080),
           _service("empty", {"app": "nobody"}, target=8080))
    _wait_ready(kubectl, "quiet")
    until(lambda: json.loads(kubectl("get", "endpoints", "quiet", "-o", "json").stdout).get("subsets"),
          "the quiet pod to be an endpoint")
    _apply(kubectl, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "prober"}, "spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "python:3.11",
                                                  "command": ["python", "-c", script]}]}})
    kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/prober", "--timeout=60s", timeout=70)
    assert kubectl("logs", "prober").stdout.split("\n")[:2] == ["quiet refused", "empty refused"]
