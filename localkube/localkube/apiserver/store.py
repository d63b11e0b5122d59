"""Object storage with one global revision, a replay window and watch fan-out.

Like etcd behind a real API server: every write gets the next revision, which becomes the object's
`metadata.resourceVersion`; a bounded history lets watchers resume from a revision, and one that is too old
gets `410 Expired`. All methods are synchronous and run on the server's event loop, so a write and the fan-out
of its event are atomic with respect to every reader.

Stored objects are never mutated in place: a write stores a new dict. Callers that want to change an object
copy it first.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Key = tuple[str, str]  # (group, plural)
Predicate = Callable[[dict[str, Any]], bool]

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


class ExpiredError(Exception):
    """The requested resourceVersion has left the replay window."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")


@dataclass(frozen=True)
class Event:
    revision: int
    type: str
    key: Key
    namespace: str
    obj: dict[str, Any]
    old: dict[str, Any] | None = None


@dataclass(eq=False)
class Watcher:
    """A subscription to one resource (optionally one namespace) with a filter on the object."""

    key: Key
    namespace: str | None
    predicate: Predicate | None
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def offer(self, event: Event) -> None:
        """Queue what this watcher sees of `event`, translating selector entry and exit as a real server does."""
        if self.closed:
            return
        if event.key != self.key:
            return
        if self.namespace is not None and event.namespace != self.namespace:
            return
        out = translate(event, self.predicate)
        if out is not None:
            self.queue.put_nowait(out)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


def translate(event: Event, predicate: Predicate | None) -> tuple[str, dict[str, Any]] | None:
    """What a filtered watcher sees: objects entering the filter are ADDED, leaving it DELETED."""
    if predicate is None:
        return event.type, event.obj
    now = predicate(event.obj)
    if event.type == ADDED:
        return (ADDED, event.obj) if now else None
    before = predicate(event.old) if event.old is not None else False
    if event.type == DELETED:
        return (DELETED, event.obj) if (now or before) else None
    if now and before:
        return MODIFIED, event.obj
    if now:
        return ADDED, event.obj
    if before:
        return DELETED, event.obj
    return None


class Store:
    def __init__(self, history: int = 100_000) -> None:
        self.revision = 0
        self._objects: dict[Key, dict[tuple[str, str], dict[str, Any]]] = {}
        self._history: deque[Event] = deque(maxlen=history)
        self._compacted = 0  # newest revision known to be gone from history
        self._watchers: set[Watcher] = set()
        self._listeners: list[Callable[[Event], None]] = []

    # -- reads ---------------------------------------------------------------------------------------------

    def get(self, key: Key, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get(key, {}).get((namespace, name))

    def list(self, key: Key, namespace: str | None = None) -> list[dict[str, Any]]:
        items = self._objects.get(key, {})
        if namespace is None:
            return [items[k] for k in sorted(items)]
        return [obj for (ns, name), obj in sorted(items.items()) if ns == namespace]

    def keys(self) -> list[Key]:
        return [k for k, v in self._objects.items() if v]

    def all_objects(self) -> Iterator[tuple[Key, dict[str, Any]]]:
        for key, items in list(self._objects.items()):
            for obj in list(items.values()):
                yield key, obj

    def namespace_is_empty(self, namespace: str) -> bool:
        return not any(ns == namespace for items in self._objects.values() for (ns, _) in items)

    # -- writes --------------------------------------------------------------------------------------------

    def put(self, key: Key, obj: dict[str, Any], event_type: str) -> dict[str, Any]:
        """Store `obj` under the next revision (written into its metadata) and notify watchers."""
        meta = obj["metadata"]
        ident = (meta.get("namespace", ""), meta["name"])
        old = self._objects.get(key, {}).get(ident)
        self.revision += 1
        meta["resourceVersion"] = str(self.revision)
        self._objects.setdefault(key, {})[ident] = obj
        self._emit(Event(self.revision, event_type, key, ident[0], obj, old))
        return obj

    def remove(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        """Remove an object; its DELETED event carries the last state under a new revision."""
        meta = obj["metadata"]
        ident = (meta.get("namespace", ""), meta["name"])
        old = self._objects.get(key, {}).pop(ident, None)
        self.revision += 1
        final = dict(obj, metadata=dict(meta, resourceVersion=str(self.revision)))
        self._emit(Event(self.revision, DELETED, key, ident[0], final, old))
        return final

    def _emit(self, event: Event) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].revision
        self._history.append(event)
        for watcher in list(self._watchers):
            watcher.offer(event)
        for listener in list(self._listeners):
            listener(event)

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """In-process controllers hear every event synchronously; they must only queue work, never write."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Event], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- watches -------------------------------------------------------------------------------------------

    def watch(
        self,
        key: Key,
        namespace: str | None,
        predicate: Predicate | None,
        since: int | None,
    ) -> Watcher:
        """Subscribe; `since=None` starts with ADDED for every current object, else replays newer events.

        Raises ExpiredError when `since` is older than the replay window.
        """
        watcher = Watcher(key, namespace, predicate)
        if since is None:
            for obj in self.list(key, namespace):
                if predicate is None or predicate(obj):
                    watcher.queue.put_nowait((ADDED, obj))
        else:
            if since < self._compacted:
                raise ExpiredError(since, self._compacted + 1)
            for event in self._history:
                if event.revision > since:
                    watcher.offer(event)
        self._watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)
        watcher.close()

    def close_all_watches(self) -> int:
        """Fault hook and shutdown: end every open watch stream."""
        watchers = list(self._watchers)
        for watcher in watchers:
            self.unwatch(watcher)
        return len(watchers)

    def compact(self) -> None:
        """Drop the replay window, so that any resume from an older revision gets 410 Expired."""
        self._compacted = self.revision
        self._history.clear()

    # -- persistence ---------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        data = {
            "revision": self.revision,
            "objects": [{"key": list(k), "object": o} for k, o in self.all_objects()],
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)

    def load(self, path: Path) -> None:
        data = json.loads(path.read_text())
        self.revision = int(data["revision"])
        self._compacted = self.revision
        for entry in data["objects"]:
            key = (entry["key"][0], entry["key"][1])
            obj = entry["object"]
            meta = obj["metadata"]
            self._objects.setdefault(key, {})[(meta.get("namespace", ""), meta["name"])] = obj
