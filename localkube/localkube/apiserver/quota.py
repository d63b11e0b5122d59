"""ResourceQuotas: what objects use, and their admission, as kube-apiserver's ResourceQuota plugin counts them.

Tracked: `pods`, `count/pods`, `cpu`/`memory`/`ephemeral-storage` and their `requests.*`/`limits.*`, hugepages and
extended `requests.<name>` resources of pods (non-terminal, sidecars and overhead included); `services`,
`services.nodeports`, `services.loadbalancers`; `persistentvolumeclaims` and `requests.storage` (also per storage
class); `configmaps`, `secrets`, `resourcequotas`; and `count/<resource>[.<group>]` of any kind. Scopes
(Terminating, NotTerminating, BestEffort, NotBestEffort, CrossNamespacePodAffinity) and the PriorityClass scope
selector restrict a quota to matching pods.

A create that would take a quota's usage over its hard limit is refused with the plugin's 403 (`exceeded quota:
...`), as is a pod that leaves out a cpu or memory request/limit a quota constrains (`failed quota: ...`). Usage is
counted from the store at that moment, so it is exact (a real server checks against the last status the quota
controller wrote, and refuses pods while that status is still unknown). The ResourceQuota controller
(controllers/resourcequota.py) keeps `status.hard` and `status.used` up to date. Only creates are checked:
updates that raise usage (a Service turned into a LoadBalancer) are not refused, and custom resources are counted
in `status.used` but their creation is not refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from localkube.apiserver import resources
from localkube.apiserver.core import POD_KEY, ApiCore
from localkube.apiserver.errors import forbidden
from localkube.apiserver.kinds import BUILTIN_KINDS
from localkube.apiserver.resources import ONE, Amount, Resources
from localkube.apiserver.validation import _is_extended_resource

Obj = dict[str, Any]
Key = tuple[str, str]
QUOTA_KEY = ("", "resourcequotas")
SERVICE_KEY = ("", "services")
PVC_KEY = ("", "persistentvolumeclaims")
# Quota names that count objects of a core kind, besides count/<plural>.
LEGACY_COUNTS: dict[str, Key] = {
    "pods": POD_KEY, "services": SERVICE_KEY, "persistentvolumeclaims": PVC_KEY, "configmaps": ("", "configmaps"),
    "secrets": ("", "secrets"), "resourcequotas": QUOTA_KEY, "replicationcontrollers": ("", "replicationcontrollers"),
}
_POD_RESOURCES = frozenset({"count/pods", "pods", "cpu", "memory", "ephemeral-storage", "requests.cpu",
                            "requests.memory", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
                            "limits.ephemeral-storage"})
# Quotas on these make every container state them (the plugin's backward-compatible constraint).
_MUST_SPECIFY = frozenset({"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"})
_STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"


def install(core: ApiCore) -> None:
    """Check creates of every built-in kind against the quotas of their namespace."""
    keys = dict.fromkeys(kind.key for kind in BUILTIN_KINDS if kind.namespaced and not kind.virtual)
    for key in keys:  # once per resource, though HPAs are served at two versions
        core.validating.setdefault(key, []).append(lambda obj, old, key=key: _admit(core, key, obj, old))


def count_name(key: Key) -> str:
    group, plural = key
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def tracks(key: Key, name: str) -> bool:
    """Whether objects of `key` can use quota resource `name`."""
    if name == count_name(key) or LEGACY_COUNTS.get(name) == key:
        return True
    if key == POD_KEY:
        return (name in _POD_RESOURCES or name.startswith(("hugepages-", "requests.hugepages-"))
                or (name.startswith("requests.") and _is_extended_resource(name)))
    if key == SERVICE_KEY:
        return name in ("services.nodeports", "services.loadbalancers")
    if key == PVC_KEY:
        return name == "requests.storage" or _STORAGE_CLASS_SUFFIX in name
    return False


def tracked_keys(hard: Mapping[str, Any]) -> set[Key]:
    """The kinds whose objects count against any of the `hard` resources."""
    keys: set[Key] = set()
    for name in hard:
        if name.startswith("count/"):
            plural, _, group = name[len("count/"):].partition(".")
            keys.add((group, plural))
        elif name in LEGACY_COUNTS:
            keys.add(LEGACY_COUNTS[name])
        elif name.startswith("services."):
            keys.add(SERVICE_KEY)
        elif name == "requests.storage" or _STORAGE_CLASS_SUFFIX in name:
            keys.add(PVC_KEY)
        else:
            keys.add(POD_KEY)
    return keys


def _pod_counts(pod: Obj, now: dt.datetime) -> bool:
    """QuotaV1Pod: terminal pods, and deleting ones past their grace period, use no compute quota."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deletion, grace = meta.get("deletionTimestamp"), meta.get("deletionGracePeriodSeconds")
    if deletion and grace is not None:
        when = dt.datetime.fromisoformat(deletion.replace("Z", "+00:00"))
        return now <= when + dt.timedelta(seconds=int(grace))
    return True


def _pod_usage(pod: Obj, now: dt.datetime) -> Resources:
    usage: Resources = {"count/pods": ONE}
    if not _pod_counts(pod, now):
        return usage
    spec = pod.get("spec") or {}
    requests = resources.pod_resources(spec, "requests", overhead=True)
    limits = resources.pod_resources(spec, "limits", overhead=True)
    usage["pods"] = ONE
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            usage[name] = usage[f"requests.{name}"] = requests[name]
        if name in limits:
            usage[f"limits.{name}"] = limits[name]
    for name, amount in requests.items():
        if name.startswith("hugepages-"):
            usage[name] = usage[f"requests.{name}"] = amount
        elif _is_extended_resource(name):
            usage[f"requests.{name}"] = amount
    return usage


def _service_usage(svc: Obj) -> Resources:
    spec = svc.get("spec") or {}
    ports = [p for p in spec.get("ports") or () if isinstance(p, dict)]
    usage: Resources = {"services": ONE}
    if spec.get("type") == "NodePort":
        usage["services.nodeports"] = Amount(Decimal(len(ports)))
    elif spec.get("type") == "LoadBalancer":
        counted = ports if spec.get("allocateLoadBalancerNodePorts") is not False else [
            p for p in ports if p.get("nodePort")]
        usage["services.nodeports"] = Amount(Decimal(len(counted)))
        usage["services.loadbalancers"] = ONE
    return usage


def _pvc_usage(pvc: Obj) -> Resources:
    spec = pvc.get("spec") or {}
    usage: Resources = {"persistentvolumeclaims": ONE}
    storage = Amount.of(((spec.get("resources") or {}).get("requests") or {}).get("storage"))
    storage_class = spec.get("storageClassName")
    if storage_class:
        usage[f"{storage_class}{_STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = ONE
    if storage is not None:
        usage["requests.storage"] = storage
        if storage_class:
            usage[f"{storage_class}{_STORAGE_CLASS_SUFFIX}requests.storage"] = storage
    return usage


def usage_of(key: Key, obj: Obj, now: dt.datetime) -> Resources:
    """What one object uses, by quota resource name."""
    usage: Resources = {count_name(key): ONE}
    # `pods` counts only pods that are not finished (below); the other legacy names count every object.
    usage.update({name: ONE for name, legacy in LEGACY_COUNTS.items() if legacy == key and name != "pods"})
    if key == POD_KEY:
        usage.update(_pod_usage(obj, now))
    elif key == SERVICE_KEY:
        usage.update(_service_usage(obj))
    elif key == PVC_KEY:
        usage.update(_pvc_usage(obj))
    return usage


# -- scopes ------------------------------------------------------------------------------------------------


def _scopes(quota: Obj) -> list[tuple[str, str, list[str]]]:
    """(scope, operator, values): `spec.scopes` as Exists, then the scope selector's expressions."""
    spec = quota.get("spec") or {}
    out = [(str(s), "Exists", []) for s in spec.get("scopes") or ()]
    for expr in (spec.get("scopeSelector") or {}).get("matchExpressions") or ():
        out.append((str(expr.get("scopeName")), str(expr.get("operator")), list(expr.get("values") or ())))
    return out


def _best_effort(spec: Mapping[str, Any]) -> bool:
    for group in ("containers", "initContainers"):
        for container in spec.get(group) or ():
            res = (container or {}).get("resources") or {}
            for which in ("requests", "limits"):
                if any(name in ("cpu", "memory") for name in res.get(which) or {}):
                    return False
    return True


def _cross_namespace_affinity(spec: Mapping[str, Any]) -> bool:
    affinity = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        rules = affinity.get(kind) or {}
        terms = list(rules.get("requiredDuringSchedulingIgnoredDuringExecution") or ())
        terms += [t.get("podAffinityTerm") or {} for t in rules.get("preferredDuringSchedulingIgnoredDuringExecution")
                  or ()]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
            return True
    return False


def _scope_matches(scope: str, operator: str, values: list[str], pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    if scope == "PriorityClass":
        name = spec.get("priorityClassName") or ""
        return {"In": name in values, "NotIn": name not in values, "Exists": bool(name),
                "DoesNotExist": not name}.get(operator, False)
    checks = {
        "Terminating": spec.get("activeDeadlineSeconds") is not None,
        "NotTerminating": spec.get("activeDeadlineSeconds") is None,
        "BestEffort": _best_effort(spec),
        "NotBestEffort": not _best_effort(spec),
        "CrossNamespacePodAffinity": _cross_namespace_affinity(spec),
    }
    return checks.get(scope, False)


def matches(quota: Obj, key: Key, obj: Obj) -> bool:
    """Whether the quota applies to the object: scoped quotas apply to matching pods only."""
    scopes = _scopes(quota)
    if not scopes:
        return True
    return key == POD_KEY and all(_scope_matches(s, op, values, obj) for s, op, values in scopes)


def hard_of(quota: Obj) -> Resources:
    return resources.parse((quota.get("spec") or {}).get("hard"))


def used(core: ApiCore, quota: Obj) -> Resources:
    """The quota's usage now: every hard resource, zero when nothing uses it."""
    hard = hard_of(quota)
    namespace = quota["metadata"].get("namespace") or ""
    now = core.clock()
    total: Resources = {}
    for key in sorted(tracked_keys(hard)):
        for obj in core.store.list(key, namespace):
            if matches(quota, key, obj):
                resources.add(total, {n: a for n, a in usage_of(key, obj, now).items() if n in hard})
    return {name: total.get(name, resources.ZERO) for name in hard}


# -- admission ---------------------------------------------------------------------------------------------


def _missing(spec: Mapping[str, Any], required: set[str]) -> str:
    """The constraint message listing, per resource, the containers that leave it out; "" when none do."""
    missing: dict[str, list[str]] = {}
    for group in ("containers", "initContainers"):
        for container in spec.get(group) or ():
            if not isinstance(container, dict):
                continue
            res = container.get("resources") or {}
            has = {f"requests.{n}" for n in res.get("requests") or {}} | {n for n in res.get("requests") or {}}
            has |= {f"limits.{n}" for n in res.get("limits") or {}}
            for name in sorted(required - has):
                missing.setdefault(name, []).append(str(container.get("name") or ""))
    return "; ".join(f"{name} for: {','.join(sorted(set(names)))}" for name, names in sorted(missing.items()))


def _admit(core: ApiCore, key: Key, obj: Obj, old: Obj | None) -> None:
    if old is not None:
        return
    namespace = obj["metadata"].get("namespace") or ""
    quotas = [q for q in core.store.list(QUOTA_KEY, namespace) if matches(q, key, obj)]
    if not quotas:
        return
    kind = core.kind_of(key)
    name = obj["metadata"].get("name") or ""
    relevant = []
    for quota in quotas:
        hard = hard_of(quota)
        restricted = {n for n in hard if tracks(key, n)}
        if not restricted:
            continue
        if key == POD_KEY:
            missing = _missing(obj.get("spec") or {}, restricted & _MUST_SPECIFY)
            if missing:
                raise forbidden(kind.resource, name, f"failed quota: {quota['metadata']['name']}: must specify "
                                                     f"{missing}", kind.group)
        relevant.append((quota, hard))
    requested = {n: a for n, a in usage_of(key, obj, core.clock()).items() if a.value}
    for quota, hard in relevant:
        asked = {n: a for n, a in requested.items() if n in hard}
        if not asked:
            continue
        now_used = used(core, quota)
        exceeded = sorted(n for n, a in asked.items() if now_used[n].value + a.value > hard[n].value)
        if exceeded:
            raise forbidden(kind.resource, name, f"exceeded quota: {quota['metadata']['name']}, requested: "
                                                 f"{resources.text(asked, exceeded)}, used: "
                                                 f"{resources.text(now_used, exceeded)}, limited: "
                                                 f"{resources.text(hard, exceeded)}", kind.group)
