"""Answers to the review kinds (TokenReview, access reviews): computed per request, never stored.

LocalKube does not authenticate or authorize (every request is allowed), so every token is one user,
`localkube-admin` in `system:masters`, and every access review is allowed. Clients that ask -- kr8s's
`whoami()`, `kubectl auth whoami` and `kubectl auth can-i` -- get those true answers.
"""

from __future__ import annotations

from typing import Any

USER = {"username": "localkube-admin", "uid": "localkube-admin", "groups": ["system:masters", "system:authenticated"]}


def answer(kind: str, review: dict[str, Any]) -> dict[str, Any]:
    review.setdefault("metadata", {})
    if kind == "TokenReview":
        review["status"] = {"authenticated": True, "user": dict(USER), "audiences": (review.get("spec") or {}).get(
            "audiences") or []}
    elif kind == "SelfSubjectReview":
        review["status"] = {"userInfo": dict(USER)}
    elif kind == "SelfSubjectRulesReview":
        review["status"] = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": False}
    else:  # SelfSubjectAccessReview, SubjectAccessReview
        review["status"] = {"allowed": True, "reason": "LocalKube does not enforce authorization"}
    return review
