"""The node lifecycle controller's pod side: pods of a node that is not Ready are marked unready, and pods that
do not tolerate a NoExecute taint are evicted once their `tolerationSeconds` have passed.

Kubernetes splits this between the node lifecycle controller (MarkPodsNotReady, with a `NodeNotReady` Event) and
the taint eviction controller (a `DisruptionTarget` condition, a `TaintManagerEviction` Event, then an ordinary
graceful DELETE). The DELETE only sets `deletionTimestamp`: the pod is finished by the node's kubelet, so on a
node whose kubelet cannot be reached the pod stays Terminating until the node comes back (or is deleted), which is
what controllers such as the operator have to live with. Pods get the 300 s `not-ready`/`unreachable`
tolerations from the API server's DefaultTolerationSeconds defaulting; a smaller `tolerationSeconds` in the
pod's own tolerations shortens the wait. The delay runs from the taint's `timeAdded`.

A cordoned node (`spec.unschedulable`, `kubectl cordon`) gets the `node.kubernetes.io/unschedulable` NoSchedule
taint, removed on uncordon, as the node lifecycle controller does.
"""

from __future__ import annotations

import asyncio
import calendar
import copy
import logging
import time
from collections.abc import Mapping
from typing import Any

from localkube.apiserver.core import POD_KEY
from localkube.apiserver.errors import ApiError
from localkube.apiserver.store import DELETED, Event
from localkube.controllers.base import Controller
from localkube.controllers.scheduler import tolerates

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NODE_KEY = ("", "nodes")
EVENT_KEY = ("", "events")
COMPONENT = "taint-eviction-controller"
TERMINAL_PHASES = ("Succeeded", "Failed")
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


def cordon_taints(node: Mapping[str, Any], now: str) -> list[Obj] | None:
    """The node's taints with the `unschedulable` NoSchedule taint following `spec.unschedulable`, as the node
    lifecycle controller keeps it (so that taint-aware tools see a cordon); None when they already agree."""
    spec = node.get("spec") or {}
    taints = [dict(t) for t in spec.get("taints") or ()]
    cordon = [t for t in taints if t.get("key") == UNSCHEDULABLE_TAINT and t.get("effect") == "NoSchedule"]
    if bool(cordon) == bool(spec.get("unschedulable")):
        return None
    if cordon:
        return [t for t in taints if t not in cordon]
    return [*taints, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": now}]


def _ready(node: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or ())


def _epoch(rfc3339: str | None) -> float | None:
    if not rfc3339:
        return None
    try:
        return float(calendar.timegm(time.strptime(rfc3339[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def eviction_delay(pod: Mapping[str, Any], node: Mapping[str, Any], now: float) -> float | None:
    """Seconds until `pod` must be evicted from `node` for its NoExecute taints (0: now), or None: never.

    A taint no toleration matches evicts at once; otherwise the shortest `tolerationSeconds` among the matching
    tolerations counts (no `tolerationSeconds` tolerates forever), from the time the taint was added."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or ()
    deadline: float | None = None
    for taint in (node.get("spec") or {}).get("taints") or ():
        if taint.get("effect") != "NoExecute":
            continue
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return 0.0
        bounded = [float(t["tolerationSeconds"]) for t in matching if t.get("tolerationSeconds") is not None]
        if not bounded:
            continue
        added = _epoch(taint.get("timeAdded")) or now
        at = added + max(0.0, min(bounded))
        deadline = at if deadline is None else min(deadline, at)
    return None if deadline is None else max(0.0, deadline - now)


class NodeLifecycleController(Controller):
    """Watches nodes and the pods bound to them; marks pods unready and evicts them as the taints say."""

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self._timers: dict[str, asyncio.TimerHandle] = {}  # pod uid -> its pending eviction
        self._unready_nodes: set[str] = set()

    def wants(self, event: Event) -> bool:
        if event.key == NODE_KEY:
            return True
        return event.key == POD_KEY and bool((event.obj.get("spec") or {}).get("nodeName"))

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await super().stop()

    def handle(self, event: Event | None) -> None:
        if event is None:  # a full pass (at start: nodes restored NotReady, pods already past their toleration)
            for node in self.core.store.list(NODE_KEY):
                self._sync_node(node)
            return
        if event.key == NODE_KEY:
            if event.type == DELETED:
                self._unready_nodes.discard(event.obj["metadata"]["name"])
                for pod in self._pods_on(event.obj["metadata"]["name"]):
                    self._cancel(pod["metadata"]["uid"])
            else:
                self._sync_node(event.obj)
            return
        uid = event.obj["metadata"]["uid"]
        if event.type == DELETED or event.obj["metadata"].get("deletionTimestamp"):
            self._cancel(uid)
            return
        node = self.core.store.get(NODE_KEY, "", event.obj["spec"]["nodeName"])
        if node is not None:
            self._consider(event.obj, node)

    def _pods_on(self, node_name: str) -> list[Obj]:
        return [p for p in self.core.store.list(POD_KEY) if (p.get("spec") or {}).get("nodeName") == node_name]

    def _sync_node(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        self._follow_cordon(node)
        pods = self._pods_on(name)
        if not _ready(node):
            if name not in self._unready_nodes:
                self._unready_nodes.add(name)
                for pod in pods:
                    self._mark_not_ready(pod)
        else:
            self._unready_nodes.discard(name)
        for pod in pods:
            self._consider(pod, node)

    def _follow_cordon(self, node: Obj) -> None:
        current = self.core.store.get(NODE_KEY, "", node["metadata"]["name"])  # the event may be stale
        taints = None if current is None else cordon_taints(current, self.core.now())
        if taints is None:
            return

        def set_taints(obj: Obj) -> None:
            spec = obj.setdefault("spec", {})
            if taints:
                spec["taints"] = copy.deepcopy(taints)
            else:
                spec.pop("taints", None)

        try:
            self.core.mutate(self.core.kind_of(NODE_KEY), "", node["metadata"]["name"], set_taints)
        except ApiError as err:
            log.debug("tainting cordoned node %s: %s", node["metadata"]["name"], err.message)

    def _mark_not_ready(self, pod: Obj) -> None:
        """MarkPodsNotReady: the pod's Ready condition goes False (the kubelet that would say otherwise is silent
        or reports the node unhealthy), so that Endpoints drop it; a `NodeNotReady` Event says why."""
        if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            return
        meta = pod["metadata"]
        now = self.core.now()

        def unready(obj: Obj) -> None:
            for cond in (obj.get("status") or {}).get("conditions") or ():
                if cond.get("type") == "Ready" and cond.get("status") != "False":
                    cond.update(status="False", lastTransitionTime=now)

        try:
            self.core.mutate(self.core.kind_of(POD_KEY), meta["namespace"], meta["name"], unready,
                             subresource="status", manager="kube-controller-manager")
            self._event(pod, "NodeNotReady", "Node is not ready", "node-controller")
        except ApiError as err:
            log.debug("marking %s/%s not ready: %s", meta["namespace"], meta["name"], err.message)

    def _consider(self, pod: Obj, node: Obj) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        if meta.get("deletionTimestamp"):
            self._cancel(uid)
            return
        delay = eviction_delay(pod, node, time.time())
        if delay is None:
            self._cancel(uid)
            return
        if uid in self._timers:
            return  # already scheduled (an earlier, shorter or equal deadline stands)
        loop = asyncio.get_running_loop()
        self._timers[uid] = loop.call_later(delay, self._evict, meta["namespace"], meta["name"], uid)

    def _cancel(self, uid: str) -> None:
        timer = self._timers.pop(uid, None)
        if timer is not None:
            timer.cancel()

    def _evict(self, namespace: str, name: str, uid: str) -> None:
        self._timers.pop(uid, None)
        pod = self.core.store.get(POD_KEY, namespace, name)
        if pod is None or pod["metadata"]["uid"] != uid or pod["metadata"].get("deletionTimestamp"):
            return
        node = self.core.store.get(NODE_KEY, "", (pod.get("spec") or {}).get("nodeName") or "")
        delay = None if node is None else eviction_delay(pod, node, time.time())
        if delay is None or delay > 0:
            if delay is not None and node is not None:
                self._consider(pod, node)  # a toleration or taint changed meanwhile: wait for the new deadline
            return
        kind = self.core.kind_of(POD_KEY)
        now = self.core.now()
        condition = {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None, "lastTransitionTime": now,
                     "reason": "DeletionByTaintManager", "message": "Taint manager: deleting due to NoExecute taint"}

        def mark(obj: Obj) -> None:
            conditions = [c for c in (obj.setdefault("status", {}).get("conditions") or ())
                          if c.get("type") != "DisruptionTarget"]
            obj["status"]["conditions"] = [*conditions, condition]

        try:
            self.core.mutate(kind, namespace, name, mark, subresource="status", manager="kube-controller-manager")
            self._event(pod, "TaintManagerEviction", f"Marking for deletion Pod {namespace}/{name}", COMPONENT,
                        warning=False)
            self.core.delete(kind, namespace, name, preconditions={"uid": uid})
            log.info("evicted pod %s/%s from node %s (NoExecute taint)", namespace, name, pod["spec"]["nodeName"])
        except ApiError as err:
            log.debug("evicting %s/%s: %s", namespace, name, err.message)

    def _event(self, pod: Obj, reason: str, message: str, component: str, *, warning: bool = True) -> None:
        meta = pod["metadata"]
        now = self.core.now()
        self.core.create(self.core.kind_of(EVENT_KEY), meta["namespace"], {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": meta["namespace"]},
            "involvedObject": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                               "uid": meta["uid"], "apiVersion": "v1"},
            "reason": reason, "message": message, "type": "Warning" if warning else "Normal",
            "source": {"component": component}, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": component, "reportingInstance": component,
        }, manager="kube-controller-manager")
