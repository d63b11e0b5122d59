"""`LocalKube`: the store, the API server, the controllers and the kubelet, started and stopped as one.

Use it in-process as an async context manager, or on a background thread (`LocalKube.in_thread()`) so that
blocking client code in the same process (a sync `KubeCluster`, a `KopfRunner`) never stalls the server.

It listens on 127.0.0.1 over HTTPS (`url`): the kubeconfig it writes carries the CA and the admin's bearer token,
as a real cluster's does, and ServiceAccount kubeconfigs (`service_account_kubeconfig`, and the one the kubelet
gives each pod) are subject to RBAC. A plain-HTTP listener (`http_url`) is there only when asked for.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import logging
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from localkube import system
from localkube.apiserver import (
    autoscaling,
    certificates,
    certs,
    limitranger,
    podsecurity,
    priority,
    quota,
    rbac,
    serviceaccounts,
)
from localkube.apiserver.authn import ADMIN_TOKEN, DEFAULT_EXPIRATION, SERVICE_ACCOUNT_KEY, Authenticator
from localkube.apiserver.core import ApiCore
from localkube.apiserver.server import ApiServer, ClientCut, Denial, FaultRule
from localkube.apiserver.store import Store
from localkube.config import ClusterConfig
from localkube.config import load as load_config
from localkube.controllers.aggregation import ClusterRoleAggregator
from localkube.controllers.base import Controller
from localkube.controllers.cronjobs import CronJobController
from localkube.controllers.daemonsets import DaemonSetController
from localkube.controllers.disruption import DisruptionController
from localkube.controllers.garbage import GarbageCollector
from localkube.controllers.jobs import JobController, TTLAfterFinishedController
from localkube.controllers.namespaces import NamespaceController
from localkube.controllers.nodes import NodeConfig, NodeController
from localkube.controllers.resourcequota import ResourceQuotaController
from localkube.controllers.scheduler import Scheduler
from localkube.controllers.serviceaccounts import DefaultServiceAccountController
from localkube.controllers.statefulsets import StatefulSetController
from localkube.controllers.workloads import DeploymentController, ReplicaSetController
from localkube.node.images import ImageMapping
from localkube.node.kubelet import Kubelet
from localkube.node.network import Network

log = logging.getLogger(__name__)
T = TypeVar("T")

STATE_FILE = "state.json"
POD_KUBECONFIG = "kubeconfig"
# The kubelet does not rotate pod tokens; kube-apiserver likewise extends kubelet-requested tokens to a year.
POD_TOKEN_SECONDS = 365 * 24 * 3600


def kubeconfig_document(url: str, namespace: str = "default", *, token: str = ADMIN_TOKEN,
                        ca_pem: bytes | None = None, client: tuple[bytes, bytes] | None = None) -> dict[str, Any]:
    """A kubeconfig for `url`: trusting `ca_pem`, authenticating with `token` and, if given, a client certificate
    and key (PEM)."""
    cluster: dict[str, Any] = {"server": url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    user: dict[str, Any] = {"token": token}
    if client is not None:
        user["client-certificate-data"] = base64.b64encode(client[0]).decode()
        user["client-key-data"] = base64.b64encode(client[1]).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "localkube", "cluster": cluster}],
        "users": [{"name": "localkube", "user": user}],
        "contexts": [{"name": "localkube", "context": {"cluster": "localkube", "user": "localkube",
                                                       "namespace": namespace}}],
        "current-context": "localkube",
        "preferences": {},
    }


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (a kubeconfig holds keys and tokens), all at once: readers that wait
    for it to exist never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(partial, path)


class LocalKube:
    """A Kubernetes API server on 127.0.0.1 whose pods run as local processes.

    `config` is a `ClusterConfig` or the path of a configuration file (localkube/config.py); the keyword arguments
    override its fields. `kubeconfig` is written once the server answers: HTTPS with the cluster's CA and the admin
    token, as a real cluster's is. `state_dir` keeps the objects, the token signing key and the certificates across
    restarts. `http_port` (off by default; 0 for any free port) adds a plain-HTTP listener where requests without
    credentials are the admin, for raw-HTTP tests and benchmarks (`http_url`).
    """

    def __init__(
        self,
        kubeconfig: str | Path | None = None,
        *,
        config: ClusterConfig | str | Path | None = None,
        port: int | None = None,
        http_port: int | None = None,
        state_dir: str | Path | None = None,
        run_pods: bool = True,
        simulate_pods: bool | None = None,
        nodes: Sequence[NodeConfig] | None = None,
        image_map: Sequence[ImageMapping] | None = None,
        kubernetes_version: str | None = None,
        network_block: int | None = None,
    ) -> None:
        base = config if isinstance(config, ClusterConfig) else load_config(config) if config else ClusterConfig()
        overrides = {"https_port": port, "http_port": http_port, "state_dir": state_dir,
                     "simulate_pods": simulate_pods, "kubernetes_version": kubernetes_version,
                     "nodes": tuple(nodes) if nodes else None,
                     "images": tuple(image_map) if image_map is not None else None}
        self.config = replace(base, **{k: v for k, v in overrides.items() if v is not None}).with_defaults()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if self.config.state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="localkube-")
        self.state_dir = Path(self._tmp.name if self._tmp else self.config.state_dir)  # type: ignore[arg-type]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = Path(kubeconfig) if kubeconfig else self.state_dir / "kubeconfig"
        self.port = self.config.https_port
        self.http_port = self.config.http_port
        self.tls = certs.ensure(self.state_dir)
        self._tls_sock: socket.socket | None = None
        self._ssl: ssl.SSLContext | None = None
        self.run_pods = run_pods
        self.simulate_pods = self.config.simulate_pods
        self.node_configs = list(self.config.nodes)
        self.store = Store()
        state = self.state_dir / STATE_FILE
        if state.exists():
            self.store.load(state)
        self.core = ApiCore(self.store)
        self.server = ApiServer(self.core, kubernetes_version=self.config.kubernetes_version)
        self.authenticator = Authenticator(self.store, self.state_dir, self.server.authorizer)
        self.server.authenticator = self.authenticator
        # Admission, in kube-apiserver's plugin order: LimitRanger, ServiceAccount, Priority, then the validating
        # ones (ResourceQuota last); CSR approval and signing checks run in the CSR's own write path.
        limitranger.install(self.core)
        serviceaccounts.install(self.core)
        priority.install(self.core)
        certificates.install(self.core)
        autoscaling.install(self.core)
        podsecurity.install(self.core, int(self.config.kubernetes_version.split(".")[1]))
        quota.install(self.core)
        self.nodes = NodeController(self.core, self.node_configs, kubernetes_version=self.config.kubernetes_version)
        self.controllers: list[Controller] = []
        self._runner: web.AppRunner | None = None
        # The network runs even without a kubelet: Service IPs and Endpoints are API behaviour.
        self.network = Network(self.core, self.state_dir, block=network_block)
        self.kubelet: Kubelet | None = None
        if run_pods:
            self.kubelet = Kubelet(self.core, node_name=self.node_configs[0].name,
                                   work_dir=self.state_dir / "kubelet", network=self.network,
                                   simulate=self.simulate_pods, image_map=self.config.images)
            self.server.runtime = self.kubelet
            self.nodes.kubelet = self.kubelet
            self.kubelet.credentials = self._pod_kubeconfig
        # Started in order, stopped in reverse: objects with async start()/stop().
        self.extensions: list[Any] = [self.network, *([self.kubelet] if self.kubelet else [])]

    @property
    def url(self) -> str:
        """The API server (HTTPS), as the kubeconfig names it."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """The plain-HTTP listener, where requests without credentials are the admin (only with `http_port`)."""
        if self.http_port is None:
            raise RuntimeError("this LocalKube serves no plain HTTP: start it with http_port=0 (or a port)")
        return f"http://127.0.0.1:{self.http_port}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this LocalKube's CA (for raw HTTPS requests)."""
        return ssl.create_default_context(cadata=self.tls.ca_pem().decode())

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> LocalKube:
        self.core.bootstrap()
        self._bootstrap_access()
        priority.ensure_system_classes(self.core)  # before controllers create pods that name them
        # Bound before pods start, so that the kubeconfig each pod gets names the right port.
        self._tls_sock = self._bind_tls()
        if self.kubelet is not None:
            port = str(self.port)
            self.kubelet.api_env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port,
                                    "KUBERNETES_SERVICE_PORT_HTTPS": port,
                                    "KUBERNETES_PORT": f"tcp://127.0.0.1:{port}"}
        self.nodes.start()
        self.controllers = [
            GarbageCollector(self.core),
            NamespaceController(self.core),
            Scheduler(self.core),
            ReplicaSetController(self.core),
            DeploymentController(self.core),
            StatefulSetController(self.core),
            DaemonSetController(self.core),
            JobController(self.core),
            TTLAfterFinishedController(self.core),
            CronJobController(self.core),
            DefaultServiceAccountController(self.core),
            ClusterRoleAggregator(self.core),
            ResourceQuotaController(self.core),
            DisruptionController(self.core),
        ]
        for controller in self.controllers:
            controller.start()
        for ext in self.extensions:
            await ext.start()
        system.ensure(self.core, api_port=self.port, service_prefix=self.network.prefix)
        await self._start_http()
        admin = (self.tls.admin_cert.read_bytes(), self.tls.admin_key.read_bytes())
        write_private(self.kubeconfig, yaml.safe_dump(kubeconfig_document(self.url, ca_pem=self.tls.ca_pem(),
                                                                          client=admin)))
        log.info("LocalKube serving %s (kubeconfig %s)", self.url, self.kubeconfig)
        return self

    def _bootstrap_access(self) -> None:
        """Default ServiceAccounts for namespaces restored from state, and the default cluster roles."""
        serviceaccounts.ensure_all_defaults(self.core)
        for key, obj in rbac.bootstrap_objects():
            if self.store.get(key, "", obj["metadata"]["name"]) is None:
                self.core.create(self.core.kind_of(key), "", obj, manager="kube-apiserver")

    def _bind_tls(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    async def _start_http(self) -> None:
        self._runner = web.AppRunner(self.server.app, handler_cancellation=True, access_log=None,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        if self._ssl is None:
            self._ssl = self.tls.server_context()
        sock, self._tls_sock = self._tls_sock or self._bind_tls(), None
        await web.SockSite(self._runner, sock, ssl_context=self._ssl).start()
        if self.http_port is not None:
            site = web.TCPSite(self._runner, "127.0.0.1", self.http_port, reuse_address=True)
            await site.start()
            if self.http_port == 0:
                self.http_port = self._runner.addresses[-1][1]

    async def _stop_http(self) -> None:
        self.store.close_all_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def stop(self) -> None:
        await self._stop_http()
        for ext in reversed(self.extensions):
            try:
                await ext.stop()
            except Exception:  # keep stopping the rest: no process may outlive LocalKube
                log.exception("stopping %s failed", type(ext).__name__)
        for controller in self.controllers:
            await controller.stop()
        await self.nodes.stop()
        self.store.save(self.state_dir / STATE_FILE)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> LocalKube:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- fault hooks ---------------------------------------------------------------------------------------

    def fail_requests(self, pattern: str, *, status: int | None = 500, count: int = 1, method: str = "*",
                      delay: float = 0.0, user_agent: str | None = None) -> FaultRule:
        """Make the next `count` requests whose path matches `pattern` fail with `status` (or stall `delay` s)."""
        rule = FaultRule(pattern, method=method, status=status, delay=delay, count=count, user_agent=user_agent)
        self.server.faults.append(rule)
        return rule

    def cut_off_clients(self, *user_agents: str) -> ClientCut:
        """Partition the clients whose User-Agent starts with one of `user_agents` (e.g. "kopf/", "kr8s/") from the
        API server until `reconnect_clients()`: their new requests and the events of their open watches wait, and
        what they gave up on meanwhile is never served. Other clients (kubectl, the kubelet) are unaffected, and so
        are port-forward and log streams already open."""
        self.reconnect_clients()
        self.server.cut = ClientCut(tuple(user_agents))
        return self.server.cut

    def reconnect_clients(self) -> None:
        """Heal `cut_off_clients`: what was held is served, in order, and watches deliver what they kept."""
        if self.server.cut is not None:
            self.server.cut.healed.set()
            self.server.cut = None

    def close_watches(self) -> int:
        """Cut every open watch stream, as an API server restart or a load balancer would."""
        return self.store.close_all_watches()

    async def restart_api(self) -> None:
        """Restart the HTTP server on the same port with the same objects; clients must re-establish watches."""
        await self._stop_http()
        await self._start_http()

    # -- identities ----------------------------------------------------------------------------------------

    def service_account_kubeconfig(self, namespace: str, name: str, path: str | Path | None = None, *,
                                   expiration_seconds: int = DEFAULT_EXPIRATION) -> Path:
        """A kubeconfig (HTTPS, a fresh token) acting as ServiceAccount `namespace/name`, which must exist."""
        sa = self.store.get(SERVICE_ACCOUNT_KEY, namespace, name)
        if sa is None:
            raise LookupError(f"serviceaccount {namespace}/{name} does not exist")
        token, _expires = self.authenticator.issue(sa, expiration_seconds)
        target = Path(path) if path else self.state_dir / "serviceaccounts" / f"{namespace}_{name}.kubeconfig"
        write_private(target, yaml.safe_dump(kubeconfig_document(self.url, namespace, token=token,
                                                                 ca_pem=self.tls.ca_pem())))
        return target

    def _pod_kubeconfig(self, pod: dict[str, Any], directory: Path) -> Path | None:
        """The kubeconfig a pod's containers get: its ServiceAccount's token, bound to the pod (kubelet hook)."""
        sa = serviceaccounts.automounts(self.core, pod)
        if sa is None:
            return None
        token, _expires = self.authenticator.issue(sa, POD_TOKEN_SECONDS, pod=pod)
        target = directory / POD_KUBECONFIG
        write_private(target, yaml.safe_dump(kubeconfig_document(self.url, pod["metadata"]["namespace"],
                                                                 token=token, ca_pem=self.tls.ca_pem())))
        return target

    def forbidden(self, reset: bool = False) -> list[Denial]:
        """Requests refused by RBAC so far (user, verb, resource, namespace); `reset` empties the record."""
        out = list(self.server.denials)
        if reset:
            self.server.denials.clear()
        return out

    def request_counts(self) -> dict[str, int]:
        """API requests served so far, by client (User-Agent product: kopf, kr8s, kubectl, ...)."""
        out: dict[str, int] = {}
        for (agent, _method), count in self.server.stats.items():
            out[agent] = out.get(agent, 0) + count
        return out

    # -- threads -------------------------------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, *args: Any, **kwargs: Any) -> Iterator[ThreadedLocalKube]:
        handle = ThreadedLocalKube(cls(*args, **kwargs))
        handle.start()
        try:
            yield handle
        finally:
            handle.stop()


class ThreadedLocalKube:
    """A LocalKube running on its own event loop thread, for synchronous and multi-loop callers."""

    def __init__(self, kube: LocalKube) -> None:
        self.kube = kube
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="localkube", daemon=True)

    @property
    def kubeconfig(self) -> Path:
        return self.kube.kubeconfig

    @property
    def url(self) -> str:
        return self.kube.url

    def start(self) -> None:
        self._thread.start()
        self.run(self.kube.start())

    def run(self, coro: Awaitable[T], timeout: float | None = 60) -> T:
        """Run a coroutine on LocalKube's loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a synchronous LocalKube method on its loop (fault hooks mutate loop-owned state)."""

        async def wrapper() -> T:
            return fn(*args, **kwargs)

        return self.run(wrapper())

    @property
    def http_url(self) -> str:
        return self.kube.http_url

    def ssl_context(self) -> ssl.SSLContext:
        return self.kube.ssl_context()

    def service_account_kubeconfig(self, namespace: str, name: str, path: str | Path | None = None, *,
                                   expiration_seconds: int = DEFAULT_EXPIRATION) -> Path:
        return self.call(self.kube.service_account_kubeconfig, namespace, name, path,
                         expiration_seconds=expiration_seconds)

    def forbidden(self, reset: bool = False) -> list[Denial]:
        return self.call(self.kube.forbidden, reset)

    def stop(self) -> None:
        try:
            self.run(self.kube.stop())
        finally:
            # As asyncio.run does before it closes its loop: whatever is still pending (a probe between two
            # attempts, a stream's last write) is cancelled and awaited, so that no task or coroutine is left to be
            # garbage collected unfinished (which warns, and fails a test run that treats warnings as errors).
            with contextlib.suppress(Exception):
                self.run(_cancel_pending(), timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


async def _cancel_pending() -> None:
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
