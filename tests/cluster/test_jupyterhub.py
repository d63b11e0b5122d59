"""A notebook pod, as JupyterHub runs one: its ServiceAccount holds only the Role of docs/rbac.md, it creates a
cluster in one "kernel" and finds it by name from another, and its dashboard link follows
`distributed.dashboard.link`: jupyter-server-proxy's `{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status` gets the
dashboard forwarded to the notebook pod's own port (where the proxy would fetch it); distributed's default gives
the Service's address and says how a browser reaches it."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from localkube.testing import until

from tests.cluster.helpers import run_in_pod
from tests.rbacdocs import documented_user_role

pytestmark = pytest.mark.e2e

PREFIX = "/user/alice/"
SCRIPT = textwrap.dedent("""
    import sys, urllib.request
    import dask.config
    from dask_kube import KubeCluster
    namespace = sys.argv[1]
    with KubeCluster(name="hub", namespace=namespace, n_workers=0, shutdown_on_close=True, quiet=True) as kernel1:
        print("default-link", kernel1.dashboard_link, flush=True)
        print("hint", kernel1._dashboard_hint, flush=True)
        with dask.config.set({"distributed.dashboard.link": "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"}):
            kernel2 = KubeCluster.from_name("hub", namespace=namespace, quiet=True)
            link = kernel2.dashboard_link
            print("proxy-link", link, flush=True)
            port = link.split("/proxy/")[1].split("/")[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
                print("proxied", resp.status, resp.read().decode(), flush=True)
            kernel2.close()
            print("deleted-by-kernel2", kernel2.shutdown_on_close, flush=True)
""")


def test_a_notebook_pod_gets_a_dashboard_link_its_browser_can_open(kube, operator, namespace, kubectl,  # type: ignore[no-untyped-def]
                                                                    tmp_path) -> None:
    kubectl("create", "serviceaccount", "jupyter")
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documented_user_role(namespace, "jupyter")))
    kubeconfig = kube.service_account_kubeconfig(namespace, "jupyter", tmp_path / "jupyter.kubeconfig")
    lines = run_in_pod(kubectl, "jupyter-alice", [SCRIPT, namespace],
                       {"KUBECONFIG": str(kubeconfig), "JUPYTERHUB_SERVICE_PREFIX": PREFIX}, within=120)
    service_link = f"http://hub-scheduler.{namespace}.svc:8787/status"
    assert lines["default-link"] == service_link
    assert lines["hint"].startswith(f"the dashboard at {service_link} is reachable from inside the Kubernetes "
                                    "cluster only"), lines["hint"]
    assert f"dask kube port-forward hub -n {namespace}" in lines["hint"]
    assert lines["proxy-link"].startswith(f"{PREFIX}proxy/") and lines["proxy-link"].endswith("/status")
    assert lines["proxied"] == "200 ok"
    assert lines["deleted-by-kernel2"] == "False"  # a kernel that found the cluster by name leaves it running
    until(lambda: "hub" not in kubectl("get", "daskclusters", "-o", "name").stdout, "kernel 1 to delete its cluster")
