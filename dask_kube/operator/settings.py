"""Operator settings: built once at start-up from dask config (`kubernetes.operator.*`), then passed explicitly."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from .. import config, worker_lifecycle


@dataclass(frozen=True)
class AutoscalerSettings:
    """How a DaskAutoscaler moves: one sample per interval, down only after `scale_down_wait` lower samples in a
    row and by at most `max_scale_down_fraction` of the group (at least one worker) per sample."""

    interval_seconds: float = 5.0
    scale_down_wait: int = 3
    max_scale_down_fraction: float = 0.25


@dataclass(frozen=True)
class LeaderElectionSettings:
    """Leader election on a Lease (leadership.py). The holder renews every `retry_period`; it gives up leading when
    it could not renew for `renew_deadline`, before standbys, which wait `lease_duration` without a renewal, take
    over: so the deadline must be shorter than the duration, with room to stop in between."""

    enabled: bool = False
    lease_name: str = "dask-kube-operator"
    namespace: str | None = None  # None: the pod's own
    lease_duration_seconds: int = 10
    renew_deadline_seconds: float = 7.0
    retry_period_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period_seconds < self.renew_deadline_seconds < self.lease_duration_seconds:
            raise ValueError("leader election needs 0 < retry-period-seconds < renew-deadline-seconds < "
                             f"lease-duration-seconds, not {self.retry_period_seconds}, "
                             f"{self.renew_deadline_seconds}, {self.lease_duration_seconds}")

    @property
    def stop_grace_seconds(self) -> float:
        """How long a leader that lost its Lease waits for kopf to stop before it exits regardless."""
        return (self.lease_duration_seconds - self.renew_deadline_seconds) / 2

    @classmethod
    def from_config(cls) -> LeaderElectionSettings:
        return cls(
            enabled=bool(config.get("operator.leader-election.enabled")),
            lease_name=str(config.get("operator.leader-election.lease-name")),
            namespace=config.get("operator.leader-election.namespace") or None,
            lease_duration_seconds=config.get_int("operator.leader-election.lease-duration-seconds"),
            renew_deadline_seconds=config.get_float("operator.leader-election.renew-deadline-seconds"),
            retry_period_seconds=config.get_float("operator.leader-election.retry-period-seconds"),
        )


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
    watch_timeout: int = 1800  # seconds: each watch request asks the server to end it after this; then it resumes
    worker_grace_seconds: int = worker_lifecycle.DEFAULT_GRACE_SECONDS  # a deleted worker's time to be retired
    scheduler_disruption_budget: bool = False  # for clusters whose spec.scheduler.disruptionBudget is unset
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
            watch_timeout=config.get_int("operator.watch-timeout-seconds"),
            worker_grace_seconds=config.get_int("operator.worker-grace-seconds"),
            scheduler_disruption_budget=bool(config.get("operator.scheduler-disruption-budget")),
            autoscaler=AutoscalerSettings(
                interval_seconds=config.get_float("operator.autoscaler.interval-seconds"),
                scale_down_wait=config.get_int("operator.autoscaler.scale-down-wait"),
                max_scale_down_fraction=config.get_float("operator.autoscaler.max-scale-down-fraction"),
            ),
        )
