"""Cluster networking: Service admission, Endpoints, proxies and the pod shim with real processes.

The network runs on an `ApiCore` without HTTP. Pods are created through the core with `status.podIP` and the
Ready condition set by hand, and their programs are started here with the environment `pod_environment` gives
(what the kubelet does), so these tests depend on nothing but the networking modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from localkube.apiserver.core import ApiCore
from localkube.apiserver.errors import ApiError
from localkube.apiserver.store import Event
from localkube.node.network import NODE_PORT_RANGE, Network
from localkube.testing import async_until

pytestmark = pytest.mark.localkube_only

PODS, SERVICES, ENDPOINTS, NAMESPACES = ("", "pods"), ("", "services"), ("", "endpoints"), ("", "namespaces")
Obj = dict[str, Any]


@dataclass
class Cluster:
    core: ApiCore
    net: Network
    tmp: Path
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    def service(self, name: str, spec: Obj, namespace: str = "default") -> Obj:
        body = {"metadata": {"name": name}, "spec": spec}
        return self.core.create(self.core.kind_of(SERVICES), namespace, body)[0]

    def get(self, key: tuple[str, str], name: str, namespace: str = "default") -> Obj | None:
        return self.core.store.get(key, namespace, name)

    def pod(self, name: str, labels: dict[str, str], ports: dict[str, int] | None = None,
            namespace: str = "default", ready: bool = False) -> tuple[Obj, str]:
        """A scheduled, running pod with an IP from the network (ready or not yet)."""
        container = {"name": "main", "image": "python",
                     "ports": [{"name": n, "containerPort": p} for n, p in (ports or {}).items()]}
        body = {"metadata": {"name": name, "labels": labels}, "spec": {"nodeName": "localkube",
                                                                       "containers": [container]}}
        pod = self.core.create(self.core.kind_of(PODS), namespace, body)[0]
        ip = self.net.allocate_pod_ip(pod)
        self.set_ready(name, ready, namespace, ip=ip)
        return pod, ip

    def set_ready(self, name: str, ready: bool, namespace: str = "default", ip: str | None = None) -> None:
        def change(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            status["phase"] = "Running"
            if ip:
                status["podIP"] = ip
            status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]

        self.core.mutate(self.core.kind_of(PODS), namespace, name, change, subresource="status")

    async def run(self, pod: Obj, ip: str, *argv: str) -> asyncio.subprocess.Process:
        """Start a program as the kubelet would in `pod`; its output goes to a log file in tmp."""
        env = dict(os.environ)
        extra = self.net.pod_environment(pod, ip)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra.pop("PYTHONPATH"), env.get("PYTHONPATH")) if p)
        env.update(extra)
        with open(self.tmp / f"{pod['metadata']['name']}-{len(self.procs)}.log", "w") as log:  # noqa: ASYNC230
            proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    async def output(self, pod: Obj, ip: str, code: str) -> Any:
        """Run a Python snippet in `pod`; it prints one JSON value, returned here."""
        env = dict(os.environ)
        extra = self.net.pod_environment(pod, ip)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra.pop("PYTHONPATH"), env.get("PYTHONPATH")) if p)
        env.update(extra)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        self.procs.append(proc)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        return json.loads(out.decode().strip().splitlines()[-1])

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.tmp.glob("*.log")))


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    core = ApiCore()
    core.bootstrap()
    net = Network(core, tmp_path / "state")
    await net.start()
    c = Cluster(core, net, tmp_path)
    try:
        yield c
    finally:
        net = c.net
        for proc in reversed(c.procs):  # clients before servers, as pods of a deleted namespace would go
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        await net.stop()


def connectable(address: tuple[str, int]) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(address, timeout=1):
        return True
    return False


def refused(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1) as conn:
            conn.settimeout(2)
            return conn.recv(1) == b""  # accepted, then reset or closed at once: no endpoint behind
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


# ------------------------------------------------------------------------------------------ admission


async def test_services_get_cluster_ips_node_ports_and_load_balancers(cluster: Cluster) -> None:
    net, prefix = cluster.net, cluster.net.prefix
    web = cluster.service("web", {"selector": {"app": "web"}, "ports": [{"port": 80}]})
    ip = web["spec"]["clusterIP"]
    assert ip.startswith(prefix + ".") and 128 <= int(ip.split(".")[2]) <= 191
    assert web["spec"]["clusterIPs"] == [ip]
    headless = cluster.service("peers", {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]})
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["clusterIPs"] == ["None"]

    node = cluster.service("node", {"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080},
                                                                  {"name": "b", "port": 81}]})
    ports = [p["nodePort"] for p in node["spec"]["ports"]]
    assert ports[0] == 30080 and ports[1] in NODE_PORT_RANGE and ports[1] != 30080
    with pytest.raises(ApiError) as err:
        cluster.service("clash", {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]})
    assert err.value.code == 422
    assert err.value.message == ('Service "clash" is invalid: spec.ports[0].nodePort: Invalid value: 30080: '
                                 "provided port is already allocated")
    with pytest.raises(ApiError) as err:
        cluster.service("taken", {"clusterIP": ip, "ports": [{"port": 80}]})
    assert "provided IP is already allocated" in err.value.message
    with pytest.raises(ApiError) as err:
        cluster.service("outside", {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]})
    assert net.service_cidr in err.value.message

    # An update that omits the allocated values keeps them (kubectl replace, PUT of an old manifest).
    kind = cluster.core.kind_of(SERVICES)
    replaced = cluster.core.replace(kind, "default", "node", {
        "metadata": {"name": "node"}, "spec": {"type": "NodePort", "ports": [{"name": "a", "port": 80},
                                                                            {"name": "b", "port": 81}]}})[0]
    assert replaced["spec"]["clusterIP"] == node["spec"]["clusterIP"]
    assert [p["nodePort"] for p in replaced["spec"]["ports"]] == ports
    with pytest.raises(ApiError) as err:
        cluster.core.mutate(kind, "default", "web", lambda o: o["spec"].update(clusterIP=f"{prefix}.128.99",
                                                                                clusterIPs=[f"{prefix}.128.99"]))
    assert "may not change once set" in err.value.message
    # Back to ClusterIP: the allocated node ports go (validation forbids them there).
    plain = cluster.core.mutate(kind, "default", "node", lambda o: o["spec"].update(type="ClusterIP"))
    assert all("nodePort" not in p for p in plain["spec"]["ports"])
    again = cluster.service("again", {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]})
    assert again["spec"]["ports"][0]["nodePort"] == 30080

    # Deleting a Service frees its addresses.
    cluster.core.delete(kind, "default", "web")
    reused = cluster.service("reused", {"clusterIP": ip, "ports": [{"port": 80}]})
    assert reused["spec"]["clusterIP"] == ip

    lb = cluster.service("lb", {"type": "LoadBalancer", "ports": [{"port": 80}]})
    assert lb["spec"]["ports"][0]["nodePort"] in NODE_PORT_RANGE
    ingress = await async_until(lambda: ((cluster.get(SERVICES, "lb") or {}).get("status") or {}).get(
        "loadBalancer", {}).get("ingress"), what="load balancer ingress")
    assert ingress[0]["ip"].startswith(f"{prefix}.192.")
    cluster.core.mutate(kind, "default", "lb", lambda o: o["spec"].update(type="NodePort"))
    await async_until(lambda: not (cluster.get(SERVICES, "lb") or {})["status"]["loadBalancer"],
                   what="ingress removed")


async def test_pod_ips_are_unique_stable_and_released(cluster: Cluster) -> None:
    net = cluster.net
    a, ip_a = cluster.pod("a", {"app": "x"})
    b, ip_b = cluster.pod("b", {"app": "x"})
    assert ip_a != ip_b
    assert all(ip.startswith(net.prefix + ".") and int(ip.split(".")[2]) < 128 for ip in (ip_a, ip_b))
    assert net.allocate_pod_ip(a) == ip_a
    net.release_pod_ip(a)
    _, ip_c = cluster.pod("c", {"app": "x"})
    assert ip_c not in (ip_a, ip_b)  # a released address is not handed out again at once
    env = net.pod_environment(b, ip_b)
    assert env["LOCALKUBE_POD_IP"] == ip_b and env["HOSTNAME"] == "b"
    assert Path(env["PYTHONPATH"], "sitecustomize.py").is_file()  # noqa: ASYNC240


async def test_blocks_are_exclusive_and_kept_across_restarts(cluster: Cluster, tmp_path: Path) -> None:
    """Two LocalKubes on one machine never share a /16; a restart on the same state keeps its addresses."""
    first = cluster.net
    node = cluster.service("node", {"type": "NodePort", "ports": [{"port": 80}]})
    with pytest.raises(RuntimeError, match="in use"):
        await Network(ApiCore(), tmp_path / "other", block=first.block).start()
    second = Network(ApiCore(), tmp_path / "second")
    await second.start()
    try:
        assert second.block != first.block
    finally:
        await second.stop()

    await first.stop()
    restarted = Network(cluster.core, cluster.tmp / "state")
    cluster.net = restarted
    await restarted.start()
    assert restarted.block == first.block
    with pytest.raises(ApiError, match="already allocated"):
        cluster.service("clash", {"type": "NodePort", "ports": [
            {"port": 80, "nodePort": node["spec"]["ports"][0]["nodePort"]}]})


# ------------------------------------------------------------------------------------------ endpoints


async def test_endpoints_follow_pods(cluster: Cluster) -> None:
    cluster.service("web", {"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 80, "targetPort": "http"}, {"name": "metrics", "port": 9100}]})
    cluster.service("manual", {"ports": [{"port": 80}]})
    _, ip_a = cluster.pod("a", {"app": "web"}, {"http": 8080})
    b, ip_b = cluster.pod("b", {"app": "web"}, {"http": 9090}, ready=True)
    cluster.pod("other", {"app": "db"}, {"http": 8080}, ready=True)

    def subsets() -> list[Obj]:
        return (cluster.get(ENDPOINTS, "web") or {}).get("subsets") or []

    def by_port() -> dict[int, Obj]:
        return {next(p["port"] for p in s["ports"] if p["name"] == "http"): s for s in subsets()}

    await async_until(lambda: len(subsets()) == 2, what="two subsets")
    eps = by_port()
    assert eps[8080]["notReadyAddresses"][0]["ip"] == ip_a and "addresses" not in eps[8080]
    assert eps[9090]["addresses"] == [{"ip": ip_b, "nodeName": "localkube", "targetRef": {
        "kind": "Pod", "namespace": "default", "name": "b", "uid": b["metadata"]["uid"]}}]
    assert sorted(eps[9090]["ports"], key=lambda p: p["name"]) == [
        {"name": "http", "port": 9090, "protocol": "TCP"}, {"name": "metrics", "port": 9100, "protocol": "TCP"}]

    cluster.set_ready("a", True)
    await async_until(lambda: by_port().get(8080, {}).get("addresses"), what="a ready")
    assert "notReadyAddresses" not in by_port()[8080]

    # A pod update that changes nothing Endpoints show is not written; a deletion is, once.
    writes: list[Event] = []
    cluster.core.store.add_listener(lambda e: writes.append(e) if e.key == ENDPOINTS else None)
    cluster.core.mutate(cluster.core.kind_of(PODS), "default", "a",
                        lambda o: o["metadata"].setdefault("annotations", {}).update(touched="yes"))
    cluster.core.delete(cluster.core.kind_of(PODS), "default", "b", grace_period=0)
    await async_until(lambda: len(subsets()) == 1, what="b gone")
    cluster.set_ready("a", True)  # no change either
    cluster.service("marker", {"selector": {"app": "none"}, "ports": [{"port": 1}]})
    await async_until(lambda: cluster.get(ENDPOINTS, "marker"), what="later work done")
    assert [(e.type, e.obj["metadata"]["name"]) for e in writes] == [("MODIFIED", "web"), ("ADDED", "marker")]

    assert cluster.get(ENDPOINTS, "manual") is None  # no selector: the user's to manage
    cluster.core.delete(cluster.core.kind_of(SERVICES), "default", "web")
    await async_until(lambda: cluster.get(ENDPOINTS, "web") is None, what="endpoints deleted with the service")


async def test_dns_table_follows_services_and_endpoints(cluster: Cluster) -> None:
    web = cluster.service("web", {"selector": {"app": "web"}, "ports": [{"port": 80}]})
    cluster.service("peers", {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]})
    cluster.service("ext", {"type": "ExternalName", "externalName": "example.com."})
    _, ip_a = cluster.pod("a", {"app": "web"}, ready=True)
    pod_b = cluster.core.create(cluster.core.kind_of(PODS), "default", {
        "metadata": {"name": "b", "labels": {"app": "web"}},
        "spec": {"hostname": "b0", "subdomain": "peers", "containers": [{"name": "main", "image": "python"}]}})[0]
    ip_b = cluster.net.allocate_pod_ip(pod_b)
    cluster.set_ready("b", True, ip=ip_b)
    cluster.pod("c", {"app": "web"})  # not ready: not in DNS

    def table() -> Obj:
        return json.loads(cluster.net.hosts_path.read_text()) if cluster.net.hosts_path.exists() else {}

    expected = {
        "web.default.svc.cluster.local": [web["spec"]["clusterIP"]],
        "peers.default.svc.cluster.local": sorted([ip_a, ip_b], key=lambda ip: [int(x) for x in ip.split(".")]),
        "b0.peers.default.svc.cluster.local": [ip_b],
    }
    await async_until(lambda: table().get("names") == expected, what=f"dns table {expected}")
    assert table()["aliases"] == {"ext.default.svc.cluster.local": "example.com"}
    assert cluster.net.pod_environment(pod_b, ip_b)["LOCALKUBE_FQDN"] == "b0.peers.default.svc.cluster.local"

    cluster.core.delete(cluster.core.kind_of(SERVICES), "default", "web")
    await async_until(lambda: "web.default.svc.cluster.local" not in table()["names"], what="web removed")


# ------------------------------------------------------------------------------------------ processes


SERVE = [sys.executable, "-m", "http.server", "8080", "--directory"]


async def test_pods_reach_services_by_name_and_the_host_through_node_ports(cluster: Cluster) -> None:
    core = cluster.core
    core.create(core.kind_of(NAMESPACES), "", {"metadata": {"name": "other"}})
    backends = {}
    for name in ("web-a", "web-b"):
        root = cluster.tmp / name
        root.mkdir()
        (root / "whoami").write_text(name)
        pod, ip = cluster.pod(name, {"app": "web"}, {"http": 8080})
        backends[name] = ip
        await cluster.run(pod, ip, *SERVE, str(root))
    for name, ip in backends.items():  # both bind port 8080 (on 0.0.0.0, as they think) without a clash
        await async_until(lambda ip=ip: connectable((ip, 8080)), within=30, what=f"{name} listening\n{cluster.logs()}")
    web = cluster.service("web", {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]})
    lb = cluster.service("web-lb", {"type": "LoadBalancer", "selector": {"app": "web"},
                                    "ports": [{"port": 8000, "targetPort": "http"}]})
    cluster_ip = web["spec"]["clusterIP"]
    assert await asyncio.to_thread(refused, (cluster_ip, 80))  # no ready endpoint yet: refused

    for name in backends:
        cluster.set_ready(name, True)
    await async_until(lambda: connectable((cluster_ip, 80)), what="proxy listening")

    client, client_ip = cluster.pod("client", {"app": "client"}, ready=True)
    got = await cluster.output(client, client_ip, """if True:
        import json, socket, urllib.request
        names = ["web", "web.default", "web.default.svc", "web.default.svc.cluster.local"]
        seen = set()  # kube-proxy picks an endpoint at random per connection: 2**-63 that 64 all pick one
        for _ in range(64):
            seen.add(urllib.request.urlopen("http://web/whoami", timeout=10).read().decode())
            if len(seen) == 2:
                break
        print(json.dumps({"ips": [socket.gethostbyname(n) for n in names], "seen": sorted(seen),
                          "fqdn": urllib.request.urlopen("http://web.default.svc.cluster.local/whoami",
                                                         timeout=10).read().decode()}))
    """)
    assert got["ips"] == [cluster_ip] * 4
    assert set(got["seen"]) == {"web-a", "web-b"}  # spread over both ready endpoints
    assert got["fqdn"] in backends

    stranger, stranger_ip = cluster.pod("stranger", {}, namespace="other")
    got = await cluster.output(stranger, stranger_ip, """if True:
        import json, socket
        try:
            short = socket.gethostbyname("web")
        except socket.gaierror:
            short = None
        print(json.dumps([short, socket.gethostbyname("web.default")]))
    """)
    assert got == [None, cluster_ip]

    with pytest.raises(socket.gaierror):  # the test process is outside the cluster
        await asyncio.to_thread(socket.getaddrinfo, "web.default.svc.cluster.local", 80)

    lb_svc = await async_until(lambda: (cluster.get(SERVICES, "web-lb") or {})["status"]["loadBalancer"].get(
        "ingress"), what="ingress")
    node_port = lb["spec"]["ports"][0]["nodePort"]
    await async_until(lambda: connectable((lb_svc[0]["ip"], 8000)) and connectable(("127.0.0.1", node_port)),
                   what="load balancer and node port listening")
    assert await asyncio.to_thread(fetch, f"http://{lb_svc[0]['ip']}:8000/whoami") in backends
    assert await asyncio.to_thread(fetch, f"http://127.0.0.1:{node_port}/whoami") in backends

    for name in backends:
        cluster.set_ready(name, False)
    await async_until(lambda: (cluster.get(ENDPOINTS, "web") or {})["subsets"][0].get("notReadyAddresses"),
                   what="endpoints not ready")
    assert len(cluster.get(ENDPOINTS, "web")["subsets"][0]["notReadyAddresses"]) == 2  # type: ignore[index]
    await async_until(lambda: refused((cluster_ip, 80)) and refused(("127.0.0.1", node_port)),
                   what="refused without ready endpoints")
