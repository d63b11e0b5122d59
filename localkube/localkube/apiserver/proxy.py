"""The `proxy` subresource of pods and services: `.../services/[SCHEME:]NAME[:PORT]/proxy/PATH` and the same for
pods, as kube-apiserver serves them (what `kubectl proxy` users and web dashboards rely on).

Where a request goes is decided as the real server decides it. A Service's port, by number or by name, picks the
Endpoints port of that name, and a ready address whose `targetRef` pod holds that IP (an Endpoints port number
is the resolved targetPort); no Endpoints is 404 `endpoints "x" not found`, no ready address is 503 `no endpoints
available for service "x"`. A pod's port is a number, a container port name (a LocalKube convenience: the real
server hands the name to its dialer), or by default the first container port. The connection itself is the
kubelet runtime's `open_port`, so node faults and simulated pods behave as they do for port-forward.

What is forwarded is what kube-apiserver forwards: every method it proxies, the path (cleaned, trailing slash
kept) and raw query, the client's headers minus hop-by-hop ones and the client's credentials (the real
authentication filter strips `Authorization` and `Impersonate-*` before any handler), `X-Forwarded-For` and
`X-Forwarded-Uri`. Bodies stream both ways. Responses come back with `Location` and HTML links rewritten and
CORS headers dropped (`proxylinks.py`). An upgrade (WebSocket, SPDY) is a byte tunnel once the backend answers
101, and like the real server's it carries no query string (kubernetes/kubernetes#77142) and no rewriting.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web
from multidict import CIMultiDict

from localkube.apiserver import proxylinks
from localkube.apiserver.core import POD_KEY, ApiCore
from localkube.apiserver.errors import ApiError

Obj = dict[str, Any]
OpenPort = Callable[[Obj, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

ENDPOINTS_KEY = ("", "endpoints")
SERVICES_KEY = ("", "services")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Headers that describe one connection, not the message (RFC 9110 §7.6.1, as Go's reverse proxy lists them).
HOP_BY_HOP = frozenset(h.lower() for h in ("Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
                                           "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"))
# aiohttp has already decoded a request body sent with one of these codings: it goes on as plain bytes.
DECODED_CODINGS = frozenset(("gzip", "deflate", "br", "zstd"))
CHUNK = 64 * 1024
DIAL_TIMEOUT = 30.0
_PAUSE_AT = 64  # queued client writes on a tunnel before reading from the client pauses


@dataclass(frozen=True)
class Backend:
    """Where a proxied request goes: a pod, the port on it, and the `host[:port]` the URL names."""

    pod: Obj
    ip: str
    port: int
    scheme: str
    host: str


def split_target(ident: str, what: str) -> tuple[str, str, str]:
    """`[scheme:]name[:port]` as kube-apiserver reads a proxy target; 400 for anything else."""
    parts = ident.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, (name, port) = "", parts
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        scheme, name, port = "-", "", ""
    if not name or scheme not in ("", "http", "https"):
        raise ApiError(400, f'invalid {what} request "{ident}"')
    return scheme or "http", name, port


def _numeric(port: str) -> int | None:
    try:
        return int(port)
    except ValueError:
        return None


def _pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    ips = status.get("podIPs") or []
    return (ips[0].get("ip") if ips else None) or status.get("podIP") or ""


def _host(ip: str, port: int | None) -> str:
    return ip if port is None else f"{ip}:{port}"


def service_backend(core: ApiCore, namespace: str, ident: str) -> Backend:
    scheme, name, port = split_target(ident, "service")
    number = _numeric(port)
    if number is not None:  # a port number stands for the name of the Service port that has it
        svc = core.get(core.kind_of(SERVICES_KEY), namespace, name)
        named = next((p for p in (svc.get("spec") or {}).get("ports") or () if p.get("port") == number), None)
        if named is None:
            raise ApiError(503, f'no service port {number} found for service "{name}"')
        port = named.get("name") or ""
    eps = core.get(core.kind_of(ENDPOINTS_KEY), namespace, name)
    subsets = list(eps.get("subsets") or ())
    if not subsets:
        raise ApiError(503, f'no endpoints available for service "{name}"')
    start = random.randrange(len(subsets))
    for subset in subsets[start:] + subsets[:start]:
        addresses = list(subset.get("addresses") or ())
        for ep_port in subset.get("ports") or ():
            if (ep_port.get("name") or "") != port:
                continue
            first = random.randrange(len(addresses)) if addresses else 0
            for addr in addresses[first:] + addresses[:first]:
                pod = _endpoint_pod(core, namespace, addr)
                if pod is not None:
                    return Backend(pod, addr["ip"], ep_port["port"], scheme, _host(addr["ip"], ep_port["port"]))
    raise ApiError(503, f'no endpoints available for service "{ident}"')


def _endpoint_pod(core: ApiCore, namespace: str, addr: Obj) -> Obj | None:
    """The pod behind an endpoint address, if it is still there with that IP (the real server checks the same)."""
    ref = addr.get("targetRef") or {}
    if ref.get("kind", "Pod") != "Pod" or ref.get("namespace", namespace) != namespace or not ref.get("name"):
        return None
    pod = core.store.get(POD_KEY, namespace, ref["name"])
    if pod is None:
        return None
    ips = {p.get("ip") for p in (pod.get("status") or {}).get("podIPs") or ()} | {_pod_ip(pod)}
    return pod if addr.get("ip") in ips else None


def pod_backend(core: ApiCore, namespace: str, ident: str) -> Backend:
    scheme, name, port = split_target(ident, "pod")
    pod = core.get(core.kind_of(POD_KEY), namespace, name)
    containers = (pod.get("spec") or {}).get("containers") or ()
    declared = [p for c in containers for p in c.get("ports") or ()]
    if not port and declared:
        port = str(declared[0]["containerPort"])
    ip = _pod_ip(pod)
    if not ip:
        raise ApiError(400, "address not allowed")
    if not port:
        return Backend(pod, ip, 443 if scheme == "https" else 80, scheme, ip)
    number = _numeric(port)
    if number is None:
        number = next((p["containerPort"] for p in declared if p.get("name") == port), None)
        if number is None:
            raise ApiError(503, f"error trying to reach service: dial tcp: lookup tcp/{port}: unknown port")
    if not 0 < number < 65536:
        raise ApiError(503, f"error trying to reach service: dial tcp: address {port}: invalid port")
    return Backend(pod, ip, number, scheme, _host(ip, number))


# -- the request ---------------------------------------------------------------------------------------------


def backend_path(request_path: str, proxy_prefix: str) -> str:
    """The path the backend sees: what follows `/proxy`, cleaned, keeping a trailing slash; "" for none."""
    rest = request_path[len(proxy_prefix):].strip("/")
    if request_path.endswith("/"):
        rest += "/"
    path = proxylinks.clean_join("/" + rest) if rest else ""
    return path + "/" if rest.endswith("/") and not path.endswith("/") else path


def _is_upgrade(request: web.Request) -> bool:
    return any("upgrade" in v.lower() for v in request.headers.getall("Connection", ()))


def _connection_tokens(headers: Any) -> set[str]:
    return {t.strip().lower() for v in headers.getall("Connection", ()) for t in v.split(",") if t.strip()}


def _outgoing_headers(request: web.Request, upgrade: bool) -> list[tuple[str, str]]:
    """The client's headers as the backend gets them (the first is Host)."""
    named = _connection_tokens(request.headers)
    out = [("Host", request.headers.get("Host", request.host))]
    for raw_name, raw_value in request.raw_headers:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        low = name.lower()
        if low in ("host", "authorization", "content-length", "transfer-encoding") or low.startswith("impersonate-"):
            continue
        if not upgrade and (low in HOP_BY_HOP or low in named) and not (low == "te" and value.lower() == "trailers"):
            continue
        if low == "content-encoding" and value.strip().lower() in DECODED_CODINGS:
            continue
        if low == "x-forwarded-for" or (low == "x-forwarded-uri" and not upgrade):  # set below, not appended
            continue
        out.append((name, value))
    prior = ", ".join(request.headers.getall("X-Forwarded-For", ()))
    remote = request.remote or ""
    if remote:
        out.append(("X-Forwarded-For", f"{prior}, {remote}" if prior else remote))
    return out


def _body_framing(request: web.Request) -> tuple[list[tuple[str, str]], bool]:
    """(framing headers, chunked?) for the request body as we send it on: its length when aiohttp has not
    decoded it, else chunks; an empty body of a write is announced as such."""
    decoded = request.headers.get("Content-Encoding", "").strip().lower() in DECODED_CODINGS
    length = request.headers.get("Content-Length")
    if length is not None and not decoded:
        return [("Content-Length", length)], False
    if request.body_exists:
        return [("Transfer-Encoding", "chunked")], True
    return ([("Content-Length", "0")] if request.method in ("POST", "PUT", "PATCH") else []), False


def _head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send_body(request: web.Request, writer: asyncio.StreamWriter, chunked: bool) -> None:
    async for data in request.content.iter_chunked(CHUNK):
        writer.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()


# -- the response --------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    reason: str
    headers: CIMultiDict[str]


async def _read_reply(reader: asyncio.StreamReader, skip_interim: bool = True) -> Reply:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            raise ConnectionResetError("the backend closed the connection before answering")
        except asyncio.LimitOverrunError:
            raise ConnectionError("the backend's response headers are too large")
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not code.isdigit():
            raise ConnectionError(f"malformed HTTP response {lines[0][:80]!r}")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers.add(name.strip(), value.strip())
        status = int(code)
        if skip_interim and 100 <= status < 200 and status != 101:
            continue  # 100 Continue, 103 Early Hints: the final answer follows
        return Reply(status, reason, headers)


async def _reply_body(reader: asyncio.StreamReader, reply: Reply, method: str) -> AsyncIterator[bytes]:
    if method == "HEAD" or reply.status in (204, 304) or reply.status < 200:
        return
    if "chunked" in reply.headers.get("Transfer-Encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, dropped as Go's proxy does
                    pass
                return
            while size:
                data = await reader.read(min(size, CHUNK))
                if not data:
                    raise ConnectionResetError("the backend closed the connection mid-chunk")
                size -= len(data)
                yield data
            await reader.readexactly(2)
    elif (length := reply.headers.get("Content-Length")) is not None:
        left = int(length)
        while left:
            data = await reader.read(min(left, CHUNK))
            if not data:
                raise ConnectionResetError("the backend closed the connection mid-body")
            left -= len(data)
            yield data
    else:
        while data := await reader.read(CHUNK):
            yield data


def _client_headers(reply: Reply) -> CIMultiDict[str]:
    named = _connection_tokens(reply.headers)
    cors = {h.lower() for h in proxylinks.CORS_HEADERS}
    return CIMultiDict((k, v) for k, v in reply.headers.items()
                       if k.lower() not in HOP_BY_HOP and k.lower() not in named and k.lower() not in cors)


# -- serving -------------------------------------------------------------------------------------------------


class _Tunnel:
    """Takes aiohttp's place as reader of the client connection after a 101: raw bytes into a queue."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.transport = transport
        self.paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(data)
        if self.queue.qsize() >= _PAUSE_AT and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)

    async def get(self) -> bytes | None:
        data = await self.queue.get()
        if self.paused and self.queue.qsize() < _PAUSE_AT // 2:
            self.paused = False
            self.transport.resume_reading()
        return data


async def _dial(backend: Backend, open_port: OpenPort) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    async with asyncio.timeout(DIAL_TIMEOUT):
        reader, writer = await open_port(backend.pod, backend.port)
        if backend.scheme == "https":  # pods serve self-signed certificates: the real proxy verifies nothing
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            await writer.start_tls(context)
    return reader, writer


def _dial_error(backend: Backend, err: BaseException) -> str:
    if isinstance(err, ConnectionRefusedError):
        return f"dial tcp {backend.ip}:{backend.port}: connect: connection refused"
    if isinstance(err, TimeoutError):
        return f"dial tcp {backend.ip}:{backend.port}: i/o timeout"
    return str(err) or type(err).__name__


async def handle(request: web.Request, core: ApiCore, plural: str, namespace: str, name: str,
                 open_port: OpenPort) -> web.StreamResponse:
    """`PLURAL/NAME/proxy[/PATH]`: the API server's entry point."""
    if plural not in ("pods", "services"):
        raise ApiError(405, f"LocalKube does not serve {plural}/proxy: its nodes run no kubelet HTTP server to "
                            "proxy to (pods/NAME/proxy and services/NAME/proxy are served)")
    if request.method not in METHODS:
        raise ApiError(405, f"the server does not allow this method on the requested resource ({request.method})")
    backend = (pod_backend if plural == "pods" else service_backend)(core, namespace, name)
    return await serve(request, backend, proxy_prefix_of(request, plural, name), open_port)


async def serve(request: web.Request, backend: Backend, proxy_prefix: str, open_port: OpenPort) -> web.StreamResponse:
    """Forward `request` to `backend`; `proxy_prefix` is the request path up to and including `/proxy`."""
    path = backend_path(request.path, proxy_prefix)
    if _is_upgrade(request):
        return await _serve_upgrade(request, backend, path or "/", open_port)
    if not path and request.method in ("GET", "HEAD"):  # kube-apiserver's answer to a missing trailing slash
        query = request.raw_path.partition("?")[2]
        return web.Response(status=301, headers={"Location": request.path + "/" + (f"?{query}" if query else "")})
    return await _serve_http(request, backend, path, open_port)


def _target(path: str, query: str) -> str:
    escaped = quote(path or "/", safe="/$&+,:;=@")
    return f"{escaped}?{query}" if query else escaped


async def _serve_http(request: web.Request, backend: Backend, path: str, open_port: OpenPort) -> web.StreamResponse:
    prefix = proxylinks.path_prefix(request.path, path)
    headers = _outgoing_headers(request, upgrade=False)
    headers.append(("X-Forwarded-Uri", proxylinks.forwarded_uri(prefix, path)))
    framing, chunked = _body_framing(request)
    try:
        reader, writer = await _dial(backend, open_port)
    except (OSError, TimeoutError) as err:
        raise ApiError(503, f"error trying to reach service: {_dial_error(backend, err)}")
    sender: asyncio.Task[None] | None = None
    try:
        writer.write(_head(request.method, _target(path, request.raw_path.partition("?")[2]), headers + framing))
        if request.body_exists:
            sender = asyncio.ensure_future(_send_body(request, writer, chunked))
        try:
            await writer.drain()
            reply = await _read_reply(reader)
        except (OSError, asyncio.IncompleteReadError) as err:
            raise ApiError(503, f"error trying to reach service: {err}")
        return await _answer(request, reply, reader, prefix, backend.host)
    finally:
        if sender is not None:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        writer.close()


async def _answer(request: web.Request, reply: Reply, reader: asyncio.StreamReader, prefix: str,
                  backend_host: str, rewrite: bool = True) -> web.StreamResponse:
    """Send the backend's reply on to the client, streaming its body (an HTML page whole, once rewritten)."""
    headers = _client_headers(reply) if rewrite else CIMultiDict(
        (k, v) for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP)
    body = _reply_body(reader, reply, request.method)
    request_host = request.headers.get("Host", request.host)

    def link(url: str) -> str:
        return proxylinks.rewrite_url(url, prefix, backend_host, request_host)

    location = headers.get("Location")
    content_type = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if rewrite and location:
        headers["Location"] = link(location)
    elif rewrite and content_type == "text/html" and request.method != "HEAD":
        page = b"".join([chunk async for chunk in body])
        rewritten = proxylinks.rewrite_html_body(page, headers.get("Content-Encoding", ""), link)
        page = page if rewritten is None else rewritten
        headers.popall("Content-Length", None)
        return web.Response(status=reply.status, reason=reply.reason, headers=headers, body=page)
    resp = web.StreamResponse(status=reply.status, reason=reply.reason, headers=headers)
    await resp.prepare(request)
    try:
        async for chunk in body:
            await resp.write(chunk)
        await resp.write_eof()
    except (OSError, asyncio.IncompleteReadError, ValueError):
        # The backend broke off mid-body: the client must see a cut connection, not a complete reply.
        if request.transport is not None:
            request.transport.close()
    finally:
        await body.aclose()  # type: ignore[attr-defined]
    return resp


async def _serve_upgrade(request: web.Request, backend: Backend, path: str, open_port: OpenPort
                         ) -> web.StreamResponse:
    try:
        reader, writer = await _dial(backend, open_port)
    except (OSError, TimeoutError) as err:
        raise ApiError(500, f"error dialing backend: {_dial_error(backend, err)}", reason="")
    try:
        writer.write(_head(request.method, _target(path, ""), _outgoing_headers(request, upgrade=True)))
        await writer.drain()
        try:
            reply = await _read_reply(reader, skip_interim=False)
        except (OSError, asyncio.IncompleteReadError) as err:
            raise ApiError(500, str(err), reason="")
        if reply.status != 101:
            if reply.status < 400:
                raise ApiError(500, f"invalid upgrade response: status code {reply.status}", reason="")
            resp = await _answer(request, reply, reader, "", backend.host, rewrite=False)
            resp.force_close()
            return resp
        resp = web.StreamResponse(status=101, reason=reply.reason, headers=reply.headers)
        resp.force_close()
        await resp.prepare(request)
        transport = request.transport
        if transport is None:
            return resp
        await _tunnel(request, transport, reader, writer)
        return resp
    finally:
        writer.close()


async def _tunnel(request: web.Request, transport: asyncio.Transport, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    """Copy bytes both ways until either side closes; then both close, as the real proxy does."""
    tunnel = _Tunnel(transport)
    protocol = request.protocol
    protocol.set_parser(tunnel)  # type: ignore[arg-type]

    async def upstream() -> None:
        while (data := await tunnel.get()) is not None:
            writer.write(data)
            await writer.drain()

    async def downstream() -> None:
        while data := await reader.read(CHUNK):
            if transport.is_closing():
                return
            transport.write(data)
            await protocol._drain_helper()  # aiohttp's own back-pressure wait on the client transport

    tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        transport.close()


def proxy_prefix_of(request: web.Request, plural: str, name: str) -> str:
    """The request path up to and including the `proxy` segment that follows `plural/name`."""
    marker = f"/{plural}/{name}/proxy"
    path = request.path
    at = path.find(marker + "/")
    if at < 0 and path.endswith(marker):
        at = len(path) - len(marker)
    return path[:at + len(marker)]
