"""Authentication: who a request is, from its bearer token and impersonation headers.

- No `Authorization` header over HTTPS (the listener in the kubeconfig LocalKube writes): `system:anonymous`, in
  `system:unauthenticated`, as kube-apiserver's anonymous authentication makes it: RBAC lets it read `/version` and
  the health endpoints, nothing else.
- No `Authorization` header over plain HTTP (a listener that is off unless asked for, for raw-HTTP tests and
  benchmarks): the admin, LocalKube's equivalent of kube-apiserver's old insecure port. kubectl never sends a token
  over `http://` anyway.
- A client certificate signed by the cluster's CA (x509 authentication, checked first as kube-apiserver does): the
  subject's CN is the user, each O a group. The kubeconfig LocalKube writes carries the admin's,
  `kubernetes-admin` in `system:masters`, as kubeadm's and kind's do.
- `Bearer localkube` (the token the kubeconfig LocalKube writes also carries): the same admin.
- A ServiceAccount token (issued by the TokenRequest API, `kubectl create token`, or the kubelet for a pod):
  `system:serviceaccount:NS:NAME`, while it is unexpired, its ServiceAccount still exists with the uid it was issued
  for, and the pod it is bound to (if any) still exists.
- Anything else: 401 `Unauthorized`.

Tokens are JWT-shaped (`header.payload.signature`, base64url) and signed with HMAC-SHA256 under a key kept in the
state directory, so they stay valid across an API restart and a LocalKube restart with the same state.
`Impersonate-User`/`Impersonate-Group` are honoured for users allowed to `impersonate` (everyone in
`system:masters`), as `kubectl --as` needs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from localkube.apiserver.certs import ADMIN_USER
from localkube.apiserver.errors import ApiError
from localkube.apiserver.rbac import (
    AUTHENTICATED,
    MASTERS,
    UNAUTHENTICATED,
    Attributes,
    Authorizer,
    User,
    forbidden,
    parse_service_account,
    service_account_user,
)
from localkube.apiserver.store import Store

ADMIN_TOKEN = "localkube"
ADMIN = User(ADMIN_USER, (MASTERS, AUTHENTICATED))
# Who a request without credentials is over HTTPS, as with kube-apiserver's --anonymous-auth (the default).
ANONYMOUS = User("system:anonymous", (UNAUTHENTICATED,))
# The user of the request being served, for what the API records about its author (a CSR's spec.username) and
# admission plugins that authorize (CSR approval). Set by the server for each request; in-process writers (the
# controllers, the kubelet) are the admin.
REQUEST_USER: ContextVar[User] = ContextVar("localkube_request_user", default=ADMIN)
API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
ISSUER = API_AUDIENCE
KEY_FILE = "serviceaccount.key"
SERVICE_ACCOUNT_KEY = ("", "serviceaccounts")
POD_KEY = ("", "pods")
# TokenRequest limits of kube-apiserver: at least 10 minutes, one hour when unspecified.
MIN_EXPIRATION = 600
DEFAULT_EXPIRATION = 3600


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _load_key(state_dir: Path) -> bytes:
    path = state_dir / KEY_FILE
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key


class Authenticator:
    """Issues and checks ServiceAccount tokens; turns request headers into a `User`.

    `clock` (seconds since the epoch) is the only time source, so tests can move it to see tokens expire.
    """

    def __init__(self, store: Store, state_dir: Path, authorizer: Authorizer) -> None:
        self.store = store
        self.authorizer = authorizer
        self._key = _load_key(state_dir)
        self.clock: Callable[[], float] = time.time

    # -- tokens --------------------------------------------------------------------------------------------

    def issue(self, sa: Mapping[str, Any], expiration_seconds: int = DEFAULT_EXPIRATION,
              audiences: list[str] | None = None, pod: Mapping[str, Any] | None = None) -> tuple[str, str]:
        """(token, expirationTimestamp) for ServiceAccount `sa`, optionally bound to `pod`."""
        now = int(self.clock())
        exp = now + int(expiration_seconds)
        meta = sa["metadata"]
        claims: dict[str, Any] = {
            "aud": audiences or [API_AUDIENCE], "exp": exp, "iat": now, "nbf": now, "iss": ISSUER,
            "jti": secrets.token_hex(8), "sub": f"system:serviceaccount:{meta['namespace']}:{meta['name']}",
            "kubernetes.io": {"namespace": meta["namespace"],
                              "serviceaccount": {"name": meta["name"], "uid": meta["uid"]}},
        }
        if pod is not None:
            claims["kubernetes.io"]["pod"] = {"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        expires = dt.datetime.fromtimestamp(exp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{header}.{payload}.{signature}", expires

    def verify(self, token: str, audiences: list[str] | None = None) -> tuple[User, list[str]] | None:
        """The user a ServiceAccount token stands for and its audiences, or None if it is not valid now."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = _b64(hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            return None
        try:
            claims = json.loads(_unb64(parts[1]))
            info = claims["kubernetes.io"]
            ns, sa_ref = info["namespace"], info["serviceaccount"]
        except (ValueError, KeyError, TypeError):
            return None
        now = self.clock()
        if not (claims.get("nbf", 0) <= now < claims.get("exp", 0)):
            return None
        token_audiences = list(claims.get("aud") or [])
        if not set(token_audiences) & set(audiences or [API_AUDIENCE]):
            return None
        sa = self.store.get(SERVICE_ACCOUNT_KEY, ns, sa_ref.get("name", ""))
        if sa is None or sa["metadata"]["uid"] != sa_ref.get("uid"):
            return None
        extra: dict[str, list[str]] = {}
        pod_ref = info.get("pod")
        if pod_ref:
            pod = self.store.get(POD_KEY, ns, pod_ref.get("name", ""))
            if pod is None or pod["metadata"]["uid"] != pod_ref.get("uid"):
                return None
            extra = {"authentication.kubernetes.io/pod-name": [pod_ref["name"]],
                     "authentication.kubernetes.io/pod-uid": [pod_ref["uid"]]}
        return service_account_user(ns, sa_ref["name"], sa_ref.get("uid", ""), extra), token_audiences

    @staticmethod
    def user_for_certificate(peercert: Mapping[str, Any] | None) -> User | None:
        """The user a verified client certificate names (`ssl.SSLSocket.getpeercert()` form), if any."""
        if not peercert:
            return None
        fields = [(key, value) for rdn in peercert.get("subject", ()) for key, value in rdn]
        names = [value for key, value in fields if key == "commonName"]
        if not names:
            return None
        groups = tuple(value for key, value in fields if key == "organizationName")
        return User(names[0], (*groups, *(() if AUTHENTICATED in groups else (AUTHENTICATED,))))

    def user_for_token(self, token: str, audiences: list[str] | None = None) -> User | None:
        if token == ADMIN_TOKEN:
            return ADMIN
        verified = self.verify(token, audiences)
        return verified[0] if verified else None

    # -- requests ------------------------------------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str], *, secure: bool = True,
                     peercert: Mapping[str, Any] | None = None) -> User:
        """The user of a request (401 if its credentials are not valid), after any impersonation: its client
        certificate first, then its bearer token. Without either: `system:anonymous` over HTTPS, the admin over
        plain HTTP (the insecure port)."""
        authorization = headers.get("Authorization")
        certified = self.user_for_certificate(peercert)
        if certified is not None:
            user = certified
        elif authorization is None:
            user = ANONYMOUS if secure else ADMIN
        else:
            scheme, _, token = authorization.partition(" ")
            found = self.user_for_token(token.strip()) if scheme.lower() == "bearer" else None
            if found is None:
                raise unauthorized()
            user = found
        if "Impersonate-User" in headers:
            return self._impersonate(user, headers)
        return user

    def _impersonate(self, user: User, headers: Any) -> User:
        name = headers["Impersonate-User"]
        groups = headers.getall("Impersonate-Group", []) if hasattr(headers, "getall") else []
        sa = parse_service_account(name)
        if sa is not None:
            target = Attributes("impersonate", True, "", "serviceaccounts", name=sa[1], namespace=sa[0])
        else:
            target = Attributes("impersonate", True, "", "users", name=name)
        checks = [target, *(Attributes("impersonate", True, "", "groups", name=g) for g in groups)]
        for attrs in checks:
            if not self.authorizer.allowed(user, attrs):
                raise forbidden(user, attrs)
        if sa is not None:
            base = service_account_user(*sa)
            extra_groups = tuple(g for g in groups if g not in base.groups)
            return User(base.name, base.groups + extra_groups)
        return User(name, (*groups, *(() if AUTHENTICATED in groups else (AUTHENTICATED,))))
