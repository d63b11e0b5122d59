"""How a client reaches a scheduler: the Service directly when that works, else a self-healing port-forward.

Direct: in a pod (KUBERNETES_SERVICE_HOST is set) the Service's DNS name, resolved once; a LoadBalancer's
ingress; a NodePort on a node's address. Each is checked with one short TCP connect, never a 10 s DNS probe.

Port-forward: `port_forward.SchedulerForward` listens on 127.0.0.1 and, for each incoming connection, opens a
fresh `pods/portforward` WebSocket to the scheduler pod, re-resolving the pod when that fails. So the address a
`Client` holds stays valid when the scheduler pod is replaced or the API server restarts: the broken
connection closes, the Client reconnects, and the new connection goes through a new forward.

`route` makes that choice for KubeCluster and for legacy mode alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import kr8s
import kr8s.asyncio
from kr8s.asyncio.objects import Endpoints, Node, Pod, Service

from .. import kubernetes_api, naming, status, waits
from ..port_forward import SchedulerForward

log = logging.getLogger(__name__)
CONNECT_CHECK_TIMEOUT = 3.0


@dataclass(frozen=True)
class Endpoint:
    host: str
    comm_port: int
    dashboard_port: int | None


def in_cluster() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ


async def can_connect(host: str, port: int, within: float = CONNECT_CHECK_TIMEOUT) -> bool:
    """Whether a TCP connection succeeds within `within` seconds, retrying refusals meanwhile: a proxy
    (kube-proxy, a load balancer) starts routing a moment after the Service's endpoints become ready."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), max(0.1, deadline - loop.time()))
        except (OSError, TimeoutError):
            if loop.time() + 0.2 >= deadline:
                return False
            await asyncio.sleep(0.2)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True


async def resolves(host: str) -> bool:
    """Whether `host` resolves within two seconds (a Service name resolves only inside the cluster)."""
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.getaddrinfo(host, None), 2.0)
        return True
    except (OSError, TimeoutError):
        return False


async def _node_host(api: kr8s.asyncio.Api) -> str:
    """A node address for a NodePort: an ExternalIP, else an InternalIP; the API server's host if nodes cannot be
    listed (the client's RBAC often does not allow it)."""
    try:
        nodes = await kubernetes_api.list_objects(Node, None, api)
    except kr8s.ServerError:
        nodes = []
    for kind in ("ExternalIP", "InternalIP"):
        for node in nodes:
            for address in (node.raw.get("status") or {}).get("addresses") or ():
                if address.get("type") == kind:
                    return str(address["address"])
    return urlparse(api.auth.server).hostname or "127.0.0.1"


async def direct_endpoint(api: kr8s.asyncio.Api, service: Mapping[str, Any]) -> Endpoint | None:
    """The scheduler Service's address as seen from here, or None when only a port-forward reaches it."""
    meta, spec = service["metadata"], service.get("spec") or {}
    comm = status.service_port(service, naming.SCHEDULER_PORT_NAME) or naming.SCHEDULER_PORT
    dashboard = status.service_port(service, naming.DASHBOARD_PORT_NAME)
    if in_cluster():
        host = f"{meta['name']}.{meta['namespace']}.svc"
        if await resolves(host):
            return Endpoint(host, comm, dashboard)
    kind = spec.get("type", "ClusterIP")
    if kind == "LoadBalancer":
        ingress = status.load_balancer_host(service)
        if ingress:
            return Endpoint(ingress, comm, dashboard)
    if kind in ("NodePort", "LoadBalancer"):
        node_comm = status.service_port(service, naming.SCHEDULER_PORT_NAME, node_port=True)
        if node_comm:
            return Endpoint(await _node_host(api), node_comm,
                            status.service_port(service, naming.DASHBOARD_PORT_NAME, node_port=True))
    return None


@dataclass
class Route:
    """How this process reaches a scheduler: the address to dial, the dashboard's host and port, and the
    port-forwards that carry them (empty when the Service is reached directly; stop them when done)."""

    address: str
    dashboard: tuple[str, int] | None
    forwards: list[SchedulerForward]


async def route(api: kr8s.asyncio.Api, namespace: str, cluster: str, *, forward: bool | None, within: float | None,
                scheme: str = naming.TCP_SCHEME, dashboard_port: int | None = None,
                say: Callable[[str], None] = log.info) -> Route:
    """The Service directly when it is reachable from here, else a port-forward to the scheduler pod.

    `forward`: True always forwards, False never does (the Service's DNS name is trusted), None decides by
    trying. `within` bounds the waits for a LoadBalancer's address and the Service's first ready endpoint;
    `dashboard_port` is the local port of the dashboard's forward (None: any free port).
    """
    service = await kubernetes_api.get(Service, naming.scheduler_name(cluster), namespace, api)
    if service is None:
        raise RuntimeError(f"the scheduler Service {namespace}/{naming.scheduler_name(cluster)} does not exist")
    endpoint = None
    if forward is not True:
        if (service.raw.get("spec") or {}).get("type") == "LoadBalancer":
            with contextlib.suppress(TimeoutError):
                await waits.wait_for(service, lambda raw: status.load_balancer_host(raw) is not None, within)
        endpoint = await direct_endpoint(api, service.raw)
        # kube-proxy refuses connections to a Service (ClusterIP, NodePort or LoadBalancer) until it has a ready
        # endpoint: wait for one (bounded), or the probe below would take "not yet" for "never".
        if endpoint is not None and await _may_read_endpoints(api, service.name, namespace):
            with contextlib.suppress(TimeoutError):
                await waits.wait_for(kubernetes_api.ref(Endpoints, service.name, namespace, api),
                                     status.has_ready_address, within)
        if endpoint is None and forward is False:  # never forward: trust the Service name
            endpoint = Endpoint(f"{service.name}.{namespace}.svc", naming.SCHEDULER_PORT, naming.DASHBOARD_PORT)
        elif endpoint is not None and forward is None and not await can_connect(endpoint.host, endpoint.comm_port):
            say(f"{endpoint.host}:{endpoint.comm_port} is not reachable from here; port-forwarding")
            endpoint = None
    if endpoint is not None:
        dashboard = (endpoint.host, endpoint.dashboard_port) if endpoint.dashboard_port else None
        return Route(f"{scheme}://{endpoint.host}:{endpoint.comm_port}", dashboard, [])
    comm_port, dashboard_remote = await _scheduler_ports(api, namespace, cluster)
    comm = SchedulerForward(api, namespace, cluster, comm_port)
    dashboard_forward = SchedulerForward(api, namespace, cluster, dashboard_remote, local_port=dashboard_port)
    forwards = [comm, dashboard_forward]
    try:
        for f in forwards:
            await f.start()
    except BaseException:
        await asyncio.gather(*(f.stop() for f in forwards), return_exceptions=True)
        raise
    return Route(f"{scheme}://{comm.address}", ("127.0.0.1", dashboard_forward.local_port), forwards)


async def _may_read_endpoints(api: kr8s.asyncio.Api, name: str, namespace: str) -> bool:
    """Whether this client may read the Service's Endpoints. A user Role without them (docs/rbac.md lists none:
    they are not needed) must not make every connection wait `within` for an answer that stays 403; the
    connection check's retries then cover a Service that is not routing yet."""
    try:
        await kubernetes_api.get(Endpoints, name, namespace, api)
    except kr8s.ServerError as err:
        if kubernetes_api.is_forbidden(err):
            log.debug("cannot read Endpoints %s/%s (%s): not waiting for them", namespace, name, err)
            return False
        raise
    return True


async def forward_dashboard(api: kr8s.asyncio.Api, namespace: str, cluster: str,
                            local_port: int | None = None) -> SchedulerForward:
    """A port-forward of the scheduler's dashboard alone to 127.0.0.1 (started; stop it when done): for a client in
    a pod whose browser reaches the dashboard through a proxy on that pod (dashboard.py)."""
    _, dashboard_remote = await _scheduler_ports(api, namespace, cluster)
    forward = SchedulerForward(api, namespace, cluster, dashboard_remote, local_port=local_port)
    await forward.start()
    return forward


async def _scheduler_ports(api: kr8s.asyncio.Api, namespace: str, cluster: str) -> tuple[int, int]:
    """The container ports behind `tcp-comm` and `http-dashboard` (a custom spec may move them)."""
    pod = await kubernetes_api.get(Pod, naming.scheduler_name(cluster), namespace, api)
    return naming.scheduler_ports(((pod.raw.get("spec") or {}).get("containers") or []) if pod else [])
