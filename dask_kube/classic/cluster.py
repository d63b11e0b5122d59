"""Legacy mode: a `SpecCluster` whose scheduler and workers are Pods that the client itself creates from a template.

No operator is involved. `deploy_mode="remote"` puts the scheduler in a Pod behind a Service and owns every other
object by that Pod, so deleting it (or `close()`) removes everything; `deploy_mode="local"` runs the scheduler in
this process. Scaling, adaptivity and worker bookkeeping are `SpecCluster`'s: a worker's spec name, its Dask
worker name and its Pod name are one and the same string.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import dask.config
import kr8s
import kr8s.asyncio
import yaml
from distributed import Scheduler as InProcessScheduler
from distributed.comm import connect
from distributed.core import CommClosedError, Status
from distributed.deploy.spec import ProcessInterface, SpecCluster
from distributed.security import Security
from distributed.utils import Log, Logs, format_dashboard_link
from kr8s.asyncio.objects import APIObject, Pod, Service

from .. import config, naming, specs
from ..cluster import networking, waiting
from ..errors import SchedulerStartTimeoutError, SchedulerStartupError, SpecError
from ..kubeapi import kube_api
from ..validation import validate_cluster_name
from . import pods

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
Template = Mapping[str, Any] | str | os.PathLike[str] | IO[str]

DEPLOY_MODES = ("remote", "local")
# Retiring a worker moves its data away first; past this, the pod is deleted anyway.
RETIRE_TIMEOUT = 300
# Waiting reasons after which a scheduler pod will not come up without someone changing something.
_FATAL_REASONS = {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                  "CreateContainerError", "CreateContainerConfigError", "RunContainerError"}


@dataclass
class _Kube:
    """What the pods of one cluster share. The API client is made on the cluster's own loop, at first use."""

    cluster: str
    namespace: str | None
    kubeconfig: str | None
    worker_template: Obj
    scheduler_template: Obj
    service_template: Obj
    scheduler_args: list[str]
    domain: str
    timeout: float
    service_wait_timeout: float
    concurrency: int
    api: Any = None
    owner: Obj | None = None  # the scheduler Pod's ownerReference (remote mode)
    _limit: asyncio.Semaphore | None = field(default=None, repr=False)

    async def connect(self) -> Any:
        if self.api is None:
            self.api = await kube_api(self.kubeconfig)
            self.namespace = self.namespace or self.api.namespace
        return self.api

    @property
    def limit(self) -> asyncio.Semaphore:
        """Bounds concurrent creates and deletes: scaling to 200 is 200 requests, `concurrency` at a time."""
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.concurrency)
        return self._limit

    def ref(self, cls: type[APIObject], name: str) -> APIObject:
        return cls({"metadata": {"name": name, "namespace": self.namespace}}, api=self.api)


# -- the pods -------------------------------------------------------------------------------------------------


class WorkerPod(ProcessInterface):
    """One worker Pod. `start` returns once the API has the Pod; `SpecCluster.wait_for_workers` waits for it."""

    def __init__(self, scheduler: str, name: str, kube: _Kube, **_: Any) -> None:
        super().__init__(scheduler=scheduler, name=name)
        self.scheduler_address = scheduler
        self.name = name
        self.kube = kube
        self.pod: Any = None

    async def start(self) -> None:
        api = await self.kube.connect()
        manifest = pods.worker_pod(self.kube.worker_template, name=self.name, cluster=self.kube.cluster,
                                   namespace=self.kube.namespace or "default",
                                   scheduler_address=self.scheduler_address, owner=self.kube.owner)
        self.pod = Pod(manifest, api=api)
        async with self.kube.limit:
            await self.pod.create()
        await super().start()

    async def close(self) -> None:
        try:
            await self._retire()
            if self.kube.api is not None:
                async with self.kube.limit:
                    await _delete(self.pod or self.kube.ref(Pod, self.name), self.kube.timeout)
        finally:
            await super().close()

    async def _retire(self) -> None:
        """Let the scheduler move this worker's data elsewhere before its pod goes (not while closing: no point)."""
        ref = getattr(self, "_cluster", None)
        cluster = ref() if ref is not None else None
        if cluster is None or cluster.status != Status.running or cluster.scheduler_comm is None:
            return
        try:
            async with asyncio.timeout(RETIRE_TIMEOUT):
                await cluster.scheduler_comm.retire_workers(names=[self.name], remove=True, close_workers=True)
        except (OSError, CommClosedError, TimeoutError) as err:
            logger.warning("could not retire worker %s before deleting its pod: %s", self.name, err)

    async def logs(self) -> str:
        return await waiting.pod_logs(self.pod) if self.pod is not None else ""


class SchedulerPod(ProcessInterface):
    """The scheduler in a Pod with a Service, reached by Service DNS in the cluster and a port-forward outside."""

    def __init__(self, kube: _Kube, **_: Any) -> None:
        super().__init__()
        self.kube = kube
        self.name = naming.scheduler_name(kube.cluster)
        self.pod: Any = None
        self.service: Any = None
        self.dashboard_host_port: tuple[str, int] | None = None
        self.connection_args: dict[str, Any] = {}
        self._forwards = contextlib.AsyncExitStack()
        self._lease: asyncio.Task[None] | None = None

    async def start(self) -> None:
        kube = self.kube
        api = await kube.connect()
        namespace = kube.namespace or "default"
        logger.info("creating scheduler pod %s in namespace %s", self.name, namespace)
        try:
            self.pod = Pod(pods.scheduler_pod(kube.scheduler_template, cluster=kube.cluster, namespace=namespace,
                                              extra_args=kube.scheduler_args), api=api)
            await self.pod.create()
            kube.owner = specs.owner_reference(self.pod.raw)
            self.service = Service(pods.scheduler_service(kube.service_template, cluster=kube.cluster,
                                                          namespace=namespace, owner=kube.owner), api=api)
            await self.service.create()
            await _wait_ready(self.pod, kube.timeout)
            self.address = naming.scheduler_address(kube.cluster, namespace, kube.domain)
            self.external_address = await self._reach()
            self._lease = asyncio.create_task(_hold_lease(self.external_address, self.connection_args))
        except BaseException:
            await self._remove()
            raise
        await super().start()

    async def _reach(self) -> str:
        """The address this process dials: the Service name in the cluster, else a LoadBalancer or a port-forward."""
        host = self.address.split("://", 1)[1].rsplit(":", 1)[0]
        if networking.in_cluster() and await networking.resolves(host):
            self.dashboard_host_port = (host, naming.DASHBOARD_PORT)
            return self.address
        service = self.service.raw
        if (service.get("spec") or {}).get("type") == "LoadBalancer":
            ip = await _wait_ingress(self.service, self.kube.service_wait_timeout)
            self.dashboard_host_port = (ip, pods.service_port(service, naming.DASHBOARD_PORT_NAME,
                                                              naming.DASHBOARD_PORT))
            return f"tcp://{ip}:{pods.service_port(service, naming.SCHEDULER_PORT_NAME, naming.SCHEDULER_PORT)}"
        comm = await self._forward(naming.SCHEDULER_PORT)
        self.dashboard_host_port = ("127.0.0.1", await self._forward(naming.DASHBOARD_PORT))
        return f"tcp://127.0.0.1:{comm}"

    async def _forward(self, remote_port: int) -> int:
        """A port-forward on a port the OS just handed out; chosen again if someone took it before the bind."""
        error: OSError | None = None
        for _ in range(5):
            forward = self.pod.portforward(remote_port, local_port=_free_port())
            try:
                return int(await self._forwards.enter_async_context(forward))
            except OSError as err:
                error = err
        assert error is not None
        raise error

    async def close(self) -> None:
        try:
            await self._remove()
        finally:
            await super().close()

    async def _remove(self) -> None:
        if self._lease is not None:
            self._lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease
            self._lease = None
        await self._forwards.aclose()
        if self.kube.api is None:
            return
        # Deleting the scheduler pod alone would do (everything else is owned by it), but waiting for each object
        # by name is what lets `close()` promise that nothing is left when it returns.
        service = self.service or self.kube.ref(Service, self.name)
        pod = self.pod or self.kube.ref(Pod, self.name)
        await asyncio.gather(_delete(service, self.kube.timeout), _delete(pod, self.kube.timeout))

    async def logs(self) -> str:
        return await waiting.pod_logs(self.pod) if self.pod is not None else ""


# -- the cluster ----------------------------------------------------------------------------------------------


class KubeCluster(SpecCluster):
    """A Dask cluster whose worker pods this client creates from a Pod template (the pre-operator way).

    The template is a Pod dict, a YAML file or an open file (`pod_template`), else config `kubernetes.worker-template`
    or `kubernetes.worker-template-path`. Unset arguments come from the `kubernetes.*` dask config keys listed in
    docs/legacy.md. Extra keyword arguments go to `SpecCluster` (`asynchronous`, `loop`, `silence_logs`, ...).
    """

    def __init__(
        self,
        pod_template: Template | None = None,
        name: str | None = None,
        namespace: str | None = None,
        n_workers: int | None = None,
        host: str | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        idle_timeout: float | str | None = None,
        deploy_mode: str | None = None,
        interface: str | None = None,
        protocol: str | None = None,
        dashboard_address: str | None = None,
        security: Security | None = None,
        scheduler_service_wait_timeout: float | None = None,
        scheduler_pod_template: Template | None = None,
        apply_default_affinity: str = "preferred",
        orphan_timeout: float | None = None,
        kubeconfig: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        mode = config.get("deploy-mode", deploy_mode)
        if mode not in DEPLOY_MODES:
            raise SpecError(f"{mode!r} is not one of {', '.join(DEPLOY_MODES)}", "deploy_mode")
        if security is not None and mode == "remote":
            raise SpecError("TLS is supported with deploy_mode='local' only", "security")
        cluster = validate_cluster_name(config.cluster_name(str(config.get("name", name))))
        worker = _load_template(pod_template, "worker-template", "worker-template-path")
        if worker is None:
            raise SpecError("no worker Pod template: pass one, or set kubernetes.worker-template or "
                            "kubernetes.worker-template-path", "pod_template")
        scheduler = _load_template(scheduler_pod_template, "scheduler-template", None) or worker
        extra_env = {**(config.get("env") or {}), **(env or {})}
        idle = config.get("idle-timeout", idle_timeout)
        orphan = config.get("orphan-timeout", orphan_timeout)
        timeout = float(config.get("resource-timeout"))
        scheduler_args: list[str] = []
        if idle:
            scheduler_args += ["--idle-timeout", str(idle)]
        if orphan:
            scheduler_args += ["--preload", pods.lease_preload(float(orphan), max(float(orphan), timeout))]
        self._kube = _Kube(
            cluster=cluster,
            namespace=config.get("namespace", namespace),
            kubeconfig=os.fspath(kubeconfig) if kubeconfig is not None else None,
            worker_template=pods.add_env(pods.clean_pod_template(worker, naming.Component.WORKER,
                                                                 apply_default_affinity), extra_env),
            scheduler_template=pods.add_env(pods.clean_pod_template(scheduler, naming.Component.SCHEDULER,
                                                                    apply_default_affinity), extra_env),
            service_template=dict(config.get("scheduler-service-template") or {}),
            scheduler_args=scheduler_args,
            domain=str(config.get("operator.cluster-domain")),
            timeout=timeout,
            service_wait_timeout=float(config.get("scheduler-service-wait-timeout", scheduler_service_wait_timeout)),
            concurrency=int(config.get("operator.create-concurrency")),
        )
        self.deploy_mode = mode
        scheduler_spec: Obj
        if mode == "remote":
            scheduler_spec = {"cls": SchedulerPod, "options": {"kube": self._kube}}
        else:
            scheduler_spec = {"cls": InProcessScheduler, "options": {
                "host": config.get("host", host), "port": config.get("port", port),
                "interface": config.get("interface", interface), "protocol": config.get("protocol", protocol),
                "dashboard_address": config.get("dashboard_address", dashboard_address),
                "security": security, "idle_timeout": idle}}
        worker_spec = {"cls": WorkerPod, "options": {"kube": self._kube}}
        count = int(config.get("count.start", n_workers) or 0)
        workers = {naming.worker_pod_name(cluster): worker_spec for _ in range(count)}
        super().__init__(workers=workers, scheduler=scheduler_spec, worker=worker_spec, name=cluster,
                         security=security, **kwargs)

    @classmethod
    def from_yaml(cls, yaml_path: str | os.PathLike[str] | IO[str], **kwargs: Any) -> KubeCluster:
        """A cluster from a worker Pod template in a YAML file (a path or an open file)."""
        return cls(yaml_path, **kwargs)

    @classmethod
    def from_dict(cls, pod_template: Mapping[str, Any], **kwargs: Any) -> KubeCluster:
        """A cluster from a worker Pod template dict (for example from `make_pod_spec`)."""
        if not isinstance(pod_template, Mapping):
            raise SpecError(f"must be a Pod mapping, not {type(pod_template).__name__}", "pod_template")
        return cls(pod_template, **kwargs)

    @property
    def namespace(self) -> str | None:
        return self._kube.namespace

    def _new_worker_name(self, worker_number: int) -> str:
        return naming.worker_pod_name(self._kube.cluster)

    def scale(self, n: int = 0, memory: str | None = None, cores: int | None = None) -> Any:
        """`SpecCluster.scale`, capped by `kubernetes.count-max` (with a warning, not silently)."""
        maximum = config.get("count-max")
        if maximum is not None and n > int(maximum):
            logger.warning("asked for %d workers; kubernetes.count-max caps this cluster at %d", n, maximum)
            n = int(maximum)
        return super().scale(n, memory=memory, cores=cores)

    @property
    def dashboard_link(self) -> str:
        """Where this process reaches the dashboard (through the port-forward when there is one)."""
        where = getattr(self.scheduler, "dashboard_host_port", None)
        if where is None or "dashboard" not in (self.scheduler_info or {}).get("services", {}):
            return super().dashboard_link
        return format_dashboard_link(*where)

    async def _get_logs(self, cluster: bool = True, scheduler: bool = True,
                        workers: bool | Iterable[str] = True) -> Logs:
        """Container logs keyed by pod name; an in-process scheduler's under "Scheduler"."""
        logs = Logs()
        if cluster:
            logs["Cluster"] = Log("\n".join(line for _, line in self._cluster_manager_logs))
        if scheduler:
            if isinstance(self.scheduler, SchedulerPod):
                logs[self.scheduler.name] = Log(await self.scheduler.logs())
            else:
                lines = await self.scheduler_comm.get_logs()
                logs["Scheduler"] = Log("\n".join(line for _, line in lines))
        if workers:
            names = list(self.workers) if workers is True else [str(w) for w in workers]
            chosen = [self.workers[n] for n in names if n in self.workers]
            for worker, text in zip(chosen, await asyncio.gather(*(w.logs() for w in chosen)), strict=True):
                logs[worker.name] = Log(text)
        return logs


def from_yaml(yaml_path: str | os.PathLike[str] | IO[str], **kwargs: Any) -> KubeCluster:
    """`KubeCluster.from_yaml`, for `dask_kube.KubeCluster.from_yaml` to delegate to."""
    return KubeCluster.from_yaml(yaml_path, **kwargs)


def from_dict(pod_template: Mapping[str, Any], **kwargs: Any) -> KubeCluster:
    """`KubeCluster.from_dict`, for `dask_kube.KubeCluster.from_dict` to delegate to."""
    return KubeCluster.from_dict(pod_template, **kwargs)


# -- helpers --------------------------------------------------------------------------------------------------


def _load_template(value: Template | None, inline_key: str, path_key: str | None) -> Obj | None:
    """A Pod template from an argument, else from config; files and config values get `${VAR}` expansion."""
    if value is None:
        inline = config.get(inline_key)
        path = config.get(path_key) if path_key else None
        if inline:
            value = dask.config.expand_environment_variables(inline)
        elif path:
            value = os.path.expanduser(os.path.expandvars(str(path)))
        else:
            return None
    if isinstance(value, Mapping):
        return pods.make_pod_from_dict(value)
    text = value.read() if hasattr(value, "read") else Path(os.fspath(value)).read_text()
    doc = yaml.safe_load(text)
    return pods.make_pod_from_dict(dask.config.expand_environment_variables(doc))


async def _delete(obj: Any, within: float) -> None:
    """Delete and wait until the API no longer has it; a straggler is reported, not waited for forever."""
    with contextlib.suppress(kr8s.NotFoundError):
        await obj.delete()
    try:
        await obj.wait("delete", timeout=within)
    except TimeoutError:
        logger.warning("%s %s still exists %s s after its deletion", obj.kind, obj.name, within)





async def _wait_ready(pod: Any, within: float) -> None:
    """Watch the scheduler pod until it is Ready; say why not when it fails or the time is up."""

    async def fail(cls: type[Exception], message: str) -> None:
        phase, reason, _ = waiting.pod_state(pod.raw)
        logs = await waiting.pod_logs(pod, tail=20)
        text = f"{message}; pod {pod.name} is {phase}" + (f" ({reason})" if reason else "")
        text += f"; last log lines:\n{logs}" if logs else ""
        if cls is SchedulerStartTimeoutError:
            raise SchedulerStartTimeoutError(text, phase=phase, reason=reason, logs=logs)
        raise SchedulerStartupError(text, logs=logs)

    try:
        async with asyncio.timeout(within):
            await pod.refresh()
            while True:
                if waiting.is_ready(pod.raw):
                    return
                phase, reason, _ = waiting.pod_state(pod.raw)
                if phase in ("Succeeded", "Failed") or reason in _FATAL_REASONS:
                    break
                async for _ in pod.watch():
                    if waiting.is_ready(pod.raw) or waiting.phase(pod.raw) in ("Succeeded", "Failed"):
                        break
                    if waiting.pod_state(pod.raw)[1] in _FATAL_REASONS:
                        break
    except TimeoutError:
        await fail(SchedulerStartTimeoutError, f"the scheduler was not ready within {within} s")
    await fail(SchedulerStartupError, "the scheduler could not start")


async def _wait_ingress(service: Any, within: float) -> str:
    """The LoadBalancer's address, once the cloud has provisioned it (0: wait as long as it takes)."""

    def address() -> str | None:
        ingress = ((service.raw.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return (ingress[0].get("ip") or ingress[0].get("hostname")) if ingress else None

    try:
        async with asyncio.timeout(within or None):
            await service.refresh()
            while address() is None:
                async for _ in service.watch():
                    if address() is not None:
                        break
    except TimeoutError:
        raise SchedulerStartTimeoutError(f"the LoadBalancer of Service {service.name} got no address within "
                                         f"{within} s (kubernetes.scheduler-service-wait-timeout)") from None
    return str(address())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])



async def _hold_lease(address: str, connection_args: Mapping[str, Any]) -> None:
    """Keep one connection open on the scheduler's lease handler for as long as the cluster object lives.

    The scheduler closes itself once no client has held it for `orphan_timeout` (see `pods.lease_preload`); a
    dropped connection (a port-forward hiccup) is simply made again.
    """
    while True:
        comm = None
        try:
            comm = await connect(address, **connection_args)
            await comm.write({"op": pods.LEASE_OP, "reply": False})
            await comm.read()  # the scheduler never answers: this returns when the connection ends
        except (OSError, CommClosedError):
            pass
        finally:
            if comm is not None:
                comm.abort()
        await asyncio.sleep(1)
