"""Deployment → ReplicaSet → Pod in a running LocalKube, and the real kubectl's rollout status and scale on top.

Pods run no processes here: a stand-in kubelet marks bound pods Running and Ready and releases deleted ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localkube.apiserver.core import MERGE_PATCH, STRATEGIC_PATCH, ApiCore
from localkube.cluster import LocalKube
from localkube.controllers.workloads import deletion_order, plan_rollout, template_hash
from localkube.testing import async_until

pytestmark = pytest.mark.localkube_only

PODS, RS, DEPLOY = ("", "pods"), ("apps", "replicasets"), ("apps", "deployments")
KUBECTL = shutil.which("kubectl")


def _ready_status(pod: dict[str, Any], now: str) -> None:
    conditions = [c for c in pod["status"].get("conditions") or () if c["type"] == "PodScheduled"]
    conditions += [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                   for t in ("Initialized", "ContainersReady", "Ready")]
    pod["status"].update(phase="Running", conditions=conditions, podIP="127.0.0.10", startTime=now)


async def stand_in_kubelet(core: ApiCore, hold: set[str]) -> None:
    """Bound pods become Ready (unless held), deleting ones go: just enough kubelet for controllers to act on."""
    kind = core.kind_of(PODS)
    while True:
        for pod in core.store.list(PODS):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                core.finalize_pod(meta["namespace"], meta["name"])
            elif pod["spec"].get("nodeName") and pod["status"].get("phase") == "Pending" and (
                    meta.get("labels") or {}).get("hold") not in hold:
                core.mutate(kind, meta["namespace"], meta["name"], lambda p: _ready_status(p, core.now()),
                            subresource="status")
        await asyncio.sleep(0.02)


@dataclass
class Cluster:
    kube: LocalKube
    hold: set[str]

    @property
    def core(self) -> ApiCore:
        return self.kube.core

    def deploy(self, name: str, replicas: int = 3, image: str = "nginx:1.25", **spec: Any) -> dict[str, Any]:
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name, "hold": name}},
                                      "spec": {"containers": [{"name": "main", "image": image}]}}, **spec}}
        return self.core.create(self.core.kind_of(DEPLOY), "default", body)[0]

    def get(self, key: tuple[str, str], name: str) -> dict[str, Any] | None:
        return self.core.store.get(key, "default", name)

    def replicasets(self, deploy: str) -> list[dict[str, Any]]:
        return [rs for rs in self.core.store.list(RS, "default") if rs["metadata"]["name"].startswith(f"{deploy}-")]

    def pods(self, app: str, active_only: bool = True) -> list[dict[str, Any]]:
        return [p for p in self.core.store.list(PODS, "default")
                if (p["metadata"].get("labels") or {}).get("app") == app
                and not (active_only and p["metadata"].get("deletionTimestamp"))]

    def status(self, name: str) -> dict[str, Any]:
        return (self.get(DEPLOY, name) or {}).get("status") or {}

    def rolled_out(self, name: str, replicas: int) -> bool:
        deploy = self.get(DEPLOY, name)
        status = self.status(name)
        return bool(deploy) and status.get("observedGeneration") == deploy["metadata"]["generation"] and all(
            status.get(k) == replicas for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
        ) and len(self.pods(name)) == replicas


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[Cluster]:
    async with LocalKube(run_pods=False) as kube:
        hold: set[str] = set()
        kubelet = asyncio.create_task(stand_in_kubelet(kube.core, hold))
        try:
            yield Cluster(kube, hold)
        finally:
            kubelet.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await kubelet


async def test_deployment_creates_one_replicaset_and_its_pods() -> None:
    async with cluster() as c:
        deploy = c.deploy("web")
        [rs] = await async_until(lambda: c.replicasets("web"), what="the ReplicaSet")
        pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
        assert rs["metadata"]["name"] == f"web-{pod_hash}"
        assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
        assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == pod_hash
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        [ref] = rs["metadata"]["ownerReferences"]
        assert ref == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                       "uid": deploy["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
        pods = await async_until(lambda: len(c.pods("web")) == 3 and c.pods("web"), what="3 pods")
        for pod in pods:
            assert pod["metadata"]["name"].startswith(f"web-{pod_hash}-")
            assert pod["metadata"]["labels"] == {"app": "web", "hold": "web", "pod-template-hash": pod_hash}
            [ref] = pod["metadata"]["ownerReferences"]
            assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
                "ReplicaSet", rs["metadata"]["name"], rs["metadata"]["uid"], True)


async def test_status_fields_and_conditions() -> None:
    async with cluster() as c:
        c.hold.add("web")
        c.deploy("web")
        await async_until(lambda: c.status("web").get("replicas") == 3, what="3 replicas counted")
        status = c.status("web")
        assert status["observedGeneration"] == 1
        assert (status["updatedReplicas"], status["unavailableReplicas"]) == (3, 3)
        assert "availableReplicas" not in status or status["availableReplicas"] == 0
        conditions = {x["type"]: x for x in status["conditions"]}
        assert (conditions["Available"]["status"], conditions["Available"]["reason"]) == (
            "False", "MinimumReplicasUnavailable")
        assert conditions["Progressing"]["reason"] in ("NewReplicaSetCreated", "ReplicaSetUpdated")

        c.hold.clear()
        await async_until(lambda: c.rolled_out("web", 3), what="rollout")
        status = c.status("web")
        assert "unavailableReplicas" not in status  # omitempty, as on a real cluster
        conditions = {x["type"]: x for x in status["conditions"]}
        assert (conditions["Available"]["status"], conditions["Available"]["reason"]) == (
            "True", "MinimumReplicasAvailable")
        progressing = conditions["Progressing"]
        assert (progressing["status"], progressing["reason"]) == ("True", "NewReplicaSetAvailable")
        assert progressing["message"] == f'ReplicaSet "{c.replicasets("web")[0]["metadata"]["name"]}" has ' \
                                         "successfully progressed."
        rs_status = c.replicasets("web")[0]["status"]
        assert rs_status == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
                             "observedGeneration": 1}


async def test_scale_subresource_and_pod_replacement() -> None:
    async with cluster() as c:
        c.deploy("web")
        await async_until(lambda: c.rolled_out("web", 3), what="rollout")
        kind = c.core.kind_of(DEPLOY)
        scale = c.core.patch_scale(kind, "default", "web", MERGE_PATCH, {"spec": {"replicas": 5}})
        assert scale["spec"]["replicas"] == 5
        await async_until(lambda: c.rolled_out("web", 5), what="scale up to 5")
        c.core.patch_scale(kind, "default", "web", MERGE_PATCH, {"spec": {"replicas": 2}})
        await async_until(lambda: c.rolled_out("web", 2), what="scale down to 2")
        assert len(c.replicasets("web")) == 1

        victim = c.pods("web")[0]["metadata"]["name"]
        c.core.delete(c.core.kind_of(PODS), "default", victim)
        await async_until(lambda: victim not in {p["metadata"]["name"] for p in c.pods("web", active_only=False)},
                       what="the deleted pod to go")
        await async_until(lambda: c.rolled_out("web", 2), what="a replacement pod")


async def test_template_change_rolls_to_a_new_replicaset() -> None:
    async with cluster() as c:
        c.deploy("web", replicas=4)
        await async_until(lambda: c.rolled_out("web", 4), what="first rollout")
        [old] = c.replicasets("web")
        c.core.patch(c.core.kind_of(DEPLOY), "default", "web", STRATEGIC_PATCH,
                     {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}}})
        await async_until(lambda: c.rolled_out("web", 4) and len(c.replicasets("web")) == 2, what="second rollout")
        new = next(rs for rs in c.replicasets("web") if rs["metadata"]["uid"] != old["metadata"]["uid"])
        old = c.get(RS, old["metadata"]["name"])
        assert old["spec"]["replicas"] == 0
        await async_until(lambda: not (c.get(RS, old["metadata"]["name"])["status"].get("replicas")),
                       what="old ReplicaSet status at 0")
        assert new["spec"]["replicas"] == 4
        assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        assert c.get(DEPLOY, "web")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        new_hash = new["metadata"]["labels"]["pod-template-hash"]
        assert new_hash != old["metadata"]["labels"]["pod-template-hash"]
        assert {p["metadata"]["labels"]["pod-template-hash"] for p in c.pods("web")} == {new_hash}
        assert {p["spec"]["containers"][0]["image"] for p in c.pods("web")} == {"nginx:1.27"}


async def test_recreate_strategy_replaces_all_at_once() -> None:
    async with cluster() as c:
        c.deploy("batch", replicas=2, strategy={"type": "Recreate"})
        await async_until(lambda: c.rolled_out("batch", 2), what="first rollout")
        c.core.patch(c.core.kind_of(DEPLOY), "default", "batch", MERGE_PATCH,
                     {"spec": {"template": {"metadata": {"labels": {"app": "batch", "hold": "batch", "v": "2"}}}}})
        await async_until(lambda: c.rolled_out("batch", 2) and len(c.replicasets("batch")) == 2, what="recreate")
        assert {p["metadata"]["labels"].get("v") for p in c.pods("batch")} == {"2"}


async def test_deleting_the_deployment_collects_replicasets_and_pods() -> None:
    async with cluster() as c:
        c.deploy("web")
        await async_until(lambda: c.rolled_out("web", 3), what="rollout")
        c.core.delete(c.core.kind_of(DEPLOY), "default", "web")
        await async_until(lambda: not c.replicasets("web") and not c.pods("web", active_only=False),
                       what="garbage collection")


async def _start_kubectl(kube: LocalKube, cache: Path, *args: str) -> asyncio.subprocess.Process:
    assert KUBECTL is not None
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig), KUBECACHEDIR=str(cache))
    return await asyncio.create_subprocess_exec(KUBECTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)


async def _kubectl(kube: LocalKube, cache: Path, *args: str) -> tuple[int, str]:
    proc = await _start_kubectl(kube, cache, *args)
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")
async def test_kubectl_rollout_status_and_scale(tmp_path: Path) -> None:
    async with cluster() as c:
        c.hold.add("web")  # pods stay unready until kubectl is already waiting
        c.deploy("web", replicas=2)
        proc = await _start_kubectl(c.kube, tmp_path, "rollout", "status", "deployment/web", "--timeout=60s")
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert first.startswith('Waiting for deployment "web" rollout to finish: 0 of 2 updated replicas are '
                                "available..."), first
        c.hold.clear()
        rest, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, first + rest.decode()
        assert rest.decode().strip().endswith('deployment "web" successfully rolled out')

        code, out = await _kubectl(c.kube, tmp_path, "scale", "deployment/web", "--replicas=5")
        assert code == 0, out
        assert "deployment.apps/web scaled" in out
        code, out = await _kubectl(c.kube, tmp_path, "rollout", "status", "deployment/web", "--timeout=60s")
        assert code == 0, out
        assert out.strip().endswith('deployment "web" successfully rolled out')
        assert len(c.pods("web")) == 5
        code, out = await _kubectl(c.kube, tmp_path, "get", "rs", "-l", "app=web", "-o",
                                   "jsonpath={.items[*].status.readyReplicas}")
        assert (code, out) == (0, "5")


# --------------------------------------------------------------------------- pure planning


def _rs(name: str, replicas: int, available: int, created: str = "2025-01-01T00:00:00Z") -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": available}}


def _deploy(replicas: int, surge: Any = "25%", unavailable: Any = "25%", kind: str = "RollingUpdate"
            ) -> dict[str, Any]:
    strategy: dict[str, Any] = {"type": kind}
    if kind == "RollingUpdate":
        strategy["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "d"}, "spec": {"replicas": replicas, "strategy": strategy}}


@pytest.mark.parametrize(("deploy", "new", "olds", "running", "expected"), [
    # Fresh deployment: the new ReplicaSet goes straight to full size.
    (_deploy(3), None, [], False, {"": 3}),
    (_deploy(3), _rs("new", 3, 3), [], False, {}),
    (_deploy(3), _rs("new", 5, 5), [], False, {"new": 3}),
    # 3 replicas, 25%: surge 1, unavailable 0 -> one extra new pod, no old one goes until it is available.
    (_deploy(3), None, [_rs("old", 3, 3)], False, {"": 1}),
    (_deploy(3), _rs("new", 1, 0), [_rs("old", 3, 3)], False, {}),
    (_deploy(3), _rs("new", 1, 1), [_rs("old", 3, 3)], False, {"old": 2}),
    (_deploy(3), _rs("new", 1, 1), [_rs("old", 2, 2)], False, {"new": 2}),
    # Unhealthy old replicas go first, within the budget (5 pods - 3 min available - 1 unavailable new).
    (_deploy(4, 1, 1), _rs("new", 1, 0), [_rs("old", 4, 2)], False, {"old": 3}),
    # maxUnavailable 100%: old ones go at once.
    (_deploy(2, 0, "100%"), _rs("new", 0, 0), [_rs("old", 2, 2)], False, {"old": 0}),
    # Recreate: old to zero, wait for their pods, then the new one.
    (_deploy(2, kind="Recreate"), None, [_rs("old", 2, 2)], True, {"old": 0}),
    (_deploy(2, kind="Recreate"), _rs("new", 0, 0), [_rs("old", 0, 0)], True, {}),
    (_deploy(2, kind="Recreate"), _rs("new", 0, 0), [_rs("old", 0, 0)], False, {"new": 2}),
])
def test_plan_rollout(deploy: dict[str, Any], new: dict[str, Any] | None, olds: list[dict[str, Any]],
                      running: bool, expected: dict[str, int]) -> None:
    assert plan_rollout(deploy, new, olds, running) == expected


def test_deletion_order_prefers_unscheduled_then_not_ready_then_newest() -> None:
    def pod(name: str, node: str | None, phase: str, ready: bool, created: str) -> dict[str, Any]:
        conditions = [{"type": "Ready", "status": "True" if ready else "False",
                       "lastTransitionTime": "2025-01-01T00:00:00Z"}]
        return {"metadata": {"name": name, "creationTimestamp": created},
                "spec": {"nodeName": node} if node else {}, "status": {"phase": phase, "conditions": conditions}}

    pods = [
        pod("ready-old", "n", "Running", True, "2025-01-01T00:00:00Z"),
        pod("ready-new", "n", "Running", True, "2025-01-02T00:00:00Z"),
        pod("running-unready", "n", "Running", False, "2025-01-01T00:00:00Z"),
        pod("pending", "n", "Pending", False, "2025-01-01T00:00:00Z"),
        pod("unscheduled", None, "Pending", False, "2025-01-01T00:00:00Z"),
    ]
    assert [p["metadata"]["name"] for p in deletion_order(pods)] == [
        "unscheduled", "pending", "running-unready", "ready-new", "ready-old"]


def test_template_hash_is_stable_and_short() -> None:
    template = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    first = template_hash(template)
    assert first == template_hash({"spec": template["spec"], "metadata": {"labels": {"app": "x"}}})
    assert first != template_hash(template, collision_count=1)
    assert first != template_hash({**template, "spec": {"containers": [{"name": "c", "image": "j"}]}})
    assert 1 <= len(first) <= 10 and first.isalnum() and not set(first) & set("aeiou")
