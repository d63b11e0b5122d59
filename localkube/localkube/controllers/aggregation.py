"""The ClusterRole aggregation controller: a ClusterRole with an `aggregationRule` holds, as its `rules`, the rules
of every other ClusterRole its selectors match, and follows them as they change.

As kube-controller-manager's controller does, it writes the union into the aggregated role itself (so `kubectl get
clusterrole edit -o yaml` shows what `edit` grants), taking the matching roles in name order and each rule once.
The authorizer needs to know nothing of aggregation. Roles aggregated into others (`view` into `edit` into
`admin`) settle in as many passes, each started by the previous one's write.
"""

from __future__ import annotations

from typing import Any

from localkube.apiserver.rbac import CLUSTER_ROLE_KEY
from localkube.apiserver.selectors import label_selector_from_spec
from localkube.apiserver.store import Event
from localkube.controllers.base import Controller


def aggregated_rules(role: dict[str, Any], roles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules `role`'s aggregationRule gathers from `roles` (all ClusterRoles), in name order, each once."""
    selectors = [label_selector_from_spec(s) for s in (role.get("aggregationRule") or {}).get(
        "clusterRoleSelectors") or ()]
    rules: list[dict[str, Any]] = []
    for other in sorted(roles, key=lambda r: r["metadata"]["name"]):
        if other["metadata"]["name"] == role["metadata"]["name"]:
            continue
        labels = other["metadata"].get("labels") or {}
        if any(selector.matches(labels) for selector in selectors):
            rules += [rule for rule in other.get("rules") or () if rule not in rules]
    return rules


class ClusterRoleAggregator(Controller):
    def start(self) -> None:
        super().start()
        self.kick()  # the bootstrap roles (and any restored from state) were written before it listened

    def wants(self, event: Event) -> bool:
        return event.key == CLUSTER_ROLE_KEY

    def handle(self, event: Event | None) -> None:
        kind = self.core.kind_of(CLUSTER_ROLE_KEY)
        roles = self.core.store.list(CLUSTER_ROLE_KEY)
        for role in roles:
            if not role.get("aggregationRule") or role["metadata"].get("deletionTimestamp"):
                continue
            rules = aggregated_rules(role, roles)
            if rules != (role.get("rules") or []):
                def set_rules(obj: dict[str, Any], rules: list[dict[str, Any]] = rules) -> None:
                    obj["rules"] = rules

                self.core.mutate(kind, "", role["metadata"]["name"], set_rules, manager="kube-controller-manager")
