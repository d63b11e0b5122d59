"""Reaching schedulers: by Service DNS in a cluster, by one self-healing port-forward per cluster outside it.

`SchedulerRPC` names the few scheduler calls the operator makes, so that planners are tested against an
in-memory fake and the operator against real schedulers. A cluster's forward (dask_kube.forwarding) follows
its scheduler pod across replacements, and is closed when the cluster goes or the operator stops: none leak.
A TLS cluster is reached over `tls://` with its own certificates (the port-forward carries TCP, so TLS passes
through it end to end), read once from its Secret and read again after the scheduler failed to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import kr8s
from distributed.core import rpc
from kr8s.asyncio.objects import Secret

from .. import naming, specs, tls
from ..forwarding import SchedulerForward
from ..resources import DaskCluster
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

    async def forget(self, namespace: str, cluster: str) -> None:
        """Drop any connection state for a cluster that went away."""


class SchedulerUnreachable(Exception):
    """The scheduler did not answer (not started yet, restarting, or gone)."""


class DistributedSchedulerRPC:
    """`SchedulerRPC` over distributed's own RPC, reaching the scheduler as the settings say."""

    def __init__(self, settings: OperatorSettings, api: Any) -> None:
        self.settings = settings
        self.api = api
        self._forwards: dict[tuple[str, str], SchedulerForward] = {}
        # (ns, cluster) -> (distributed connection_args, when read): {} for a plain cluster, its TLS context for a
        # TLS one.
        self._connection_args: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        self._lock = asyncio.Lock()

    async def _connection_args_for(self, namespace: str, cluster: str) -> dict[str, Any]:
        """How to connect to this cluster's scheduler: plain, or with the certificates of its TLS Secret."""
        key = (namespace, cluster)
        if key in self._connection_args:
            return self._connection_args[key][0]
        try:
            obj = DaskCluster({"metadata": {"name": cluster}}, namespace=namespace, api=self.api)
            await obj.refresh()
            secret_name = specs.tls_secret_of(obj.raw)
            args: dict[str, Any] = {}
            if secret_name is not None:
                secret = Secret({"metadata": {"name": secret_name}}, namespace=namespace, api=self.api)
                await secret.refresh()
                certs = tls.from_secret_data(secret.raw.get("data"), secret_name)
                args = certs.security().get_connection_args("client")
        except (kr8s.ServerError, tls.TLSSecretError) as err:  # ServerError's text is the API's, never the data
            raise SchedulerUnreachable(f"cannot read how to reach {namespace}/{cluster}: {err}") from err
        self._connection_args[key] = (args, time.monotonic())
        return args

    async def _address(self, namespace: str, cluster: str, use_tls: bool = False) -> str:
        if not self.settings.use_port_forward:
            return naming.scheduler_address(cluster, namespace, self.settings.cluster_domain, tls=use_tls)
        async with self._lock:
            forward = self._forwards.get((namespace, cluster))
            if forward is None or not forward.running:
                forward = SchedulerForward(self.api, namespace, cluster, naming.SCHEDULER_PORT,
                                           connect_timeout=self.settings.rpc_timeout / 2)
                await forward.start()
                self._forwards[(namespace, cluster)] = forward
            scheme = naming.TLS_SCHEME if use_tls else naming.TCP_SCHEME
            return f"{scheme}://{forward.address}"

    @contextlib.asynccontextmanager
    async def _rpc(self, namespace: str, cluster: str) -> AsyncIterator[Any]:
        args = await self._connection_args_for(namespace, cluster)
        address = await self._address(namespace, cluster, use_tls=bool(args))
        r = rpc(address, timeout=self.settings.rpc_timeout, connection_args=args)
        try:
            yield r
        except (OSError, TimeoutError) as err:
            # Re-read (the cluster or its Secret may have changed), but not on every failure: a scheduler that is
            # still starting fails every poll, and each re-read costs API requests.
            read = self._connection_args.get((namespace, cluster))
            if read is not None and time.monotonic() - read[1] > CONNECTION_REREAD_SECONDS:
                del self._connection_args[(namespace, cluster)]
            forward = self._forwards.get((namespace, cluster))
            if forward is not None:
                forward.check()  # refused by RBAC: not "unreachable", and the loop reports it
            raise SchedulerUnreachable(f"{address}: {err}") from err
        finally:
            await r.close_rpc()

    async def workers(self, namespace: str, cluster: str) -> dict[str, dict[str, Any]]:
        async with self._rpc(namespace, cluster) as r:
            identity = await asyncio.wait_for(r.identity(), self.settings.rpc_timeout)
        return identity.get("workers", {})

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

    async def forget(self, namespace: str, cluster: str) -> None:
        self._connection_args.pop((namespace, cluster), None)
        forward = self._forwards.pop((namespace, cluster), None)
        if forward is not None:
            await forward.stop()

    async def close(self) -> None:
        for key in list(self._forwards):
            await self.forget(*key)
