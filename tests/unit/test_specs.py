"""The pure builders: the wire contract of docs/compat.md, checked field by field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from localkube.apiserver import schema

from dask_kube import naming, specs
from dask_kube.operator import crd_schemas
from tests.paths import EXAMPLE_MANIFESTS

SHARED = EXAMPLE_MANIFESTS


def _cluster(**meta: object) -> dict:
    obj = specs.make_cluster_spec("demo", n_workers=2, env={"A": "1"}, resources={"limits": {"cpu": "1"}})
    obj["metadata"].update({"namespace": "ns", "uid": "u-1", **meta})
    return obj


def test_make_cluster_spec_shape() -> None:
    obj = specs.make_cluster_spec("demo", n_workers=2, worker_command="dask worker --nthreads 2", jupyter=True)
    assert obj["apiVersion"] == "kubernetes.dask.org/v1" and obj["kind"] == "DaskCluster"
    worker = obj["spec"]["worker"]
    assert worker["replicas"] == 2
    args = worker["spec"]["containers"][0]["args"]
    assert args[:4] == ["dask", "worker", "--nthreads", "2"] and "$(DASK_WORKER_NAME)" in args
    sched = obj["spec"]["scheduler"]
    assert sched["spec"]["containers"][0]["args"][-1] == "--jupyter"
    ports = {p["name"]: p["port"] for p in sched["service"]["ports"]}
    assert ports == {"tcp-comm": 8786, "http-dashboard": 8787}
    assert sched["service"]["selector"] == {"dask.org/cluster-name": "demo", "dask.org/component": "scheduler"}
    assert "replicas" not in specs.make_cluster_spec("x")["spec"]["worker"]  # None: the CRD default applies


def test_env_forms() -> None:
    assert specs.env_list({"A": 1}) == [{"name": "A", "value": "1"}]
    entries = [{"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    assert specs.env_list(entries) == entries and specs.env_list(entries) is not entries


def test_children_names_labels_owner_and_propagation() -> None:
    cluster = _cluster(labels={"team": "a", naming.CLUSTER_LABEL: "spoofed"},
                       annotations={"note": "x", "kopf.zalando.org/last": "y", "kubectl.kubernetes.io/z": "w"})
    cluster["spec"]["scheduler"]["metadata"] = {"labels": {"tier": "s"}, "annotations": {"s": "1"}}
    before = copy.deepcopy(cluster)
    pod = specs.scheduler_pod(cluster)
    assert pod["metadata"]["name"] == "demo-scheduler"
    labels = pod["metadata"]["labels"]
    assert labels[naming.CLUSTER_LABEL] == "demo" and labels[naming.COMPONENT_LABEL] == "scheduler"
    assert labels["team"] == "a" and labels["tier"] == "s" and labels[naming.ISTIO_INJECT_LABEL] == "false"
    assert pod["metadata"]["annotations"] == {"note": "x", "s": "1"}
    ref = pod["metadata"]["ownerReferences"][0]
    assert ref == {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster", "name": "demo", "uid": "u-1",
                   "controller": True, "blockOwnerDeletion": True}
    svc = specs.scheduler_service(cluster)
    assert svc["metadata"]["name"] == "demo-scheduler" and svc["spec"]["selector"] == naming.scheduler_selector("demo")
    group = specs.default_worker_group(cluster)
    assert group["metadata"]["name"] == "demo-default" and group["spec"]["cluster"] == "demo"
    assert group["metadata"]["labels"][naming.COMPONENT_LABEL] == "workergroup"
    assert cluster == before  # nothing mutated


def test_worker_pod_env_injection_respects_user_values() -> None:
    group = specs.default_worker_group(_cluster())
    group["metadata"].update(namespace="ns", uid="g-1")
    pod = specs.worker_pod(group, "demo")
    name = pod["metadata"]["name"]
    assert name.startswith("demo-default-worker-") and len(name.rsplit("-", 1)[1]) == 10
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["DASK_WORKER_NAME"] == name
    assert env["DASK_SCHEDULER_ADDRESS"] == "tcp://demo-scheduler.ns.svc.cluster.local:8786"
    assert env["A"] == "1"
    group["spec"]["worker"]["spec"]["containers"][0]["env"].append({"name": "DASK_WORKER_NAME", "value": "mine"})
    containers = specs.worker_pod(group, "demo")["spec"]["containers"]
    env = [e for e in containers[0]["env"] if e["name"] == "DASK_WORKER_NAME"]
    assert env == [{"name": "DASK_WORKER_NAME", "value": "mine"}]
    assert pod["metadata"]["labels"][naming.WORKERGROUP_LABEL] == "demo-default"


def test_job_children() -> None:
    job = yaml.safe_load((SHARED / "sum-daskjob.yaml").read_text())
    job["metadata"].update(uid="j-1", labels={"flyte": "yes"})
    job["spec"]["cluster"]["metadata"] = {"labels": {"c": "1"}}
    cluster = specs.job_cluster(job)
    assert cluster["metadata"]["name"] == "sum-job" and cluster["metadata"]["labels"] == {
        "flyte": "yes", "c": "1", naming.CLUSTER_LABEL: "sum-job"}
    runner = specs.job_runner_pod(job)
    assert runner["metadata"]["name"] == "sum-job-runner"
    assert runner["spec"]["restartPolicy"] == "Never"
    env = {e["name"]: e["value"] for e in runner["spec"]["containers"][0]["env"]}
    assert env["DASK_SCHEDULER_ADDRESS"] == "tcp://sum-job-scheduler.default.svc.cluster.local:8786"


def test_crd_files_are_generated_from_the_module() -> None:
    for filename, crd in crd_schemas.crds().items():
        assert (crd_schemas.CRD_DIR / filename).read_text() == crd_schemas.render(crd), (
            f"{filename} is stale: run python -m dask_kube.operator.crd_schemas")


@pytest.mark.parametrize("path", sorted(SHARED.glob("*.yaml")), ids=lambda p: p.name)
def test_shared_examples_pass_the_crd_schemas(path: Path) -> None:
    by_kind = {c["spec"]["names"]["kind"]: c for c in crd_schemas.crds().values()}
    for doc in yaml.safe_load_all(path.read_text()):
        sch = by_kind[doc["kind"]]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        result = schema.apply_structural_schema(doc, sch)
        assert result.causes == [] and result.pruned == []


def test_make_cluster_spec_passes_the_crd_schema() -> None:
    sch = crd_schemas.crds()["daskcluster.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    result = schema.apply_structural_schema(specs.make_cluster_spec("x", n_workers=1), sch)
    assert result.causes == [] and result.pruned == []


def test_builders_emit_plain_strings_that_yaml_can_dump() -> None:
    cluster = _cluster()
    for obj in (cluster, specs.scheduler_pod(cluster), specs.scheduler_service(cluster),
                specs.default_worker_group(cluster), specs.make_autoscaler("demo", 1, 2),
                specs.make_worker_group("demo", "gpu", specs.make_worker_spec())):
        assert yaml.safe_load(yaml.safe_dump(obj)) == obj


# -- null is absent ------------------------------------------------------------------------------------------------

NULLABLE_CONTAINER = ("env", "args", "command", "ports", "volumeMounts", "resources", "envFrom", "readinessProbe")
NULLABLE_POD = ("volumes", "tolerations", "nodeSelector", "affinity", "initContainers", "imagePullSecrets")


def _with_nulls(obj: dict) -> dict:
    """Every nullable field of both templates null, as dask-kubernetes' helpers (and hand-written YAML) send them."""
    obj = copy.deepcopy(obj)
    for part in ("scheduler", "worker"):
        obj["spec"][part]["metadata"] = {"labels": None, "annotations": None}
        pod = obj["spec"][part]["spec"]
        pod.update(dict.fromkeys(NULLABLE_POD))
        pod["containers"][0].update(dict.fromkeys(NULLABLE_CONTAINER))
    obj["metadata"]["labels"] = None
    return obj


def _nulls_in(value: object) -> bool:
    if isinstance(value, dict):
        return any(v is None or _nulls_in(v) for v in value.values())
    return isinstance(value, list) and any(_nulls_in(v) for v in value)


def test_every_builder_reads_a_null_field_as_absent() -> None:
    cluster = _with_nulls(_cluster())
    group = specs.default_worker_group(cluster)
    group["metadata"].update(namespace="ns", uid="u-g")
    built = [specs.scheduler_pod(cluster), specs.scheduler_service(cluster), group,
             specs.worker_pod(group, "demo", tls_secret="demo-tls")]
    assert not any(_nulls_in(b) for b in built)
    worker = built[-1]["spec"]["containers"][0]
    assert {e["name"] for e in worker["env"]} >= {naming.WORKER_NAME_ENV, naming.SCHEDULER_ADDRESS_ENV}
    assert built[-1]["metadata"]["labels"][naming.WORKERGROUP_LABEL] == "demo-default"
    job = {"apiVersion": naming.API_VERSION, "kind": naming.DASKJOB,
           "metadata": {"name": "j", "namespace": "ns", "uid": "u-j", "labels": None},
           "spec": {"job": {"metadata": {"labels": None}, "spec": {"containers": [
               {"name": "job", "image": "i", **dict.fromkeys(NULLABLE_CONTAINER)}], **dict.fromkeys(NULLABLE_POD)}},
                    "cluster": {"spec": cluster["spec"]}}}
    assert not _nulls_in(specs.job_runner_pod(job)) and not _nulls_in(specs.job_cluster(job))
    assert specs.job_runner_pod(job)["spec"]["containers"][0]["env"][0]["name"] == naming.SCHEDULER_ADDRESS_ENV


def test_validation_and_the_client_read_a_null_field_as_absent() -> None:
    from dask_kube import validation
    from dask_kube.cluster import options

    cluster = _with_nulls(_cluster())
    cluster["spec"]["worker"]["spec"]["containers"][0]["resources"] = {"limits": None, "requests": {"cpu": "1"}}
    assert validation.pod_spec_problems(cluster["spec"]["worker"]["spec"], "spec.worker.spec") == []
    manifest = options.resolve(custom_cluster_spec=cluster, shutdown_on_close=False).manifest()
    assert not _nulls_in(manifest) and manifest["spec"]["worker"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "1"}}
    assert cluster["metadata"]["labels"] is None  # the caller's dict is not touched
