"""Server-side ``meta.k8s.io/v1`` Table rendering for ``kubectl get``.

kubectl asks the server for a Table and prints the cells verbatim, hiding columns with
``priority > 0`` unless ``-o wide``.  The server therefore owns the column sets and
the cell formatting (ages, ``1/1`` readiness, ``<none>`` placeholders); this module
reproduces the kube-apiserver printers of Kubernetes 1.32 for the kinds LocalKube
serves, and the apiextensions table convertor for custom resources.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from localkube.apiserver.schema import go_float

__all__ = ["evaluate_jsonpath", "format_age", "human_duration", "render_table"]

_NONE = "<none>"

# --------------------------------------------------------------------------- durations


def _parse_time(value: Any) -> datetime.datetime | None:
    """Parse an RFC 3339 timestamp; naive results are taken as UTC."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text[-1:] in "Zz":
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _aware(now: datetime.datetime) -> datetime.datetime:
    return now if now.tzinfo else now.replace(tzinfo=datetime.UTC)


def human_duration(delta: datetime.timedelta) -> str:
    """apimachinery ``duration.HumanDuration``: coarser units as the duration grows."""
    total_ns = (delta // datetime.timedelta(microseconds=1)) * 1000
    seconds = int(delta.total_seconds())  # truncates toward zero like Go's int()
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = total_ns // (60 * 10**9)
    if minutes < 10:
        secs = (total_ns // 10**9) % 60
        return f"{minutes}m" if secs == 0 else f"{minutes}m{secs}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = total_ns // (3600 * 10**9)
    if hours < 8:
        mins = minutes % 60
        return f"{hours}h" if mins == 0 else f"{hours}h{mins}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rem = hours % 24
        return f"{hours // 24}d" if rem == 0 else f"{hours // 24}d{rem}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def format_age(created: str | None, now: datetime.datetime) -> str:
    """``translateTimestampSince``: ``<unknown>`` for a missing timestamp, else a human duration."""
    when = _parse_time(created)
    if when is None:
        return "<unknown>"
    return human_duration(_aware(now) - when)


def _rfc3339(created: Any) -> str:
    """The ``Created At`` cell: the creation time in UTC, RFC 3339, whole seconds."""
    when = _parse_time(created)
    if when is None:
        return "0001-01-01T00:00:00Z"
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- JSONPath

_Step = Callable[[Any], list[Any]]
_OPS = ("==", "!=", "<=", ">=", "<", ">")


def _field_step(name: str) -> _Step:
    return lambda v: [v[name]] if isinstance(v, dict) and name in v else []


def _wildcard(v: Any) -> list[Any]:
    if isinstance(v, dict):
        return [v[k] for k in sorted(v)]
    return list(v) if isinstance(v, list) else []


def _recurse_step(name: str) -> _Step:
    def run(v: Any) -> list[Any]:
        out: list[Any] = []
        stack = [v]
        while stack:
            cur = stack.pop(0)
            if isinstance(cur, dict):
                if name == "*":
                    out.extend(cur.values())
                elif name in cur:
                    out.append(cur[name])
                stack.extend(cur.values())
            elif isinstance(cur, list):
                stack.extend(cur)
        return out

    return run


def _index_step(indexes: list[int]) -> _Step:
    def run(v: Any) -> list[Any]:
        if not isinstance(v, list):
            return []
        return [v[i] for i in indexes if -len(v) <= i < len(v)]

    return run


def _slice_step(spec: str) -> _Step:
    parts = [int(p) if p.strip() else None for p in spec.split(":")]
    bounds = slice(*parts[:3])
    return lambda v: v[bounds] if isinstance(v, list) else []


def _read_name(path: str, i: int) -> tuple[str, int]:
    """Read a field name up to the next unescaped ``.`` or ``[`` (``\\.`` escapes a dot)."""
    out = []
    while i < len(path) and path[i] not in ".[":
        if path[i] == "\\" and i + 1 < len(path):
            i += 1
        out.append(path[i])
        i += 1
    return "".join(out).strip(), i


def _bracket_end(path: str, start: int) -> int:
    """Index of the ``]`` closing the bracket at ``start``, skipping quotes and parentheses."""
    depth, quote = 0, ""
    for j in range(start + 1, len(path)):
        c = path[j]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "]" and depth == 0:
            return j
    raise ValueError(f"unterminated [ in jsonpath {path!r}")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _split_operator(expr: str) -> tuple[str, str, str] | None:
    quote = ""
    for j, c in enumerate(expr):
        if quote:
            quote = "" if c == quote else quote
            continue
        if c in "'\"":
            quote = c
            continue
        for op in _OPS:
            if expr.startswith(op, j):
                return expr[:j].strip(), op, expr[j + len(op) :].strip()
    return None


def _operand(text: str, item: Any) -> list[Any]:
    if text.startswith("@"):
        return evaluate_jsonpath(item, text[1:] or "$")
    return [_literal(text)]


def _compare(left: Any, op: str, right: Any) -> bool:
    numeric = (int, float)
    if isinstance(left, bool) or isinstance(right, bool):
        comparable = isinstance(left, bool) and isinstance(right, bool)
    elif isinstance(left, numeric) and isinstance(right, numeric):
        comparable = True
    else:
        comparable = isinstance(left, str) and isinstance(right, str)
    if not comparable:
        return op == "!=" and type(left) is not type(right)
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if isinstance(left, bool):
        return False
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]


def _filter_step(expr: str) -> _Step:
    parts = _split_operator(expr)

    def keep(item: Any) -> bool:
        if parts is None:
            return bool(_operand(expr.strip(), item))
        left, op, right = (_operand(parts[0], item), parts[1], _operand(parts[2], item))
        return bool(left and right) and _compare(left[0], op, right[0])

    return lambda v: [item for item in v if keep(item)] if isinstance(v, list) else []


def _bracket_step(inner: str) -> _Step:
    inner = inner.strip()
    if inner == "*":
        return _wildcard
    if inner.startswith("?(") and inner.endswith(")"):
        return _filter_step(inner[2:-1])
    if inner[:1] in "'\"":
        names = [_literal(n) for n in inner.split(",")]
        return lambda v: [r for n in names for r in _field_step(str(n))(v)]
    if ":" in inner:
        return _slice_step(inner)
    return _index_step([int(p) for p in inner.split(",")])


def _parse_jsonpath(path: str) -> list[_Step]:
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    i = 1 if text.startswith("$") else 0
    steps: list[_Step] = []
    while i < len(text):
        if text.startswith("..", i):
            name, i = _read_name(text, i + 2)
            steps.append(_recurse_step(name or "*"))
        elif text[i] == "[":
            end = _bracket_end(text, i)
            steps.append(_bracket_step(text[i + 1 : end]))
            i = end + 1
        else:
            name, i = _read_name(text, i + 1 if text[i] == "." else i)
            if name == "*":
                steps.append(_wildcard)
            elif name:
                steps.append(_field_step(name))
    return steps


def evaluate_jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate the Kubernetes JSONPath subset; missing keys give no results rather than errors."""
    values = [obj]
    for step in _parse_jsonpath(path):
        values = [r for v in values for r in step(v)]
    return values


# --------------------------------------------------------------------------- helpers


def _col(name: str, type_: str = "string", *, priority: int = 0, fmt: str = "", description: str = "") -> dict:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


_NAME = _col("Name", fmt="name", description="Name of the object, unique within its namespace.")
_AGE = _col("Age", description="Time since the object was created.")
_CREATED_AT = _col("Created At", "date", description="When the object was created.")


def _meta(obj: Mapping) -> dict:
    return obj.get("metadata") or {}


def _name(obj: Mapping) -> str:
    return _meta(obj).get("name", "")


def _age(obj: Mapping, now: datetime.datetime) -> str:
    return format_age(_meta(obj).get("creationTimestamp"), now)


def _sub(obj: Any, *keys: str) -> Any:
    """Nested lookup that tolerates missing or null levels."""
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _format_labels(labels: Mapping | None) -> str:
    if not labels:
        return _NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _selector_string(selector: Mapping | None) -> str:
    """``metav1.LabelSelectorAsSelector(...).String()``: requirements sorted by key."""
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        reqs.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = ",".join(sorted(expr.get("values") or []))
        text = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }.get(op, key)
        reqs.append((key, text))
    return ",".join(text for _, text in sorted(reqs, key=lambda r: r[0]))


def _containers_cells(template_spec: Mapping | None) -> list[str]:
    containers = (template_spec or {}).get("containers") or []
    return [",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)]


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


# --------------------------------------------------------------------------- pods

_POD_COLUMNS = [
    _NAME,
    _col("Ready", description="Ready containers out of all containers."),
    _col("Status", description="The pod's status reason, as kubectl summarises it."),
    _col("Restarts", description="Container restarts, and when the last one happened."),
    _AGE,
    _col("IP", priority=1, description="The pod's primary IP address."),
    _col("Node", priority=1, description="The node the pod is bound to."),
    _col("Nominated Node", priority=1, description="The node the scheduler nominated for preemption."),
    _col("Readiness Gates", priority=1, description="True readiness gates out of all gates."),
]


def _restartable(container: Mapping | None) -> bool:
    return bool(container) and container.get("restartPolicy") == "Always"


def _later(a: datetime.datetime | None, b: datetime.datetime | None) -> datetime.datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _last_termination(status: Mapping) -> datetime.datetime | None:
    return _parse_time(_sub(status, "lastState", "terminated", "finishedAt"))


def _condition_true(status: Mapping, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in status.get("conditions") or [])


def _terminated_reason(term: Mapping, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


class _PodSummary:
    """The ``printPod`` state machine: init containers first, then regular containers."""

    def __init__(self, pod: Mapping) -> None:
        self.spec = pod.get("spec") or {}
        self.status = pod.get("status") or {}
        self.init_specs = {c.get("name"): c for c in self.spec.get("initContainers") or []}
        self.total = len(self.spec.get("containers") or []) + sum(
            1 for c in self.init_specs.values() if _restartable(c)
        )
        phase = self.status.get("phase") or ""
        self.reason = self.status.get("reason") or phase
        if any(
            c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated"
            for c in self.status.get("conditions") or []
        ):
            self.reason = "SchedulingGated"
        self.ready = 0
        self.restarts = 0
        self.last_restart: datetime.datetime | None = None
        initializing = self._init_containers()
        if not initializing or _condition_true(self.status, "Initialized"):
            self._containers()
        if _meta(pod).get("deletionTimestamp"):
            if self.status.get("reason") == "NodeLost":
                self.reason = "Unknown"
            elif phase not in ("Succeeded", "Failed"):
                self.reason = "Terminating"

    def _init_containers(self) -> bool:
        self.sidecar_restarts = 0
        self.sidecar_last: datetime.datetime | None = None
        statuses = self.status.get("initContainerStatuses") or []
        for i, cs in enumerate(statuses):
            count = _int(cs.get("restartCount"))
            self.restarts += count
            self.last_restart = _later(self.last_restart, _last_termination(cs))
            sidecar = _restartable(self.init_specs.get(cs.get("name")))
            if sidecar:
                self.sidecar_restarts += count
                self.sidecar_last = _later(self.sidecar_last, _last_termination(cs))
            state = cs.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if term is not None and _int(term.get("exitCode")) == 0:
                continue
            if sidecar and cs.get("started"):
                self.ready += 1 if cs.get("ready") else 0
                continue
            if term is not None:
                self.reason = _terminated_reason(term, "Init:")
            elif wait and wait.get("reason") and wait.get("reason") != "PodInitializing":
                self.reason = "Init:" + wait["reason"]
            else:
                self.reason = f"Init:{i}/{len(self.init_specs)}"
            return True
        return False

    def _containers(self) -> None:
        self.restarts = self.sidecar_restarts
        self.last_restart = self.sidecar_last
        has_running = False
        for cs in reversed(self.status.get("containerStatuses") or []):
            self.restarts += _int(cs.get("restartCount"))
            self.last_restart = _later(self.last_restart, _last_termination(cs))
            state = cs.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if wait and wait.get("reason"):
                self.reason = wait["reason"]
            elif term is not None:
                self.reason = _terminated_reason(term)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                self.ready += 1
        if self.reason == "Completed" and has_running:
            self.reason = "Running" if _condition_true(self.status, "Ready") else "NotReady"


def _pod_cells(pod: Mapping, now: datetime.datetime) -> list[Any]:
    summary = _PodSummary(pod)
    restarts = str(summary.restarts)
    if summary.restarts and summary.last_restart is not None:
        restarts += f" ({human_duration(_aware(now) - summary.last_restart)} ago)"
    status = summary.status
    ips = status.get("podIPs") or []
    ip = (ips[0].get("ip") if ips else status.get("podIP")) or _NONE
    gates = summary.spec.get("readinessGates") or []
    gate_cell = _NONE
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        true_gates = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gate_cell = f"{true_gates}/{len(gates)}"
    return [
        _name(pod),
        f"{summary.ready}/{summary.total}",
        summary.reason,
        restarts,
        _age(pod, now),
        ip,
        summary.spec.get("nodeName") or _NONE,
        status.get("nominatedNodeName") or _NONE,
        gate_cell,
    ]


def _pod_conditions(pod: Mapping) -> list[dict] | None:
    """Row conditions the server attaches to finished pods."""
    phase = _sub(pod, "status", "phase")
    if phase == "Succeeded":
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            }
        ]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return None


# --------------------------------------------------------------------------- services

_SERVICE_COLUMNS = [
    _NAME,
    _col("Type", description="How the service is exposed."),
    _col("Cluster-IP", description="The service's cluster IP."),
    _col("External-IP", description="External addresses of the service."),
    _col("Port(s)", description="Ports the service exposes."),
    _AGE,
    _col("Selector", priority=1, description="Label selector of the pods behind the service."),
]


def _lb_ingress(status: Mapping) -> list[str]:
    found = set()
    for ing in _sub(status, "loadBalancer", "ingress") or []:
        if ing.get("ip"):
            found.add(ing["ip"])
        elif ing.get("hostname"):
            found.add(ing["hostname"])
    return sorted(found)


def _external_ip(svc: Mapping) -> str:
    spec = svc.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    external = list(spec.get("externalIPs") or [])
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else _NONE
    if kind == "LoadBalancer":
        ingress = _lb_ingress(svc.get("status") or {})
        if external:
            return ",".join(ingress + external)
        return ",".join(ingress) if ingress else "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _ports(ports: list[Mapping]) -> str:
    pieces = []
    for p in ports:
        proto = p.get("protocol") or "TCP"
        if _int(p.get("nodePort")) > 0:
            pieces.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            pieces.append(f"{p.get('port')}/{proto}")
    return ",".join(pieces) or _NONE


def _service_cells(svc: Mapping, now: datetime.datetime) -> list[Any]:
    spec = svc.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [
        _name(svc),
        spec.get("type") or "ClusterIP",
        ips[0] if ips else _NONE,
        _external_ip(svc),
        _ports(spec.get("ports") or []),
        _age(svc, now),
        _format_labels(spec.get("selector")),
    ]


# --------------------------------------------------------------------------- workloads

_WIDE_WORKLOAD = [
    _col("Containers", priority=1, description="Names of the containers in the pod template."),
    _col("Images", priority=1, description="Images of the containers in the pod template."),
    _col("Selector", priority=1, description="Label selector of the managed pods."),
]
_DEPLOYMENT_COLUMNS = [
    _NAME,
    _col("Ready", description="Ready replicas out of desired replicas."),
    _col("Up-to-date", "integer", description="Replicas updated to the latest template."),
    _col("Available", "integer", description="Replicas available to serve."),
    _AGE,
    *_WIDE_WORKLOAD,
]
_REPLICASET_COLUMNS = [
    _NAME,
    _col("Desired", "integer", description="Number of desired replicas."),
    _col("Current", "integer", description="Number of current replicas."),
    _col("Ready", "integer", description="Number of ready replicas."),
    _AGE,
    *_WIDE_WORKLOAD,
]


def _replicas(obj: Mapping) -> int:
    value = _sub(obj, "spec", "replicas")
    return 1 if value is None else _int(value)


def _workload_wide(obj: Mapping) -> list[str]:
    return [*_containers_cells(_sub(obj, "spec", "template", "spec")), _selector_string(_sub(obj, "spec", "selector"))]


def _deployment_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    status = obj.get("status") or {}
    return [
        _name(obj),
        f"{_int(status.get('readyReplicas'))}/{_replicas(obj)}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(obj, now),
        *_workload_wide(obj),
    ]


def _replicaset_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    status = obj.get("status") or {}
    return [
        _name(obj),
        _replicas(obj),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(obj, now),
        *_workload_wide(obj),
    ]


_STATEFULSET_COLUMNS = [
    _NAME,
    _col("Ready", description="Number of the pod with ready state."),
    _AGE,
    _col("Containers", priority=1, description="Names of each container in the template."),
    _col("Images", priority=1, description="Images referenced by each container in the template."),
]
_DAEMONSET_COLUMNS = [
    _NAME,
    _col("Desired", "integer", description="The desired number of nodes running the daemon pod."),
    _col("Current", "integer", description="The number of nodes running at least one daemon pod."),
    _col("Ready", "integer", description="The number of nodes with a ready daemon pod."),
    _col("Up-to-date", "integer", description="The number of nodes running the updated daemon pod."),
    _col("Available", "integer", description="The number of nodes with an available daemon pod."),
    _col("Node Selector", description="Which nodes run the daemon pod."),
    _AGE,
    *_WIDE_WORKLOAD,
]
_JOB_COLUMNS = [
    _NAME,
    _col("Status", description="Status of the job."),
    _col("Completions", description="The desired number of successfully finished pods the job should be run with."),
    _col("Duration", description="Time required to complete the job."),
    _AGE,
    *_WIDE_WORKLOAD,
]
_CRONJOB_COLUMNS = [
    _NAME,
    _col("Schedule", description="The schedule in Cron format."),
    _col("Timezone", description="The time zone name for the given schedule."),
    _col("Suspend", "boolean", description="Whether the controller suspends subsequent executions."),
    _col("Active", "integer", description="The number of running jobs."),
    _col("Last Schedule", description="When the job was last successfully scheduled."),
    _AGE,
    *_WIDE_WORKLOAD,
]
_CONTROLLER_REVISION_COLUMNS = [
    _NAME,
    _col("Controller", description="The controller of this revision."),
    _col("Revision", "integer", description="The revision number."),
    _AGE,
]


def _statefulset_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    ready = _int(_sub(obj, "status", "readyReplicas"))
    return [_name(obj), f"{ready}/{_replicas(obj)}", _age(obj, now),
            *_containers_cells(_sub(obj, "spec", "template", "spec"))]


def _daemonset_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    status = obj.get("status") or {}
    return [_name(obj), *(_int(status.get(k)) for k in ("desiredNumberScheduled", "currentNumberScheduled",
                                                          "numberReady", "updatedNumberScheduled",
                                                          "numberAvailable")),
            _format_labels(_sub(obj, "spec", "template", "spec", "nodeSelector")), _age(obj, now),
            *_workload_wide(obj)]


def _job_status(obj: Mapping) -> str:
    """As kubectl prints it since 1.28: the first of the terminal or suspended conditions that holds."""
    held = {c.get("type") for c in _sub(obj, "status", "conditions") or () if c.get("status") == "True"}
    for condition, shown in (("Complete", "Complete"), ("Failed", "Failed"), ("Suspended", "Suspended"),
                             ("FailureTarget", "FailureTarget"), ("SuccessCriteriaMet", "SuccessCriteriaMet")):
        if condition in held:
            return shown
    return "Terminating" if _meta(obj).get("deletionTimestamp") else "Running"


def _job_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    succeeded = _int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_int(spec['completions'])}"
    elif _int(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {_int(spec['parallelism'])}"
    else:
        completions = f"{succeeded}/1"
    started, finished = _parse_time(status.get("startTime")), _parse_time(status.get("completionTime"))
    duration = human_duration((finished or _aware(now)) - started) if started else ""
    return [_name(obj), _job_status(obj), completions, duration, _age(obj, now), *_workload_wide(obj)]


def _cronjob_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    last = _parse_time(status.get("lastScheduleTime"))
    template = _sub(spec, "jobTemplate", "spec") or {}
    return [_name(obj), spec.get("schedule", ""), spec.get("timeZone") or _NONE, bool(spec.get("suspend")),
            len(status.get("active") or ()), human_duration(_aware(now) - last) if last else _NONE, _age(obj, now),
            *_containers_cells(_sub(template, "template", "spec")), _selector_string(template.get("selector"))]


def _controller_revision_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    owner = next((r for r in _meta(obj).get("ownerReferences") or () if r.get("controller")), None)
    controller = _NONE
    if owner is not None:
        group = str(owner.get("apiVersion", "")).rpartition("/")[0]
        controller = f"{owner.get('kind', '').lower()}{'.' + group if group else ''}/{owner.get('name', '')}"
    return [_name(obj), controller, _int(obj.get("revision")), _age(obj, now)]


# --------------------------------------------------------------------------- simple kinds


def _namespace_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    return [_name(obj), _sub(obj, "status", "phase") or "", _age(obj, now)]


def _configmap_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
    return [_name(obj), count, _age(obj, now)]


def _secret_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    keys = set(obj.get("data") or {}) | set(obj.get("stringData") or {})
    return [_name(obj), obj.get("type") or "Opaque", len(keys), _age(obj, now)]


def _serviceaccount_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    return [_name(obj), len(obj.get("secrets") or []), _age(obj, now)]


def _created_at_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    return [_name(obj), _rfc3339(_meta(obj).get("creationTimestamp"))]


def _lease_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    return [_name(obj), _sub(obj, "spec", "holderIdentity") or "", _age(obj, now)]


def _binding_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    ref = obj.get("roleRef") or {}
    users, groups, sas = [], [], []
    for subject in obj.get("subjects") or []:
        kind, name = subject.get("kind"), subject.get("name", "")
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            sas.append(f"{subject.get('namespace', '')}:{name}")
    return [
        _name(obj),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _age(obj, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(sas),
    ]


def _pdb_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    min_avail = spec.get("minAvailable")
    max_unavail = spec.get("maxUnavailable")
    return [
        _name(obj),
        "N/A" if min_avail is None else str(min_avail),
        "N/A" if max_unavail is None else str(max_unavail),
        _int(_sub(obj, "status", "disruptionsAllowed")),
        _age(obj, now),
    ]


def _networkpolicy_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    return [_name(obj), _selector_string(_sub(obj, "spec", "podSelector")) or _NONE, _age(obj, now)]


def _node_roles(labels: Mapping) -> str:
    roles = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            roles.add(key.split("/", 1)[1])
        elif key == "kubernetes.io/role":
            roles.add(value)
    return ",".join(sorted(r for r in roles if r)) or _NONE


def _node_address(status: Mapping, kind: str) -> str:
    for addr in status.get("addresses") or []:
        if addr.get("type") == kind:
            return addr.get("address", "")
    return _NONE


def _node_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    status, info = obj.get("status") or {}, _sub(obj, "status", "nodeInfo") or {}
    states = [
        "Ready" if c.get("status") == "True" else "NotReady"
        for c in status.get("conditions") or []
        if c.get("type") == "Ready"
    ][:1] or ["Unknown"]
    if _sub(obj, "spec", "unschedulable"):
        states.append("SchedulingDisabled")
    return [
        _name(obj),
        ",".join(states),
        _node_roles(_meta(obj).get("labels") or {}),
        _age(obj, now),
        info.get("kubeletVersion", ""),
        _node_address(status, "InternalIP"),
        _node_address(status, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _join_host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _format_endpoints(obj: Mapping) -> str:
    """At most three ``ip:port`` entries, then ``+ N more...``."""
    subsets = obj.get("subsets") or []
    if not subsets:
        return _NONE
    shown: list[str] = []
    count, limit, more = 0, 3, False
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or [None]
        for port in ports:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(ip if port is None else _join_host_port(ip, port.get("port")))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


def _endpoints_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    return [_name(obj), _format_endpoints(obj), _age(obj, now)]


_EVENT_COLUMNS = [
    _col("Last Seen", description="When the event was last observed."),
    _col("Type", description="Normal or Warning."),
    _col("Reason", description="Short machine-readable reason."),
    _col("Object", description="The object the event is about."),
    _col("Subobject", priority=1, description="Field path within the object."),
    _col("Source", priority=1, description="Component that reported the event."),
    _col("Message", description="Human-readable description."),
    _col("First Seen", priority=1, description="When the event was first observed."),
    _col("Count", priority=1, description="How many times the event occurred."),
    _col("Name", priority=1, fmt="name", description="Name of the event object."),
]


def _event_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    """Works for core/v1 events and events.k8s.io/v1 field names alike."""
    first_ts = obj.get("firstTimestamp") or obj.get("deprecatedFirstTimestamp") or obj.get("eventTime")
    last_ts = obj.get("lastTimestamp") or obj.get("deprecatedLastTimestamp")
    first = format_age(first_ts, now)
    last = format_age(last_ts, now) if last_ts else first
    count = _int(obj.get("count") or obj.get("deprecatedCount"))
    series = obj.get("series")
    if series:
        last = format_age(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingController") or ""
    host = source.get("host") or obj.get("reportingInstance") or ""
    message = obj.get("message") if "message" in obj else obj.get("note")
    return [
        last,
        obj.get("type", ""),
        obj.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {host}" if host else component,
        (message or "").strip(),
        first,
        count,
        _name(obj),
    ]


_Cells = Callable[[Mapping, datetime.datetime], list[Any]]
_BINDING_COLUMNS = [
    _NAME,
    _col("Role", description="The role the binding grants."),
    _AGE,
    _col("Users", priority=1, description="Users bound."),
    _col("Groups", priority=1, description="Groups bound."),
    _col("ServiceAccounts", priority=1, description="Service accounts bound."),
]
_RBAC = "rbac.authorization.k8s.io"

_PRINTERS: dict[tuple[str, str], tuple[list[dict], _Cells]] = {
    ("", "pods"): (_POD_COLUMNS, _pod_cells),
    ("", "services"): (_SERVICE_COLUMNS, _service_cells),
    ("apps", "deployments"): (_DEPLOYMENT_COLUMNS, _deployment_cells),
    ("apps", "replicasets"): (_REPLICASET_COLUMNS, _replicaset_cells),
    ("apps", "statefulsets"): (_STATEFULSET_COLUMNS, _statefulset_cells),
    ("apps", "daemonsets"): (_DAEMONSET_COLUMNS, _daemonset_cells),
    ("apps", "controllerrevisions"): (_CONTROLLER_REVISION_COLUMNS, _controller_revision_cells),
    ("batch", "jobs"): (_JOB_COLUMNS, _job_cells),
    ("batch", "cronjobs"): (_CRONJOB_COLUMNS, _cronjob_cells),
    ("", "namespaces"): ([_NAME, _col("Status", description="Namespace phase."), _AGE], _namespace_cells),
    ("", "configmaps"): ([_NAME, _col("Data", "integer", description="Number of keys."), _AGE], _configmap_cells),
    ("", "secrets"): (
        [_NAME, _col("Type", description="Secret type."), _col("Data", "integer", description="Number of keys."), _AGE],
        _secret_cells,
    ),
    ("", "serviceaccounts"): (
        [_NAME, _col("Secrets", "integer", description="Number of linked secrets."), _AGE],
        _serviceaccount_cells,
    ),
    ("", "nodes"): (
        [
            _NAME,
            _col("Status", description="Node readiness."),
            _col("Roles", description="Node roles from labels."),
            _AGE,
            _col("Version", description="Kubelet version."),
            _col("Internal-IP", priority=1, description="Internal address."),
            _col("External-IP", priority=1, description="External address."),
            _col("OS-Image", priority=1, description="Operating system image."),
            _col("Kernel-Version", priority=1, description="Kernel version."),
            _col("Container-Runtime", priority=1, description="Container runtime version."),
        ],
        _node_cells,
    ),
    ("", "endpoints"): ([_NAME, _col("Endpoints", description="Ready addresses."), _AGE], _endpoints_cells),
    ("", "events"): (_EVENT_COLUMNS, _event_cells),
    ("events.k8s.io", "events"): (_EVENT_COLUMNS, _event_cells),
    ("apiextensions.k8s.io", "customresourcedefinitions"): ([_NAME, _CREATED_AT], _created_at_cells),
    ("coordination.k8s.io", "leases"): (
        [_NAME, _col("Holder", description="Current holder of the lease."), _AGE],
        _lease_cells,
    ),
    (_RBAC, "roles"): ([_NAME, _CREATED_AT], _created_at_cells),
    (_RBAC, "clusterroles"): ([_NAME, _CREATED_AT], _created_at_cells),
    (_RBAC, "rolebindings"): (_BINDING_COLUMNS, _binding_cells),
    (_RBAC, "clusterrolebindings"): (_BINDING_COLUMNS, _binding_cells),
    ("policy", "poddisruptionbudgets"): (
        [
            _NAME,
            _col("Min Available", description="Pods that must stay available."),
            _col("Max Unavailable", description="Pods that may be unavailable."),
            _col("Allowed Disruptions", "integer", description="Evictions allowed right now."),
            _AGE,
        ],
        _pdb_cells,
    ),
    ("networking.k8s.io", "networkpolicies"): (
        [_NAME, _col("Pod-Selector", description="Pods the policy applies to."), _AGE],
        _networkpolicy_cells,
    ),
}


def _default_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    return [_name(obj), _age(obj, now)]


# --------------------------------------------------------------------------- custom resources

_CRD_DEFAULT_COLUMNS = [
    {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": "Time since the object was created.",
    }
]


def _go_text(value: Any) -> str:
    """How JSONPath text output prints one value: JSON for maps/lists, Go ``%v`` otherwise."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)


def _typed_cell(col_type: str, value: Any, now: datetime.datetime) -> Any:
    """``cellForJSONValue``: convert a JSONPath result according to the column type."""
    if value is None:
        return None
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if col_type == "string":
        return _go_text(value)
    if col_type == "integer":
        return int(value) if numeric else None
    if col_type == "number":
        return float(value) if numeric else None
    if col_type == "boolean":
        return value if isinstance(value, bool) else None
    if col_type == "date":
        if not isinstance(value, str):
            return None
        when = _parse_time(value)
        return "<invalid>" if when is None else human_duration(_aware(now) - when)
    return None


def _custom_column_def(col: Mapping) -> dict:
    return _col(
        col.get("name", ""),
        col.get("type", "string"),
        priority=_int(col.get("priority")),
        fmt=col.get("format", ""),
        description=col.get("description", ""),
    )


def _custom_cells(columns: list[Mapping]) -> _Cells:
    def cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
        row: list[Any] = [_name(obj)]
        for col in columns:
            try:
                results = evaluate_jsonpath(obj, col.get("jsonPath", ""))
            except (ValueError, TypeError):
                results = []
            row.append(_typed_cell(col.get("type", "string"), results[0], now) if results else None)
        return row

    return cells


# --------------------------------------------------------------------------- public API


def _printer(group: str, plural: str, printer_columns: list[dict] | None) -> tuple[list[dict], _Cells]:
    """Pick the column set: CRD printer columns, a built-in printer, or the Name/Age default."""
    if printer_columns:
        columns = list(printer_columns)
        return [_NAME, *(_custom_column_def(c) for c in columns)], _custom_cells(columns)
    if printer_columns is None:
        return _PRINTERS.get((group, plural)) or _kind_printers().get((group, plural), ([_NAME, _AGE], _default_cells))
    # A CRD without additionalPrinterColumns gets an implicit date-typed Age column.
    return [_NAME, _custom_column_def(_CRD_DEFAULT_COLUMNS[0])], _custom_cells(_CRD_DEFAULT_COLUMNS)


@functools.cache
def _kind_printers() -> dict[tuple[str, str], tuple[list[dict], _Cells]]:
    """The cluster-infrastructure kinds' printers (tables_kinds.py), built from the helpers in this module."""
    from localkube.apiserver import tables_kinds

    return tables_kinds.PRINTERS


def render_table(
    *,
    group: str,
    plural: str,
    objects: list[dict],
    now: datetime.datetime,
    printer_columns: list[dict] | None = None,
    resource_version: str = "",
) -> dict:
    """Build the ``Table`` the API server returns for ``Accept: as=Table;g=meta.k8s.io;v=v1``.

    Cells always include the wide (priority 1) columns: the server renders wide and
    kubectl chooses what to show.  Rows carry the object's metadata as
    PartialObjectMetadata, kubectl's default ``includeObject=Metadata``.
    """
    columns, cells = _printer(group, plural, printer_columns)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {
            "cells": cells(obj, now),
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": _meta(obj),
            },
        }
        if (group, plural) == ("", "pods") and printer_columns is None:
            conditions = _pod_conditions(obj)
            if conditions:
                row["conditions"] = conditions
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [dict(c) for c in columns],
        "rows": rows,
    }
