"""Legacy mode: a `SpecCluster` whose scheduler and workers are Pods that the client itself creates from a template.

No operator is involved. `deploy_mode="remote"` puts the scheduler in a Pod behind a Service and owns every other
object by that Pod, so deleting it (or `close()`) removes everything; `deploy_mode="local"` runs the scheduler in
this process. Scaling, adaptivity and worker bookkeeping are `SpecCluster`'s: a worker's spec name, its Dask
worker name and its Pod name are one and the same string.

It waits, reaches the scheduler and deletes the way `KubeCluster` does: `waits.wait_for` on the scheduler pod,
`networking.route` (the Service directly, else the self-healing port-forward), `waits.delete_and_wait`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import kr8s.asyncio
from distributed import Scheduler as InProcessScheduler
from distributed.comm.core import CommClosedError, connect
from distributed.core import Status
from distributed.deploy.spec import ProcessInterface, SpecCluster
from distributed.security import Security
from distributed.utils import Log, Logs, format_dashboard_link
from kr8s.asyncio.objects import APIObject, Pod, Service

from .. import config, kubernetes_api, naming, specs, status, waits
from ..cluster import networking
from ..errors import SchedulerStartTimeoutError, SchedulerStartupError, SpecError
from ..port_forward import SchedulerForward
from . import options, pods
from .options import LegacyOptions, Template

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
# Retiring a worker moves its data away first; past this, the pod is deleted anyway.
RETIRE_TIMEOUT = 300


@dataclass
class PodContext:
    """What the pods of one cluster share. The API client is made on the cluster's own loop, at first use."""

    options: LegacyOptions
    namespace: str | None = None
    api: kr8s.asyncio.Api | None = None
    owner: Obj | None = None  # the scheduler Pod's ownerReference (remote mode)
    _limit: asyncio.Semaphore | None = field(default=None, repr=False)

    async def connect(self) -> kr8s.asyncio.Api:
        if self.api is None:
            self.api = await kubernetes_api.client(self.options.kubeconfig)
            self.namespace = self.options.namespace or self.api.namespace
        return self.api

    @property
    def limit(self) -> asyncio.Semaphore:
        """Bounds concurrent creates and deletes: scaling to 200 is 200 requests, `concurrency` at a time."""
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.options.concurrency)
        return self._limit

    def ref(self, cls: type[APIObject], name: str) -> APIObject:
        assert self.api is not None
        return kubernetes_api.ref(cls, name, self.namespace, self.api)


# -- the pods -------------------------------------------------------------------------------------------------


class WorkerPod(ProcessInterface):
    """One worker Pod. `start` returns once the API has the Pod; `SpecCluster.wait_for_workers` waits for it."""

    def __init__(self, scheduler: str, name: str, context: PodContext, **_: Any) -> None:
        super().__init__(scheduler=scheduler, name=name)
        self.scheduler_address = scheduler
        self.name = name
        self.context = context
        self.pod: Pod | None = None
        self._cluster: weakref.ref[SpecCluster] | None = None  # set by SpecCluster

    async def start(self) -> None:
        api = await self.context.connect()
        manifest = pods.worker_pod(self.context.options.worker_template, name=self.name,
                                   cluster=self.context.options.cluster, namespace=self.context.namespace or "default",
                                   scheduler_address=self.scheduler_address, owner=self.context.owner)
        self.pod = Pod(manifest, api=api)
        async with self.context.limit:
            await self.pod.create()
        await super().start()

    async def close(self) -> None:
        try:
            await self._retire()
            if self.context.api is not None:
                async with self.context.limit:
                    await _delete(self.pod or self.context.ref(Pod, self.name), self.context.options.timeout)
        finally:
            await super().close()

    async def _retire(self) -> None:
        """Let the scheduler move this worker's data elsewhere before its pod goes (not while closing: no point)."""
        cluster = self._cluster() if self._cluster is not None else None
        if cluster is None or cluster.status != Status.running or cluster.scheduler_comm is None:
            return
        try:
            async with asyncio.timeout(RETIRE_TIMEOUT):
                await cluster.scheduler_comm.retire_workers(names=[self.name], remove=True, close_workers=True)
        except (OSError, CommClosedError, TimeoutError) as err:
            logger.warning("could not retire worker %s before deleting its pod: %s", self.name, err)

    async def logs(self) -> str:
        return await kubernetes_api.pod_logs(self.pod) if self.pod is not None else ""


class SchedulerPod(ProcessInterface):
    """The scheduler in a Pod with a Service, reached as KubeCluster reaches one: directly when it can, else
    through the self-healing port-forward."""

    def __init__(self, context: PodContext, **_: Any) -> None:
        super().__init__()
        self.context = context
        self.name = naming.scheduler_name(context.options.cluster)
        self.pod: Pod | None = None
        self.service: Service | None = None
        self.dashboard_host_port: tuple[str, int] | None = None
        self.connection_args: dict[str, Any] = {}
        self._forwards: list[SchedulerForward] = []
        self._lease: asyncio.Task[None] | None = None

    async def start(self) -> None:
        context, opts = self.context, self.context.options
        api = await context.connect()
        namespace = context.namespace or "default"
        logger.info("creating scheduler pod %s in namespace %s", self.name, namespace)
        try:
            self.pod = Pod(pods.scheduler_pod(opts.scheduler_template, cluster=opts.cluster, namespace=namespace,
                                              extra_args=opts.scheduler_args), api=api)
            await self.pod.create()
            context.owner = specs.owner_reference(self.pod.raw)
            self.service = Service(pods.scheduler_service(opts.service_template, cluster=opts.cluster,
                                                          namespace=namespace, owner=context.owner), api=api)
            await self.service.create()
            await _wait_ready(self.pod, opts.timeout)
            self.address = naming.scheduler_address(opts.cluster, namespace, opts.domain)
            route = await networking.route(api, namespace, opts.cluster, forward=None,
                                           within=opts.service_wait_timeout or None, say=logger.info)
            self._forwards = route.forwards
            self.dashboard_host_port = route.dashboard
            self.external_address = route.address
            self._lease = asyncio.create_task(_hold_lease(self.external_address, self.connection_args))
        except BaseException:
            await self._remove()
            raise
        await super().start()

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
        forwards, self._forwards = self._forwards, []
        await asyncio.gather(*(f.stop() for f in forwards), return_exceptions=True)
        if self.context.api is None:
            return
        # Deleting the scheduler pod alone would do (everything else is owned by it), but waiting for each object
        # by name is what lets `close()` promise that nothing is left when it returns.
        service = self.service or self.context.ref(Service, self.name)
        pod = self.pod or self.context.ref(Pod, self.name)
        timeout = self.context.options.timeout
        await asyncio.gather(_delete(service, timeout), _delete(pod, timeout))

    async def logs(self) -> str:
        return await kubernetes_api.pod_logs(self.pod) if self.pod is not None else ""


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
        opts = options.resolve(
            pod_template, name=name, namespace=namespace, n_workers=n_workers, host=host, port=port, env=env,
            idle_timeout=idle_timeout, deploy_mode=deploy_mode, interface=interface, protocol=protocol,
            dashboard_address=dashboard_address, security=security,
            scheduler_service_wait_timeout=scheduler_service_wait_timeout,
            scheduler_pod_template=scheduler_pod_template, apply_default_affinity=apply_default_affinity,
            orphan_timeout=orphan_timeout, kubeconfig=kubeconfig)
        self._context = PodContext(opts, namespace=opts.namespace)
        self.deploy_mode = opts.deploy_mode
        scheduler_spec: Obj
        if opts.deploy_mode == "remote":
            scheduler_spec = {"cls": SchedulerPod, "options": {"context": self._context}}
        else:
            scheduler_spec = {"cls": InProcessScheduler, "options": opts.local_scheduler}
        worker_spec = {"cls": WorkerPod, "options": {"context": self._context}}
        workers = {naming.worker_pod_name(opts.cluster): worker_spec for _ in range(opts.n_workers)}
        super().__init__(workers=workers, scheduler=scheduler_spec, worker=worker_spec, name=opts.cluster,
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
        return self._context.namespace

    def _new_worker_name(self, worker_number: int) -> str:
        return naming.worker_pod_name(self._context.options.cluster)

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
            return str(super().dashboard_link)
        return str(format_dashboard_link(*where))

    async def _get_logs(self, cluster: bool = True, scheduler: bool = True,
                        workers: bool | Iterable[str] = True) -> Logs:
        """Container logs keyed by pod name; an in-process scheduler's under "Scheduler"."""
        logs = Logs()
        if cluster:
            logs["Cluster"] = Log("\n".join(line for _, line in self._cluster_manager_logs))
        if scheduler:
            if isinstance(self.scheduler, SchedulerPod):
                logs[self.scheduler.name] = Log(await self.scheduler.logs())
            elif self.scheduler_comm is not None:
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


async def _delete(obj: APIObject, within: float) -> None:
    """Delete and wait until the API no longer has it; a straggler is reported, not waited for forever."""
    try:
        await waits.delete_and_wait(obj, within)
    except TimeoutError:
        logger.warning("%s %s still exists %s s after its deletion", obj.kind, obj.name, within)


def _ready_or_stuck(raw: Mapping[str, Any] | None) -> bool:
    return (raw is None or status.is_ready(raw) or status.finished(raw)
            or status.pod_state(raw)[1] in status.STUCK)


async def _wait_ready(pod: Pod, within: float) -> None:
    """Watch the scheduler pod until it is Ready; say why not when it fails or the time is up."""

    async def why(cls: type[SchedulerStartTimeoutError] | type[SchedulerStartupError], message: str) -> Exception:
        phase, reason, _ = status.pod_state(pod.raw)
        logs = await kubernetes_api.pod_logs(pod, tail=20)
        text = f"{message}; pod {pod.name} is {phase}" + (f" ({reason})" if reason else "")
        text += f"; last log lines:\n{logs}" if logs else ""
        if cls is SchedulerStartTimeoutError:
            return SchedulerStartTimeoutError(text, phase=phase, reason=reason, logs=logs)
        return SchedulerStartupError(text, logs=logs)

    async def timed_out(obj: Pod) -> BaseException:
        return await why(SchedulerStartTimeoutError, f"the scheduler was not ready within {within} s")

    await waits.wait_for(pod, _ready_or_stuck, within, explain=timed_out)
    if not status.is_ready(pod.raw):
        raise await why(SchedulerStartupError, "the scheduler could not start")


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
