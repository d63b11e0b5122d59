"""The Jupyter widget Dask shows for a cluster: its Scale and Adapt buttons drive the operator."""

from __future__ import annotations

import json

import pytest
from localkube.testing import until

from dask_kube import KubeCluster

pytestmark = pytest.mark.e2e


def test_widget_scale_and_adapt_buttons_drive_the_operator(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    with KubeCluster(name="widget", namespace=namespace, n_workers=0, quiet=True) as cluster:
        widget = cluster._widget()
        assert widget is not None, "ipywidgets is installed: the widget must build"
        accordion = widget.children[1].children[1]
        request, scale = accordion.children[0].children
        minimum, maximum, adapt = accordion.children[1].children
        request.value = 1
        scale.click()
        until(lambda: cluster.scheduler_info.get("workers") and len(cluster.scheduler_info["workers"]) == 1,
              "the worker asked for with the Scale button", within=60)
        replicas = kubectl("get", "daskcluster", "widget", "-o", "jsonpath={.spec.worker.replicas}").stdout
        assert replicas == "1"
        minimum.value, maximum.value = 0, 2
        adapt.click()
        scaler = json.loads(kubectl("get", "daskautoscaler", "widget", "-o", "json").stdout)
        assert (scaler["spec"]["minimum"], scaler["spec"]["maximum"]) == (0, 2)
        assert "widget" in cluster._repr_html_() and cluster.dashboard_link in cluster._repr_html_()
