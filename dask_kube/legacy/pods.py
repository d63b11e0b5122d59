"""Pure builders of legacy mode: a user's worker Pod template becomes the Pods and the Service that are created.

No I/O and no configuration reads: `legacy.options` resolves defaults and passes them in. Every function returns
new dicts and leaves its arguments alone, so the template a user handed over can be reused for the next cluster.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from .. import naming, pod_security, specs, status
from ..errors import SpecError

Obj = dict[str, Any]

# A worker that loses its scheduler exits after this many seconds; with restartPolicy Never its pod then ends.
DEATH_TIMEOUT = 60

# Node conventions of the legacy docs: dedicated node pools are tainted and labelled by the purpose they serve.
DEDICATED_TAINT_KEYS = ("k8s.dask.org/dedicated", "k8s.dask.org_dedicated")  # the second form suits GKE
NODE_PURPOSE_LABEL = "k8s.dask.org/node-purpose"
AFFINITY_MODES = ("preferred", "required", "none")

# The scheduler handler the client holds a connection to; see `lease_preload`.
LEASE_OP = "dask_kube_lease"


# -- the public helpers of the legacy API --------------------------------------------------------------------


def make_pod_spec(
    image: str,
    labels: Mapping[str, str] | None = None,
    threads_per_worker: int = 1,
    env: specs.Env = None,
    extra_container_config: Mapping[str, Any] | None = None,
    extra_pod_config: Mapping[str, Any] | None = None,
    memory_limit: str | int | None = None,
    memory_request: str | int | None = None,
    cpu_limit: str | int | float | None = None,
    cpu_request: str | int | float | None = None,
    annotations: Mapping[str, str] | None = None,
    resources: str | None = None,
    gpu_limit: int | None = None,
    run_as_root: bool = False,
) -> Obj:
    """A worker Pod template for `KubeCluster.from_dict`, from the few numbers people usually change.

    `resources` is the Dask worker resources string (`"GPU=1 MEM=10e9"`), not Kubernetes resources. The
    `extra_*_config` mappings use the API's camelCase names and are merged in: mappings recursively, lists
    appended, anything else replaced. The pod passes the `restricted` Pod Security Standard unless `run_as_root`
    (pod_security.py).
    """
    args = ["dask-worker", f"$({naming.SCHEDULER_ADDRESS_ENV})", "--nthreads", str(threads_per_worker),
            "--death-timeout", str(DEATH_TIMEOUT)]
    if memory_limit is not None:
        args += ["--memory-limit", str(memory_limit)]
    if resources:
        args += ["--resources", str(resources)]
    limits = {k: str(v) for k, v in (("cpu", cpu_limit), ("memory", memory_limit), ("nvidia.com/gpu", gpu_limit))
              if v is not None}
    requests = {k: str(v) for k, v in (("cpu", cpu_request), ("memory", memory_request)) if v is not None}
    container: Obj = {"name": "dask-worker", "image": image, "args": args, "env": specs.env_list(env)}
    if limits or requests:
        container["resources"] = {k: v for k, v in (("limits", limits), ("requests", requests)) if v}
    container_security = pod_security.container_context(run_as_root)
    if container_security is not None:
        container["securityContext"] = container_security
    metadata: Obj = {"labels": dict(labels or {})}
    if annotations:
        metadata["annotations"] = dict(annotations)
    pod: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                "spec": {"restartPolicy": "Never", "securityContext": pod_security.pod_context(run_as_root),
                         "containers": [container]}}
    merge_into(container, extra_container_config or {})
    merge_into(pod["spec"], extra_pod_config or {})
    return pod


def make_pod_from_dict(template: Mapping[str, Any]) -> Obj:
    """A Pod dict in the API's camelCase form, checked and completed (kind, metadata, container names)."""
    if not isinstance(template, Mapping):
        raise SpecError(f"must be a Pod mapping, not {type(template).__name__}", "pod_template")
    pod: Obj = status.without_nulls(dict(template))  # a null field is an absent one, as the API server reads it
    if pod.get("kind", "Pod") != "Pod":
        raise SpecError(f"must be a Pod, not a {pod['kind']}", "pod_template.kind")
    pod["apiVersion"] = pod.get("apiVersion") or "v1"
    pod["kind"] = "Pod"
    pod["metadata"] = dict(pod.get("metadata") or {})
    spec = pod.get("spec")
    containers = spec.get("containers") if isinstance(spec, Mapping) else None
    if not isinstance(containers, list) or not containers:
        raise SpecError("at least one container is required", "pod_template.spec.containers")
    for i, container in enumerate(containers):
        if not isinstance(container, dict):
            raise SpecError("must be a Container mapping", f"pod_template.spec.containers[{i}]")
        container.setdefault("name", f"dask-{i}")
    return pod


def clean_pod_template(template: Mapping[str, Any], pod_type: str = naming.Component.WORKER,
                       affinity: str = "preferred") -> Obj:
    """Tolerate the dedicated-pool taints and prefer (or require) nodes labelled for `pod_type`.

    Also makes sure the places later steps write to exist: labels and the first container's env.
    """
    if affinity not in AFFINITY_MODES:
        raise SpecError(f"{affinity!r} is not one of {', '.join(AFFINITY_MODES)}", "apply_default_affinity")
    pod = make_pod_from_dict(template)
    pod["metadata"]["labels"] = dict(pod["metadata"].get("labels") or {})
    spec = pod["spec"]
    spec["containers"][0]["env"] = list(spec["containers"][0].get("env") or [])
    tolerations = list(spec.get("tolerations") or [])
    tolerations += [{"key": key, "operator": "Equal", "value": str(pod_type), "effect": "NoSchedule"}
                    for key in DEDICATED_TAINT_KEYS]
    spec["tolerations"] = tolerations
    if affinity != "none":
        term = {"matchExpressions": [{"key": NODE_PURPOSE_LABEL, "operator": "In", "values": [str(pod_type)]}]}
        node: Obj = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
        if affinity == "preferred":
            node.setdefault("preferredDuringSchedulingIgnoredDuringExecution", []).append(
                {"weight": 100, "preference": term})
        else:
            required = node.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
            required.setdefault("nodeSelectorTerms", []).append(term)
    return pod


def merge_into(base: Obj, extra: Mapping[str, Any]) -> Obj:
    """Mappings merge recursively, lists are appended to, anything else is replaced."""
    for key, value in extra.items():
        current = base.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merge_into(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            current.extend(copy.deepcopy(value))
        else:
            base[key] = copy.deepcopy(value)
    return base


def add_env(template: Mapping[str, Any], env: specs.Env) -> Obj:
    """`env` appended to the first container's environment (the user's extra variables for every pod)."""
    pod = copy.deepcopy(dict(template))
    container = pod["spec"]["containers"][0]
    container["env"] = [*(container.get("env") or []), *specs.env_list(env)]
    return pod


# -- command lines --------------------------------------------------------------------------------------------


def flag_value(argv: Sequence[str], flag: str) -> str | None:
    """The value of `--flag value` or `--flag=value` in a command line (the last one wins, as in click)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1:]
    return value


def drop_flag(argv: Sequence[str], flag: str) -> list[str]:
    """`argv` without `--flag value` / `--flag=value`."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out


_QUANTITY = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z]*)\s*$")
_SUFFIXES: dict[str, int | Decimal] = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity ("500m", "1Gi", "2") as a number."""
    match = _QUANTITY.match(str(value))
    if match is None or match.group(2) not in _SUFFIXES:
        raise SpecError(f"{value!r} is not a quantity (examples: 1, 500m, 2Gi)", "resources")
    return Decimal(match.group(1)) * Decimal(_SUFFIXES[match.group(2)])


def argv_of(container: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in (container.get("command") or [])] + [str(a) for a in (container.get("args") or [])]


def derived_worker_args(argv: Sequence[str], resources: Mapping[str, Any] | None, death_timeout: int) -> list[str]:
    """Flags a worker needs and its command line lacks: threads and memory from its limits, and a death timeout.

    A worker sized by its pod's limits uses what Kubernetes grants it rather than the node's whole size, which is
    what `dask worker` would otherwise see from inside a container. CPU limits round down (at least one thread).
    """
    limits = (resources or {}).get("limits") or {}
    extra: list[str] = []
    if flag_value(argv, "--nthreads") is None and limits.get("cpu") is not None:
        extra += ["--nthreads", str(max(1, math.floor(parse_quantity(limits["cpu"]))))]
    if flag_value(argv, "--memory-limit") is None and limits.get("memory") is not None:
        extra += ["--memory-limit", str(int(parse_quantity(limits["memory"])))]
    if flag_value(argv, "--death-timeout") is None:
        extra += ["--death-timeout", str(death_timeout)]
    return extra


def _worker_program(argv: Sequence[str]) -> tuple[int, list[str]] | None:
    """Where the worker program sits in `argv`, and the tokens that start a scheduler instead."""
    for i, arg in enumerate(argv):
        base = arg.rsplit("/", 1)[-1]
        if base == "dask-worker":
            return i, [arg[: len(arg) - len("dask-worker")] + "dask-scheduler"]
        if base == "dask" and i + 1 < len(argv) and argv[i + 1] == "worker":
            return i, [arg, "scheduler"]
        if arg == "distributed.cli.dask_worker":
            return i, ["distributed.cli.dask_scheduler"]
    return None


def _is_scheduler(argv: Sequence[str]) -> bool:
    return any(a.rsplit("/", 1)[-1] == "dask-scheduler" or a == "distributed.cli.dask_scheduler"
               or (a.rsplit("/", 1)[-1] == "dask" and argv[i + 1:i + 2] == ["scheduler"])
               for i, a in enumerate(argv))


def scheduler_command(container: Mapping[str, Any]) -> tuple[list[str] | None, list[str]]:
    """`(command, args)` that start a scheduler with whatever starts the worker in `container`.

    The worker's own flags are dropped; a wrapper before the program (`tini --`, `python -m`) is kept. A
    container that already runs a scheduler is left as it is, and one with no recognisable worker program keeps
    its command (an image entrypoint) and gets `dask-scheduler` as its arguments.
    """
    command = [str(a) for a in container["command"]] if container.get("command") else None
    args = [str(a) for a in (container.get("args") or [])]
    argv = [*(command or []), *args]
    if _is_scheduler(argv):
        return command, args
    found = _worker_program(argv)
    if found is None:
        return command, ["dask-scheduler"]
    index, program = found
    start = [*argv[:index], *program]
    if command is not None and index < len(command):
        return start, []
    return command, start[len(command or []):]


# -- what the cluster creates ---------------------------------------------------------------------------------


def _set_env(container: Obj, values: Mapping[str, str]) -> None:
    """Our variables first (so that the template's may refer to them), replacing any of the same name."""
    rest = [e for e in container.get("env") or [] if e.get("name") not in values]
    container["env"] = [*specs.env_list(values), *rest]


def _metadata(template: Mapping[str, Any], name: str, namespace: str, labels: Mapping[str, str],
              owner: Mapping[str, Any] | None) -> Obj:
    meta = copy.deepcopy(dict(template.get("metadata") or {}))
    for key in ("generateName", "uid", "resourceVersion", "creationTimestamp", "ownerReferences"):
        meta.pop(key, None)
    meta.update(name=name, namespace=namespace, labels={**(meta.get("labels") or {}), **labels})
    if owner is not None:
        meta["ownerReferences"] = [dict(owner)]
    return meta


def worker_pod(template: Mapping[str, Any], *, name: str, cluster: str, namespace: str, scheduler_address: str,
               owner: Mapping[str, Any] | None = None, death_timeout: int = DEATH_TIMEOUT) -> Obj:
    """One worker Pod: named `name`, which is also its Dask worker name, so scheduler and cluster agree on it."""
    pod = copy.deepcopy(dict(template))
    pod["metadata"] = _metadata(template, name, namespace, naming.worker_selector(cluster), owner)
    container = pod["spec"]["containers"][0]
    _set_env(container, {naming.SCHEDULER_ADDRESS_ENV: scheduler_address, naming.WORKER_NAME_ENV: name})
    args = drop_flag([str(a) for a in container.get("args") or []], "--name")
    command = [str(a) for a in container.get("command") or []]
    extra = derived_worker_args([*command, *args], container.get("resources"), death_timeout)
    container["args"] = [*args, *extra, "--name", name]
    return pod


def scheduler_pod(template: Mapping[str, Any], *, cluster: str, namespace: str,
                  extra_args: Iterable[str] = ()) -> Obj:
    """The scheduler Pod, listening where the Service expects it; named like its Service."""
    pod = copy.deepcopy(dict(template))
    pod["metadata"] = _metadata(template, naming.scheduler_name(cluster), namespace,
                                naming.scheduler_selector(cluster), None)
    container = pod["spec"]["containers"][0]
    command, args = scheduler_command(container)
    if command is None:
        container.pop("command", None)
    else:
        container["command"] = command
    argv = [*(command or []), *args]
    if flag_value(argv, "--port") is None:
        args += ["--port", str(naming.SCHEDULER_PORT)]
    if flag_value(argv, "--dashboard-address") is None:
        args += ["--dashboard-address", f":{naming.DASHBOARD_PORT}"]
    container["args"] = [*args, *extra_args]
    container["ports"] = [
        {"name": naming.SCHEDULER_PORT_NAME, "containerPort": naming.SCHEDULER_PORT, "protocol": "TCP"},
        {"name": naming.DASHBOARD_PORT_NAME, "containerPort": naming.DASHBOARD_PORT, "protocol": "TCP"},
    ]
    # Ready means listening: the Service routes, and the client connects, only once the scheduler can answer.
    container.setdefault("readinessProbe", {"tcpSocket": {"port": naming.SCHEDULER_PORT_NAME}, "periodSeconds": 1})
    return pod


def scheduler_service(template: Mapping[str, Any], *, cluster: str, namespace: str,
                      owner: Mapping[str, Any] | None = None) -> Obj:
    """The scheduler Service; its selector is always the scheduler's labels, whatever the template says."""
    service = copy.deepcopy(dict(template))
    service["apiVersion"] = service.get("apiVersion") or "v1"
    service["kind"] = "Service"
    service["metadata"] = _metadata(template, naming.scheduler_name(cluster), namespace,
                                    naming.scheduler_selector(cluster), owner)
    spec = service.setdefault("spec", {})
    spec["selector"] = naming.scheduler_selector(cluster)
    if not spec.get("ports"):
        spec["ports"] = [
            {"name": naming.SCHEDULER_PORT_NAME, "protocol": "TCP", "port": naming.SCHEDULER_PORT,
             "targetPort": naming.SCHEDULER_PORT},
            {"name": naming.DASHBOARD_PORT_NAME, "protocol": "TCP", "port": naming.DASHBOARD_PORT,
             "targetPort": naming.DASHBOARD_PORT},
        ]
    return service


# The scheduler side of the client lease, run as a `--preload` text (supported by every distributed since 2021).
# The client keeps one connection open on LEASE_OP; when no connection has been held for TIMEOUT seconds (the
# client process died, or its port-forward did), the scheduler closes, its workers follow after their death
# timeout, and every pod ends, so a killed notebook leaves nothing running. Kept free of dask_kube imports: it
# runs in whatever image the user chose.
_LEASE_SOURCE = '''\
import asyncio
import logging

TIMEOUT = __TIMEOUT__
FIRST = __FIRST__
logger = logging.getLogger("distributed.scheduler")


def dask_setup(scheduler):
    holders = set()
    timer = {}

    def orphaned():
        if not holders and scheduler.status.name == "running":
            logger.warning("dask_kube: no client for %s s; closing the scheduler", TIMEOUT)
            asyncio.ensure_future(scheduler.close())

    def arm(delay):
        timer["handle"] = asyncio.get_running_loop().call_later(delay, orphaned)

    async def lease(comm, **kwargs):
        holders.add(comm)
        if timer.get("handle") is not None:
            timer.pop("handle").cancel()
        try:
            await comm.read()
        except Exception:
            pass
        finally:
            holders.discard(comm)
            if not holders:
                arm(TIMEOUT)

    scheduler.handlers["__OP__"] = lease
    arm(FIRST)
'''


def lease_preload(timeout: float, first: float) -> str:
    """The preload text: close after `timeout` s without a client, or `first` s if none ever came."""
    return (_LEASE_SOURCE.replace("__TIMEOUT__", repr(float(timeout))).replace("__FIRST__", repr(float(first)))
            .replace("__OP__", LEASE_OP))
