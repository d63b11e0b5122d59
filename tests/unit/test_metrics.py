"""The operator's metrics as pure bookkeeping: phases counted, per-object series gone with their object, API errors
labelled by status."""

from __future__ import annotations

import httpx
import kr8s

from dask_kube.operator import metrics


def sample(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def test_clusters_are_counted_by_phase_and_forgotten() -> None:
    base = {phase: sample("dask_kube_clusters", phase=phase) or 0 for phase in ("Pending", "Running", "Unknown")}
    metrics.cluster_seen("unit-ns", "a", None)
    metrics.cluster_seen("unit-ns", "b", "Pending")
    assert sample("dask_kube_clusters", phase="Unknown") == base["Unknown"] + 1
    metrics.cluster_seen("unit-ns", "a", "Running")
    metrics.cluster_seen("unit-ns", "b", "Running")
    assert sample("dask_kube_clusters", phase="Running") == base["Running"] + 2
    assert sample("dask_kube_clusters", phase="Pending") == base["Pending"]
    assert sample("dask_kube_clusters", phase="Unknown") == base["Unknown"]
    assert metrics.held()["unit-ns"] == 2
    metrics.cluster_gone("unit-ns", "a")
    metrics.loop_started(("daskclusters", "unit-ns", "b"))
    metrics.loop_ended(("daskclusters", "unit-ns", "b"))  # a loop that ends forgets its object too
    assert sample("dask_kube_clusters", phase="Running") == base["Running"]
    assert "unit-ns" not in metrics.held()


def test_worker_series_follow_their_group_and_go_with_it() -> None:
    labels = {"namespace": "unit-ns", "cluster": "c", "workergroup": "g"}
    metrics.group_seen("unit-ns", "g", "c", desired=5, connected=3)
    assert sample("dask_kube_workers_desired", **labels) == 5
    assert sample("dask_kube_workers_connected", **labels) == 3
    metrics.group_seen("unit-ns", "g", "d", desired=2, connected=2)  # moved to another cluster: one series only
    assert sample("dask_kube_workers_desired", **labels) is None
    assert sample("dask_kube_workers_desired", **{**labels, "cluster": "d"}) == 2
    metrics.group_gone("unit-ns", "g")
    assert sample("dask_kube_workers_desired", **{**labels, "cluster": "d"}) is None
    assert "unit-ns" not in metrics.held()


def test_api_errors_are_labelled_by_status() -> None:
    request = httpx.Request("PATCH", "https://k/x")
    assert metrics.api_error_status(kr8s.ServerError("busy", response=httpx.Response(503, request=request))) == "503"
    assert metrics.api_error_status(httpx.ReadTimeout("slow")) == metrics.UNANSWERED
    assert metrics.api_error_status(ExceptionGroup("forward", [httpx.ConnectError("refused")])) == "none"
    assert metrics.api_error_status(ValueError("a bug")) is None
    before = sample("dask_kube_operator_api_errors_total", status="409") or 0
    key = ("daskworkergroups", "unit-ns", "g")
    metrics.reconciled(key, 0.2, kr8s.ServerError("changed", response=httpx.Response(409, request=request)))
    assert sample("dask_kube_operator_api_errors_total", status="409") == before + 1
    assert (sample("dask_kube_operator_reconciles_total", kind="DaskWorkerGroup", result="error") or 0) >= 1
