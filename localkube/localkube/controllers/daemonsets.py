"""DaemonSet → one Pod per eligible node, as kube-controller-manager's DaemonSet controller does it.

A node is eligible when the pod template would fit it by nodeSelector, required node affinity and taints (the
scheduler's own predicates, with the tolerations every daemon pod gets). The controller does not bind: it pins each
pod to its node with a required node affinity term on `metadata.name` (matchFields), and the scheduler binds it,
as on a real cluster. Nodes added or removed are followed; templates roll out node by node within
`maxUnavailable`, through ControllerRevisions; the status is what `kubectl rollout status daemonset/x` reads.

Decide, then act: `plan_daemonset` and `daemonset_status` are pure; the controller collects, calls, writes.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localkube.apiserver.core import POD_KEY
from localkube.apiserver.errors import ApiError
from localkube.apiserver.store import DELETED, MODIFIED, Event
from localkube.controllers.base import Key, KeyedController
from localkube.controllers.revisions import RevisionHistory
from localkube.controllers.scheduler import NODE_KEY, effective_taints, matches_node_affinity, tolerates
from localkube.controllers.workloads import (
    available_in,
    controller_of,
    is_ready,
    is_terminating,
    owner_reference,
    scaled,
)

Obj = dict[str, Any]

DS_KEY = ("apps", "daemonsets")
REVISION_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
# What every daemon pod tolerates (util.AddOrUpdateDaemonPodTolerations): it stays on a node that goes bad, and
# runs on cordoned and pressured nodes too.
DAEMON_TOLERATIONS: tuple[Obj, ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
_HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                            "effect": "NoSchedule"}


# --------------------------------------------------------------------------- decide


def _spec(ds: Mapping[str, Any]) -> Mapping[str, Any]:
    return ds.get("spec") or {}


def daemon_pod_spec(template_spec: Mapping[str, Any]) -> Obj:
    """The template's pod spec with the daemon tolerations added where the same one is not there already."""
    spec = copy.deepcopy(dict(template_spec))
    tolerations = list(spec.get("tolerations") or ())
    extra = [*DAEMON_TOLERATIONS, *([_HOST_NETWORK_TOLERATION] if spec.get("hostNetwork") else [])]
    for toleration in extra:
        same = [t for t in tolerations if all(t.get(k) == toleration[k] for k in ("key", "operator", "effect"))]
        if not same:
            tolerations.append(dict(toleration))
    spec["tolerations"] = tolerations
    return spec


def node_fit(ds: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[bool, bool]:
    """(should run here, may keep running here): NoSchedule taints stop new daemon pods, NoExecute ones evict."""
    spec = daemon_pod_spec((_spec(ds).get("template") or {}).get("spec") or {})
    node_name = node["metadata"]["name"]
    if spec.get("nodeName") and spec["nodeName"] != node_name:
        return False, False
    if not matches_node_affinity({"spec": spec}, node):
        return False, False
    tolerations = spec.get("tolerations") or ()
    untolerated = [t for t in effective_taints(node) if t.get("effect") in ("NoSchedule", "NoExecute")
                   and not any(tolerates(tol, t) for tol in tolerations)]
    return not untolerated, not any(t.get("effect") == "NoExecute" for t in untolerated)


def target_node(pod: Mapping[str, Any]) -> str | None:
    """The node a daemon pod is for: where it is bound, else the node its matchFields affinity names."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or ():
        for expr in term.get("matchFields") or ():
            values = expr.get("values") or ()
            if expr.get("key") == "metadata.name" and expr.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return None


def _pod_order(pod: Mapping[str, Any]) -> tuple[bool, str, str]:
    """Bound pods first, then the oldest (podByCreationTimestampAndPhase)."""
    return (not (pod.get("spec") or {}).get("nodeName"), pod["metadata"].get("creationTimestamp", ""),
            pod["metadata"]["name"])


def _finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_hash(pod: Mapping[str, Any]) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""))


@dataclass
class DaemonSetPlan:
    create: list[str] = field(default_factory=list)  # node names
    delete: list[str] = field(default_factory=list)  # pod names


def _by_node(pods: Iterable[Mapping[str, Any]]) -> dict[str | None, list[Mapping[str, Any]]]:
    out: dict[str | None, list[Mapping[str, Any]]] = {}
    for pod in pods:
        out.setdefault(target_node(pod), []).append(pod)
    for group in out.values():
        group.sort(key=_pod_order)
    return out


def max_unavailable(ds: Mapping[str, Any], desired: int) -> int:
    rolling = (_spec(ds).get("updateStrategy") or {}).get("rollingUpdate") or {}
    unavailable = scaled(rolling.get("maxUnavailable", 1), desired, True)
    surge = scaled(rolling.get("maxSurge", 0), desired, True)
    return 1 if unavailable == 0 and surge == 0 else unavailable


def plan_daemonset(ds: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]],
                   update_hash: str, now: dt.datetime) -> DaemonSetPlan:
    """A pod where one should run and none does; none where none should; finished and duplicate pods removed;
    then, for RollingUpdate, old-template pods deleted (unavailable ones at once, available ones within
    maxUnavailable) so that the next pass recreates them from the new template."""
    plan = DaemonSetPlan()
    if ds["metadata"].get("deletionTimestamp"):
        return plan
    min_ready = int(_spec(ds).get("minReadySeconds") or 0)
    by_node = _by_node(pods)
    node_names = {n["metadata"]["name"] for n in nodes}
    for name, group in by_node.items():
        if name not in node_names:  # the node is gone (the pod GC's job on a real cluster)
            plan.delete += [p["metadata"]["name"] for p in group if not is_terminating(p)]
    desired: dict[str, Mapping[str, Any] | None] = {}  # node -> its one running daemon pod (None: being created)
    for node in nodes:
        name = node["metadata"]["name"]
        run, keep = node_fit(ds, node)
        live = [p for p in by_node.get(name, ()) if not is_terminating(p)]
        if not run:
            if not keep:
                plan.delete += [p["metadata"]["name"] for p in live]
            continue
        plan.delete += [p["metadata"]["name"] for p in live if _finished(p)]
        running = [p for p in live if not _finished(p)]
        if not running:
            plan.create.append(name)
            desired[name] = None
            continue
        plan.delete += [p["metadata"]["name"] for p in running[1:]]  # keep the oldest
        desired[name] = running[0]
    if (_spec(ds).get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
        return plan

    def available(pod: Mapping[str, Any] | None) -> bool:
        return pod is not None and available_in(pod, min_ready, now) == 0

    budget = max_unavailable(ds, len(desired)) - sum(1 for pod in desired.values() if not available(pod))
    for name in sorted(desired):
        pod = desired[name]
        if pod is None or pod_hash(pod) == update_hash:
            continue
        if not available(pod):
            plan.delete.append(pod["metadata"]["name"])
        elif budget > 0:
            plan.delete.append(pod["metadata"]["name"])
            budget -= 1
    return plan


def daemonset_status(ds: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]],
                     update_hash: str, now: dt.datetime) -> tuple[Obj, float | None]:
    """The counters the real controller writes (updateDaemonSetStatus), and when to look again for
    minReadySeconds."""
    min_ready = int(_spec(ds).get("minReadySeconds") or 0)
    by_node = _by_node(pods)
    desired = current = misscheduled = ready = available = updated = 0
    recheck: float | None = None
    for node in nodes:
        group = by_node.get(node["metadata"]["name"]) or []
        run, _ = node_fit(ds, node)
        if not run:
            misscheduled += bool(group)
            continue
        desired += 1
        if not group:
            continue
        current += 1
        pod = group[0]
        if is_ready(pod):
            ready += 1
            wait = available_in(pod, min_ready, now)
            if wait == 0:
                available += 1
            elif wait is not None:
                recheck = wait if recheck is None else min(recheck, wait)
        updated += pod_hash(pod) == update_hash
    status: Obj = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
                   "desiredNumberScheduled": desired, "numberReady": ready,
                   "observedGeneration": ds["metadata"].get("generation", 1)}
    for key, value in (("updatedNumberScheduled", updated), ("numberAvailable", available),
                       ("numberUnavailable", desired - available)):
        if value:  # omitempty on the real object
            status[key] = value
    collisions = (ds.get("status") or {}).get("collisionCount")
    if collisions:
        status["collisionCount"] = collisions
    return status, recheck


def daemon_pod(ds: Mapping[str, Any], node_name: str, update_hash: str) -> Obj:
    """A pod of the current template for `node_name`: the daemon tolerations, and required node affinity for
    exactly that node (replacing the template's required terms, which were already checked against it)."""
    template = _spec(ds).get("template") or {}
    tmeta = template.get("metadata") or {}
    meta: Obj = {"generateName": f"{ds['metadata']['name']}-", "namespace": ds["metadata"]["namespace"],
                 "labels": {**(tmeta.get("labels") or {}), REVISION_LABEL: update_hash,
                            GENERATION_LABEL: str(ds["metadata"].get("generation", 1))},
                 "ownerReferences": [owner_reference(ds)]}
    for key in ("annotations", "finalizers"):
        if tmeta.get(key):
            meta[key] = copy.deepcopy(tmeta[key])
    spec = daemon_pod_spec(template.get("spec") or {})
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


# --------------------------------------------------------------------------- act


class DaemonSetController(KeyedController):
    """Keeps one pod of each DaemonSet on every eligible node, and its status."""

    watched = DS_KEY

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self.history = RevisionHistory(core, DS_KEY, hash_label=REVISION_LABEL)

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key == DS_KEY:
            return () if event.type == DELETED else ((event.namespace, event.obj["metadata"]["name"]),)
        if event.key == POD_KEY:
            ref = controller_of(event.obj)
            if ref is not None and ref.get("kind") == "DaemonSet":
                return ((event.namespace, ref["name"]),)
        if event.key == NODE_KEY and _node_changed(event):
            return [(ds["metadata"]["namespace"], ds["metadata"]["name"]) for ds in self.core.store.list(DS_KEY)]
        return ()

    def sync(self, namespace: str, name: str) -> None:
        ds = self.core.store.get(DS_KEY, namespace, name)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return
        revisions = self.history.ensure(ds)
        if revisions is None:
            return  # a hash collision was recorded; the status write brings us back
        update_hash = str((revisions.update["metadata"].get("labels") or {}).get(REVISION_LABEL, ""))
        nodes = self.core.store.list(NODE_KEY)
        plan = plan_daemonset(ds, nodes, self._pods(ds), update_hash, self.now())
        pod_kind = self.core.kind_of(POD_KEY)
        for node_name in plan.create:
            self.core.create(pod_kind, namespace, daemon_pod(ds, node_name, update_hash))
        for pod_name in plan.delete:
            try:
                self.core.delete(pod_kind, namespace, pod_name)
            except ApiError as err:
                if err.code != 404:
                    raise
        pods = self._pods(ds)
        status, recheck = daemonset_status(ds, nodes, pods, update_hash, self.now())
        if recheck is not None:
            self.sync_later((namespace, name), recheck)
        in_use = {revisions.update["metadata"]["name"]} | {f"{name}-{pod_hash(p)}" for p in pods}
        self.history.prune(ds, revisions.all, in_use)
        if (ds.get("status") or {}) != status:
            self.core.mutate(self.core.kind_of(DS_KEY), namespace, name,
                             lambda o: o.__setitem__("status", copy.deepcopy(status)), subresource="status")

    def _pods(self, ds: Mapping[str, Any]) -> list[Obj]:
        uid = ds["metadata"]["uid"]
        return [p for p in self.core.store.list(POD_KEY, ds["metadata"]["namespace"])
                if (controller_of(p) or {}).get("uid") == uid]


def _node_changed(event: Event) -> bool:
    """Node writes that can change where daemons run (not heartbeats): added, removed, labels, taints, Ready."""
    if event.type != MODIFIED or event.old is None:
        return True
    old, new = event.old, event.obj

    def view(node: Mapping[str, Any]) -> tuple[Any, ...]:
        ready = next((c.get("status") for c in (node.get("status") or {}).get("conditions") or ()
                      if c.get("type") == "Ready"), None)
        return (node["metadata"].get("labels"), (node.get("spec") or {}).get("taints"), ready)

    return view(old) != view(new)

