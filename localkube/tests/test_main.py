"""`python -m localkube`: ready when the kubeconfig appears, clean exit on signals, state kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml


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
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/version", timeout=5) as resp:  # no retry: ready means ready
            assert json.loads(resp.read())["minor"] == "32"
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
