"""Pod priority as kube-apiserver's Priority admission plugin resolves it, and the two system PriorityClasses.

A new pod's `priorityClassName` becomes `spec.priority` and `spec.preemptionPolicy` from that class (403 when the
class does not exist); a pod naming no class gets the global default class, or priority 0 and
PreemptLowerPriority. A pod that brings its own `priority` or `preemptionPolicy` is refused unless they equal
what the class gives. At most one class may be the global default, and the system classes, created at start,
cannot be deleted.
"""

from __future__ import annotations

from typing import Any

from localkube.apiserver.core import POD_KEY, ApiCore
from localkube.apiserver.errors import forbidden

Obj = dict[str, Any]
PRIORITY_CLASS_KEY = ("scheduling.k8s.io", "priorityclasses")
RESOURCE = "priorityclasses.scheduling.k8s.io"
DEFAULT_POLICY = "PreemptLowerPriority"
SYSTEM_CLASSES = (
    ("system-node-critical", 2000001000, "Used for system critical pods that must not be moved from their current "
                                         "node."),
    ("system-cluster-critical", 2000000000, "Used for system critical pods that must run in the cluster, but can be "
                                            "moved to another node if necessary."),
)


def install(core: ApiCore) -> None:
    core.admission.setdefault(POD_KEY, []).append(lambda pod, old: _admit_pod(core, pod, old))
    core.validating.setdefault(PRIORITY_CLASS_KEY, []).append(lambda pc, old: _one_default(core, pc, old))
    core.before_delete.setdefault(PRIORITY_CLASS_KEY, []).append(_keep_system_class)


def ensure_system_classes(core: ApiCore) -> None:
    """What kube-apiserver's post-start hook does: create the system classes that are missing."""
    kind = core.kind_of(PRIORITY_CLASS_KEY)
    for name, value, description in SYSTEM_CLASSES:
        if core.store.get(PRIORITY_CLASS_KEY, "", name) is None:
            core.create(kind, "", {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                   "metadata": {"name": name}, "value": value, "description": description})


def default_class(core: ApiCore) -> Obj | None:
    """The global default class; with several (a race on a real cluster), the one of lowest value."""
    defaults = [pc for pc in core.store.list(PRIORITY_CLASS_KEY) if pc.get("globalDefault")]
    return min(defaults, key=lambda pc: pc.get("value", 0)) if defaults else None


def _admit_pod(core: ApiCore, pod: Obj, old: Obj | None) -> None:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    if old is not None:
        # Set at creation; an update that leaves them out keeps them (validation refuses any other change).
        for key in ("priority", "preemptionPolicy"):
            if spec.get(key) is None and (old.get("spec") or {}).get(key) is not None:
                spec[key] = old["spec"][key]
        return
    name = pod["metadata"].get("name") or ""
    class_name = spec.get("priorityClassName")
    if class_name:
        pc = core.store.get(PRIORITY_CLASS_KEY, "", str(class_name))
        if pc is None:
            raise forbidden("pods", name, f"no PriorityClass with name {class_name} was found")
        value, policy = pc.get("value", 0), pc.get("preemptionPolicy")
    else:
        pc = default_class(core)
        if pc is not None:
            spec["priorityClassName"] = pc["metadata"]["name"]
            value, policy = pc.get("value", 0), pc.get("preemptionPolicy")
        else:
            value, policy = 0, DEFAULT_POLICY
    given = spec.get("priority")
    if given is not None and given != value:
        raise forbidden("pods", name, f"the integer value of priority ({given}) must not be provided in pod spec; "
                                      f"priority admission controller computed {value} from the given PriorityClass "
                                      "name")
    spec["priority"] = value
    if policy:
        given_policy = spec.get("preemptionPolicy")
        if given_policy is not None and given_policy != policy:
            raise forbidden("pods", name, f"the string value of PreemptionPolicy ({given_policy}) must not be "
                                          f"provided in pod spec; priority admission controller computed {policy} "
                                          "from the given PriorityClass name")
        spec["preemptionPolicy"] = policy


def _one_default(core: ApiCore, pc: Obj, old: Obj | None) -> None:
    if not pc.get("globalDefault"):
        return
    current = default_class(core)
    name = pc["metadata"].get("name") or ""
    if current is not None and (old is None or current["metadata"]["name"] != name):
        raise forbidden(RESOURCE, name, f"PriorityClass {current['metadata']['name']} is already marked as "
                                        "default. Only one default can exist", "scheduling.k8s.io")


def _keep_system_class(pc: Obj) -> None:
    name = pc["metadata"]["name"]
    if any(name == system for system, _value, _description in SYSTEM_CLASSES):
        raise forbidden(RESOURCE, name, "this is a system priority class and cannot be deleted", "scheduling.k8s.io")
