"""Answers to the review kinds (TokenReview, SelfSubjectReview, access and rules reviews): computed, never stored.

Every answer comes from the same authenticator and RBAC evaluator that guard the requests themselves, so
`kubectl auth can-i`, `kubectl auth whoami` and kr8s's `whoami()` tell the truth about what LocalKube will do.
"""

from __future__ import annotations

from typing import Any

from localkube.apiserver.authn import ADMIN, ADMIN_TOKEN, Authenticator
from localkube.apiserver.rbac import Attributes, Authorizer, User


def answer(kind: str, review: dict[str, Any], user: User, authorizer: Authorizer,
           authenticator: Authenticator | None = None) -> dict[str, Any]:
    """Fill in `review["status"]` for a review created by `user`."""
    review.setdefault("metadata", {})
    spec = review.get("spec") or {}
    if kind == "TokenReview":
        review["status"] = _token_review(spec, authenticator)
    elif kind == "SelfSubjectReview":
        review["status"] = {"userInfo": user.info()}
    elif kind == "SelfSubjectRulesReview":
        resource_rules, non_resource_rules = authorizer.rules(user, spec.get("namespace") or "")
        review["status"] = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                            "incomplete": False}
    elif kind == "SubjectAccessReview":
        groups = tuple(spec.get("groups") or ())
        subject = User(spec.get("user") or "", groups, spec.get("uid") or "", spec.get("extra") or {})
        review["status"] = _access(authorizer, subject, spec)
    else:  # SelfSubjectAccessReview
        review["status"] = _access(authorizer, user, spec)
    return review


def _access(authorizer: Authorizer, user: User, spec: dict[str, Any]) -> dict[str, Any]:
    resource = spec.get("resourceAttributes")
    if resource is not None:
        attrs = Attributes(resource.get("verb") or "", True, resource.get("group") or "",
                           resource.get("resource") or "", resource.get("subresource") or "",
                           resource.get("name") or "", resource.get("namespace") or "")
    else:
        other = spec.get("nonResourceAttributes") or {}
        attrs = Attributes(other.get("verb") or "", False, path=other.get("path") or "")
    allowed, reason = authorizer.decide(user, attrs)
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return status


def _token_review(spec: dict[str, Any], authenticator: Authenticator | None) -> dict[str, Any]:
    token = spec.get("token") or ""
    audiences = list(spec.get("audiences") or [])
    if token == ADMIN_TOKEN:
        return {"authenticated": True, "user": ADMIN.info(), "audiences": audiences}
    verified = authenticator.verify(token, audiences or None) if authenticator is not None else None
    if verified is None:
        return {"user": {}, "error": "[invalid bearer token, token lookup failed]"}
    user, token_audiences = verified
    return {"authenticated": True, "user": user.info(),
            "audiences": [a for a in token_audiences if not audiences or a in audiences]}

