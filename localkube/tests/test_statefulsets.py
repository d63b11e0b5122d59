"""StatefulSets in a running LocalKube, through the real kubectl and kr8s: ordered pods with stable identities,
claims, rolling updates by partition, `kubectl rollout status` and kr8s's own `wait` on availableReplicas."""

from __future__ import annotations

import json
from typing import Any

import kr8s.asyncio
import pytest
import yaml
from kr8s.asyncio.objects import StatefulSet

from localkube.apiserver.core import MERGE_PATCH
from localkube.apiserver.store import ADDED, DELETED, Event
from localkube.testing import async_until, until
from tests.test_workloads import cluster

PODS, STS = ("", "pods"), ("apps", "statefulsets")
SIMULATE = {"localkube.dask.org/simulate": "true"}


def manifest(name: str, replicas: int = 3, image: str = "nginx:1.27", *, annotations: dict[str, str] | None = None,
             **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, "hold": name},
                                               "annotations": annotations or {}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}, **spec}}


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


@pytest.mark.localkube_only
async def test_ordered_ready_creates_in_order_and_scales_down_from_the_top() -> None:
    async with cluster() as c:
        seen: list[tuple[str, str]] = []

        def record(event: Event) -> None:
            if event.key != PODS or event.obj["metadata"]["namespace"] != "default":
                return  # kube-system's own pods (CoreDNS) come and go too
            name = event.obj["metadata"]["name"]
            if event.type == ADDED:
                seen.append(("created", name))
            elif event.type == DELETED:
                seen.append(("gone", name))
            elif _ready(event.obj) and not (event.old and _ready(event.old)):
                seen.append(("ready", name))

        c.core.store.add_listener(record)
        c.hold.add("db")
        c.core.create(c.core.kind_of(STS), "default", manifest("db"))
        await async_until(lambda: ("created", "db-0") in seen, what="db-0")
        sts = c.core.store.get(STS, "default", "db")
        await async_until(lambda: c.core.store.get(STS, "default", "db").get("status", {}).get("replicas") == 1,
                          what="status for one pod")
        assert [n for n in seen if n[0] == "created"] == [("created", "db-0")]  # db-1 waits for db-0 to be Ready
        c.hold.clear()
        await async_until(lambda: (c.core.store.get(STS, "default", "db").get("status") or {}).get(
            "readyReplicas") == 3, what="3 ready replicas")
        assert seen == [("created", "db-0"), ("ready", "db-0"), ("created", "db-1"), ("ready", "db-1"),
                        ("created", "db-2"), ("ready", "db-2")]
        seen.clear()
        c.core.patch(c.core.kind_of(STS), "default", "db", MERGE_PATCH, {"spec": {"replicas": 1}})
        await async_until(lambda: ("gone", "db-1") in seen, what="scale down to 1")
        assert [n for n in seen if n[0] == "gone"] == [("gone", "db-2"), ("gone", "db-1")]
        c.core.store.remove_listener(record)
        assert sts["metadata"]["uid"] == c.core.store.get(STS, "default", "db")["metadata"]["uid"]


def test_kubectl_rollout_status_partitioned_update_and_identity(kubectl, namespace: str) -> None:  # type: ignore[no-untyped-def]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}}
    sts = manifest("web", annotations=SIMULATE, volumeClaimTemplates=[
        {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                "resources": {"requests": {"storage": "1Gi"}}}}])
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all([service, sts]))
    out = kubectl("rollout", "status", "statefulset/web", "--timeout=60s").stdout
    assert "partitioned roll out complete: 3 new pods have been updated..." in out

    pods = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["web-0", "web-1", "web-2"]
    status = json.loads(kubectl("get", "sts", "web", "-o", "json").stdout)["status"]
    revision = status["updateRevision"]
    assert status["currentRevision"] == revision and status["availableReplicas"] == 3
    for pod in pods:
        name = pod["metadata"]["name"]
        assert pod["metadata"]["labels"]["controller-revision-hash"] == revision
        assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == name
        assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == name[-1]
        assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == (name, "web")
        assert {"name": "data", "persistentVolumeClaim": {"claimName": f"data-{name}"}} in pod["spec"]["volumes"]
    claims = kubectl("get", "pvc", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert sorted(claims) == ["data-web-0", "data-web-1", "data-web-2"]
    hostnames = lambda: kubectl("get", "endpoints", "web", "-o",  # noqa: E731
                                "jsonpath={.subsets[*].addresses[*].hostname}").stdout.split()
    until(lambda: sorted(hostnames()) == ["web-0", "web-1", "web-2"], what="endpoint hostnames")

    # A partitioned rolling update: only the ordinals at or above the partition move to the new template.
    kubectl("patch", "sts", "web", "--type=merge", "-p", json.dumps({"spec": {
        "updateStrategy": {"rollingUpdate": {"partition": 2}},
        "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}}))
    out = kubectl("rollout", "status", "statefulset/web", "--timeout=60s").stdout
    assert "partitioned roll out complete: 1 new pods have been updated..." in out
    images = lambda: kubectl("get", "pods", "-l", "app=web", "-o",  # noqa: E731
                             "jsonpath={range .items[*]}{.metadata.name}={.spec.containers[0].image} {end}").stdout
    assert sorted(images().split()) == ["web-0=nginx:1.27", "web-1=nginx:1.27", "web-2=nginx:1.28"]
    kubectl("patch", "sts", "web", "--type=merge", "-p", json.dumps({"spec": {"updateStrategy": {
        "rollingUpdate": {"partition": 0}}}}))
    out = kubectl("rollout", "status", "statefulset/web", "--timeout=60s").stdout
    assert "partitioned roll out complete: 3 new pods have been updated..." in out
    assert sorted(images().split()) == ["web-0=nginx:1.28", "web-1=nginx:1.28", "web-2=nginx:1.28"]
    status = json.loads(kubectl("get", "sts", "web", "-o", "json").stdout)["status"]
    assert status["currentRevision"] == status["updateRevision"] != revision
    assert (status["updatedReplicas"], status["currentReplicas"], status["readyReplicas"]) == (3, 3, 3)
    history = lambda: [line.split()[0] for line in  # noqa: E731
                       kubectl("rollout", "history", "statefulset/web").stdout.split("\n")[2:] if line.strip()]
    assert history() == ["1", "2"]
    # Undo restores revision 1's template from its ControllerRevision, which becomes revision 3.
    kubectl("rollout", "undo", "statefulset/web")
    kubectl("rollout", "status", "statefulset/web", "--timeout=60s")
    assert sorted(images().split()) == ["web-0=nginx:1.27", "web-1=nginx:1.27", "web-2=nginx:1.27"]
    assert history() == ["2", "3"]

    # A deleted pod comes back under its name; scaling down removes the highest ordinals.
    uid = kubectl("get", "pod", "web-1", "-o", "jsonpath={.metadata.uid}").stdout
    kubectl("delete", "pod", "web-1", "--wait=false")
    until(lambda: kubectl("get", "pod", "web-1", "-o", "jsonpath={.metadata.uid}", check=False).stdout not in
          ("", uid), what="web-1 recreated")
    kubectl("scale", "sts", "web", "--replicas=1")
    until(lambda: kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}").stdout ==
          "web-0", what="scale down to web-0")

    # Deleting the StatefulSet collects its pods and revisions; claims are retained (whenDeleted: Retain).
    kubectl("delete", "sts", "web")
    until(lambda: not kubectl("get", "pods,controllerrevisions", "-o", "name").stdout.strip(), what="collection")
    assert len(kubectl("get", "pvc", "-o", "name").stdout.split()) == 3


async def test_kr8s_waits_for_available_replicas_of_real_nginx(kube, namespace: str) -> None:  # type: ignore[no-untyped-def]
    api = await kr8s.asyncio.api(kubeconfig=str(kube.kubeconfig))
    body = manifest("test-wait-replicas", image="nginx:latest")
    body["metadata"]["namespace"] = namespace
    sts = await StatefulSet(body, api=api)
    await sts.create()
    try:
        await sts.wait("jsonpath='{.status.availableReplicas}'=3", timeout=60)
        await sts.refresh()
        assert sts.raw["status"]["readyReplicas"] == 3
        pods = [p async for p in api.get("pods", namespace=namespace, label_selector={"app": "test-wait-replicas"})]
        assert sorted(p.name for p in pods) == [f"test-wait-replicas-{i}" for i in range(3)]
        assert all(p.raw["status"]["phase"] == "Running" for p in pods)
    finally:
        await sts.delete()


def test_the_kubelet_releases_only_the_pod_it_was_deleting() -> None:
    """A StatefulSet recreates `web-0` at once: a late `finalize_pod` for the old one must not touch the new one."""
    from localkube.apiserver.core import ApiCore

    core = ApiCore()
    core.bootstrap()
    kind = core.kind_of(PODS)
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]}}
    old = core.create(kind, "default", body)[0]
    core.delete(kind, "default", "web-0")
    core.finalize_pod("default", "web-0", old["metadata"]["uid"])
    new = core.create(kind, "default", body)[0]
    core.finalize_pod("default", "web-0", old["metadata"]["uid"])
    kept = core.store.get(PODS, "default", "web-0")
    assert kept is not None and kept["metadata"]["uid"] == new["metadata"]["uid"]
    assert "deletionTimestamp" not in kept["metadata"]
