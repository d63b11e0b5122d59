"""Is a resource's spec valid? Checked once per spec: first what needs no server, then the API server's own
verdict (a server-side dry run of the pods and Services it would become), remembered by the loop so that a scale,
which changes only replicas, costs no re-check."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError
from .objects import Objects

Checked = tuple[str, str]  # (uid, fingerprint of the spec that was found valid)
Template = tuple[str, str, str]  # (namespace, worker group, fingerprint of its cluster and worker template)
VOUCHED_TEMPLATES = 4096  # remembered at most: forgetting one costs a dry run, never a wrong verdict


def fingerprint(value: Any) -> str:
    """A stable digest of a JSON-able value."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class SpecCheck:
    error: str | None = None  # why it can never be reconciled as written
    valid: Checked | None = None  # known valid: for the loop to remember (None also when the server did not answer)
    server_checked: bool = False  # valid by the API server's dry runs in this very check (not remembered, not skipped)


async def check(objects: Objects, key: Checked, validated: Checked | None, problems: Sequence[SpecError],
                dry_runs: Callable[[], Iterable[tuple[dict[str, Any], str]]] | None) -> SpecCheck:
    """`problems` found without a server, then the dry runs (None: none needed); `validated` is what the loop
    remembers, so a spec already found valid is not checked again."""
    if validated == key:
        return SpecCheck(valid=key)
    if problems:
        return SpecCheck(error="; ".join(str(p) for p in problems))
    if dry_runs is not None:
        verdict = await objects.validate(dry_runs())
        if verdict.rejection:
            return SpecCheck(error=verdict.rejection)
        if not verdict.known:
            return SpecCheck()  # unknown is not invalid: go on, check again next pass
        return SpecCheck(valid=key, server_checked=True)
    return SpecCheck(valid=key)


def worker_template(namespace: str, group: str, cluster: str, worker: Mapping[str, Any]) -> Template:
    """What a group's worker pods depend on: its namespace, name, cluster and `spec.worker` but the replicas."""
    return namespace, group, fingerprint({"cluster": cluster, "worker": {k: v for k, v in worker.items()
                                                                         if k != "replicas"}})


class Vouched:
    """Worker templates that a DaskCluster's dry run has just found valid. Its default worker group, made from the
    same template moments later, would dry-run the same worker pod again: one request per cluster saved (a
    hundred clusters, a hundred requests). Kept in this process only, so only this operator's own checks count."""

    def __init__(self, size: int = VOUCHED_TEMPLATES) -> None:
        self._size = size
        self._templates: OrderedDict[Template, None] = OrderedDict()

    def add(self, template: Template) -> None:
        self._templates[template] = None
        self._templates.move_to_end(template)
        while len(self._templates) > self._size:
            self._templates.popitem(last=False)

    def __contains__(self, template: object) -> bool:
        return template in self._templates
