"""dask-ctl discovery (`dask_kube.discovery.discover`) over several namespaces."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from dask_kube import KubeCluster, discovery

from .helpers import ok


@pytest.fixture
def other_namespace(kube) -> Iterator[str]:  # type: ignore[no-untyped-def]
    name = f"t-{uuid.uuid4().hex[:10]}"
    code, body = kube.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                              "metadata": {"name": name}})
    assert code == 201, body
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


async def test_discover_finds_clusters_of_every_namespace(crds, kube, namespace, other_namespace) -> None:  # type: ignore[no-untyped-def]
    for ns, name in ((namespace, "same"), (other_namespace, "same"), (other_namespace, "other")):
        kube.kubectl("apply", "-f", "-", input=ok("gen", "cluster", "--name", name, "--n-workers", "0",
                                                 "--image", "any", "-n", ns))
    found = [item async for item in discovery.discover()]
    mine = sorted(name for name, _ in found if name.split("/")[0] in (namespace, other_namespace))
    assert mine == sorted([f"{namespace}/same", f"{other_namespace}/other", f"{other_namespace}/same"])
    assert all(cls is KubeCluster for _, cls in found)
    for ns in (namespace, other_namespace):
        kube.kubectl("delete", "daskclusters", "--all", "-n", ns, "--wait=false")
