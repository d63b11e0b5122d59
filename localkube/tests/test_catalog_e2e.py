"""Well-known images on the session LocalKube, driven by the real kubectl: they run with no setup, and an image
LocalKube knows no program for fails to pull as on a real cluster."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kr8s.objects import Pod

from localkube.testing import free_port, until

pytestmark = pytest.mark.e2e


def _can_bind_80() -> bool:
    start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    return os.geteuid() == 0 or (start.exists() and int(start.read_text()) <= 80)


needs_port_80 = pytest.mark.skipif(not _can_bind_80(), reason="the nginx stand-in binds port 80: needs root or "
                                                               "net.ipv4.ip_unprivileged_port_start <= 80")


def _apply(kubectl, *docs: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def _pod(name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{"name": "main", **container}], **spec}}


def _wait(kubectl, condition: str, *pods: str, timeout: int = 60) -> None:  # type: ignore[no-untyped-def]
    kubectl("wait", f"--for={condition}", *[f"pod/{p}" for p in pods], f"--timeout={timeout}s", timeout=timeout + 10)


class PortForward:
    """`kubectl port-forward` to a pod, on a port the OS picks."""

    def __init__(self, kube, namespace: str, target: str, port: int) -> None:  # type: ignore[no-untyped-def]
        env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig), KUBECACHEDIR=str(kube.cache_dir))
        self.proc = subprocess.Popen(["kubectl", "-n", namespace, "port-forward", target, f":{port}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 80"
        assert "Forwarding from 127.0.0.1:" in line, line + self.proc.stderr.read()  # type: ignore[union-attr]
        self.local = int(line.split("127.0.0.1:")[1].split()[0])

    def request(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.local}{path}", method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@needs_port_80
def test_nginx_pods_serve_the_welcome_page_on_port_80(kube, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    probe = {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1}
    _apply(kubectl,
           _pod("web", {"image": "nginx:1.27", "ports": [{"containerPort": 80}], "readinessProbe": probe},
                terminationGracePeriodSeconds=5),
           _pod("cmd", {"image": "docker.io/library/nginx:alpine", "command": ["nginx", "-g", "daemon off;"],
                        "readinessProbe": probe}, terminationGracePeriodSeconds=5))
    _wait(kubectl, "condition=Ready", "web", "cmd")
    for pod in ("web", "cmd"):
        forward = PortForward(kube, namespace, f"pod/{pod}", 80)
        try:
            status, headers, body = forward.request("GET", "/")
            assert status == 200 and b"<title>Welcome to nginx!</title>" in body
            assert headers["Server"] == "nginx"
            status, headers, head = forward.request("HEAD", "/")
            assert (status, head) == (200, b"") and int(headers["Content-Length"]) == len(body)
            status, headers, missing = forward.request("GET", "/missing")
            assert status == 404 and b"404 Not Found" in missing and headers["Server"] == "nginx"
        finally:
            forward.close()
    log = kubectl("logs", "web").stdout
    assert '"GET / HTTP/1.1" 200 ' in log and '"HEAD / HTTP/1.1" 200 0 ' in log and '"GET /missing HTTP/1.1" 404' in log
    assert '"kube-probe/' in log  # the readiness probe's requests are logged too, as with nginx


@needs_port_80
def test_an_nginx_deployment_rolls_out_and_each_replica_answers(kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2", "--port=80")
    out = kubectl("rollout", "status", "deployment/web", "--timeout=90s", timeout=100).stdout
    assert 'deployment "web" successfully rolled out' in out
    pods = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == 2  # two nginx on port 80, one per pod address
    # From inside one replica (its image's PATH has python3 first), fetch both replicas by pod IP.
    script = ("import sys, urllib.request\nfor ip in sys.argv[1:]:\n"
              "    r = urllib.request.urlopen(f'http://{ip}:80/', timeout=10)\n"
              "    print(r.status, r.headers['Server'], b'Welcome to nginx!' in r.read())\n")
    out = kubectl("exec", pods[0]["metadata"]["name"], "--", "python3", "-c", script, *ips).stdout
    assert out.splitlines() == ["200 nginx True", "200 nginx True"]


@needs_port_80
def test_files_written_into_an_nginx_pod_are_served_by_it_alone(kube, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    """kr8s's own test fixture, step by step: dd into the html root with exec, then fetch through a port-forward."""
    host_root = Path("/usr/share/nginx/html")
    host_had_it = host_root.exists()
    probe = {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1}
    _apply(kubectl, *(_pod(name, {"image": "nginx:latest", "ports": [{"containerPort": 80}], "readinessProbe": probe},
                           terminationGracePeriodSeconds=5) for name in ("web", "other")))
    _wait(kubectl, "condition=Ready", "web", "other")
    assert kubectl("exec", "other", "--", "ls", str(host_root)).stdout.split() == ["50x.html", "index.html"]

    kubectl("exec", "web", "--", "dd", "if=/dev/random", f"of={host_root}/foo.dat", "bs=4M", "count=10")
    digest = kubectl("exec", "web", "--", "sha256sum", f"{host_root}/foo.dat").stdout.split()[0]
    assert kubectl("exec", "web", "--", "ls", str(host_root)).stdout.split() == ["50x.html", "foo.dat", "index.html"]
    forward = PortForward(kube, namespace, "pod/web", 80)
    try:
        status, headers, body = forward.request("GET", "/foo.dat")
        assert (status, len(body), int(headers["Content-Length"])) == (200, 41943040, 41943040)
        assert hashlib.sha256(body).hexdigest() == digest
        status, _, page = forward.request("GET", "/")
        assert status == 200 and b"<title>Welcome to nginx!</title>" in page
        assert forward.request("GET", "/foo")[0] == 404
    finally:
        forward.close()

    # The other pod has its own copy of the image's directory, without foo.dat.
    assert kubectl("exec", "other", "--", "ls", str(host_root)).stdout.split() == ["50x.html", "index.html"]
    forward = PortForward(kube, namespace, "pod/other", 80)
    try:
        assert forward.request("GET", "/foo.dat")[0] == 404
    finally:
        forward.close()
    if kube.local is not None:  # LocalKube wrote into its state directory only
        assert host_root.exists() == host_had_it and not (host_root / "foo.dat").exists()
        state = kube.local.kube.state_dir
        copies = state.glob(f"kubelet/pods/{namespace}_web_*/containers/main/rootfs{host_root}/foo.dat")
        assert [p.stat().st_size for p in copies] == [41943040]


@needs_port_80
def test_kr8s_nginx_fixture_runs_as_in_kr8s_own_suite(namespace) -> None:  # type: ignore[no-untyped-def]
    """The same sequence through kr8s: its exec, its port-forward, and an httpx client on `localhost`."""
    pod = Pod({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kr8s-nginx", "namespace": namespace},
               "spec": {"containers": [{"name": "nginx", "image": "nginx:latest", "ports": [{"containerPort": 80}],
                                        "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1}}],
                        "terminationGracePeriodSeconds": 5}})
    pod.create()
    until(pod.ready, "the nginx pod Ready", within=60)
    done = pod.exec(["dd", "if=/dev/random", "of=/usr/share/nginx/html/foo.dat", "bs=4M", "count=10"])
    assert done.returncode == 0 and b"41943040 bytes" in done.stderr
    with pod.portforward(80, local_port=free_port()) as port, httpx.Client(base_url=f"http://localhost:{port}",
                                                                           timeout=30) as client:
        response = client.get("/foo.dat")
        assert response.status_code == 200 and len(response.content) == 41943040
        assert client.get("/").status_code == 200
        assert client.get("/foo").status_code == 404


def test_shell_and_python_images_run_their_commands(kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    kubectl("run", "hi", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo hi")
    kubectl("run", "bash", "--image=ubuntu:24.04", "--restart=Never", "--", "bash", "-c", "echo ${BASH_VERSION%%.*}")
    kubectl("run", "py", "--image=python:3.12-slim", "--restart=Never", "--", "python", "-c", "print(6 * 7)")
    kubectl("run", "idle", "--image=alpine:3.20", "--restart=Never")  # CMD /bin/sh, no stdin: exits 0 at once
    _wait(kubectl, "jsonpath={.status.phase}=Succeeded", "hi", "bash", "py", "idle")
    assert kubectl("logs", "hi").stdout == "hi\n"
    assert kubectl("logs", "bash").stdout.strip().isdigit()
    assert kubectl("logs", "py").stdout == "42\n"
    assert kubectl("logs", "idle").stdout == ""


def test_pause_runs_and_is_deleted_without_waiting_out_its_grace(kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    kubectl("run", "pause", "--image=registry.k8s.io/pause:3.10")
    _wait(kubectl, "condition=Ready", "pause")
    phase = kubectl("get", "pod", "pause", "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Running"
    started = time.monotonic()
    kubectl("delete", "pod", "pause", "--wait=true", timeout=40)  # grace period: the default 30 s
    took = time.monotonic() - started
    assert took < 10, f"deleting a pause pod took {took:.1f}s"


def test_an_unknown_image_fails_to_pull_unless_a_command_is_given(kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    image = "example.invalid/team/ghost:1"
    kubectl("run", "ghost", f"--image={image}")
    kubectl("run", "ran", f"--image={image}", "--restart=Never", "--command", "--", "sh", "-c", "echo ran")
    _wait(kubectl, "jsonpath={.status.containerStatuses[0].state.waiting.reason}=ImagePullBackOff", "ghost")
    _wait(kubectl, "jsonpath={.status.phase}=Succeeded", "ran")
    assert kubectl("logs", "ran").stdout == "ran\n"
    pod = json.loads(kubectl("get", "pod", "ghost", "-o", "json").stdout)
    assert pod["status"]["phase"] == "Pending"
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    if waiting["reason"] == "ImagePullBackOff":  # else already the next attempt (ErrImagePull)
        assert waiting["message"] == f'Back-off pulling image "{image}"'
    row = kubectl("get", "pod", "ghost", "--no-headers").stdout
    assert "ImagePullBackOff" in row or "ErrImagePull" in row
    logs = kubectl("logs", "ghost", check=False)
    assert logs.returncode != 0 and "waiting to start" in logs.stderr
