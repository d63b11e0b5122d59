"""Is a resource's spec valid? Checked once per spec: first what needs no server, then the API server's own
verdict (a server-side dry run of the pods and Services it would become), remembered by the loop so that a scale,
which changes only replicas, costs no re-check."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError
from .objects import Objects

Checked = tuple[str, str]  # (uid, fingerprint of the spec that was found valid)


def fingerprint(value: Any) -> str:
    """A stable digest of a JSON-able value."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class SpecCheck:
    error: str | None = None  # why it can never be reconciled as written
    valid: Checked | None = None  # known valid: for the loop to remember (None also when the server did not answer)


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
    return SpecCheck(valid=key)
