"""The operator's /metrics, scraped the way Prometheus would while a cluster scales: the counters move, the gauges
follow the cluster, an API error that failed a pass is counted by status, and a deleted cluster's series go."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.reliability import Kubectl, apply, cluster_body, exactly, running, until

pytestmark = [pytest.mark.e2e, pytest.mark.localkube_only]
STATUS_WRITES = r"/namespaces/{ns}/daskworkergroups/[^/?]+/status"


def samples(operator: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, its labels): value} of one scrape."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(operator.metrics()) for s in family.samples}


def value(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return scrape.get((name, frozenset(labels.items())))


def test_metrics_move_during_a_scale(kubectl: Kubectl, operator: Any, namespace: str, local_kube: Any) -> None:
    apply(kubectl, cluster_body("metered", 0))
    running(kubectl, "metered")
    group = {"namespace": namespace, "cluster": "metered", "workergroup": "metered-default"}

    def desired(n: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        scrape = samples(operator)
        return scrape if value(scrape, "dask_kube_workers_desired", **group) == n else None

    before = until(lambda: desired(0), "the group's desired workers (0) on /metrics")
    assert value(before, "dask_kube_operator_leader") == 1  # no leader election: this replica reconciles
    assert value(before, "dask_kube_operator_objects_watched", kind="DaskCluster") >= 1  # type: ignore[operator]
    assert value(before, "dask_kube_clusters", phase="Running") >= 1  # type: ignore[operator]

    # Two status writes of the worker group answered 503: the passes that made them fail, and are retried.
    fault = local_kube.call(local_kube.kube.fail_requests, STATUS_WRITES.replace("{ns}", namespace), status=503,
                            count=2, method="PATCH", user_agent="kr8s")
    kubectl("scale", "daskcluster", "metered", "--replicas=4")
    exactly(kubectl, "metered", 4)
    assert fault.count == 0, "the fault never fired"

    after = until(lambda: desired(4), "the group's desired workers (4) on /metrics")
    assert value(after, "dask_kube_workers_connected", **group) == 0  # simulated workers never join

    def grew(name: str, **labels: str) -> bool:
        return (value(after, name, **labels) or 0) > (value(before, name, **labels) or 0)

    assert grew("dask_kube_operator_reconciles_total", kind="DaskWorkerGroup", result="success")
    assert grew("dask_kube_operator_reconciles_total", kind="DaskWorkerGroup", result="error")
    assert grew("dask_kube_operator_reconcile_duration_seconds_count", kind="DaskWorkerGroup")
    assert grew("dask_kube_operator_api_errors_total", status="503")

    kubectl("delete", "daskcluster", "metered")
    until(lambda: value(samples(operator), "dask_kube_workers_desired", **group) is None,
          "the deleted group's series to go")
