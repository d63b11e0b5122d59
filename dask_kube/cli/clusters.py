"""The commands on clusters: list, scale, port-forward, logs, delete.

Scale and delete are `dask_kube.cluster.operations`, as `KubeCluster.scale` and `close` use them; reading logs and
forwarding ports are this module's operations, plain async functions that print through the callables they are
given.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
import kr8s.asyncio
from kr8s.asyncio.objects import Pod

from .. import discovery, kubernetes_api, naming, specs
from ..cluster import operations
from ..port_forward import SchedulerForward
from .shell import (
    OUTPUTS,
    console,
    dump,
    format_age,
    namespace_option,
    target,
    until_signalled,
    with_api,
)

# -- operations ----------------------------------------------------------------------------------------------------


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
    await operations.get_cluster(api, namespace, name)
    selector = _log_selector(name, scheduler, worker_group)
    pods = sorted(await kubernetes_api.list_objects(Pod, namespace, api, selector), key=_pod_order)
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
        streams: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(stream(pod) for pod in pods)))
        stopped: asyncio.Future[Any] = asyncio.ensure_future((stop or asyncio.Event()).wait())
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

    The forwarder is the one KubeCluster and the operator use (`dask_kube.port_forward.SchedulerForward`): each new
    connection opens a fresh port-forward to whichever scheduler pod runs then, so it survives a replaced scheduler.
    """
    from distributed.utils import format_dashboard_link

    cluster = await operations.get_cluster(api, namespace, name)
    containers = (((cluster.raw.get("spec") or {}).get("scheduler") or {}).get("spec") or {}).get("containers") or []
    comm_port, dashboard_port_remote = naming.scheduler_ports(containers)
    jupyter = any("--jupyter" in (c.get("args") or []) + (c.get("command") or []) for c in containers)
    comm = SchedulerForward(api, namespace, name, comm_port)
    dashboard = SchedulerForward(api, namespace, name, dashboard_port_remote, local_port=dashboard_port)
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



# -- commands ------------------------------------------------------------------------------------------------------


@click.command("list", epilog="""\b
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

    ns, clusters = with_api(target(ctx), run, namespace)
    if output != "table":
        dump([c.to_dict() for c in clusters], output)
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
    console().print(table)


@click.command("scale", epilog="""\b
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
    for line in with_api(target(ctx), operations.scale, namespace, name, n, worker_group):
        click.echo(line)


@click.command("port-forward", epilog="""\b
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
        with_api(target(ctx), run, namespace)
    except KeyboardInterrupt:
        pass
    click.echo("Shutting down port-forward", err=True)


@click.command("logs", epilog="""\b
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
        count = with_api(target(ctx), run, namespace)
    except KeyboardInterrupt:
        return
    if count == 0:
        which = "scheduler" if scheduler else f"worker group {worker_group}" if worker_group else "cluster"
        click.echo(f"No pods of the {which} of {name} exist (yet); `dask kube list` shows the cluster's phase.",
                   err=True)


@click.command("delete", epilog="""\b
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
    async def run(api: kr8s.asyncio.Api, ns: str) -> None:
        await operations.get_cluster(api, ns, name)  # says what is missing: the cluster, or the CRDs
        await operations.delete(api, ns, name, timeout if wait else None)

    with_api(target(ctx), run, namespace)
    click.echo(f"DaskCluster {name} " + ("deleted" if wait else "deletion requested"))

