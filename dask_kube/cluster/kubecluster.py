"""`KubeCluster`: Dask's `Cluster` interface over a DaskCluster resource that the dask_kube operator runs.

The client never runs a scheduler itself: it creates (or finds) the DaskCluster, waits with a watch until the
operator reports it Running (and explains why when it does not), reaches the scheduler directly or through a
self-healing port-forward, and then speaks to it like any other Dask cluster manager. Scaling is declarative:
`scale` and `adapt` patch resources and return; `wait_for_workers` waits, with a deadline and a reason. A TLS
cluster (`security=True`, or one found with `spec.tls`) is reached over `tls://` with the certificates of its
Secret, kept in `self.security` where distributed's `Client(cluster)` looks for them.

Every public method is a one-line `self.sync(self._x, ...)`, so one body serves sync and async callers.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import kr8s
import kr8s.asyncio
from dask.utils import parse_timedelta
from distributed.core import Status, rpc
from distributed.deploy.cluster import Cluster
from distributed.objects import SchedulerInfo
from distributed.security import Security
from distributed.utils import Log, Logs, NoOpAwaitable, format_dashboard_link
from kr8s.asyncio.objects import Pod, Secret

from .. import kubernetes_api, naming, specs, status, tls, validation, waits, worker_lifecycle
from ..errors import ClusterExistsError, ClusterNotFoundError, CRDsNotInstalledError, SpecError
from ..kinds import DaskAutoscaler, DaskCluster, DaskWorkerGroup
from ..naming import Component
from ..port_forward import SchedulerForward
from . import dashboard, display, lease, networking, operations, options, startup, versions
from .options import CreateMode

logger = logging.getLogger(__name__)

# Clusters this process created and must delete at exit unless closed first: (namespace, name) -> KUBECONFIG.
_OWNED: dict[tuple[str, str], str | None] = {}


class KubeCluster(Cluster):
    """A Dask cluster on Kubernetes, run by the dask_kube operator from a `DaskCluster` resource.

    Every argument left as None comes from the dask config key `kubernetes.<name>` (docs/kubecluster.md).
    `security=True` asks for mutual TLS with certificates the operator generates, `security="secret-name"` for
    TLS with the certificates of that Secret (docs/security.md). Pods pass the `restricted` Pod Security Standard
    unless `run_as_root=True`, for images that need root (docs/pod-security.md); `network_policy=True` has the
    operator guard the scheduler with a NetworkPolicy. With no `image`, the Dask image tagged for this client's
    distributed and Python versions; on connect, versions that differ between this client, the scheduler and the
    workers are named in one warning (docs/kubecluster.md).

    >>> cluster = KubeCluster(name="demo", n_workers=2)      # doctest: +SKIP
    >>> client = Client(cluster)                              # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        namespace: str | None = None,
        image: str | None = None,
        n_workers: int | None = None,
        resources: Mapping[str, Any] | None = None,
        env: specs.Env = None,
        worker_command: str | Sequence[str] | None = None,
        port_forward_cluster_ip: bool | None = None,
        create_mode: CreateMode | str | None = None,
        shutdown_on_close: bool | None = None,
        idle_timeout: int | None = None,
        resource_timeout: float | None = None,
        scheduler_service_type: str | None = None,
        custom_cluster_spec: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        scheduler_forward_port: int | None = None,
        jupyter: bool | None = None,
        security: bool | str | None = None,
        run_as_root: bool | None = None,
        network_policy: bool | None = None,
        loop: Any = None,
        asynchronous: bool = False,
        quiet: bool = False,
        **kwargs: Any,
    ) -> None:
        # Validation first: a bad argument must fail before any API call or thread.
        self._options = options.resolve(
            name=name, namespace=namespace, image=image, n_workers=n_workers, resources=resources, env=env,
            worker_command=worker_command, port_forward_cluster_ip=port_forward_cluster_ip, create_mode=create_mode,
            shutdown_on_close=shutdown_on_close, idle_timeout=idle_timeout, resource_timeout=resource_timeout,
            scheduler_service_type=scheduler_service_type, custom_cluster_spec=custom_cluster_spec,
            scheduler_forward_port=scheduler_forward_port, jupyter=jupyter, security=security,
            run_as_root=run_as_root, network_policy=network_policy)
        opts = self._options
        self.namespace = opts.namespace
        self.image = opts.image
        self.n_workers = opts.n_workers
        self.resources = opts.resources
        self.env = opts.env
        self.worker_command = opts.worker_command
        self.port_forward_cluster_ip = opts.port_forward_cluster_ip
        self.create_mode = opts.create_mode
        self.idle_timeout = opts.idle_timeout
        self.scheduler_service_type = opts.scheduler_service_type
        self.scheduler_forward_port = opts.scheduler_forward_port
        self.jupyter = opts.jupyter
        self.shutdown_on_close = bool(opts.shutdown_on_close)  # settled in _start, once we know who created it
        self.phase: str | None = None
        self.security: Security | None = None  # a TLS cluster's client certificates, once connected
        self._resource_timeout = opts.resource_timeout
        self._kubeconfig = os.environ.get("KUBECONFIG")
        self._api: kr8s.asyncio.Api | None = None
        self._cluster_object: DaskCluster | None = None
        self._created = False
        self._forwards: list[SchedulerForward] = []
        self._dashboard: tuple[str, int] | None = None
        self._dashboard_forward: SchedulerForward | None = None  # in a pod, for a proxy on it (dashboard.py)
        self._dashboard_hint: str | None = None  # how a browser reaches a dashboard only the cluster can
        self._follow_task: asyncio.Task[None] | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._workers_changed: asyncio.Event | None = None
        self._spinner: display.StartupSpinner | None = None
        # Versions are compared once with the scheduler and the workers there; again when the first workers come,
        # if none were there yet and nothing differed.
        self._versions_compared_with_workers = False
        super().__init__(name=opts.name, loop=loop, asynchronous=asynchronous, quiet=quiet, **kwargs)
        if not self.called_from_running_loop:
            self._loop_runner.start()
            try:
                self.sync(self._start)
            except BaseException:
                self._loop_runner.stop()
                raise

    # -- construction ---------------------------------------------------------------------------------------

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> KubeCluster:
        """Connect to an existing cluster; closing this object leaves the cluster running unless asked.

        `name` may be `namespace/name`, as dask-ctl's discovery gives it; an explicit `namespace=` wins.
        """
        if "/" in name:
            namespace, name = name.split("/", 1)
            kwargs.setdefault("namespace", namespace)
        options: dict[str, Any] = {"create_mode": CreateMode.CONNECT_ONLY, "shutdown_on_close": False}
        return cls(**(options | kwargs | {"name": name}))

    @classmethod
    def from_yaml(cls, yaml_path: Any, **kwargs: Any) -> Any:
        """Legacy mode: the client creates worker pods from a Pod template file (dask_kube.legacy)."""
        from .. import legacy

        return legacy.from_yaml(yaml_path, **kwargs)

    @classmethod
    def from_dict(cls, pod_template: Mapping[str, Any], **kwargs: Any) -> Any:
        """Legacy mode: the client creates worker pods from a Pod template dict (dask_kube.legacy)."""
        from .. import legacy

        return legacy.from_dict(pod_template, **kwargs)

    def __await__(self) -> Any:
        async def start() -> KubeCluster:
            if self.status == Status.created:
                await self._start()
            return self

        return start().__await__()

    # -- start-up -------------------------------------------------------------------------------------------

    @property
    def api(self) -> kr8s.asyncio.Api:
        assert self._api is not None, "the cluster is not started"
        return self._api

    @property
    def _cluster(self) -> DaskCluster:
        assert self._cluster_object is not None, "the cluster is not created or found yet"
        return self._cluster_object

    @property
    def _namespace(self) -> str:
        assert self.namespace is not None, "the namespace is known once the cluster started"
        return self.namespace

    async def _start(self) -> None:
        self.status = Status.starting
        self._workers_changed = asyncio.Event()
        self._spinner = display.StartupSpinner(self.name, self.quiet)
        try:
            with self._spinner:
                self._api = await kubernetes_api.client()
                self.namespace = self.namespace or self._api.namespace
                await self._create_or_connect()
                await self._hold_lease()
                await self._wait_running()
                await self._load_security()
                await self._connect_scheduler()
                self._spinner.update("Connecting", "subscribing to worker status")
                await super()._start()
                await self._compare_versions()
        except BaseException:
            await self._abort()
            raise
        finally:
            self._spinner = None
        self._follow_task = asyncio.ensure_future(self._follow_cluster())
        self._log(f"Ready, dashboard at {self.dashboard_link}" +
                  (f" ({self._dashboard_hint})" if self._dashboard_hint else ""))

    async def _create_or_connect(self) -> None:
        cluster = await kubernetes_api.get(DaskCluster, self.name, self.namespace, self.api)
        if cluster is not None:
            if self.create_mode == CreateMode.CREATE_ONLY:
                raise ClusterExistsError(f"DaskCluster {self.namespace}/{self.name} already exists and create_mode "
                                         f"is {CreateMode.CREATE_ONLY}")
            self._adopt_existing(cluster)
            return
        if self.create_mode == CreateMode.CONNECT_ONLY:
            raise await kubernetes_api.cluster_missing(self.api, f"DaskCluster {self.namespace}/{self.name} does not "
                                                                 f"exist and create_mode is {CreateMode.CONNECT_ONLY}")
        await self._create()

    async def _create(self) -> None:
        self._log("Creating cluster")
        manifest = self._options.manifest()
        manifest["metadata"]["namespace"] = self.namespace
        cluster = DaskCluster(manifest, namespace=self.namespace, api=self.api)
        try:
            await cluster.create()
        except kr8s.ServerError as err:
            if kubernetes_api.is_not_found(err):
                if not await kubernetes_api.crds_installed(self.api):
                    raise CRDsNotInstalledError() from None
                raise SpecError(f"namespace {self.namespace!r} does not exist", "namespace") from None
            if kubernetes_api.is_conflict(err) and self.create_mode != CreateMode.CREATE_ONLY:
                self._adopt_existing(await operations.get_cluster(self.api, self._namespace, self.name))
                return
            if kubernetes_api.is_conflict(err):
                raise ClusterExistsError(f"DaskCluster {self.namespace}/{self.name} already exists") from None
            if kubernetes_api.is_rejection(err):
                raise SpecError(f"the API server rejected DaskCluster {self.name}: {err}") from None
            raise
        self._cluster_object = cluster
        self._created = True
        self.shutdown_on_close = self._options.deletes_on_close(created=True)
        if self.shutdown_on_close:
            _OWNED[(self._namespace, self.name)] = self._kubeconfig

    def _adopt_existing(self, cluster: DaskCluster) -> None:
        """Connect to a cluster someone else made: learn its defaults, never delete it unless asked."""
        self._log("Connecting to existing cluster")
        if self._options.tls and specs.tls_secret_of(cluster.raw) is None:
            raise SpecError(f"DaskCluster {self.namespace}/{self.name} exists without TLS, and TLS cannot be added to "
                            "a running cluster: delete it or connect without security=", "security")
        self._cluster_object = cluster
        self.shutdown_on_close = self._options.deletes_on_close(created=False)
        worker = status.without_nulls((cluster.raw.get("spec") or {}).get("worker") or {})
        container = ((worker.get("spec") or {}).get("containers") or [{}])[0]
        self.image = container.get("image", self.image)
        self.n_workers = int(worker.get("replicas", self.n_workers))
        self.resources = container.get("resources") or {}
        self.env = container.get("env") or []

    async def _hold_lease(self) -> None:
        """Renew a leased cluster's Lease for as long as this client is open (the creator and `from_name` clients
        alike), so that the operator deletes the cluster only once every client is gone."""
        seconds = status.client_lease_seconds(self._cluster.raw)
        if seconds is None:
            return
        holder = lease.LeaseHolder(self.api, self._cluster.raw, seconds)
        await holder.renew()
        self._lease_task = asyncio.ensure_future(holder.run())

    async def _wait_running(self) -> None:
        self._log("Waiting for the operator and the scheduler")
        gone = False

        def on_change(raw: Mapping[str, Any] | None) -> None:
            nonlocal gone
            gone = raw is None
            self.phase = status.phase(raw)
            message = status.condition(raw, naming.ConditionType.SCHEDULER_READY).get("message")
            if self._spinner is not None:
                self._spinner.update(self.phase or "Waiting for the operator", message)

        timeout = self._resource_timeout

        async def explain(cluster: DaskCluster) -> BaseException:
            return await startup.explain_timeout(cluster, timeout)

        await waits.wait_for(self._cluster, startup.settled, timeout, explain=explain, on_change=on_change)
        if gone:
            raise ClusterNotFoundError(f"DaskCluster {self.namespace}/{self.name} was deleted while starting")
        failure = await startup.failure(self._cluster)
        if failure is not None:
            raise failure

    async def _load_security(self) -> None:
        """A TLS cluster's certificates, from its Secret (which the operator creates before the scheduler)."""
        await self._cluster.refresh()
        secret_name = specs.tls_secret_of(self._cluster.raw)
        if secret_name is None:
            return
        try:
            secret = await kubernetes_api.get(Secret, secret_name, self.namespace, self.api)
        except kr8s.ServerError as err:
            message = f"cannot read Secret {self.namespace}/{secret_name} of TLS cluster {self.name}: {err}"
            if kubernetes_api.is_forbidden(err):
                raise PermissionError(f"{message} (a TLS client needs `get` on secrets: docs/rbac.md)") from None
            raise RuntimeError(message) from None
        if secret is None:
            raise RuntimeError(f"cannot read Secret {self.namespace}/{secret_name} of TLS cluster {self.name}: "
                               "it does not exist")
        self.security = tls.from_secret_data(secret.raw.get("data"), secret_name).security()
        self._log(f"Using TLS with the certificates of Secret {secret_name}")

    async def _connect_scheduler(self) -> None:
        """The scheduler's address: the Service when reachable from here, else a port-forward."""
        self._log("Connecting to the scheduler")
        scheme = naming.TLS_SCHEME if self.security is not None else naming.TCP_SCHEME
        route = await networking.route(self.api, self._namespace, self.name, forward=self.port_forward_cluster_ip,
                                       within=self._resource_timeout, scheme=scheme,
                                       dashboard_port=self.scheduler_forward_port, say=self._log)
        self._forwards = route.forwards
        self._dashboard = route.dashboard
        await self._place_dashboard(direct=not route.forwards)
        args = self.security.get_connection_args("client") if self.security is not None else None
        self.scheduler_comm = rpc(route.address, connection_args=args)
        await self._wait_for_comm()

    async def _place_dashboard(self, direct: bool) -> None:
        """In a pod reached directly: forward the dashboard to this pod when the link template wants it there
        (jupyter-server-proxy), or say how a browser reaches the Service's dashboard (dashboard.py)."""
        in_pod = networking.in_cluster()
        if not direct or not in_pod or self._dashboard is None:
            return
        if dashboard.needs_local_dashboard(in_pod):
            self._dashboard_forward = await networking.forward_dashboard(self.api, self._namespace, self.name,
                                                                         self.scheduler_forward_port)
            self._dashboard = ("127.0.0.1", self._dashboard_forward.local_port)
        elif not dashboard.template_set():
            self._dashboard_hint = dashboard.how_to_reach(self._namespace, self.name, self.dashboard_link)

    async def _wait_for_comm(self) -> None:
        """The operator saw the scheduler answer; a fresh route (forward, load balancer) may lag a moment."""
        assert self.scheduler_comm is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._resource_timeout
        delay = 0.1
        while True:
            try:
                await asyncio.wait_for(self.scheduler_comm.identity(), max(1.0, deadline - loop.time()))
                return
            except (OSError, TimeoutError) as err:
                for forward in self._forwards:
                    forward.check()  # a refused port-forward (RBAC) is the reason: say so now, not at the deadline
                if loop.time() > deadline:
                    raise TimeoutError(f"the scheduler of {self.namespace}/{self.name} is Running but does not "
                                       f"answer at {self.scheduler_comm.address}: {err!r}") from err
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _compare_versions(self) -> None:
        """Warn once if this client's versions differ from the cluster's (versions.py)."""
        assert self.scheduler_comm is not None
        found = await versions.check(self.scheduler_comm, self.name)
        self._versions_compared_with_workers = bool(found) or bool(self.scheduler_info.get("workers"))

    async def _abort(self) -> None:
        """A failed start leaves nothing behind: no forwards, and no cluster this client created."""
        await self._stop_background()
        if self.scheduler_comm is not None:
            await self.scheduler_comm.close_rpc()
        if self._created and self._cluster_object is not None:
            with contextlib.suppress(Exception):
                await self._delete_cluster(within=min(self._resource_timeout, 30))
        self.status = Status.closed

    async def _follow_cluster(self) -> None:
        """Keep `phase` current for the repr, and say so when the cluster is deleted under us (idle timeout)."""
        def on_change(raw: Mapping[str, Any] | None) -> None:
            self.phase = status.phase(raw) if raw is not None else "Deleted"

        with contextlib.suppress(asyncio.CancelledError):
            await waits.wait_for(self._cluster, lambda raw: raw is None, None, on_change=on_change)
            logger.warning("DaskCluster %s/%s was deleted (idle timeout, client lease expired or kubectl delete)",
                           self.namespace, self.name)
            _OWNED.pop((self._namespace, self.name), None)

    async def _stop_background(self) -> None:
        for task in (self._follow_task, self._lease_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._follow_task = self._lease_task = None
        forwards, self._forwards = self._forwards, []
        if self._dashboard_forward is not None:
            forwards.append(self._dashboard_forward)
            self._dashboard_forward = None
        await asyncio.gather(*(f.stop() for f in forwards), return_exceptions=True)

    # -- workers ----------------------------------------------------------------------------------------------

    def _update_worker_status(self, op: str, msg: Any) -> None:
        super()._update_worker_status(op, msg)
        if self._workers_changed is not None:
            self._workers_changed.set()

    async def _watch_worker_status(self, comm: Any) -> None:
        """Follow worker arrivals; when the stream breaks (scheduler replaced, forward cut) subscribe again."""
        delay = 0.2
        while True:
            await super()._watch_worker_status(comm)
            while self.status == Status.running:
                assert self.scheduler_comm is not None
                try:
                    comm = await self.scheduler_comm.live_comm()
                    await comm.write({"op": "subscribe_worker_status"})
                    self.scheduler_info = SchedulerInfo(await comm.read())
                    self._watch_worker_status_comm = comm
                    delay = 0.2
                    break
                except OSError:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
            else:
                return

    def scale(self, n: int, worker_group: str = naming.DEFAULT_WORKER_GROUP) -> Any:
        """Set a worker group's size and return; `wait_for_workers` waits for it. Removes that group's
        autoscaler, if any, so that the two do not fight."""
        return self.sync(self._scale, n, worker_group)

    async def _scale(self, n: int, worker_group: str = naming.DEFAULT_WORKER_GROUP) -> None:
        for line in await operations.scale(self.api, self._namespace, self.name, n, worker_group):
            self._log(line)
        if worker_group == naming.DEFAULT_WORKER_GROUP:
            self.n_workers = n

    def adapt(self, minimum: int | None = None, maximum: int | None = None,  # type: ignore[override]
              worker_group: str = naming.DEFAULT_WORKER_GROUP, **kwargs: Any) -> Any:
        """Let the operator scale a worker group between `minimum` and `maximum` (a DaskAutoscaler)."""
        return self.sync(self._adapt, minimum, maximum, worker_group)

    async def _adapt(self, minimum: int | None, maximum: int | None,
                     worker_group: str = naming.DEFAULT_WORKER_GROUP) -> None:
        validation.validate_worker_group_name(worker_group)
        minimum = 0 if minimum is None else minimum
        if maximum is None:
            raise SpecError("adapt needs a maximum number of workers, e.g. adapt(minimum=0, maximum=10)", "maximum")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (minimum, maximum)) \
                or not 0 <= minimum <= maximum:
            raise SpecError(f"needs integers 0 <= minimum <= maximum, not {minimum!r}, {maximum!r}", "adapt")
        group = None if worker_group == naming.DEFAULT_WORKER_GROUP else worker_group
        body = specs.make_autoscaler(self.name, minimum, maximum, worker_group=group, namespace=self.namespace)
        scaler = DaskAutoscaler(body, namespace=self.namespace, api=self.api)
        try:
            await scaler.create()
        except kr8s.ServerError as err:
            if not kubernetes_api.is_conflict(err):
                raise
            await scaler.patch({"spec": body["spec"]})
        self._log(f"Adapting worker group {worker_group} between {minimum} and {maximum} workers")

    def add_worker_group(self, name: str, n_workers: int = 3, image: str | None = None,
                         resources: Mapping[str, Any] | None = None, worker_command: str | Sequence[str] | None = None,
                         env: specs.Env = None, custom_spec: Mapping[str, Any] | None = None) -> Any:
        """Add a DaskWorkerGroup `{cluster}-{name}`; unset arguments default to this cluster's."""
        return self.sync(self._add_worker_group, name, n_workers, image, resources, worker_command, env, custom_spec)

    async def _add_worker_group(self, name: str, n_workers: int = 3, image: str | None = None,
                                resources: Mapping[str, Any] | None = None,
                                worker_command: str | Sequence[str] | None = None, env: specs.Env = None,
                                custom_spec: Mapping[str, Any] | None = None) -> None:
        validation.validate_worker_group_name(name)
        if name == naming.DEFAULT_WORKER_GROUP:
            raise SpecError("'default' is the cluster's own group; use scale() for it", "worker_group")
        if custom_spec is not None:
            worker = status.without_nulls(dict(custom_spec))
            problems = validation.pod_spec_problems(worker.get("spec"), "custom_spec.spec")
            if problems:
                raise problems[0]
        else:
            resources = self.resources if resources is None else validation.validate_resources(resources)
            env = self.env if env is None else env
            validation.validate_env(env)
            command = self.worker_command if worker_command is None else worker_command
            validation.validate_worker_command(command)
            worker = specs.make_worker_spec(image=self.image if image is None else image, n_workers=n_workers,
                                            resources=resources, env=env, worker_command=command,
                                            run_as_root=self._options.run_as_root)
        body = specs.make_worker_group(self.name, name, worker, namespace=self.namespace)
        try:
            await DaskWorkerGroup(body, namespace=self.namespace, api=self.api).create()
        except kr8s.ServerError as err:
            if kubernetes_api.is_conflict(err):
                raise SpecError(f"cluster {self.name} already has a worker group {name!r}", "name") from None
            raise
        self._log(f"Added worker group {name} with {worker.get('replicas', 1)} workers")

    def delete_worker_group(self, name: str) -> Any:
        """Delete a worker group added with `add_worker_group` (and its autoscaler)."""
        return self.sync(self._delete_worker_group, name)

    async def _delete_worker_group(self, name: str) -> None:
        validation.validate_worker_group_name(name)
        if name == naming.DEFAULT_WORKER_GROUP:
            raise SpecError("the default group belongs to the DaskCluster; scale(0) empties it", "worker_group")
        scaler = await operations.remove_autoscaler(self.api, self._namespace, self.name, name)
        if scaler is not None:
            self._log(f"Deleted DaskAutoscaler {self.namespace}/{scaler}: worker group {name} is being deleted")
        group = kubernetes_api.ref(DaskWorkerGroup, naming.worker_group_name(self.name, name), self.namespace,
                                   self.api)
        if not await kubernetes_api.delete(group):
            logger.warning("cluster %s has no worker group %r to delete", self.name, name)
            return
        self._log(f"Deleted worker group {name}")

    async def _wait_for_workers(self, n_workers: int = 0, timeout: float | str | None = None  # noqa: ASYNC109
                                ) -> None:
        """Until `n_workers` are running, woken by the scheduler's worker stream; on timeout, say what the
        worker pods are doing (Pending, Unschedulable, ImagePullBackOff, ...)."""
        assert self.scheduler_comm is not None and self._workers_changed is not None
        limit = parse_timedelta(timeout) if timeout else self._resource_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit

        while True:
            self._workers_changed.clear()
            self.scheduler_info = SchedulerInfo(await self.scheduler_comm.identity())
            running = startup.running_workers(self.scheduler_info["workers"])
            if running >= n_workers:
                if running and not self._versions_compared_with_workers:
                    await self._compare_versions()
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                pods = await startup.list_pods(self.api, self._namespace, naming.worker_selector(self.name))
                raise startup.WorkersNotReadyError(running, n_workers, limit,
                                                   startup.describe_worker_pods([p.raw for p in pods]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._workers_changed.wait(),
                                       startup.next_look(self.scheduler_info["workers"], remaining))

    # -- logs -------------------------------------------------------------------------------------------------

    def get_logs(self, cluster: bool = True, scheduler: bool = True, workers: bool | Iterable[str] = True,
                 previous: bool = False) -> Any:
        """Logs of every pod of the cluster, per container (key `pod` or `pod/container`), with the previous
        instance of restarted containers (`... (previous)`) when `previous`. `workers` may list pod names."""
        return self.sync(self._get_logs, cluster, scheduler, workers, previous)

    async def _get_logs(self, cluster: bool = True, scheduler: bool = True,
                        workers: bool | Iterable[str] = True, previous: bool = False) -> Logs:
        logs = Logs()
        if cluster:
            logs["Cluster"] = Log("\n".join(message for _, message in self._cluster_manager_logs))
        wanted = None if isinstance(workers, bool) else set(workers)
        pods = await startup.list_pods(self.api, self._namespace, naming.cluster_selector(self.name))
        jobs: list[tuple[str, Any]] = []
        for pod in sorted(pods, key=lambda p: p.name):
            component = pod.raw["metadata"].get("labels", {}).get(naming.COMPONENT_LABEL)
            if component == Component.SCHEDULER and not scheduler:
                continue
            if component == Component.WORKER and (workers is False or (wanted is not None and pod.name not in wanted)):
                continue
            containers = [c["name"] for c in (pod.raw.get("spec") or {}).get("containers") or ()]
            restarts = {cs.get("name"): cs.get("restartCount", 0)
                        for cs in (pod.raw.get("status") or {}).get("containerStatuses") or ()}
            for container in containers:
                key = pod.name if len(containers) == 1 else f"{pod.name}/{container}"
                jobs.append((key, self._container_log(pod, container, False)))
                if previous and restarts.get(container):
                    jobs.append((f"{key} (previous)", self._container_log(pod, container, True)))
        results = await asyncio.gather(*(job for _, job in jobs))
        for (key, _), text in zip(jobs, results, strict=True):
            logs[key] = Log(text)
        return logs

    @staticmethod
    async def _container_log(pod: Pod, container: str, previous: bool) -> str:
        text = await kubernetes_api.pod_logs(pod, container=container, previous=previous)
        if text or previous:
            return text
        pod_phase, reason, message = status.pod_state(pod.raw)
        if pod_phase != "Running":
            return f"No logs yet: pod is {pod_phase}" + (f" ({reason}: {message})" if reason else "")
        return text

    # -- display ----------------------------------------------------------------------------------------------

    def _log(self, log: str) -> None:
        """Record for get_logs and show in the spinner; printing is the spinner's job, not print()'s."""
        self._cluster_manager_logs.append((datetime.datetime.now(), log))
        logger.info("KubeCluster %s: %s", self.name, log)
        if self._spinner is not None:
            self._spinner.update(message=log)

    @property
    def dashboard_link(self) -> str:
        if self._dashboard is None:
            return ""
        return str(format_dashboard_link(*self._dashboard))

    @property
    def jupyter_link(self) -> str:
        if not self.jupyter:
            raise RuntimeError("KubeCluster not started with jupyter=True")
        return self.dashboard_link.replace("/status", "/jupyter/lab")

    @property
    def port_forwarded(self) -> bool:
        return bool(self._forwards)

    def _repr_html_(self, cluster_status: str | None = None) -> str:
        scheduler = self.scheduler_address + (" (port-forward)" if self._forwards else "")
        rows = display.status_rows({"Namespace": self.namespace, "Phase": self.phase, "Scheduler": scheduler,
                                    **({"Dashboard access": self._dashboard_hint} if self._dashboard_hint else {})})
        return str(super()._repr_html_(cluster_status=rows + (cluster_status or "")))

    # -- shutdown ---------------------------------------------------------------------------------------------

    def close(self, timeout: float | None = 3600) -> Any:
        """Disconnect; delete the cluster too if `shutdown_on_close` (waiting up to `timeout` s for its pods)."""
        if self.status == Status.closed:
            return NoOpAwaitable() if self.asynchronous else None
        result = self.sync(self._close, timeout)
        if not self.asynchronous:
            self._loop_runner.stop()
        return result

    async def _close(self, within: float | None = 3600) -> None:
        if self.status == Status.closed:
            return
        try:
            if self.shutdown_on_close and self._cluster_object is not None:
                await self._delete_cluster(within, accepted=self._mark_closing_then_disconnect)
        finally:
            await self._disconnect()

    async def _disconnect(self) -> None:
        """Close the scheduler comm, the background tasks and the forwards; a second call does nothing (both
        steps are idempotent)."""
        await super()._close()
        await self._stop_background()

    async def _mark_closing_then_disconnect(self) -> None:
        """Run once the deletion is accepted: mark while the scheduler comm is still open, then let go of it
        before the wait, in which the scheduler goes."""
        await self._mark_closing()
        await self._disconnect()

    async def _mark_closing(self) -> None:
        """Once its deletion is under way, tell the scheduler that its whole cluster is going: its preStop hook then
        stops the workers before the scheduler itself (worker_lifecycle), the fast way. Best effort: unmarked, the
        cluster still goes, only slower."""
        if self.scheduler_comm is None:
            return
        try:
            await asyncio.wait_for(self.scheduler_comm.set_metadata(keys=list(worker_lifecycle.CLOSING_KEYS),
                                                                    value=True), 5)
        except (OSError, TimeoutError) as err:
            logger.debug("DaskCluster %s/%s: could not mark its scheduler closing: %s", self.namespace, self.name, err)

    async def _delete_cluster(self, within: float | None,
                              accepted: Callable[[], Awaitable[None]] | None = None) -> None:
        """Foreground deletion: the DaskCluster goes only after its pods and Services, so once this returns
        nothing of the cluster remains. `accepted` runs once the deletion is under way."""
        self._log("Deleting cluster")
        if not await operations.delete(self.api, self._namespace, self.name, within or 3600, accepted=accepted):
            logger.warning("DaskCluster %s/%s was already deleted", self.namespace, self.name)
        _OWNED.pop((self._namespace, self.name), None)


async def _delete_owned(owned: dict[tuple[str, str], str | None]) -> None:
    for (namespace, name), kubeconfig in owned.items():
        try:
            api = await kubernetes_api.client(kubeconfig)
            await asyncio.wait_for(operations.delete(api, namespace, name, within=None), 10)
            logger.info("deleted DaskCluster %s/%s at exit", namespace, name)
        except Exception as err:  # at exit, report and go on with the others
            logger.warning("could not delete DaskCluster %s/%s at exit: %r", namespace, name, err)


@atexit.register
def _reap_clusters() -> None:
    """Delete, at interpreter exit, the clusters this process created and still owns. Runs in a fresh thread with
    its own event loop, so it works whether or not some other loop is still running (or already closed) at exit."""
    if not _OWNED:
        return
    owned = dict(_OWNED)
    _OWNED.clear()
    thread = threading.Thread(target=asyncio.run, args=(_delete_owned(owned),), name="dask-kube-reaper")
    thread.start()
    thread.join(30)
