"""Reaching schedulers: by Service DNS in a cluster, by one self-healing port-forward per cluster outside it.

`SchedulerRPC` names the few scheduler calls the operator makes, so that decisions are tested without schedulers
and the operator against real ones. How to reach a cluster's scheduler (its forward, which follows the scheduler pod
across replacements, and a TLS cluster's certificates) is state of that cluster: it exists while the cluster's
reconcile loop runs (`serving`), is closed when that loop ends, and other loops (its worker groups, its
autoscaler) only borrow it. A TLS cluster is reached over `tls://` with its own certificates (the port-forward
carries TCP, so TLS passes through it end to end), read once from its Secret and again after the scheduler failed
to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import kr8s
import kr8s.asyncio
from distributed.core import rpc
from kr8s.asyncio.objects import Secret

from .. import naming, specs, tls
from ..kinds import DaskCluster
from ..port_forward import SchedulerForward
from .objects import Objects
from .settings import OperatorSettings

log = logging.getLogger(__name__)
# How often, at most, a failing connection makes the operator re-read a cluster's TLS settings.
CONNECTION_REREAD_SECONDS = 30.0


class SchedulerRPC(Protocol):
    async def workers(self, namespace: str, cluster: str) -> dict[str, dict[str, Any]]:
        """Connected workers by address: each has `name`, `host` and `metrics`."""

    async def retire_workers(self, namespace: str, cluster: str, names: list[str]) -> list[str]:
        """Move the data of these workers elsewhere and remove them; the names actually retired."""

    async def remove_workers(self, namespace: str, cluster: str, names: list[str]) -> list[str]:
        """Drop these workers without moving their data (they are unreachable); the names actually removed."""

    async def adaptive_target(self, namespace: str, cluster: str) -> int: ...

    async def idle_since(self, namespace: str, cluster: str) -> float | None:
        """When the scheduler became idle (its own clock), or None while it has work."""

    async def clients(self, namespace: str, cluster: str) -> int:
        """How many Dask clients are connected to the scheduler."""

    async def distributed_version(self, namespace: str, cluster: str) -> str | None:
        """The scheduler's distributed version, as it reports it (None if it does not say)."""


class SchedulerUnreachable(Exception):
    """The scheduler did not answer (not started yet, restarting, or gone)."""


@dataclass
class _Connection:
    """How to reach one cluster's scheduler."""

    forward: SchedulerForward | None = None
    args: dict[str, Any] | None = None  # distributed connection_args: {} for a plain cluster, TLS for a TLS one
    args_read: float = 0.0  # time.monotonic() when `args` were read
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def close(self) -> None:
        if self.forward is not None:
            await self.forward.stop()
            self.forward = None


class DistributedSchedulerRPC:
    """`SchedulerRPC` over distributed's own RPC, reaching the scheduler as the settings say. The cluster is read
    through `objects` (the operator's watch cache: no request per connection); its TLS Secret with one GET."""

    def __init__(self, settings: OperatorSettings, objects: Objects) -> None:
        self.settings = settings
        self.objects = objects
        self.api: kr8s.asyncio.Api = objects.api
        self._connections: dict[tuple[str, str], _Connection] = {}

    @contextlib.asynccontextmanager
    async def serving(self, namespace: str, cluster: str) -> AsyncIterator[None]:
        """For as long as the cluster's reconcile loop runs: the state of its scheduler's connection."""
        key = (namespace, cluster)
        connection = _Connection()
        self._connections[key] = connection
        try:
            yield
        finally:
            if self._connections.get(key) is connection:
                del self._connections[key]
            await connection.close()

    def held(self) -> dict[str, int]:
        """Connections kept, by namespace (for the operator's probe)."""
        counts: dict[str, int] = {}
        for namespace, _ in self._connections:
            counts[namespace] = counts.get(namespace, 0) + 1
        return counts

    def _connection(self, namespace: str, cluster: str) -> _Connection:
        connection = self._connections.get((namespace, cluster))
        if connection is None:
            raise SchedulerUnreachable(f"DaskCluster {namespace}/{cluster} has no reconcile loop (not seen yet, or "
                                       "deleted)")
        return connection

    async def _connection_args(self, namespace: str, cluster: str, connection: _Connection) -> dict[str, Any]:
        """How to connect to this cluster's scheduler: plain, or with the certificates of its TLS Secret."""
        if connection.args is not None:
            return connection.args
        try:
            obj = await self.objects.get(DaskCluster, cluster, namespace)
            secret_name = specs.tls_secret_of(obj.raw) if obj is not None else None
            args: dict[str, Any] = {}
            if secret_name is not None:
                secret = await self.objects.get(Secret, secret_name, namespace)
                certs = tls.from_secret_data(secret.raw.get("data") if secret else None, secret_name)
                args = certs.security().get_connection_args("client")
        except (kr8s.ServerError, tls.TLSSecretError) as err:  # ServerError's text is the API's, never the data
            raise SchedulerUnreachable(f"cannot read how to reach {namespace}/{cluster}: {err}") from err
        connection.args, connection.args_read = args, time.monotonic()
        return args

    async def _address(self, namespace: str, cluster: str, connection: _Connection, use_tls: bool) -> str:
        scheme = naming.TLS_SCHEME if use_tls else naming.TCP_SCHEME
        if not self.settings.use_port_forward:
            return naming.scheduler_address(cluster, namespace, self.settings.cluster_domain, tls=use_tls)
        async with connection.lock:
            if connection.forward is None or not connection.forward.running:
                forward = SchedulerForward(self.api, namespace, cluster, naming.SCHEDULER_PORT,
                                           connect_timeout=self.settings.rpc_timeout / 2)
                await forward.start()
                connection.forward = forward
            return f"{scheme}://{connection.forward.address}"

    @contextlib.asynccontextmanager
    async def _rpc(self, namespace: str, cluster: str) -> AsyncIterator[Any]:
        connection = self._connection(namespace, cluster)
        args = await self._connection_args(namespace, cluster, connection)
        address = await self._address(namespace, cluster, connection, use_tls=bool(args))
        # A connection per call, closed after it: through a port-forward an open connection holds a WebSocket (a
        # slot of the API client's pool) for as long as it stays open, and hundreds of clusters would exhaust it.
        r = rpc(address, timeout=self.settings.rpc_timeout, connection_args=args)
        try:
            yield r
        except (OSError, TimeoutError) as err:
            # Re-read (the cluster or its Secret may have changed), but not on every failure: a scheduler that is
            # still starting fails every poll, and each re-read costs API requests.
            if time.monotonic() - connection.args_read > CONNECTION_REREAD_SECONDS:
                connection.args = None
            if connection.forward is not None:
                connection.forward.check()  # refused by RBAC: not "unreachable", and the loop reports it
            raise SchedulerUnreachable(f"{address}: {err}") from err
        finally:
            await r.close_rpc()

    async def workers(self, namespace: str, cluster: str) -> dict[str, dict[str, Any]]:
        async with self._rpc(namespace, cluster) as r:
            identity = await asyncio.wait_for(r.identity(), self.settings.rpc_timeout)
        workers: dict[str, dict[str, Any]] = identity.get("workers", {})
        return workers

    async def retire_workers(self, namespace: str, cluster: str, names: list[str]) -> list[str]:
        if not names:
            return []
        async with self._rpc(namespace, cluster) as r:
            retired = await r.retire_workers(names=names, close_workers=False, remove=True)
        return [info.get("name") for info in retired.values()]

    async def remove_workers(self, namespace: str, cluster: str, names: list[str]) -> list[str]:
        """The scheduler's `unregister`: what the workers held is recomputed elsewhere at once."""
        if not names:
            return []
        wanted = set(names)
        removed = []
        async with self._rpc(namespace, cluster) as r:
            identity = await asyncio.wait_for(r.identity(), self.settings.rpc_timeout)
            for address, info in identity.get("workers", {}).items():
                if str(info.get("name")) in wanted:
                    await asyncio.wait_for(r.unregister(address=address, stimulus_id="dask-kube-pod-gone"),
                                           self.settings.rpc_timeout)
                    removed.append(str(info.get("name")))
        return removed

    async def adaptive_target(self, namespace: str, cluster: str) -> int:
        async with self._rpc(namespace, cluster) as r:
            return int(await asyncio.wait_for(r.adaptive_target(), self.settings.rpc_timeout))

    async def idle_since(self, namespace: str, cluster: str) -> float | None:
        async with self._rpc(namespace, cluster) as r:
            value = await asyncio.wait_for(r.check_idle(), self.settings.rpc_timeout)
        return float(value) if value is not None else None

    async def clients(self, namespace: str, cluster: str) -> int:
        """Replay the scheduler's `add-client`/`remove-client` events (its "all" topic): no pickled code needed.

        The event log is bounded (distributed.admin.low-level-log-length); a client whose connection event
        scrolled out of it on a very busy scheduler is not counted, which only matters once it is idle."""
        async with self._rpc(namespace, cluster) as r:
            events = await asyncio.wait_for(r.events(topic="all"), self.settings.rpc_timeout)
        connected: set[str] = set()
        for _stamp, msg in events:
            if isinstance(msg, dict) and msg.get("action") == "add-client":
                connected.add(str(msg.get("client")))
            elif isinstance(msg, dict) and msg.get("action") == "remove-client":
                connected.discard(str(msg.get("client")))
        return len(connected)

    async def distributed_version(self, namespace: str, cluster: str) -> str | None:
        async with self._rpc(namespace, cluster) as r:
            reported = await asyncio.wait_for(r.versions(packages=[]), self.settings.rpc_timeout)
        version = ((reported or {}).get("packages") or {}).get("distributed")
        return str(version) if version else None

    async def close(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
