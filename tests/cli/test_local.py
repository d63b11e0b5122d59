"""`dask kube local up` / `local down` as a user runs them: separate processes, a state directory, a pidfile."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from dask_kube.cli import local as cli_local

from .helpers import SCRIPT, ok, until

pytestmark = pytest.mark.e2e


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env)


def _alive(what: str, pid: int) -> bool:
    return cli_local.alive(pid, cli_local.COMMAND_MARKS[what])


def test_local_up_then_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    kubeconfig = tmp_path / "kc" / "config.yaml"
    config = tmp_path / "cluster.yaml"
    config.write_text("nodes: [{name: localkube-node}, {name: gpu-node, capacity: {nvidia.com/gpu: '1'}}]\n")
    up = _cli("local", "up", "--state-dir", str(state), "--kubeconfig", str(kubeconfig), "--simulate-pods",
              "--config", str(config))
    try:
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={kubeconfig}" in up.stdout
        gpus = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "node", "gpu-node", "-o",
                               "jsonpath={.status.capacity.nvidia\\.com/gpu}"], capture_output=True, text=True,
                              timeout=60)
        assert gpus.stdout == "1", gpus.stderr
        record = json.loads((state / "local.json").read_text())
        pids = {"localkube": record["localkube_pid"], "operator": record["operator_pid"]}
        assert record["kubeconfig"] == str(kubeconfig) and all(_alive(what, pid) for what, pid in pids.items())

        # the CRDs are installed and the operator reconciles: a cluster reaches a phase (pods are simulated)
        assert "No DaskClusters found" in ok("list", kubeconfig=kubeconfig)
        manifest = ok("gen", "cluster", "--name", "sim", "--n-workers", "0", "-o", "json", "-n", "default")
        subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", "-"], input=manifest, text=True,
                       check=True, capture_output=True, timeout=60)
        until(lambda: json.loads(ok("list", "-o", "json", kubeconfig=kubeconfig))[0]["phase"], "a phase for sim",
              within=30)

        again = _cli("local", "up", "--state-dir", str(state))
        assert again.returncode == 1
        assert "already runs" in again.stderr and f"dask kube local down --state-dir {state.resolve()}" in again.stderr

        down = _cli("local", "down", "--state-dir", str(state))
        assert down.returncode == 0, down.stderr
        assert down.stdout.strip() == "Stopped operator and localkube."
        assert not (state / "local.json").exists()
        until(lambda: not any(_alive(what, pid) for what, pid in pids.items()), "both processes gone", within=30)
        assert (state / "localkube.log").exists() and (state / "operator.log").exists()
    finally:
        if (state / "local.json").exists():
            _cli("local", "down", "--state-dir", str(state))

    twice = _cli("local", "down", "--state-dir", str(state))
    assert twice.returncode == 1 and "no local Kubernetes was started from" in twice.stderr


def test_local_up_reports_what_it_cannot_do(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _cli("local", "up", "--state-dir", str(tmp_path / "s"), "--kubeconfig", str(blocker / "kc"))
    assert result.returncode == 1
    assert f"Error: cannot write the kubeconfig {blocker / 'kc'}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s" / "local.json").exists()
    result = _cli("local", "up", "--state-dir", str(blocker / "state"))
    assert result.returncode == 1 and "cannot create the state directory" in result.stderr


def test_local_up_refuses_a_bad_config_and_leaves_nothing(tmp_path: Path) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text("nodes: [{name: gpu-node, capacity: {nvidia.com/gpu: many}}]\n")
    result = _cli("local", "up", "--state-dir", str(tmp_path / "s"), "--config", str(config))
    assert result.returncode == 1
    assert "LocalKube exited with code 2 while starting" in result.stderr
    assert "nodes[0].capacity.nvidia.com/gpu: 'many' is not a quantity" in result.stderr
    assert not (tmp_path / "s" / "local.json").exists() and not _localkube_pids(tmp_path / "s")


def test_local_up_stops_what_it_started_when_the_operator_fails(tmp_path: Path) -> None:
    """LocalKube starts but the CRDs cannot be installed: `up` says why and leaves no process behind."""
    state = tmp_path / "s"
    started: list[int] = []

    def failing_install(kubeconfig: Path) -> None:
        started.extend(_localkube_pids(state))
        raise cli_local.LocalKubeError("no CRDs today")

    with pytest.raises(cli_local.LocalKubeError, match="no CRDs today"):
        cli_local.up(state, failing_install)
    assert started and not (state / "local.json").exists()
    until(lambda: not any(_alive("localkube", pid) for pid in started), "LocalKube stopped", within=30)


def _localkube_pids(state: Path) -> list[int]:
    """LocalKube processes whose command line names this state directory's kubeconfig."""
    marker = str((state / "kubeconfig").resolve()).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids
