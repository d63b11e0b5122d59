"""The operator's Prometheus metrics, served on `/metrics` (`--metrics-port`, `kubernetes.operator.metrics-port`).

What the loops do (passes by kind and result, their duration, the API errors that failed them, the objects that
have a loop) is counted where the loops run; what the clusters look like (phase, desired and connected workers) is
taken from the watch events kopf already receives, so a scrape costs no API request. An object's series go when
its loop ends or its deletion is seen, so the operator keeps nothing for objects that are gone. docs/metrics.md
lists them, with example alerts.
"""

from __future__ import annotations

import threading
import wsgiref.simple_server

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
)

from .. import kubernetes_api, naming
from ..naming import ClusterPhase
from .plan import Key

KINDS = {plural: kind for kind, plural in naming.PLURALS.items()}
CLUSTERS_PLURAL = naming.PLURALS[naming.DASKCLUSTER]
GROUPS_PLURAL = naming.PLURALS[naming.DASKWORKERGROUP]
UNKNOWN_PHASE = "Unknown"  # a DaskCluster the operator has not written a phase for yet
UNANSWERED = "none"  # the status label of an API request that got no answer (a timeout, a broken connection)

# One registry of our own: importing this module never adds to (or clashes with) another library's default one.
REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

RECONCILES = Counter("dask_kube_operator_reconciles", "Reconcile passes, by kind and result (success, error).",
                     ["kind", "result"], registry=REGISTRY)
RECONCILE_SECONDS = Histogram(
    "dask_kube_operator_reconcile_duration_seconds", "Duration of reconcile passes, by kind.", ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=REGISTRY)
API_ERRORS = Counter("dask_kube_operator_api_errors",
                     "Kubernetes API errors that failed a reconcile pass, by HTTP status ('none': no answer).",
                     ["status"], registry=REGISTRY)
WATCHED = Gauge("dask_kube_operator_objects_watched", "Objects with a running reconcile loop, by kind.", ["kind"],
                registry=REGISTRY)
LEADER = Gauge("dask_kube_operator_leader",
               "1 while this replica reconciles (it holds the leader Lease, or runs without leader election).",
               registry=REGISTRY)
CLUSTERS = Gauge("dask_kube_clusters", "DaskClusters by status.phase.", ["phase"], registry=REGISTRY)
WORKERS_DESIRED = Gauge("dask_kube_workers_desired", "Workers a DaskWorkerGroup asks for (spec.worker.replicas).",
                        ["namespace", "cluster", "workergroup"], registry=REGISTRY)
WORKERS_CONNECTED = Gauge("dask_kube_workers_connected",
                          "Workers of a DaskWorkerGroup connected to its scheduler (status.readyReplicas).",
                          ["namespace", "cluster", "workergroup"], registry=REGISTRY)

for _kind in KINDS.values():
    WATCHED.labels(_kind).set(0)
for _phase in (*ClusterPhase, UNKNOWN_PHASE):
    CLUSTERS.labels(str(_phase)).set(0)

_phases: dict[tuple[str, str], str] = {}  # (namespace, name) of each DaskCluster -> its phase
_groups: dict[tuple[str, str], str] = {}  # (namespace, name) of each DaskWorkerGroup -> its cluster


def serve(port: int, address: str = "0.0.0.0") -> int:
    """Serve /metrics on a thread of its own (a scrape never waits for the event loop); the port (0: any free one,
    which leaves no gap between choosing a port and binding it)."""
    server = wsgiref.simple_server.make_server(address, port, make_wsgi_app(REGISTRY), handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return int(server.server_port)


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # a line per scrape on stderr is noise
        pass


def api_error_status(err: BaseException) -> str | None:
    """The status label of an API error (its HTTP status, or 'none' for no answer); None for other errors."""
    if isinstance(err, BaseExceptionGroup) and err.exceptions:
        return api_error_status(err.exceptions[0])
    code = kubernetes_api.status_code(err)
    if code is not None:
        return str(code)
    return UNANSWERED if kubernetes_api.outage_message(err) is not None else None


def reconciled(key: Key, seconds: float, error: BaseException | None) -> None:
    kind = KINDS.get(key[0], key[0])
    RECONCILES.labels(kind, "success" if error is None else "error").inc()
    RECONCILE_SECONDS.labels(kind).observe(seconds)
    status = None if error is None else api_error_status(error)
    if status is not None:
        API_ERRORS.labels(status).inc()


def loop_started(key: Key) -> None:
    WATCHED.labels(KINDS.get(key[0], key[0])).inc()


def loop_ended(key: Key) -> None:
    WATCHED.labels(KINDS.get(key[0], key[0])).dec()
    plural, namespace, name = key
    if plural == CLUSTERS_PLURAL:
        cluster_gone(namespace, name)
    elif plural == GROUPS_PLURAL:
        group_gone(namespace, name)


def cluster_seen(namespace: str, name: str, phase: str | None) -> None:
    old = _phases.get((namespace, name))
    new = _phases[(namespace, name)] = phase or UNKNOWN_PHASE
    if old != new:
        _count_phases({new} if old is None else {old, new})


def cluster_gone(namespace: str, name: str) -> None:
    old = _phases.pop((namespace, name), None)
    if old is not None:
        _count_phases({old})


def _count_phases(phases: set[str]) -> None:
    values = list(_phases.values())
    for phase in phases:
        CLUSTERS.labels(phase).set(values.count(phase))


def group_seen(namespace: str, name: str, cluster: str, desired: int, connected: int) -> None:
    if _groups.get((namespace, name), cluster) != cluster:
        group_gone(namespace, name)
    _groups[(namespace, name)] = cluster
    WORKERS_DESIRED.labels(namespace, cluster, name).set(desired)
    WORKERS_CONNECTED.labels(namespace, cluster, name).set(connected)


def group_gone(namespace: str, name: str) -> None:
    cluster = _groups.pop((namespace, name), None)
    if cluster is not None:
        WORKERS_DESIRED.remove(namespace, cluster, name)
        WORKERS_CONNECTED.remove(namespace, cluster, name)


def held() -> dict[str, int]:
    """Objects with per-object series, by namespace (for the probe's `held_by_namespace`)."""
    counts: dict[str, int] = {}
    for namespace, _ in (*_phases, *_groups):
        counts[namespace] = counts.get(namespace, 0) + 1
    return counts
