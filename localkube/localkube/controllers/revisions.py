"""ControllerRevisions: the template history StatefulSets and DaemonSets keep, one object per distinct template.

Clients read them (`kubectl rollout history`, `kubectl rollout undo`), and the revision's name is what the pods'
`controller-revision-hash` label and a StatefulSet's `currentRevision`/`updateRevision` point to. A revision holds
the template as the patch that restores it (`data.spec.template` with `$patch: replace`), as the real ones do.

`plan_history` is pure; `RevisionHistory` does the writes for one owner.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from localkube.apiserver.core import ApiCore
from localkube.apiserver.errors import ApiError
from localkube.controllers.workloads import controller_of, owner_reference, template_hash

Obj = dict[str, Any]

REVISION_KEY = ("apps", "controllerrevisions")
HASH_LABEL = "controller.kubernetes.io/hash"


def revision_data(template: Mapping[str, Any] | None) -> Obj:
    return {"spec": {"template": {**copy.deepcopy(dict(template or {})), "$patch": "replace"}}}


def template_of(revision: Mapping[str, Any]) -> Obj:
    """The pod template a revision restores."""
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return copy.deepcopy(template)


def revision_number(revision: Mapping[str, Any]) -> int:
    return int(revision.get("revision") or 0)


def new_revision(owner: Mapping[str, Any], template: Mapping[str, Any], number: int, collisions: int,
                 hash_label: str = HASH_LABEL) -> Obj:
    """The revision `{owner}-{hash}`: labelled like the template plus the hash, owned by `owner`."""
    digest = template_hash(template, collisions)
    labels = {**((template.get("metadata") or {}).get("labels") or {}), hash_label: digest}
    return {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": f"{owner['metadata']['name']}-{digest}", "namespace": owner["metadata"]["namespace"],
                     "labels": labels, "ownerReferences": [owner_reference(owner)]},
        "data": revision_data(template),
        "revision": number,
    }


def plan_history(revisions: Sequence[Mapping[str, Any]], in_use: Collection[str], limit: int) -> list[str]:
    """Revisions to delete: the oldest of those no pod and no status names, beyond `limit` of them."""
    idle = sorted((r for r in revisions if r["metadata"]["name"] not in in_use),
                  key=lambda r: (revision_number(r), r["metadata"]["name"]))
    return [r["metadata"]["name"] for r in idle[:max(len(idle) - max(limit, 0), 0)]]


@dataclass
class Revisions:
    """An owner's revisions: all of them, and the one of its current template."""

    all: list[Obj]
    update: Obj


class RevisionHistory:
    """Finds, creates and prunes the ControllerRevisions of one kind of owner."""

    def __init__(self, core: ApiCore, owner_key: tuple[str, str], hash_label: str = HASH_LABEL) -> None:
        self.core = core
        self.owner_key = owner_key
        self.hash_label = hash_label

    def list(self, owner: Mapping[str, Any]) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [r for r in self.core.store.list(REVISION_KEY, owner["metadata"]["namespace"])
                if (controller_of(r) or {}).get("uid") == uid]

    def ensure(self, owner: Obj) -> Revisions | None:
        """The revision of the owner's template, created (or made the newest again, on a rollback) if needed.

        None when the name was taken by a different template: `status.collisionCount` went up, and the status
        write brings the owner back with a new name to try.
        """
        template = (owner.get("spec") or {}).get("template") or {}
        revisions = self.list(owner)
        newest = max((revision_number(r) for r in revisions), default=0)
        data = revision_data(template)
        match = next((r for r in sorted(revisions, key=revision_number, reverse=True) if r.get("data") == data), None)
        kind = self.core.kind_of(REVISION_KEY)
        namespace = owner["metadata"]["namespace"]
        if match is not None:
            if revision_number(match) < newest:
                match = self.core.mutate(kind, namespace, match["metadata"]["name"],
                                         lambda r: r.__setitem__("revision", newest + 1))
                revisions = self.list(owner)
            return Revisions(revisions, match)
        collisions = int((owner.get("status") or {}).get("collisionCount") or 0)
        body = new_revision(owner, template, newest + 1, collisions, self.hash_label)
        try:
            created = self.core.create(kind, namespace, body)[0]
        except ApiError as err:
            if err.code != 409:
                raise
            self._collide(owner)
            return None
        return Revisions([*revisions, created], created)

    def _collide(self, owner: Obj) -> None:
        def bump(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1

        meta = owner["metadata"]
        self.core.mutate(self.core.kind_of(self.owner_key), meta["namespace"], meta["name"], bump,
                         subresource="status")

    def prune(self, owner: Mapping[str, Any], revisions: Sequence[Mapping[str, Any]], in_use: Collection[str]
              ) -> None:
        limit = (owner.get("spec") or {}).get("revisionHistoryLimit")
        kind = self.core.kind_of(REVISION_KEY)
        for name in plan_history(revisions, in_use, 10 if limit is None else int(limit)):
            try:
                self.core.delete(kind, owner["metadata"]["namespace"], name)
            except ApiError as err:
                if err.code != 404:
                    raise
