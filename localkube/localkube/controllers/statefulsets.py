"""StatefulSet → Pod, as kube-controller-manager's StatefulSet controller does it.

What clients and the workloads themselves depend on is reproduced: stable names `NAME-0..N-1` with
`spec.hostname`/`spec.subdomain` (DNS names through the governing Service), the `controller-revision-hash`,
`statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index` labels, OrderedReady (one pod at a time, in
order, each Running and Ready first; scale down from the highest ordinal) or Parallel management, rolling updates
from the highest ordinal down to `partition` through ControllerRevisions, the claims of `volumeClaimTemplates`, and
the status counters `kubectl rollout status` and `kr8s`'s `wait` read.

Decide, then act: `plan_statefulset` and `statefulset_status` are pure; the controller collects, calls, writes.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localkube.apiserver.core import POD_KEY
from localkube.apiserver.errors import ApiError
from localkube.apiserver.store import DELETED, Event
from localkube.controllers.base import Key, KeyedController
from localkube.controllers.revisions import RevisionHistory, template_of
from localkube.controllers.workloads import available_in, controller_of, is_ready, is_terminating, owner_reference

Obj = dict[str, Any]

STS_KEY = ("apps", "statefulsets")
PVC_KEY = ("", "persistentvolumeclaims")
REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-(0|[1-9][0-9]*)$")


# --------------------------------------------------------------------------- decide


def ordinal_of(sts_name: str, pod_name: str) -> int | None:
    match = _ORDINAL.match(pod_name)
    return int(match.group(2)) if match and match.group(1) == sts_name else None


def _spec(sts: Mapping[str, Any]) -> Mapping[str, Any]:
    return sts.get("spec") or {}


def _replicas(sts: Mapping[str, Any]) -> int:
    value = _spec(sts).get("replicas")
    return 1 if value is None else int(value)


def start_ordinal(sts: Mapping[str, Any]) -> int:
    return int((_spec(sts).get("ordinals") or {}).get("start") or 0)


def pod_revision(pod: Mapping[str, Any]) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""))


def running_and_ready(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod)


def _finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


@dataclass
class StatefulSetPlan:
    create: list[tuple[int, str]] = field(default_factory=list)  # (ordinal, revision name)
    delete: list[str] = field(default_factory=list)


def _creation_revision(sts: Mapping[str, Any], ordinal: int, current: str, update: str) -> str:
    """A recreated pod below the partition keeps the current revision (newVersionedStatefulSetPod's rule)."""
    strategy = _spec(sts).get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    start = start_ordinal(sts)
    if rolling is not None:
        keep = ordinal < start + int(rolling.get("partition") or 0)
    elif strategy.get("type", "RollingUpdate") == "RollingUpdate":
        keep = ordinal < start + int((sts.get("status") or {}).get("currentReplicas") or 0)
    else:
        keep = False
    return current if keep else update


def plan_statefulset(sts: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], current: str, update: str,
                     now: dt.datetime) -> StatefulSetPlan:
    """One step toward spec: create missing ordinals, replace finished pods, remove condemned ones (highest
    first), then roll one pod at or above the partition to the update revision. OrderedReady stops at the first
    pod that is not yet Running, Ready and available; Parallel does all it can at once (rolling updates are one
    pod at a time either way)."""
    plan = StatefulSetPlan()
    if sts["metadata"].get("deletionTimestamp"):
        return plan
    spec = _spec(sts)
    name = sts["metadata"]["name"]
    monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    min_ready = int(spec.get("minReadySeconds") or 0)
    start, replicas = start_ordinal(sts), _replicas(sts)

    def healthy(pod: Mapping[str, Any]) -> bool:
        return not is_terminating(pod) and running_and_ready(pod) and available_in(pod, min_ready, now) == 0

    wanted: dict[int, Mapping[str, Any]] = {}
    condemned: list[tuple[int, Mapping[str, Any]]] = []
    for pod in pods:
        ordinal = ordinal_of(name, pod["metadata"]["name"])
        if ordinal is None:
            continue
        if start <= ordinal < start + replicas:
            wanted[ordinal] = pod
        else:
            condemned.append((ordinal, pod))
    condemned.sort(key=lambda item: item[0])

    for ordinal in range(start, start + replicas):
        pod = wanted.get(ordinal)
        if pod is None:
            plan.create.append((ordinal, _creation_revision(sts, ordinal, current, update)))
        elif not is_terminating(pod) and _finished(pod):
            plan.delete.append(pod["metadata"]["name"])  # recreated once it is gone
        elif healthy(pod):
            continue
        if monotonic:
            return plan

    first_unhealthy = next((p["metadata"]["name"] for _, p in condemned if not healthy(p)), None)
    for _, pod in reversed(condemned):
        if is_terminating(pod):
            if monotonic:
                return plan
            continue
        if monotonic and not healthy(pod) and pod["metadata"]["name"] != first_unhealthy:
            return plan
        plan.delete.append(pod["metadata"]["name"])
        if monotonic:
            return plan

    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return plan  # OnDelete: pods take the new template when someone deletes them
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    for ordinal in range(start + replicas - 1, start + max(partition, 0) - 1, -1):
        pod = wanted.get(ordinal)
        if pod is None or pod["metadata"]["name"] in plan.delete:
            continue
        if pod_revision(pod) != update and not is_terminating(pod):
            plan.delete.append(pod["metadata"]["name"])
            return plan
        if not healthy(pod):
            return plan
    return plan


def statefulset_status(sts: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], current: str, update: str,
                       now: dt.datetime) -> tuple[Obj, float | None]:
    """The status the real controller computes (computeReplicaStatus, then completeRollingUpdate), and when to
    look again for minReadySeconds."""
    min_ready = int(_spec(sts).get("minReadySeconds") or 0)
    counts = dict.fromkeys(("replicas", "readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas"), 0)
    recheck: float | None = None
    for pod in pods:
        counts["replicas"] += 1
        if running_and_ready(pod):
            counts["readyReplicas"] += 1
            wait = available_in(pod, min_ready, now)
            if wait == 0:
                counts["availableReplicas"] += 1
            elif wait is not None:
                recheck = wait if recheck is None else min(recheck, wait)
        if not is_terminating(pod):
            counts["currentReplicas"] += pod_revision(pod) == current
            counts["updatedReplicas"] += pod_revision(pod) == update
    strategy = _spec(sts).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate" and \
            counts["updatedReplicas"] == counts["replicas"] == counts["readyReplicas"]:
        counts["currentReplicas"], current = counts["updatedReplicas"], update
    status: Obj = {
        "observedGeneration": sts["metadata"].get("generation", 1),
        "replicas": counts["replicas"],
        "currentRevision": current,
        "updateRevision": update,
        "collisionCount": int((sts.get("status") or {}).get("collisionCount") or 0),
        "availableReplicas": counts["availableReplicas"],
    }
    for key in ("readyReplicas", "currentReplicas", "updatedReplicas"):  # omitempty on the real object
        if counts[key]:
            status[key] = counts[key]
    return status, recheck


def claim_name(template_name: str, sts_name: str, ordinal: int) -> str:
    return f"{template_name}-{sts_name}-{ordinal}"


def statefulset_claims(sts: Mapping[str, Any], ordinal: int) -> list[Obj]:
    """The PersistentVolumeClaims of one ordinal, from `volumeClaimTemplates` (owned by the StatefulSet only when
    `persistentVolumeClaimRetentionPolicy.whenDeleted` is Delete)."""
    spec = _spec(sts)
    selector_labels = (spec.get("selector") or {}).get("matchLabels") or {}
    delete_with_set = (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted") == "Delete"
    out = []
    for template in spec.get("volumeClaimTemplates") or ():
        tmeta = template.get("metadata") or {}
        meta: Obj = {"name": claim_name(tmeta.get("name", ""), sts["metadata"]["name"], ordinal),
                     "namespace": sts["metadata"]["namespace"],
                     "labels": {**(tmeta.get("labels") or {}), **selector_labels}}
        if tmeta.get("annotations"):
            meta["annotations"] = copy.deepcopy(tmeta["annotations"])
        if delete_with_set:
            ref = owner_reference(sts)
            meta["ownerReferences"] = [{k: ref[k] for k in ("apiVersion", "kind", "name", "uid")}]
        out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
                    "spec": copy.deepcopy(template.get("spec") or {})})
    return out


def statefulset_pod(sts: Mapping[str, Any], template: Mapping[str, Any], ordinal: int, revision: str) -> Obj:
    """Pod `NAME-ORDINAL` of `template`: its identity labels, hostname and subdomain, and its claims as volumes."""
    name = f"{sts['metadata']['name']}-{ordinal}"
    tmeta = template.get("metadata") or {}
    meta: Obj = {"name": name, "namespace": sts["metadata"]["namespace"],
                 "labels": {**(tmeta.get("labels") or {}), REVISION_LABEL: revision, POD_NAME_LABEL: name,
                            POD_INDEX_LABEL: str(ordinal)},
                 "ownerReferences": [owner_reference(sts)]}
    for key in ("annotations", "finalizers"):
        if tmeta.get(key):
            meta[key] = copy.deepcopy(tmeta[key])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    if _spec(sts).get("serviceName"):
        spec["subdomain"] = _spec(sts)["serviceName"]
    claims = {(c.get("metadata") or {}).get("name", ""): claim_name((c.get("metadata") or {}).get("name", ""),
                                                                    sts["metadata"]["name"], ordinal)
              for c in _spec(sts).get("volumeClaimTemplates") or ()}
    if claims:
        volumes = [v for v in spec.get("volumes") or () if v.get("name") not in claims]
        volumes += [{"name": volume, "persistentVolumeClaim": {"claimName": claim}} for volume, claim in claims.items()]
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


# --------------------------------------------------------------------------- act


class StatefulSetController(KeyedController):
    """Keeps each StatefulSet's ordinals, revisions, claims and status."""

    watched = STS_KEY

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self.history = RevisionHistory(core, STS_KEY)

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key == STS_KEY:
            return () if event.type == DELETED else ((event.namespace, event.obj["metadata"]["name"]),)
        if event.key == POD_KEY:
            ref = controller_of(event.obj)
            if ref is not None and ref.get("kind") == "StatefulSet":
                return ((event.namespace, ref["name"]),)
        return ()

    def _pods(self, sts: Mapping[str, Any]) -> list[Obj]:
        uid = sts["metadata"]["uid"]
        return [p for p in self.core.store.list(POD_KEY, sts["metadata"]["namespace"])
                if (controller_of(p) or {}).get("uid") == uid]

    def sync(self, namespace: str, name: str) -> None:
        sts = self.core.store.get(STS_KEY, namespace, name)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return
        revisions = self.history.ensure(sts)
        if revisions is None:
            return  # a hash collision was recorded; the status write brings us back
        update = revisions.update
        by_name = {r["metadata"]["name"]: r for r in revisions.all}
        current_name = (sts.get("status") or {}).get("currentRevision")
        if current_name not in by_name:
            current_name = update["metadata"]["name"]
        update_name = update["metadata"]["name"]
        plan = plan_statefulset(sts, self._pods(sts), current_name, update_name, self.now())
        pod_kind = self.core.kind_of(POD_KEY)
        for ordinal, revision in plan.create:
            template = (_spec(sts).get("template") or {}) if revision == update_name else template_of(
                by_name[revision])
            self._ensure_claims(sts, ordinal)
            self.core.create(pod_kind, namespace, statefulset_pod(sts, template, ordinal, revision))
        for pod_name in plan.delete:
            self._delete(pod_kind, namespace, pod_name)
        pods = self._pods(sts)
        self._release_claims(sts, pods)
        status, recheck = statefulset_status(sts, pods, current_name, update_name, self.now())
        if recheck is not None:
            self.sync_later((namespace, name), recheck)
        in_use = {status["currentRevision"], update_name} | {pod_revision(p) for p in pods}
        self.history.prune(sts, revisions.all, in_use)
        if (sts.get("status") or {}) != status:
            self.core.mutate(self.core.kind_of(STS_KEY), namespace, name,
                             lambda o: o.__setitem__("status", copy.deepcopy(status)), subresource="status")

    def _delete(self, kind: Any, namespace: str, name: str) -> None:
        try:
            self.core.delete(kind, namespace, name)
        except ApiError as err:
            if err.code != 404:
                raise

    def _ensure_claims(self, sts: Obj, ordinal: int) -> None:
        kind = self.core.kind_of(PVC_KEY)
        for claim in statefulset_claims(sts, ordinal):
            if self.core.store.get(PVC_KEY, claim["metadata"]["namespace"], claim["metadata"]["name"]) is None:
                self.core.create(kind, claim["metadata"]["namespace"], claim)

    def _release_claims(self, sts: Obj, pods: Sequence[Mapping[str, Any]]) -> None:
        """`whenScaled: Delete`: the claims of ordinals scaled away go once their pods have."""
        spec = _spec(sts)
        if (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenScaled") != "Delete":
            return
        name, namespace = sts["metadata"]["name"], sts["metadata"]["namespace"]
        live = {ordinal_of(name, p["metadata"]["name"]) for p in pods}
        start, replicas = start_ordinal(sts), _replicas(sts)
        prefixes = [f"{(c.get('metadata') or {}).get('name', '')}-{name}-" for c in spec.get("volumeClaimTemplates")
                    or ()]
        for claim in self.core.store.list(PVC_KEY, namespace):
            claim_name_ = claim["metadata"]["name"]
            for prefix in prefixes:
                rest = claim_name_[len(prefix):] if claim_name_.startswith(prefix) else ""
                if rest.isdigit() and str(int(rest)) == rest:
                    ordinal = int(rest)
                    if not start <= ordinal < start + replicas and ordinal not in live:
                        self._delete(self.core.kind_of(PVC_KEY), namespace, claim_name_)
