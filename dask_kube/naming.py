"""The names of the `kubernetes.dask.org/v1` contract (docs/compat.md), in one place.

Labels, object names, ports, environment variables, phases, condition types and reasons, and Event reasons:
every other module refers to these, never to the literals.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

GROUP = "kubernetes.dask.org"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"

# Kinds and plurals.
DASKCLUSTER = "DaskCluster"
DASKWORKERGROUP = "DaskWorkerGroup"
DASKJOB = "DaskJob"
DASKAUTOSCALER = "DaskAutoscaler"
PLURALS = {
    DASKCLUSTER: "daskclusters",
    DASKWORKERGROUP: "daskworkergroups",
    DASKJOB: "daskjobs",
    DASKAUTOSCALER: "daskautoscalers",
}

# Labels.
CLUSTER_LABEL = "dask.org/cluster-name"
COMPONENT_LABEL = "dask.org/component"
WORKERGROUP_LABEL = "dask.org/workergroup-name"
ISTIO_INJECT_LABEL = "sidecar.istio.io/inject"
# The operator's pod, as the chart and the plain manifests label it (whatever the release's name): a cluster's
# NetworkPolicy lets pods with these labels, in any namespace, reach its scheduler.
OPERATOR_POD_LABELS = {"app.kubernetes.io/part-of": "dask-kube", "app.kubernetes.io/component": "operator"}


class Component(StrEnum):
    SCHEDULER = "scheduler"
    WORKER = "worker"
    WORKERGROUP = "workergroup"
    JOB_RUNNER = "job-runner"
    AUTOSCALER = "autoscaler"


# A DaskCluster that a client holds (docs/kubecluster.md, "Client leases"): seconds without a renewal of its Lease
# after which the operator deletes it. Never inherited: a DaskJob's cluster is not its client's.
CLIENT_LEASE_ANNOTATION = "kubernetes.dask.org/client-lease-seconds"
# Annotation prefixes that never propagate from a parent to its children.
NON_PROPAGATING_ANNOTATION_PREFIXES = ("kopf.zalando.org", "kubectl.kubernetes.io", CLIENT_LEASE_ANNOTATION)
# On worker and scheduler pods: the hash of the template they were made from (operator/rollout.py).
TEMPLATE_HASH_ANNOTATION = "kubernetes.dask.org/template-hash"
# On a DaskWorkerGroup: the DaskAutoscaler that scales it (operator/autoscaler.py, `senior_rival`).
AUTOSCALED_BY_ANNOTATION = "kubernetes.dask.org/autoscaled-by"
# The reference autoscaler's bookkeeping annotation (read for compatibility; dask_kube keeps status instead).
COOLDOWN_ANNOTATION = "kubernetes.dask.org/cooldown-until"

# Ports.
SCHEDULER_PORT = 8786
SCHEDULER_PORT_NAME = "tcp-comm"
DASHBOARD_PORT = 8787
DASHBOARD_PORT_NAME = "http-dashboard"
WORKER_DASHBOARD_PORT = 8788

# Environment variables injected into containers.
SCHEDULER_ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
WORKER_NAME_ENV = "DASK_WORKER_NAME"
POD_IP_ENV = "DASK_KUBE_POD_IP"  # the scheduler's own address for its preStop hook (worker_lifecycle)

# TLS (docs/security.md). A TLS cluster's certificates live in one Secret with the layout of a `kubernetes.io/tls`
# Secret (cert-manager writes the same three keys); containers read them through env `secretKeyRef`s, which dask
# config turns into `distributed.comm.tls.*` (a PEM value stays a string; distributed accepts PEM contents).
TLS_SECRET_TYPE = "kubernetes.io/tls"
TLS_CA_KEY = "ca.crt"
TLS_CERT_KEY = "tls.crt"
TLS_PRIVATE_KEY_KEY = "tls.key"
TLS_CA_ENV = "DASK_DISTRIBUTED__COMM__TLS__CA_FILE"
TLS_REQUIRE_ENCRYPTION_ENV = "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"
# role -> (certificate variable, private key variable); every role presents the cluster's one certificate.
TLS_ROLE_ENV = {
    role: (f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__CERT", f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__KEY")
    for role in ("scheduler", "worker", "client")
}
TCP_SCHEME = "tcp"
TLS_SCHEME = "tls"

DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_WORKER_GROUP = "default"

# Names are DNS labels: the longest child suffix is "-scheduler" (10), so a cluster name has at most 53 characters.
MAX_NAME_LENGTH = 63
MAX_CLUSTER_NAME_LENGTH = MAX_NAME_LENGTH - len("-scheduler")


def scheduler_name(cluster: str) -> str:
    """The scheduler Pod and its Service share this name."""
    return f"{cluster}-scheduler"


def network_policy_name(cluster: str) -> str:
    """The NetworkPolicy that guards a cluster's scheduler (spec.networkPolicy)."""
    return scheduler_name(cluster)


def default_worker_group_name(cluster: str) -> str:
    return worker_group_name(cluster, DEFAULT_WORKER_GROUP)


def worker_group_name(cluster: str, group: str) -> str:
    """The DaskWorkerGroup of a group that the client adds to `cluster`."""
    return f"{cluster}-{group}"


WORKER_POD_SUFFIX_BYTES = 5


def worker_pod_name(worker_group: str) -> str:
    return f"{worker_group}-worker-{secrets.token_hex(WORKER_POD_SUFFIX_BYTES)}"


def is_worker_pod_name(worker_group: str, name: str) -> bool:
    """Whether `name` is one that `worker_pod_name(worker_group)` makes (so a worker of that name is the group's)."""
    prefix = f"{worker_group}-worker-"
    suffix = name[len(prefix):]
    return (name.startswith(prefix) and len(suffix) == 2 * WORKER_POD_SUFFIX_BYTES
            and all(c in "0123456789abcdef" for c in suffix))


def job_runner_name(job: str) -> str:
    return f"{job}-runner"


def autoscaler_name(cluster: str) -> str:
    return cluster


def client_lease_name(cluster: str) -> str:
    """The coordination.k8s.io Lease that the clients of a cluster renew."""
    return f"{cluster}-client"


def tls_secret_name(cluster: str) -> str:
    """The Secret the operator generates for a TLS cluster that names no Secret of its own."""
    return f"{cluster}-tls"


def scheduler_dns_names(cluster: str, namespace: str, domain: str = DEFAULT_CLUSTER_DOMAIN) -> list[str]:
    """Every in-cluster DNS name of the scheduler Service, shortest first (the certificate's SANs)."""
    service = scheduler_name(cluster)
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.{domain}"]


def scheduler_address(cluster: str, namespace: str, domain: str = DEFAULT_CLUSTER_DOMAIN, tls: bool = False) -> str:
    """What workers and job runners are told: the scheduler Service's in-cluster DNS name."""
    scheme = TLS_SCHEME if tls else TCP_SCHEME
    return f"{scheme}://{scheduler_dns_names(cluster, namespace, domain)[-1]}:{SCHEDULER_PORT}"


def cluster_selector(cluster: str) -> dict[str, str]:
    return {CLUSTER_LABEL: cluster}


def scheduler_selector(cluster: str) -> dict[str, str]:
    return {CLUSTER_LABEL: cluster, COMPONENT_LABEL: Component.SCHEDULER.value}


def worker_selector(cluster: str, worker_group: str | None = None) -> dict[str, str]:
    selector = {CLUSTER_LABEL: cluster, COMPONENT_LABEL: Component.WORKER.value}
    if worker_group is not None:
        selector[WORKERGROUP_LABEL] = worker_group
    return selector


def job_runner_selector(job: str) -> dict[str, str]:
    return {CLUSTER_LABEL: job, COMPONENT_LABEL: Component.JOB_RUNNER.value}


def scheduler_ports(containers: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """The container ports named `tcp-comm` and `http-dashboard` in these scheduler containers, else the
    defaults (a custom spec may move them)."""
    ports = {SCHEDULER_PORT_NAME: SCHEDULER_PORT, DASHBOARD_PORT_NAME: DASHBOARD_PORT}
    for container in containers:
        for port in container.get("ports") or ():
            if port.get("name") in ports and port.get("containerPort"):
                ports[port["name"]] = int(port["containerPort"])
    return ports[SCHEDULER_PORT_NAME], ports[DASHBOARD_PORT_NAME]


def selector_string(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in selector.items())


class ClusterPhase(StrEnum):
    CREATED = "Created"
    PENDING = "Pending"
    RUNNING = "Running"
    ERROR = "Error"


class JobStatus(StrEnum):
    JOB_CREATED = "JobCreated"
    CLUSTER_CREATED = "ClusterCreated"
    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"


class ConditionType(StrEnum):
    """Standard `status.conditions` types written by the operator."""

    SPEC_VALID = "SpecValid"  # False: the resource can never be reconciled as written
    SCHEDULER_READY = "SchedulerReady"  # the scheduler answers RPC
    WORKERS_READY = "WorkersReady"  # every desired worker is connected to the scheduler
    READY = "Ready"  # the resource does what it asks (cluster: scheduler and workers; group: its workers)
    WORKERS_UPDATED = "WorkersUpdated"  # every worker pod runs the group's current template (rollouts)
    SCHEDULER_UPDATED = "SchedulerUpdated"  # the scheduler pod runs the cluster's current scheduler template
    JOB_COMPLETE = "Complete"
    JOB_FAILED = "Failed"


class Reason(StrEnum):
    """Reasons of conditions and Events: one vocabulary for both."""

    VALID = "Valid"
    INVALID_SPEC = "InvalidSpec"
    FORBIDDEN = "Forbidden"  # the operator's service account lacks a permission (the message names it)
    SCHEDULER_RUNNING = "SchedulerRunning"
    SCHEDULER_STARTING = "SchedulerStarting"
    SCHEDULER_UNSCHEDULABLE = "SchedulerUnschedulable"
    SCHEDULER_CRASH_LOOP = "SchedulerCrashLoopBackOff"
    SCHEDULER_IMAGE_PULL = "SchedulerImagePullBackOff"
    SCHEDULER_RECREATED = "SchedulerRecreated"
    SCHEDULER_STRANDED = "SchedulerStranded"  # its node stopped answering: force-deleted so a new one can start
    WORKERS_CONNECTED = "WorkersConnected"
    WORKERS_STARTING = "WorkersStarting"
    WORKERS_UNSCHEDULABLE = "WorkersUnschedulable"
    SCALED_UP = "ScaledUp"
    SCALED_DOWN = "ScaledDown"
    WORKERS_RETIRED = "WorkersRetired"
    EVICTED_WORKERS_RETIRED = "EvictedWorkersRetired"  # their pods were deleted by someone else: data moved first
    ROLLING_OUT = "RollingOut"  # workers on an older template are being replaced
    ROLLED_OUT = "RolledOut"  # every worker on the current template
    SCHEDULER_RESTART_PENDING = "SchedulerRestartPending"  # a changed scheduler template waits for its next start
    SCHEDULER_UP_TO_DATE = "SchedulerUpToDate"
    WORKER_REPLACED = "WorkerReplaced"
    WORKERS_LOST = "WorkersLost"
    IDLE_TIMEOUT = "IdleTimeout"
    CLIENT_LEASE_EXPIRED = "ClientLeaseExpired"  # no client renewed the cluster's Lease in time: deleted
    AUTOSCALED = "Autoscaled"
    JOB_SUCCEEDED = "JobSucceeded"
    JOB_FAILED = "JobFailed"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    CLUSTER_FAILED = "ClusterFailed"
    RUNNER_DELETED = "RunnerDeleted"
    RUNNER_NOT_OWNED = "RunnerNotOwned"  # a pod with the runner's name that the job did not create: replaced
    TTL_EXPIRED = "TTLExpired"
    CLUSTER_MISSING = "ClusterMissing"
    RUNNER_NOT_STARTED = "RunnerNotStarted"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    INVALID_BOUNDS = "InvalidBounds"
    WORKER_GROUP_MISSING = "WorkerGroupMissing"
    CONFLICTING_AUTOSCALER = "ConflictingAutoscaler"
    TLS_SECRET_CREATED = "TLSSecretCreated"
    TLS_SECRET_INVALID = "TLSSecretInvalid"
