"""Namespace lifecycle: a deleting namespace empties itself, then goes."""

from __future__ import annotations

from typing import Any

from localkube.apiserver.core import NAMESPACE_KEY
from localkube.apiserver.errors import ApiError
from localkube.apiserver.store import DELETED, Event
from localkube.controllers.base import Controller


class NamespaceController(Controller):
    def wants(self, event: Event) -> bool:
        if event.key == NAMESPACE_KEY:
            return bool(event.obj["metadata"].get("deletionTimestamp")) and event.type != DELETED
        return event.type == DELETED and bool(event.namespace)

    def handle(self, event: Event | None) -> None:
        if event is None:
            return
        name = event.obj["metadata"]["name"] if event.key == NAMESPACE_KEY else event.namespace
        ns = self.core.store.get(NAMESPACE_KEY, "", name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        self._drain(ns)

    def _drain(self, ns: dict[str, Any]) -> None:
        name = ns["metadata"]["name"]
        store = self.core.store
        for kind in self.core.registry.all():
            if not kind.namespaced:
                continue
            for obj in store.list(kind.key, name):
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    self.core.delete(kind, name, obj["metadata"]["name"])
                except ApiError as err:
                    if err.code != 404:
                        raise
        ns_kind = self.core.kind_of(NAMESPACE_KEY)
        if store.namespace_is_empty(name):
            def release(obj: dict[str, Any]) -> None:
                obj.setdefault("spec", {})["finalizers"] = []

            self.core.mutate(ns_kind, "", name, release, manager="kube-controller-manager")
        elif not (ns.get("status") or {}).get("conditions"):
            def remaining(obj: dict[str, Any]) -> None:
                obj["status"]["conditions"] = [{
                    "type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
                    "message": "Some resources are remaining", "lastTransitionTime": self.core.now()}]

            self.core.mutate(ns_kind, "", name, remaining, subresource="status", manager="kube-controller-manager")
