"""A self-healing port-forward to a cluster's scheduler pod, shared by the client and the operator.

`SchedulerForward` listens on 127.0.0.1 (a port the OS assigns unless one is asked for, so two forwards never
race for a port) and, for each incoming connection, opens a fresh `pods/portforward` WebSocket to the
scheduler pod, re-resolving the pod by its labels when that fails. An address handed to a Dask `Client` or
`rpc` therefore stays valid when the scheduler pod is replaced or the API server restarts: the broken
connection closes, the next one goes through a new WebSocket.

A refusal is different from a failure: when the API server answers the upgrade with 403 (no `create` on
`pods/portforward`), retrying cannot help, so the forward keeps the server's message in `denied` and `check()`
raises it as `errors.ForwardDenied`, for the client or the operator to show instead of a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import httpx
import httpx_ws
import kr8s
from kr8s.asyncio.objects import Pod

from . import kubernetes_api, naming, status, websocket_session
from .errors import ForwardDenied

log = logging.getLogger(__name__)
DATA_CHANNEL = b"\x00"  # the first port's data channel in the kubelet's framing
# The most one read of a local connection takes, and so the largest WebSocket message sent. Large, so that a bulk
# transfer costs few frames, TLS writes and loop passes; a small Dask message still leaves at once.
READ_CHUNK = 256 * 1024
ACCEPT_RETRY_SECONDS = 1.0


class SchedulerForward:
    """127.0.0.1:`local_port` -> `remote_port` of a cluster's scheduler pod; one fresh WebSocket per connection.

    Lives on the loop that started it; `stop()` closes the listener and every open connection.
    """

    def __init__(self, api: kr8s.asyncio.Api, namespace: str, cluster: str, remote_port: int,
                 local_port: int | None = None, connect_timeout: float = 10.0) -> None:
        self.api = api
        self.namespace = namespace
        self.cluster = cluster
        self.remote_port = remote_port
        self.local_port = local_port or 0
        self.connect_timeout = connect_timeout
        self.pod_name = naming.scheduler_name(cluster)
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.denied: str | None = None  # the API server's message once it refused a forward (403)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.local_port}"

    async def start(self) -> int:
        try:
            listener = socket.create_server(("127.0.0.1", self.local_port))
        except OSError as err:
            raise ConnectionError(f"cannot listen on 127.0.0.1:{self.local_port} to forward the scheduler's port "
                                  f"{self.remote_port}: {err.strerror}") from err
        listener.setblocking(False)
        self._listener = listener
        self.local_port = listener.getsockname()[1]
        self._accepting = asyncio.create_task(self._accept(listener))
        log.debug("forwarding %s to %s/%s:%d", self.address, self.namespace, self.pod_name, self.remote_port)
        return self.local_port

    async def stop(self) -> None:
        tasks = [self._accepting] if self._accepting is not None else []
        tasks += self._connections
        self._accepting = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    @property
    def running(self) -> bool:
        return self._listener is not None

    def check(self) -> None:
        """Raise `ForwardDenied` if the API server refused to forward: a timeout would hide the reason."""
        if self.denied is not None:
            raise ForwardDenied(f"cannot port-forward to the scheduler of {self.namespace}/{self.cluster}: "
                                f"{self.denied}")

    async def _accept(self, listener: socket.socket) -> None:
        """Accept connections for as long as the forward runs.

        Not `loop.sock_accept`: when its task is cancelled (`stop()`) in the same loop pass in which a connection
        arrives, CPython 3.9-3.13 accept the connection and then fail to hand it over (InvalidStateError in the
        loop's log) and leak it. Here only this task accepts, and only when it runs, so cancelling it leaves a
        waiting connection in the backlog, to be refused when the listener closes."""
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                await _readable(listener)
                continue
            except OSError as err:  # out of file descriptors, say: the listener stays, as asyncio's servers do
                log.warning("forward %s cannot accept a connection: %r", self.address, err)
                await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = asyncio.create_task(self._handle(conn))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _handle(self, conn: socket.socket) -> None:
        try:
            await self._forward(conn)
        except asyncio.CancelledError:
            pass
        except Exception as err:  # one broken connection must never take the listener down
            log.debug("forwarded connection to %s ended: %r", self.pod_name, err)
        finally:
            conn.close()

    async def _forward(self, conn: socket.socket) -> None:
        deadline = asyncio.get_running_loop().time() + self.connect_timeout
        attempt = 0
        opened = False
        while True:
            try:
                async with self.api.open_websocket(
                        version="v1", url=f"pods/{self.pod_name}/portforward", namespace=self.namespace,
                        params={"ports": str(self.remote_port)}, session_class=websocket_session.BinarySession,
                        max_message_size_bytes=READ_CHUNK) as ws:
                    opened = True
                    self.denied = None
                    assert isinstance(ws, websocket_session.BinarySession)
                    await _pump(ws, conn)
                    return
            except (httpx_ws.HTTPXWSException, httpx.HTTPError, kr8s.ServerError, OSError) as err:
                if opened:  # bytes may have flowed: this connection is over, the client opens a new one
                    return
                if isinstance(err, httpx_ws.WebSocketUpgradeError) and kubernetes_api.status_code(err) == 403:
                    self.denied = await self._refusal()  # retrying cannot help
                    log.warning("port-forward to %s/%s refused: %s", self.namespace, self.cluster, self.denied)
                    return
                attempt += 1
                if asyncio.get_running_loop().time() > deadline:
                    log.info("cannot forward to the scheduler of %s/%s: %r", self.namespace, self.cluster, err)
                    return
                await self._resolve_pod()
                await asyncio.sleep(min(0.1 * 2 ** attempt, 1.0))

    async def _refusal(self) -> str:
        """The API server's own words for the refusal. The refused upgrade's body is gone with its stream, so ask
        again with a plain request, which it refuses the same way (authorization comes before the handler)."""
        url = f"pods/{self.pod_name}/portforward"
        try:
            async with self.api.call_api("POST", version="v1", url=url, namespace=self.namespace,
                                         params={"ports": str(self.remote_port)}):
                pass
        except kr8s.ServerError as err:
            if kubernetes_api.is_forbidden(err):
                return str(err)
        except httpx.HTTPError:
            pass
        return f'the API server refused (403) to "create" "pods/portforward" for pod {self.namespace}/{self.pod_name}'

    async def _resolve_pod(self) -> None:
        """The scheduler pod by its labels: the newest Running one, else the operator's fixed name."""
        try:
            pods = await kubernetes_api.list_objects(Pod, self.namespace, self.api,
                                                     naming.scheduler_selector(self.cluster))
        except kr8s.ServerError:
            return
        running = [p for p in pods if status.phase(p.raw) == "Running" and not status.deleting(p.raw)]
        running.sort(key=lambda p: p.raw["metadata"].get("creationTimestamp", ""), reverse=True)
        self.pod_name = running[0].name if running else naming.scheduler_name(self.cluster)


async def _readable(sock: socket.socket) -> None:
    """Until `sock` has something to read (for a listener: a connection to accept)."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():  # the waiter may have been cancelled in this very loop pass
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


async def _pump(ws: websocket_session.BinarySession, conn: socket.socket) -> None:
    """Copy bytes both ways in the kubelet's channel framing (first byte: 0 data, 1 error; the first message of
    each channel carries the port number) until either side ends.

    The local side is the bare socket: each read is one `recv_into` a buffer kept for the connection (a fresh
    buffer per read costs page faults) that becomes the whole frame in one copy and one masking pass
    (`websocket_session.FrameBuffer`); each write sends straight from the received message. No stream buffer
    copies bytes in between, and the kernel's socket buffer is the queue: a slow WebSocket slows the local sender
    down."""
    loop = asyncio.get_running_loop()

    async def upstream() -> None:
        buffer = websocket_session.FrameBuffer(DATA_CHANNEL, READ_CHUNK)
        while size := await loop.sock_recv_into(conn, buffer.data):
            await ws.send_buffer(buffer, size)

    async def downstream() -> None:
        seen: set[int] = set()
        while True:
            message = await ws.receive_bytes()
            channel, payload = message[0], memoryview(message)[1:]  # a view: no copy of a large message
            if channel not in seen:
                seen.add(channel)
                payload = payload[2:]
            if not payload:
                continue
            if channel % 2:
                raise ConnectionError(f"port-forward error: {bytes(payload).decode(errors='replace')}")
            await loop.sock_sendall(conn, payload)

    tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        exc = task.exception()
        if exc is not None and not isinstance(exc, httpx_ws.WebSocketDisconnect | ConnectionResetError):
            log.debug("forwarded connection closed: %r", exc)

