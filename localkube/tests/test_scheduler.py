"""The scheduler and node controller inside a running LocalKube: binding, Unschedulable, retries, NotReady."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from localkube.apiserver.core import ApiCore
from localkube.apiserver.discovery import DEFAULT_VERSION, release
from localkube.cluster import LocalKube
from localkube.controllers.nodes import NodeConfig, NodeController

pytestmark = pytest.mark.localkube_only

SMALL = {"cpu": "2", "memory": "4Gi", "pods": "10", "ephemeral-storage": "10Gi"}
GPU_MESSAGE = ("0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: "
               "1 No preemption victims found for incoming pod..")


async def wait_for(check: Callable[[], Any], within: float = 10.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy, failing after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Cluster:
    kube: LocalKube
    nodes: NodeController

    @property
    def core(self) -> ApiCore:
        return self.kube.core

    def create_pod(self, name: str, **spec: Any) -> dict[str, Any]:
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "busybox", **spec.pop("container", {})}], **spec}}
        return self.core.create(self.core.kind_of(("", "pods")), "default", body)[0]

    def pod(self, name: str) -> dict[str, Any] | None:
        return self.core.store.get(("", "pods"), "default", name)

    def node_of(self, name: str) -> str | None:
        pod = self.pod(name)
        return (pod or {}).get("spec", {}).get("nodeName")

    def scheduled_condition(self, name: str) -> dict[str, Any] | None:
        for cond in ((self.pod(name) or {}).get("status") or {}).get("conditions") or ():
            if cond["type"] == "PodScheduled":
                return cond
        return None

    def events_for(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.core.store.list(("", "events"), "default")
                if e["involvedObject"]["name"] == name and e["reason"] == "FailedScheduling"]


@contextlib.asynccontextmanager
async def cluster(*nodes: NodeConfig) -> AsyncIterator[Cluster]:
    async with LocalKube(run_pods=False, nodes=nodes or None) as kube:
        yield Cluster(kube, kube.nodes)


async def test_default_node_is_registered_like_a_kubelet_would() -> None:
    async with cluster() as c:
        node = c.core.store.get(("", "nodes"), "", "localkube-node")
        assert node is not None
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "localkube-node"
        assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
        status = node["status"]
        assert status["allocatable"] == status["capacity"] == {"cpu": "64", "memory": "256Gi", "pods": "5000",
                                                                "ephemeral-storage": "100Gi"}
        ready = next(x for x in status["conditions"] if x["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
        assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
        assert status["nodeInfo"]["kubeletVersion"] == release(DEFAULT_VERSION)
        assert status["nodeInfo"]["containerRuntimeVersion"] == "localkube://0.1"


async def test_simulated_node_is_annotated() -> None:
    async with cluster(NodeConfig(name="sim", simulate=True)) as c:
        node = c.core.store.get(("", "nodes"), "", "sim")
        assert node["metadata"]["annotations"]["localkube.dask.org/simulate"] == "true"


async def test_binds_with_pod_scheduled_condition() -> None:
    async with cluster() as c:
        c.create_pod("web")
        assert await wait_for(lambda: c.node_of("web"), what="binding") == "localkube-node"
        cond = c.scheduled_condition("web")
        assert cond is not None and cond["status"] == "True"


async def test_other_schedulers_pods_are_left_alone() -> None:
    async with cluster() as c:
        c.create_pod("mine")
        c.create_pod("theirs", schedulerName="volcano")
        await wait_for(lambda: c.node_of("mine"), what="the default-scheduler pod to bind")
        assert c.node_of("theirs") is None
        assert c.scheduled_condition("theirs") is None


async def test_node_selector_picks_the_labelled_node() -> None:
    async with cluster(NodeConfig(name="plain"), NodeConfig(name="fast", labels={"disk": "ssd"})) as c:
        for i in range(3):
            c.create_pod(f"p{i}", nodeSelector={"disk": "ssd"})
        for i in range(3):
            assert await wait_for(lambda i=i: c.node_of(f"p{i}"), what="binding") == "fast"


async def test_taints_and_tolerations() -> None:
    taint = {"key": "dedicated", "value": "dask", "effect": "NoSchedule"}
    async with cluster(NodeConfig(name="tainted", taints=(taint,))) as c:
        c.create_pod("intolerant")
        c.create_pod("tolerant", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "dask",
                                               "effect": "NoSchedule"}])
        assert await wait_for(lambda: c.node_of("tolerant"), what="tolerant pod binding") == "tainted"
        cond = await wait_for(lambda: (c.scheduled_condition("intolerant") or {}).get("reason") == "Unschedulable"
                              and c.scheduled_condition("intolerant"), what="Unschedulable")
        assert cond["message"].startswith("0/1 nodes are available: 1 node(s) had untolerated taint "
                                          "{dedicated: dask}.")
        assert c.node_of("intolerant") is None


async def test_gpu_pod_waits_for_a_gpu_node() -> None:
    async with cluster(NodeConfig(name="cpu-only", capacity=SMALL)) as c:
        c.create_pod("trainer", container={"resources": {"limits": {"nvidia.com/gpu": "1"}}})
        cond = await wait_for(lambda: (c.scheduled_condition("trainer") or {}).get("status") == "False"
                              and c.scheduled_condition("trainer"), what="Unschedulable")
        assert (cond["reason"], cond["message"]) == ("Unschedulable", GPU_MESSAGE)
        assert c.pod("trainer")["status"]["phase"] == "Pending"
        [event] = await wait_for(lambda: c.events_for("trainer"), what="FailedScheduling event")
        assert event["type"] == "Warning"
        assert event["message"] == GPU_MESSAGE
        assert event["source"] == {"component": "default-scheduler"}
        assert event["reportingComponent"] == "default-scheduler"
        assert event["involvedObject"]["uid"] == c.pod("trainer")["metadata"]["uid"]
        assert event["count"] == 1 and event["firstTimestamp"] and event["lastTimestamp"]

        c.nodes.add_node(NodeConfig(name="gpu", capacity={**SMALL, "nvidia.com/gpu": "1"}))
        assert await wait_for(lambda: c.node_of("trainer"), what="binding after the GPU node came") == "gpu"
        cond = c.scheduled_condition("trainer")
        assert cond is not None and cond["status"] == "True"
        # The GPU is now taken: a second GPU pod has to wait.
        c.create_pod("trainer2", container={"resources": {"limits": {"nvidia.com/gpu": "1"}}})
        cond = await wait_for(lambda: (c.scheduled_condition("trainer2") or {}).get("status") == "False"
                              and c.scheduled_condition("trainer2"), what="second pod Unschedulable")
        assert cond["message"].startswith("0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")
        assert len(c.events_for("trainer")) == 1  # nothing more was written for the first one


async def test_resources_are_freed_by_deletion_and_by_finishing() -> None:
    async with cluster(NodeConfig(name="small", capacity=SMALL)) as c:
        # More than half of what is left once kube-system's two CoreDNS pods (100m each) are bound, as on a real node.
        big = {"resources": {"requests": {"cpu": "1500m"}}}
        c.create_pod("first", container=big)
        await wait_for(lambda: c.node_of("first"), what="first binding")
        c.create_pod("second", container=big)
        cond = await wait_for(lambda: (c.scheduled_condition("second") or {}).get("status") == "False"
                              and c.scheduled_condition("second"), what="second Unschedulable")
        assert "1 Insufficient cpu" in cond["message"]
        pods = c.core.kind_of(("", "pods"))
        c.core.delete(pods, "default", "first", grace_period=0)
        assert await wait_for(lambda: c.node_of("second"), what="binding after deletion") == "small"

        c.create_pod("third", container=big)
        await wait_for(lambda: (c.scheduled_condition("third") or {}).get("status") == "False",
                       what="third Unschedulable")
        c.core.mutate(pods, "default", "second", lambda p: p["status"].update(phase="Succeeded"),
                      subresource="status")
        assert await wait_for(lambda: c.node_of("third"), what="binding after the pod finished") == "small"


async def test_limits_count_as_requests() -> None:
    async with cluster(NodeConfig(name="small", capacity=SMALL)) as c:
        c.create_pod("greedy", container={"resources": {"limits": {"memory": "8Gi"}}})
        cond = await wait_for(lambda: (c.scheduled_condition("greedy") or {}).get("status") == "False"
                              and c.scheduled_condition("greedy"), what="Unschedulable")
        assert "1 Insufficient memory" in cond["message"]


async def test_not_ready_node_is_avoided() -> None:
    async with cluster(NodeConfig(name="a"), NodeConfig(name="b")) as c:
        c.nodes.set_ready("a", False)
        node_a = c.core.store.get(("", "nodes"), "", "a")
        assert {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"} in node_a["spec"]["taints"]
        assert next(x for x in node_a["status"]["conditions"] if x["type"] == "Ready")["status"] == "False"
        for i in range(4):
            c.create_pod(f"p{i}")
        for i in range(4):
            assert await wait_for(lambda i=i: c.node_of(f"p{i}"), what="binding") == "b"

        c.nodes.set_ready("b", False)
        c.create_pod("stuck")
        cond = await wait_for(lambda: (c.scheduled_condition("stuck") or {}).get("status") == "False"
                              and c.scheduled_condition("stuck"), what="Unschedulable")
        assert cond["message"].startswith(
            "0/2 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.")
        c.nodes.set_ready("a", True)
        assert await wait_for(lambda: c.node_of("stuck"), what="binding once a node is Ready again") == "a"
        assert "taints" not in c.core.store.get(("", "nodes"), "", "a")["spec"]
