"""The ServiceAccounts controller: every namespace that stays keeps its `default` ServiceAccount."""

from __future__ import annotations

from localkube.apiserver.authn import SERVICE_ACCOUNT_KEY
from localkube.apiserver.core import NAMESPACE_KEY
from localkube.apiserver.serviceaccounts import DEFAULT_NAME, ensure_default
from localkube.apiserver.store import DELETED, Event
from localkube.controllers.base import Controller


class DefaultServiceAccountController(Controller):
    """Puts `default` back when it is deleted from a namespace that stays, as kube-controller-manager does."""

    def wants(self, event: Event) -> bool:
        return (event.type == DELETED and event.key == SERVICE_ACCOUNT_KEY
                and event.obj["metadata"]["name"] == DEFAULT_NAME)

    def handle(self, event: Event | None) -> None:
        if event is None:
            return
        ns = self.core.store.get(NAMESPACE_KEY, "", event.namespace)
        if ns is not None and not ns["metadata"].get("deletionTimestamp"):
            ensure_default(self.core, event.namespace)
