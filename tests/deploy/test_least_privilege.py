"""Least privilege, for real: the operator installed from the chart runs as a pod with exactly the chart's RBAC,
and `KubeCluster` runs as a user holding exactly the Role that docs/rbac.md documents, on a LocalKube that
enforces RBAC for service-account tokens. Nothing they do may be refused; a permission taken away gives a message
that names the verb and the resource.

One LocalKube for the module (the chart installs into a fixed namespace and cluster-wide objects); its operator
image maps to our `dask-kube-operator` entry point, as the Dockerfile's ENTRYPOINT does.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from distributed import Client
from localkube.apiserver.server import Denial
from localkube.cluster import LocalKube, ThreadedLocalKube
from localkube.pytest_plugin import run_kubectl
from localkube.testing import until

from dask_kube import KubeCluster
from dask_kube.specs import make_cluster_spec
from tests.deploy.render_module import load
from tests.rbacdocs import documented_user_role

pytestmark = pytest.mark.localkube_only

render = load()
OPERATOR_NS = render.NAMESPACE
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def without(role: dict[str, Any], resource: str, verb: str) -> dict[str, Any]:
    """`role` with `verb` on `resource` taken away."""
    rules = []
    for rule in role["rules"]:
        if resource in rule["resources"] and verb in rule["verbs"]:
            others = [r for r in rule["resources"] if r != resource]
            if others:
                rules.append({**rule, "resources": others})
            verbs = [v for v in rule["verbs"] if v != verb]
            if verbs:
                rules.append({**rule, "resources": [resource], "verbs": verbs})
        else:
            rules.append(rule)
    return {**role, "rules": rules}


@pytest.fixture(scope="module")
def rbac_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadedLocalKube, Kubectl]]:
    cache = tmp_path_factory.mktemp("kubectl-cache")
    with LocalKube.in_thread() as local:  # the operator's image is in LocalKube's catalog
        def kubectl(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
            return run_kubectl(local.kubeconfig, cache, *args, **kwargs)

        yield local, kubectl


def apply(kubectl: Kubectl, *docs: dict[str, Any] | str) -> None:
    text = "\n---\n".join(d if isinstance(d, str) else yaml.safe_dump(d) for d in docs)
    kubectl("apply", "-f", "-", input=text)


def get(kubectl: Kubectl, *args: str) -> dict[str, Any] | None:
    proc = kubectl("get", *args, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def operator_pod(kubectl: Kubectl, namespace: str) -> dict[str, Any] | None:
    pods = (get(kubectl, "pods", "-n", namespace, "-l", "app.kubernetes.io/component=operator") or {}).get("items")
    return pods[0] if pods else None


def ready(pod: dict[str, Any] | None) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in ((pod or {}).get("status") or {}).get(
        "conditions") or ())


def wait_operator_ready(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    def explain() -> str:
        pod = operator_pod(kubectl, namespace)
        name = (pod or {}).get("metadata", {}).get("name", "")
        logs = kubectl("logs", "-n", namespace, name, "--tail=30", check=False).stdout if name else ""
        return f"{json.dumps((pod or {}).get('status'), indent=1)}\n{logs}"

    return until(lambda: ready(operator_pod(kubectl, namespace)) and operator_pod(kubectl, namespace),
                 "the operator pod to be Ready", within=90, explain=explain)


def denials_of(local: ThreadedLocalKube, account: str) -> list[Denial]:
    return [d for d in local.forbidden() if d.user == account]


def events(kubectl: Kubectl, namespace: str, reason: str) -> list[str]:
    items = (get(kubectl, "events", "-n", namespace) or {}).get("items") or []
    return [e["message"] for e in items if e.get("reason") == reason]


def phase(kubectl: Kubectl, namespace: str, name: str) -> str | None:
    return ((get(kubectl, "daskcluster", name, "-n", namespace) or {}).get("status") or {}).get("phase")


@pytest.fixture(scope="module")
def chart_operator(rbac_kube: tuple[ThreadedLocalKube, Kubectl]) -> Iterator[str]:
    """The plain manifests (rendered from the chart's defaults: ClusterRole mode), applied as they ship."""
    _local, kubectl = rbac_kube
    kubectl("apply", "-f", str(render.MANIFESTS))
    account = f"system:serviceaccount:{OPERATOR_NS}:{render.RELEASE}"
    wait_operator_ready(kubectl, OPERATOR_NS)
    yield account
    kubectl("delete", "-f", str(render.MANIFESTS / "20-operator.yaml"), "--wait=false", check=False)


def test_operator_and_user_need_nothing_beyond_the_chart_and_the_documented_role(
        rbac_kube: tuple[ThreadedLocalKube, Kubectl], chart_operator: str, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    local, kubectl = rbac_kube
    ns, account = "team", "jupyter"
    kubectl("create", "namespace", ns)
    kubectl("create", "serviceaccount", account, "-n", ns)
    apply(kubectl, *documented_user_role(ns, account))
    user = f"system:serviceaccount:{ns}:{account}"
    monkeypatch.setenv("KUBECONFIG", str(local.service_account_kubeconfig(ns, account)))

    with KubeCluster(name="lp", namespace=ns, n_workers=1, quiet=True) as cluster:
        with Client(cluster) as client:
            assert client.submit(sum, range(10)).result(timeout=60) == 45
            cluster.scale(2)
            client.wait_for_workers(2, timeout=90)
            assert sum(client.gather(client.map(lambda x: x * 2, range(20)))) == 380
        logs = cluster.get_logs()
        assert any("scheduler" in name for name in logs), list(logs)
        cluster.adapt(minimum=1, maximum=2)
        until(lambda: get(kubectl, "daskautoscaler", "-n", ns, "lp") is not None, "the DaskAutoscaler")
    until(lambda: get(kubectl, "daskcluster", "lp", "-n", ns) is None, "the DaskCluster to be deleted", within=60)
    until(lambda: not (get(kubectl, "pods", "-n", ns) or {}).get("items"), "every pod to be gone", within=60)

    assert denials_of(local, chart_operator) == []
    assert denials_of(local, user) == []
    assert not events(kubectl, ns, "Forbidden")


def test_namespace_editors_and_viewers_get_the_dask_kinds_through_aggregation(
        rbac_kube: tuple[ThreadedLocalKube, Kubectl], chart_operator: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart's aggregated ClusterRoles: a ServiceAccount holding Kubernetes' own `edit` role in a namespace (a
    RoleBinding, nothing Dask-specific) runs a KubeCluster there, with nothing refused; one holding `view` sees the
    DaskCluster and may not scale it."""
    local, kubectl = rbac_kube
    ns = "editors"
    kubectl("create", "namespace", ns)
    for account, role in (("alice", "edit"), ("victor", "view")):
        kubectl("create", "serviceaccount", account, "-n", ns)
        kubectl("create", "rolebinding", f"{account}-{role}", f"--clusterrole={role}",
                f"--serviceaccount={ns}:{account}", "-n", ns)
    editor = f"system:serviceaccount:{ns}:alice"
    viewer = str(local.service_account_kubeconfig(ns, "victor"))
    monkeypatch.setenv("KUBECONFIG", str(local.service_account_kubeconfig(ns, "alice")))
    with KubeCluster(name="ed", namespace=ns, n_workers=1, quiet=True) as cluster, Client(cluster) as client:
        assert client.submit(sum, range(10)).result(timeout=60) == 45
        cluster.scale(2)
        client.wait_for_workers(2, timeout=90)
        assert "scheduler" in " ".join(cluster.get_logs())
        listed = kubectl("--kubeconfig", viewer, "get", "daskclusters", "-n", ns, "-o", "name")
        assert listed.stdout.split() == ["daskcluster.kubernetes.dask.org/ed"]
        refused = kubectl("--kubeconfig", viewer, "scale", "daskcluster", "ed", "--replicas=3", "-n", ns, check=False)
        assert 'cannot patch resource "daskclusters/scale"' in refused.stderr, refused.stderr
    until(lambda: get(kubectl, "daskcluster", "ed", "-n", ns) is None, "the DaskCluster to be deleted", within=60)
    assert denials_of(local, editor) == []


def act_as_user_without(rbac_kube: tuple[ThreadedLocalKube, Kubectl], monkeypatch: pytest.MonkeyPatch, ns: str,
                        resource: str, verb: str) -> None:
    """From here on, this process is a user in a fresh namespace `ns` holding the documented Role but for one
    verb on one resource."""
    local, kubectl = rbac_kube
    kubectl("create", "namespace", ns)
    kubectl("create", "serviceaccount", "viewer", "-n", ns)
    role, binding = documented_user_role(ns, "viewer")
    apply(kubectl, without(role, resource, verb), binding)
    monkeypatch.setenv("KUBECONFIG", str(local.service_account_kubeconfig(ns, "viewer")))


@pytest.mark.parametrize(("ns", "resource"), [("readonly", "daskclusters"), ("noforward", "pods/portforward")])
def test_a_missing_user_permission_names_the_verb_and_resource(
        rbac_kube: tuple[ThreadedLocalKube, Kubectl], chart_operator: str, monkeypatch: pytest.MonkeyPatch, ns: str,
        resource: str) -> None:
    """Without `create` on the DaskCluster, or on the port-forward (which used to surface as a timeout), the
    client stops with the API server's words, and leaves nothing: it never created the cluster, or removes it."""
    _, kubectl = rbac_kube
    act_as_user_without(rbac_kube, monkeypatch, ns, resource, "create")

    with pytest.raises(Exception) as info:  # the message matters, whatever the class
        KubeCluster(name="lacking", namespace=ns, n_workers=0, quiet=True)
    message = str(info.value)
    assert f'cannot create resource "{resource}"' in message, message
    until(lambda: get(kubectl, "daskcluster", "lacking", "-n", ns) is None, "no cluster left behind", within=60)


def test_the_operator_names_a_permission_the_chart_lacks(
        rbac_kube: tuple[ThreadedLocalKube, Kubectl], chart_operator: str) -> None:
    """Take `create services` away from the operator's ClusterRole: its Warning Event names verb and resource;
    give it back: the cluster comes up."""
    _local, kubectl = rbac_kube
    ns = "starved"
    kubectl("create", "namespace", ns)
    role = get(kubectl, "clusterrole", render.RELEASE)
    assert role is not None
    original = {k: role[k] for k in ("apiVersion", "kind", "rules")} | {"metadata": {"name": render.RELEASE}}
    apply(kubectl, without(original, "services", "create"))
    try:
        cluster = make_cluster_spec("starved", n_workers=0)
        cluster["metadata"]["namespace"] = ns
        apply(kubectl, cluster)
        messages = until(lambda: events(kubectl, ns, "Forbidden"), "a Forbidden event", within=60)
        assert any('cannot create resource "services"' in m and chart_operator in m for m in messages), messages
    finally:
        apply(kubectl, original)
    until(lambda: phase(kubectl, ns, "starved") == "Running", "the cluster to run once permitted", within=120)
    kubectl("delete", "daskcluster", "starved", "-n", ns)


def test_single_namespace_mode_works_with_the_charts_role(
        rbac_kube: tuple[ThreadedLocalKube, Kubectl], chart_operator: str) -> None:
    """`rbac.cluster=false`: a Role and RoleBinding in the release namespace, the operator watching only it and
    refused nothing."""
    local, kubectl = rbac_kube
    # One operator per namespace at a time: the cluster-wide release steps aside.
    kubectl("scale", "deployment", render.RELEASE, "-n", OPERATOR_NS, "--replicas=0")
    until(lambda: operator_pod(kubectl, OPERATOR_NS) is None, "the cluster-wide operator to stop", within=60)
    ns, release = "solo", "solo-operator"
    kubectl("create", "namespace", ns)
    rendered = render.render_chart({"rbac": {"cluster": False}}, release=release, namespace=ns)
    kinds = {obj["kind"] for obj in render.objects(rendered)}
    assert {"Role", "RoleBinding"} <= kinds and not {"ClusterRole", "ClusterRoleBinding"} & kinds, kinds
    apply(kubectl, render.operator_manifest(rendered))
    account = f"system:serviceaccount:{ns}:{release}"
    try:
        wait_operator_ready(kubectl, ns)
        cluster = make_cluster_spec("alone", n_workers=1)
        cluster["metadata"]["namespace"] = ns
        apply(kubectl, cluster)
        until(lambda: phase(kubectl, ns, "alone") == "Running", "the cluster to run", within=120)

        def workers_ready() -> bool:
            group = get(kubectl, "daskworkergroup", "alone-default", "-n", ns) or {}
            return (group.get("status") or {}).get("readyReplicas") == 1

        until(workers_ready, "its worker to be ready", within=90)
        kubectl("delete", "daskcluster", "alone", "-n", ns)
        until(lambda: not (get(kubectl, "pods", "-n", ns, "-l", "dask.org/cluster-name=alone") or {}).get("items"),
              "its pods to go", within=60)
        # Nothing at all: for an exact namespace the operator turns kopf's cluster-wide scans off (they used to
        # be refused, and their retries held every watch back for about a minute).
        assert not denials_of(local, account), {(d.verb, d.resource) for d in denials_of(local, account)}
        assert not events(kubectl, ns, "Forbidden")
    finally:
        kubectl("delete", "deployment", release, "-n", ns, "--wait=false", check=False)
        kubectl("scale", "deployment", render.RELEASE, "-n", OPERATOR_NS, "--replicas=1", check=False)
