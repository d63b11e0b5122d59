"""The disruption controller: every PodDisruptionBudget's status, from the pods it selects.

The Eviction API (apiserver/eviction.py) spends what this computes, so the numbers follow kube-controller-manager:

- `expectedPods` and `desiredHealthy`: an integer `minAvailable` is the desired count itself and the expected count
  is the number of selected pods. A percentage `minAvailable` or any `maxUnavailable` is taken of the scale of the
  pods' controllers (their `spec.replicas`, each controller counted once): a ReplicaSet owned by a Deployment
  counts as the Deployment, and any owner with a scale subresource (StatefulSet, a custom resource) as itself.
  Pods without a controller are left out of that sum, so a `maxUnavailable` over bare pods expects none and
  allows no disruption (the real controller says so in an `UnmanagedPods` event). An owner without a scale
  subresource (a DaemonSet, a Job), or one that is gone, fails the sync: `disruptionsAllowed` 0 and the
  `DisruptionAllowed` condition False with reason `SyncFailed` and the error.
- `currentHealthy`: selected pods that are Ready, not deleting, and not recorded in `disruptedPods` within the
  last two minutes (an eviction was approved for them; the delete is on its way).
- `disruptionsAllowed`: `currentHealthy - desiredHealthy`, never negative, and 0 while no pod is expected.
- `disruptedPods` keeps an entry while its pod exists, is not deleting, and the two minutes have not passed; the
  budget is looked at again when the oldest entry expires.
- The `DisruptionAllowed` condition: True/`SufficientPods` or False/`InsufficientPods`; `observedGeneration`.

Not done: the events the real controller records (`NoPods`, `UnmanagedPods`, `NotDeleted`,
`CalculateExpectedPodCountFailed`) and the reset of stale `DisruptionTarget` pod conditions.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from localkube.apiserver import budgets
from localkube.apiserver.budgets import PDB_KEY
from localkube.apiserver.core import CRD_KEY, POD_KEY, ApiCore, get_path
from localkube.apiserver.store import DELETED, Event
from localkube.controllers.base import Key, KeyedController
from localkube.controllers.workloads import controller_of, parse_time

Obj = dict[str, Any]
DELETION_TIMEOUT = dt.timedelta(minutes=2)
RS_KEY, DEPLOY_KEY, STS_KEY = ("apps", "replicasets"), ("apps", "deployments"), ("apps", "statefulsets")


class SyncError(Exception):
    """Why a budget's expected count cannot be computed; it becomes the SyncFailed condition's message."""


@dataclass(frozen=True)
class ScaleTarget:
    """Where an owner kind keeps its scale: store key and `spec.replicas` path; `path` None: no scale."""

    key: tuple[str, str]
    path: str | None


# (group, kind) -> where it scales, or None when the kind is not served at all.
ScaleLookup = Callable[[str, str], ScaleTarget | None]
# (store key, namespace, name) -> object or None.
Getter = Callable[[tuple[str, str], str, str], Mapping[str, Any] | None]


def _group(ref: Mapping[str, Any]) -> str:
    return str(ref.get("apiVersion") or "").rpartition("/")[0]


def _replicas(obj: Mapping[str, Any], path: str = ".spec.replicas") -> int:
    """The desired scale (built-ins have `spec.replicas` defaulted; a custom resource without it scales to 0)."""
    value = get_path(obj, path)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def controller_scale(ref: Mapping[str, Any], namespace: str, get: Getter, scale_of: ScaleLookup
                     ) -> tuple[str, int] | None:
    """The (uid, replicas) that stands for a pod's controller, or None when no such controller exists.

    The finders in kube-controller-manager's order: a ReplicaSet's Deployment, the ReplicaSet, a StatefulSet,
    then any kind through its scale subresource (raising SyncError for a kind without one)."""
    kind, name, uid = ref.get("kind"), str(ref.get("name") or ""), ref.get("uid")
    group = _group(ref)
    if kind == "ReplicaSet" and group in ("apps", "extensions"):
        rs = get(RS_KEY, namespace, name)
        if rs is not None and rs["metadata"].get("uid") == uid:
            owner = controller_of(rs)
            if owner is None or owner.get("kind") != "Deployment":
                return rs["metadata"]["uid"], _replicas(rs)
            if _group(owner) in ("apps", "extensions"):
                deploy = get(DEPLOY_KEY, namespace, str(owner.get("name") or ""))
                if deploy is not None and deploy["metadata"].get("uid") == owner.get("uid"):
                    return deploy["metadata"]["uid"], _replicas(deploy)
    if kind == "StatefulSet" and group == "apps":
        sts = get(STS_KEY, namespace, name)
        if sts is not None and sts["metadata"].get("uid") == uid:
            return sts["metadata"]["uid"], _replicas(sts)
    target = scale_of(group, str(kind or ""))
    if target is None:
        version = str(ref.get("apiVersion") or "").rpartition("/")[2]
        raise SyncError(f'no matches for kind "{kind}" in version "{group}/{version}"' if group else
                        f'no matches for kind "{kind}" in version "{version}"')
    if target.path is None:
        resource = f"{target.key[1]}.{target.key[0]}" if target.key[0] else target.key[1]
        raise SyncError(f"{resource} does not implement the scale subresource")
    owner_obj = get(target.key, namespace, name)
    if owner_obj is None or owner_obj["metadata"].get("uid") != uid:
        return None
    return owner_obj["metadata"]["uid"], _replicas(owner_obj, target.path)


def expected_scale(pods: Sequence[Mapping[str, Any]], get: Getter, scale_of: ScaleLookup
                   ) -> tuple[int, list[str]]:
    """The sum of the scales of the pods' controllers (each once), and the pods that have no controller."""
    scales: dict[str, int] = {}
    seen: set[str] = set()
    unmanaged: list[str] = []
    for pod in pods:
        ref = controller_of(pod)
        if ref is None:
            unmanaged.append(pod["metadata"]["name"])
            continue
        if ref.get("uid") in seen:
            continue
        found = controller_scale(ref, pod["metadata"].get("namespace", ""), get, scale_of)
        if found is None:
            raise SyncError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
        seen.add(str(ref.get("uid")))
        scales[found[0]] = found[1]
    return sum(scales.values()), unmanaged


def scaled_value(value: Any, total: int) -> int:
    """An int, or a percentage of `total` rounded up (GetScaledValueFromIntOrPercent with roundUp)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SyncError("invalid value for IntOrString: invalid type: neither int nor percentage")
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        raise SyncError("invalid value for IntOrString: invalid type: string is not a percentage")
    try:
        percent = int(value[:-1])
    except ValueError:
        raise SyncError(f'invalid value for IntOrString: invalid value "{value}": strconv.Atoi: parsing '
                        f'"{value[:-1]}": invalid syntax') from None
    return math.ceil(percent * total / 100)


def expected_counts(pdb: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], get: Getter,
                    scale_of: ScaleLookup) -> tuple[int, int, list[str]]:
    """(expectedPods, desiredHealthy, unmanaged pods) from minAvailable or maxUnavailable."""
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        expected, unmanaged = expected_scale(pods, get, scale_of)
        return expected, max(expected - scaled_value(spec["maxUnavailable"], expected), 0), unmanaged
    minimum = spec.get("minAvailable")
    if isinstance(minimum, int) and not isinstance(minimum, bool):
        return len(pods), minimum, []
    if isinstance(minimum, str):
        expected, unmanaged = expected_scale(pods, get, scale_of)
        return expected, scaled_value(minimum, expected), unmanaged
    return 0, 0, []


def disrupted_pods(pdb: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: dt.datetime
                   ) -> tuple[dict[str, str], dt.datetime | None]:
    """The `disruptedPods` entries still pending, and when the first of them expires."""
    recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
    kept: dict[str, str] = {}
    recheck: dt.datetime | None = None
    for pod in pods:
        name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp") or name not in recorded:
            continue
        since = parse_time(recorded[name])
        if since is None:
            continue
        expires = since + DELETION_TIMEOUT
        if expires < now:
            continue  # it was approved but never deleted: count it again
        kept[name] = recorded[name]
        recheck = expires if recheck is None else min(recheck, expires)
    return kept, recheck


def current_healthy(pods: Sequence[Mapping[str, Any]], disrupted: Mapping[str, str], now: dt.datetime) -> int:
    count = 0
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        since = parse_time(disrupted.get(pod["metadata"]["name"]))
        if since is not None and since + DELETION_TIMEOUT > now:
            continue
        count += budgets.pod_ready(pod)
    return count


@dataclass(frozen=True)
class BudgetPlan:
    status: Obj  # the status the budget should have (the current one when nothing changed)
    recheck_at: dt.datetime | None = None
    unmanaged: tuple[str, ...] = ()


def _time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_budget(pdb: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: dt.datetime, get: Getter,
                scale_of: ScaleLookup) -> BudgetPlan:
    """What the status of `pdb` should be, given the pods its selector matches (pure)."""
    old = dict(pdb.get("status") or {})
    generation = int(pdb["metadata"].get("generation") or 0)
    try:
        expected, desired, unmanaged = expected_counts(pdb, pods, get, scale_of)
    except SyncError as err:  # failSafe: no disruption while the budget cannot be computed
        observed = int(old.get("observedGeneration") or 0)
        failed = {"type": budgets.DISRUPTION_ALLOWED, "status": "False", "reason": budgets.SYNC_FAILED,
                  "message": str(err), "observedGeneration": observed}
        status = {**copy.deepcopy(old), "disruptionsAllowed": 0,
                  "conditions": budgets.set_condition(old.get("conditions"), failed, _time(now))}
        for field in ("currentHealthy", "desiredHealthy", "expectedPods"):
            status.setdefault(field, 0)
        return BudgetPlan(status)
    disrupted, recheck = disrupted_pods(pdb, pods, now)
    healthy = current_healthy(pods, disrupted, now)
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    unchanged = (int(old.get("currentHealthy") or 0), int(old.get("desiredHealthy") or 0),
                 int(old.get("expectedPods") or 0), int(old.get("disruptionsAllowed") or 0),
                 old.get("disruptedPods") or {}) == (healthy, desired, expected, allowed, disrupted)
    if unchanged and budgets.condition_up_to_date(pdb):
        return BudgetPlan(old, recheck, tuple(unmanaged))
    status: Obj = {"currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
                   "disruptionsAllowed": allowed, "observedGeneration": generation}
    if disrupted:
        status["disruptedPods"] = disrupted
    status["conditions"] = budgets.set_condition(old.get("conditions"),
                                                 budgets.allowed_condition(allowed, generation), _time(now))
    return BudgetPlan(status, recheck, tuple(unmanaged))


class DisruptionController(KeyedController):
    """Keeps every PodDisruptionBudget's status current as its pods and their controllers change."""

    watched = PDB_KEY

    def __init__(self, core: ApiCore) -> None:
        super().__init__(core)
        self._scaled_keys = self._kinds_with_scale()

    def _kinds_with_scale(self) -> set[tuple[str, str]]:
        return {k.key for k in self.core.registry.all() if k.scale is not None}

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key == PDB_KEY:
            return () if event.type == DELETED else ((event.namespace, event.obj["metadata"]["name"]),)
        if event.key == CRD_KEY:  # a custom kind with a scale subresource may come or go
            self._scaled_keys = self._kinds_with_scale()
            return ()
        if event.key != POD_KEY and event.key not in self._scaled_keys:
            return ()
        pdbs = self.core.store.list(PDB_KEY, event.namespace)
        if event.key == POD_KEY:  # the budgets that select the pod before or after the write
            pods = [p for p in (event.obj, event.old) if p is not None]
            pdbs = [pdb for pdb in pdbs if any(budgets.selects(pdb, pod) for pod in pods)]
        return [(event.namespace, pdb["metadata"]["name"]) for pdb in pdbs]

    def sync(self, namespace: str, name: str) -> None:
        pdb = self.core.store.get(PDB_KEY, namespace, name)
        if pdb is None:
            return
        pods = [p for p in self.core.store.list(POD_KEY, namespace) if budgets.selects(pdb, p)]
        now = self.now()
        plan = plan_budget(pdb, pods, now, self._get, self._scale_of)
        if plan.recheck_at is not None:
            self.sync_later((namespace, name), (plan.recheck_at - now).total_seconds() + 1)
        if plan.status != (pdb.get("status") or {}):
            status = plan.status
            self.core.mutate(self.core.kind_of(PDB_KEY), namespace, name,
                             lambda o: o.__setitem__("status", copy.deepcopy(status)), subresource="status")

    def _get(self, key: tuple[str, str], namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.core.store.get(key, namespace, name)

    def _scale_of(self, group: str, kind: str) -> ScaleTarget | None:
        for served in self.core.registry.all():
            if served.group == group and served.kind == kind and not served.virtual:
                return ScaleTarget(served.key, served.scale.spec_replicas_path if served.scale else None)
        return None
