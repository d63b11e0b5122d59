"""Container probes as the kubelet runs them: `httpGet`, `tcpSocket` and `exec`, with timings and thresholds.

A `Prober` turns single checks into the thresholded result the kubelet acts on: readiness flips Ready,
liveness and startup failures restart the container. The HTTP check is a bare HTTP/1.1 request, which is all a
probe needs (status 200-399 passes) and avoids a client session per container.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

Obj = dict[str, Any]
# Runs a probe's exec command in the container's environment; returns its exit code.
ExecRunner = Callable[[list[str], float], Awaitable[int]]


class ProbeError(Exception):
    """A probe that cannot even be attempted (an unknown named port): it fails like a refused connection."""


def resolve_port(port: int | str, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if str(port).isdigit():
        return int(port)
    for entry in container.get("ports") or ():
        if entry.get("name") == port:
            return int(entry["containerPort"])
    raise ProbeError(f"port {port!r} not found in the container's ports")


async def http_get(host: str, port: int, path: str = "/", scheme: str = "HTTP",
                   headers: list[Obj] | None = None) -> bool:
    context = None
    if scheme.upper() == "HTTPS":  # the kubelet does not verify probe certificates
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        fields = {"host": ("Host", authority), "user-agent": ("User-Agent", "kube-probe/1.32"),
                  "accept": ("Accept", "*/*"), "connection": ("Connection", "close")}
        for header in headers or ():
            fields[str(header.get("name", "")).lower()] = (str(header.get("name")), str(header.get("value", "")))
        head = "".join(f"{name}: {value}\r\n" for name, value in fields.values())
        writer.write(f"GET {path or '/'} HTTP/1.1\r\n{head}\r\n".encode("latin-1"))
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.split()
        return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def tcp_socket(host: str, port: int) -> bool:
    _reader, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def check(probe: Obj, container: Obj, host: str, run_exec: ExecRunner) -> bool:
    """One attempt of `probe`; any error or a timeout is a failure, as for the kubelet."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if "exec" in probe:
            command = [str(a) for a in (probe["exec"].get("command") or [])]
            return bool(command) and await run_exec(command, timeout) == 0
        if "httpGet" in probe:
            spec = probe["httpGet"]
            port = resolve_port(spec.get("port", 80), container)
            attempt = http_get(spec.get("host") or host, port, spec.get("path") or "/", spec.get("scheme") or "HTTP",
                               spec.get("httpHeaders"))
            return await asyncio.wait_for(attempt, timeout)
        if "tcpSocket" in probe:
            spec = probe["tcpSocket"]
            port = resolve_port(spec.get("port", 0), container)
            return await asyncio.wait_for(tcp_socket(spec.get("host") or host, port), timeout)
    except (OSError, TimeoutError, ProbeError, ValueError, ssl.SSLError):
        return False
    return False  # no handler (grpc is not supported): never passes


class Prober:
    """Runs one probe every `periodSeconds` after `initialDelaySeconds`, reporting thresholded results.

    `on_result(True)` after `successThreshold` consecutive passes, `on_result(False)` after `failureThreshold`
    consecutive failures; each is reported once per flip. With `until_success`, it stops after the first pass
    (startup probes).
    """

    def __init__(self, probe: Obj, attempt: Callable[[], Awaitable[bool]], on_result: Callable[[bool], None],
                 *, until_success: bool = False) -> None:
        self.probe = probe
        self.attempt = attempt
        self.on_result = on_result
        self.until_success = until_success
        self.result: bool | None = None

    async def run(self) -> None:
        probe = self.probe
        period = max(float(probe.get("periodSeconds") or 10), 0.05)
        success_threshold = max(int(probe.get("successThreshold") or 1), 1)
        failure_threshold = max(int(probe.get("failureThreshold") or 3), 1)
        await asyncio.sleep(float(probe.get("initialDelaySeconds") or 0))
        passes = failures = 0
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            ok = await self.attempt()
            if ok:
                passes, failures = passes + 1, 0
                if passes >= success_threshold and self.result is not True:
                    self.result = True
                    self.on_result(True)
                    if self.until_success:
                        return
            else:
                passes, failures = 0, failures + 1
                if failures >= failure_threshold and self.result is not False:
                    self.result = False
                    self.on_result(False)
            await asyncio.sleep(max(period - (loop.time() - started), 0.0))
