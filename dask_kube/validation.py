"""Checks of user input that need no API call: run before anything is created, and by the operator.

Each check raises `SpecError` naming the field. What only the API server knows (the full PodSpec) the operator
checks with a server-side dry run instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import naming, status
from .errors import SpecError

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$")
RESOURCE_KEYS = ("limits", "requests", "claims")
_TYPOS = {"limit": "limits", "request": "requests", "claim": "claims"}


def validate_cluster_name(name: Any) -> str:
    """A cluster name becomes part of DNS labels (`{name}-scheduler`), so it is a DNS label of at most 53."""
    if not isinstance(name, str) or not name:
        raise SpecError("a cluster name is required", "name")
    if len(name) > naming.MAX_CLUSTER_NAME_LENGTH:
        raise SpecError(f"{name!r} is {len(name)} characters long; a cluster name has at most "
                        f"{naming.MAX_CLUSTER_NAME_LENGTH} (it becomes part of '{name[:8]}...-scheduler')", "name")
    if not _DNS_LABEL.match(name):
        raise SpecError(f"{name!r} is not a valid cluster name: use lower case letters, digits and '-', starting "
                        "and ending with a letter or digit (a DNS label, no dots)", "name")
    return name


def validate_worker_group_name(name: Any) -> str:
    if not isinstance(name, str) or not _DNS_LABEL.match(name or ""):
        raise SpecError(f"{name!r} is not a valid worker group name: use lower case letters, digits and '-'",
                        "worker_group")
    return name


def validate_secret_name(name: Any, field: str) -> str:
    """A Secret's name is a DNS-1123 subdomain (lower case, digits, '-' and '.'), at most 253 characters."""
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise SpecError(f"{name!r} is not a valid Secret name: use at most 253 lower case letters, digits, '-' and "
                        "'.', starting and ending with a letter or digit", field)
    return name


def validate_resources(resources: Any, field: str = "resources") -> dict[str, Any]:
    """`{"limits": {...}, "requests": {...}}` with quantity values; `limit` for `limits` is the classic typo."""
    if resources is None:
        return {}
    if not isinstance(resources, Mapping):
        raise SpecError(f"must be a mapping such as {{'limits': {{'cpu': '1'}}}}, not {type(resources).__name__}",
                        field)
    for key, value in resources.items():
        if key not in RESOURCE_KEYS:
            hint = f"; did you mean {_TYPOS[key]!r}?" if key in _TYPOS else ""
            raise SpecError(f"unknown field {key!r} (allowed: {', '.join(RESOURCE_KEYS)}){hint}", field)
        if key == "claims" or value is None:  # `limits: null` is no limits, as the API server reads it
            continue
        if not isinstance(value, Mapping):
            raise SpecError(f"must be a mapping of resource names to quantities, not {type(value).__name__}",
                            f"{field}.{key}")
        for resource, quantity in value.items():
            if isinstance(quantity, bool) or not _QUANTITY.match(str(quantity)):
                raise SpecError(f"{quantity!r} is not a quantity (examples: 1, 500m, 2Gi)",
                                f"{field}.{key}.{resource}")
    return dict(resources)


def validate_env(env: Any, field: str = "env") -> None:
    if env is None:
        return
    if isinstance(env, Mapping):
        for name, value in env.items():
            if not isinstance(name, str) or not _ENV_NAME.match(name):
                raise SpecError(f"{name!r} is not a valid environment variable name", field)
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise SpecError(f"the value of {name} must be a string, not {type(value).__name__}", field)
        return
    if isinstance(env, Sequence) and not isinstance(env, str):
        for i, entry in enumerate(env):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                raise SpecError("each entry must be a mapping with a 'name' (a Kubernetes EnvVar)", f"{field}[{i}]")
            if "value" not in entry and "valueFrom" not in entry:
                raise SpecError(f"{entry['name']} has neither 'value' nor 'valueFrom'", f"{field}[{i}]")
        return
    raise SpecError(f"must be a dict of names to values or a list of Kubernetes EnvVars, not {type(env).__name__}",
                    field)


def validate_worker_command(command: Any) -> None:
    if isinstance(command, str):
        if not command.strip():
            raise SpecError("must not be empty", "worker_command")
        return
    if (not isinstance(command, Sequence) or not command
            or not all(isinstance(part, str) and part for part in command)):
        raise SpecError("must be a command string or a non-empty list of strings", "worker_command")


def pod_spec_problems(pod_spec: Any, field: str) -> list[SpecError]:
    """Mistakes in an embedded PodSpec that the operator reports without asking the API server."""
    if not isinstance(pod_spec, Mapping):
        return [SpecError("must be a PodSpec mapping", field)]
    pod_spec = status.without_nulls(pod_spec)  # null is absent, as the API server reads it
    problems: list[SpecError] = []
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [SpecError("at least one container is required", f"{field}.containers")]
    for i, container in enumerate(containers):
        if not isinstance(container, Mapping):
            problems.append(SpecError("must be a Container mapping", f"{field}.containers[{i}]"))
            continue
        try:
            validate_resources(container.get("resources"), f"{field}.containers[{i}].resources")
        except SpecError as err:
            problems.append(err)
    return problems
