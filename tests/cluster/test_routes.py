"""The client reaches the scheduler directly when it can: LoadBalancer, NodePort, and Service DNS in a pod."""

from __future__ import annotations

import textwrap

import pytest
from distributed import Client

from dask_kube import KubeCluster
from tests.cluster.helpers import run_in_pod

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("service_type", ["LoadBalancer", "NodePort"])
def test_direct_route_without_port_forward(operator, namespace, service_type: str) -> None:  # type: ignore[no-untyped-def]
    with KubeCluster(name=service_type.lower(), namespace=namespace, n_workers=1, quiet=True,
                     scheduler_service_type=service_type) as cluster:
        # No port-forward: the Service is reachable from here. If not, the client's own log says why it forwarded.
        assert cluster._forwards == [], [line for _, line in cluster._cluster_manager_logs]
        host, port = cluster.scheduler_address.removeprefix("tcp://").rsplit(":", 1)
        if service_type == "NodePort":
            assert 30000 <= int(port) <= 32767
        else:
            assert host != "127.0.0.1" and int(port) == 8786  # the LoadBalancer's ingress address
        cluster.wait_for_workers(1, timeout=60)
        with Client(cluster) as client:
            assert client.submit(lambda x: x + 1, 41).result(timeout=30) == 42


SCRIPT = textwrap.dedent("""
    import sys
    from distributed import Client
    from dask_kube import KubeCluster
    with KubeCluster(name="inpod", namespace=sys.argv[1], n_workers=1, quiet=True) as cluster:
        print("address", cluster.scheduler_address, flush=True)
        print("forwards", len(cluster._forwards), flush=True)
        cluster.wait_for_workers(1, timeout=60)
        with Client(cluster) as client:
            print("result", client.submit(sum, range(10)).result(timeout=30), flush=True)
""")


def test_in_a_pod_the_client_uses_the_service_dns_name(kube, operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    lines = run_in_pod(kubectl, "notebook", [SCRIPT, namespace], {"KUBECONFIG": str(kube.kubeconfig)}, within=150)
    assert lines["address"] == f"tcp://inpod-scheduler.{namespace}.svc:8786"
    assert lines["forwards"] == "0" and lines["result"] == "45"
