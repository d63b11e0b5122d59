"""Every cluster command against LocalKube with the real operator: gen | kubectl apply, list, scale, logs,
port-forward, delete, and their error paths.

One cluster (scheduler and up to two worker processes) serves the whole workflow, to keep the process count small.
"""

from __future__ import annotations

import json
import signal
import socket
import urllib.request

import pytest
from distributed import Client

from dask_kube import naming

from .helpers import listed, ok, run, spawn, until

pytestmark = pytest.mark.e2e


def _apply(kubectl, *gen_args: str) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", "-", input=ok("gen", "cluster", "--image", "any", *gen_args))


def _pods(kubectl) -> list[str]:  # type: ignore[no-untyped-def]
    return [p["metadata"]["name"] for p in json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"]]


def _read_until(proc, marker: str, within: float = 60) -> list[str]:  # type: ignore[no-untyped-def]
    """Lines of the process's stdout up to the first one containing `marker`."""
    lines: list[str] = []

    def seen() -> bool:
        line = proc.stdout.readline()
        if line:
            lines.append(line.rstrip("\n"))
        assert line or proc.poll() is None, f"exited {proc.returncode}: {lines} {proc.stderr.read()}"
        return marker in line

    until(seen, f"{marker!r} in the output", within, explain=lambda: "\n".join(lines))
    return lines


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def _interrupt(proc) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0, err
    return out, err


def test_cluster_workflow(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    _apply(kubectl, "--name", "wf", "--n-workers", "1", "-n", namespace)
    state = until(lambda: (c := listed(namespace).get("wf")) and c["phase"] == "Running" and c["ready_workers"] == 1
                  and c, "wf Running with 1 ready worker", explain=lambda: str(listed(namespace)))
    assert state["desired_workers"] == 1 and state["namespace"] == namespace
    assert state["dashboard"] is None  # ClusterIP, seen from outside the cluster: port-forward is the way
    assert state["created"]

    table = ok("list", "-n", namespace)
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "WORKERS", "READY", "AGE", "DASHBOARD"]
    assert row.split()[:4] == ["wf", "Running", "1", "1"]
    everywhere = ok("list", "-A")
    assert any(line.split()[:3] == [namespace, "wf", "Running"] for line in everywhere.splitlines())

    # scale
    assert f"Scaled DaskCluster {namespace}/wf to 2 workers" in ok("scale", "wf", "2", "-n", namespace)
    until(lambda: listed(namespace)["wf"]["ready_workers"] == 2, "2 ready workers",
          explain=lambda: str(listed(namespace)))
    assert json.loads(kubectl("get", "daskcluster", "wf", "-o", "json").stdout)["spec"]["worker"]["replicas"] == 2

    # logs: every pod, the scheduler's, one group's
    everything = ok("logs", "wf", "-n", namespace)
    headers = [line for line in everything.splitlines() if line.startswith("==> ")]
    assert headers[0] == f"==> {naming.scheduler_name('wf')} <=="
    assert len(headers) == 3 and all("-default-worker-" in h for h in headers[1:])
    assert "distributed.scheduler" in everything and "distributed.worker" in everything
    scheduler_only = ok("logs", "wf", "--scheduler", "--tail", "5", "-n", namespace)
    assert scheduler_only.splitlines()[0] == f"==> {naming.scheduler_name('wf')} <=="
    assert len(scheduler_only.splitlines()) <= 6
    workers_only = ok("logs", "wf", "--worker-group", "default", "-n", namespace)
    worker_headers = [line for line in workers_only.splitlines() if line.startswith("==> ")]
    assert len(worker_headers) == 2 and all("-default-worker-" in h for h in worker_headers)
    nothing = run("logs", "wf", "--worker-group", "nope", "-n", namespace)
    assert nothing.exit_code == 0 and "No pods of the worker group nope" in nothing.output

    # logs -f: streams until Ctrl+C
    follow = spawn("logs", "wf", "--scheduler", "-f", "--tail", "2", "-n", namespace)
    lines = _read_until(follow, f"[{naming.scheduler_name('wf')}] ")
    assert lines[-1].startswith(f"[{naming.scheduler_name('wf')}] ")
    _interrupt(follow)

    # port-forward: a Client computes through it, the dashboard answers, Ctrl+C ends it cleanly
    forward = spawn("port-forward", "wf", "-n", namespace)
    lines = _read_until(forward, "Dashboard at: ")
    address = next(line.split()[-1] for line in lines if line.startswith("Scheduler at: "))
    dashboard = lines[-1].split()[-1]
    assert address.startswith("tcp://127.0.0.1:") and dashboard.startswith("http://127.0.0.1:")
    with Client(address, timeout=30) as client:
        assert client.submit(lambda x: x + 1, 41).result(timeout=30) == 42
        assert len(client.scheduler_info()["workers"]) == 2
    with urllib.request.urlopen(dashboard.replace("/status", "/health"), timeout=10) as resp:
        assert resp.status == 200
    _, err = _interrupt(forward)
    assert "Shutting down port-forward" in err

    # delete --wait returns once everything is gone
    assert ok("delete", "wf", "-n", namespace).strip() == "DaskCluster wf deleted"
    assert listed(namespace) == {}
    until(lambda: _pods(kubectl) == [], "no pods left", within=30, explain=lambda: str(_pods(kubectl)))
    assert "No DaskClusters found in namespace" in ok("list", "-n", namespace)


def test_nodeport_cluster_lists_a_working_dashboard_link(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    _apply(kubectl, "--name", "np", "--n-workers", "0", "--scheduler-service-type", "NodePort", "-n", namespace)
    link = until(lambda: (c := listed(namespace).get("np")) and c["phase"] == "Running" and c["dashboard"],
                 "a dashboard link for the NodePort cluster", explain=lambda: str(listed(namespace)))
    assert link.startswith("http://") and link.endswith("/status")
    # the node's proxy for the Service follows the scheduler's Endpoints, which may trail the phase a moment
    until(lambda: _answers(link.replace("/status", "/health")), f"{link} answering", within=30)
    assert link in ok("list", "-n", namespace)
    assert "deletion requested" in ok("delete", "np", "--no-wait", "-n", namespace)
    until(lambda: "np" not in listed(namespace), "np deleted")


def test_scale_deletes_the_groups_autoscaler(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    _apply(kubectl, "--name", "auto", "--n-workers", "0", "-n", namespace)
    until(lambda: listed(namespace).get("auto", {}).get("phase") == "Running", "auto Running")
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": naming.API_VERSION, "kind": naming.DASKAUTOSCALER, "metadata": {"name": "auto"},
        "spec": {"cluster": "auto", "minimum": 0, "maximum": 1}}))
    out = ok("scale", "auto", "0", "-n", namespace)
    assert f"Deleted DaskAutoscaler {namespace}/auto" in out
    until(lambda: json.loads(kubectl("get", "daskautoscalers", "-o", "json").stdout)["items"] == [],
          "the DaskAutoscaler gone (the operator releases its finalizer)", within=30)
    ok("delete", "auto", "-n", namespace)


@pytest.mark.parametrize("command", [["scale", "ghost", "1"], ["logs", "ghost"], ["delete", "ghost"],
                                     ["port-forward", "ghost"], ["logs", "ghost", "-f"]])
def test_commands_on_a_missing_cluster_say_so(crds, namespace, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = run(*command, "-n", namespace)
    assert result.exit_code == 1, result.output
    assert f"Error: there is no DaskCluster 'ghost' in namespace '{namespace}'" in result.output
    assert "dask kube list -A" in result.output


def test_usage_errors(crds, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    _apply(kubectl, "--name", "idle", "--n-workers", "0", "-n", namespace)
    ns = ("-n", namespace)
    cases = {
        ("scale", *ns, "idle", "--", "-1"): "Invalid value for 'N'",
        ("scale", *ns, "idle", "1", "--worker-group", "highmem"): "has no worker group 'highmem' (its groups:",
        ("list", "-A", *ns): "either --namespace or --all-namespaces",
        ("logs", *ns, "idle", "--scheduler", "--worker-group", "default"): "either --scheduler or --worker-group",
        ("port-forward", *ns, "idle", "--port", "70000"): "Invalid value for '--port'",
    }
    for args, message in cases.items():
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)


def test_port_forward_to_a_tls_cluster_says_tls_and_names_its_secret(crds, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    _apply(kubectl, "--name", "tlsfwd", "--n-workers", "0", "--tls", "-n", namespace)
    forward = spawn("port-forward", "tlsfwd", "-n", namespace)
    lines = _read_until(forward, "Dashboard at: ")
    address = next(line.split()[-1] for line in lines if line.startswith("Scheduler at: "))
    assert address.startswith("tls://127.0.0.1:")
    _, err = _interrupt(forward)
    assert f"certificates of Secret {namespace}/tlsfwd-tls" in err


def test_port_forward_to_a_busy_port_fails_clearly(crds, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    _apply(kubectl, "--name", "busy", "--n-workers", "0", "-n", namespace)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run("port-forward", "busy", "-n", namespace, "--port", str(port))
    assert result.exit_code == 1, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
