"""Everything a reconciler needs, built once at operator start-up and handed over explicitly."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import kr8s.asyncio

from .access import DistributedSchedulerRPC, SchedulerRPC
from .kube import Kube
from .loops import Loops
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
        return cls(settings=settings, kube=Kube(api, settings), scheduler=DistributedSchedulerRPC(settings, api),
                   loops=Loops(settings.resync_seconds, settings.resync_max_seconds))

    async def close(self) -> None:
        close = getattr(self.scheduler, "close", None)
        if close is not None:
            await close()
