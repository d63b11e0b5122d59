"""The RBAC evaluator, request attributes, forbidden wording and ServiceAccount tokens, on a bare store."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from localkube.apiserver.authn import ADMIN, Authenticator
from localkube.apiserver.errors import ApiError
from localkube.apiserver.rbac import (
    CLUSTER_ROLE_BINDING_KEY,
    CLUSTER_ROLE_KEY,
    ROLE_BINDING_KEY,
    ROLE_KEY,
    Attributes,
    Authorizer,
    User,
    bootstrap_objects,
    forbidden,
    request_attributes,
    service_account_user,
)
from localkube.apiserver.store import ADDED, Store

SA = service_account_user("team", "bot")
OTHER = service_account_user("team", "other")


def _put(store: Store, key: tuple[str, str], obj: dict[str, Any]) -> None:
    obj.setdefault("metadata", {}).setdefault("uid", str(uuid.uuid4()))
    store.put(key, obj, ADDED)


def _role(store: Store, name: str, rules: list[dict[str, Any]], namespace: str | None = None) -> None:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    _put(store, ROLE_KEY if namespace is not None else CLUSTER_ROLE_KEY, {"metadata": meta, "rules": rules})


def _bind(store: Store, name: str, role_kind: str, role: str, subjects: list[dict[str, Any]],
          namespace: str | None = None) -> None:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    _put(store, ROLE_BINDING_KEY if namespace is not None else CLUSTER_ROLE_BINDING_KEY,
         {"metadata": meta, "roleRef": {"kind": role_kind, "name": role}, "subjects": subjects})


def _attrs(verb: str, resource: str, namespace: str = "team", name: str = "", group: str = "",
           sub: str = "") -> Attributes:
    return Attributes(verb, True, group, resource, sub, name, namespace)


@pytest.fixture
def store() -> Store:
    return Store()


def test_role_binding_grants_in_its_namespace_only(store: Store) -> None:
    _role(store, "reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}], "team")
    _bind(store, "rb", "Role", "reader", [{"kind": "ServiceAccount", "name": "bot"}], "team")
    authz = Authorizer(store)
    allowed, reason = authz.decide(SA, _attrs("list", "pods"))
    assert allowed and reason == ('RBAC: allowed by RoleBinding "rb" in namespace "team" of Role "reader" to '
                                  'ServiceAccount "system:serviceaccount:team:bot"')
    assert not authz.allowed(SA, _attrs("list", "pods", namespace="elsewhere"))
    assert not authz.allowed(SA, _attrs("delete", "pods", name="x"))
    assert not authz.allowed(SA, _attrs("list", "pods", namespace=""))  # not cluster-wide
    assert not authz.allowed(OTHER, _attrs("list", "pods"))


def test_cluster_role_through_role_binding_is_confined_and_cluster_binding_is_not(store: Store) -> None:
    _role(store, "cm-editor", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}])
    _bind(store, "rb", "ClusterRole", "cm-editor", [{"kind": "Group", "name": "system:serviceaccounts:team"}],
          "team")
    authz = Authorizer(store)
    assert authz.allowed(SA, _attrs("create", "configmaps"))
    assert authz.allowed(OTHER, _attrs("delete", "configmaps", name="x"))  # the group holds both
    assert not authz.allowed(SA, _attrs("create", "configmaps", namespace="prod"))
    _bind(store, "crb", "ClusterRole", "cm-editor", [{"kind": "User", "name": SA.name}])
    assert authz.allowed(SA, _attrs("create", "configmaps", namespace="prod"))
    assert authz.allowed(SA, _attrs("list", "configmaps", namespace=""))
    assert not authz.allowed(OTHER, _attrs("create", "configmaps", namespace="prod"))


def test_binding_to_a_missing_role_or_a_role_in_cluster_binding_grants_nothing(store: Store) -> None:
    _role(store, "r", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], "team")
    _bind(store, "crb", "Role", "r", [{"kind": "ServiceAccount", "name": "bot", "namespace": "team"}])
    _bind(store, "rb", "ClusterRole", "missing", [{"kind": "ServiceAccount", "name": "bot"}], "team")
    assert not Authorizer(store).allowed(SA, _attrs("get", "pods", name="x"))


def test_resource_names_subresources_and_wildcards(store: Store) -> None:
    _role(store, "r", [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["only"], "verbs": ["get", "update"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["patch"]},
        {"apiGroups": ["*"], "resources": ["leases"], "verbs": ["*"]},
    ], "team")
    _bind(store, "rb", "Role", "r", [{"kind": "User", "name": SA.name}], "team")
    authz = Authorizer(store)
    assert authz.allowed(SA, _attrs("get", "configmaps", name="only"))
    assert not authz.allowed(SA, _attrs("get", "configmaps", name="other"))
    assert not authz.allowed(SA, _attrs("list", "configmaps"))  # no name: resourceNames never match a list
    assert authz.allowed(SA, _attrs("get", "pods", name="p", sub="log"))
    assert not authz.allowed(SA, _attrs("get", "pods", name="p"))
    assert not authz.allowed(SA, _attrs("create", "pods", name="p", sub="portforward"))
    assert authz.allowed(SA, _attrs("patch", "deployments", name="d", group="apps", sub="scale"))
    assert not authz.allowed(SA, _attrs("patch", "deployments", name="d", group="apps"))
    assert authz.allowed(SA, _attrs("watch", "leases", group="coordination.k8s.io"))


def test_non_resource_urls_come_from_cluster_bindings(store: Store) -> None:
    for key, obj in bootstrap_objects():
        _put(store, key, obj)
    authz = Authorizer(store)
    assert authz.allowed(SA, Attributes("get", False, path="/apis/apps/v1"))
    assert authz.allowed(SA, Attributes("get", False, path="/version"))
    assert not authz.allowed(SA, Attributes("get", False, path="/metrics"))
    assert not authz.allowed(SA, Attributes("post", False, path="/api"))
    assert authz.allowed(SA, _attrs("create", "selfsubjectaccessreviews", "", group="authorization.k8s.io"))
    assert not authz.allowed(SA, _attrs("create", "tokenreviews", "", group="authentication.k8s.io"))
    assert authz.allowed(User("anyone", ("system:masters",)), _attrs("delete", "nodes", "", name="n"))


def test_rules_review_lists_what_applies_in_the_namespace(store: Store) -> None:
    _role(store, "r", [{"apiGroups": [""], "resources": ["pods"], "resourceNames": ["p"], "verbs": ["get"]}],
          "team")
    _bind(store, "rb", "Role", "r", [{"kind": "ServiceAccount", "name": "bot"}], "team")
    authz = Authorizer(store)
    rules, non_resource = authz.rules(SA, "team")
    assert rules == [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["p"]}]
    assert non_resource == []
    assert authz.rules(SA, "other") == ([], [])


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/api/v1/namespaces/ns/pods", {}, _attrs("list", "pods", "ns")),
    ("GET", "/api/v1/namespaces/ns/pods", {"watch": "true"}, _attrs("watch", "pods", "ns")),
    ("GET", "/api/v1/watch/namespaces/ns/pods/p", {}, _attrs("watch", "pods", "ns", "p")),
    ("GET", "/api/v1/namespaces/ns/pods", {"fieldSelector": "metadata.name=p"}, _attrs("list", "pods", "ns", "p")),
    ("GET", "/api/v1/namespaces/ns/pods/p", {}, _attrs("get", "pods", "ns", "p")),
    ("HEAD", "/api/v1/namespaces/ns/pods/p", {}, _attrs("get", "pods", "ns", "p")),
    ("GET", "/api/v1/namespaces/ns/pods/p/log", {}, _attrs("get", "pods", "ns", "p", sub="log")),
    ("GET", "/api/v1/namespaces/ns/pods/p/portforward", {}, _attrs("create", "pods", "ns", "p", sub="portforward")),
    ("POST", "/api/v1/namespaces/ns/pods/p/exec", {}, _attrs("create", "pods", "ns", "p", sub="exec")),
    ("POST", "/apis/apps/v1/namespaces/ns/deployments", {}, _attrs("create", "deployments", "ns", group="apps")),
    ("PUT", "/apis/apps/v1/namespaces/ns/deployments/d/scale", {},
     _attrs("update", "deployments", "ns", "d", "apps", "scale")),
    ("PATCH", "/api/v1/namespaces/ns/pods/p/status", {}, _attrs("patch", "pods", "ns", "p", sub="status")),
    ("DELETE", "/api/v1/namespaces/ns/pods/p", {}, _attrs("delete", "pods", "ns", "p")),
    ("DELETE", "/api/v1/namespaces/ns/pods", {}, _attrs("deletecollection", "pods", "ns")),
    ("GET", "/api/v1/namespaces/ns", {}, _attrs("get", "namespaces", "ns", "ns")),
    ("PUT", "/api/v1/namespaces/ns/finalize", {}, _attrs("update", "namespaces", "ns", "ns", sub="finalize")),
    ("GET", "/api/v1/nodes", {}, _attrs("list", "nodes", "")),
    ("POST", "/api/v1/namespaces/ns/serviceaccounts/sa/token", {},
     _attrs("create", "serviceaccounts", "ns", "sa", sub="token")),
])
def test_request_attributes_read_urls_like_kube_apiserver(method: str, path: str, query: dict[str, str],
                                                           expected: Attributes) -> None:
    assert request_attributes(method, path, query) == Attributes(**{**expected.__dict__, "path": path})


@pytest.mark.parametrize("path", ["/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1", "/version",
                                  "/openapi/v3/apis/apps/v1", "/healthz"])
def test_discovery_paths_are_non_resource_requests(path: str) -> None:
    attrs = request_attributes("GET", path, {})
    assert not attrs.resource_request and attrs.verb == "get" and attrs.path == path


def _status(err: ApiError) -> dict[str, Any]:
    return err.status()


def test_forbidden_wording_is_kube_apiservers() -> None:
    user = SA
    listed = _status(forbidden(user, _attrs("list", "pods", "ns")))
    assert listed["message"] == ('pods is forbidden: User "system:serviceaccount:team:bot" cannot list resource '
                                 '"pods" in API group "" in the namespace "ns"')
    assert (listed["code"], listed["reason"], listed["details"]) == (403, "Forbidden", {"kind": "pods"})
    named = _status(forbidden(user, _attrs("create", "pods", "ns", "x", sub="portforward")))
    assert named["message"] == ('pods "x" is forbidden: User "system:serviceaccount:team:bot" cannot create '
                                'resource "pods/portforward" in API group "" in the namespace "ns"')
    assert named["details"] == {"kind": "pods", "name": "x"}
    cluster = _status(forbidden(user, _attrs("list", "deployments", "", group="apps")))
    assert cluster["message"] == ('deployments.apps is forbidden: User "system:serviceaccount:team:bot" cannot '
                                  'list resource "deployments" in API group "apps" at the cluster scope')
    assert cluster["details"] == {"kind": "deployments", "group": "apps"}
    path = _status(forbidden(user, Attributes("get", False, path="/metrics")))
    assert path["message"] == 'forbidden: User "system:serviceaccount:team:bot" cannot get path "/metrics"'


# -- tokens ------------------------------------------------------------------------------------------------------


def _service_account(store: Store, namespace: str = "team", name: str = "bot") -> dict[str, Any]:
    sa = {"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())}}
    store.put(("", "serviceaccounts"), sa, ADDED)
    return sa


def test_tokens_name_their_account_until_expiry_or_deletion(store: Store, tmp_path: Path) -> None:
    auth = Authenticator(store, tmp_path, Authorizer(store))
    now = [1_000_000.0]
    auth.clock = lambda: now[0]
    sa = _service_account(store)
    token, expires = auth.issue(sa, 600)
    assert expires == "1970-01-12T13:56:40Z"
    user = auth.authenticate({"Authorization": f"Bearer {token}"})
    assert user.name == "system:serviceaccount:team:bot" and user.uid == sa["metadata"]["uid"]
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated")
    now[0] += 599
    assert auth.user_for_token(token) == user
    now[0] += 1
    assert auth.user_for_token(token) is None
    with pytest.raises(ApiError) as err:
        auth.authenticate({"Authorization": f"Bearer {token}"})
    assert err.value.status()["code"] == 401 and err.value.status()["reason"] == "Unauthorized"
    # Deleted and recreated under the same name: a new uid, so the old token is void.
    fresh, _ = auth.issue(sa, 600)
    store.remove(("", "serviceaccounts"), sa)
    _service_account(store)
    assert auth.user_for_token(fresh) is None


def test_tokens_survive_a_new_authenticator_on_the_same_state_but_not_tampering(store: Store,
                                                                               tmp_path: Path) -> None:
    sa = _service_account(store)
    token, _ = Authenticator(store, tmp_path, Authorizer(store)).issue(sa)
    again = Authenticator(store, tmp_path, Authorizer(store))
    assert again.user_for_token(token) is not None
    header, payload, signature = token.split(".")
    flipped = signature[:5] + ("B" if signature[5] != "B" else "C") + signature[6:]
    assert again.user_for_token(f"{header}.{payload}.{flipped}") is None
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["kubernetes.io"]["namespace"] = "kube-system"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert again.user_for_token(f"{header}.{forged}.{signature}") is None
    (tmp_path / "other").mkdir()
    assert Authenticator(store, tmp_path / "other", Authorizer(store)).user_for_token(token) is None
    assert again.user_for_token("localkube") is ADMIN


def test_impersonation_needs_the_impersonate_verb(store: Store, tmp_path: Path) -> None:
    auth = Authenticator(store, tmp_path, Authorizer(store))
    sa = _service_account(store)
    token, _ = auth.issue(sa)
    as_sa = auth.authenticate({"Authorization": "Bearer localkube", "Impersonate-User": SA.name})
    assert as_sa.name == SA.name and "system:serviceaccounts:team" in as_sa.groups
    assert not as_sa.is_master
    with pytest.raises(ApiError) as err:
        auth.authenticate({"Authorization": f"Bearer {token}", "Impersonate-User": "alice"})
    assert err.value.message == ('users "alice" is forbidden: User "system:serviceaccount:team:bot" cannot '
                                 'impersonate resource "users" in API group "" at the cluster scope')


# -- reviews -----------------------------------------------------------------------------------------------------


def test_reviews_answer_from_the_same_evaluator(store: Store, tmp_path: Path) -> None:
    from localkube.apiserver import reviews

    authz = Authorizer(store)
    auth = Authenticator(store, tmp_path, authz)
    sa = _service_account(store)
    _role(store, "r", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}], "team")
    _bind(store, "rb", "Role", "r", [{"kind": "ServiceAccount", "name": "bot"}], "team")
    spec = {"user": SA.name, "groups": list(SA.groups),
            "resourceAttributes": {"namespace": "team", "verb": "list", "resource": "pods"}}
    allowed = reviews.answer("SubjectAccessReview", {"spec": spec}, ADMIN, authz, auth)["status"]
    assert allowed == {"allowed": True, "reason": 'RBAC: allowed by RoleBinding "rb" in namespace "team" of Role "r" '
                                                  'to ServiceAccount "system:serviceaccount:team:bot"'}
    spec["resourceAttributes"]["verb"] = "delete"
    assert reviews.answer("SubjectAccessReview", {"spec": spec}, ADMIN, authz, auth)["status"] == {"allowed": False}
    own = {"spec": {"nonResourceAttributes": {"path": "/api", "verb": "get"}}}
    assert reviews.answer("SelfSubjectAccessReview", own, SA, authz, auth)["status"] == {"allowed": False}
    for key, obj in bootstrap_objects():
        _put(store, key, obj)
    assert reviews.answer("SelfSubjectAccessReview", own, SA, authz, auth)["status"]["allowed"] is True
    token, _ = auth.issue(sa)
    review = reviews.answer("TokenReview", {"spec": {"token": token}}, ADMIN, authz, auth)["status"]
    assert review["authenticated"] is True and review["user"]["username"] == SA.name
    bad = reviews.answer("TokenReview", {"spec": {"token": token + "x"}}, ADMIN, authz, auth)["status"]
    assert "authenticated" not in bad and bad["error"]
    rules = reviews.answer("SelfSubjectRulesReview", {"spec": {"namespace": "team"}}, ADMIN, authz, auth)["status"]
    assert rules["resourceRules"] == [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
    me = reviews.answer("SelfSubjectReview", {}, SA, authz, auth)["status"]["userInfo"]
    assert me == {"username": SA.name, "groups": list(SA.groups)}
