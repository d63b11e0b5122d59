"""The operator's I/O edge keeps bodies as plain dicts: a kr8s object deep-copies its body into a `Box` (about
0.5 ms a pod), which made a pass over a 1,000-worker group cost half a second of CPU and doubled the operator's
memory. Reads hand out the cache's own bodies; creates and status writes store the API server's answer as is."""

from __future__ import annotations

from kr8s.asyncio.objects import Pod

from dask_kube import kubernetes_api, specs
from dask_kube.kinds import DaskCluster
from dask_kube.operator.cache import Cache
from dask_kube.operator.objects import Objects
from dask_kube.operator.settings import OperatorSettings

SIMULATED = {"localkube.dask.org/simulate": "true"}  # Running with no process: nothing here needs one


def _pod(name: str, namespace: str) -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "io"}, "annotations": SIMULATED},
            "spec": {"containers": [{"name": "c", "image": "python", "command": ["python", "-c", "pass"]}]}}


async def test_creates_lists_and_status_writes_stay_plain_dicts(kube, crds, namespace) -> None:  # type: ignore[no-untyped-def]
    async with kubernetes_api.private_client(str(kube.kubeconfig)) as api:
        cache = Cache(["Pod", "DaskCluster"])
        objects = Objects(api, OperatorSettings(), cache)

        created = await objects.create(_pod("io-a", namespace))
        assert type(created) is dict and created["metadata"]["uid"]
        held = cache.get("Pod", namespace, "io-a")
        assert type(held) is dict and held["spec"] is created["spec"]  # the answer itself (less managedFields)
        again = await objects.create(_pod("io-a", namespace))  # 409: the existing object, read back
        assert type(again) is dict and again["metadata"]["uid"] == created["metadata"]["uid"]

        listed = await objects.list(Pod, namespace, {"app": "io"})
        assert [type(p) for p in listed] == [dict] and listed[0] is cache.get("Pod", namespace, "io-a")

        body = specs.make_cluster_spec("io", n_workers=0)
        body["metadata"]["namespace"] = namespace
        cluster = DaskCluster(await objects.create(body), api=api)
        assert await objects.patch_status(cluster, {"phase": "Pending"})
        held = cache.get("DaskCluster", namespace, "io")
        assert held is not None and type(held) is dict and held["status"]["phase"] == "Pending"
        assert int(held["metadata"]["resourceVersion"]) > int(cluster.raw["metadata"]["resourceVersion"])
        assert not await objects.patch_status(DaskCluster(held, api=api), {"phase": "Pending"}), "no change, no write"

        rejected = await objects.dry_run({**_pod("io-b", namespace), "spec": {"containers": [{"name": "c"}]}})
        assert rejected is not None and "image" in rejected
        assert await objects.dry_run(_pod("io-b", namespace)) is None
        assert cache.get("Pod", namespace, "io-b") is None  # a dry run creates nothing
