"""RBAC for ServiceAccounts, through the real kubectl and kr8s: what is allowed, what is refused and how.

Each test makes its own ServiceAccount and roles in its fresh namespace; a kubeconfig holding a token for the
account comes from `kube.service_account_kubeconfig` (on other clusters, `kubectl create token`).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx_ws
import kr8s
import kr8s.asyncio
import pytest
import yaml

from localkube.pytest_plugin import KubeHandle
from localkube.testing import until


def _apply(kube: KubeHandle, *docs: dict[str, Any]) -> None:
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def _service_account(namespace: str, name: str = "bot") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}


def _role(namespace: str, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": namespace}, "rules": rules}


def _binding(namespace: str | None, name: str, role_kind: str, role: str, sa_namespace: str,
             sa: str = "bot") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding" if namespace is not None else "ClusterRoleBinding", "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": sa_namespace}]}


def _as(kube: KubeHandle, kubeconfig: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """kubectl with another kubeconfig (its own context namespace)."""
    return kube.kubectl("--kubeconfig", str(kubeconfig), *args, check=check)


def _forbidden(user: str, verb: str, resource: str, namespace: str | None, name: str = "",
               group: str = "") -> str:
    plural = resource.split("/")[0]
    subject = f"{plural}.{group}" if group else plural
    subject += f' "{name}"' if name else ""
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return (f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{group}" '
            f"{where}")


@pytest.fixture
def other_namespace(kube: KubeHandle) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def bot(kube: KubeHandle, namespace: str) -> str:
    """A ServiceAccount `bot` in the test namespace; returns its user name."""
    _apply(kube, _service_account(namespace))
    return f"system:serviceaccount:{namespace}:bot"


def test_every_namespace_has_a_default_service_account_at_once(kube: KubeHandle) -> None:
    name = f"t-{uuid.uuid4().hex[:10]}"
    try:
        created = kube.kubectl("create", "namespace", name)
        assert "created" in created.stdout
        sa = json.loads(kube.kubectl("get", "serviceaccount", "default", "-n", name, "-o", "json").stdout)
        assert sa["metadata"]["namespace"] == name
        for ns in ("default", "kube-system"):
            kube.kubectl("get", "serviceaccount", "default", "-n", ns)
    finally:
        kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_a_deleted_default_service_account_comes_back(kube: KubeHandle, namespace: str) -> None:
    def uid() -> str | None:
        got = kube.kubectl("get", "serviceaccount", "default", "-n", namespace, "-o", "jsonpath={.metadata.uid}",
                           check=False)
        return got.stdout if got.returncode == 0 else None

    first = uid()
    assert first
    kube.kubectl("delete", "serviceaccount", "default", "-n", namespace)
    assert until(lambda: (u := uid()) and u != first and u, "default to be recreated")


def test_role_lets_a_service_account_list_pods_in_its_namespace_only(kube: KubeHandle, namespace: str, bot: str,
                                                                     other_namespace: str) -> None:
    _apply(kube, _role(namespace, "pod-reader", [{"apiGroups": [""], "resources": ["pods"],
                                                  "verbs": ["get", "list"]}]),
           _binding(namespace, "bot-reads-pods", "Role", "pod-reader", namespace))
    config = kube.service_account_kubeconfig(namespace, "bot")
    listed = _as(kube, config, "get", "pods", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    denied = _as(kube, config, "get", "pods", "-n", other_namespace)
    assert denied.returncode == 1
    assert denied.stderr.strip() == "Error from server (Forbidden): " + _forbidden(bot, "list", "pods",
                                                                                   other_namespace)
    deleted = _as(kube, config, "delete", "pod", "x", "-n", namespace)
    assert "Error from server (Forbidden): " + _forbidden(bot, "delete", "pods", namespace, "x") in deleted.stderr


async def test_kr8s_gets_the_403_status(kube: KubeHandle, namespace: str, bot: str, other_namespace: str) -> None:
    _apply(kube, _role(namespace, "pod-reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]),
           _binding(namespace, "bot-reads-pods", "Role", "pod-reader", namespace))
    api = await kr8s.asyncio.api(kubeconfig=str(kube.service_account_kubeconfig(namespace, "bot")))
    assert [p async for p in api.get("pods", namespace=namespace)] == []
    with pytest.raises(kr8s.ServerError) as err:
        [p async for p in api.get("pods", namespace=other_namespace)]
    assert err.value.response is not None and err.value.response.status_code == 403
    status = err.value.response.json()
    assert status["message"] == _forbidden(bot, "list", "pods", other_namespace)
    assert (status["reason"], status["code"], status["details"]) == ("Forbidden", 403, {"kind": "pods"})
    with pytest.raises(kr8s.ServerError) as review:  # kr8s's whoami is a TokenReview: system:auth-delegator's
        await api.whoami()
    assert review.value.response is not None and review.value.response.status_code == 403


def test_cluster_role_through_a_role_binding_is_confined_to_its_namespace(
        kube: KubeHandle, namespace: str, bot: str, other_namespace: str) -> None:
    role = f"cm-reader-{namespace}"
    _apply(kube, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role},
                  "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]},
           _binding(namespace, "bot-reads-cms", "ClusterRole", role, namespace))
    try:
        config = kube.service_account_kubeconfig(namespace, "bot")
        assert _as(kube, config, "get", "configmaps", "-n", namespace).returncode == 0
        denied = _as(kube, config, "get", "configmaps", "-n", other_namespace)
        assert _forbidden(bot, "list", "configmaps", other_namespace) in denied.stderr
        everywhere = _as(kube, config, "get", "configmaps", "--all-namespaces")
        assert _forbidden(bot, "list", "configmaps", None) in everywhere.stderr
        _apply(kube, _binding(None, role, "ClusterRole", role, namespace))
        assert _as(kube, config, "get", "configmaps", "-n", other_namespace).returncode == 0
        assert _as(kube, config, "get", "configmaps", "--all-namespaces").returncode == 0
    finally:
        kube.kubectl("delete", "clusterrolebinding,clusterrole", role, "--ignore-not-found")


def test_edit_and_view_gather_the_rules_of_roles_labelled_to_aggregate_into_them(
        kube: KubeHandle, namespace: str, bot: str) -> None:
    """`edit` (bound with a RoleBinding, the usual way to hand out a namespace) grants what every ClusterRole
    labelled `aggregate-to-edit` grants, as soon as that role exists and no longer once it is gone; `view` stays
    read-only; the aggregated rules are written into the roles, as on a real cluster."""
    def rules_of(role: str) -> list[dict[str, Any]]:
        return json.loads(kube.kubectl("get", "clusterrole", role, "-o", "json").stdout).get("rules") or []

    widgets = f"widget-editor-{namespace}"
    _apply(kube, _binding(namespace, "bot-edits", "ClusterRole", "edit", namespace))
    config = kube.service_account_kubeconfig(namespace, "bot")
    assert _as(kube, config, "create", "configmap", "made-by-bot", "-n", namespace).returncode == 0
    assert _as(kube, config, "auth", "can-i", "create", "pods/portforward", "-n", namespace).returncode == 0
    assert _as(kube, config, "auth", "can-i", "create", "roles", "-n", namespace).returncode != 0  # admin's
    assert _as(kube, config, "auth", "can-i", "create", "resourcequotas", "-n", namespace).returncode != 0
    rule = {"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["create"]}
    _apply(kube, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                  "metadata": {"name": widgets, "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
                  "rules": [rule]})
    try:
        until(lambda: rule in rules_of("edit") and rule in rules_of("admin"), "the rule in edit and admin")
        assert rule not in rules_of("view")
        assert _as(kube, config, "auth", "can-i", "create", "resourcequotas", "-n", namespace).returncode == 0
        assert any("pods" in r["resources"] and "get" in r["verbs"] for r in rules_of("view"))
    finally:
        kube.kubectl("delete", "clusterrole", widgets)
    until(lambda: rule not in rules_of("edit"), "the rule gone from edit with its role")
    assert _as(kube, config, "auth", "can-i", "create", "resourcequotas", "-n", namespace).returncode != 0


def test_resource_names_limit_a_rule_to_named_objects(kube: KubeHandle, namespace: str, bot: str) -> None:
    kube.kubectl("create", "configmap", "mine", "-n", namespace)
    kube.kubectl("create", "configmap", "theirs", "-n", namespace)
    _apply(kube, _role(namespace, "one-cm", [{"apiGroups": [""], "resources": ["configmaps"],
                                              "resourceNames": ["mine"], "verbs": ["get"]}]),
           _binding(namespace, "bot-one-cm", "Role", "one-cm", namespace))
    config = kube.service_account_kubeconfig(namespace, "bot")
    assert _as(kube, config, "get", "configmap", "mine", "-o", "name").stdout.strip() == "configmap/mine"
    denied = _as(kube, config, "get", "configmap", "theirs")
    assert denied.stderr.strip() == ("Error from server (Forbidden): "
                                     + _forbidden(bot, "get", "configmaps", namespace, "theirs"))


def _web_pod(kube: KubeHandle, namespace: str) -> None:
    _apply(kube, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": namespace}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "web", "image": "python:3.11", "command": ["python", "-u", "-m", "http.server", "8080"],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}})
    kube.kubectl("wait", "--for=condition=Ready", "pod/web", "-n", namespace, "--timeout=60s")


@pytest.mark.e2e
async def test_log_and_portforward_subresources_are_granted_separately(kube: KubeHandle, namespace: str,
                                                                       bot: str) -> None:
    _web_pod(kube, namespace)
    _apply(kube, _role(namespace, "logs", [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get"]}]),
           _binding(namespace, "bot-logs", "Role", "logs", namespace))
    config = kube.service_account_kubeconfig(namespace, "bot")
    assert _as(kube, config, "logs", "web").returncode == 0
    api = await kr8s.asyncio.api(kubeconfig=str(config))
    with pytest.raises(httpx_ws.WebSocketUpgradeError) as err:
        async with api.open_websocket(url="pods/web/portforward", namespace=namespace, params={"ports": "8080"}):
            pass
    assert err.value.response.status_code == 403
    refused = _as(kube, config, "port-forward", "pod/web", ":8080")
    assert refused.stderr.strip() == "error: error upgrading connection: " + _forbidden(
        bot, "create", "pods/portforward", namespace, "web")

    # The other way round: port-forward but no logs.
    kube.kubectl("delete", "rolebinding", "bot-logs", "-n", namespace)
    _apply(kube, _role(namespace, "forward", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                                              {"apiGroups": [""], "resources": ["pods/portforward"],
                                               "verbs": ["create"]}]),
           _binding(namespace, "bot-forward", "Role", "forward", namespace))
    logs = _as(kube, config, "logs", "web")
    assert logs.stderr.strip() == "Error from server (Forbidden): " + _forbidden(bot, "get", "pods/log", namespace,
                                                                                  "web")
    async with api.open_websocket(url="pods/web/portforward", namespace=namespace,
                                  params={"ports": "8080"}) as ws:
        preamble = await ws.receive_bytes()  # the data channel announces its port first
    assert preamble == bytes([0]) + (8080).to_bytes(2, "little")


async def test_watch_is_its_own_verb(kube: KubeHandle, namespace: str, bot: str) -> None:
    _apply(kube, _role(namespace, "list-only", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]),
           _binding(namespace, "bot-list", "Role", "list-only", namespace))
    config = kube.service_account_kubeconfig(namespace, "bot")
    api = await kr8s.asyncio.api(kubeconfig=str(config))
    params = {"watch": "true", "timeoutSeconds": "1"}
    with pytest.raises(kr8s.ServerError) as err:
        async with api.call_api("GET", url="configmaps", namespace=namespace, params=params):
            pass
    assert err.value.response is not None and err.value.response.status_code == 403
    assert err.value.response.json()["message"] == _forbidden(bot, "watch", "configmaps", namespace)
    assert _as(kube, config, "auth", "can-i", "watch", "configmaps").stdout.strip() == "no"
    _apply(kube, _role(namespace, "list-only", [{"apiGroups": [""], "resources": ["configmaps"],
                                                 "verbs": ["list", "watch"]}]))
    async with api.call_api("GET", url="configmaps", namespace=namespace, params=params) as response:
        assert response.status_code == 200
    assert _as(kube, config, "auth", "can-i", "watch", "configmaps").stdout.strip() == "yes"


def test_auth_can_i_as_the_service_account_and_with_impersonation(kube: KubeHandle, namespace: str, bot: str,
                                                                  other_namespace: str) -> None:
    _apply(kube, _role(namespace, "pod-reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]),
           _binding(namespace, "bot-reads-pods", "Role", "pod-reader", namespace))
    config = kube.service_account_kubeconfig(namespace, "bot")
    yes = _as(kube, config, "auth", "can-i", "list", "pods")
    assert (yes.returncode, yes.stdout.strip()) == (0, "yes")
    no = _as(kube, config, "auth", "can-i", "delete", "pods")
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    whoami = json.loads(_as(kube, config, "auth", "whoami", "-o", "json", check=True).stdout)
    assert whoami["status"]["userInfo"]["username"] == bot
    assert "system:serviceaccounts:" + namespace in whoami["status"]["userInfo"]["groups"]

    admin = kube.kubeconfig  # it carries credentials, which `kubectl --as` needs
    assert _as(kube, admin, "auth", "can-i", "list", "pods", "-n", namespace, f"--as={bot}").stdout.strip() == "yes"
    assert _as(kube, admin, "auth", "can-i", "list", "pods", "-n", other_namespace,
               f"--as={bot}").stdout.strip() == "no"
    impersonated = _as(kube, admin, "get", "pods", "-n", other_namespace, f"--as={bot}")
    assert impersonated.stderr.strip() == "Error from server (Forbidden): " + _forbidden(bot, "list", "pods",
                                                                                         other_namespace)
    listed = _as(kube, admin, "auth", "can-i", "--list", "-n", namespace, f"--as={bot}", check=True).stdout
    assert any(line.split()[:1] == ["pods"] and "[list]" in line for line in listed.splitlines()), listed


def _token_kubeconfig(kube: KubeHandle, namespace: str, token: str, path: Path) -> Path:
    """The service-account kubeconfig's shape, holding a token `kubectl create token` made."""
    doc = yaml.safe_load(kube.service_account_kubeconfig(namespace, "bot", path).read_text())
    doc["users"][0]["user"]["token"] = token
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kubectl_create_token_and_its_limits(kube: KubeHandle, namespace: str, bot: str, tmp_path: Path) -> None:
    made = json.loads(kube.kubectl("create", "token", "bot", "-n", namespace, "--duration=20m", "-o", "json").stdout)
    assert made["kind"] == "TokenRequest" and made["spec"]["expirationSeconds"] == 1200
    assert made["status"]["token"].count(".") == 2 and made["status"]["expirationTimestamp"].endswith("Z")
    config = _token_kubeconfig(kube, namespace, made["status"]["token"], tmp_path / "k")
    whoami = _as(kube, config, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", check=True)
    assert whoami.stdout == bot
    short = kube.kubectl("create", "token", "bot", "-n", namespace, "--duration=1m", check=False)
    assert "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes" \
        in short.stderr
    missing = kube.kubectl("create", "token", "nobody", "-n", namespace, check=False)
    assert 'serviceaccounts "nobody" not found' in missing.stderr


def test_token_is_void_once_its_service_account_is_deleted(kube: KubeHandle, namespace: str, bot: str) -> None:
    config = kube.service_account_kubeconfig(namespace, "bot")
    assert _as(kube, config, "auth", "whoami").returncode == 0
    kube.kubectl("delete", "serviceaccount", "bot", "-n", namespace)
    gone = _as(kube, config, "auth", "whoami")
    assert gone.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"
    _apply(kube, _service_account(namespace))  # the same name again is another account
    assert _as(kube, config, "get", "pods").stderr.strip() == \
        "error: You must be logged in to the server (Unauthorized)"


@pytest.mark.localkube_only
def test_token_expires_and_survives_an_api_restart(kube: KubeHandle, local_kube, namespace: str, bot: str,
                                                   tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    token = kube.kubectl("create", "token", "bot", "-n", namespace, "--duration=10m").stdout.strip()
    config = _token_kubeconfig(kube, namespace, token, tmp_path / "k")
    local_kube.run(local_kube.kube.restart_api())
    assert _as(kube, config, "auth", "whoami").returncode == 0
    authenticator = local_kube.kube.authenticator
    real_clock = authenticator.clock
    try:
        local_kube.call(setattr, authenticator, "clock", lambda: real_clock() + 601)
        expired = _as(kube, config, "auth", "whoami")
        assert expired.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"
    finally:
        local_kube.call(setattr, authenticator, "clock", real_clock)
    assert _as(kube, config, "auth", "whoami").returncode == 0


def test_pod_with_a_missing_service_account_is_refused(kube: KubeHandle, namespace: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"serviceAccountName": "nope", "containers": [{"name": "c", "image": "python:3.11",
                                                                  "command": ["true"]}]}}
    message = (f'pods "p" is forbidden: error looking up service account {namespace}/nope: '
               'serviceaccount "nope" not found')
    code, status = kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    assert (code, status["reason"], status["message"]) == (403, "Forbidden", message)
    created = kube.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod), check=False)
    assert f"Error from server (Forbidden): error when creating \"STDIN\": {message}" in created.stderr
    _apply(kube, _service_account(namespace, "nope"))
    kube.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod))
    got = json.loads(kube.kubectl("get", "pod", "p", "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["serviceAccountName"] == got["spec"]["serviceAccount"] == "nope"


_IN_POD = textwrap.dedent("""
    import json, os, subprocess
    import kr8s
    api = kr8s.api()
    out = {"pods": sorted(p.name for p in api.get("pods")), "kubeconfig": os.environ.get("KUBECONFIG")}
    try:
        list(api.get("secrets"))
    except kr8s.ServerError as e:
        out["secrets"] = e.response.status_code
    who = subprocess.run(["kubectl", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
                         capture_output=True, text=True)
    out["kubectl"] = who.stdout or who.stderr

    import asyncio, base64, ssl, aiohttp, kopf
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    async def kopf_get(resource):
        context = ssl.create_default_context(cadata=base64.b64decode(info.ca_data).decode())
        url = f"{info.server}/api/v1/namespaces/{info.default_namespace}/{resource}"
        async with aiohttp.ClientSession() as session:
            async with session.get(url, headers={"Authorization": "Bearer " + info.token}, ssl=context) as r:
                return r.status
    out["kopf"] = [asyncio.run(kopf_get("pods")), asyncio.run(kopf_get("secrets"))]
    print("RESULT " + json.dumps(out), flush=True)
""")


def _pod_result(kube: KubeHandle, namespace: str, name: str) -> dict[str, Any]:
    def done() -> str | None:
        logs = kube.kubectl("logs", name, "-n", namespace, check=False).stdout
        return next((line for line in logs.splitlines() if line.startswith("RESULT ")), None)

    line = until(done, f"pod {name} to report", within=90, interval=0.5,
                 explain=lambda: kube.kubectl("logs", name, "-n", namespace, check=False).stdout)
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.e2e
def test_a_pod_acts_as_its_service_account(kube: KubeHandle, namespace: str, bot: str) -> None:
    _apply(kube, _role(namespace, "pod-reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]),
           _binding(namespace, "bot-reads-pods", "Role", "pod-reader", namespace))

    def pod(name: str, **spec: Any) -> dict[str, Any]:
        container = {"name": "c", "image": "python:3.11", "command": ["python", "-c", _IN_POD]}
        container.update(spec.pop("container", {}))
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                "spec": {"restartPolicy": "Never", "containers": [container], **spec}}

    _apply(kube, pod("as-bot", serviceAccountName="bot"))
    result = _pod_result(kube, namespace, "as-bot")
    assert "as-bot" in result["pods"] and result["secrets"] == 403
    assert result["kubectl"] == bot
    assert result["kopf"] == [200, 403]  # kopf's own kubeconfig login, as the operator in a pod uses it
    if kube.local is not None:
        assert Path(result["kubeconfig"]).is_file()
        denied = [d for d in kube.local.forbidden() if d.user == bot]
        assert ("list", "secrets", namespace) in [(d.verb, d.resource, d.namespace) for d in denied]


@pytest.mark.localkube_only
@pytest.mark.e2e
def test_pod_kubeconfig_is_skipped_when_not_automounted_or_set(kube: KubeHandle, namespace: str) -> None:
    script = "import os; print('RESULT ' + __import__('json').dumps({'k': os.environ.get('KUBECONFIG')}))"

    def pod(name: str, **spec: Any) -> dict[str, Any]:
        container = {"name": "c", "image": "python:3.11", "command": ["python", "-c", script]}
        container.update(spec.pop("container", {}))
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                "spec": {"restartPolicy": "Never", "containers": [container], **spec}}

    _apply(kube, pod("off", automountServiceAccountToken=False),
           pod("own", container={"env": [{"name": "KUBECONFIG", "value": "/somewhere/else"}]}),
           pod("plain"))
    assert _pod_result(kube, namespace, "off") == {"k": None}
    assert _pod_result(kube, namespace, "own") == {"k": "/somewhere/else"}
    plain = _pod_result(kube, namespace, "plain")["k"]
    doc = yaml.safe_load(Path(plain).read_text())
    assert doc["contexts"][0]["context"]["namespace"] == namespace
    assert doc["clusters"][0]["cluster"]["server"].startswith("https://")


@pytest.mark.localkube_only
def test_denied_requests_are_recorded_and_admin_is_never_denied(kube: KubeHandle, local_kube, namespace: str,
                                                               bot: str) -> None:  # type: ignore[no-untyped-def]
    local_kube.forbidden(reset=True)
    config = kube.service_account_kubeconfig(namespace, "bot")
    _as(kube, config, "get", "deployments")
    _as(kube, kube.kubeconfig, "get", "deployments", "-n", namespace, check=True)
    assert [(d.user, d.verb, d.resource, d.namespace) for d in local_kube.forbidden(reset=True)] == [
        (bot, "list", "deployments", namespace)]
    assert local_kube.forbidden() == []
