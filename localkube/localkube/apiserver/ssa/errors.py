"""Errors of server-side apply, as `Status` bodies worded like kube-apiserver's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localkube.apiserver.errors import ApiError
from localkube.apiserver.ssa.fieldpath import go_quote


class ApplyError(ApiError):
    """A request the server answers with a Status: `code` is the HTTP status, `status()` the body."""

    def __init__(self, code: int, message: str, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(code, message, reason, details)

    def status(self) -> dict[str, Any]:
        """The `metav1.Status` body kube-apiserver would send (same keys, same order)."""
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def bad_request(message: str) -> ApplyError:
    return ApplyError(400, message, "BadRequest")


def internal_error(message: str) -> ApplyError:
    return ApplyError(500, f"Internal error occurred: {message}", "InternalError", {"causes": [{"message": message}]})


@dataclass(frozen=True)
class ConflictItem:
    """One field another manager owns with a different value; `manager`.. identify that managedFields entry."""

    path: str
    manager: str
    operation: str
    api_version: str
    subresource: str = ""

    def describe(self) -> str:
        """The manager as the server prints it: updaters carry their version, appliers do not."""
        text = go_quote(self.manager)
        if self.subresource:
            text += f" with subresource {go_quote(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


class Conflict(ApplyError):
    """409: the apply would change fields other managers own; `conflicts` lists them, managers then paths sorted."""

    def __init__(self, conflicts: list[ConflictItem]) -> None:
        self.conflicts = conflicts
        causes = [
            {"reason": "FieldManagerConflict", "message": f"conflict with {c.describe()}", "field": c.path}
            for c in conflicts
        ]
        super().__init__(409, _conflict_message(conflicts), "Conflict", {"causes": causes})


def _conflict_message(conflicts: list[ConflictItem]) -> str:
    if len(conflicts) == 1:
        c = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {c.describe()}: {c.path}"
    lines: list[str] = []
    seen: str | None = None
    for c in conflicts:  # already grouped by manager
        if c.describe() != seen:
            seen = c.describe()
            lines.append(f"conflicts with {seen}:")
        lines.append(f"- {c.path}")
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


class SchemaError(ValueError):
    """The object does not fit its schema (bad list item, duplicate key); the server reports it as a 500."""

