"""`dask kube gen cluster` and the help texts: no Kubernetes needed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from dask_kube import make_cluster_spec, naming

from .helpers import SCRIPT, ok, run


def test_gen_cluster_prints_the_manifest_kubecluster_would_create() -> None:
    doc = yaml.safe_load(ok("gen", "cluster", "--name", "demo", "--image", "img:1", "--n-workers", "2",
                            "--resources", '{"limits": {"cpu": "1", "memory": "2Gi"}}', "--env", "A=1",
                            "-e", "URL=http://x/?a=b=c", "--worker-command", "dask worker --nthreads 2",
                            "--idle-timeout", "300", "--scheduler-service-type", "NodePort"))
    assert doc == make_cluster_spec(name="demo", image="img:1", n_workers=2,
                                    resources={"limits": {"cpu": "1", "memory": "2Gi"}},
                                    env={"A": "1", "URL": "http://x/?a=b=c"},
                                    worker_command=["dask", "worker", "--nthreads", "2"],
                                    scheduler_service_type="NodePort", idle_timeout=300)
    container = doc["spec"]["worker"]["spec"]["containers"][0]
    assert {"name": "URL", "value": "http://x/?a=b=c"} in container["env"]  # split on the first '=' only


def test_gen_cluster_defaults_json_namespace_and_jupyter() -> None:
    doc = json.loads(ok("gen", "cluster", "--name", "demo", "-o", "json", "-n", "team-a", "--jupyter"))
    assert doc["kind"] == naming.DASKCLUSTER and doc["apiVersion"] == naming.API_VERSION
    assert doc["metadata"] == {"name": "demo", "namespace": "team-a"}
    assert doc["spec"]["worker"]["replicas"] == 3
    assert doc["spec"]["scheduler"]["service"]["type"] == "ClusterIP"
    assert "--jupyter" in doc["spec"]["scheduler"]["spec"]["containers"][0]["args"]


def test_gen_cluster_tls() -> None:
    assert yaml.safe_load(ok("gen", "cluster", "--name", "demo", "--tls"))["spec"]["tls"] == {"enabled": True}
    doc = yaml.safe_load(ok("gen", "cluster", "--name", "demo", "--tls-secret", "my-certs"))
    assert doc["spec"]["tls"] == {"enabled": True, "secretName": "my-certs"}
    assert "tls" not in yaml.safe_load(ok("gen", "cluster", "--name", "demo"))["spec"]


@pytest.mark.parametrize(("args", "message"), [
    (["--name", "ok", "--tls-secret", "Bad_Name"], "--tls-secret"),
    (["--name", "Not_A_Name"], "--name"),
    (["--name", "x" * 60], "at most 53"),
    (["--name", "ok", "--resources", "{nope"], "not valid JSON"),
    (["--name", "ok", "--resources", '{"limit": {"cpu": "1"}}'], "did you mean 'limits'"),
    (["--name", "ok", "--resources", '{"limits": {"cpu": "lots"}}'], "is not a quantity"),
    (["--name", "ok", "--env", "NOEQUALS"], "is not KEY=VALUE"),
    (["--name", "ok", "--n-workers", "-1"], "--n-workers"),
    (["--name", "ok", "--scheduler-service-type", "Headless"], "--scheduler-service-type"),
    ([], "Missing option '--name'"),
])
def test_gen_cluster_rejects_bad_options_before_printing_anything(args: list[str], message: str) -> None:
    result = run("gen", "cluster", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "apiVersion" not in result.output


@pytest.mark.parametrize("command", [["gen", "cluster"], ["list"], ["scale"], ["port-forward"], ["logs"],
                                     ["delete"], ["install"], ["local"], ["local", "up"], ["local", "down"], []])
def test_every_command_has_help(command: list[str]) -> None:
    text = ok(*command, "--help")
    assert text.startswith("Usage: ")
    if command not in (["local", "up"], ["local", "down"]):
        assert "Example" in text, f"`dask kube {' '.join(command)} --help` shows no example"


def test_dask_kube_through_dasks_own_cli_and_the_script() -> None:
    """`dask kube` is registered on dask's `dask_cli` entry point; `dask-kube` is a console script."""
    via_dask = subprocess.run([sys.executable, "-m", "dask", "kube", "--help"], capture_output=True, text=True,
                              timeout=60)
    assert via_dask.returncode == 0, via_dask.stderr
    assert "Usage: python -m dask kube" in via_dask.stdout
    for command in ("gen", "list", "scale", "port-forward", "logs", "delete", "install", "local"):
        assert f"  {command} " in via_dask.stdout
    assert "Warning" not in via_dask.stderr  # dask warns when an entry point fails to load
    listing = subprocess.run([sys.executable, "-m", "dask", "--help"], capture_output=True, text=True, timeout=60)
    assert "  kube " in listing.stdout
    script = subprocess.run([str(SCRIPT), "gen", "cluster", "--name", "s"], capture_output=True, text=True,
                            timeout=60)
    assert script.returncode == 0, script.stderr
    assert yaml.safe_load(script.stdout)["metadata"]["name"] == "s"
