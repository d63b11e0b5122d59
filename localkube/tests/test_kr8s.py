"""kr8s (the client the product uses) against LocalKube, with its default settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import kr8s
import kr8s.asyncio
import pytest
from kr8s.asyncio.objects import ConfigMap, Pod, new_class

MANIFESTS = Path(__file__).parent / "manifests"

Widget = new_class("Widget", "example.com/v1", namespaced=True, scalable=True, asyncio=True)


@pytest.fixture(scope="module")
def widget_crd(kube):  # type: ignore[no-untyped-def]
    kube.kubectl("apply", "-f", str(MANIFESTS / "widget-crd.yaml"))
    kube.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s")


@pytest.fixture
async def api(kube):  # type: ignore[no-untyped-def]
    return await kr8s.asyncio.api(kubeconfig=str(kube.kubeconfig))


def _pod(name: str, namespace: str, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace,
            "labels": labels or {}}, "spec": {"containers": [{"name": "c", "image": "python:3.11",
                                                             "command": ["sleep", "60"]}]}}


async def test_create_get_list_with_selectors_and_delete(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    a = await Pod(_pod("a", namespace, {"app": "x", "tier": "1"}), api=api)
    await a.create()
    assert a.metadata.uid and a.metadata.resourceVersion
    await Pod(_pod("b", namespace, {"app": "y"}), api=api).create()
    got = await Pod.get("a", namespace=namespace, api=api)
    assert got.metadata.uid == a.metadata.uid
    by_label = [p.name async for p in api.get("pods", namespace=namespace, label_selector={"app": "x"})]
    assert by_label == ["a"]
    by_field = [p.name async for p in api.get("pods", namespace=namespace, field_selector="metadata.name=b")]
    assert by_field == ["b"]
    set_based = [p.name async for p in api.get("pods", namespace=namespace, label_selector="app in (x,y),!tier")]
    assert set_based == ["b"]
    await a.delete(force=True)  # grace 0: a scheduled pod otherwise waits for its kubelet
    assert not await a.exists()
    with pytest.raises(kr8s.NotFoundError):
        await a.refresh()


async def test_duplicate_create_and_invalid_pod_messages(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    await Pod(_pod("dup", namespace), api=api).create()
    with pytest.raises(kr8s.ServerError, match="already exists"):
        await Pod(_pod("dup", namespace), api=api).create()
    bad = _pod("bad", namespace)
    del bad["spec"]["containers"][0]["name"]
    with pytest.raises(kr8s.ServerError, match="Required value"):
        await Pod(bad, api=api).create()


async def test_merge_and_json_patch_label_annotate(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    cm = await ConfigMap({"metadata": {"name": "cm", "namespace": namespace}, "data": {"a": "1"}}, api=api)
    await cm.create()
    await cm.patch({"data": {"b": "2"}})
    await cm.label(color="blue")
    await cm.annotate({"note": "hi"})
    await cm.patch([{"op": "replace", "path": "/data/a", "value": "3"}], type="json")
    await cm.refresh()
    assert cm.raw["data"] == {"a": "3", "b": "2"}
    assert cm.labels == {"color": "blue"} and cm.annotations["note"] == "hi"
    await cm.remove_label("color")
    await cm.refresh()
    assert "color" not in cm.labels


async def test_stale_resource_version_conflicts(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    cm = await ConfigMap({"metadata": {"name": "cm", "namespace": namespace}, "data": {"a": "1"}}, api=api)
    await cm.create()
    stale = cm.metadata.resourceVersion
    await cm.patch({"data": {"a": "2"}})
    with pytest.raises(kr8s.ServerError) as err:
        await cm.patch({"metadata": {"resourceVersion": stale}, "data": {"a": "3"}})
    assert err.value.response.status_code == 409
    with pytest.raises(kr8s.ServerError) as err:
        await cm.patch([{"op": "test", "path": "/metadata/resourceVersion", "value": stale},
                        {"op": "replace", "path": "/data/a", "value": "4"}], type="json")
    assert err.value.response.status_code == 422


async def test_watch_from_now_and_from_a_resource_version(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    cm = await ConfigMap({"metadata": {"name": "w", "namespace": namespace}, "data": {}}, api=api)
    await cm.create()
    created_rv = cm.metadata.resourceVersion

    async def collect(since: str | None, out: asyncio.Queue[tuple[str, str]]) -> None:
        async for event, obj in api.watch("configmaps", namespace=namespace, since=since):
            await out.put((event, obj.raw["data"].get("x", "")))
            if event == "DELETED":
                return

    now_q: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    resumed_q: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    tasks = [asyncio.create_task(collect(None, now_q)), asyncio.create_task(collect(created_rv, resumed_q))]
    # A watch without a resourceVersion starts with the current state: once that arrives, it is live.
    assert await asyncio.wait_for(now_q.get(), 10) == ("ADDED", "")
    await cm.patch({"data": {"x": "1"}})
    await cm.delete()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert [now_q.get_nowait() for _ in range(now_q.qsize())] == [("MODIFIED", "1"), ("DELETED", "1")]
    assert [resumed_q.get_nowait() for _ in range(resumed_q.qsize())] == [("MODIFIED", "1"), ("DELETED", "1")]


async def test_adopt_then_owner_deletion_collects_child(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    owner = await ConfigMap({"metadata": {"name": "owner", "namespace": namespace}}, api=api)
    await owner.create()
    child = await ConfigMap({"metadata": {"name": "child", "namespace": namespace}}, api=api)
    await child.create()
    await owner.adopt(child)
    await child.refresh()
    assert child.metadata.ownerReferences[0]["uid"] == owner.metadata.uid
    await owner.delete()
    await child.wait("delete", timeout=10)
    assert not await child.exists()


async def test_custom_resource_class_status_isolation_and_scale(api, namespace: str, widget_crd) -> None:  # type: ignore[no-untyped-def]
    w = await Widget({"apiVersion": "example.com/v1", "kind": "Widget",
                      "metadata": {"name": "w", "namespace": namespace}, "spec": {"size": "small"},
                      "status": {"phase": "ignored on create"}}, api=api)
    await w.create()
    assert w.raw["spec"]["replicas"] == 1  # schema default
    assert "status" not in w.raw
    assert w.metadata.generation == 1
    await w.patch({"status": {"phase": "Ready"}}, subresource="status")
    await w.patch({"status": {"phase": "Sneaky"}})  # main resource ignores status
    await w.refresh()
    assert w.raw["status"]["phase"] == "Ready"
    assert w.metadata.generation == 1  # neither status nor metadata bumps generation
    await w.scale(3)
    await w.refresh()
    assert w.raw["spec"]["replicas"] == 3 and w.metadata.generation == 2
    listed = [o.name async for o in api.get("widgets", namespace=namespace)]
    assert listed == ["w"]


async def test_wait_for_condition_and_jsonpath(api, namespace: str, widget_crd) -> None:  # type: ignore[no-untyped-def]
    w = await Widget({"apiVersion": "example.com/v1", "kind": "Widget",
                      "metadata": {"name": "w", "namespace": namespace}, "spec": {"size": "small"}}, api=api)
    await w.create()
    # kr8s's condition check needs a status to read (on any cluster).
    await w.patch({"status": {"phase": "Down", "conditions": [{"type": "Ready", "status": "False"}]}},
                  subresource="status")

    async def later() -> None:
        await w.patch({"status": {"phase": "Up", "conditions": [{"type": "Ready", "status": "True"}]}},
                      subresource="status")

    task = asyncio.create_task(later())
    await w.wait(["condition=Ready", "jsonpath='{.status.phase}'=Up"], mode="all", timeout=10)
    await task


async def test_whoami_and_access_reviews(api, kubectl) -> None:  # type: ignore[no-untyped-def]
    assert await api.whoami() == "kubernetes-admin"
    assert kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    assert "kubernetes-admin" in kubectl("auth", "whoami").stdout
