"""`python -m localkube`: ready when the kubeconfig appears, HTTPS as a real cluster's, clean exit on signals,
state kept."""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from localkube.apiserver.discovery import DEFAULT_VERSION
from localkube.testing import free_port


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    kubeconfig = tmp_path / "k.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "localkube", "--kubeconfig", str(kubeconfig), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not kubeconfig.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no kubeconfig within 30 s"
        time.sleep(0.05)
    return proc, kubeconfig


def _server(kubeconfig: Path) -> str:
    return yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_once_kubeconfig_is_written_and_exits_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    proc, kubeconfig = _start(tmp_path)
    try:
        doc = yaml.safe_load(kubeconfig.read_text())
        assert doc["current-context"] == "localkube"
        assert doc["contexts"][0]["context"]["namespace"] == "default"
        url = _server(kubeconfig)
        assert url.startswith("https://127.0.0.1:")
        cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
        assert "insecure-skip-tls-verify" not in cluster and user["token"]
        # The server's certificate verifies against the kubeconfig's CA, host name included.
        trust = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        with urllib.request.urlopen(url + "/version", timeout=5, context=trust) as resp:  # ready means ready
            assert json.loads(resp.read())["minor"] == DEFAULT_VERSION.split(".")[1]
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(url + "/version", timeout=5, context=ssl.create_default_context())
        # Without credentials, as on a real cluster: anonymous may read /version, nothing else.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "/api/v1/namespaces", timeout=5, context=trust)
        assert refused.value.code == 403
        assert json.loads(refused.value.read())["message"] == (
            'namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" in API group "" at '
            "the cluster scope")
        env = dict(os.environ, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(tmp_path / "cache"))
        out = subprocess.run(["kubectl", "create", "configmap", "x", "--from-literal=a=b"], env=env,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
    finally:
        proc.send_signal(sig)
        code = proc.wait(15)
    assert code == 0


def test_state_dir_keeps_objects_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc, kubeconfig = _start(tmp_path, "--state-dir", str(state))
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(tmp_path / "cache"))
    try:
        subprocess.run(["kubectl", "create", "configmap", "kept", "--from-literal=a=b"], env=env, check=True,
                       capture_output=True, timeout=30)
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
    kubeconfig.unlink()
    proc, kubeconfig = _start(tmp_path, "--state-dir", str(state))
    try:
        out = subprocess.run(["kubectl", "get", "configmap", "kept", "-o", "jsonpath={.data.a}"], env=env,
                             capture_output=True, text=True, timeout=30)
        assert out.stdout == "b", out.stderr
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    proc, kubeconfig = _start(tmp_path)
    try:
        port = _server(kubeconfig).rsplit(":", 1)[1]
        second = subprocess.run([sys.executable, "-m", "localkube", "--kubeconfig",
                                 str(tmp_path / "other.yaml"), "--port", port],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert "cannot start" in second.stderr
        assert not (tmp_path / "other.yaml").exists()
    finally:
        proc.terminate()
        proc.wait(15)


def test_a_config_file_declares_nodes_version_and_listeners(tmp_path: Path) -> None:
    config = tmp_path / "cluster.yaml"
    http_port = free_port()
    config.write_text(yaml.safe_dump({
        "apiVersion": "localkube/v1alpha1", "kind": "Cluster", "kubernetesVersion": "1.33",
        "ports": {"http": http_port}, "stateDir": "state",
        "nodes": [{"name": "cpu-node"},
                  {"name": "gpu-node", "capacity": {"nvidia.com/gpu": "2"}, "labels": {"accelerator": "a100"},
                   "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}]}))
    proc, kubeconfig = _start(tmp_path, "--config", str(config))
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(tmp_path / "cache"))
    try:
        nodes = json.loads(subprocess.run(["kubectl", "get", "nodes", "-o", "json"], env=env, check=True,
                                          capture_output=True, text=True, timeout=30).stdout)["items"]
        by_name = {n["metadata"]["name"]: n for n in nodes}
        assert sorted(by_name) == ["cpu-node", "gpu-node"]
        gpu = by_name["gpu-node"]
        assert gpu["status"]["capacity"]["nvidia.com/gpu"] == "2"
        assert gpu["metadata"]["labels"]["accelerator"] == "a100"
        assert gpu["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
        assert gpu["status"]["nodeInfo"]["kubeletVersion"] == "v1.33.0"
        # The plain-HTTP listener the file asked for: no credentials needed there.
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/version", timeout=5) as resp:
            assert json.loads(resp.read())["minor"] == "33"
        assert (tmp_path / "state" / "state.json").exists() is False  # written on stop
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
    assert (tmp_path / "state" / "state.json").exists()


def test_a_bad_config_is_refused_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump({"nodes": [{"name": "a", "capacity": {"memory": "lots"}}, {"name": "a"}]}))
    kubeconfig = tmp_path / "k.yaml"
    result = subprocess.run([sys.executable, "-m", "localkube", "--kubeconfig", str(kubeconfig), "--config",
                             str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"localkube: {config}: invalid LocalKube configuration:",
        "  nodes[0].capacity.memory: 'lots' is not a quantity: quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        "  nodes[1].name: duplicate node name 'a' (also nodes[0])",
    ]
    assert not kubeconfig.exists()
    version = subprocess.run([sys.executable, "-m", "localkube", "--kubeconfig", str(kubeconfig),
                              "--kubernetes-version", "one"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 2 and "--kubernetes-version: invalid" in version.stderr
