"""ServiceAccounts as a cluster has them: a `default` one per namespace, pod admission, and the TokenRequest API.

The `default` ServiceAccount is created inside the write that creates its namespace (where the real
kube-controller-manager adds it moments later), so a client that creates a pod right after its namespace never
meets the "serviceaccount not found" rejection that a real cluster can give in that window.
"""

from __future__ import annotations

from typing import Any

from localkube.apiserver.authn import (
    API_AUDIENCE,
    DEFAULT_EXPIRATION,
    MIN_EXPIRATION,
    SERVICE_ACCOUNT_KEY,
    Authenticator,
)
from localkube.apiserver.core import NAMESPACE_KEY, POD_KEY, ApiCore
from localkube.apiserver.errors import ApiError, invalid, not_found

Obj = dict[str, Any]
DEFAULT_NAME = "default"


def install(core: ApiCore) -> None:
    """Create `default` with every namespace, and check a new pod's ServiceAccount exists."""
    core.after_create.setdefault(NAMESPACE_KEY, []).append(lambda ns: ensure_default(core, ns["metadata"]["name"]))
    core.admission.setdefault(POD_KEY, []).append(lambda pod, old: _admit_pod(core, pod, old))


def ensure_default(core: ApiCore, namespace: str) -> None:
    if core.store.get(SERVICE_ACCOUNT_KEY, namespace, DEFAULT_NAME) is None:
        core.create(core.kind_of(SERVICE_ACCOUNT_KEY), namespace,
                    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT_NAME}},
                    manager="kube-controller-manager")


def ensure_all_defaults(core: ApiCore) -> None:
    """For namespaces restored from a state saved before ServiceAccounts were made."""
    for ns in core.store.list(NAMESPACE_KEY):
        if not ns["metadata"].get("deletionTimestamp"):
            ensure_default(core, ns["metadata"]["name"])


def _admit_pod(core: ApiCore, pod: Obj, old: Obj | None) -> None:
    if old is not None:
        return
    meta = pod["metadata"]
    namespace = meta.get("namespace") or ""
    ns = core.store.get(NAMESPACE_KEY, "", namespace)
    if ns is None or ns["metadata"].get("deletionTimestamp"):
        return  # the namespace check answers these
    spec = pod.get("spec") or {}
    name = spec.get("serviceAccountName") or DEFAULT_NAME
    if core.store.get(SERVICE_ACCOUNT_KEY, namespace, name) is None:
        pod_name = meta.get("name") or ""
        raise ApiError(403, f'pods "{pod_name}" is forbidden: error looking up service account {namespace}/{name}: '
                            f'serviceaccount "{name}" not found', details={"name": pod_name, "kind": "pods"})


def automounts(core: ApiCore, pod: Obj) -> Obj | None:
    """The pod's ServiceAccount if its token is to be mounted (the pod's setting wins over the account's)."""
    spec = pod.get("spec") or {}
    sa = core.store.get(SERVICE_ACCOUNT_KEY, pod["metadata"]["namespace"],
                        spec.get("serviceAccountName") or DEFAULT_NAME)
    if sa is None:
        return None
    setting = spec.get("automountServiceAccountToken")
    if setting is None:
        setting = sa.get("automountServiceAccountToken")
    return None if setting is False else sa


def token_request(core: ApiCore, tokens: Authenticator, namespace: str, name: str, body: Any) -> Obj:
    """Answer `POST serviceaccounts/NAME/token`: a TokenRequest with `status.token` filled in."""
    if body is not None and not isinstance(body, dict):
        raise ApiError(400, "the body of the request was in an unknown format")
    request: Obj = dict(body or {})
    spec: Obj = dict(request.get("spec") or {})
    sa = core.store.get(SERVICE_ACCOUNT_KEY, namespace, name)
    if sa is None:
        raise not_found("serviceaccounts", name)
    seconds = spec.get("expirationSeconds")
    if seconds is None:
        seconds = DEFAULT_EXPIRATION
    if not isinstance(seconds, int) or seconds < MIN_EXPIRATION:
        raise invalid("TokenRequest.authentication.k8s.io", name, [{
            "reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
            "message": f"Invalid value: {seconds}: may not specify a duration less than 10 minutes"}],
            "authentication.k8s.io")
    pod = None
    ref = spec.get("boundObjectRef") or {}
    if ref:
        if ref.get("kind") != "Pod":
            raise ApiError(400, f"cannot bind token for object of kind {ref.get('kind')!r}: LocalKube binds tokens "
                                "to pods only")
        pod = core.store.get(POD_KEY, namespace, ref.get("name") or "")
        if pod is None:
            raise not_found("pods", ref.get("name") or "")
        if ref.get("uid") and ref["uid"] != pod["metadata"]["uid"]:
            raise ApiError(409, f'the UID in the bound object reference ({ref["uid"]}) does not match the UID in '
                                f'record. The object might have been deleted and then recreated')
    audiences = list(spec.get("audiences") or [])
    token, expires = tokens.issue(sa, seconds, audiences or None, pod)
    spec["expirationSeconds"] = seconds
    spec["audiences"] = audiences or [API_AUDIENCE]
    spec.setdefault("boundObjectRef", None)
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": spec, "status": {"token": token, "expirationTimestamp": expires}}

