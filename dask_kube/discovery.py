"""Finding Dask clusters on Kubernetes: the summaries `dask kube list` shows, and dask-ctl's discovery hook.

`discover()` is registered on the `dask_cluster_discovery` entry point. It yields every DaskCluster in every
namespace the kubeconfig may list, named `namespace/name` so that two clusters of the same name in different
namespaces stay apart; `KubeCluster.from_name` takes that form back. A cluster without the dask_kube CRDs has no Dask
clusters, so discovery yields nothing there; any other failure (no kubeconfig, an unreachable or refusing API
server) propagates.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import kr8s
from distributed.utils import format_dashboard_link
from kr8s.asyncio.objects import Service

from . import naming
from .errors import CRDsNotInstalledError, DaskKubeError
from .resources import DaskCluster

ALL_NAMESPACES = kr8s.ALL
INSTALL_HINT = ("the kubernetes.dask.org resources (DaskCluster, ...) are not installed in this Kubernetes cluster. "
                "Install them with `dask kube install` (and the operator: docs/install.md), or start a local "
                "Kubernetes that has both with `dask kube local up`.")


class KubeconfigError(DaskKubeError, RuntimeError):
    """No usable kubeconfig (or in-cluster service account), or its API server does not answer."""


@contextlib.asynccontextmanager
async def connect(kubeconfig: str | None = None, context: str | None = None) -> AsyncIterator[kr8s.asyncio.Api]:
    """A kr8s `Api` of its own for the running event loop, closed on exit.

    kr8s' `api()` factory caches clients by thread and event-loop id; a short-lived loop (each CLI command, each
    dask-ctl call) may get the id of one that is closed, and with it a dead HTTP session. A private client avoids
    that, and `kubeconfig`/`context` choose the cluster as kubectl's flags do.
    """
    api = kr8s.asyncio.Api(bypass_factory=True, kubeconfig=kubeconfig, context=context)
    try:
        await api
    except ValueError as err:  # kr8s: "Unable to find valid credentials", or an unknown context
        where = f"in {kubeconfig}" if kubeconfig else "(KUBECONFIG, ~/.kube/config or a service account)"
        raise KubeconfigError(f"no usable Kubernetes credentials {where}: {err}") from None
    except (httpx.TransportError, OSError) as err:
        raise KubeconfigError(f"the Kubernetes API server at {api.auth.server} does not answer: {err}") from None
    try:
        yield api
    finally:
        session = getattr(api, "_session", None)
        if session is not None:
            with contextlib.suppress(RuntimeError, httpx.HTTPError):
                await session.aclose()


@dataclass(frozen=True)
class ClusterSummary:
    """One DaskCluster as `dask kube list` shows it."""

    namespace: str
    name: str
    phase: str | None
    desired_workers: int
    ready_workers: int
    created: str | None  # RFC 3339, from metadata.creationTimestamp
    dashboard: str | None  # a link that works from here, when the Service offers one (LoadBalancer, NodePort)

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    def age(self, now: datetime.datetime | None = None) -> datetime.timedelta | None:
        if not self.created:
            return None
        created = datetime.datetime.fromisoformat(self.created.replace("Z", "+00:00"))
        return (now or datetime.datetime.now(datetime.UTC)) - created

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(raw: Mapping[str, Any], dashboard: str | None = None) -> ClusterSummary:
    meta = raw["metadata"]
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    return ClusterSummary(
        namespace=meta.get("namespace", ""),
        name=meta["name"],
        phase=status.get("phase"),
        desired_workers=int((spec.get("worker") or {}).get("replicas", 1)),
        ready_workers=int(status.get("readyReplicas") or 0),
        created=meta.get("creationTimestamp"),
        dashboard=dashboard,
    )


def status_code(err: kr8s.ServerError) -> int | None:
    return err.response.status_code if err.response is not None else None


async def crds_installed(api: kr8s.asyncio.Api) -> bool:
    async with api.call_api("GET", version=naming.API_VERSION, url=naming.PLURALS[naming.DASKCLUSTER],
                            params={"limit": 1}, raise_for_status=False) as resp:
        return bool(resp.status_code != 404)


async def _dashboards(api: kr8s.asyncio.Api, namespace: str) -> dict[tuple[str, str], str]:
    """(namespace, cluster) -> dashboard link, for scheduler Services reachable from here without a forward."""
    from .cluster import networking  # the client's own rules for "reachable from here"

    links: dict[tuple[str, str], str] = {}
    services = [s async for s in api.async_get(Service, namespace=namespace,
                                               label_selector={naming.COMPONENT_LABEL: naming.Component.SCHEDULER})]
    for service in services:
        cluster = (service.raw["metadata"].get("labels") or {}).get(naming.CLUSTER_LABEL)
        if not cluster:
            continue
        if (service.raw.get("spec") or {}).get("type", "ClusterIP") == "ClusterIP" and not networking.in_cluster():
            continue
        endpoint = await networking.direct_endpoint(api, service.raw)
        if endpoint is not None and endpoint.dashboard_port:
            links[(service.namespace, cluster)] = format_dashboard_link(endpoint.host, endpoint.dashboard_port)
    return links


async def list_clusters(api: kr8s.asyncio.Api, namespace: str = ALL_NAMESPACES,
                        dashboards: bool = True) -> list[ClusterSummary]:
    """The DaskClusters of `namespace` (every namespace by default), sorted by namespace and name.

    Raises `CRDsNotInstalledError` when the API server does not serve DaskClusters.
    """
    try:
        clusters = [c async for c in api.async_get(DaskCluster, namespace=namespace)]
    except kr8s.ServerError as err:
        if status_code(err) != 404:
            raise
        raise CRDsNotInstalledError(INSTALL_HINT) from None
    links = await _dashboards(api, namespace) if dashboards and clusters else {}
    summaries = [summarize(c.raw, links.get((c.namespace, c.name))) for c in clusters]
    return sorted(summaries, key=lambda s: (s.namespace, s.name))


async def discover() -> AsyncIterator[tuple[str, type]]:
    """dask-ctl's discovery hook: `("namespace/name", KubeCluster)` for every DaskCluster in every namespace."""
    from .cluster import KubeCluster

    async with connect() as api:
        try:
            clusters = await list_clusters(api, ALL_NAMESPACES, dashboards=False)
        except CRDsNotInstalledError:
            return
    for summary in clusters:
        yield summary.qualified_name, KubeCluster
