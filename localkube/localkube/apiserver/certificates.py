"""CertificateSigningRequests as kube-apiserver keeps them: who asked, and approval apart from issuance.

The server writes the requesting user into `spec` and clears `status` on create; afterwards `spec` never changes.
Approved/Denied conditions are written only through the `approval` subresource (what `kubectl certificate
approve|deny` calls), by users allowed to `approve` for the request's signer; the `status` subresource carries
the rest (Failed, the issued certificate), by users allowed to `sign`. No signer runs in LocalKube: approved
requests stay unissued until a client writes the certificate to `status`.
"""

from __future__ import annotations

import copy
from typing import Any

from localkube.apiserver.authn import REQUEST_USER
from localkube.apiserver.core import ApiCore
from localkube.apiserver.errors import ApiError, forbidden, invalid
from localkube.apiserver.rbac import Attributes, Authorizer
from localkube.apiserver.validation import _cannot_handle, _forbidden, _invalid
from localkube.apiserver.validation_kinds import csr_condition_causes, decode_csr_request

Obj = dict[str, Any]
CSR_KEY = ("certificates.k8s.io", "certificatesigningrequests")
RESOURCE = "certificatesigningrequests.certificates.k8s.io"
APPROVAL_TYPES = ("Approved", "Denied")


def install(core: ApiCore) -> None:
    core.admission.setdefault(CSR_KEY, []).append(_admit)
    core.subresource_writes[(CSR_KEY, "approval")] = lambda body, old: _write(core, body, old, "approval")
    core.subresource_writes[(CSR_KEY, "status")] = lambda body, old: _write(core, body, old, "status")


def _admit(obj: Obj, old: Obj | None) -> None:
    """Create: the requester's identity goes into spec. Update of the main resource: spec is kept."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if old is not None:
        obj["spec"] = copy.deepcopy(old.get("spec") or {})
        return
    try:
        decode_csr_request(spec.get("request"))
    except ValueError as err:
        raise ApiError(400, _cannot_handle("CertificateSigningRequest", "certificates.k8s.io/v1", str(err)))
    user = REQUEST_USER.get()
    for key in ("username", "uid", "groups", "extra"):
        spec.pop(key, None)
    spec["username"] = user.name
    if user.uid:
        spec["uid"] = user.uid
    if user.groups:
        spec["groups"] = list(user.groups)
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra.items()}


def _write(core: ApiCore, body: Obj, old: Obj, subresource: str) -> Obj:
    """The object a write to `approval` or `status` stores: each changes only its own part of the status."""
    name = old["metadata"]["name"]
    status = body.get("status") if isinstance(body.get("status"), dict) else {}
    old_status = old.get("status") or {}
    before = old_status.get("conditions") or []
    wanted = [c for c in status.get("conditions") or () if isinstance(c, dict)]
    ours = (lambda c: c.get("type") in APPROVAL_TYPES) if subresource == "approval" else (
        lambda c: c.get("type") not in APPROVAL_TYPES)
    conditions = _stamped(core, [c for c in before if not ours(c)] + [c for c in wanted if ours(c)], before)
    new = copy.deepcopy(old)
    new_status = new.setdefault("status", {})
    new_status.pop("conditions", None)
    if conditions:
        new_status["conditions"] = conditions
    if subresource == "status" and "certificate" in status:
        new_status["certificate"] = status["certificate"]
    _validate(name, new_status, old_status)
    changed = new_status != old_status
    signer = str((old.get("spec") or {}).get("signerName") or "")
    verb = "approve" if subresource == "approval" else "sign"
    if (changed or subresource == "approval") and not _may(core, verb, signer):
        raise forbidden(RESOURCE, name, f'user not permitted to {verb} requests with signerName "{signer}"',
                        "certificates.k8s.io")
    return new


def _validate(name: str, status: Obj, old_status: Obj) -> None:
    conditions = status.get("conditions") or []
    causes = csr_condition_causes(conditions)
    for ctype in ("Approved", "Denied", "Failed"):
        if sum(c.get("type") == ctype for c in old_status.get("conditions") or ()) > \
                sum(c.get("type") == ctype for c in conditions):
            causes.append(_forbidden("status.conditions", f'updates may not remove a condition of type "{ctype}"'))
    if old_status.get("certificate") and status.get("certificate") != old_status["certificate"]:
        causes.append(_invalid("status.certificate", status.get("certificate"), "field is immutable"))
    if causes:
        raise invalid("CertificateSigningRequest.certificates.k8s.io", name, [c.to_dict() for c in causes],
                      "certificates.k8s.io")


def _stamped(core: ApiCore, conditions: list[Obj], before: list[Obj]) -> list[Obj]:
    """Fill lastUpdateTime, and lastTransitionTime when a condition is new or changed status (as the server does)."""
    now = core.now()
    previous = {c.get("type"): c for c in before}
    out = []
    for cond in conditions:
        cond = dict(cond)
        cond.setdefault("lastUpdateTime", now)
        if not cond.get("lastTransitionTime"):
            prior = previous.get(cond.get("type"))
            same = prior is not None and prior.get("status") == cond.get("status")
            cond["lastTransitionTime"] = (prior or {}).get("lastTransitionTime") if same else now
            if not cond["lastTransitionTime"]:
                cond["lastTransitionTime"] = now
        out.append(cond)
    return out


def _may(core: ApiCore, verb: str, signer: str) -> bool:
    """RBAC `verb` on signers.certificates.k8s.io, by the signer's name or its `domain/*` wildcard."""
    user = REQUEST_USER.get()
    if user.is_master:
        return True
    authorizer = Authorizer(core.store)
    names = [signer, signer.split("/", 1)[0] + "/*"] if "/" in signer else [signer]
    return any(authorizer.allowed(user, Attributes(verb=verb, api_group="certificates.k8s.io", resource="signers",
                                                   name=name)) for name in names)
