"""Which dashboard link a client in a pod gives, by `distributed.dashboard.link`."""

from __future__ import annotations

import dask.config
import distributed  # noqa: F401  (loads distributed's config defaults)

from dask_kube.cluster import dashboard


def test_the_default_template_is_distributeds() -> None:
    assert dask.config.get(dashboard.KEY) == dashboard.DEFAULT_TEMPLATE
    assert not dashboard.template_set() and not dashboard.needs_local_dashboard(in_pod=True)


def test_jupyter_server_proxy_templates_need_the_dashboard_on_the_pod() -> None:
    with dask.config.set({dashboard.KEY: "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"}):
        assert dashboard.needs_local_dashboard(in_pod=True)
        assert not dashboard.needs_local_dashboard(in_pod=False)  # a laptop's link is already a local forward
    with dask.config.set({dashboard.KEY: "{JUPYTERHUB_SERVICE_PREFIX}proxy/{host}:{port}/status"}):
        assert dashboard.template_set() and not dashboard.needs_local_dashboard(in_pod=True)


def test_the_hint_names_the_command_and_the_template() -> None:
    text = dashboard.how_to_reach("team", "demo", "http://demo-scheduler.team.svc:8787/status")
    assert "dask kube port-forward demo -n team" in text
    assert "'{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status'" in text
