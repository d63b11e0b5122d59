"""kr8s classes of the four Dask kinds, and of the Lease kr8s lacks (async: the product uses `kr8s.asyncio` only)."""

from __future__ import annotations

from kr8s.asyncio.objects import APIObject

from . import naming


class DaskCluster(APIObject):
    version = naming.API_VERSION
    endpoint = naming.PLURALS[naming.DASKCLUSTER]
    kind = naming.DASKCLUSTER
    plural = naming.PLURALS[naming.DASKCLUSTER]
    singular = "daskcluster"
    namespaced = True
    scalable = True
    scalable_spec = "worker.replicas"


class DaskWorkerGroup(APIObject):
    version = naming.API_VERSION
    endpoint = naming.PLURALS[naming.DASKWORKERGROUP]
    kind = naming.DASKWORKERGROUP
    plural = naming.PLURALS[naming.DASKWORKERGROUP]
    singular = "daskworkergroup"
    namespaced = True
    scalable = True
    scalable_spec = "worker.replicas"


class DaskJob(APIObject):
    version = naming.API_VERSION
    endpoint = naming.PLURALS[naming.DASKJOB]
    kind = naming.DASKJOB
    plural = naming.PLURALS[naming.DASKJOB]
    singular = "daskjob"
    namespaced = True


class DaskAutoscaler(APIObject):
    version = naming.API_VERSION
    endpoint = naming.PLURALS[naming.DASKAUTOSCALER]
    kind = naming.DASKAUTOSCALER
    plural = naming.PLURALS[naming.DASKAUTOSCALER]
    singular = "daskautoscaler"
    namespaced = True


class Lease(APIObject):
    """coordination.k8s.io/v1 Lease: what a cluster's clients renew (docs/kubecluster.md, "Client leases")."""

    version = "coordination.k8s.io/v1"
    endpoint = "leases"
    kind = "Lease"
    plural = "leases"
    singular = "lease"
    namespaced = True
