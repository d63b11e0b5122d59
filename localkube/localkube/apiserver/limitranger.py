"""LimitRanges enforced on new pods, as kube-apiserver's LimitRanger admission plugin does.

Mutating: a container that leaves out a resource the namespace's LimitRange gives a `default` (limit) or
`defaultRequest` for gets it, and the pod is annotated `kubernetes.io/limit-ranger` with what was set.
Validating: `min`, `max` and `maxLimitRequestRatio` of `Container` items hold for every container and init
container, and those of `Pod` items for the pod's totals; a violation is a 403 with the plugin's message.
`PersistentVolumeClaim` items are stored but not enforced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from localkube.apiserver import resources
from localkube.apiserver.core import POD_KEY, ApiCore
from localkube.apiserver.errors import forbidden
from localkube.apiserver.resources import Amount

Obj = dict[str, Any]
LIMIT_RANGE_KEY = ("", "limitranges")
ANNOTATION = "kubernetes.io/limit-ranger"
_CONTAINER_GROUPS = (("containers", "container"), ("initContainers", "init container"))


def install(core: ApiCore) -> None:
    core.admission.setdefault(POD_KEY, []).append(lambda pod, old: _apply_defaults(core, pod, old))
    core.validating.setdefault(POD_KEY, []).append(lambda pod, old: _enforce(core, pod, old))


def _ranges(core: ApiCore, pod: Obj) -> list[Obj]:
    return core.store.list(LIMIT_RANGE_KEY, pod["metadata"].get("namespace") or "")


def _items(limit_range: Obj, kind: str) -> list[Obj]:
    return [i for i in (limit_range.get("spec") or {}).get("limits") or () if isinstance(i, dict) and
            i.get("type") == kind]


def _apply_defaults(core: ApiCore, pod: Obj, old: Obj | None) -> None:
    """Pods are only defaulted on create: their containers cannot change afterwards."""
    spec = pod.get("spec")
    if old is not None or not isinstance(spec, dict):
        return
    for limit_range in _ranges(core, pod):
        limits: dict[str, Any] = {}
        requests: dict[str, Any] = {}
        for item in _items(limit_range, "Container"):
            limits.update(item.get("default") or {})
            requests.update(item.get("defaultRequest") or {})
        if not limits and not requests:
            continue
        notes: list[str] = []
        for group, label in _CONTAINER_GROUPS:
            for container in spec.get(group) or ():
                if isinstance(container, dict):
                    notes += _merge(container, requests, limits, label)
        if notes:
            pod["metadata"].setdefault("annotations", {})[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


def _merge(container: Obj, requests: Mapping[str, Any], limits: Mapping[str, Any], label: str) -> list[str]:
    res = container.setdefault("resources", {})
    notes = []
    for key, defaults, word in (("requests", requests, "request"), ("limits", limits, "limit")):
        current = res.get(key) if isinstance(res.get(key), dict) else {}
        added = sorted(name for name in defaults if name not in current)
        if added:
            res[key] = {**current, **{name: defaults[name] for name in added}}
            notes.append(f"{', '.join(added)} {word} for {label} {container.get('name', '')}")
    return notes


def _enforce(core: ApiCore, pod: Obj, old: Obj | None) -> None:
    spec = pod.get("spec")
    if old is not None or not isinstance(spec, dict):
        return
    for limit_range in _ranges(core, pod):
        errors = violations(limit_range, spec)
        if errors:
            unique = list(dict.fromkeys(errors))
            message = unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
            raise forbidden("pods", pod["metadata"].get("name") or "", message)


def violations(limit_range: Obj, spec: Mapping[str, Any]) -> list[str]:
    """Every min/max/ratio a pod spec breaks, in the plugin's order: items, then containers, then resources."""
    errors: list[str] = []
    for item in (limit_range.get("spec") or {}).get("limits") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "Container":
            for group, _label in _CONTAINER_GROUPS:
                for container in spec.get(group) or ():
                    res = (container or {}).get("resources") or {} if isinstance(container, dict) else {}
                    errors += _check(item, "Container", resources.parse(res.get("requests")),
                                     resources.parse(res.get("limits")))
        elif item.get("type") == "Pod":
            errors += _check(item, "Pod", resources.pod_resources(spec, "requests", overhead=False),
                             resources.pod_resources(spec, "limits", overhead=False))
    return errors


def _milli(amount: Amount | None) -> int:
    return math.ceil(amount.value * 1000) if amount is not None else 0


def _check(item: Obj, kind: str, requests: resources.Resources, limits: resources.Resources) -> list[str]:
    errors = []
    for name, enforced in sorted(resources.parse(item.get("min")).items()):
        req, lim = requests.get(name), limits.get(name)
        if req is None:
            errors.append(f"minimum {name} usage per {kind} is {enforced}.  No request is specified")
        elif _milli(req) < _milli(enforced):
            errors.append(f"minimum {name} usage per {kind} is {enforced}, but request is {req}")
        elif lim is not None and _milli(lim) < _milli(enforced):
            errors.append(f"minimum {name} usage per {kind} is {enforced}, but limit is {lim}")
    for name, enforced in sorted(resources.parse(item.get("max")).items()):
        req, lim = requests.get(name), limits.get(name)
        if lim is None:
            errors.append(f"maximum {name} usage per {kind} is {enforced}.  No limit is specified")
        elif _milli(lim) > _milli(enforced):
            errors.append(f"maximum {name} usage per {kind} is {enforced}, but limit is {lim}")
        elif req is not None and _milli(req) > _milli(enforced):
            errors.append(f"maximum {name} usage per {kind} is {enforced}, but request is {req}")
    for name, enforced in sorted(resources.parse(item.get("maxLimitRequestRatio")).items()):
        req, lim = _milli(requests.get(name)), _milli(limits.get(name))
        prefix = f"{name} max limit to request ratio per {kind} is {enforced}"
        if req == 0:
            errors.append(f"{prefix}, but no request is specified or request is 0")
        elif lim == 0:
            errors.append(f"{prefix}, but no limit is specified or limit is 0")
        elif Decimal(lim) / Decimal(req) * 1000 > _milli(enforced):
            errors.append(f"{prefix}, but provided ratio is {lim / req:f}")
    return errors
