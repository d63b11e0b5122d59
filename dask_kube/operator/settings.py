"""Operator settings: built once at start-up from dask config (`kubernetes.operator.*`), then passed explicitly."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from .. import config


@dataclass(frozen=True)
class AutoscalerSettings:
    """How a DaskAutoscaler moves: one sample per interval, down only after `scale_down_wait` lower samples in a
    row and by at most `max_scale_down_fraction` of the group (at least one worker) per sample."""

    interval_seconds: float = 5.0
    scale_down_wait: int = 3
    max_scale_down_fraction: float = 0.25


def instance_name() -> str:
    """This operator replica: its pod's name (the chart passes POD_NAME), else the host's name."""
    return os.environ.get("POD_NAME") or socket.gethostname()


@dataclass(frozen=True)
class OperatorSettings:
    cluster_domain: str = "cluster.local"
    # How the operator reaches schedulers: "dns" (it runs in the cluster), "port-forward" (it runs outside, as in
    # development and tests), or "auto" (dns when KUBERNETES_SERVICE_HOST says we are in a pod).
    scheduler_access: str = "auto"
    resync_seconds: float = 10.0
    resync_max_seconds: float = 80.0
    create_concurrency: int = 50
    max_workers_per_cluster: int = 5000
    events: bool = True
    rpc_timeout: float = 10.0
    request_timeout: float = 60.0  # any one API request, so that a silent connection cannot hang a loop
    autoscaler: AutoscalerSettings = AutoscalerSettings()
    instance: str = field(default_factory=instance_name)  # Events' reportingInstance

    @property
    def use_port_forward(self) -> bool:
        if self.scheduler_access == "auto":
            return "KUBERNETES_SERVICE_HOST" not in os.environ
        return self.scheduler_access == "port-forward"

    @classmethod
    def from_config(cls) -> OperatorSettings:
        return cls(
            cluster_domain=str(config.get("operator.cluster-domain")),
            scheduler_access=str(config.get("operator.scheduler-access")),
            resync_seconds=config.get_float("operator.resync-seconds"),
            resync_max_seconds=config.get_float("operator.resync-max-seconds"),
            create_concurrency=config.get_int("operator.create-concurrency"),
            max_workers_per_cluster=config.get_int("operator.max-workers-per-cluster"),
            events=bool(config.get("operator.events")),
            request_timeout=config.get_float("operator.request-timeout-seconds"),
            autoscaler=AutoscalerSettings(
                interval_seconds=config.get_float("operator.autoscaler.interval-seconds"),
                scale_down_wait=config.get_int("operator.autoscaler.scale-down-wait"),
                max_scale_down_fraction=config.get_float("operator.autoscaler.max-scale-down-fraction"),
            ),
        )
