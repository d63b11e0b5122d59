"""Finding Dask clusters on Kubernetes: the summaries `dask kube list` shows, and dask-ctl's discovery hook.

`discover()` is registered on the `dask_cluster_discovery` entry point. It yields every DaskCluster in every
namespace the kubeconfig may list, named `namespace/name` so that two clusters of the same name in different
namespaces stay apart; `KubeCluster.from_name` takes that form back. A cluster without the dask_kube CRDs has no Dask
clusters, so discovery yields nothing there; any other failure (no kubeconfig, an unreachable or refusing API
server) propagates. dask-ctl loads the entry point whenever it starts, so this module imports nothing heavy until
one of its functions runs.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from . import naming
from .errors import CRDsNotInstalledError, KubeconfigError  # noqa: F401  (raised by discover; caught by name)

if TYPE_CHECKING:
    import kr8s.asyncio

# kr8s.ALL, spelled out: `discover` is an entry point that dask-ctl loads, and this module imports nothing heavy
# (kr8s, httpx, distributed) until a function runs.
ALL_NAMESPACES = "all"


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


async def _dashboards(api: kr8s.asyncio.Api, namespace: str) -> dict[tuple[str, str], str]:
    """(namespace, cluster) -> dashboard link, for scheduler Services reachable from here without a forward."""
    from distributed.utils import format_dashboard_link
    from kr8s.asyncio.objects import Service

    from . import kubernetes_api
    from .cluster import networking  # the client's own rules for "reachable from here"

    links: dict[tuple[str, str], str] = {}
    services = await kubernetes_api.list_objects(Service, namespace, api,
                                                 {naming.COMPONENT_LABEL: naming.Component.SCHEDULER})
    for service in services:
        meta = service.raw["metadata"]
        cluster = (meta.get("labels") or {}).get(naming.CLUSTER_LABEL)
        if not cluster:
            continue
        if (service.raw.get("spec") or {}).get("type", "ClusterIP") == "ClusterIP" and not networking.in_cluster():
            continue
        endpoint = await networking.direct_endpoint(api, service.raw)
        if endpoint is not None and endpoint.dashboard_port:
            links[(meta["namespace"], cluster)] = format_dashboard_link(endpoint.host, endpoint.dashboard_port)
    return links


async def list_clusters(api: kr8s.asyncio.Api, namespace: str = ALL_NAMESPACES,
                        dashboards: bool = True) -> list[ClusterSummary]:
    """The DaskClusters of `namespace` (every namespace by default), sorted by namespace and name.

    Raises `CRDsNotInstalledError` when the API server does not serve DaskClusters.
    """
    import kr8s

    from . import kubernetes_api
    from .kinds import DaskCluster

    try:
        clusters = await kubernetes_api.list_objects(DaskCluster, namespace, api)
    except kr8s.ServerError as err:
        if not kubernetes_api.is_not_found(err):
            raise
        raise CRDsNotInstalledError() from None
    links = await _dashboards(api, namespace) if dashboards and clusters else {}
    summaries = [summarize(c.raw, links.get((c.raw["metadata"]["namespace"], c.name))) for c in clusters]
    return sorted(summaries, key=lambda s: (s.namespace, s.name))


async def discover() -> AsyncIterator[tuple[str, type]]:
    """dask-ctl's discovery hook: `("namespace/name", KubeCluster)` for every DaskCluster in every namespace."""
    from . import kubernetes_api
    from .cluster import KubeCluster

    async with kubernetes_api.private_client() as api:
        try:
            clusters = await list_clusters(api, ALL_NAMESPACES, dashboards=False)
        except CRDsNotInstalledError:
            return
    for summary in clusters:
        yield summary.qualified_name, KubeCluster
