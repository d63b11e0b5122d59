"""Cordon and `kubectl drain` on a LocalKube of two nodes, with every kubectl at hand: the scheduler refuses a
cordoned node with its real message, and a drain evicts through the Eviction API, retrying while a
PodDisruptionBudget says no, until every pod runs elsewhere. Pods are simulated (no processes)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from localkube.apiserver.budgets import pod_ready
from localkube.apiserver.store import Event
from localkube.cluster import LocalKube
from localkube.controllers.nodes import NodeConfig
from localkube.testing import async_until, kubectl_binaries

pytestmark = pytest.mark.localkube_only

KUBECTLS = kubectl_binaries()
PODS, NODES = ("", "pods"), ("", "nodes")
CORDON_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
RETRY = "(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget."

WEB = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
       "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": "nginx",
                                                      "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}],
                                      "volumes": [{"name": "cache", "emptyDir": {}}]}}}}
BUDGET = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "default"},
          "spec": {"minAvailable": 4, "selector": {"matchLabels": {"app": "web"}}}}
AGENT = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
         "spec": {"selector": {"matchLabels": {"app": "agent"}},
                  "template": {"metadata": {"labels": {"app": "agent"}},
                               "spec": {"containers": [{"name": "agent", "image": "registry.k8s.io/pause:3.9"}]}}}}


@pytest.fixture(params=sorted(KUBECTLS))
def kubectl_path(request: pytest.FixtureRequest) -> Path:
    return KUBECTLS[request.param]


def _two_nodes() -> LocalKube:
    return LocalKube(nodes=[NodeConfig("a", simulate=True), NodeConfig("b", simulate=True)])


async def _start(kube: LocalKube, binary: Path, cache: Path, *args: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig), KUBECACHEDIR=str(cache))
    return await asyncio.create_subprocess_exec(binary, *args, env=env, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def _kubectl(kube: LocalKube, binary: Path, cache: Path, *args: str, input: str | None = None
                   ) -> tuple[int, str]:
    proc = await _start(kube, binary, cache, *args)
    async with asyncio.timeout(60):
        out, _ = await proc.communicate(input.encode() if input else None)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def _web_pods(kube: LocalKube) -> list[dict[str, Any]]:
    return [p for p in kube.store.list(PODS, "default") if (p["metadata"].get("labels") or {}).get("app") == "web"]


def _healthy(kube: LocalKube) -> int:
    return sum(1 for p in _web_pods(kube) if pod_ready(p) and not p["metadata"].get("deletionTimestamp"))


def _on(kube: LocalKube, node: str, app: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in kube.store.list(PODS, "default")
                  if (p["metadata"].get("labels") or {}).get("app") == app and p["spec"].get("nodeName") == node
                  and not p["metadata"].get("deletionTimestamp"))


def _taints(kube: LocalKube, node: str) -> list[dict[str, str]]:
    return [{k: t[k] for k in ("key", "effect")} for t in (kube.store.get(NODES, "", node) or {})
            .get("spec", {}).get("taints") or ()]


async def test_cordon_keeps_new_pods_off_with_the_scheduler_message(tmp_path: Path, kubectl_path: Path) -> None:
    async with _two_nodes() as kube:
        for node in ("a", "b"):
            code, out = await _kubectl(kube, kubectl_path, tmp_path, "cordon", node)
            assert (code, out.strip()) == (0, f"node/{node} cordoned")
        await async_until(lambda: _taints(kube, "a") == [CORDON_TAINT] == _taints(kube, "b"),
                          what="the node controller's unschedulable taints")
        code, out = await _kubectl(kube, kubectl_path, tmp_path, "get", "node", "a", "--no-headers")
        assert out.split()[1] == "Ready,SchedulingDisabled", out
        code, out = await _kubectl(kube, kubectl_path, tmp_path, "run", "p", "--image=nginx")
        assert code == 0, out

        def scheduled_condition() -> dict[str, Any]:
            pod = kube.store.get(PODS, "default", "p") or {}
            return next((c for c in (pod.get("status") or {}).get("conditions") or ()
                         if c["type"] == "PodScheduled"), {})

        await async_until(lambda: scheduled_condition().get("reason") == "Unschedulable", what="p unschedulable")
        assert scheduled_condition()["message"] == (
            "0/2 nodes are available: 2 node(s) were unschedulable. preemption: 0/2 nodes are available: "
            "2 Preemption is not helpful for scheduling..")

        code, out = await _kubectl(kube, kubectl_path, tmp_path, "uncordon", "b")
        assert (code, out.strip()) == (0, "node/b uncordoned")
        await async_until(lambda: (kube.store.get(PODS, "default", "p") or {}).get("spec", {}).get("nodeName") == "b",
                          what="p bound to the uncordoned node")
        await async_until(lambda: _taints(kube, "b") == [] and _taints(kube, "a") == [CORDON_TAINT],
                          what="b's taint removed, a's kept")


async def test_drain_waits_for_the_budget_and_moves_every_pod(tmp_path: Path, kubectl_path: Path) -> None:
    async with _two_nodes() as kube:
        # Every web pod starts on a: b is cordoned while they are placed.
        code, out = await _kubectl(kube, kubectl_path, tmp_path, "cordon", "b")
        assert code == 0, out
        manifest = yaml.safe_dump_all([WEB, BUDGET, AGENT])
        code, out = await _kubectl(kube, kubectl_path, tmp_path, "apply", "-f", "-", input=manifest)
        assert code == 0, out
        code, out = await _kubectl(kube, kubectl_path, tmp_path, "rollout", "status", "deployment/web",
                                   "--timeout=60s")
        assert code == 0, out
        assert len(_on(kube, "a", "web")) == 4
        code, out = await _kubectl(kube, kubectl_path, tmp_path, "uncordon", "b")
        assert code == 0, out
        await async_until(lambda: _on(kube, "a", "agent") and _on(kube, "b", "agent"), what="an agent on each node")
        agent_on_a = _on(kube, "a", "agent")

        # The budget's guarantee is watched on every write from here on.
        lowest = [_healthy(kube)]

        def watch(event: Event) -> None:
            if event.key == PODS:
                lowest[0] = min(lowest[0], _healthy(kube))

        kube.store.add_listener(watch)
        drain = await _start(kube, kubectl_path, tmp_path, "drain", "a", "--ignore-daemonsets",
                             "--delete-emptydir-data", "--timeout=120s")
        assert drain.stdout is not None
        seen: list[str] = []
        async with asyncio.timeout(60):  # minAvailable 4 of 4: nothing may go yet
            while not any(RETRY in line for line in seen):
                seen.append((await drain.stdout.readline()).decode())
        retry = next(line for line in seen if RETRY in line)
        assert retry.startswith('error when evicting pods/"web-') and '-n "default" ' in retry, retry
        assert len(_on(kube, "a", "web")) == 4

        # Two more replicas (on b, as a is cordoned) give the budget room: the drain goes through.
        code, out = await _kubectl(kube, kubectl_path, tmp_path, "scale", "deployment/web", "--replicas=6")
        assert code == 0, out
        async with asyncio.timeout(90):
            rest, _ = await drain.communicate()
        output = "".join(seen) + rest.decode()
        assert drain.returncode == 0, output
        assert "node/a cordoned" in output
        assert f"Warning: ignoring DaemonSet-managed Pods: default/{agent_on_a[0]}" in output
        assert output.count("pod/web-") >= 4 and output.rstrip().endswith("node/a drained"), output

        kube.store.remove_listener(watch)
        assert lowest[0] >= 4, "the drain took the budget below minAvailable"
        await async_until(lambda: len(_on(kube, "b", "web")) == 6 and _healthy(kube) == 6,
                          what="every web pod rescheduled on b and ready")
        assert _on(kube, "a", "web") == []
        assert _on(kube, "a", "agent") == agent_on_a  # the DaemonSet's pod stays
        node = kube.store.get(NODES, "", "a") or {}
        assert node["spec"].get("unschedulable") is True and _taints(kube, "a") == [CORDON_TAINT]
