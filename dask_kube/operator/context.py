"""Everything a reconciler needs, built once at operator start-up and handed over explicitly.

Nothing here is per object: what a loop remembers about its object lives in that loop (see handlers.py), and
the two registries below (wake events, scheduler connections) drop an object's entry when its loop ends. `held`
counts them, for the operator's probe and the test that creates and deletes hundreds of clusters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import kubernetes_api, naming
from ..kinds import DaskAutoscaler, DaskCluster, DaskJob, DaskWorkerGroup
from ..naming import Reason
from . import metrics, spec_check
from .cache import Cache
from .loops import Loops
from .objects import Objects
from .plan import Key
from .scheduler_rpc import DistributedSchedulerRPC
from .settings import OperatorSettings

KINDS_BY_PLURAL = {naming.PLURALS[cls.kind]: cls for cls in (DaskCluster, DaskWorkerGroup, DaskJob, DaskAutoscaler)}
# What the operator watches (handlers.py), and so reads from its cache.
WATCHED_KINDS = (*(cls.kind for cls in KINDS_BY_PLURAL.values()), "Pod", "Service")


@dataclass
class OperatorContext:
    settings: OperatorSettings
    objects: Objects
    scheduler: DistributedSchedulerRPC
    loops: Loops
    cache: Cache
    vouched: spec_check.Vouched = field(default_factory=spec_check.Vouched)  # see spec_check.Vouched

    @classmethod
    async def create(cls, settings: OperatorSettings) -> OperatorContext:
        api = await kubernetes_api.client()
        api.timeout = settings.request_timeout  # kr8s waits forever by default: a silent connection would hang us
        cache = Cache(WATCHED_KINDS)
        objects = Objects(api, settings, cache)
        ctx = cls(settings=settings, objects=objects, scheduler=DistributedSchedulerRPC(settings, objects),
                  loops=Loops(settings.resync_seconds, settings.resync_max_seconds), cache=cache)
        ctx.loops.report = ctx.report_failure
        return ctx

    async def report_failure(self, key: Key, err: Exception) -> str | None:
        """Explain a failed pass in one line (see loops.Report). For lack of permission, also say so on the
        resource (a Warning Event naming the verb and resource the operator's service account misses), since its
        status may never get past the failing step. An API server that does not answer needs no Event: the
        objects cannot be written anyway, and the pass is retried."""
        outage = kubernetes_api.outage_message(err)
        if outage is not None:
            return outage
        message = kubernetes_api.denied_message(err)
        if message is None:
            return None
        plural, namespace, name = key
        obj = await self.objects.get(KINDS_BY_PLURAL[plural], name, namespace)
        if obj is not None:
            await self.objects.event(obj, Reason.FORBIDDEN, f"the operator is not allowed to do this: {message}",
                                     warning=True)
        return f"forbidden: {message}"

    def held(self) -> dict[str, dict[str, int]]:
        """What the operator keeps per object, by namespace: running loops, scheduler connections, cached objects
        and metric series of clusters and worker groups. An object's entries go when its loop ends (kopf ends it when
        the object is deleted) and when its watch reports it deleted."""
        out: dict[str, dict[str, int]] = {}
        for namespace, count in self.loops.held().items():
            out.setdefault(namespace, {})["loops"] = count
        for namespace, count in self.scheduler.held().items():
            out.setdefault(namespace, {})["scheduler_connections"] = count
        for namespace, count in self.cache.held().items():
            out.setdefault(namespace, {})["cached_objects"] = count
        for namespace, count in metrics.held().items():
            out.setdefault(namespace, {})["metric_series"] = count
        return out

    async def close(self) -> None:
        await self.scheduler.close()
