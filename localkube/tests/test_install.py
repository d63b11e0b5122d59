"""LocalKube on its own, as a new user meets it: a fresh virtual environment with only `pip install ./localkube`
(no dask), a config file with a GPU node, then kubectl against it, nginx served through a port-forward, and
nothing left running once it stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from localkube.testing import free_port, until

pytestmark = pytest.mark.e2e

DISTRIBUTION = Path(__file__).parents[1]


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment holding LocalKube and what it declares, nothing else."""
    root = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    install = subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", str(DISTRIBUTION)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    return root


def test_a_fresh_install_runs_nginx_on_a_configured_cluster(venv: Path, tmp_path: Path) -> None:
    python = venv / "bin" / "python"
    for absent in ("dask", "distributed", "dask_kube", "kr8s", "kopf"):
        probe = subprocess.run([str(python), "-c", f"import {absent}"], capture_output=True, timeout=60)
        assert probe.returncode != 0, f"{absent} is installed with LocalKube alone"

    config, kubeconfig, state = tmp_path / "cluster.yaml", tmp_path / "k.yaml", tmp_path / "state"
    config.write_text(yaml.safe_dump({"apiVersion": "localkube/v1alpha1", "kind": "Cluster", "stateDir": str(state),
                                      "nodes": [{"name": "cpu-node"},
                                                {"name": "gpu-node", "capacity": {"nvidia.com/gpu": "1"}}]}))
    server = subprocess.Popen([str(venv / "bin" / "localkube"), "--config", str(config), "--kubeconfig",
                               str(kubeconfig)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(tmp_path / "cache"))

    def kubectl(*args: str, timeout: float = 60) -> str:
        done = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    forward: subprocess.Popen[str] | None = None
    try:
        until(lambda: kubeconfig.exists() or server.poll() is not None, "the kubeconfig", within=60)
        assert server.poll() is None, server.communicate()[1]
        cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
        assert cluster["server"].startswith("https://") and cluster["certificate-authority-data"]
        assert "insecure-skip-tls-verify" not in cluster
        assert kubectl("get", "node", "gpu-node", "-o", "jsonpath={.status.capacity.nvidia\\.com/gpu}") == "1"

        kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")
        kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
        assert kubectl("get", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}") == "2"

        port = free_port()
        forward = subprocess.Popen(["kubectl", "port-forward", "deployment/web", f"{port}:80"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert forward.stdout is not None
        assert "Forwarding from 127.0.0.1" in forward.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            page = resp.read().decode()
            assert resp.status == 200 and resp.headers["Server"].startswith("nginx")
        assert "<title>Welcome to nginx!</title>" in page
    finally:
        if forward is not None:
            forward.terminate()
            forward.wait(10)
        server.send_signal(signal.SIGTERM)
        code = server.wait(30)
    assert code == 0
    # Every pod process went with LocalKube: nothing runs from its state directory or its environment.
    until(lambda: not _processes_mentioning(str(state)) and not _processes_mentioning(str(venv)),
          "no process left behind", within=10)
