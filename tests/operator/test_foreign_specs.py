"""Specs made by dask-kubernetes' own helpers (`make_cluster_spec`, `make_worker_spec`, its latest release, recorded
in tests/fixtures/dask_kubernetes/ by record.py) run on our operator: nulls included (`env: null`,
`resources: null`, `replicas: null`), created as dask-kubernetes' client creates them (a POST of the dict as is;
`kubectl apply` would drop the nulls) and through `KubeCluster(custom_cluster_spec=...)`.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from localkube.testing import until

from dask_kube import KubeCluster, naming

pytestmark = pytest.mark.e2e
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
FIXTURES = Path(__file__).parents[1] / "fixtures" / "dask_kubernetes"
# The session LocalKube's image runs distributed's current `dask` command; dask-kubernetes' helpers still write
# the old `dask-scheduler` / `dask-worker` scripts (which tests/operator/test_daskjob.py's Flyte test provides).
OLD_SCRIPTS = {"dask-scheduler": ["dask", "scheduler"], "dask-worker": ["dask", "worker"]}


def fixture(name: str) -> dict[str, Any]:
    """A recorded spec, its old script names swapped for `dask <sub>` and nothing else changed."""
    doc: dict[str, Any] = yaml.safe_load((FIXTURES / name).read_text())
    pod_specs = [doc["spec"]["worker"]["spec"]]
    if doc["kind"] == naming.DASKCLUSTER:
        pod_specs.append(doc["spec"]["scheduler"]["spec"])
    for pod_spec in pod_specs:
        for container in pod_spec["containers"]:
            args = container["args"]
            container["args"] = OLD_SCRIPTS.get(args[0], args[:1]) + args[1:]
    return doc


def test_the_fixtures_carry_the_nulls_the_api_server_accepts() -> None:
    text = (FIXTURES / "cluster-defaults.yaml").read_text()
    assert text.startswith("# dask-kubernetes ") and "env: null" in text and "resources: null" in text
    assert "replicas: null" in text and "env: null" in (FIXTURES / "workergroup-defaults.yaml").read_text()


def _get(kubectl: Kubectl, kind: str, name: str) -> dict[str, Any]:
    out = kubectl("get", kind, name, "-o", "json", "--ignore-not-found")
    return json.loads(out.stdout) if out.stdout.strip() else {}


def _ready(kubectl: Kubectl, kind: str, name: str, workers: int) -> bool:
    obj_status = _get(kubectl, kind, name).get("status") or {}
    return bool(obj_status.get("readyReplicas", 0) >= workers and
                (kind != "daskcluster" or obj_status.get("phase") == "Running"))


def _post(kube: Any, namespace: str, doc: dict[str, Any]) -> None:
    plural = naming.PLURALS[doc["kind"]]
    code, body = kube.request("POST", f"/apis/{naming.API_VERSION}/namespaces/{namespace}/{plural}", doc)
    assert code == 201, body


def test_make_cluster_spec_and_make_worker_spec_run_as_created(operator: Any, namespace: str, kube: Any,
                                                               kubectl: Kubectl) -> None:
    cluster, group = fixture("cluster-defaults.yaml"), fixture("workergroup-defaults.yaml")
    _post(kube, namespace, cluster)
    stored = _get(kubectl, "daskcluster", "dk-defaults")
    assert stored["spec"]["worker"]["spec"]["containers"][0]["env"] is None  # the API server kept the null
    until(lambda: _ready(kubectl, "daskcluster", "dk-defaults", 1), "the dask-kubernetes cluster to run", 120,
          explain=lambda: kubectl("get", "daskcluster,pods", "-o", "wide").stdout + operator.tail())
    _post(kube, namespace, group)
    until(lambda: _ready(kubectl, "daskworkergroup", "dk-defaults-extra", 1), "its extra worker group to run", 120,
          explain=lambda: kubectl("get", "daskworkergroup,pods", "-o", "wide").stdout + operator.tail())
    worker_pods = json.loads(kubectl("get", "pods", "-l", naming.selector_string(naming.worker_selector(
        "dk-defaults")), "-o", "json").stdout)["items"]
    assert len(worker_pods) == 2
    for pod in worker_pods:  # env: null became the operator's own variables, nothing else
        env = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
        assert {naming.SCHEDULER_ADDRESS_ENV, naming.WORKER_NAME_ENV} <= env
    assert "Traceback" not in operator.tail(200)
    # A client connecting to it reads the stored nulls as absent too.
    with KubeCluster.from_name("dk-defaults", namespace=namespace, quiet=True) as connected:
        assert (connected.n_workers, connected.env, connected.resources) == (1, [], {})
        assert connected.image == "ghcr.io/dask/dask:latest"


def test_make_cluster_spec_runs_as_a_custom_cluster_spec(operator: Any, namespace: str, kubectl: Kubectl) -> None:
    spec = fixture("cluster-options.yaml")
    original = copy.deepcopy(spec)
    with KubeCluster(custom_cluster_spec=spec, namespace=namespace, quiet=True) as cluster:
        cluster.wait_for_workers(1, timeout=120)
        pod = _get(kubectl, "pod", naming.scheduler_name("dk-options"))
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["DK_FIXTURE"] == "1"
    assert spec == original
