"""Garbage collection by ownerReference uid, with Background, Foreground and Orphan propagation.

Also removes custom resources of a CRD being deleted (the `customresourcecleanup` finalizer), since that is the
same job: delete what depends on a going object, then release it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from localkube.apiserver.core import CRD_CLEANUP_FINALIZER, CRD_KEY
from localkube.apiserver.errors import ApiError
from localkube.apiserver.store import ADDED, DELETED, Event, Key
from localkube.controllers.base import Controller

Ref = tuple[Key, str, str]  # (kind key, namespace, name)


def _ref(key: Key, obj: dict[str, Any]) -> Ref:
    meta = obj["metadata"]
    return key, meta.get("namespace", ""), meta["name"]


class GarbageCollector(Controller):
    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self._by_uid: dict[str, Ref] = {}
        self._dependents: dict[str, set[Ref]] = defaultdict(set)
        for key, obj in core.store.all_objects():
            self._index(key, obj)

    def _index(self, key: Key, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self._by_uid[meta["uid"]] = _ref(key, obj)
        for owner in meta.get("ownerReferences") or ():
            if isinstance(owner, dict) and owner.get("uid"):
                self._dependents[owner["uid"]].add(_ref(key, obj))

    def _unindex(self, key: Key, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self._by_uid.pop(meta["uid"], None)
        for owner in meta.get("ownerReferences") or ():
            if isinstance(owner, dict) and owner.get("uid"):
                self._dependents[owner["uid"]].discard(_ref(key, obj))

    def _on_event(self, event: Event) -> None:
        # Keep the index exact at write time; the reactions happen in the task.
        if event.old is not None:
            self._unindex(event.key, event.old)
        if event.type != DELETED:
            self._index(event.key, event.obj)
        super()._on_event(event)

    def _alive(self, uid: str) -> dict[str, Any] | None:
        ref = self._by_uid.get(uid)
        if ref is None:
            return None
        obj = self.core.store.get(ref[0], ref[1], ref[2])
        return obj if obj is not None and obj["metadata"]["uid"] == uid else None

    def handle(self, event: Event | None) -> None:
        if event is None:
            return
        obj = event.obj
        meta = obj["metadata"]
        if event.type == DELETED:
            self._collect_dependents(meta["uid"])
            for owner in meta.get("ownerReferences") or ():
                owner_obj = self._alive(owner.get("uid", ""))
                if owner_obj is not None and owner_obj["metadata"].get("deletionTimestamp"):
                    self._progress_deletion(self._by_uid[owner["uid"]][0], owner_obj)
            if event.key != CRD_KEY:
                for crd in self.core.store.list(CRD_KEY):
                    if crd["metadata"].get("deletionTimestamp") and self._crd_key(crd) == event.key:
                        self._progress_deletion(CRD_KEY, crd)
            return
        if event.type == ADDED:
            owners = [o for o in meta.get("ownerReferences") or () if isinstance(o, dict) and o.get("uid")]
            if owners and all(self._alive(o["uid"]) is None for o in owners):
                self._delete(_ref(event.key, obj))
        if meta.get("deletionTimestamp"):
            self._progress_deletion(event.key, obj)

    @staticmethod
    def _crd_key(crd: dict[str, Any]) -> Key:
        spec = crd.get("spec") or {}
        return spec.get("group", ""), (spec.get("names") or {}).get("plural", "")

    def _delete(self, ref: Ref, propagation: str | None = None) -> None:
        kind = self.core.registry.by_key(ref[0])
        if kind is None:
            return
        try:
            self.core.delete(kind, ref[1], ref[2], propagation=propagation)
        except ApiError as err:
            if err.code != 404:
                raise

    def _collect_dependents(self, owner_uid: str) -> None:
        """Background propagation: the owner is gone, so are dependents it alone owned."""
        for ref in list(self._dependents.get(owner_uid, ())):
            dep = self.core.store.get(*ref)
            if dep is None:
                continue
            others = [o for o in dep["metadata"].get("ownerReferences") or ()
                      if o.get("uid") != owner_uid and self._alive(o.get("uid", "")) is not None]
            if others:
                self._strip_owner(ref, owner_uid)
            else:
                self._delete(ref)
        self._dependents.pop(owner_uid, None)

    def _strip_owner(self, ref: Ref, owner_uid: str) -> None:
        kind = self.core.registry.by_key(ref[0])
        if kind is None:
            return

        def strip(obj: dict[str, Any]) -> None:
            obj["metadata"]["ownerReferences"] = [
                o for o in obj["metadata"].get("ownerReferences") or () if o.get("uid") != owner_uid]

        try:
            self.core.mutate(kind, ref[1], ref[2], strip, manager="kube-controller-manager")
        except ApiError as err:
            if err.code != 404:
                raise

    def _release(self, key: Key, obj: dict[str, Any], finalizer: str) -> None:
        kind = self.core.registry.by_key(key)
        meta = obj["metadata"]
        if kind is None:
            return

        def drop(o: dict[str, Any]) -> None:
            o["metadata"]["finalizers"] = [f for f in o["metadata"].get("finalizers") or () if f != finalizer]

        self.core.mutate(kind, meta.get("namespace", ""), meta["name"], drop, manager="kube-controller-manager")

    def _progress_deletion(self, key: Key, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or ()
        uid = meta["uid"]
        if "orphan" in finalizers:
            for ref in list(self._dependents.get(uid, ())):
                self._strip_owner(ref, uid)
            self._release(key, obj, "orphan")
        elif "foregroundDeletion" in finalizers:
            blocking = False
            for ref in list(self._dependents.get(uid, ())):
                dep = self.core.store.get(*ref)
                if dep is None:
                    continue
                if not dep["metadata"].get("deletionTimestamp"):
                    self._delete(ref, "Foreground")
                dep = self.core.store.get(*ref)
                if dep is not None and any(o.get("uid") == uid and o.get("blockOwnerDeletion")
                                           for o in dep["metadata"].get("ownerReferences") or ()):
                    blocking = True
            if not blocking:
                self._release(key, obj, "foregroundDeletion")
        elif key == CRD_KEY and CRD_CLEANUP_FINALIZER in finalizers:
            cr_key = self._crd_key(obj)
            remaining = self.core.store.list(cr_key)
            for cr in remaining:
                if not cr["metadata"].get("deletionTimestamp"):
                    self._delete(_ref(cr_key, cr))
            if not self.core.store.list(cr_key):
                self._release(key, obj, CRD_CLEANUP_FINALIZER)
