"""Events as Kubernetes' own components post them: a repeat counts up one Event (count, lastTimestamp) instead of
creating another, even when several posters (two loops, two replicas) count the same Event at once."""

from __future__ import annotations

import asyncio
import dataclasses
import json

from dask_kube import kubernetes_api, specs
from dask_kube.kinds import DaskCluster
from dask_kube.operator.cache import Cache
from dask_kube.operator.objects import Objects
from dask_kube.operator.settings import OperatorSettings


def _events(kubectl, name: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    out = kubectl("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json").stdout
    return list(json.loads(out)["items"])


async def test_a_repeated_event_is_counted_on_one_object(kube, crds, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    async with kubernetes_api.private_client(str(kube.kubeconfig)) as api:
        cluster = DaskCluster(specs.make_cluster_spec("evented", n_workers=0), namespace=namespace, api=api)
        await cluster.create()
        settings = OperatorSettings(instance="replica-a")
        objects = Objects(api, settings, Cache(()))
        for _ in range(3):
            await objects.event(cluster, "WorkersUnschedulable", "0/1 nodes are available", warning=True)
        await objects.event(cluster, "WorkersUnschedulable", "0/2 nodes are available", warning=True)
        await objects.event(cluster, "ScaledUp", "0/1 nodes are available")  # same message, other reason
        # Another replica (after a leader change) and ten concurrent repeats: all counted on the same Event.
        other = Objects(api, dataclasses.replace(settings, instance="replica-b"), Cache(()))
        await asyncio.gather(*(o.event(cluster, "WorkersUnschedulable", "0/1 nodes are available", warning=True)
                               for o in [objects, other] * 5))

    events = _events(kubectl, "evented")
    counts = sorted((e["reason"], e["message"], e["count"]) for e in events)
    assert counts == [("ScaledUp", "0/1 nodes are available", 1),
                      ("WorkersUnschedulable", "0/1 nodes are available", 13),
                      ("WorkersUnschedulable", "0/2 nodes are available", 1)]
    repeated = next(e for e in events if e["count"] == 13)
    assert repeated["lastTimestamp"] >= repeated["firstTimestamp"] and repeated["type"] == "Warning"
    assert repeated["involvedObject"]["uid"] == cluster.metadata.uid
    assert repeated["source"] == {"component": "dask-kube-operator"}
    assert repeated["reportingInstance"] in ("replica-a", "replica-b")
    # kubectl describe aggregates by the count, as it does for the kubelet's and the scheduler's Events.
    described = kubectl("describe", "daskcluster", "evented").stdout
    assert "(x13 over" in described, described


async def test_an_event_on_a_recreated_object_starts_again(kube, crds, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    async with kubernetes_api.private_client(str(kube.kubeconfig)) as api:
        objects = Objects(api, OperatorSettings(instance="replica-a"), Cache(()))
        for _ in range(2):
            cluster = DaskCluster(specs.make_cluster_spec("again", n_workers=0), namespace=namespace, api=api)
            await cluster.create()
            await objects.event(cluster, "IdleTimeout", "idle for 3s")
            await objects.event(cluster, "IdleTimeout", "idle for 3s")
            await kubernetes_api.delete(cluster)
    events = _events(kubectl, "again")
    assert sorted(e["count"] for e in events) == [2, 2]  # one per uid: the old object's Event is not the new one's
    assert len({e["involvedObject"]["uid"] for e in events}) == 2
