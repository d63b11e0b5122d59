"""The ResourceQuota controller: `status.hard` mirrors `spec.hard`, `status.used` counts what the namespace uses.

A write to anything a namespace's quotas track marks the namespace; a pass recomputes its quotas (a burst of
writes costs one pass) and writes each status that changed through the status subresource, as
kube-controller-manager does.
"""

from __future__ import annotations

from typing import Any

from localkube.apiserver import quota
from localkube.apiserver.core import ApiCore
from localkube.apiserver.store import DELETED, Event
from localkube.apiserver.validation import canonical_quantity
from localkube.controllers.base import Controller

QUOTA_KEY = quota.QUOTA_KEY


class ResourceQuotaController(Controller):
    def __init__(self, core: ApiCore) -> None:
        super().__init__(core)
        self._dirty: set[str] = set()

    def start(self) -> None:
        super().start()
        self._dirty.update(q["metadata"]["namespace"] for q in self.core.store.list(QUOTA_KEY))
        self.kick()

    def wants(self, event: Event) -> bool:
        if event.key == QUOTA_KEY:
            if event.type == DELETED or (event.old is not None and
                                         (event.old.get("spec") or {}) == (event.obj.get("spec") or {})):
                return False  # its own status writes
        elif not any(event.key in quota.tracked_keys(quota.hard_of(q))
                     for q in self.core.store.list(QUOTA_KEY, event.namespace)):
            return False
        first = not self._dirty
        self._dirty.add(event.namespace)
        return first

    def handle(self, event: Event | None) -> None:
        dirty, self._dirty = self._dirty, set()
        for namespace in sorted(dirty):
            for item in self.core.store.list(QUOTA_KEY, namespace):
                self._sync(item)

    def _sync(self, item: dict[str, Any]) -> None:
        hard = (item.get("spec") or {}).get("hard") or {}
        status = {"hard": {name: _canonical(value) for name, value in hard.items()},
                  "used": {name: str(amount) for name, amount in quota.used(self.core, item).items()}}
        if not hard:
            status = {}
        if item.get("status") == status:
            return
        meta = item["metadata"]
        self.core.mutate(self.core.kind_of(QUOTA_KEY), meta["namespace"], meta["name"],
                         lambda obj: obj.__setitem__("status", status), subresource="status")


def _canonical(value: Any) -> str:
    try:
        return canonical_quantity(value)
    except ValueError:
        return str(value)
