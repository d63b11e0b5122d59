"""`dask kube ...` (on dask's `dask_cli` entry point) and `dask-kube ...`: Dask clusters on Kubernetes from a shell.

Two halves. The operations are plain async functions over a kr8s `Api` (`scale_cluster`, `delete_cluster`,
`cluster_logs`, `port_forward`, `apply_manifests`, plus `discovery.list_clusters` and `cli_local.up`/`down`);
they raise dask_kube's errors and print nothing themselves. The click commands below them only parse options, run
one operation per command on a fresh event loop, render the result, and turn errors into `ClickException`s that
say what to do next.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
import kr8s
import yaml
from kr8s.asyncio.objects import APIObject, CustomResourceDefinition, Pod, object_from_spec

from . import cli_local, discovery, forwarding, naming, specs
from .errors import ClusterNotFoundError, CRDsNotInstalledError, DaskKubeError, SpecError
from .resources import DaskAutoscaler, DaskCluster, DaskWorkerGroup

T = TypeVar("T")
PACKAGED_CRDS = Path(__file__).parent / "operator" / "crds"
ESTABLISH_TIMEOUT = 30.0
LIST_HINT = "`dask kube list -A` shows the clusters of every namespace."


# -- operations ----------------------------------------------------------------------------------------------------


async def get_cluster(api: kr8s.asyncio.Api, namespace: str, name: str) -> DaskCluster:
    """The DaskCluster, or `ClusterNotFoundError` / `CRDsNotInstalledError` saying which is missing."""
    cluster = DaskCluster({"metadata": {"name": name}}, namespace=namespace, api=api)
    try:
        await cluster.refresh()
    except kr8s.NotFoundError:
        if not await discovery.crds_installed(api):
            raise CRDsNotInstalledError(discovery.INSTALL_HINT) from None
        raise ClusterNotFoundError(f"there is no DaskCluster {name!r} in namespace {namespace!r}. {LIST_HINT}") \
            from None
    return cluster


async def _delete_if_exists(obj: APIObject) -> bool:
    try:
        await obj.delete()
    except kr8s.NotFoundError:
        return False
    return True


async def scale_cluster(api: kr8s.asyncio.Api, namespace: str, name: str, replicas: int,
                        worker_group: str = naming.DEFAULT_WORKER_GROUP) -> list[str]:
    """Set a worker group's replicas, as `KubeCluster.scale` does: the default group through the DaskCluster's
    `spec.worker.replicas`, another through its DaskWorkerGroup. The group's DaskAutoscaler, if any, is deleted so
    that the two do not fight. Returns what was done."""
    cluster = await get_cluster(api, namespace, name)
    group = None if worker_group == naming.DEFAULT_WORKER_GROUP else worker_group
    done = []
    patch = {"spec": {"worker": {"replicas": replicas}}}
    if group is None:
        target = f"DaskCluster {namespace}/{name}"
        await cluster.patch(patch)
    else:
        target = f"DaskWorkerGroup {namespace}/{naming.worker_group_name(name, group)}"
        try:
            await DaskWorkerGroup({"metadata": {"name": naming.worker_group_name(name, group)}},
                                  namespace=namespace, api=api).patch(patch)
        except kr8s.NotFoundError:
            groups = [g.name async for g in api.async_get(
                DaskWorkerGroup, namespace=namespace, label_selector=naming.cluster_selector(name))]
            known = ", ".join(g.removeprefix(f"{name}-") for g in sorted(groups)) or "none"
            raise SpecError(f"cluster {name} has no worker group {worker_group!r} (its groups: {known})",
                            "worker_group") from None
    scaler = specs.make_autoscaler(name, 0, 0, worker_group=group, namespace=namespace)["metadata"]["name"]
    if await _delete_if_exists(DaskAutoscaler({"metadata": {"name": scaler}}, namespace=namespace, api=api)):
        done.append(f"Deleted DaskAutoscaler {namespace}/{scaler}: a fixed size replaces adaptive scaling")
    done.append(f"Scaled {target} to {replicas} workers")
    return done


async def delete_cluster(api: kr8s.asyncio.Api, namespace: str, name: str, wait: bool,
                         within: float = 120.0) -> None:
    """Delete a DaskCluster with foreground propagation; with `wait`, return once it and its pods are gone."""
    from .cluster import waiting

    cluster = await get_cluster(api, namespace, name)
    try:
        await cluster.delete(propagation_policy="Foreground")
    except kr8s.NotFoundError:
        return
    if not wait:
        return

    async def explain(obj: DaskCluster) -> BaseException:
        return TimeoutError(f"DaskCluster {namespace}/{name} still exists {within:g}s after deletion; its "
                            "finalizers need the operator: is it running? (`kubectl get daskcluster "
                            f"{name} -n {namespace} -o yaml` shows what holds it)")

    await waiting.wait_for(cluster, lambda raw: raw is None, within, explain=explain)


def _log_selector(name: str, scheduler: bool, worker_group: str | None) -> dict[str, str]:
    if scheduler:
        return naming.scheduler_selector(name)
    if worker_group is not None:
        return naming.worker_selector(name, naming.worker_group_name(name, worker_group))
    return naming.cluster_selector(name)


def _pod_order(pod: Pod) -> tuple[int, str]:
    component = (pod.raw["metadata"].get("labels") or {}).get(naming.COMPONENT_LABEL)
    return (0 if component == naming.Component.SCHEDULER else 1, pod.name)


async def cluster_logs(api: kr8s.asyncio.Api, namespace: str, name: str, echo: Callable[[str], None], *,
                       scheduler: bool = False, worker_group: str | None = None, follow: bool = False,
                       tail: int | None = None, stop: asyncio.Event | None = None) -> int:
    """Print the logs of a cluster's pods (all, the scheduler's, or one worker group's) through `echo`.

    Without `follow`, each pod's log is printed whole under a `==> pod <==` header; with it, the pods' logs are
    streamed together, each line prefixed with `[pod]`, until they all end or `stop` is set. Pods created after
    the start are not followed. Returns the number of pods.
    """
    await get_cluster(api, namespace, name)
    selector = _log_selector(name, scheduler, worker_group)
    pods = sorted([p async for p in api.async_get(Pod, namespace=namespace, label_selector=selector)],
                  key=_pod_order)
    if not pods:
        return 0

    async def read(pod: Pod) -> list[str]:
        try:
            return [line async for line in pod.logs(tail_lines=tail, timeout=30)]
        except kr8s.ServerError as err:
            return [f"(no logs: {err})"]

    async def stream(pod: Pod) -> None:
        try:
            async for line in pod.logs(tail_lines=tail, follow=True, timeout=None):
                echo(f"[{pod.name}] {line}")
        except kr8s.ServerError as err:
            echo(f"[{pod.name}] (no logs: {err})")

    if follow:
        streams = asyncio.ensure_future(asyncio.gather(*(stream(pod) for pod in pods)))
        stopped = asyncio.ensure_future((stop or asyncio.Event()).wait())
        try:
            done, _ = await asyncio.wait([streams, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streams, stopped):
                task.cancel()
            await asyncio.gather(streams, stopped, return_exceptions=True)
        if streams in done:
            streams.result()  # the streams ended by themselves: raise what broke them, if anything
        return len(pods)
    for pod, lines in zip(pods, await asyncio.gather(*(read(pod) for pod in pods)), strict=True):
        echo(f"==> {pod.name} <==")
        for line in lines:
            echo(line)
    return len(pods)


@dataclass(frozen=True)
class Forwarding:
    namespace: str
    cluster: str
    phase: str | None
    scheduler_address: str
    dashboard_link: str
    jupyter_link: str | None
    tls_secret: str | None = None


async def port_forward(api: kr8s.asyncio.Api, namespace: str, name: str, ready: Callable[[Forwarding], None],
                       dashboard_port: int | None = None, stop: asyncio.Event | None = None) -> None:
    """Forward the scheduler's comm and dashboard ports to 127.0.0.1 until `stop` is set (or forever).

    The forwarder is the one KubeCluster and the operator use (`dask_kube.forwarding.SchedulerForward`): each new
    connection opens a fresh port-forward to whichever scheduler pod runs then, so it survives a replaced scheduler.
    """
    from distributed.utils import format_dashboard_link

    cluster = await get_cluster(api, namespace, name)
    ports = {naming.SCHEDULER_PORT_NAME: naming.SCHEDULER_PORT, naming.DASHBOARD_PORT_NAME: naming.DASHBOARD_PORT}
    containers = (((cluster.raw.get("spec") or {}).get("scheduler") or {}).get("spec") or {}).get("containers") or []
    for container in containers:
        for port in container.get("ports") or ():
            if port.get("name") in ports and port.get("containerPort"):
                ports[port["name"]] = int(port["containerPort"])
    jupyter = any("--jupyter" in (c.get("args") or []) + (c.get("command") or []) for c in containers)
    comm = forwarding.SchedulerForward(api, namespace, name, ports[naming.SCHEDULER_PORT_NAME])
    dashboard = forwarding.SchedulerForward(api, namespace, name, ports[naming.DASHBOARD_PORT_NAME],
                                            local_port=dashboard_port)
    try:
        await comm.start()
        await dashboard.start()
        link = format_dashboard_link("127.0.0.1", dashboard.local_port)
        secret = specs.tls_secret_of(cluster.raw)
        scheme = naming.TLS_SCHEME if secret else naming.TCP_SCHEME
        ready(Forwarding(namespace, name, (cluster.raw.get("status") or {}).get("phase"), f"{scheme}://{comm.address}",
                         link, link.replace("/status", "/jupyter/lab") if jupyter else None, secret))
        await (stop or asyncio.Event()).wait()
    finally:
        await asyncio.gather(comm.stop(), dashboard.stop())


def load_manifests(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every object of the YAML files given (a directory means its `*.yaml` and `*.yml`, in name order)."""
    docs: list[dict[str, Any]] = []
    for path in paths:
        if not path.exists():
            raise SpecError(f"{path} does not exist", "manifests")
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
        if not files:
            raise SpecError(f"{path} holds no .yaml files", "manifests")
        for file in files:
            try:
                found = [doc for doc in yaml.safe_load_all(file.read_text()) if doc]
            except yaml.YAMLError as err:
                raise SpecError(f"{file} is not valid YAML: {err}", "manifests") from None
            for doc in found:
                if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= doc.keys():
                    raise SpecError(f"{file} holds something that is not a Kubernetes object", "manifests")
            docs.extend(found)
    return docs


def describe(doc: dict[str, Any]) -> str:
    """`customresourcedefinition.apiextensions.k8s.io/daskclusters.kubernetes.dask.org`, as kubectl prints it."""
    group = doc["apiVersion"].rpartition("/")[0]
    kind = doc["kind"].lower() + (f".{group}" if group else "")
    namespace = doc["metadata"].get("namespace")
    return f"{kind}/{doc['metadata']['name']}" + (f" (namespace {namespace})" if namespace else "")


def _established(raw: dict[str, Any] | None) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in ((raw or {}).get("status") or {}).get("conditions") or ())


async def apply_manifests(api: kr8s.asyncio.Api, docs: Sequence[dict[str, Any]],
                          report: Callable[[str], None]) -> None:
    """Create each object, or merge-patch it when it exists (reporting created/configured/unchanged), then wait
    until every CustomResourceDefinition among them is Established."""
    from .cluster import waiting

    crds: list[APIObject] = []
    for doc in docs:
        obj = object_from_spec(doc, api=api, allow_unknown_type=True)
        try:
            await obj.create()
            outcome = "created"
        except kr8s.ServerError as err:
            if discovery.status_code(err) != 409:
                raise
            await obj.refresh()
            before = obj.raw["metadata"].get("resourceVersion")
            await obj.patch({k: v for k, v in doc.items() if k != "status"})
            outcome = "configured" if obj.raw["metadata"].get("resourceVersion") != before else "unchanged"
        report(f"{describe(doc)} {outcome}")
        if doc["kind"] == "CustomResourceDefinition":
            crds.append(obj)
    for crd in crds:
        await waiting.wait_for(CustomResourceDefinition({"metadata": {"name": crd.name}}, api=api), _established,
                               ESTABLISH_TIMEOUT)


# -- the click shell -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Which Kubernetes: the group's --kubeconfig and --context (kr8s' defaults when None)."""

    kubeconfig: str | None
    context: str | None


def _hint(err: BaseException) -> str:
    if isinstance(err, discovery.KubeconfigError):
        return (f"{err}\nhint: set KUBECONFIG or pass --kubeconfig; for a local Kubernetes, run `dask kube local up` "
                "and use the kubeconfig it prints.")
    if isinstance(err, kr8s.ServerError):
        return f"the Kubernetes API server refused: {err}"
    if isinstance(err, httpx.TransportError):
        return (f"lost the Kubernetes API server: {err!r}\nhint: is it running? (`kubectl cluster-info` checks the "
                "same kubeconfig)")
    return str(err)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one operation on a fresh loop; dask_kube's and kr8s' errors become `ClickException`s."""
    try:
        return asyncio.run(coro)
    except SpecError as err:
        if err.field:
            raise click.BadParameter(err.message, param_hint=f"--{err.field.replace('_', '-')}") from None
        raise click.ClickException(str(err)) from None
    except (DaskKubeError, kr8s.ServerError, httpx.TransportError, TimeoutError, ConnectionError) as err:
        raise click.ClickException(_hint(err)) from None


def _with_api(target: Target, fn: Callable[..., Awaitable[T]], *args: Any, namespace: str | None = None,
              **kwargs: Any) -> T:
    """`fn(api, namespace, *args, **kwargs)` with a fresh Api; namespace None means the kubeconfig's."""

    async def call() -> T:
        async with discovery.connect(target.kubeconfig, target.context) as api:
            return await fn(api, namespace or api.namespace, *args, **kwargs)

    return _run(call())


def until_signalled() -> asyncio.Event:
    """An event that SIGINT or SIGTERM (Ctrl+C, `kill`) sets, for commands that run until stopped. Handlers on the
    running loop also override a SIGINT that the shell set to be ignored (a background job)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            loop.add_signal_handler(sig, stop.set)
    return stop


def _target(ctx: click.Context) -> Target:
    target = ctx.find_object(Target)
    return target if target is not None else Target(None, None)


def _console() -> Any:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def _dump(data: Any, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(yaml.dump(data, Dumper=_NoAliases, sort_keys=False), nl=False)


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def format_age(age: datetime.timedelta | None) -> str:
    """kubectl's style: 45s, 7m, 3h, 12d."""
    if age is None:
        return "-"
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


namespace_option = click.option("-n", "--namespace", metavar="NS",
                                help="Namespace (default: the kubeconfig context's namespace).")
OUTPUTS = click.Choice(["table", "yaml", "json"])

MAIN_HELP = """Dask clusters on Kubernetes: generate, list, scale, forward, read logs, delete; install the operator,
or run a local Kubernetes to try it all.

\b
Examples:
  dask kube local up                        # a local Kubernetes with the CRDs and the operator
  dask kube gen cluster --name demo --n-workers 2 | kubectl apply -f -
  dask kube list -A
  dask kube scale demo 4
  dask kube port-forward demo               # then Client("tcp://127.0.0.1:PORT")
  dask kube logs demo --scheduler -f
  dask kube delete demo

The same commands run as `dask-kube ...`. Clusters made from Python (`dask_kube.KubeCluster`) show up here too.
"""


@click.group(name="kube", help=MAIN_HELP, context_settings={"help_option_names": ["-h", "--help"],
                                                            "max_content_width": 120})
@click.option("--kubeconfig", metavar="PATH", help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).")
@click.option("--context", metavar="NAME", help="Kubeconfig context (default: its current context).")
@click.version_option(package_name="dask-kube", prog_name="dask kube")
@click.pass_context
def main(ctx: click.Context, kubeconfig: str | None, context: str | None) -> None:
    ctx.obj = Target(kubeconfig, context)


@main.group(help="Generate Kubernetes manifests for Dask resources (print them; apply them with kubectl).")
def gen() -> None:
    pass


def _parse_env(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, str] | None:
    env = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx=ctx, param=param)
        env[key] = value  # split on the first '=': values may contain '='
    return env or None


def _parse_json(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"not valid JSON ({err.msg}): {value!r}", ctx=ctx, param=param) from None


@gen.command("cluster", epilog="""\b
Examples:
  dask kube gen cluster --name demo
  dask kube gen cluster --name gpu --n-workers 4 --image rapidsai/base:25.02-cuda12.8-py3.12 \\
      --resources '{"limits": {"nvidia.com/gpu": "1"}}' --env EXTRA_PIP_PACKAGES=s3fs
  dask kube gen cluster --name demo -o json | kubectl apply -f -""")
@click.option("--name", required=True, help="Cluster name (a DNS label of at most 53 characters).")
@click.option("--image", default=None, help="Container image of the scheduler and workers "
                                            "(default: dask config kubernetes.image).")
@click.option("--n-workers", type=click.IntRange(min=0), default=3, show_default=True, help="Workers to start.")
@click.option("--resources", callback=_parse_json, metavar="JSON",
              help='Container resources as JSON, e.g. \'{"limits": {"cpu": "1", "memory": "2Gi"}}\'.')
@click.option("-e", "--env", multiple=True, callback=_parse_env, metavar="KEY=VALUE",
              help="Environment variable of the scheduler and workers (repeatable; split on the first '=').")
@click.option("--worker-command", default=None, help="Worker command (default: dask config, `dask worker`).")
@click.option("--scheduler-service-type", type=click.Choice(["ClusterIP", "NodePort", "LoadBalancer"]),
              default=None, help="Type of the scheduler Service (default: dask config, ClusterIP).")
@click.option("--idle-timeout", type=click.IntRange(min=0), default=None,
              help="Delete the cluster after its scheduler was idle this many seconds (default: never).")
@click.option("--jupyter", is_flag=True, help="Run Jupyter in the scheduler (the image needs jupyter-server).")
@click.option("--tls", is_flag=True, help="Mutual TLS with a CA and certificate the operator generates.")
@click.option("--tls-secret", default=None, metavar="NAME",
              help="Mutual TLS with the certificates of this Secret (keys ca.crt, tls.crt, tls.key).")
@namespace_option
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def gen_cluster(name: str, image: str | None, n_workers: int, resources: Any, env: dict[str, str] | None,
                worker_command: str | None, scheduler_service_type: str | None, idle_timeout: int | None,
                jupyter: bool, tls: bool, tls_secret: str | None, namespace: str | None, output: str) -> None:
    """Print the DaskCluster that `KubeCluster(name=..., ...)` with the same options would create."""
    from .cluster import options

    try:
        resolved = options.resolve(name=name, image=image, n_workers=n_workers, resources=resources, env=env,
                                   worker_command=worker_command, scheduler_service_type=scheduler_service_type,
                                   idle_timeout=idle_timeout, jupyter=jupyter or None,
                                   security=tls_secret or (True if tls else None))
    except SpecError as err:
        hint = "--tls-secret" if err.field == "security" else f"--{(err.field or 'name').replace('_', '-')}"
        raise click.BadParameter(err.message, param_hint=hint) from None
    manifest = resolved.manifest()
    if namespace:
        manifest["metadata"]["namespace"] = namespace
    _dump(manifest, output)


@main.command("list", epilog="""\b
Examples:
  dask kube list                # the kubeconfig context's namespace
  dask kube list -n team-a
  dask kube list -A -o json""")
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="Clusters of every namespace.")
@click.option("-o", "--output", type=OUTPUTS, default="table", show_default=True)
@click.pass_context
def list_command(ctx: click.Context, namespace: str | None, all_namespaces: bool, output: str) -> None:
    """List DaskClusters: phase, desired and ready workers, age, and the dashboard link when one works from here
    (a LoadBalancer or NodePort Service; for a ClusterIP one, use `dask kube port-forward NAME`)."""
    if all_namespaces and namespace:
        raise click.UsageError("give either --namespace or --all-namespaces")

    async def run(api: kr8s.asyncio.Api, ns: str) -> tuple[str, list[discovery.ClusterSummary]]:
        where = discovery.ALL_NAMESPACES if all_namespaces else ns
        return ns, await discovery.list_clusters(api, where)

    ns, clusters = _with_api(_target(ctx), run, namespace=namespace)
    if output != "table":
        _dump([c.to_dict() for c in clusters], output)
        return
    if not clusters:
        click.echo("No DaskClusters found" + ("." if all_namespaces else f" in namespace {ns}."))
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    columns = ["NAMESPACE"] * all_namespaces + ["NAME", "PHASE", "WORKERS", "READY", "AGE", "DASHBOARD"]
    for column in columns:
        table.add_column(column, no_wrap=True)
    now = datetime.datetime.now(datetime.UTC)
    for c in clusters:
        table.add_row(*[c.namespace] * all_namespaces, c.name, c.phase or "-", str(c.desired_workers),
                      str(c.ready_workers), format_age(c.age(now)), c.dashboard or "-")
    _console().print(table)


@main.command("scale", epilog="""\b
Examples:
  dask kube scale demo 10
  dask kube scale demo 0 --worker-group highmem -n team-a""")
@click.argument("name")
@click.argument("n", type=click.IntRange(min=0), metavar="N")
@click.option("--worker-group", default=naming.DEFAULT_WORKER_GROUP, show_default=True, metavar="G",
              help="Worker group to scale (one added with KubeCluster.add_worker_group).")
@namespace_option
@click.pass_context
def scale_command(ctx: click.Context, name: str, n: int, worker_group: str, namespace: str | None) -> None:
    """Set the number of workers of cluster NAME to N and return (the operator does the rest; `dask kube list`
    shows the workers becoming ready). A DaskAutoscaler on that group is removed: the size is now fixed."""
    for line in _with_api(_target(ctx), scale_cluster, name, n, worker_group, namespace=namespace):
        click.echo(line)


@main.command("port-forward", epilog="""\b
Examples:
  dask kube port-forward demo
  dask kube port-forward demo -n team-a --port 8787""")
@click.argument("name")
@namespace_option
@click.option("--port", type=click.IntRange(1, 65535), default=None, metavar="P",
              help="Local port of the dashboard (default: any free port).")
@click.pass_context
def port_forward_command(ctx: click.Context, name: str, namespace: str | None, port: int | None) -> None:
    """Forward the scheduler and dashboard of cluster NAME to 127.0.0.1 until Ctrl+C.

    Each connection opens a fresh forward to the scheduler pod running at that moment, so a restarted scheduler
    pod or API server breaks connections but not the forward: clients reconnect to the same address."""

    def ready(fwd: Forwarding) -> None:
        if fwd.phase != "Running":
            click.echo(f"Cluster {fwd.namespace}/{fwd.cluster} is {fwd.phase or 'not yet reconciled'}; "
                       "connections succeed once its scheduler runs.", err=True)
        click.echo(f"Scheduler at: {fwd.scheduler_address}")
        if fwd.tls_secret:
            click.echo(f"TLS: connect with the certificates of Secret {fwd.namespace}/{fwd.tls_secret} "
                       "(docs/security.md)", err=True)
        click.echo(f"Dashboard at: {fwd.dashboard_link}")
        if fwd.jupyter_link:
            click.echo(f"Jupyter at:   {fwd.jupyter_link}")
        click.echo("Forwarding; press Ctrl+C to stop.", err=True)

    async def run(api: kr8s.asyncio.Api, ns: str) -> None:
        await port_forward(api, ns, name, ready, port, stop=until_signalled())

    try:
        _with_api(_target(ctx), run, namespace=namespace)
    except KeyboardInterrupt:
        pass
    click.echo("Shutting down port-forward", err=True)


@main.command("logs", epilog="""\b
Examples:
  dask kube logs demo                       # every pod of the cluster
  dask kube logs demo --scheduler -f        # follow the scheduler until Ctrl+C
  dask kube logs demo --worker-group default --tail 20""")
@click.argument("name")
@click.option("--scheduler", is_flag=True, help="Only the scheduler's log.")
@click.option("--worker-group", metavar="G", default=None, help="Only the workers of this group.")
@click.option("-f", "--follow", is_flag=True, help="Stream the logs until Ctrl+C (lines prefixed with [pod]).")
@click.option("--tail", type=click.IntRange(min=0), default=None, metavar="N", help="Last N lines of each pod.")
@namespace_option
@click.pass_context
def logs_command(ctx: click.Context, name: str, scheduler: bool, worker_group: str | None, follow: bool,
                 tail: int | None, namespace: str | None) -> None:
    """Print the logs of the pods of cluster NAME."""
    if scheduler and worker_group:
        raise click.UsageError("give either --scheduler or --worker-group")

    async def run(api: kr8s.asyncio.Api, ns: str) -> int:
        return await cluster_logs(api, ns, name, click.echo, scheduler=scheduler, worker_group=worker_group,
                                  follow=follow, tail=tail, stop=until_signalled() if follow else None)

    try:
        count = _with_api(_target(ctx), run, namespace=namespace)
    except KeyboardInterrupt:
        return
    if count == 0:
        which = "scheduler" if scheduler else f"worker group {worker_group}" if worker_group else "cluster"
        click.echo(f"No pods of the {which} of {name} exist (yet); `dask kube list` shows the cluster's phase.",
                   err=True)


@main.command("delete", epilog="""\b
Examples:
  dask kube delete demo
  dask kube delete demo -n team-a --no-wait""")
@click.argument("name")
@namespace_option
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Return only once the cluster and its pods are gone.")
@click.option("--timeout", type=click.FloatRange(min=1), default=120, show_default=True,
              help="Seconds to wait with --wait.")
@click.pass_context
def delete_command(ctx: click.Context, name: str, namespace: str | None, wait: bool, timeout: float) -> None:
    """Delete cluster NAME: its scheduler, workers, worker groups and autoscaler go with it."""
    _with_api(_target(ctx), delete_cluster, name, wait, timeout, namespace=namespace)
    click.echo(f"DaskCluster {name} " + ("deleted" if wait else "deletion requested"))


@main.command("install", epilog="""\b
Examples:
  dask kube install --dry-run
  dask kube install                                   # the CRDs only
  dask kube install --manifests deploy/manifests/     # CRDs, namespace, RBAC and the operator Deployment""")
@click.option("--manifests", "paths", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="A YAML file or a directory of them to apply instead of the CRDs packaged with dask_kube "
                   "(repeatable).")
@click.option("--dry-run", is_flag=True, help="Print what would be applied; change nothing.")
@click.pass_context
def install_command(ctx: click.Context, paths: tuple[Path, ...], dry_run: bool) -> None:
    """Apply the dask_kube CRDs (kubernetes.dask.org/v1) or the given manifests to the cluster: each object is
    created, or updated when it exists; then wait until the CRDs are served. The operator itself comes with
    `--manifests deploy/manifests/` or the Helm chart (docs/install.md)."""
    try:
        docs = load_manifests(paths or [PACKAGED_CRDS])
    except SpecError as err:
        raise click.BadParameter(err.message, param_hint="--manifests") from None
    if dry_run:
        for doc in docs:
            click.echo(f"{describe(doc)} (dry run)")
        return

    async def run(api: kr8s.asyncio.Api, namespace: str) -> None:
        await apply_manifests(api, docs, click.echo)

    _with_api(_target(ctx), run)


def install_packaged_crds(kubeconfig: Path) -> None:
    """What `local up` applies to its fresh LocalKube: the packaged CRDs, quietly."""
    _with_api(Target(str(kubeconfig), None), lambda api, ns: apply_manifests(api, load_manifests([PACKAGED_CRDS]),
                                                                             lambda line: None))


@main.group("local", help="""A local Kubernetes (LocalKube: pods run as processes on this machine) with the CRDs and
the operator, in the background: for trying dask_kube without a cluster.

\b
Example:
  dask kube local up
  export KUBECONFIG=~/.cache/dask-kube/kubeconfig
  python -c 'from dask_kube import KubeCluster; print(KubeCluster(name="demo", n_workers=2))'
  dask kube local down""")
def local() -> None:
    pass


state_dir_option = click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                                help="Where the kubeconfig, pidfile and logs go (default: ~/.cache/dask-kube).")


@local.command("up")
@click.option("--kubeconfig", "kubeconfig_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="PATH", help="Where to write the kubeconfig (default: STATE_DIR/kubeconfig).")
@click.option("--simulate-pods", is_flag=True,
              help="Pods become Running without running anything (for trying manifests, not computations).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="A LocalKube cluster configuration file: nodes (GPU nodes, taints), image "
                                   "mappings, ports, version (see LocalKube's README).")
@state_dir_option
def local_up(kubeconfig_path: Path | None, simulate_pods: bool, config_path: Path | None,
             state_dir: Path | None) -> None:
    """Start LocalKube and the operator in the background and print the kubeconfig to use."""
    try:
        started = cli_local.up(state_dir or cli_local.default_state_dir(), install_packaged_crds, kubeconfig_path,
                               simulate_pods=simulate_pods, config=config_path)
    except cli_local.LocalKubeError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"LocalKube (pid {started.localkube_pid}) and the dask_kube operator (pid {started.operator_pid}) "
               f"are running; logs in {started.state_dir}.")
    click.echo(f"export KUBECONFIG={started.kubeconfig}")


@local.command("down")
@state_dir_option
def local_down(state_dir: Path | None) -> None:
    """Stop what `dask kube local up` started (every pod process with it)."""
    try:
        stopped = cli_local.down(state_dir or cli_local.default_state_dir())
    except cli_local.LocalKubeError as err:
        raise click.ClickException(str(err)) from None
    click.echo("Stopped " + (" and ".join(stopped) if stopped else "nothing (it had already exited)") + ".")

