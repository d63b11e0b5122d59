"""Fault hooks (for the reliability suite) and simulated pods, on LocalKubes of their own."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import kr8s.asyncio
import pytest
from kr8s.asyncio.objects import ConfigMap

from localkube.cluster import LocalKube
from localkube.controllers.nodes import NodeConfig
from localkube.testing import async_until

pytestmark = pytest.mark.localkube_only


def _pod(name: str, annotations: dict[str, str] | None = None, command: list[str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "command": command or ["python", "-c", "import time; time.sleep(600)"]}]}}


def _running(kube: LocalKube, ns: str = "default") -> list[str]:
    return [p["metadata"]["name"] for p in kube.store.list(("", "pods"), ns)
            if (p.get("status") or {}).get("phase") == "Running"
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]


async def test_server_wide_simulated_pods_run_without_processes() -> None:
    async with (LocalKube(simulate_pods=True, http_port=0) as kube,
                aiohttp.ClientSession(base_url=kube.http_url) as http):
        start = time.monotonic()
        for i in range(300):
            async with http.post("/api/v1/namespaces/default/pods", json=_pod(f"p{i}")) as resp:
                assert resp.status == 201
        await async_until(lambda: len(_running(kube)) == 300, what="300 simulated pods Running")
        elapsed = time.monotonic() - start
        assert kube.kubelet is not None and kube.kubelet.workers == {}  # no pod worker, so no process
        print(f"300 simulated pods Running and Ready in {elapsed:.2f}s")


async def test_per_pod_and_per_node_simulation_next_to_real_pods() -> None:
    nodes = [NodeConfig(name="real"), NodeConfig(name="fake", simulate=True, labels={"kind": "fake"})]
    async with LocalKube(nodes=nodes) as kube:
        core = kube.core
        pods = core.kind_of(("", "pods"))
        core.create(pods, "default", _pod("by-annotation", {"localkube.dask.org/simulate": "true"},
                                          command=["definitely-not-a-program"]))
        on_fake = _pod("by-node", command=["definitely-not-a-program"])
        on_fake["spec"]["nodeSelector"] = {"kind": "fake"}
        core.create(pods, "default", on_fake)
        real = _pod("real", command=["python", "-c", "print('ran for real')"])
        real["spec"]["restartPolicy"] = "Never"
        real["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "real"}
        core.create(pods, "default", real)
        await async_until(lambda: {"by-annotation", "by-node"} <= set(_running(kube)), what="simulated pods")
        phase = lambda: (kube.store.get(("", "pods"), "default", "real") or {}).get("status", {}).get("phase")  # noqa: E731
        await async_until(lambda: phase() == "Succeeded", what="the real pod to run")


async def test_fail_requests_then_recover_and_close_watches() -> None:
    async with LocalKube(run_pods=False) as kube:
        api = await kr8s.asyncio.api(kubeconfig=str(kube.kubeconfig))
        kube.fail_requests(r"/configmaps", status=503, count=2, method="POST")
        for _ in range(2):
            with pytest.raises(kr8s.ServerError) as err:
                await ConfigMap({"metadata": {"name": "x", "namespace": "default"}}, api=api).create()
            assert err.value.response.status_code == 503
        await ConfigMap({"metadata": {"name": "x", "namespace": "default"}}, api=api).create()  # third one passes
        assert kube.request_counts()["kr8s"] >= 3

        async def watch() -> list[str]:
            seen = []
            async for event, _obj in api.watch("configmaps", namespace="default"):
                seen.append(event)
            return seen  # the stream ended: kr8s does not resume, the caller must re-establish

        task = asyncio.create_task(watch())
        await async_until(lambda: len(kube.store._watchers) == 1, what="the watch to be established")
        assert kube.close_watches() == 1
        assert await asyncio.wait_for(task, 10) == ["ADDED"]


async def test_stalled_requests_and_api_restart_keep_objects() -> None:
    async with LocalKube(run_pods=False, http_port=0) as kube, aiohttp.ClientSession() as http:
        kube.fail_requests(r"/namespaces/default/secrets$", status=None, delay=0.5, count=1, method="GET")
        start = time.monotonic()
        async with http.get(f"{kube.http_url}/api/v1/namespaces/default/secrets") as resp:
            assert resp.status == 200
        assert time.monotonic() - start >= 0.5
        async with http.post(f"{kube.http_url}/api/v1/namespaces/default/configmaps",
                             json={"metadata": {"name": "kept"}}) as resp:
            assert resp.status == 201
        port = kube.port
        watch = await http.get(f"{kube.http_url}/api/v1/namespaces/default/configmaps?watch=true")
        await kube.restart_api()
        assert kube.port == port
        assert await asyncio.wait_for(watch.content.read(), 10) is not None  # the old stream ended
        watch.close()
        async with aiohttp.ClientSession() as fresh, fresh.get(
                f"{kube.http_url}/api/v1/namespaces/default/configmaps/kept") as resp:
            assert resp.status == 200 and json.loads(await resp.text())["metadata"]["name"] == "kept"


async def test_clients_cut_off_wait_for_the_heal_and_requests_given_up_are_never_served() -> None:
    async with LocalKube(run_pods=False, http_port=0) as kube:
        cut_off, other = (aiohttp.ClientSession(base_url=kube.http_url, headers={"User-Agent": agent})
                          for agent in ("kopf/1.0", "kubectl/v1.34"))
        async with cut_off, other:
            configmaps = "/api/v1/namespaces/default/configmaps"
            watch = await cut_off.get(f"{configmaps}?watch=true")
            await async_until(lambda: len(kube.store._watchers) == 1, what="the watch to be established")
            cut = kube.cut_off_clients("kopf/")
            # Other clients are served meanwhile; the cut-off client's watch keeps what happens for later.
            async with other.post(configmaps, json={"metadata": {"name": "during"}}) as resp:
                assert resp.status == 201
            held = asyncio.create_task(cut_off.get(f"{configmaps}/during"))
            with pytest.raises(TimeoutError):  # a client that gives up: its request never reaches the server
                async with cut_off.post(configmaps, json={"metadata": {"name": "lost"}},
                                        timeout=aiohttp.ClientTimeout(total=0.5)):
                    pass
            await async_until(lambda: cut.abandoned == 1 and cut.held >= 3, what="the held traffic")
            assert not held.done()
            kube.reconnect_clients()
            resp = await asyncio.wait_for(held, 10)
            assert resp.status == 200 and (await resp.json())["metadata"]["name"] == "during"
            first = json.loads(await asyncio.wait_for(watch.content.readline(), 10))
            assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "during")
            watch.close()
            async with other.get(f"{configmaps}/lost") as resp:
                assert resp.status == 404
            assert kube.server.cut is None


async def test_kill_a_pod_process_and_mark_a_node_not_ready() -> None:
    async with LocalKube() as kube:
        core = kube.core
        pod = _pod("victim", command=["python", "-c", "import time; time.sleep(600)"])
        core.create(core.kind_of(("", "pods")), "default", pod)
        await async_until(lambda: "victim" in _running(kube), what="victim running")
        assert kube.kubelet is not None
        kube.kubelet.kill_container("default", "victim")

        def restarts() -> int:
            status = (kube.store.get(("", "pods"), "default", "victim") or {}).get("status", {})
            return sum(c.get("restartCount", 0) for c in status.get("containerStatuses", []))

        await async_until(lambda: restarts() == 1 and "victim" in _running(kube), what="restart after kill")
        kube.nodes.set_ready("localkube-node", False)
        core.create(core.kind_of(("", "pods")), "default", _pod("late"))
        await async_until(lambda: any(c.get("reason") == "Unschedulable" for c in (kube.store.get(
            ("", "pods"), "default", "late") or {}).get("status", {}).get("conditions", [])), what="Unschedulable")
        kube.nodes.set_ready("localkube-node", True)
        await async_until(lambda: "late" in _running(kube), what="scheduled once Ready again")
