"""The shape every LocalKube controller shares: hear events synchronously, act on them in a task."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from localkube.apiserver.core import ApiCore
from localkube.apiserver.errors import ApiError
from localkube.apiserver.store import Event

log = logging.getLogger(__name__)


class Controller:
    """Subclasses implement `wants` (cheap filter, called inside the write) and `handle` (the reaction)."""

    def __init__(self, core: ApiCore) -> None:
        self.core = core
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def wants(self, event: Event) -> bool:
        return True

    def handle(self, event: Event | None) -> None:
        raise NotImplementedError

    def _on_event(self, event: Event) -> None:
        if self.wants(event):
            self._queue.put_nowait(event)

    def kick(self) -> None:
        """Ask for a pass without an event (periodic resyncs, faults)."""
        self._queue.put_nowait(None)

    def start(self) -> None:
        self.core.store.add_listener(self._on_event)
        self._task = asyncio.create_task(self._run(), name=type(self).__name__)

    async def stop(self) -> None:
        self.core.store.remove_listener(self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                self.handle(event)
            except ApiError as err:  # a lost race with another writer: the next event converges
                log.debug("%s: %s", type(self).__name__, err.message)
            except Exception:
                log.exception("%s failed handling %s", type(self).__name__, event and event.type)
            # Yield so a burst of events never starves the HTTP server.
            await asyncio.sleep(0)
