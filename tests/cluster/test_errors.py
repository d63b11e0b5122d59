"""Failures a person must understand: bad arguments, missing CRDs, no operator, a crashing scheduler;
and custom specs from a dict and from YAML."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import dask.config
import kr8s
import pytest
import yaml
from distributed import Client
from localkube.cluster import LocalKube
from localkube.pytest_plugin import run_kubectl

from dask_kube import (
    CRDsNotInstalledError,
    KubeCluster,
    OperatorNotRunningError,
    SchedulerStartupError,
    SpecError,
    make_cluster_spec,
)

from ..conftest import CRDS

pytestmark = pytest.mark.e2e


def _clusters(kubectl) -> list[str]:  # type: ignore[no-untyped-def]
    return [i["metadata"]["name"] for i in json.loads(kubectl("get", "daskclusters", "-o", "json").stdout)["items"]]


def test_bad_arguments_raise_before_any_api_call(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A kubeconfig pointing nowhere: reaching the API would fail differently (and slowly).
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(SpecError, match="did you mean 'limits'") as err:
        KubeCluster(name="ok", resources={"limit": {"cpu": "1"}})
    assert err.value.field == "resources"
    for name in ("Bad_Name", "with.dot", "x" * 60):
        with pytest.raises(SpecError) as err:
            KubeCluster(name=name)
        assert err.value.field == "name"
    with pytest.raises(SpecError, match="env"):
        KubeCluster(name="ok", env=[{"value": "no name"}])
    with pytest.raises(SpecError, match="worker_command"):
        KubeCluster(name="ok", worker_command=[])


def test_custom_spec_from_dict_and_from_yaml(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    spec = make_cluster_spec(name="fromdict", n_workers=1, image="any", env={"MARK": "custom"})
    spec["spec"]["worker"]["metadata"] = {"labels": {"team": "blue"}}
    with KubeCluster(custom_cluster_spec=spec, namespace=namespace, quiet=True) as cluster, \
            Client(cluster) as client:
        assert cluster.name == "fromdict"
        cluster.wait_for_workers(1, timeout=60)
        assert list(client.run(lambda: __import__("os").environ["MARK"]).values()) == ["custom"]
        labels = json.loads(kubectl("get", "pods", "-l", "team=blue", "-o", "json").stdout)["items"]
        assert len(labels) == 1

    path = Path(tempfile.mkdtemp()) / "cluster.yaml"
    path.write_text(yaml.safe_dump(make_cluster_spec(name="in-file", n_workers=0, image="any")))
    with KubeCluster(custom_cluster_spec=str(path), name="fromyaml", namespace=namespace, quiet=True) as cluster:
        assert cluster.name == "fromyaml"  # an explicit name wins over the file's
        assert _clusters(kubectl) == ["fromyaml"]
        assert cluster.n_workers == 0


def test_crds_missing_then_no_operator(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with LocalKube.in_thread(run_pods=False) as other:
        monkeypatch.setenv("KUBECONFIG", str(other.kubeconfig))
        with pytest.raises(CRDsNotInstalledError, match="kubectl apply"):
            KubeCluster(name="nocrds", namespace="default", quiet=True, resource_timeout=5)
        run_kubectl(other.kubeconfig, tmp_path, "apply", "-f", str(CRDS))
        run_kubectl(other.kubeconfig, tmp_path, "wait", "--for=condition=Established",
                    "crd/daskclusters.kubernetes.dask.org", "--timeout=30s")
        with pytest.raises(OperatorNotRunningError, match="no operator acted on it within 2s"):
            KubeCluster(name="nooperator", namespace="default", quiet=True, resource_timeout=2)
        # The cluster this client created is not left behind.
        out = run_kubectl(other.kubeconfig, tmp_path, "get", "daskclusters", "-A", "-o", "json").stdout
        assert json.loads(out)["items"] == []


def test_crashing_scheduler_raises_with_its_logs(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    spec = make_cluster_spec(name="crash", n_workers=0, image="any")
    container = spec["spec"]["scheduler"]["spec"]["containers"][0]
    container["command"] = ["python", "-c", "print('scheduler says goodbye'); raise SystemExit(1)"]
    container["args"] = []
    with pytest.raises(SchedulerStartupError, match="scheduler says goodbye") as err:
        KubeCluster(custom_cluster_spec=spec, namespace=namespace, quiet=True, resource_timeout=40)
    assert "scheduler says goodbye" in err.value.logs
    assert _clusters(kubectl) == []  # created by this client, so deleted after the failure


@pytest.mark.localkube_only
def test_a_silent_api_server_times_out_instead_of_hanging(operator, namespace, local_kube) -> None:  # type: ignore[no-untyped-def]
    """kr8s alone waits forever for an answer; KubeCluster gives up after `kubernetes.request-timeout`."""
    with dask.config.set({"kubernetes.request-timeout": 5}), \
            KubeCluster(name="silent", namespace=namespace, quiet=True) as cluster:
        stall = local_kube.call(local_kube.kube.fail_requests, rf"/namespaces/{namespace}/daskclusters/silent$",
                                status=None, delay=120, method="PATCH", user_agent="kr8s", count=1)
        try:
            started = time.monotonic()
            with pytest.raises(kr8s.APITimeoutError):
                cluster.scale(1)
            assert time.monotonic() - started < 60, "waited for the stalled request instead of timing out"
        finally:
            local_kube.call(setattr, stall, "count", 0)
        cluster.scale(1)  # the next request is answered
        cluster.wait_for_workers(1, timeout=60)
