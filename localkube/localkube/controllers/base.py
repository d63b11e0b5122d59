"""The shape every LocalKube controller shares: hear events synchronously, act on them in a task."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Iterable

from localkube.apiserver.core import ApiCore
from localkube.apiserver.errors import ApiError
from localkube.apiserver.store import Event

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


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


class KeyedController(Controller):
    """Coalesces events into a set of dirty objects, each synced once per pass."""

    watched: tuple[str, str] = ("", "")

    def __init__(self, core: ApiCore) -> None:
        super().__init__(core)
        self._dirty: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def keys_for(self, event: Event) -> Iterable[Key]:
        raise NotImplementedError

    def sync(self, namespace: str, name: str) -> None:
        raise NotImplementedError

    def mark(self, key: Key) -> None:
        if not self._dirty:
            self.kick()
        self._dirty.add(key)

    def _on_event(self, event: Event) -> None:
        for key in self.keys_for(event):
            self.mark(key)

    def start(self) -> None:
        for obj in self.core.store.list(self.watched):
            self.mark((obj["metadata"]["namespace"], obj["metadata"]["name"]))
        super().start()

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await super().stop()

    def sync_later(self, key: Key, delay: float) -> None:
        """Look at `key` again after `delay` seconds (time-based transitions: minReadySeconds, deadlines)."""
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(max(delay, 0.05), self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.mark(key)

    def handle(self, event: Event | None) -> None:
        keys = sorted(self._dirty)
        self._dirty.clear()
        for namespace, name in keys:
            try:
                self.sync(namespace, name)
            except ApiError as err:  # lost a race (object gone, namespace terminating): the next event converges
                log.debug("%s %s/%s: %s", type(self).__name__, namespace, name, err.message)

    def now(self) -> dt.datetime:
        return self.core.clock()
