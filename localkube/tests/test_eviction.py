"""The Eviction API and PodDisruptionBudget status through real clients (kr8s and kubectl): evictions allowed,
refused with kube-apiserver's 429, dry-run, RBAC on `pods/eviction`, and the budget's numbers as pods scale and
change readiness.

Pods carry LocalKube's simulate annotation (Running and Ready without a process); elsewhere they run pause.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kr8s
import kr8s.asyncio
import pytest
from kr8s.asyncio.objects import Pod, PodDisruptionBudget

from localkube.testing import async_until, until

SIMULATE = {"localkube.dask.org/simulate": "true"}
BUDGET_VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
HOLD = "localkube.test/hold"


@pytest.fixture
async def api(kube):  # type: ignore[no-untyped-def]
    return await kr8s.asyncio.api(kubeconfig=str(kube.kubeconfig))


def _pod(name: str, namespace: str, app: str = "web", finalizers: tuple[str, ...] = ()) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "labels": {"app": app}, "annotations": SIMULATE}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}}


def _budget(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}


async def _evict(api: Any, namespace: str, name: str, *, dry_run: bool = False,
                 api_version: str = "policy/v1") -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"apiVersion": api_version, "kind": "Eviction",
                            "metadata": {"name": name, "namespace": namespace}}
    if dry_run:
        body["deleteOptions"] = {"dryRun": ["All"]}
    async with api.call_api("POST", version="v1", base="/api", namespace=namespace, url=f"pods/{name}/eviction",
                            content=json.dumps(body), raise_for_status=False) as resp:
        return resp.status_code, resp.json()


async def _status(api: Any, namespace: str, name: str = "web") -> dict[str, Any]:
    pdb = await PodDisruptionBudget.get(name, namespace=namespace, api=api)
    return dict(pdb.raw.get("status") or {})


async def _ready_pods(api: Any, namespace: str, names: list[str], finalizers: tuple[str, ...] = ()) -> None:
    for name in names:
        await Pod(_pod(name, namespace, finalizers=finalizers), api=api).create()
    for name in names:
        pod = await Pod.get(name, namespace=namespace, api=api)
        await pod.wait("condition=Ready", timeout=60)


async def test_eviction_spends_the_budget_then_is_refused_with_the_real_429(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    await _ready_pods(api, namespace, ["a"], finalizers=(HOLD,))  # stays, deleting, until the test lets it go
    await _ready_pods(api, namespace, ["b", "c"])
    await PodDisruptionBudget(_budget("web", namespace, minAvailable=2), api=api).create()
    await async_until(lambda: _status(api, namespace), what="the budget's status")

    async def allowed(n: int) -> bool:
        status = await _status(api, namespace)
        return (status.get("currentHealthy"), status.get("disruptionsAllowed")) == (3, n)

    await async_until(lambda: allowed(1), what="3 healthy pods, 1 disruption allowed")

    # A dry run answers as the eviction would, and changes nothing.
    code, body = await _evict(api, namespace, "a", dry_run=True)
    assert (code, body["status"]) == (201, "Success")
    assert await Pod.get("a", namespace=namespace, api=api)
    assert (await _status(api, namespace))["disruptionsAllowed"] == 1

    code, body = await _evict(api, namespace, "a")
    assert code == 201, body
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
    evicted = await Pod.get("a", namespace=namespace, api=api)
    assert evicted.raw["metadata"].get("deletionTimestamp")
    assert {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting"}.items() <= next(
        c for c in evicted.raw["status"]["conditions"] if c["type"] == "DisruptionTarget").items()
    await evicted.patch({"metadata": {"finalizers": None}})

    # The budget is spent: the next eviction is refused, word for word, and the pod stays.
    code, body = await _evict(api, namespace, "b", api_version="policy/v1beta1")
    assert code == 429, body
    assert body["reason"] == "TooManyRequests"
    assert body["message"] == BUDGET_VIOLATION
    assert body["details"]["causes"] == [
        {"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]
    assert not (await Pod.get("b", namespace=namespace, api=api)).raw["metadata"].get("deletionTimestamp")

    # A replacement makes room again.
    await _ready_pods(api, namespace, ["d"])
    await async_until(lambda: allowed(1), what="a disruption allowed again")
    code, body = await _evict(api, namespace, "b")
    assert code == 201, body

    # Two budgets over one pod: kube-apiserver does not support that.
    await PodDisruptionBudget(_budget("second", namespace, maxUnavailable=1), api=api).create()
    code, body = await _evict(api, namespace, "c")
    assert (code, body["message"]) == (
        500, "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")
    code, body = await _evict(api, namespace, "missing")
    assert (code, body["message"]) == (404, 'pods "missing" not found')


async def test_the_budget_follows_scale_and_readiness(api, kubectl, namespace: str) -> None:  # type: ignore[no-untyped-def]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}, "annotations": SIMULATE},
                                        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}}}}
    kubectl("apply", "-f", "-", input=json.dumps(deployment))
    kubectl("create", "pdb", "web", "--selector=app=web", "--max-unavailable=1")

    async def numbers() -> tuple[Any, ...]:
        status = await _status(api, namespace)
        condition = next((c for c in status.get("conditions") or () if c["type"] == "DisruptionAllowed"), {})
        return (status.get("expectedPods"), status.get("desiredHealthy"), status.get("currentHealthy"),
                status.get("disruptionsAllowed"), condition.get("reason"))

    async def reaches(expected: tuple[Any, ...]) -> bool:
        return await numbers() == expected

    await async_until(lambda: reaches((3, 2, 3, 1, "SufficientPods")), what="3 pods, 1 disruption allowed")
    row = kubectl("get", "pdb", "web", "--no-headers").stdout.split()
    assert row[:4] == ["web", "N/A", "1", "1"], row  # NAME, MIN AVAILABLE, MAX UNAVAILABLE, ALLOWED DISRUPTIONS

    # Scaling the Deployment moves the expected count at once, before the new pods exist.
    kubectl("scale", "deployment/web", "--replicas=5")
    await async_until(lambda: reaches((5, 4, 5, 1, "SufficientPods")), what="5 pods expected and healthy")

    # A pod that turns unready is no longer healthy: the budget has nothing left to give.
    pods = [p async for p in api.get("pods", namespace=namespace, label_selector={"app": "web"})]
    victim = pods[0]
    async with api.call_api("PATCH", version="v1", base="/api", namespace=namespace,
                            url=f"pods/{victim.name}/status", content=json.dumps(
                                {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                            headers={"Content-Type": "application/merge-patch+json"}):
        pass
    await async_until(lambda: reaches((5, 4, 4, 0, "InsufficientPods")), what="1 pod unready, nothing allowed")
    # Evicting the unready pod is free while the budget is met; evicting a ready one is refused.
    code, _ = await _evict(api, namespace, pods[1].name)
    assert code == 429
    code, body = await _evict(api, namespace, victim.name)
    assert code == 201, body
    await async_until(lambda: reaches((5, 4, 5, 1, "SufficientPods")), what="the replacement counted")

    # Scaling down shrinks the expectation with it.
    kubectl("scale", "deployment/web", "--replicas=2")
    await async_until(lambda: reaches((2, 1, 2, 1, "SufficientPods")), what="2 pods expected")


def test_evicting_needs_create_on_pods_eviction(kube, namespace: str) -> None:  # type: ignore[no-untyped-def]
    kube.kubectl("-n", namespace, "create", "serviceaccount", "drainer")
    kube.kubectl("-n", namespace, "create", "role", "reader", "--verb=get,list", "--resource=pods")
    kube.kubectl("-n", namespace, "create", "rolebinding", "drainer-reads", "--role=reader",
                 f"--serviceaccount={namespace}:drainer")
    code, _ = kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", _pod("p", namespace))
    assert code == 201
    kubeconfig = kube.service_account_kubeconfig(namespace, "drainer")

    async def evict() -> tuple[int, dict[str, Any]]:
        api = await kr8s.asyncio.api(kubeconfig=str(kubeconfig))
        return await _evict(api, namespace, "p")

    code, body = asyncio.run(evict())
    assert code == 403
    assert body["message"] == (f'pods "p" is forbidden: User "system:serviceaccount:{namespace}:drainer" cannot '
                               f'create resource "pods/eviction" in API group "" in the namespace "{namespace}"')
    kube.kubectl("-n", namespace, "create", "role", "evictor", "--verb=create", "--resource=pods/eviction")
    kube.kubectl("-n", namespace, "create", "rolebinding", "drainer-evicts", "--role=evictor",
                 f"--serviceaccount={namespace}:drainer")
    until(lambda: asyncio.run(evict())[0] == 201, what="the eviction allowed once the Role grants it")
    code, _ = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/p")
    assert code in (200, 404)  # deleting gracefully, or already gone
