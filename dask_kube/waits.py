"""Bounded waits on Kubernetes objects, through watches, that say why when they time out.

`wait_for` refreshes once, then follows a watch (re-established when the server ends it or the connection drops)
until a predicate holds, under one deadline; past it, it raises what `explain` builds. KubeCluster, legacy mode and
the CLI wait this way, and delete this way (`delete_and_wait`), so that each returns only once what it promised is
true, or says what is in the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
import kr8s
from kr8s.asyncio.objects import APIObject

from . import kubernetes_api

log = logging.getLogger(__name__)
Raw = Mapping[str, Any]
T = TypeVar("T", bound=APIObject)
# What interrupts a watch without meaning anything: an API server restart, a dropped connection.
TRANSIENT = (httpx.TransportError, kr8s.ServerError, OSError)
Explain = Callable[[T], Awaitable[BaseException]]


async def wait_for(obj: T, done: Callable[[Raw | None], bool], within: float | None,
                   explain: Explain[T] | None = None, on_change: Callable[[Raw | None], None] | None = None) -> T:
    """Wait until `done(obj.raw)` (or `done(None)` once the object is gone), for at most `within` seconds
    (None: until cancelled, for background followers). `obj.raw` follows the object meanwhile."""
    api = obj.api
    assert api is not None
    try:
        async with asyncio.timeout(within):
            while True:
                try:
                    try:
                        await obj.refresh()
                        raw: Raw | None = obj.raw
                    except kr8s.NotFoundError:
                        raw = None
                    if on_change:
                        on_change(raw)
                    if done(raw):
                        return obj
                    since = raw["metadata"].get("resourceVersion") if raw else None
                    # aclosing: the watch's stream is closed here, in this task, not later by the garbage collector.
                    async with contextlib.aclosing(api.async_watch(
                            type(obj), namespace=obj.namespace, field_selector=f"metadata.name={obj.name}",
                            since=since)) as events:
                        async for event, new in events:
                            raw = None if event == "DELETED" else new.raw
                            if raw is not None:
                                obj.raw = raw
                            if on_change:
                                on_change(raw)
                            if done(raw):
                                return obj
                except TRANSIENT as err:
                    log.debug("watch of %s %s interrupted: %s", obj.kind, obj.name, err)
                    await asyncio.sleep(0.5)
    except TimeoutError:
        if explain is None:
            raise TimeoutError(f"{obj.kind} {obj.namespace}/{obj.name}: condition not met within {within}s") from None
        raise await explain(obj) from None


def _absent(raw: Raw | None) -> bool:
    return raw is None


async def delete_and_wait(obj: T, within: float, explain: Explain[T] | None = None,
                          propagation_policy: str | None = None,
                          accepted: Callable[[], Awaitable[None]] | None = None) -> bool:
    """Delete the object and return once the API server no longer has it; whether it existed. With `Foreground`
    propagation, that is once its dependents (pods, Services) are gone too. `accepted` runs once the deletion is
    under way (the object existed), before the wait."""
    existed = await kubernetes_api.delete(obj, propagation_policy=propagation_policy)
    if existed and accepted is not None:
        await accepted()
    await wait_for(obj, _absent, within, explain=explain)
    return existed
