"""How the client reaches a scheduler: the Service directly when that works, else a self-healing port-forward.

Direct: in a pod (KUBERNETES_SERVICE_HOST is set) the Service's DNS name, resolved once; a LoadBalancer's
ingress; a NodePort on a node's address. Each is checked with one short TCP connect, never a 10 s DNS probe.

Port-forward: `SchedulerForward` listens on 127.0.0.1 and, for each incoming connection, opens a fresh
`pods/portforward` WebSocket to the scheduler pod, re-resolving the pod when that fails. So the address a
`Client` holds stays valid when the scheduler pod is replaced or the API server restarts: the broken
connection closes, the Client reconnects, and the new connection goes through a new forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import kr8s
from kr8s.asyncio.objects import Node

from .. import naming
from ..forwarding import SchedulerForward  # noqa: F401 - re-exported: the client's forward

log = logging.getLogger(__name__)
CONNECT_CHECK_TIMEOUT = 3.0


@dataclass(frozen=True)
class Endpoint:
    host: str
    comm_port: int
    dashboard_port: int | None


def in_cluster() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ


def _service_port(service: Mapping[str, Any], name: str, node_port: bool = False) -> int | None:
    for port in (service.get("spec") or {}).get("ports") or ():
        if port.get("name") == name:
            return port.get("nodePort") if node_port else port.get("port")
    return None


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
        nodes = [node async for node in api.async_get(Node)]
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
    comm = _service_port(service, naming.SCHEDULER_PORT_NAME) or naming.SCHEDULER_PORT
    dashboard = _service_port(service, naming.DASHBOARD_PORT_NAME)
    if in_cluster():
        host = f"{meta['name']}.{meta['namespace']}.svc"
        if await resolves(host):
            return Endpoint(host, comm, dashboard)
    kind = spec.get("type", "ClusterIP")
    if kind == "LoadBalancer":
        ingress = (((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}])[0]
        host = ingress.get("ip") or ingress.get("hostname")
        if host:
            return Endpoint(host, comm, dashboard)
    if kind in ("NodePort", "LoadBalancer"):
        node_comm = _service_port(service, naming.SCHEDULER_PORT_NAME, node_port=True)
        if node_comm:
            return Endpoint(await _node_host(api), node_comm,
                            _service_port(service, naming.DASHBOARD_PORT_NAME, node_port=True))
    return None
