"""Node objects for LocalKube's machine: what a kubelet registers, and the NotReady fault.

A real cluster's nodes come from kubelets registering themselves; here the nodes are configured (one by default,
more for tests: a GPU node added at runtime, a tainted node). The scheduler reads capacity, labels, taints and
the Ready condition from these objects, and clients (kubectl get nodes, dask_kube's GPU checks) read them too.

`set_ready(name, False)` is the fault hook for a node gone bad, in two flavours:

* reachable (the default): the kubelet still talks to the API server and reports NotReady. Ready=False, the
  `not-ready` NoSchedule and NoExecute taints. Its pods keep running and, once evicted, are terminated by it.
* `reachable=False`, a partition: the kubelet stopped posting status (cut off from the control plane, or dead).
  Every condition goes Unknown, the `unreachable` taints are added, and the node's side of the partition goes
  silent: the kubelet hears nothing (evicted pods stay Terminating, nothing is written for its pods) and the pods'
  processes are stopped (SIGSTOP), so peers see what a partition looks like, open connections that never answer,
  rather than the connection resets a process exit would give them. `set_ready(name, True)` heals it: the
  processes continue, the kubelet catches up with what happened meanwhile (it terminates the evicted pods).

Either way the node lifecycle controller (nodelifecycle.py) marks the node's pods unready and evicts those
without a matching toleration once their `tolerationSeconds` have passed. The node controller's grace period
(`node-monitor-grace-period`, 40 s) is not modelled: the fault takes effect at once.
"""

from __future__ import annotations

import copy
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localkube.apiserver.core import ApiCore
from localkube.apiserver.discovery import DEFAULT_VERSION, release
from localkube.apiserver.errors import ApiError
from localkube.controllers.nodelifecycle import NodeLifecycleController

Obj = dict[str, Any]

NODE_KEY = ("", "nodes")
SIMULATE_ANNOTATION = "localkube.dask.org/simulate"
# Every node LocalKube creates is served by its kubelet (which also serves any node carrying this label).
KUBELET_LABEL = "localkube.dask.org/kubelet"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
READINESS_TAINTS = (NOT_READY_TAINT, UNREACHABLE_TAINT)
UNKNOWN_REASON, UNKNOWN_MESSAGE = "NodeStatusUnknown", "Kubelet stopped posting node status."

# Big enough for the operator benchmarks (1,000 simulated workers plus schedulers) on one node.
DEFAULT_CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "5000", "ephemeral-storage": "100Gi"}
_PRESSURE = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class NodeConfig:
    name: str = "localkube-node"
    capacity: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CAPACITY))
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


def node_status(config: NodeConfig, now: str, kubelet_version: str) -> Obj:
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
            "kubeletVersion": kubelet_version,
            "kubeProxyVersion": kubelet_version,
            "operatingSystem": "linux",
            "architecture": _arch(),
        },
    }


def plan_readiness(node: Mapping[str, Any], ready: bool, now: str, *, reachable: bool = True
                   ) -> tuple[list[Obj], list[Obj]]:
    """The taints and conditions a node should have once it is Ready, NotReady or (not reachable) Unknown;
    unchanged entries are kept as they are (their timestamps too)."""
    reachable = reachable or ready
    old_taints = [dict(t) for t in (node.get("spec") or {}).get("taints") or ()]
    taints = [t for t in old_taints if t.get("key") not in READINESS_TAINTS]
    if not ready:
        key = NOT_READY_TAINT if reachable else UNREACHABLE_TAINT
        kept = {_taint_id(t): t for t in old_taints if t.get("key") == key}
        taints += [kept.get((key, "", "NoSchedule"), {"key": key, "effect": "NoSchedule"}),
                   kept.get((key, "", "NoExecute"), {"key": key, "effect": "NoExecute", "timeAdded": now})]
    if sorted(map(_taint_id, taints)) == sorted(map(_taint_id, old_taints)):
        taints = old_taints  # keep the order too: nothing changed
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or ()]
    for i, cond in enumerate(conditions):
        if not reachable:
            if cond.get("status") != "Unknown":  # the node controller marks every condition it hears nothing of
                conditions[i] = {**cond, "status": "Unknown", "reason": UNKNOWN_REASON, "message": UNKNOWN_MESSAGE,
                                 "lastTransitionTime": now}
        elif cond.get("type") == "Ready" and cond.get("status") != ("True" if ready else "False"):
            conditions[i] = ready_condition(ready, now)
        elif cond.get("status") == "Unknown":  # back from a partition: the kubelet reports its pressures again
            conditions[i] = next(({"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": now,
                                   "lastTransitionTime": now} for t, r, m in _PRESSURE if t == cond.get("type")), cond)
    return taints, conditions


def _taint_id(taint: Mapping[str, Any]) -> tuple[str, str, str]:
    return str(taint.get("key", "")), str(taint.get("value", "")), str(taint.get("effect", ""))


class NodeController:
    """Registers the configured nodes and carries the node fault hooks. `start()` is synchronous, like Controller."""

    def __init__(self, core: ApiCore, nodes: Sequence[NodeConfig] = (NodeConfig(),), *,
                 kubernetes_version: str = DEFAULT_VERSION) -> None:
        self.core = core
        self.kubelet_version = release(kubernetes_version)
        self.configs: dict[str, NodeConfig] = {c.name: c for c in nodes}
        self.lifecycle = NodeLifecycleController(core)
        # The kubelet (set by LocalKube when it runs pods): a partition cuts it off from its node's pods.
        self.kubelet: Any = None

    def start(self) -> None:
        for config in list(self.configs.values()):
            self._register(config)
        self.lifecycle.start()
        self.lifecycle.kick()

    async def stop(self) -> None:
        """Nodes stay: they are objects in the store, and survive a restart like everything else."""
        await self.lifecycle.stop()

    def add_node(self, config: NodeConfig) -> Obj:
        """Register one more node at runtime (a GPU node appearing, as a cluster autoscaler would add one)."""
        self.configs[config.name] = config
        return self._register(config)

    def _register(self, config: NodeConfig) -> Obj:
        kind = self.core.kind_of(NODE_KEY)
        if self.core.store.get(NODE_KEY, "", config.name) is None:
            self.core.create(kind, "", node_object(config), manager="kubelet")
        now = self.core.now()
        current = self.core.get(kind, "", config.name)
        if current.get("status", {}).get("nodeInfo"):
            return current  # restored from state: keep its conditions

        def write_status(obj: Obj) -> None:
            obj["status"] = node_status(config, now, self.kubelet_version)

        return self.core.mutate(kind, "", config.name, write_status, subresource="status", manager="kubelet")

    def set_ready(self, name: str, ready: bool, *, reachable: bool = True) -> Obj:
        """Fault hook: mark a node NotReady (`not-ready` taints), unreachable (`reachable=False`: a partition,
        `unreachable` taints, its kubelet and pods cut off), or Ready again (healing a partition)."""
        kind = self.core.kind_of(NODE_KEY)
        node = self.core.get(kind, "", name)
        taints, conditions = plan_readiness(node, ready, self.core.now(), reachable=reachable)

        def set_taints(obj: Obj) -> None:
            spec = obj.setdefault("spec", {})
            if taints:
                spec["taints"] = copy.deepcopy(taints)
            else:
                spec.pop("taints", None)

        def set_conditions(obj: Obj) -> None:
            obj.setdefault("status", {})["conditions"] = copy.deepcopy(conditions)

        cut_off = not (ready or reachable)
        if self.kubelet is not None and cut_off:
            self.kubelet.partition(name)
        # Condition first, as the kubelet (or the node controller) reports it before the node is tainted.
        self.core.mutate(kind, "", name, set_conditions, subresource="status",
                         manager="kubelet" if reachable else "kube-controller-manager")
        out = self.core.mutate(kind, "", name, set_taints, manager="kube-controller-manager")
        if self.kubelet is not None and not cut_off:
            self.kubelet.reconnect(name)
        return out

    def remove_node(self, name: str) -> None:
        self.configs.pop(name, None)
        try:
            self.core.delete(self.core.kind_of(NODE_KEY), "", name)
        except ApiError as err:
            if err.code != 404:
                raise
