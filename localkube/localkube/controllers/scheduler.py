"""A kube-scheduler stand-in: bind pending pods to nodes with the default filters, say why when none fits.

Decide, then act: `fits` and `pick_node` are pure functions over plain dicts (the filter plugins NodeUnschedulable,
TaintToleration, NodeAffinity and NodeResourcesFit, in kube-scheduler's order, and its failure message format);
`Scheduler` only tracks what changed and writes the outcome.

A pod nothing fits stays Pending with `PodScheduled=False/Unschedulable` and a `FailedScheduling` event, exactly the
message text kube-scheduler 1.32 writes, because users and tools (kubectl describe, dask_kube's own error reporting)
read it. It is retried when a node changes or a bound pod releases its resources.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from localkube.apiserver.core import POD_KEY, ApiCore
from localkube.apiserver.errors import ApiError
from localkube.apiserver.store import ADDED, DELETED, Event
from localkube.apiserver.validation import parse_quantity
from localkube.controllers.base import Controller

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Resources = dict[str, Decimal]

SCHEDULER_NAME = "default-scheduler"
NODE_KEY = ("", "nodes")
EVENT_KEY = ("", "events")
TERMINAL_PHASES = ("Succeeded", "Failed")
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

# Reasons kube-scheduler's filter plugins report (the histogram in the message counts them per node).
UNSCHEDULABLE_NODE = "node(s) were unschedulable"
AFFINITY_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
TOO_MANY_PODS = "Too many pods"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
_STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")


# --------------------------------------------------------------------------- resources


def _quantity(value: Any) -> Decimal:
    try:
        return parse_quantity(value)
    except (ValueError, TypeError):
        return Decimal(0)


def container_requests(container: Mapping[str, Any]) -> Resources:
    """Requests, defaulting to limits where only a limit is given (the API server's defaulting does that)."""
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = {**limits, **(resources.get("requests") or {})}
    return {str(name): _quantity(value) for name, value in requests.items()}


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    """What the pod needs from a node: max(each init container, sum of containers) plus the pod overhead."""
    spec = pod.get("spec") or {}
    total: Resources = {}
    for container in spec.get("containers") or ():
        for name, value in container_requests(container).items():
            total[name] = total.get(name, Decimal(0)) + value
    for container in spec.get("initContainers") or ():
        for name, value in container_requests(container).items():
            total[name] = max(total.get(name, Decimal(0)), value)
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, Decimal(0)) + _quantity(value)
    return total


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def holds_resources(pod: Mapping[str, Any] | None) -> str | None:
    """The node whose resources `pod` holds: bound and not finished (a deleting pod still holds them)."""
    if pod is None or is_terminal(pod):
        return None
    return (pod.get("spec") or {}).get("nodeName") or None


def node_usage(pods: Iterable[Mapping[str, Any]]) -> Resources:
    """Requests of the pods that hold resources, plus their count under "pods"."""
    used: Resources = {"pods": Decimal(0)}
    for pod in pods:
        if is_terminal(pod):
            continue
        _add(used, pod_requests(pod), 1)
    return used


def _add(used: Resources, request: Mapping[str, Decimal], sign: int) -> None:
    used["pods"] = used.get("pods", Decimal(0)) + sign
    for name, value in request.items():
        used[name] = used.get(name, Decimal(0)) + sign * value


# --------------------------------------------------------------------------- filters


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """v1 Toleration.ToleratesTaint: an empty key with Exists tolerates everything, an empty effect every effect."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def _is_ready(node: Mapping[str, Any]) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def effective_taints(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The node's taints, plus the not-ready taint the node lifecycle controller would add to a node not Ready."""
    taints = list((node.get("spec") or {}).get("taints") or ())
    if not _is_ready(node) and not any(t.get("key") == NOT_READY_TAINT and t.get("effect") == "NoSchedule"
                                       for t in taints):
        taints.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})
    return taints


def _untolerated_taint(pod: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any] | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or ()
    for taint in effective_taints(node):
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue  # PreferNoSchedule only affects scoring
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _int_or_none(text: Any) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


def _requirement_matches(expr: Mapping[str, Any], values_by_key: Mapping[str, str]) -> bool:
    """A NodeSelectorRequirement (In, NotIn, Exists, DoesNotExist, Gt, Lt) against labels or fields."""
    key, operator = expr.get("key", ""), expr.get("operator")
    values = [str(v) for v in expr.get("values") or ()]
    present = key in values_by_key
    actual = values_by_key.get(key, "")
    if operator == "In":
        return present and actual in values
    if operator == "NotIn":
        return not present or actual not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(values) == 1:
        have, bound = _int_or_none(actual), _int_or_none(values[0])
        if have is None or bound is None:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str], fields: Mapping[str, str]) -> bool:
    expressions = term.get("matchExpressions") or ()
    match_fields = term.get("matchFields") or ()
    if not expressions and not match_fields:
        return False  # an empty term selects no node
    return all(_requirement_matches(e, labels) for e in expressions) and all(
        _requirement_matches(f, fields) for f in match_fields)


def matches_node_affinity(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """nodeSelector (every label) and required node affinity (any term) both have to match."""
    spec = pod.get("spec") or {}
    meta = node.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(str(key)) != str(value):
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if not required:
        return True
    fields = {"metadata.name": str(meta.get("name", ""))}
    return any(_term_matches(t, labels, fields) for t in required.get("nodeSelectorTerms") or ())


def _allocatable(node: Mapping[str, Any]) -> Mapping[str, Any]:
    status = node.get("status") or {}
    return status.get("allocatable") or status.get("capacity") or {}


def _resource_reasons(request: Mapping[str, Decimal], node: Mapping[str, Any], used: Mapping[str, Decimal]
                      ) -> list[str]:
    """NodeResourcesFit: every resource the pod asks for more of than is left, pod count first."""
    allocatable = _allocatable(node)
    zero = Decimal(0)
    reasons = []
    if used.get("pods", zero) + 1 > _quantity(allocatable.get("pods", 0)):
        reasons.append(TOO_MANY_PODS)
    names = [r for r in _STANDARD_RESOURCES if r in request] + sorted(
        r for r in request if r not in _STANDARD_RESOURCES)
    for name in names:
        wanted = request[name]
        if wanted > 0 and wanted > _quantity(allocatable.get(name, 0)) - used.get(name, zero):
            reasons.append(f"Insufficient {name}")
    return reasons


def _filter(pod: Mapping[str, Any], node: Mapping[str, Any], request: Mapping[str, Decimal],
            used: Mapping[str, Decimal]) -> list[str]:
    spec = pod.get("spec") or {}
    if (node.get("spec") or {}).get("unschedulable") and not any(
            tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}) for t in spec.get("tolerations") or ()):
        return [UNSCHEDULABLE_NODE]
    taint = _untolerated_taint(pod, node)
    if taint is not None:
        return [f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value') or ''}}}"]
    if not matches_node_affinity(pod, node):
        return [AFFINITY_MISMATCH]
    return _resource_reasons(request, node, used)


def fits(pod: Mapping[str, Any], node: Mapping[str, Any], bound_pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why `pod` cannot go to `node` given the pods already bound there; empty when it fits."""
    return _filter(pod, node, pod_requests(pod), node_usage(bound_pods))


def _resolvable(reasons: Sequence[str]) -> bool:
    """Whether evicting pods could help (only resource shortages), as DefaultPreemption decides."""
    return all(r == TOO_MANY_PODS or r.startswith("Insufficient ") for r in reasons)


def _histogram(reasons_by_node: Iterable[Sequence[str]]) -> str:
    counts = Counter(reason for reasons in reasons_by_node for reason in reasons)
    return ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))


def failure_message(pod: Mapping[str, Any], reasons_by_node: Mapping[str, Sequence[str]]) -> str:
    """kube-scheduler's FitError text, with the DefaultPreemption post-filter part (which never finds victims here).

    The doubled period at the end is real: the preemption part is itself a FitError message, wrapped once more.
    """
    total = len(reasons_by_node)
    if total == 0:
        return "no nodes available to schedule pods"
    message = f"0/{total} nodes are available: {_histogram(reasons_by_node.values())}."
    if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
        return message + " preemption: not eligible due to preemptionPolicy=Never."
    preemption = {name: [NO_VICTIMS if _resolvable(reasons) else NOT_HELPFUL]
                  for name, reasons in reasons_by_node.items()}
    return message + f" preemption: 0/{total} nodes are available: {_histogram(preemption.values())}.."


def _score(request: Mapping[str, Decimal], node: Mapping[str, Any], used: Mapping[str, Decimal]) -> Decimal:
    """LeastAllocated: prefer the node with the most left after placing the pod.

    The pod count takes part so that pods without requests spread too (kube-scheduler gets the same effect by
    scoring them with non-zero default requests).
    """
    allocatable = _allocatable(node)
    score = Decimal(0)
    for name in ("cpu", "memory", "pods"):
        total = _quantity(allocatable.get(name, 0))
        if total > 0:
            wanted = Decimal(1) if name == "pods" else request.get(name, Decimal(0))
            score += (total - used.get(name, Decimal(0)) - wanted) / total
    return score


def _pick(pod: Mapping[str, Any], request: Mapping[str, Decimal], nodes: Sequence[Mapping[str, Any]],
          used_by_node: Mapping[str, Mapping[str, Decimal]]) -> tuple[str | None, str]:
    reasons_by_node: dict[str, list[str]] = {}
    best: tuple[Decimal, str] | None = None
    empty: Resources = {}
    for node in nodes:
        name = node["metadata"]["name"]
        used = used_by_node.get(name, empty)
        reasons = _filter(pod, node, request, used)
        if reasons:
            reasons_by_node[name] = reasons
            continue
        score = _score(request, node, used)
        # Highest score wins; ties go to the first name, so the choice is deterministic.
        if best is None or score > best[0] or (score == best[0] and name < best[1]):
            best = (score, name)
    if best is not None:
        return best[1], ""
    return None, failure_message(pod, reasons_by_node)


def pick_node(pod: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]],
              pods_by_node: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[str | None, str]:
    """The node to bind `pod` to, or None and the Unschedulable message."""
    used = {name: node_usage(pods) for name, pods in pods_by_node.items()}
    return _pick(pod, pod_requests(pod), nodes, used)


def wants_scheduling(pod: Mapping[str, Any] | None) -> bool:
    """An unbound, live pod addressed to this scheduler (a missing schedulerName means the default)."""
    if pod is None:
        return False
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName") and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME
            and not pod["metadata"].get("deletionTimestamp") and not is_terminal(pod))


# --------------------------------------------------------------------------- writes


def _set_condition(pod: Obj, condition: Obj) -> bool:
    """Put `condition` into the pod's status; keeps lastTransitionTime unless the status flips. True if changed."""
    status = pod.setdefault("status", {})
    conditions = status.setdefault("conditions", [])
    for i, cond in enumerate(conditions):
        if cond.get("type") == condition["type"]:
            if all(cond.get(k) == condition.get(k) for k in ("status", "reason", "message")):
                return False
            if cond.get("status") == condition["status"]:
                condition["lastTransitionTime"] = cond.get("lastTransitionTime", condition["lastTransitionTime"])
            conditions[i] = condition
            return True
    conditions.append(condition)
    return True


class Scheduler(Controller):
    """Binds pods as they appear; keeps the unschedulable ones and retries them when capacity may have changed."""

    def __init__(self, core: ApiCore) -> None:
        super().__init__(core)
        self._pending: set[tuple[str, str]] = set()
        self._unschedulable: set[tuple[str, str]] = set()
        self._retry = False
        self._queued = False
        self._used: dict[str, Resources] = {}
        self._requests: dict[str, Resources] = {}  # by pod uid: requests are immutable, parse them once
        self._events: dict[tuple[str, str], str] = {}  # (pod uid, message) -> Event name, to bump `count`

    def start(self) -> None:
        for pod in self.core.store.list(POD_KEY):
            self._account(pod, 1)
            if wants_scheduling(pod):
                self._pending.add(_ident(pod))
        super().start()
        self._request_pass()

    def _request(self, pod: Mapping[str, Any]) -> Resources:
        uid = pod["metadata"]["uid"]
        if uid not in self._requests:
            self._requests[uid] = pod_requests(pod)
        return self._requests[uid]

    def _account(self, pod: Mapping[str, Any] | None, sign: int) -> None:
        node = holds_resources(pod)
        if node is not None and pod is not None:
            _add(self._used.setdefault(node, {}), self._request(pod), sign)

    def _request_pass(self) -> None:
        if not self._queued:
            self._queued = True
            self.kick()

    def _on_event(self, event: Event) -> None:
        # Keep node usage exact at write time (cheap, no writes); decisions happen in the task.
        if event.key == NODE_KEY:
            self._retry = True
            self._request_pass()
            return
        if event.key != POD_KEY:
            return
        obj = None if event.type == DELETED else event.obj
        self._account(event.old, -1)
        self._account(obj, 1)
        ident = _ident(event.obj)
        if holds_resources(event.old) and not holds_resources(obj):
            self._retry = True
            self._request_pass()
        if event.type == DELETED:
            self._pending.discard(ident)
            self._unschedulable.discard(ident)
            self._requests.pop(event.obj["metadata"]["uid"], None)
        elif wants_scheduling(obj) and (event.type == ADDED or ident in self._unschedulable or
                                        ident not in self._pending):
            self._pending.add(ident)
            self._request_pass()

    def handle(self, event: Event | None) -> None:
        self._queued = False
        batch = set(self._pending)
        if self._retry:
            batch |= self._unschedulable
        self._pending.clear()
        self._retry = False
        pods = [p for p in (self.core.store.get(POD_KEY, ns, name) for ns, name in batch) if wants_scheduling(p)]
        # PrioritySort: higher priority first, then first come first served.
        pods.sort(key=lambda p: (-int((p.get("spec") or {}).get("priority") or 0),
                                 p["metadata"].get("creationTimestamp", ""), _ident(p)))
        nodes = self.core.store.list(NODE_KEY)
        for pod in pods:
            try:
                self._schedule(pod, nodes)
            except ApiError as err:  # the pod changed or went meanwhile; its own event brings it back
                log.debug("scheduling %s: %s", _ident(pod), err.message)

    def _schedule(self, pod: Obj, nodes: Sequence[Obj]) -> None:
        ident = _ident(pod)
        if (pod.get("spec") or {}).get("schedulingGates"):
            self._unschedulable.discard(ident)
            self._write_condition(pod, "SchedulingGated", "Scheduling is blocked due to non-empty scheduling gates")
            return
        node_name, message = _pick(pod, self._request(pod), nodes, self._used)
        if node_name is not None:
            self._unschedulable.discard(ident)
            self.core.bind_pod(ident[0], ident[1], node_name)
            return
        self._unschedulable.add(ident)
        if self._write_condition(pod, "Unschedulable", message):
            self._record_failure(pod, message)

    def _write_condition(self, pod: Obj, reason: str, message: str) -> bool:
        condition = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                     "lastTransitionTime": self.core.now(), "reason": reason, "message": message}
        if not _set_condition(copy.deepcopy(pod), dict(condition)):
            return False
        kind = self.core.kind_of(POD_KEY)
        self.core.mutate(kind, ident_ns(pod), pod["metadata"]["name"],
                         lambda p: _set_condition(p, condition), subresource="status", manager="kube-scheduler")
        return True

    def _record_failure(self, pod: Obj, message: str) -> None:
        """A Warning FailedScheduling Event, or one more `count` on the same message's event."""
        kind = self.core.kind_of(EVENT_KEY)
        meta = pod["metadata"]
        namespace = ident_ns(pod)
        now = self.core.now()
        existing = self._events.get((meta["uid"], message))
        if existing is not None and self.core.store.get(EVENT_KEY, namespace, existing) is not None:
            def bump(ev: Obj) -> None:
                ev["count"] = int(ev.get("count") or 1) + 1
                ev["lastTimestamp"] = now

            self.core.mutate(kind, namespace, existing, bump, manager="kube-scheduler")
            return
        name = f"{meta['name']}.{time.time_ns():x}"
        self.core.create(kind, namespace, {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"kind": "Pod", "namespace": namespace, "name": meta["name"], "uid": meta["uid"],
                               "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion", "")},
            "reason": "FailedScheduling", "message": message, "type": "Warning",
            "source": {"component": SCHEDULER_NAME},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": SCHEDULER_NAME, "reportingInstance": SCHEDULER_NAME,
        }, manager="kube-scheduler")
        self._events[(meta["uid"], message)] = name


def _ident(pod: Mapping[str, Any]) -> tuple[str, str]:
    return ident_ns(pod), pod["metadata"]["name"]


def ident_ns(pod: Mapping[str, Any]) -> str:
    return str(pod["metadata"].get("namespace", ""))
