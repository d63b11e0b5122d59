"""Legacy mode's arguments resolved against dask config, and its Pod templates read, before anything is created.

Reads dask config (an argument that is not None wins) and local files, never the network, so that a bad argument
is an exception in the client and never a half-created cluster.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import dask.config
import yaml

from .. import config, naming
from ..errors import SpecError
from ..validation import validate_cluster_name
from . import pods

Obj = dict[str, Any]
Template = Mapping[str, Any] | str | os.PathLike[str] | IO[str]
DEPLOY_MODES = ("remote", "local")


@dataclass(frozen=True)
class LegacyOptions:
    deploy_mode: str
    cluster: str
    namespace: str | None
    kubeconfig: str | None
    n_workers: int
    worker_template: Obj  # cleaned, with the extra env
    scheduler_template: Obj
    service_template: Obj
    scheduler_args: list[str]  # --idle-timeout, the lease preload
    domain: str
    timeout: float  # kubernetes.resource-timeout: the scheduler pod's start, each deletion
    service_wait_timeout: float  # a LoadBalancer's address (0: as long as it takes)
    concurrency: int
    security: Any
    # deploy_mode="local": the in-process scheduler's arguments
    local_scheduler: dict[str, Any] = field(default_factory=dict)


def resolve(
    pod_template: Template | None = None,
    name: str | None = None,
    namespace: str | None = None,
    n_workers: int | None = None,
    host: str | None = None,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    idle_timeout: float | str | None = None,
    deploy_mode: str | None = None,
    interface: str | None = None,
    protocol: str | None = None,
    dashboard_address: str | None = None,
    security: Any = None,
    scheduler_service_wait_timeout: float | None = None,
    scheduler_pod_template: Template | None = None,
    apply_default_affinity: str = "preferred",
    orphan_timeout: float | None = None,
    kubeconfig: str | os.PathLike[str] | None = None,
) -> LegacyOptions:
    """Every argument from its `kubernetes.*` config key unless given, then checked."""
    mode = config.get("deploy-mode", deploy_mode)
    if mode not in DEPLOY_MODES:
        raise SpecError(f"{mode!r} is not one of {', '.join(DEPLOY_MODES)}", "deploy_mode")
    if security is not None and mode == "remote":
        raise SpecError("TLS is supported with deploy_mode='local' only", "security")
    cluster = validate_cluster_name(config.cluster_name(str(config.get("name", name))))
    worker = load_template(pod_template, "worker-template", "worker-template-path")
    if worker is None:
        raise SpecError("no worker Pod template: pass one, or set kubernetes.worker-template or "
                        "kubernetes.worker-template-path", "pod_template")
    scheduler = load_template(scheduler_pod_template, "scheduler-template", None) or worker
    extra_env = {**(config.get("env") or {}), **(env or {})}
    idle = config.get("idle-timeout", idle_timeout)
    orphan = config.get("orphan-timeout", orphan_timeout)
    timeout = config.get_float("resource-timeout")
    scheduler_args: list[str] = []
    if idle:
        scheduler_args += ["--idle-timeout", str(idle)]
    if orphan:
        scheduler_args += ["--preload", pods.lease_preload(float(orphan), max(float(orphan), timeout))]
    return LegacyOptions(
        deploy_mode=mode,
        cluster=cluster,
        namespace=config.get("namespace", namespace),
        kubeconfig=os.fspath(kubeconfig) if kubeconfig is not None else None,
        n_workers=int(config.get("count.start", n_workers) or 0),
        worker_template=pods.add_env(pods.clean_pod_template(worker, naming.Component.WORKER, apply_default_affinity),
                                     extra_env),
        scheduler_template=pods.add_env(pods.clean_pod_template(scheduler, naming.Component.SCHEDULER,
                                                                apply_default_affinity), extra_env),
        service_template=dict(config.get("scheduler-service-template") or {}),
        scheduler_args=scheduler_args,
        domain=str(config.get("operator.cluster-domain")),
        timeout=timeout,
        service_wait_timeout=config.get_float("scheduler-service-wait-timeout", scheduler_service_wait_timeout),
        concurrency=config.get_int("operator.create-concurrency"),
        security=security,
        local_scheduler={
            "host": config.get("host", host), "port": config.get("port", port),
            "interface": config.get("interface", interface), "protocol": config.get("protocol", protocol),
            "dashboard_address": config.get("dashboard_address", dashboard_address), "security": security,
            "idle_timeout": idle},
    )


def load_template(value: Template | None, inline_key: str, path_key: str | None) -> Obj | None:
    """A Pod template from an argument, else from config; files and config values get `${VAR}` expansion."""
    if value is None:
        inline = config.get(inline_key)
        path = config.get(path_key) if path_key else None
        if inline:
            value = dask.config.expand_environment_variables(inline)
        elif path:
            value = os.path.expanduser(os.path.expandvars(str(path)))
        else:
            return None
    if isinstance(value, Mapping):
        return pods.make_pod_from_dict(value)
    text = value.read() if not isinstance(value, str | os.PathLike) else Path(os.fspath(value)).read_text()
    doc = yaml.safe_load(text)
    return pods.make_pod_from_dict(dask.config.expand_environment_variables(doc))
