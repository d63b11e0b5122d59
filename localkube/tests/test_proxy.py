"""The API server proxy (`services/NAME:PORT/proxy/...`, `pods/NAME:PORT/proxy/...`) end to end: a stdlib web
server runs in a pod (`proxy_backend.py`) and the test process talks to it only through the API server, with the
session kubeconfig's token and CA, or through `kubectl proxy`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from localkube.apiserver import certs
from localkube.testing import ApiTarget, api_request, async_until, free_port, until

from .proxy_backend import pattern

pytestmark = pytest.mark.e2e

SOURCE = (Path(__file__).parent / "proxy_backend.py").read_text()


@dataclass
class Backend:
    namespace: str
    target: ApiTarget

    def url(self, resource: str, path: str = "") -> str:
        """`resource` is `services/backend:http`, `pods/backend:8080` and the like."""
        return f"{self.target.server}{self.path(resource, path)}"

    def path(self, resource: str, path: str = "") -> str:
        return f"/api/v1/namespaces/{self.namespace}/{resource}/proxy{path}"

    def session(self, headers: dict[str, str] | None = None) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(headers=self.target.headers if headers is None else headers,
                                     connector=aiohttp.TCPConnector(ssl=self.target.context or False))


def _backend_docs(labels: dict[str, str]) -> list[dict[str, Any]]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "backend", "labels": labels},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
               "name": "web", "image": "python:3.12", "command": ["python", "-c", SOURCE, "8080"],
               "ports": [{"name": "web", "containerPort": 8080}],
               "readinessProbe": {"tcpSocket": {"port": "web"}, "periodSeconds": 1}}]}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend"},
               "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}}
    return [pod, service]


@pytest.fixture(scope="module")
def backend(kube) -> Iterator[Backend]:  # type: ignore[no-untyped-def]
    """One backend pod and its Service for the whole module, in a namespace of their own."""
    namespace = f"proxy-{uuid.uuid4().hex[:8]}"
    code, body = kube.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                             "metadata": {"name": namespace}})
    assert code == 201, body
    try:
        kube.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(_backend_docs({"app": "b"})))
        kube.kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/backend", "--timeout=60s", timeout=70)
        result = Backend(namespace, kube.api)
        until(lambda: api_request(kube.kubeconfig, "GET", result.path("services/backend:http", "/echo/up"))[0]
              == 200, what="the backend reachable through its Service", within=60)
        yield result
    finally:
        kube.request("DELETE", f"/api/v1/namespaces/{namespace}")


async def test_get_and_post_reach_the_pod_through_every_port_form(backend: Backend) -> None:
    forms = ["services/backend:http", "services/backend:80", "services/http:backend:80", "pods/backend:8080",
             "pods/backend"]
    async with backend.session() as http:
        for form in forms:
            async with http.get(backend.url(form, "/echo/a/b/?x=1&y=%20z"), headers={"X-Test": "yes"}) as resp:
                assert resp.status == 200, (form, await resp.text())
                seen = await resp.json()
                assert "Access-Control-Allow-Origin" not in resp.headers  # the real proxy drops CORS headers
            assert seen["method"] == "GET"
            assert seen["target"] == "/echo/a/b/?x=1&y=%20z", form  # trailing slash and raw query kept
            assert seen["headers"]["X-Test"] == "yes"
            assert "Authorization" not in seen["headers"]  # the client's token stays with the API server
            assert seen["headers"]["X-Forwarded-Uri"] == backend.path(form, "/echo/a/b/")
            assert seen["headers"]["X-Forwarded-For"]
            async with http.get(backend.url(form, "/echo//c//d")) as resp:
                assert (await resp.json())["target"] == "/echo/c/d"  # the path is cleaned, as Go's path.Join does
            async with http.post(backend.url(form, "/echo/post"), data=b'{"a": 1}',
                                 headers={"Content-Type": "application/json"}) as resp:
                seen = await resp.json()
            assert (seen["method"], seen["text"], seen["headers"]["Content-Type"]) == (
                "POST", '{"a": 1}', "application/json")


async def test_every_method_is_forwarded(backend: Backend) -> None:
    async with backend.session() as http:
        for method in ("PUT", "PATCH", "DELETE", "OPTIONS"):
            async with http.request(method, backend.url("pods/backend:8080", "/echo/m"), data=b"x") as resp:
                assert resp.status == 200
                assert (await resp.json())["method"] == method
        async with http.head(backend.url("services/backend:http", "/echo/m")) as resp:
            assert resp.status == 200
            assert int(resp.headers["Content-Length"]) > 0
            assert await resp.read() == b""


async def test_a_chunked_reply_streams_before_it_ends(backend: Backend) -> None:
    """The backend sends its first chunk, then waits for `/release`: the first line can only arrive here if the
    API server passes chunks on as they come."""
    async with backend.session() as http, http.get(backend.url("services/backend:http", "/stream")) as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert await asyncio.wait_for(resp.content.readline(), 30) == b"first\n"
        async with http.post(backend.url("services/backend:http", "/release")) as released:
            assert released.status == 200
        assert await resp.read() == b"more 0\nmore 1\nmore 2\n"


async def test_large_bodies_keep_their_sha256_both_ways(backend: Backend) -> None:
    size = 24 * 1024 * 1024
    expected = hashlib.sha256(pattern(size)).hexdigest()
    upload = os.urandom(size)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the proxy sends it on chunked
        for start in range(0, size, 1 << 20):
            yield upload[start:start + (1 << 20)]

    async with backend.session() as http:
        async with http.get(backend.url("services/backend:http", f"/bytes?size={size}")) as resp:
            assert int(resp.headers["Content-Length"]) == size
            digest = hashlib.sha256()
            async for block in resp.content.iter_chunked(1 << 16):
                digest.update(block)
        assert digest.hexdigest() == expected
        for body in (upload, chunks()):
            async with http.post(backend.url("pods/backend:8080", "/echo/upload"), data=body) as resp:
                seen = await resp.json()
            assert (seen["size"], seen["sha256"]) == (size, hashlib.sha256(upload).hexdigest())


async def test_websocket_echo_through_service_and_pod_proxy(backend: Backend) -> None:
    async with backend.session() as http:
        for form in ("services/backend:http", "pods/backend:8080"):
            async with http.ws_connect(backend.url(form, "/ws?token=1")) as ws:
                hello = await ws.receive_json(timeout=30)
                # An upgrade reaches the backend without the query string, as on kube-apiserver
                # (kubernetes/kubernetes#77142), and without the client's credentials.
                assert hello["target"] == "/ws"
                assert "Authorization" not in hello["headers"]
                await ws.send_str("hello")
                assert await ws.receive_str(timeout=30) == "hello"
                payload = os.urandom(300_000)
                await ws.send_bytes(payload)
                assert await ws.receive_bytes(timeout=30) == payload
            assert ws.closed


async def test_links_and_redirects_get_the_proxy_prefix(backend: Backend) -> None:
    prefix = backend.path("services/backend:http")
    async with backend.session() as http:
        async with http.get(backend.url("services/backend:http", "/redirect"), allow_redirects=False) as resp:
            assert resp.status == 302
            assert resp.headers["Location"] == f"{prefix}/echo/target"
        async with http.get(backend.url("services/backend:http", "/page")) as resp:
            page = await resp.text()
        assert f'href="{prefix}/static/app.css"' in page
        assert f'src="{prefix}/static/app.js"' in page
        assert f'href="{prefix}/echo/abs?x=1&amp;y=2"' in page
        assert f'src="{prefix}/img/logo.png"' in page
        assert 'href="rel/page"' in page and 'href="http://example.com/far"' in page  # relative, other host: kept
        assert "<a href='/no'>" in page  # text inside a script is not a link
        async with http.get(backend.url("services/backend:http"), allow_redirects=False) as resp:
            assert resp.status == 301  # no trailing slash: redirected to the proxy root, as kube-apiserver does
            assert resp.headers["Location"] == f"{prefix}/"


def test_unknown_targets_and_missing_endpoints_are_refused_like_kube_apiserver(kube, kubectl, backend: Backend,  # type: ignore[no-untyped-def]
                                                                                namespace: str) -> None:
    # A Service whose selector matches no pod: its Endpoints exist but have no address.
    kubectl("apply", "-f", "-", input=yaml.safe_dump(_backend_docs({"app": "nobody"})[1]))
    until(lambda: kubectl("get", "endpoints", "backend", check=False).returncode == 0, what="the Endpoints")

    def get(resource: str, ns: str = namespace) -> tuple[int, Any]:
        return api_request(kube.kubeconfig, "GET", f"/api/v1/namespaces/{ns}/{resource}/proxy/")

    code, body = get("services/backend:http")
    assert (code, body["reason"], body["message"]) == (503, "ServiceUnavailable",
                                                       'no endpoints available for service "backend"')
    # The backend's Service has one port, named: no port names the unnamed one, a wrong number names none.
    assert get("services/backend", backend.namespace)[1]["message"] == 'no endpoints available for service "backend"'
    assert get("services/backend:81", backend.namespace)[1]["message"] == \
        'no service port 81 found for service "backend"'
    code, body = get("services/nope:80")
    assert (code, body["reason"], body["message"]) == (404, "NotFound", 'services "nope" not found')
    code, body = get("services/nope:http")  # a port name goes straight to the Endpoints, as on kube-apiserver
    assert (code, body["message"]) == (404, 'endpoints "nope" not found')
    code, body = get("pods/nope:8080")
    assert (code, body["reason"], body["message"]) == (404, "NotFound", 'pods "nope" not found')
    code, body = get("services/a:b:c:d")
    assert (code, body["message"]) == (400, 'invalid service request "a:b:c:d"')


@pytest.mark.localkube_only
async def test_named_pod_ports_and_nodes_proxy(backend: Backend) -> None:
    """A container port name works on LocalKube's pod proxy (kube-apiserver would hand the name to its dialer);
    nodes/proxy is refused: no kubelet HTTP server runs."""
    async with backend.session() as http:
        async with http.get(backend.url("pods/backend:web", "/echo/named")) as resp:
            assert (await resp.json())["target"] == "/echo/named"
        async with http.get(backend.url("pods/backend:nope", "/")) as resp:
            assert resp.status == 503
        async with http.get(f"{backend.target.server}/api/v1/nodes/localkube-node/proxy/healthz") as resp:
            body = await resp.json()
        assert resp.status == 405 and "nodes/proxy" in body["message"]


@pytest.mark.localkube_only
def test_https_backends_through_the_scheme_prefix(kube, kubectl, namespace: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`https:NAME:PORT` speaks TLS to the pod without checking its certificate, as kube-apiserver does (the
    certificate files are paths on this machine, hence LocalKube only)."""
    tls = certs.ensure(tmp_path)
    pod, service = _backend_docs({"app": "tls"})
    container = pod["spec"]["containers"][0]
    container["command"] += [str(tls.cert), str(tls.key)]
    service["spec"]["ports"] = [{"name": "https", "port": 443, "targetPort": "web"}]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all([pod, service]))
    kubectl("wait", "--for=condition=Ready", "pod/backend", "--timeout=60s", timeout=70)
    for resource in ("services/https:backend:443", "services/https:backend:https", "pods/https:backend:8080"):
        path = f"/api/v1/namespaces/{namespace}/{resource}/proxy/echo/secure"
        seen = until(lambda path=path: (r := api_request(kube.kubeconfig, "GET", path))[0] == 200 and r[1],
                     what=f"{resource} through TLS")
        assert seen["target"] == "/echo/secure"


def test_rbac_needs_the_proxy_subresource_with_the_method_verb(kube, backend: Backend) -> None:  # type: ignore[no-untyped-def]
    ns, sa = backend.namespace, f"viewer-{uuid.uuid4().hex[:6]}"

    def kubectl(*args: str) -> None:
        kube.kubectl("-n", ns, *args)

    kubectl("create", "serviceaccount", sa)
    kubectl("create", "role", f"{sa}-read", "--verb=get,list", "--resource=services,pods")
    kubectl("create", "rolebinding", f"{sa}-read", f"--role={sa}-read", f"--serviceaccount={ns}:{sa}")
    config = kube.service_account_kubeconfig(ns, sa)
    user = f"system:serviceaccount:{ns}:{sa}"
    path = backend.path("services/backend:http", "/echo/rbac")
    until(lambda: api_request(config, "GET", f"/api/v1/namespaces/{ns}/services/backend")[0] == 200,
          what="the read role to apply")
    code, body = api_request(config, "GET", path)
    assert (code, body["message"]) == (403, f'services "backend:http" is forbidden: User "{user}" cannot get resource '
                                            f'"services/proxy" in API group "" in the namespace "{ns}"')
    kubectl("create", "role", f"{sa}-proxy", "--verb=get", "--resource=services/proxy")
    kubectl("create", "rolebinding", f"{sa}-proxy", f"--role={sa}-proxy", f"--serviceaccount={ns}:{sa}")
    seen = until(lambda: (r := api_request(config, "GET", path))[0] == 200 and r[1], what="the proxy role to apply")
    assert seen["target"] == "/echo/rbac"
    code, body = api_request(config, "POST", path, {"a": 1})  # POST is `create`, which the role does not grant
    assert code == 403 and 'cannot create resource "services/proxy"' in body["message"]
    code, body = api_request(config, "GET", backend.path("pods/backend:8080", "/echo/rbac"))
    assert code == 403 and 'cannot get resource "pods/proxy"' in body["message"]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


async def test_kubectl_proxy_reaches_the_service(kube, backend: Backend) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig), KUBECACHEDIR=str(kube.cache_dir))
    proc = await asyncio.create_subprocess_exec("kubectl", "proxy", f"--port={port}", stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT, env=env)
    try:
        await async_until(lambda: proc.returncode is not None or _listening(port), what="kubectl proxy listening")
        assert proc.returncode is None, await proc.stdout.read()  # type: ignore[union-attr]
        local = f"http://127.0.0.1:{port}{backend.path('services/backend:80')}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{local}/echo/via-kubectl?k=v") as resp:
                assert resp.status == 200
                seen = json.loads(await resp.text())
            assert seen["target"] == "/echo/via-kubectl?k=v"
            assert "Authorization" not in seen["headers"]  # kubectl proxy's token stops at the API server
            async with http.ws_connect(f"{local}/ws") as ws:
                assert (await ws.receive_json(timeout=30))["target"] == "/ws"
                await ws.send_str("through kubectl proxy")
                assert await ws.receive_str(timeout=30) == "through kubectl proxy"
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
