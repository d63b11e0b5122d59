"""dask-kubernetes' `dask kubernetes gen cluster` and `dask kubernetes port-forward`, run through the real `dask`
command (which finds them by the `dask_cli` entry point): they do what `dask kube ...` does, and say on stderr that
`dask kube ...` replaces them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from dask_kube import make_cluster_spec

from .helpers import ok, until

DASK = Path(sys.executable).with_name("dask")


def dask(*args: str, kubeconfig: Path | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ, **({"KUBECONFIG": str(kubeconfig)} if kubeconfig else {}))
    return subprocess.Popen([str(DASK), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_gen_cluster_alias_prints_the_same_manifest_and_names_its_replacement() -> None:
    args = ("--name", "demo", "--image", "img:1", "--n-workers", "2", "-e", "A=1", "--scheduler-service-type",
            "NodePort", "--worker-command", "dask worker --nthreads 2", "--jupyter")
    out, err = dask("kubernetes", "gen", "cluster", *args).communicate(timeout=60)
    assert yaml.safe_load(out) == yaml.safe_load(ok("gen", "cluster", *args)) == make_cluster_spec(
        name="demo", image="img:1", n_workers=2, env={"A": "1"}, scheduler_service_type="NodePort",
        worker_command=["dask", "worker", "--nthreads", "2"], jupyter=True)
    assert "`dask kubernetes gen` is dask-kubernetes' name for `dask kube gen`, which replaces it" in err


def test_port_forward_alias_forwards_and_names_its_replacement(kube, crds, namespace, kubectl,  # type: ignore[no-untyped-def]
                                                              tmp_path: Path) -> None:
    kubectl("apply", "-f", "-", input=ok("gen", "cluster", "--name", "fwd", "--image", "any", "--n-workers", "0"))
    # dask-kubernetes' port-forward takes only the name: the namespace is the kubeconfig context's.
    config = yaml.safe_load(Path(kube.kubeconfig).read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    proc = dask("kubernetes", "port-forward", "fwd", kubeconfig=kubeconfig)
    lines: list[str] = []

    def dashboard_printed() -> bool:
        line = proc.stdout.readline() if proc.stdout else ""
        lines.append(line)
        assert line or proc.poll() is None, (lines, proc.stderr.read() if proc.stderr else "")
        return line.startswith("Dashboard at: ")

    try:
        until(dashboard_printed, "the dashboard link", 60, explain=lambda: "".join(lines))
        assert any(line.startswith("Scheduler at: tcp://127.0.0.1:") for line in lines), lines
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "`dask kubernetes port-forward` is dask-kubernetes' name for `dask kube port-forward`" in err
    assert "Shutting down port-forward" in err
