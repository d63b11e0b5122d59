"""DaemonSets in a LocalKube of several nodes, through the real kubectl: one pod per eligible node (selectors,
taints, cordons), nodes coming and going, a rolling update that `kubectl rollout status` follows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from localkube.cluster import LocalKube
from localkube.controllers.nodes import NodeConfig
from localkube.testing import async_until
from tests.test_workloads import _kubectl

pytestmark = pytest.mark.localkube_only

PODS, DS = ("", "pods"), ("apps", "daemonsets")
AGENT = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
         "spec": {"selector": {"matchLabels": {"app": "agent"}},
                  "template": {"metadata": {"labels": {"app": "agent"}},
                               "spec": {"nodeSelector": {"role": "worker"},
                                        "containers": [{"name": "agent", "image": "registry.k8s.io/pause:3.9"}]}}}}


def _nodes() -> list[NodeConfig]:
    worker = {"role": "worker"}
    return [NodeConfig("a", labels=worker, simulate=True), NodeConfig("b", labels=worker, simulate=True),
            NodeConfig("c", labels=worker, simulate=True,
                       taints=({"key": "dedicated", "value": "db", "effect": "NoSchedule"},)),
            NodeConfig("control", simulate=True)]


def _placement(kube: LocalKube) -> dict[str, str]:
    """node -> pod name, for live pods of the DaemonSet that are bound."""
    return {p["spec"]["nodeName"]: p["metadata"]["name"] for p in kube.store.list(PODS, "default")
            if (p["metadata"].get("labels") or {}).get("app") == "agent" and p["spec"].get("nodeName")
            and not p["metadata"].get("deletionTimestamp")}


def _status(kube: LocalKube) -> dict[str, Any]:
    return (kube.store.get(DS, "default", "agent") or {}).get("status") or {}


async def test_one_pod_per_eligible_node_following_nodes_and_rollouts(tmp_path: Path) -> None:
    async with LocalKube(nodes=_nodes()) as kube:
        manifest = tmp_path / "agent.yaml"
        manifest.write_text(yaml.safe_dump(AGENT))
        code, out = await _kubectl(kube, tmp_path, "apply", "-f", str(manifest))
        assert code == 0, out
        code, out = await _kubectl(kube, tmp_path, "rollout", "status", "daemonset/agent", "--timeout=60s")
        assert code == 0, out
        assert out.strip().endswith('daemon set "agent" successfully rolled out')
        # Not on the tainted node c, nor on the control node its nodeSelector leaves out.
        assert set(_placement(kube)) == {"a", "b"}
        status = _status(kube)
        assert (status["desiredNumberScheduled"], status["currentNumberScheduled"], status["numberReady"],
                status["numberAvailable"], status["updatedNumberScheduled"], status["numberMisscheduled"]) == (
            2, 2, 2, 2, 2, 0)
        pod = kube.store.get(PODS, "default", _placement(kube)["a"])
        assert pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}]}
        assert {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"} in \
            pod["spec"]["tolerations"]

        # A node added gets its pod; a removed one loses it; a cordoned one keeps it (daemons tolerate cordons).
        kube.nodes.add_node(NodeConfig("d", labels={"role": "worker"}, simulate=True))
        await async_until(lambda: set(_placement(kube)) == {"a", "b", "d"}, what="a pod on the new node d")
        kube.nodes.remove_node("a")
        await async_until(lambda: set(_placement(kube)) == {"b", "d"} and _status(kube).get(
            "desiredNumberScheduled") == 2, what="the pod of removed node a gone")
        code, out = await _kubectl(kube, tmp_path, "cordon", "b")
        assert code == 0, out
        code, out = await _kubectl(kube, tmp_path, "label", "node", "d", "role-")
        assert code == 0, out
        await async_until(lambda: set(_placement(kube)) == {"b"}, what="d's pod gone with its label")

        # A template change rolls out node by node, through a second ControllerRevision.
        before = _placement(kube)["b"]
        code, out = await _kubectl(kube, tmp_path, "set", "image", "daemonset/agent",
                                   "agent=registry.k8s.io/pause:3.10")
        assert code == 0, out
        code, out = await _kubectl(kube, tmp_path, "rollout", "status", "daemonset/agent", "--timeout=60s")
        assert code == 0, out
        after = kube.store.get(PODS, "default", _placement(kube)["b"])
        assert after["metadata"]["name"] != before
        assert after["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.10"
        code, out = await _kubectl(kube, tmp_path, "get", "controllerrevisions", "-o", "json")
        revisions = json.loads(out)["items"]
        assert sorted(r["revision"] for r in revisions) == [1, 2]
        newest = max(revisions, key=lambda r: r["revision"])
        assert after["metadata"]["labels"]["controller-revision-hash"] == newest["metadata"]["labels"][
            "controller-revision-hash"]

        code, out = await _kubectl(kube, tmp_path, "delete", "daemonset", "agent")
        assert code == 0, out
        await async_until(lambda: not _placement(kube) and not kube.store.list(("apps", "controllerrevisions")),
                          what="pods and revisions collected")
