"""The operator on the session LocalKube: DaskClusters and worker groups, with real dask processes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml
from distributed import Client
from kr8s.objects import Pod
from localkube.testing import free_port, until

from dask_kube import naming
from tests.paths import EXAMPLE_MANIFESTS

SHARED = EXAMPLE_MANIFESTS
pytestmark = pytest.mark.e2e


def _get(kubectl, kind: str, name: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The object, or {} while it does not exist (so polling predicates keep polling)."""
    out = kubectl("get", kind, name, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _running(kubectl, name: str, ready: int, timeout: float = 90) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    def check() -> dict[str, Any] | None:
        obj = _get(kubectl, "daskcluster", name)
        status = obj.get("status") or {}
        ok = status.get("phase") == "Running" and status.get("readyReplicas") == ready
        return obj if ok else None
    return until(check, f"{name} Running with {ready} ready workers", timeout)


def _worker_pods(kubectl, cluster: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    items = json.loads(kubectl("get", "pods", "-l", naming.selector_string(naming.worker_selector(cluster)),
                               "-o", "json").stdout)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _cluster(name: str, replicas: int, worker_annotations: dict[str, str] | None = None,
             idle_timeout: int = 0) -> str:
    from dask_kube import specs

    obj = specs.make_cluster_spec(name, n_workers=replicas, idle_timeout=idle_timeout,
                                  worker_command="dask worker --nthreads 1 --no-dashboard")
    if worker_annotations:
        obj["spec"]["worker"]["metadata"] = {"annotations": worker_annotations}
    return yaml.safe_dump(obj)


def test_cpu_example_objects_labels_env_and_a_client_computes(kubectl, operator, namespace) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", str(SHARED / "cpu-dask-cluster.yaml"))
    cluster = _running(kubectl, "cpu-dask-cluster", ready=2)
    uid = cluster["metadata"]["uid"]
    cols = kubectl("get", "daskcluster", "cpu-dask-cluster").stdout.splitlines()[1].split()
    assert cols[1:4] == ["2", "2", "Running"]
    conds = {c["type"]: c["status"] for c in cluster["status"]["conditions"]}
    assert conds == {"SpecValid": "True", "SchedulerReady": "True", "WorkersReady": "True", "Ready": "True",
                     "SchedulerUpdated": "True"}
    assert cluster["status"]["observedGeneration"] == cluster["metadata"]["generation"]

    sched = _get(kubectl, "pod", "cpu-dask-cluster-scheduler")
    labels = sched["metadata"]["labels"]
    assert labels[naming.CLUSTER_LABEL] == "cpu-dask-cluster" and labels[naming.COMPONENT_LABEL] == "scheduler"
    assert labels["team"] == "analytics" and labels["tier"] == "scheduler"
    assert labels[naming.ISTIO_INJECT_LABEL] == "false"
    annotations = sched["metadata"]["annotations"]
    assert annotations["example.org/owner"] == "data-platform"
    assert not any(k.startswith(("kubectl.kubernetes.io", "kopf.zalando.org")) for k in annotations)
    assert sched["metadata"]["ownerReferences"][0]["uid"] == uid
    env = {e["name"]: e.get("value") for e in sched["spec"]["containers"][0]["env"]}
    assert env["SCHEDULER_ENV"] == "hello-scheduler"

    svc = _get(kubectl, "service", "cpu-dask-cluster-scheduler")
    assert svc["spec"]["selector"] == naming.scheduler_selector("cpu-dask-cluster")
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"tcp-comm": 8786, "http-dashboard": 8787}

    group = _get(kubectl, "daskworkergroup", "cpu-dask-cluster-default")
    assert group["metadata"]["labels"][naming.COMPONENT_LABEL] == "workergroup"
    assert group["metadata"]["ownerReferences"][0]["uid"] == uid
    pods = _worker_pods(kubectl, "cpu-dask-cluster")
    assert len(pods) == 2
    for pod in pods:
        name = pod["metadata"]["name"]
        assert name.startswith("cpu-dask-cluster-default-worker-") and len(name.rsplit("-", 1)[1]) == 10
        assert pod["metadata"]["labels"]["tier"] == "worker" and pod["metadata"]["labels"]["team"] == "analytics"
        assert pod["metadata"]["labels"][naming.WORKERGROUP_LABEL] == "cpu-dask-cluster-default"
        assert pod["metadata"]["ownerReferences"][0]["uid"] == group["metadata"]["uid"]
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["DASK_WORKER_NAME"] == name and env["WORKER_ENV"] == "hello-worker"
        assert env["DASK_SCHEDULER_ADDRESS"] == f"tcp://cpu-dask-cluster-scheduler.{namespace}.svc.cluster.local:8786"

    pod = Pod.get("cpu-dask-cluster-scheduler", namespace=namespace)
    with pod.portforward(8786, local_port=free_port()) as port, Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
        names = sorted(w["name"] for w in client.scheduler_info()["workers"].values())
        assert names == sorted(p["metadata"]["name"] for p in pods)
        assert client.submit(sum, client.map(lambda x: x * x, range(100))).result(timeout=60) == 328350


def test_kubectl_scale_up_and_down_and_scale_down_keeps_data(kubectl, operator, namespace) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", "-", input=_cluster("scaled", 1))
    _running(kubectl, "scaled", ready=1)
    assert "scaled" in kubectl("scale", "daskcluster", "scaled", "--replicas=3").stdout
    _running(kubectl, "scaled", ready=3)
    assert _get(kubectl, "daskworkergroup", "scaled-default")["spec"]["worker"]["replicas"] == 3
    pod = Pod.get("scaled-scheduler", namespace=namespace)
    with pod.portforward(8786, local_port=free_port()) as port, Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
        futures = client.map(lambda i: bytes(100_000) + str(i).encode(), range(60))
        client.wait_for_workers(3, timeout=30)
        client.gather(futures)
        held = {w for ws in client.who_has(futures).values() for w in ws}
        assert len(held) > 1  # the data is spread over several workers
        kubectl("scale", "daskworkergroup", "scaled-default", "--replicas=1")
        until(lambda: len(_worker_pods(kubectl, "scaled")) == 1, "scale down to one pod")
        _running(kubectl, "scaled", ready=1)
        assert _get(kubectl, "daskcluster", "scaled")["spec"]["worker"]["replicas"] == 1  # mirrored back
        results = client.gather(futures)  # nothing was lost: every result still there, none recomputed
        assert [r[100_000:] for r in results] == [str(i).encode() for i in range(60)]
        assert all(f.status == "finished" for f in futures)
    events = kubectl("get", "events", "--field-selector", "reason=WorkersRetired", "-o", "json").stdout
    assert json.loads(events)["items"], "the scale-down retired workers through the scheduler"


def test_lost_worker_and_scheduler_pods_are_replaced(kubectl, operator, namespace) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", "-", input=_cluster("heal", 2))
    _running(kubectl, "heal", ready=2)
    victim = _worker_pods(kubectl, "heal")[0]["metadata"]["name"]
    kubectl("delete", "pod", victim, "--wait=false")
    until(lambda: victim not in [p["metadata"]["name"] for p in _worker_pods(kubectl, "heal")]
           and len(_worker_pods(kubectl, "heal")) == 2, "a replacement worker pod")
    _running(kubectl, "heal", ready=2)
    old_uid = _get(kubectl, "pod", "heal-scheduler")["metadata"]["uid"]
    kubectl("delete", "pod", "heal-scheduler")
    # {} between the deletion and the new pod: one read, so that it cannot vanish between two
    until(lambda: _get(kubectl, "pod", "heal-scheduler").get("metadata", {}).get("uid") not in (None, old_uid),
          "a new scheduler pod")
    _running(kubectl, "heal", ready=2, timeout=120)  # workers reconnected to the new scheduler
    reasons = json.loads(kubectl("get", "events", "-o", "json").stdout)["items"]
    assert any(e["reason"] == "SchedulerRecreated" for e in reasons)


@pytest.mark.localkube_only
def test_operator_killed_mid_scale_converges_exactly(kubectl, operator, namespace) -> None:  # type: ignore[no-untyped-def]
    # Simulated workers (no processes) keep this test cheap: they never join, so scale-down deletes them outright.
    kubectl("apply", "-f", "-", input=_cluster("crash", 0, {"localkube.dask.org/simulate": "true"}))
    until(lambda: (_get(kubectl, "daskcluster", "crash").get("status") or {}).get("phase") == "Running",
           "cluster Running")
    try:
        kubectl("scale", "daskcluster", "crash", "--replicas=30")
        until(lambda: len(_worker_pods(kubectl, "crash")) > 0, "the first worker pods")
        operator.kill()
        operator.start()
        until(lambda: len(_worker_pods(kubectl, "crash")) == 30, "30 worker pods after the restart")
        kubectl("scale", "daskcluster", "crash", "--replicas=5")
        until(lambda: len(_worker_pods(kubectl, "crash")) < 30, "scale-down under way")
        operator.kill()
        operator.start()
        until(lambda: len(_worker_pods(kubectl, "crash")) == 5, "5 worker pods after the second restart")
        status = until(lambda: (g := _get(kubectl, "daskworkergroup", "crash-default").get("status", {}))
                        .get("replicas") == 5 and g, "group status")
        assert status["replicas"] == 5
    finally:
        if operator.proc is None or operator.proc.poll() is not None:
            operator.start()


def test_idle_cluster_is_deleted_after_idle_timeout(kubectl, operator, namespace) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", "-", input=_cluster("idle", 0, idle_timeout=3))
    until(lambda: kubectl("get", "daskcluster", "idle", check=False).returncode != 0, "idle cluster deleted",
           within=90)
    events = json.loads(kubectl("get", "events", "--field-selector", "reason=IdleTimeout", "-o", "json").stdout)
    assert events["items"] and "idle" in events["items"][0]["message"]


@pytest.mark.parametrize("mutate,fragment", [
    (lambda c: c["metadata"].update(name="n" * 54), "metadata.name"),
    (lambda c: c["spec"]["worker"]["spec"]["containers"][0].update(resources={"limit": {"cpu": "1"}}),
     "did you mean 'limits'"),
    (lambda c: c["spec"]["scheduler"]["spec"]["containers"][0].update(imagePullPolicy="Sometimes"),
     "spec.scheduler.spec"),
], ids=["long-name", "limit-typo", "api-server-rejects-scheduler"])
def test_invalid_specs_end_in_error_with_the_reason(kubectl, operator, mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    obj = yaml.safe_load(_cluster("bad", 1))
    mutate(obj)
    name = obj["metadata"]["name"]
    kubectl("apply", "-f", "-", input=yaml.safe_dump(obj))
    cluster = until(lambda: (c := _get(kubectl, "daskcluster", name)).get("status", {}).get("phase") == "Error"
                     and c, "phase Error")
    cond = next(c for c in cluster["status"]["conditions"] if c["type"] == "SpecValid")
    assert cond["status"] == "False" and cond["reason"] == "InvalidSpec" and fragment in cond["message"]
    events = json.loads(kubectl("get", "events", "--field-selector", f"involvedObject.name={name}",
                                "-o", "json").stdout)["items"]
    assert any(e["type"] == "Warning" and fragment in e["message"] for e in events)
    assert kubectl("get", "pods", "-l", f"{naming.CLUSTER_LABEL}={name}", "-o", "name").stdout == ""


@pytest.mark.localkube_only
def test_rapids_manifest_unschedulable_without_gpus_then_scheduled_on_a_gpu_node(  # type: ignore[no-untyped-def]
        kubectl, operator, local_kube) -> None:
    from localkube.controllers.nodes import NodeConfig

    kubectl("apply", "-f", str(SHARED / "rapids-dask-cluster.yaml"))

    def unschedulable() -> dict[str, Any] | None:
        group = _get(kubectl, "daskworkergroup", "rapids-dask-cluster-default")
        conds = {c["type"]: c for c in (group.get("status") or {}).get("conditions") or ()}
        ready = conds.get("WorkersReady")
        return ready if ready and ready["reason"] == "WorkersUnschedulable" else None

    cond = until(unschedulable, "WorkersUnschedulable on the worker group")
    assert "Insufficient nvidia.com/gpu" in cond["message"] and cond["status"] == "False"
    gpu = NodeConfig(name="gpu-node", capacity={"cpu": "16", "memory": "64Gi", "pods": "110", "nvidia.com/gpu": "2"},
                     labels={"accelerator": "nvidia"})
    local_kube.call(local_kube.kube.nodes.add_node, gpu)
    try:
        nodes = until(lambda: (n := {p["spec"].get("nodeName") for p in _worker_pods(kubectl, "rapids-dask-cluster")})
                       == {"gpu-node"} and n, "worker pods bound to the GPU node")
        assert nodes == {"gpu-node"}
    finally:
        kubectl("delete", "daskcluster", "rapids-dask-cluster", "--wait=false")
        local_kube.call(local_kube.kube.nodes.remove_node, "gpu-node")


def test_a_connected_client_keeps_an_idle_cluster_until_it_leaves(kubectl, operator, namespace) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", "-", input=_cluster("held", 0, idle_timeout=2))
    until(lambda: (_get(kubectl, "daskcluster", "held").get("status") or {}).get("phase") == "Running",
          "cluster Running", within=60)
    pod = Pod.get("held-scheduler", namespace=namespace)
    with pod.portforward(8786, local_port=free_port()) as port:
        client = Client(f"tcp://127.0.0.1:{port}", timeout=30)
        try:
            # A negative can only be observed over a window: four idle timeouts plus two resync periods.
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                assert _get(kubectl, "daskcluster", "held"), "deleted although a client is connected"
                time.sleep(0.5)
        finally:
            client.close()
    until(lambda: not _get(kubectl, "daskcluster", "held"), "the idle cluster deleted once the client left",
          within=60)
