"""Node objects for LocalKube's machine: what a kubelet registers, and the NotReady fault.

A real cluster's nodes come from kubelets registering themselves; here the nodes are configured (one by default,
more for tests: a GPU node added at runtime, a tainted node). The scheduler reads capacity, labels, taints and
the Ready condition from these objects, and clients (kubectl get nodes, dask_kube's GPU checks) read them too.

`set_ready(name, False)` is the fault hook: it does what the kubelet and the node lifecycle controller do together
when a node goes bad (Ready=False plus the `not-ready` NoSchedule and NoExecute taints), so new pods avoid it.
"""

from __future__ import annotations

import copy
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..api import ApiCore
from ..errors import ApiError

Obj = dict[str, Any]

NODE_KEY = ("", "nodes")
SIMULATE_ANNOTATION = "localkube.dask.org/simulate"
# Every node LocalKube creates is served by its kubelet (which also serves any node carrying this label).
KUBELET_LABEL = "localkube.dask.org/kubelet"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
KUBELET_VERSION = "v1.32.0"

# Big enough for the operator benchmarks (1,000 simulated workers plus schedulers) on one node.
_DEFAULT_CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "5000", "ephemeral-storage": "100Gi"}
_PRESSURE = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class NodeConfig:
    name: str = "localkube-node"
    capacity: Mapping[str, str] = field(default_factory=lambda: dict(_DEFAULT_CAPACITY))
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, Any], ...] = ()
    simulate: bool = False  # pods here become Running without processes (read by the kubelet)


def _arch() -> str:
    machine = platform.machine().lower()
    return _ARCH.get(machine, machine or "amd64")


def ready_condition(ready: bool, now: str) -> Obj:
    if ready:
        return {"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}
    return {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
            "message": "container runtime network not ready: NetworkReady=false (localkube fault injected)",
            "lastHeartbeatTime": now, "lastTransitionTime": now}


def node_object(config: NodeConfig) -> Obj:
    """The Node as created (metadata and spec; status is written afterwards through its subresource)."""
    labels = {
        "kubernetes.io/hostname": config.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": _arch(),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": _arch(),
        KUBELET_LABEL: "true",
        **config.labels,
    }
    meta: Obj = {"name": config.name, "labels": labels}
    if config.simulate:
        meta["annotations"] = {SIMULATE_ANNOTATION: "true"}
    spec: Obj = {}
    if config.taints:
        spec["taints"] = [dict(t) for t in config.taints]
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec}


def node_status(config: NodeConfig, now: str) -> Obj:
    uname = os.uname()
    return {
        "capacity": dict(config.capacity),
        "allocatable": dict(config.capacity),
        "conditions": [
            *({"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": now,
               "lastTransitionTime": now} for t, r, m in _PRESSURE),
            ready_condition(True, now),
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": config.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": uname.release,
            "osImage": f"LocalKube ({uname.sysname} {uname.release})",
            "containerRuntimeVersion": "localkube://0.1",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": _arch(),
        },
    }


def plan_readiness(node: Mapping[str, Any], ready: bool, now: str) -> tuple[list[Obj], list[Obj]]:
    """The taints and conditions a node should have once it is (not) Ready; unchanged entries are kept as is."""
    taints = [dict(t) for t in (node.get("spec") or {}).get("taints") or () if t.get("key") != NOT_READY_TAINT]
    if not ready:
        taints += [{"key": NOT_READY_TAINT, "effect": "NoSchedule"},
                   {"key": NOT_READY_TAINT, "effect": "NoExecute", "timeAdded": now}]
    old_taints = [dict(t) for t in (node.get("spec") or {}).get("taints") or ()]
    if sorted(map(_taint_id, taints)) == sorted(map(_taint_id, old_taints)):
        taints = old_taints  # keep timeAdded: nothing changed
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or ()]
    for i, cond in enumerate(conditions):
        if cond.get("type") == "Ready" and (cond.get("status") == "True") != ready:
            conditions[i] = ready_condition(ready, now)
    return taints, conditions


def _taint_id(taint: Mapping[str, Any]) -> tuple[str, str, str]:
    return str(taint.get("key", "")), str(taint.get("value", "")), str(taint.get("effect", ""))


class NodeController:
    """Registers the configured nodes and carries the node fault hooks. `start()` is synchronous, like Controller."""

    def __init__(self, core: ApiCore, nodes: Sequence[NodeConfig] = (NodeConfig(),)) -> None:
        self.core = core
        self.configs: dict[str, NodeConfig] = {c.name: c for c in nodes}

    def start(self) -> None:
        for config in list(self.configs.values()):
            self._register(config)

    async def stop(self) -> None:
        """Nodes stay: they are objects in the store, and survive a restart like everything else."""

    def add_node(self, config: NodeConfig) -> Obj:
        """Register one more node at runtime (a GPU node appearing, as a cluster autoscaler would add one)."""
        self.configs[config.name] = config
        return self._register(config)

    def _register(self, config: NodeConfig) -> Obj:
        kind = self.core.kind_of(NODE_KEY)
        if self.core.store.get(NODE_KEY, "", config.name) is None:
            self.core.create(kind, "", node_object(config))
        now = self.core.now()
        current = self.core.get(kind, "", config.name)
        if current.get("status", {}).get("nodeInfo"):
            return current  # restored from state: keep its conditions

        def write_status(obj: Obj) -> None:
            obj["status"] = node_status(config, now)

        return self.core.mutate(kind, "", config.name, write_status, subresource="status")

    def set_ready(self, name: str, ready: bool) -> Obj:
        """Fault hook: mark a node NotReady (tainted not-ready NoSchedule/NoExecute) or Ready again."""
        kind = self.core.kind_of(NODE_KEY)
        node = self.core.get(kind, "", name)
        taints, conditions = plan_readiness(node, ready, self.core.now())

        def set_taints(obj: Obj) -> None:
            spec = obj.setdefault("spec", {})
            if taints:
                spec["taints"] = copy.deepcopy(taints)
            else:
                spec.pop("taints", None)

        def set_conditions(obj: Obj) -> None:
            obj.setdefault("status", {})["conditions"] = copy.deepcopy(conditions)

        # Condition first, as the kubelet reports it before the lifecycle controller taints the node.
        self.core.mutate(kind, "", name, set_conditions, subresource="status")
        return self.core.mutate(kind, "", name, set_taints)

    def remove_node(self, name: str) -> None:
        self.configs.pop(name, None)
        try:
            self.core.delete(self.core.kind_of(NODE_KEY), "", name)
        except ApiError as err:
            if err.code != 404:
                raise
