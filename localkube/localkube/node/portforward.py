"""Pod port-forward sessions: the two wire protocols real clients use, relayed to a TCP target.

* kr8s (and other WebSocket clients) speak the kubelet's channel framing (`v4.channel.k8s.io`, also used
  when no subprotocol is offered): one WebSocket per forwarded connection, the first byte of each binary
  message names a channel, data is 2i and errors 2i+1 for the i-th requested port. This bulk path has a
  WebSocket of its own on the raw connection (`channel_websocket.py`) rather than aiohttp's.
* kubectl 1.32 speaks SPDY/3.1, either tunnelled in WebSocket binary messages (`SPDY/3.1+portforward.k8s.io`)
  or on the raw connection after a `101 Upgrade: SPDY/3.1`. One session carries many forwarded
  connections, each as a pair of streams (`error` and `data`) sharing a `requestid`.

The drivers only need "connect to the pod's port" (`OpenTarget`) and bytes in / bytes out, so the API server
decides how a pod is reached and which HTTP machinery carries the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from localkube.node import channel_websocket, spdy
from localkube.node.channel_websocket import OP_BINARY, OP_CLOSE

__all__ = [
    "CHANNEL_SUBPROTOCOLS",
    "SPDY_WS_SUBPROTOCOL",
    "OpenTarget",
    "serve_channel_upgrade",
    "serve_raw_spdy_upgrade",
    "serve_spdy_portforward",
    "websocket_recv",
    "websocket_send",
]

log = logging.getLogger(__name__)

OpenTarget = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
ErrorText = Callable[[int, BaseException], str]
Recv = Callable[[], Awaitable[bytes | None]]
Send = Callable[[bytes], Awaitable[None]]

SPDY_WS_SUBPROTOCOL = "SPDY/3.1+portforward.k8s.io"
CHANNEL_SUBPROTOCOLS = ("v4.channel.k8s.io", "channel.k8s.io")  # binary framing; base64 is not spoken
READ_CHUNK = 256 * 1024  # the most a target read takes, and so the largest message sent to the client
TARGET_HIGH_WATER = 1024 * 1024  # client bytes a target may have queued before the client is not read


async def _close_writers(*writers: asyncio.StreamWriter | None) -> None:
    """Close target sockets: all synchronously first, so a cancellation while waiting leaks none."""
    live = [w for w in writers if w is not None]
    for writer in live:
        writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*(w.wait_closed() for w in live), return_exceptions=True), 5)


async def _cancel_all(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ------------------------------------------------------------------------------ v4 channel framing


async def serve_channel_upgrade(
    request: web.Request, ports: list[int], open_target: OpenTarget, error_text: ErrorText
) -> web.StreamResponse:
    """Answer a channel-framing WebSocket upgrade and forward `ports` over it until either side closes.

    Like the kubelet, each channel first gets one preamble frame holding its port (uint16 LE); kr8s drops
    exactly one frame per channel before relaying, so there must be exactly one. The WebSocket is ours, on the
    raw connection (`channel_websocket.py`): client bytes go to the targets as they arrive, with no message
    assembly, and the connection stops reading while a target is slow.
    """
    key = request.headers.get("Sec-WebSocket-Key", "")
    if request.headers.get("Upgrade", "").lower() != "websocket" or not key:
        raise web.HTTPBadRequest(text="expected a WebSocket upgrade")
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    headers = {"Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Accept": channel_websocket.accept_key(key)}
    chosen = next((p for p in offered if p in CHANNEL_SUBPROTOCOLS), None)
    if chosen is not None:
        headers["Sec-WebSocket-Protocol"] = chosen
    response = web.StreamResponse(status=101, headers=headers)
    response.force_close()
    await response.prepare(request)
    transport = request.transport
    if transport is None:
        return response
    session = _ChannelSession(transport, request.protocol, len(ports))
    try:
        await session.serve(ports, open_target, error_text)
    except ConnectionError as exc:  # the client vanished while we were sending
        log.debug("port-forward websocket ended: %r", exc)
    finally:
        await session.close()
    return response


class _ChannelSession:
    """One channel-framing WebSocket: targets by port index, client bytes in through `FrameReader` callbacks."""

    def __init__(self, transport: asyncio.Transport, protocol: Any, count: int) -> None:
        self._transport = transport
        self._protocol = protocol  # aiohttp's RequestHandler: set_parser, pause/resume_reading, _drain_helper
        self._writers: list[asyncio.StreamWriter | None] = [None] * count
        self._pumps: list[asyncio.Task] = []
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._resuming: asyncio.Task | None = None
        self._close_sent = False

    async def serve(self, ports: list[int], open_target: OpenTarget, error_text: ErrorText) -> None:
        for i, port in enumerate(ports):
            for channel in (2 * i, 2 * i + 1):
                await self._send(channel, port.to_bytes(2, "little"))
        for i, port in enumerate(ports):
            try:
                reader, self._writers[i] = await open_target(port)
            except OSError as exc:
                await self._send(2 * i + 1, error_text(port, exc).encode())
                continue
            self._pumps.append(asyncio.create_task(self._pump(2 * i, reader)))
        if not self._pumps:
            return
        # Only now: bytes that came before the targets were open waited in aiohttp's buffer, not dropped.
        self._protocol.set_parser(channel_websocket.FrameReader(self))
        all_pumps = asyncio.gather(*self._pumps)
        try:
            await asyncio.wait([self._ended, all_pumps], return_when=asyncio.FIRST_COMPLETED)
        finally:
            all_pumps.cancel()
            await asyncio.gather(all_pumps, return_exceptions=True)  # retrieve a pump's error, if any

    async def close(self) -> None:
        """Targets closed (synchronously first, so cancellation leaks none), a close frame, the connection."""
        tasks = [*self._pumps, *([self._resuming] if self._resuming is not None else [])]
        for task in tasks:
            task.cancel()
        writers = [w for w in self._writers if w is not None]
        for writer in writers:
            writer.close()
        self._close_frame(1000)
        self._transport.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _close_writers(*writers)

    async def _pump(self, channel: int, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(READ_CHUNK):
                await self._send(channel, chunk)

    async def _send(self, channel: int, data: bytes) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError("port-forward client went away")
        self._transport.write(channel_websocket.frame_header(OP_BINARY, len(data) + 1) + bytes([channel]) + data)
        await self._protocol._drain_helper()  # the back-pressure hook aiohttp's own writers await

    def _close_frame(self, code: int) -> None:
        if not self._close_sent and not self._transport.is_closing():
            self._close_sent = True
            self._transport.write(channel_websocket.frame_header(OP_CLOSE, 2) + code.to_bytes(2, "big"))

    # channel_websocket.Handler: called from the connection's data_received
    def data(self, channel: int, payload: bytearray | memoryview) -> None:
        index = channel // 2
        writer = self._writers[index] if channel % 2 == 0 and index < len(self._writers) else None
        if writer is None:
            return
        if writer.transport.is_closing():  # the target went away: its channel's bytes have nowhere to go
            self._writers[index] = None
            return
        writer.write(payload)
        if self._resuming is None and writer.transport.get_write_buffer_size() > TARGET_HIGH_WATER:
            self._protocol.pause_reading()  # back-pressure: stop reading the client while the target is slow
            self._resuming = asyncio.create_task(self._resume_when_drained(writer))

    async def _resume_when_drained(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        self._resuming = None
        if not self._ended.done():
            self._protocol.resume_reading()

    def control(self, opcode: int, payload: bytes) -> None:
        if opcode == channel_websocket.OP_PING and not self._transport.is_closing():
            self._transport.write(channel_websocket.frame_header(channel_websocket.OP_PONG, len(payload)) + payload)
        elif opcode == OP_CLOSE:
            self._close_frame(int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1000)

    def ended(self, error: BaseException | None) -> None:
        if error is not None:
            log.debug("port-forward websocket: %s", error)
            self._close_frame(1002)
        if not self._ended.done():
            self._ended.set_result(None)


# --------------------------------------------------------------------------------------------- SPDY


@dataclass
class _Forward:
    """One forwarded TCP connection: kubectl's error/data stream pair sharing a requestid.

    `inbound` is unbounded because SPDY without WINDOW_UPDATE has no way to slow one stream down, and
    blocking the session reader would stall every other connection (and PINGs) behind a slow target.
    """

    port: int
    error_stream: int | None = None
    data_stream: int | None = None
    inbound: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task | None = None


class _SpdySession:
    def __init__(self, send: Send, open_target: OpenTarget, error_text: ErrorText) -> None:
        self._send = send
        self._open_target = open_target
        self._error_text = error_text
        self._conn = spdy.SpdyConnection()
        self._lock = asyncio.Lock()  # one frame at a time, and header blocks in compression order
        self._forwards: dict[str, _Forward] = {}
        self._by_stream: dict[int, _Forward] = {}
        self._closed = False

    async def run(self, recv: Recv) -> None:
        while (chunk := await recv()) is not None:
            for frame in self._conn.receive(chunk):
                if not await self._handle(frame):
                    return

    async def close(self) -> None:
        self._closed = True
        await _cancel_all([f.task for f in self._forwards.values() if f.task is not None])

    async def _write(self, build: Callable[[], bytes]) -> None:
        """Build under the lock so SYN_REPLY header blocks leave in the order they were compressed."""
        async with self._lock:
            if not self._closed:
                await self._send(build())

    async def _handle(self, frame: spdy.Frame) -> bool:
        match frame:
            case spdy.SynStream():
                await self._write(lambda: self._conn.syn_reply(frame.stream_id))
                self._open_stream(frame)
            case spdy.DataFrame():
                self._on_data(frame)
            case spdy.RstStream():
                self._on_reset(frame.stream_id)
            case spdy.Ping():
                await self._write(lambda: spdy.build_ping(frame.ping_id))
            case spdy.GoAway():
                return False
        return True

    def _open_stream(self, frame: spdy.SynStream) -> None:
        kind = frame.headers.get("streamtype")
        try:
            port = int(frame.headers.get("port", ""))
        except ValueError:
            port = -1
        if kind not in ("error", "data") or not 0 < port < 65536:
            log.debug("ignoring SPDY stream %d with headers %r", frame.stream_id, frame.headers)
            return
        key = frame.headers.get("requestid", f"port-{port}")
        fwd = self._forwards.setdefault(key, _Forward(port))
        if kind == "error":
            fwd.error_stream = frame.stream_id
        else:
            fwd.data_stream = frame.stream_id
        self._by_stream[frame.stream_id] = fwd
        if fwd.error_stream is not None and fwd.data_stream is not None and fwd.task is None:
            fwd.task = asyncio.create_task(self._forward(fwd))
            fwd.task.add_done_callback(lambda _: self._forget(key, fwd))

    def _forget(self, key: str, fwd: _Forward) -> None:
        """Drop a finished connection so a long session does not accumulate state; late frames are ignored."""
        self._forwards.pop(key, None)
        for stream_id in (fwd.error_stream, fwd.data_stream):
            if stream_id is not None and self._by_stream.get(stream_id) is fwd:
                del self._by_stream[stream_id]

    def _on_data(self, frame: spdy.DataFrame) -> None:
        fwd = self._by_stream.get(frame.stream_id)
        if fwd is None or frame.stream_id != fwd.data_stream:
            return  # the error stream's FIN, or a stream already reset
        if frame.data:
            fwd.inbound.put_nowait(frame.data)
        if frame.fin:
            fwd.inbound.put_nowait(None)

    def _on_reset(self, stream_id: int) -> None:
        fwd = self._by_stream.pop(stream_id, None)
        if fwd is not None and fwd.task is not None:
            fwd.task.cancel()

    async def _forward(self, fwd: _Forward) -> None:
        assert fwd.error_stream is not None and fwd.data_stream is not None
        data_id, error_id = fwd.data_stream, fwd.error_stream
        try:
            reader, writer = await self._open_target(fwd.port)
        except OSError as exc:
            text = self._error_text(fwd.port, exc).encode()
            with contextlib.suppress(Exception):
                await self._write(lambda: spdy.build_data(error_id, text))
                await self._write(lambda: spdy.build_data(data_id, fin=True))
                await self._write(lambda: spdy.build_data(error_id, fin=True))
            return
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._to_target(fwd.inbound, writer))
                group.create_task(self._from_target(reader, data_id, error_id))
        except Exception as exc:  # the client connection failed under us; the session is ending
            log.debug("SPDY port-forward stream %d ended: %r", data_id, exc)
        finally:
            await _close_writers(writer)

    @staticmethod
    async def _to_target(inbound: asyncio.Queue[bytes | None], writer: asyncio.StreamWriter) -> None:
        """Client bytes to the target; a client FIN half-closes the target like the kubelet does."""
        try:
            while (data := await inbound.get()) is not None:
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except ConnectionError:
            pass

    async def _from_target(self, reader: asyncio.StreamReader, data_id: int, error_id: int) -> None:
        """Target bytes to the client; at target EOF FIN the data stream, then the error stream."""
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(READ_CHUNK):
                await self._write(lambda c=chunk: spdy.build_data(data_id, c))
        await self._write(lambda: spdy.build_data(data_id, fin=True))
        await self._write(lambda: spdy.build_data(error_id, fin=True))


async def serve_spdy_portforward(recv: Recv, send: Send, open_target: OpenTarget, error_text: ErrorText) -> None:
    """Serve one kubectl SPDY/3.1 port-forward session until the client closes it.

    `recv` yields the client's byte stream in arbitrary pieces (None at EOF); `send` writes ours. Every
    target connection is closed before this returns, also when cancelled.
    """
    session = _SpdySession(send, open_target, error_text)
    try:
        await session.run(recv)
    except spdy.SpdyError as exc:
        log.warning("closing SPDY port-forward session: %s", exc)
    except (ConnectionError, RuntimeError) as exc:  # the client vanished while we were answering
        log.debug("SPDY port-forward session ended: %r", exc)
    finally:
        await session.close()


def websocket_recv(ws: web.WebSocketResponse) -> Recv:
    """SPDY-over-WebSocket input: binary payloads concatenate into the stream; text is ignored."""

    async def recv() -> bytes | None:
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.BINARY:
                return msg.data
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return None

    return recv


def websocket_send(ws: web.WebSocketResponse) -> Send:
    async def send(data: bytes) -> None:
        await ws.send_bytes(data)

    return send


# ------------------------------------------------------------------------------ raw SPDY upgrade


class _RawStream:
    """Stands in for aiohttp's payload parser after our 101, handing the raw bytes to a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(data)
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)


async def serve_raw_spdy_upgrade(
    request: web.Request, open_target: OpenTarget, error_text: ErrorText
) -> web.StreamResponse:
    """Answer kubectl's `POST .../portforward` with `Upgrade: SPDY/3.1` and speak SPDY on the socket.

    aiohttp has no public hand-over of a connection after a non-WebSocket 101, so this uses what
    `WebSocketResponse` itself relies on: `request.protocol.set_parser` routes later bytes to us, and the
    transport carries ours. It is the fallback path (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`, older kubectl).
    """
    if request.headers.get("Upgrade", "").lower() != "spdy/3.1":
        raise web.HTTPBadRequest(text="expected Upgrade: SPDY/3.1")
    response = web.StreamResponse(
        status=101,
        headers={
            "Connection": "Upgrade",
            "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": "portforward.k8s.io",
        },
    )
    response.force_close()
    await response.prepare(request)
    transport = request.transport
    if transport is None:
        return response
    raw, protocol = _RawStream(), request.protocol
    protocol.set_parser(raw)  # type: ignore[arg-type]

    async def send(data: bytes) -> None:
        if transport.is_closing():
            raise ConnectionResetError("port-forward client went away")
        transport.write(data)
        await protocol._drain_helper()  # the same back-pressure hook aiohttp's own writers await

    try:
        await serve_spdy_portforward(raw.queue.get, send, open_target, error_text)
    finally:
        transport.close()
    return response
