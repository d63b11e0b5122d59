"""spec.networkPolicy: the NetworkPolicy built for a scheduler, and the reconciler's decisions about it."""

from __future__ import annotations

from typing import Any

from dask_kube import naming, specs
from dask_kube.cluster import options
from dask_kube.operator.daskcluster import ClusterMemory, ClusterView, decide
from dask_kube.operator.plan import Delete
from tests.unit.test_cluster_decisions import NOW, SETTINGS, VALID, default_group, scheduler_pod


def cluster(enabled: bool, **status: Any) -> dict[str, Any]:
    obj = specs.make_cluster_spec("c", n_workers=2, network_policy=enabled)
    obj["metadata"].update(namespace="ns", uid="uid-c", generation=1)
    obj["status"] = {"phase": "Running", **status}
    return obj


def observe(raw: dict[str, Any], policy: dict[str, Any] | None) -> ClusterView:
    return ClusterView(raw, VALID, True, scheduler_pod(), group=default_group(), now=NOW, network_policy=policy)


def test_the_policy_admits_the_namespace_and_the_operator_to_the_scheduler_only() -> None:
    policy = specs.scheduler_network_policy(cluster(True))
    assert policy["metadata"]["name"] == "c-scheduler" and policy["metadata"]["namespace"] == "ns"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-c"  # deleted with the cluster
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": naming.scheduler_selector("c")}
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    assert rule["from"] == [{"podSelector": {}}, {"namespaceSelector": {}, "podSelector": {"matchLabels": {
        "app.kubernetes.io/part-of": "dask-kube", "app.kubernetes.io/component": "operator"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": "tcp-comm"}, {"protocol": "TCP", "port": "http-dashboard"}]


def test_created_while_wanted_and_named_in_the_status() -> None:
    plan = decide(observe(cluster(True), None), ClusterMemory(), 0.0, SETTINGS)
    assert [b["kind"] for b in plan.create] == ["NetworkPolicy"]
    assert plan.status["networkPolicyName"] == "c-scheduler"
    existing = specs.scheduler_network_policy(cluster(True))
    again = decide(observe(cluster(True, networkPolicyName="c-scheduler"), existing), ClusterMemory(), 0.0, SETTINGS)
    assert again.create == [] and again.delete == []


def test_deleted_once_unwanted_but_never_someone_elses() -> None:
    ours = specs.scheduler_network_policy(cluster(True))
    plan = decide(observe(cluster(False, networkPolicyName="c-scheduler"), ours), ClusterMemory(), 0.0, SETTINGS)
    assert plan.delete == [Delete("NetworkPolicy", "c-scheduler")]
    assert plan.status["networkPolicyName"] is None  # removed from the status by the merge patch
    theirs = {**ours, "metadata": {**ours["metadata"], "ownerReferences": []}}
    kept = decide(observe(cluster(False, networkPolicyName="c-scheduler"), theirs), ClusterMemory(), 0.0, SETTINGS)
    assert kept.delete == []


def test_the_client_asks_for_it_by_argument_or_config() -> None:
    assert options.resolve(name="c", network_policy=True).manifest()["spec"]["networkPolicy"] == {"enabled": True}
    assert "networkPolicy" not in options.resolve(name="c").manifest()["spec"]
