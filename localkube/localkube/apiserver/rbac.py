"""RBAC: what a user may do, decided from the Roles, ClusterRoles and their bindings in the store.

The rules are Kubernetes' own: a request becomes attributes (verb, API group, resource, subresource, name,
namespace, or a non-resource path) the way kube-apiserver's RequestInfoFactory reads a URL, and is allowed when some
binding naming the user (or one of its groups, or its ServiceAccount) grants a role with a matching rule. A
RoleBinding grants its rules in its own namespace only; non-resource URLs come from ClusterRoleBindings only.
Members of `system:masters` may do everything without any binding, as on a real server.

Bindings are read per request from the store's per-namespace lists (the request's namespace and the cluster
bindings), so a decision costs a few dict lookups, not a scan of every object.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localkube.apiserver.errors import ApiError
from localkube.apiserver.store import Store

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE_KEY = (RBAC_GROUP, "roles")
CLUSTER_ROLE_KEY = (RBAC_GROUP, "clusterroles")
ROLE_BINDING_KEY = (RBAC_GROUP, "rolebindings")
CLUSTER_ROLE_BINDING_KEY = (RBAC_GROUP, "clusterrolebindings")

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"

# URL segments after /api/VERSION or /apis/GROUP/VERSION that are verbs, not resources.
_SPECIAL_VERBS = ("proxy", "watch")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
# Streams that upgrade the connection: kube-apiserver 1.30+ authorizes them as `create` whatever the HTTP method.
CONNECT_SUBRESOURCES = ("exec", "attach", "portforward")
_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, Sequence[str]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_master(self) -> bool:
        return MASTERS in self.groups

    def info(self) -> dict[str, Any]:
        """The `UserInfo` shape of TokenReview and SelfSubjectReview."""
        out: dict[str, Any] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


def service_account_user(namespace: str, name: str, uid: str = "",
                         extra: Mapping[str, Sequence[str]] | None = None) -> User:
    return User(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
                (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}", AUTHENTICATED), uid,
                dict(extra or {}))


def parse_service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) of `system:serviceaccount:NS:NAME`, else None."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    parts = username[len(SERVICE_ACCOUNT_PREFIX):].split(":")
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, in the terms rules are written in."""

    verb: str
    resource_request: bool = True
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The attributes of an HTTP request, read from its URL as kube-apiserver's RequestInfoFactory reads it."""
    non_resource = Attributes(verb=method.lower(), resource_request=False, path=path)
    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(parts) < 3:
            return non_resource
        group, parts = parts[0], parts[1:]
    parts = parts[1:]  # the version
    verb = ""
    if parts and parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            return non_resource
        verb, parts = parts[0], parts[1:]
    if not verb:
        if method in ("GET", "HEAD"):
            verb = "get"
        elif method == "DELETE":
            verb = "delete"
        else:
            verb = _METHOD_VERBS.get(method, method.lower())
    namespace = ""
    if parts and parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = parts[0] if parts else ""
    name = parts[1] if len(parts) > 1 else ""
    subresource = parts[2] if len(parts) > 2 else ""
    if not name:
        if verb == "get":
            verb = "watch" if query.get("watch", "").lower() in ("true", "1") else "list"
        elif verb == "delete":
            verb = "deletecollection"
        if verb in ("list", "watch"):  # a list narrowed to one name is authorized as that name
            for term in (query.get("fieldSelector") or "").split(","):
                key, sep, value = term.partition("=")
                if sep and key.strip() == "metadata.name":
                    name = value.lstrip("=").strip()
    if subresource in CONNECT_SUBRESOURCES and resource == "pods":
        verb = "create"
    return Attributes(verb, True, group, resource, subresource, name, namespace, path)


def forbidden(user: User, attrs: Attributes, reason: str = "") -> ApiError:
    """kube-apiserver's 403 for a denied request, word for word."""
    if not attrs.resource_request:
        detail = f'User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    elif attrs.namespace:
        detail = (f'User "{user.name}" cannot {attrs.verb} resource "{attrs.full_resource}" in API group '
                  f'"{attrs.api_group}" in the namespace "{attrs.namespace}"')
    else:
        detail = (f'User "{user.name}" cannot {attrs.verb} resource "{attrs.full_resource}" in API group '
                  f'"{attrs.api_group}" at the cluster scope')
    if reason:
        detail += f": {reason}"
    if not attrs.resource_request:
        return ApiError(403, f"forbidden: {detail}")
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    details: dict[str, Any] = {"kind": attrs.resource}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.api_group:
        details["group"] = attrs.api_group
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    return ApiError(403, f"{subject} is forbidden: {detail}", details=details)


# -- rules -------------------------------------------------------------------------------------------------------


def _has(values: Sequence[str] | None, wanted: str) -> bool:
    return bool(values) and ("*" in values or wanted in values)  # type: ignore[operator]


def _resource_matches(rule_resources: Sequence[str] | None, attrs: Attributes) -> bool:
    for res in rule_resources or ():
        if res == "*" or res == attrs.full_resource:
            return True
        if attrs.subresource and res == f"*/{attrs.subresource}":
            return True
    return False


def _url_matches(urls: Sequence[str] | None, path: str) -> bool:
    return any(url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])) for url in urls or ())


def rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource_request:
        return _url_matches(rule.get("nonResourceURLs"), attrs.path)
    if not _has(rule.get("apiGroups"), attrs.api_group) or not _resource_matches(rule.get("resources"), attrs):
        return False
    names = rule.get("resourceNames")
    return not names or attrs.name in names


# -- bindings ----------------------------------------------------------------------------------------------------


def subject_matches(subject: Mapping[str, Any], user: User, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return user.name == f"{SERVICE_ACCOUNT_PREFIX}{ns}:{subject.get('name')}"
    return False


@dataclass(frozen=True)
class Grant:
    """One binding's role, as it applies to a user: the rules, and what to call them in review reasons."""

    binding_kind: str
    binding: str
    namespace: str
    role_kind: str
    role: str
    rules: tuple[Mapping[str, Any], ...]

    def reason(self, user: User) -> str:
        where = f' in namespace "{self.namespace}"' if self.namespace else ""
        return (f'RBAC: allowed by {self.binding_kind} "{self.binding}"{where} of {self.role_kind} "{self.role}" '
                f'to {_subject_word(user)} "{user.name}"')


def _subject_word(user: User) -> str:
    return "ServiceAccount" if parse_service_account(user.name) else "User"


class Authorizer:
    """Decisions from the RBAC objects in `store`, read afresh for every decision."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def grants(self, user: User, namespace: str) -> Iterator[Grant]:
        """Every role granted to `user` that applies in `namespace` ("" for cluster scope), cluster grants first."""
        store = self.store
        for binding in store.list(CLUSTER_ROLE_BINDING_KEY):
            if any(subject_matches(s, user, "") for s in binding.get("subjects") or ()):
                grant = self._grant(binding, "")
                if grant is not None:
                    yield grant
        if namespace:
            for binding in store.list(ROLE_BINDING_KEY, namespace):
                if any(subject_matches(s, user, namespace) for s in binding.get("subjects") or ()):
                    grant = self._grant(binding, namespace)
                    if grant is not None:
                        yield grant

    def _grant(self, binding: Mapping[str, Any], namespace: str) -> Grant | None:
        ref = binding.get("roleRef") or {}
        role_kind, role_name = ref.get("kind"), ref.get("name") or ""
        if role_kind == "ClusterRole":
            role = self.store.get(CLUSTER_ROLE_KEY, "", role_name)
        elif role_kind == "Role" and namespace:
            role = self.store.get(ROLE_KEY, namespace, role_name)
        else:
            return None
        if role is None:
            return None
        return Grant("RoleBinding" if namespace else "ClusterRoleBinding", binding["metadata"]["name"], namespace,
                     role_kind, role_name, tuple(role.get("rules") or ()))

    def decide(self, user: User, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason): the reason names the binding that allowed it, as RBAC's own reasons do."""
        if user.is_master:
            return True, ""
        namespace = attrs.namespace if attrs.resource_request else ""
        for grant in self.grants(user, namespace):
            if grant.namespace and not attrs.resource_request:
                continue
            for rule in grant.rules:
                if rule_allows(rule, attrs):
                    return True, grant.reason(user)
        return False, ""

    def allowed(self, user: User, attrs: Attributes) -> bool:
        return self.decide(user, attrs)[0]

    def rules(self, user: User, namespace: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(resourceRules, nonResourceRules) for a SelfSubjectRulesReview in `namespace`."""
        if user.is_master:
            return ([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                    [{"verbs": ["*"], "nonResourceURLs": ["*"]}])
        resource_rules: list[dict[str, Any]] = []
        non_resource_rules: list[dict[str, Any]] = []
        for grant in self.grants(user, namespace):
            for rule in grant.rules:
                if rule.get("nonResourceURLs"):
                    if not grant.namespace:
                        non_resource_rules.append({"verbs": list(rule.get("verbs") or ()),
                                                   "nonResourceURLs": list(rule["nonResourceURLs"])})
                    continue
                out = {"verbs": list(rule.get("verbs") or ()), "apiGroups": list(rule.get("apiGroups") or ()),
                       "resources": list(rule.get("resources") or ())}
                if rule.get("resourceNames"):
                    out["resourceNames"] = list(rule["resourceNames"])
                resource_rules.append(out)
        return resource_rules, non_resource_rules


# -- the default roles every cluster has -------------------------------------------------------------------------

_BOOTSTRAP_META = {"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                   "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}

BOOTSTRAP_CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                      {"nonResourceURLs": ["*"], "verbs": ["*"]}],
    "system:discovery": [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                              "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                          "verbs": ["get"]}],
    "system:basic-user": [{"apiGroups": ["authorization.k8s.io"],
                           "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                           "verbs": ["create"]},
                          {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
                           "verbs": ["create"]}],
    "system:public-info-viewer": [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                                   "verbs": ["get"]}],
    # What a component that delegates authentication and authorization to the API server binds (kr8s's tests, and
    # any server that checks its callers' tokens, use it for TokenReview).
    "system:auth-delegator": [{"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
                               "verbs": ["create"]},
                              {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"],
                               "verbs": ["create"]}],
}
# The user-facing roles (bound with a RoleBinding to give someone a namespace): each gathers the rules of every
# ClusterRole labelled `aggregate-to-<its name>`, which is how a CRD's chart lets namespace editors use its kinds.
# `edit` is part of `admin`, and `view` of `edit`. Name -> the roles it is aggregated into.
AGGREGATE_LABEL = "rbac.authorization.k8s.io/aggregate-to-{}"
AGGREGATED_CLUSTER_ROLES: dict[str, tuple[str, ...]] = {"admin": (), "edit": ("admin",), "view": ("edit",)}
_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
# Their base rules, for the kinds LocalKube serves (kube-apiserver's system:aggregate-to-* roles cover more).
AGGREGATE_BASE_RULES: dict[str, list[dict[str, Any]]] = {
    "view": [
        {"apiGroups": [""], "resources": ["configmaps", "endpoints", "persistentvolumeclaims", "pods",
                                          "replicationcontrollers", "serviceaccounts", "services", "services/status",
                                          "bindings", "events", "limitranges", "namespaces/status", "pods/log",
                                          "pods/status", "resourcequotas", "resourcequotas/status", "namespaces"],
         "verbs": _READ},
        {"apiGroups": ["apps"], "resources": ["controllerrevisions", "daemonsets", "deployments", "deployments/scale",
                                              "deployments/status", "replicasets", "replicasets/scale",
                                              "replicasets/status", "statefulsets", "statefulsets/scale"],
         "verbs": _READ},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers", "horizontalpodautoscalers/status"],
         "verbs": _READ},
        {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs", "jobs/status"], "verbs": _READ},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": _READ},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": _READ},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": _READ},
    ],
    "edit": [
        {"apiGroups": [""], "resources": ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
                                          "services/proxy"], "verbs": _READ},
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
        {"apiGroups": [""], "resources": ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
         "verbs": _WRITE},
        {"apiGroups": [""], "resources": ["pods/eviction", "serviceaccounts/token"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                                          "secrets", "serviceaccounts", "services", "services/proxy"],
         "verbs": _WRITE},
        {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "deployments/scale", "replicasets",
                                              "replicasets/scale", "statefulsets", "statefulsets/scale"],
         "verbs": _WRITE},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": _WRITE},
        {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": _WRITE},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": _WRITE},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": _WRITE},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": [*_READ, *_WRITE]},
    ],
    "admin": [
        {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]},
        {"apiGroups": [RBAC_GROUP], "resources": ["rolebindings", "roles"], "verbs": [*_READ, *_WRITE]},
    ],
}
# ClusterRoleBinding name (= ClusterRole name) -> the groups bound to it.
BOOTSTRAP_BINDINGS: dict[str, tuple[str, ...]] = {
    "cluster-admin": (MASTERS,),
    "system:discovery": (AUTHENTICATED,),
    "system:basic-user": (AUTHENTICATED,),
    "system:public-info-viewer": (AUTHENTICATED, UNAUTHENTICATED),
}


def _cluster_role(name: str, rules: list[dict[str, Any]], aggregated_into: Sequence[str] = (),
                  aggregates: str | None = None) -> dict[str, Any]:
    labels = {**_BOOTSTRAP_META["labels"], **{AGGREGATE_LABEL.format(into): "true" for into in aggregated_into}}
    role = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole",
            "metadata": {"name": name, **_BOOTSTRAP_META, "labels": labels}, "rules": rules}
    if aggregates:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGGREGATE_LABEL.format(aggregates):
                                                                             "true"}}]}
    return role


def bootstrap_objects() -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
    """The ClusterRoles and ClusterRoleBindings kube-apiserver creates at start, as (key, object)."""
    for name, rules in BOOTSTRAP_CLUSTER_ROLES.items():
        yield CLUSTER_ROLE_KEY, _cluster_role(name, rules)
    for name, into in AGGREGATED_CLUSTER_ROLES.items():
        yield CLUSTER_ROLE_KEY, _cluster_role(name, [], into, aggregates=name)
        yield CLUSTER_ROLE_KEY, _cluster_role(f"system:aggregate-to-{name}", AGGREGATE_BASE_RULES[name], (name,))
    for name, groups in BOOTSTRAP_BINDINGS.items():
        yield CLUSTER_ROLE_BINDING_KEY, {
            "apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, **_BOOTSTRAP_META},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups]}
