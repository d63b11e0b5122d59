"""Standard `status.conditions`: built as data, merged so that transition times move only on real changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def condition(type_: str, ok: bool | None, reason: str, message: str = "", generation: int | None = None
              ) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": type_, "status": "Unknown" if ok is None else ("True" if ok else "False"),
                            "reason": reason, "message": message}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def merge(current: Sequence[Mapping[str, Any]] | None, wanted: Sequence[Mapping[str, Any]], now: str
          ) -> list[dict[str, Any]]:
    """`wanted` conditions, keeping each one's lastTransitionTime unless its status changed (then `now`)."""
    previous = {c.get("type"): c for c in current or ()}
    out = []
    for cond in wanted:
        old = previous.get(cond["type"])
        stamp = old.get("lastTransitionTime") if old and old.get("status") == cond["status"] else None
        out.append({**cond, "lastTransitionTime": stamp or now})
    return out


def same(a: Sequence[Mapping[str, Any]] | None, b: Sequence[Mapping[str, Any]] | None) -> bool:
    """Equal but for transition times: a status write that would change only those is skipped."""
    def strip(conds: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conds or ()]
    return strip(a) == strip(b)
