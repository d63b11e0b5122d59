"""KubeCluster's arguments resolved against dask config and validated, before any API call.

Pure: reads dask config (an argument that is not None wins) and local YAML files, never the network, so that a bad
argument is an exception in the client and never a half-created cluster.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from distributed.security import Security

from .. import config, images, naming, specs, status, validation
from ..errors import SpecError

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")


class CreateMode(StrEnum):
    """A StrEnum, so that the string read from dask config compares equal (with a plain Enum, config never applies)."""

    CREATE_OR_CONNECT = "CREATE_OR_CONNECT"
    CREATE_ONLY = "CREATE_ONLY"
    CONNECT_ONLY = "CONNECT_ONLY"


@dataclass(frozen=True)
class ClusterOptions:
    name: str
    namespace: str | None
    image: str
    n_workers: int
    resources: dict[str, Any]
    env: specs.Env
    worker_command: list[str]
    port_forward_cluster_ip: bool | None
    create_mode: CreateMode
    shutdown_on_close: bool | None  # the argument; None: decided by who created the cluster (see shutdown_on_close)
    config_shutdown_on_close: bool | None
    idle_timeout: int
    resource_timeout: float
    scheduler_service_type: str
    custom_cluster_spec: dict[str, Any] | None
    scheduler_forward_port: int | None
    jupyter: bool
    tls: dict[str, Any] | None = None  # the `spec.tls` that `security=` asks for; None: the spec's own (or none)
    run_as_root: bool = False  # root pods, for images that need it (they fail the `restricted` Pod Security level)
    network_policy: bool = False  # the operator guards the scheduler with a NetworkPolicy
    client_lease_timeout: int = 0  # seconds; 0: a cluster this client creates is not leased

    def lease_seconds(self) -> int:
        """The lease a cluster this client creates carries (0: none). Only a cluster deleted on close is leased:
        one kept on purpose (`shutdown_on_close=False`) must outlive its client."""
        return self.client_lease_timeout if self.deletes_on_close(created=True) else 0

    def manifest(self) -> dict[str, Any]:
        """The DaskCluster to create: the custom spec as given, or one built from the arguments; `security=` and
        the client lease apply to both."""
        if self.custom_cluster_spec is not None:
            manifest = copy.deepcopy(self.custom_cluster_spec)
            if self.tls:
                manifest["spec"]["tls"] = dict(self.tls)
            if self.network_policy:
                manifest["spec"]["networkPolicy"] = {"enabled": True}
        else:
            manifest = specs.make_cluster_spec(
                name=self.name, image=self.image, n_workers=self.n_workers, resources=self.resources, env=self.env,
                worker_command=self.worker_command, scheduler_service_type=self.scheduler_service_type,
                idle_timeout=self.idle_timeout, jupyter=self.jupyter, tls=self.tls, run_as_root=self.run_as_root,
                network_policy=self.network_policy)
        if self.lease_seconds():
            meta = manifest.setdefault("metadata", {})
            meta["annotations"] = {**(meta.get("annotations") or {}),
                                   naming.CLIENT_LEASE_ANNOTATION: str(self.lease_seconds())}
        return manifest

    def deletes_on_close(self, created: bool) -> bool:
        """Delete on close? An explicit argument wins; otherwise only a cluster this client created, unless config
        says false. A cluster found by name is never deleted by default: closing a client must not delete a cluster
        that others may be using."""
        if self.shutdown_on_close is not None:
            return self.shutdown_on_close
        if not created:
            return False
        return self.config_shutdown_on_close is not False


def _as_bool(value: Any, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise SpecError(f"must be true or false, not {value!r}", field)


def _as_int(value: Any, field: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SpecError(f"must be an integer, not {value!r}", field)
    if isinstance(value, bool) or number < minimum or (isinstance(value, float) and value != number):
        raise SpecError(f"must be an integer >= {minimum}, not {value!r}", field)
    return number


def resolve_security(value: Any) -> dict[str, Any] | None:
    """`security=`: True (the operator generates a CA and certificate), the name of a Secret holding `ca.crt`,
    `tls.crt` and `tls.key`, or False/None (plain TCP). A `distributed.security.Security` cannot be used: the
    scheduler and workers read their certificates from a Secret, which a client-side object cannot provide."""
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        value = _as_bool(value, "security")
    if value is None or value is False:
        return None
    if value is True:
        return specs.tls_spec()
    if isinstance(value, str):
        return specs.tls_spec(secret_name=validation.validate_secret_name(value, "security"))
    if isinstance(value, Security):
        raise SpecError("a distributed Security object cannot be used: the scheduler and workers read their "
                        "certificates from a Kubernetes Secret. Pass security=True to have the operator generate "
                        "them, or the name of a Secret with keys ca.crt, tls.crt and tls.key", "security")
    raise SpecError(f"must be True, False or the name of a Secret, not {value!r}", "security")


def load_custom_spec(value: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """A DaskCluster dict, or the path of a YAML file holding one."""
    if isinstance(value, str | os.PathLike):
        path = Path(value).expanduser()
        try:
            value = yaml.safe_load(path.read_text())
        except OSError as err:
            raise SpecError(f"cannot read {path}: {err.strerror}", "custom_cluster_spec")
    if not isinstance(value, Mapping):
        raise SpecError("must be a DaskCluster mapping or the path of a YAML file holding one", "custom_cluster_spec")
    spec: dict[str, Any] = status.without_nulls(dict(value))  # null fields are absent, as the API server reads them
    if spec.get("kind", naming.DASKCLUSTER) != naming.DASKCLUSTER:
        raise SpecError(f"is a {spec.get('kind')}, not a {naming.DASKCLUSTER}", "custom_cluster_spec")
    spec.setdefault("apiVersion", naming.API_VERSION)
    spec.setdefault("kind", naming.DASKCLUSTER)
    body = spec.get("spec")
    if not isinstance(body, Mapping) or "scheduler" not in body or "worker" not in body:
        raise SpecError("needs spec.scheduler and spec.worker", "custom_cluster_spec")
    problems = (validation.pod_spec_problems((body["scheduler"] or {}).get("spec"), "spec.scheduler.spec")
                + validation.pod_spec_problems((body["worker"] or {}).get("spec"), "spec.worker.spec"))
    if problems:
        raise SpecError("; ".join(str(p) for p in problems), "custom_cluster_spec")
    return spec


def resolve(
    *,
    name: str | None = None,
    namespace: str | None = None,
    image: str | None = None,
    n_workers: int | None = None,
    resources: Mapping[str, Any] | None = None,
    env: specs.Env = None,
    worker_command: str | Sequence[str] | None = None,
    port_forward_cluster_ip: bool | None = None,
    create_mode: CreateMode | str | None = None,
    shutdown_on_close: bool | None = None,
    idle_timeout: int | None = None,
    resource_timeout: float | None = None,
    scheduler_service_type: str | None = None,
    custom_cluster_spec: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    scheduler_forward_port: int | None = None,
    jupyter: bool | None = None,
    security: bool | str | None = None,
    run_as_root: bool | None = None,
    network_policy: bool | None = None,
) -> ClusterOptions:
    """Every argument from its `kubernetes.*` config key unless given, then validated."""
    mode_value = config.get("create-mode", create_mode)
    try:
        mode = CreateMode(str(mode_value).upper())
    except ValueError:
        raise SpecError(f"{mode_value!r} is not one of {', '.join(CreateMode)}", "create_mode")

    custom_value = config.get("custom-cluster-spec", custom_cluster_spec)
    custom = load_custom_spec(custom_value) if custom_value is not None else None
    if custom is not None:
        meta = custom.setdefault("metadata", {})
        if name is not None:
            meta["name"] = name  # an explicit name wins over the file's, so one file serves many clusters
        elif not meta.get("name"):
            meta["name"] = config.cluster_name(str(config.get("name")))
        cluster_name = meta["name"]
    else:
        cluster_name = config.cluster_name(str(config.get("name", name)))
    validation.validate_cluster_name(cluster_name)

    resolved_env = config.get("env", env)
    validation.validate_env(resolved_env)
    resolved_resources = validation.validate_resources(config.get("resources", resources))
    command = config.get("worker-command", worker_command)
    validation.validate_worker_command(command)
    service_type = str(config.get("scheduler-service-type", scheduler_service_type))
    if service_type not in SERVICE_TYPES:
        raise SpecError(f"{service_type!r} is not one of {', '.join(SERVICE_TYPES)}", "scheduler_service_type")
    forward_port = config.get("scheduler-forward-port", scheduler_forward_port)
    resolved_namespace = config.get("namespace", namespace)
    if resolved_namespace is not None and not isinstance(resolved_namespace, str):
        raise SpecError(f"must be a string, not {resolved_namespace!r}", "namespace")
    idle = config.get("idle-timeout", idle_timeout)
    timeout = config.get_float("resource-timeout", resource_timeout)
    if timeout <= 0:
        raise SpecError(f"must be a positive number of seconds, not {timeout}", "resource_timeout")

    tls = resolve_security(config.get("security", security))
    lease = config.get("client-lease-timeout")

    return ClusterOptions(
        name=cluster_name,
        namespace=resolved_namespace or None,
        image=str(image or images.default_image()),
        n_workers=_as_int(config.get("count.start", n_workers), "n_workers"),
        resources=resolved_resources,
        env=resolved_env,
        worker_command=specs.command_list(command),
        port_forward_cluster_ip=_as_bool(config.get("port-forward-cluster-ip", port_forward_cluster_ip),
                                         "port_forward_cluster_ip"),
        create_mode=mode,
        shutdown_on_close=_as_bool(shutdown_on_close, "shutdown_on_close"),
        config_shutdown_on_close=_as_bool(config.get("shutdown-on-close"), "kubernetes.shutdown-on-close"),
        idle_timeout=_as_int(idle or 0, "idle_timeout"),
        resource_timeout=timeout,
        scheduler_service_type=service_type,
        custom_cluster_spec=custom,
        scheduler_forward_port=None if forward_port is None else _as_int(forward_port, "scheduler_forward_port", 1),
        jupyter=bool(_as_bool(config.get("scheduler-jupyter", jupyter), "jupyter")),
        tls=tls,
        run_as_root=bool(_as_bool(config.get("run-as-root", run_as_root), "run_as_root")),
        network_policy=bool(_as_bool(config.get("network-policy", network_policy), "network_policy")),
        client_lease_timeout=_as_int(lease or 0, "kubernetes.client-lease-timeout"),
    )
