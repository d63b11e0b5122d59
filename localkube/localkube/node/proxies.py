"""TCP forwarders that stand in for kube-proxy: ClusterIP, NodePort and LoadBalancer addresses.

Every listening address carries a `Route` (a port of a Service). The backends of a route are looked up when a
connection arrives, so endpoint changes need no listener restart. A route is only listened on while it has a
ready endpoint: with none, clients get "connection refused", which is what kube-proxy's REJECT rule gives them.
If the chosen endpoint refuses, the others are tried before the client is reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import random
import socket
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Address = tuple[str, int]
CHUNK = 256 * 1024
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Route:
    """Where connections to one listening address go: a Service port, named as its Endpoints name it."""

    namespace: str
    service: str
    port_name: str
    client_ip_affinity: bool = False


@dataclass(eq=False)
class _Listener:
    route: Route
    server: asyncio.Server | None = None
    connections: set[asyncio.Task[None]] = field(default_factory=set)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


class ProxySet:
    """The listeners of one LocalKube; `apply` makes them match the wanted addresses."""

    def __init__(self, backends: Callable[[Route], list[Address]]) -> None:
        self._backends = backends
        self._listeners: dict[Address, _Listener] = {}
        self._failed: set[Address] = set()
        self._counter = itertools.count()

    def listening(self) -> dict[Address, Route]:
        return {addr: lst.route for addr, lst in self._listeners.items()}

    async def apply(self, routes: Mapping[Address, Route]) -> None:
        for addr in [a for a in self._listeners if a not in routes]:
            self._listeners.pop(addr).close()
        for addr, route in routes.items():
            current = self._listeners.get(addr)
            if current is not None:
                current.route = route
                continue
            listener = _Listener(route)
            try:
                listener.server = await asyncio.start_server(
                    lambda r, w, lst=listener: self._serve(lst, r, w), addr[0], addr[1],
                    reuse_address=True, backlog=1024)
            except OSError as err:
                if addr not in self._failed:
                    # A privileged port without root is expected (the `kubernetes` and `kube-dns` Services): pods
                    # reach it through the shim anyway, so only the host's direct connections go without.
                    privileged = err.errno in (errno.EACCES, errno.EPERM) and addr[1] < 1024
                    log.log(logging.INFO if privileged else logging.WARNING, "cannot listen on %s:%s for %s/%s: %s",
                            *addr, route.namespace, route.service, err)
                    self._failed.add(addr)
                continue
            self._failed.discard(addr)
            self._listeners[addr] = listener

    async def close(self) -> None:
        listeners = list(self._listeners.values())
        self._listeners.clear()
        for lst in listeners:
            lst.close()
            for task in list(lst.connections):
                task.cancel()
        for lst in listeners:
            with contextlib.suppress(Exception):
                await asyncio.gather(*lst.connections, return_exceptions=True)
            if lst.server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(lst.server.wait_closed(), 1.0)

    def _order(self, route: Route, backends: list[Address], client: str) -> list[Address]:
        """Backends in the order to try: round-robin, or pinned by client address (sessionAffinity ClientIP)."""
        if not backends:
            return []
        backends = sorted(backends)
        start = zlib.crc32(client.encode()) if route.client_ip_affinity else next(self._counter)
        first = start % len(backends)
        rest = backends[:first] + backends[first + 1:]
        random.shuffle(rest)
        return [backends[first], *rest]

    async def _serve(self, listener: _Listener, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # tracked so that close() can end connections still open
            listener.connections.add(task)
            task.add_done_callback(listener.connections.discard)
        await self._forward(listener.route, reader, writer)

    async def _forward(self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        upstream = None
        for backend in self._order(route, self._backends(route), peer[0]):
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(*backend), CONNECT_TIMEOUT)
                break
            except (OSError, TimeoutError) as err:
                log.debug("%s/%s: endpoint %s:%s failed: %s", route.namespace, route.service, *backend, err)
        if upstream is None:
            _reset(writer)
            return
        up_reader, up_writer = upstream
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until EOF, then pass the half-close on (HTTP clients and Dask comms rely on it)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
    except OSError as err:
        if err.errno not in (errno.ECONNRESET, errno.EPIPE, None):
            log.debug("proxy stream error: %s", err)
        writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, as a refused connection looks to a client that got past the handshake."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
