"""The objects the operator's watches deliver, kept so that a reconcile pass reads memory, not the API server.

kopf already streams every DaskCluster, DaskWorkerGroup, DaskJob, DaskAutoscaler and every pod and Service with
the cluster label; `handlers.py` hands each event's body to `Cache.observe`, and the operator's own writes hand
their answers to `Cache.store` (write-through), so a pass right after a create sees what it created before the
watch says so. An idle cluster therefore costs no requests per pass; the resync stays as a safety net for missed
wake-ups, and costs nothing either.

Ordering: watch events and write answers race. A body older than the one held (by resourceVersion, compared as
the integers every API server issues; an opaque version is taken as newer) is ignored, and so is any body of a
uid deleted in the last `TOMBSTONE_SECONDS` (a late event must not bring a deleted pod back: the group would count
it and delete another). A watch that resumes after its history was compacted relists; objects deleted meanwhile
get no DELETED event, so whatever a relist of a (kind, namespace) does not mention is dropped once it has
settled. The cache is read-only for its readers: bodies are shared, never copied.

Creates in flight: between a POST and its answer, the object exists for nobody, yet another loop may be deciding how
many more to make (a cluster's worker groups share one cap). `creating` holds the bodies meanwhile, from the moment
a plan is acted on (its patches go first) until all its creates are answered, and `list(..., creating=True)` counts
each once: the answer replaces it in the same step (client-go's controllers keep "expectations" for the same
reason).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .. import status

Obj = dict[str, Any]
# How long a deleted uid's late events are ignored.
TOMBSTONE_SECONDS = 120.0
# A relist is over when no listing event of its (kind, namespace) came for this long.
RELIST_SETTLE_SECONDS = 5.0


def _version(obj: Mapping[str, Any]) -> int | None:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _older(new: Mapping[str, Any], held: Mapping[str, Any]) -> bool:
    """Whether `new` is an older or the same version of the object held (never for different uids)."""
    if (new.get("metadata") or {}).get("uid") != (held.get("metadata") or {}).get("uid"):
        return False
    a, b = _version(new), _version(held)
    return a is not None and b is not None and a <= b


class Cache:
    def __init__(self, kinds: Iterable[str], relist_settle: float = RELIST_SETTLE_SECONDS) -> None:
        self.relist_settle = relist_settle
        self._objects: dict[str, dict[str, dict[str, Obj]]] = {kind: {} for kind in kinds}  # kind, namespace, name
        self._seen: dict[tuple[str, str, str], float] = {}  # (kind, namespace, name) -> when last stored
        self._gone: OrderedDict[str, float] = OrderedDict()  # deleted uid -> when
        self._relists: dict[tuple[str, str], float] = {}  # (kind, namespace) -> when its relist began
        self._creating: dict[str, dict[str, dict[str, Obj]]] = {kind: {} for kind in kinds}  # as _objects

    def holds(self, kind: str) -> bool:
        """Whether this kind is watched (and so read from here)."""
        return kind in self._objects

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self._objects[kind].get(namespace, {}).get(name)

    def list(self, kind: str, namespace: str, selector: Mapping[str, str], creating: bool = False) -> list[Obj]:
        """The objects of that kind in `namespace` whose labels include `selector`; with `creating`, also the
        bodies of our creates still in flight (no uid, no status yet)."""
        held = self._objects[kind].get(namespace, {})
        candidates = list(held.values())
        if creating:
            candidates += [b for name, b in self._creating[kind].get(namespace, {}).items() if name not in held]
        return [obj for obj in candidates
                if all(((obj.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items())]

    @contextmanager
    def creating(self, bodies: Iterable[Obj], namespace: str) -> Iterator[None]:
        """`bodies` are being created: readers asking for creates in flight see them until the block ends. Store
        each answer inside the block, so that no reader finds an object in neither place (a stored one is counted
        once, as stored). A body leaves only with the block that registered it, whatever other blocks overlap."""
        entries = []
        for body in bodies:
            kind, meta = body.get("kind", ""), body.get("metadata") or {}
            if kind in self._creating and meta.get("name"):  # else not watched, or named by the server
                entries.append((kind, meta.get("namespace") or namespace, meta["name"], body))
        for kind, ns, name, body in entries:
            self._creating[kind].setdefault(ns, {})[name] = body
        try:
            yield
        finally:
            for kind, ns, name, body in entries:
                pending = self._creating[kind].get(ns)
                if pending is not None and pending.get(name) is body:
                    del pending[name]
                    if not pending:
                        del self._creating[kind][ns]

    def observe(self, event_type: str | None, obj: Obj) -> None:
        """A watch event: None (a listing), ADDED, MODIFIED or DELETED."""
        if event_type == "DELETED":
            self.forget(obj)
            return
        if event_type is None:
            self._relisted(obj)
        self.store(obj)

    def store(self, obj: Obj) -> None:
        """The object as the API server last described it (a watch event, or the answer to our own write)."""
        kind, meta = obj.get("kind"), obj.get("metadata") or {}
        if kind not in self._objects or meta.get("uid") in self._gone:
            return
        namespace, name = meta.get("namespace") or "", meta["name"]
        objects = self._objects[kind].setdefault(namespace, {})
        held = objects.get(name)
        if held is None or not _older(obj, held):
            if "managedFields" in meta:  # nothing reads them, and they are often most of an object
                obj = dict(obj, metadata={k: v for k, v in meta.items() if k != "managedFields"})
            objects[name] = obj
        self._seen[(kind, namespace, name)] = time.monotonic()

    def forget(self, obj: Mapping[str, Any]) -> None:
        """The object is gone; late events about it are ignored for a while."""
        kind, meta = obj.get("kind"), obj.get("metadata") or {}
        if kind not in self._objects:
            return
        namespace, name = meta.get("namespace") or "", meta["name"]
        objects = self._objects[kind].get(namespace, {})
        held = objects.get(name)
        if held is None or (held.get("metadata") or {}).get("uid") == meta.get("uid") or not meta.get("uid"):
            objects.pop(name, None)
            if not objects:
                self._objects[kind].pop(namespace, None)
            self._seen.pop((kind, namespace, name), None)
        if meta.get("uid"):
            self._bury(meta["uid"])

    def deleting(self, kind: str, namespace: str, name: str, grace_period: int | None) -> None:
        """We asked for this object's deletion: until the watch confirms it, it is terminating (a pod asked to go
        at once is gone). Without this a pass in between would count the object and act on it twice."""
        held = self._objects.get(kind, {}).get(namespace, {}).get(name)
        if held is None or status.deleting(held):
            return
        if grace_period == 0:
            self.forget(held)
            return
        grace = grace_period if grace_period is not None else int(
            (held.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        meta = dict(held["metadata"], deletionGracePeriodSeconds=grace, deletionTimestamp=status.rfc3339(
            dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace)))
        self._objects[kind][namespace][name] = dict(held, metadata=meta)

    def held(self) -> dict[str, int]:
        """Objects held, by namespace: none for a namespace whose objects are all gone."""
        counts: dict[str, int] = {}
        for namespaces in self._objects.values():
            for namespace, objects in namespaces.items():
                counts[namespace] = counts.get(namespace, 0) + len(objects)
        return counts

    def _bury(self, uid: str) -> None:
        now = time.monotonic()
        self._gone[uid] = now
        self._gone.move_to_end(uid)
        while self._gone and now - next(iter(self._gone.values())) > TOMBSTONE_SECONDS:
            self._gone.popitem(last=False)

    def _relisted(self, obj: Mapping[str, Any]) -> None:
        """A listing event: the first of a relist schedules the sweep of what it will not mention."""
        key = (str(obj.get("kind")), (obj.get("metadata") or {}).get("namespace") or "")
        if key in self._relists:
            self._relists[key] = time.monotonic()
            return
        self._relists[key] = began = time.monotonic()
        asyncio.get_running_loop().call_later(self.relist_settle, self._sweep, key, began)

    def _sweep(self, key: tuple[str, str], began: float) -> None:
        kind, namespace = key
        last = self._relists.get(key, began)
        if time.monotonic() - last < self.relist_settle:  # still listing: look again once it has settled
            asyncio.get_running_loop().call_later(self.relist_settle, self._sweep, key, began)
            return
        del self._relists[key]
        for name, obj in list(self._objects[kind].get(namespace, {}).items()):
            if self._seen.get((kind, namespace, name), began) < began:
                self.forget(obj)
