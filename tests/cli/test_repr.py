"""The Jupyter view of a KubeCluster: name, namespace, phase, workers and a dashboard link that works."""

from __future__ import annotations

import urllib.request

import pytest

from dask_kube import KubeCluster

pytestmark = pytest.mark.e2e


def test_html_repr_shows_the_cluster_and_its_dashboard(operator, namespace) -> None:  # type: ignore[no-untyped-def]
    cluster = KubeCluster(name="repr", namespace=namespace, n_workers=0, image="any", quiet=True)
    try:
        link = cluster.dashboard_link
        assert link.startswith("http://127.0.0.1:") and link.endswith("/status")
        html = cluster._repr_html_()
        assert f'href="{link}"' in html
        for text in ("repr", namespace, "Running", "Workers", "KubeCluster"):
            assert text in html, text
        with urllib.request.urlopen(link.replace("/status", "/health"), timeout=10) as resp:
            assert resp.status == 200
    finally:
        cluster.close()
