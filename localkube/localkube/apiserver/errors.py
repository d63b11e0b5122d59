"""API errors as Kubernetes `Status` objects: the one shape every client parses."""

from __future__ import annotations

from typing import Any

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """An error the API server answers with; `status()` is the body, `code` the HTTP status."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason if reason is not None else _REASONS.get(code, "")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if not self.reason:  # Go's omitempty: a Status with a code but no reason (a 500 from REST storage)
            del body["reason"]
        if self.details:
            body["details"] = self.details
        return body


def not_found(resource: str, name: str, group: str = "", kind: str | None = None) -> ApiError:
    return ApiError(
        404,
        f'{resource} "{name}" not found',
        details={"name": name, "group": group, "kind": kind or resource.split(".")[0]},
    )


def already_exists(resource: str, name: str, group: str = "", kind: str | None = None) -> ApiError:
    return ApiError(
        409,
        f'{resource} "{name}" already exists',
        "AlreadyExists",
        details={"name": name, "group": group, "kind": kind or resource.split(".")[0]},
    )


def conflict(resource: str, name: str, group: str = "", kind: str | None = None) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        "Conflict",
        details={"name": name, "group": group, "kind": kind or resource.split(".")[0]},
    )


def invalid(qualified_kind: str, name: str, causes: list[dict[str, Any]], group: str = "") -> ApiError:
    """422 Invalid, worded as the real server words it (kubectl prints the causes)."""
    parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(
        422,
        f'{qualified_kind} "{name}" is invalid: {joined}',
        "Invalid",
        details={"name": name, "group": group, "kind": qualified_kind.split(".")[0], "causes": causes},
    )


def unsupported_patch(builtin: bool) -> ApiError:
    """415 for a PATCH content type the kind does not take (custom resources take no strategic merge patch)."""
    types = ["application/json-patch+json", "application/merge-patch+json"]
    types += ["application/strategic-merge-patch+json"] if builtin else []
    types += ["application/apply-patch+yaml"]
    return ApiError(415, "the body of the request was in an unknown format - accepted media types include: "
                         + ", ".join(types))


def success_status(name: str, group: str, kind: str, uid: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": group, "kind": kind, "uid": uid},
    }


def forbidden(resource: str, name: str, reason: str, group: str = "") -> ApiError:
    """403 as admission plugins and REST storage word it: `pods "x" is forbidden: <reason>`."""
    return ApiError(
        403,
        f'{resource} "{name}" is forbidden: {reason}',
        details={"name": name, "group": group, "kind": resource.split(".")[0]},
    )
