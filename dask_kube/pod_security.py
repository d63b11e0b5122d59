"""The securityContexts that let Dask pods pass the `restricted` Pod Security Standard, and how they are applied.

A namespace labelled `pod-security.kubernetes.io/enforce: restricted` refuses any pod that may run as root, escalate
privileges, keep Linux capabilities or run without a seccomp profile. The Dask images start as root, so a pod that
only said `runAsNonRoot: true` would be refused by the kubelet instead: the defaults also name a non-root user.

Two places use these: the client's spec builders write them into every manifest (`make_*_spec`, where
`run_as_root=True` writes an explicit root context instead, for images that need root), and the operator fills them
into pods whose spec has no securityContext at all (a DaskCluster written by hand), so that those pass too. A spec
with any securityContext, at pod or container level, is the user's and is used as written: that is the opt-out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]

# The user and group the Dask processes run as when the spec names none (the Dask images' root is uid 0).
DEFAULT_USER = 1000

RESTRICTED_POD: Obj = {
    "runAsNonRoot": True,
    "runAsUser": DEFAULT_USER,
    "runAsGroup": DEFAULT_USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER: Obj = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}
# What `run_as_root=True` writes: root, said explicitly so that the operator adds nothing.
ROOT_POD: Obj = {"runAsNonRoot": False, "runAsUser": 0}

CONTAINER_LISTS = ("initContainers", "containers")


def pod_context(run_as_root: bool = False) -> Obj:
    return copy.deepcopy(ROOT_POD if run_as_root else RESTRICTED_POD)


def container_context(run_as_root: bool = False) -> Obj | None:
    """The container's securityContext; None for a root pod (it keeps the image's capabilities)."""
    return None if run_as_root else copy.deepcopy(RESTRICTED_CONTAINER)


def has_security_context(pod_spec: Mapping[str, Any]) -> bool:
    """Whether the spec says anything about security, at pod or container level (then it is used as written)."""
    if "securityContext" in pod_spec:
        return True
    return any(isinstance(c, Mapping) and "securityContext" in c
               for key in CONTAINER_LISTS for c in pod_spec.get(key) or ())


def with_restricted_defaults(pod_spec: Mapping[str, Any]) -> Obj:
    """A copy of `pod_spec` that passes `restricted`: the defaults filled in when the spec has no securityContext
    anywhere; otherwise an unchanged copy."""
    spec = copy.deepcopy(dict(pod_spec))
    if has_security_context(spec):
        return spec
    spec["securityContext"] = pod_context()
    for key in CONTAINER_LISTS:
        for container in spec.get(key) or ():
            if isinstance(container, dict):
                container["securityContext"] = copy.deepcopy(RESTRICTED_CONTAINER)
    return spec
