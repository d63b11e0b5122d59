"""What a cluster holds from the start: kube-system's DNS and the `kubernetes` Service, kept across restarts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from localkube.cluster import LocalKube
from localkube.testing import async_until, until

SERVICES = ("", "services")
PODS = ("", "pods")


def test_kube_system_runs_coredns_behind_kube_dns(kube) -> None:  # type: ignore[no-untyped-def]
    def running() -> list[list[str]]:
        lines = kube.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns").stdout.splitlines()
        rows = [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]
        return rows if len(rows) == 2 and all(r[1:3] == ["1/1", "Running"] for r in rows) else []

    rows = until(running, "two Running CoreDNS pods in kube-system")
    assert all(r[0].startswith("coredns-") for r in rows)
    deploy = kube.kubectl("get", "deploy", "coredns", "-n", "kube-system", "-o",
                          "jsonpath={.status.readyReplicas}/{.spec.replicas} "
                          "{.spec.template.spec.containers[0].image}").stdout
    assert deploy == "2/2 registry.k8s.io/coredns/coredns:v1.11.3"
    _, svc = kube.request("GET", "/api/v1/namespaces/kube-system/services/kube-dns")
    assert svc["spec"]["selector"] == {"k8s-app": "kube-dns"}
    assert svc["spec"]["clusterIP"].endswith(".128.10")
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    _, pods = kube.request("GET", "/api/v1/namespaces/kube-system/pods?fieldSelector=status.phase%3DRunning")
    assert {p["spec"]["priority"] for p in pods["items"]} == {2000000000}
    _, eps = kube.request("GET", "/api/v1/namespaces/kube-system/endpoints/kube-dns")
    assert len(eps["subsets"][0]["addresses"]) == 2


def test_kubernetes_service_points_at_the_api_server(kube) -> None:  # type: ignore[no-untyped-def]
    _, svc = kube.request("GET", "/api/v1/namespaces/default/services/kubernetes")
    assert svc["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["clusterIP"].endswith(".128.1")
    port = int(kube.url.rsplit(":", 1)[1])
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]
    _, eps = kube.request("GET", "/api/v1/namespaces/default/endpoints/kubernetes")
    assert eps["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                               "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
    row = kube.kubectl("get", "svc", "kubernetes", "-n", "default").stdout.splitlines()[1].split()
    assert row[:2] == ["kubernetes", "ClusterIP"] and row[4] == "443/TCP"


@pytest.mark.localkube_only
async def test_system_objects_survive_a_restart_once(tmp_path: Path) -> None:
    def names(kube: LocalKube, key: tuple[str, str], namespace: str) -> list[str]:
        return [o["metadata"]["name"] for o in kube.store.list(key, namespace)]

    where = ((PODS, "kube-system"), (SERVICES, "kube-system"), (SERVICES, "default"))
    async with LocalKube(state_dir=tmp_path / "state") as kube:
        await async_until(lambda: len(names(kube, PODS, "kube-system")) == 2, "CoreDNS pods")
        first = [names(kube, key, ns) for key, ns in where]
    async with LocalKube(state_dir=tmp_path / "state") as kube:
        assert [names(kube, key, ns) for key, ns in where] == first  # nothing duplicated, the same pods kept
        assert first[1:] == [["kube-dns"], ["kubernetes"]]
        assert names(kube, ("apps", "deployments"), "kube-system") == ["coredns"]
        eps = kube.store.get(("", "endpoints"), "default", "kubernetes")
        assert eps["subsets"][0]["ports"][0]["port"] == kube.port  # the new listener's port
        pcs = names(kube, ("scheduling.k8s.io", "priorityclasses"), "")
        assert pcs == ["system-cluster-critical", "system-node-critical"]
