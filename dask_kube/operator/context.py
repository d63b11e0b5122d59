"""Everything a reconciler needs, built once at operator start-up and handed over explicitly."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import kr8s.asyncio

from .. import naming, resources
from ..naming import Reason
from .access import DistributedSchedulerRPC, SchedulerRPC
from .kube import Kube, denied_message, outage_message
from .loops import Key, Loops
from .settings import OperatorSettings


@dataclass
class IdleClock:
    """Idleness measured on the operator's own clock: immune to skew between it and the scheduler."""

    since: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def idle_for(self, key: tuple[str, str], scheduler_idle_since: float | None) -> float:
        """Seconds this scheduler has been continuously idle, as far as the operator has seen."""
        if scheduler_idle_since is None:
            self.since.pop(key, None)
            return 0.0
        seen = self.since.get(key)
        if seen is None or seen[0] != scheduler_idle_since:
            self.since[key] = (scheduler_idle_since, time.monotonic())
            return 0.0
        return time.monotonic() - seen[1]


RESOURCES = {naming.PLURALS[cls.kind]: cls for cls in (
    resources.DaskCluster, resources.DaskWorkerGroup, resources.DaskJob, resources.DaskAutoscaler)}


@dataclass
class OperatorContext:
    settings: OperatorSettings
    kube: Kube
    scheduler: SchedulerRPC
    loops: Loops
    idle: IdleClock = field(default_factory=IdleClock)

    @classmethod
    async def create(cls, settings: OperatorSettings) -> OperatorContext:
        api = await kr8s.asyncio.api()
        api.timeout = settings.request_timeout  # kr8s waits forever by default: a silent connection would hang us
        ctx = cls(settings=settings, kube=Kube(api, settings), scheduler=DistributedSchedulerRPC(settings, api),
                  loops=Loops(settings.resync_seconds, settings.resync_max_seconds))
        ctx.loops.report = ctx.report_failure
        return ctx

    async def report_failure(self, key: Key, err: Exception) -> str | None:
        """Explain a failed pass in one line (see loops.Report). For lack of permission, also say so on the
        resource (a Warning Event naming the verb and resource the operator's service account misses), since its
        status may never get past the failing step. An API server that does not answer needs no Event: the
        objects cannot be written anyway, and the pass is retried."""
        outage = outage_message(err)
        if outage is not None:
            return outage
        message = denied_message(err)
        if message is None:
            return None
        plural, namespace, name = key
        obj = await self.kube.get(RESOURCES[plural], name, namespace)
        if obj is not None:
            await self.kube.event(obj, Reason.FORBIDDEN, f"the operator is not allowed to do this: {message}",
                                  warning=True)
        return f"forbidden: {message}"

    async def close(self) -> None:
        close = getattr(self.scheduler, "close", None)
        if close is not None:
            await close()
