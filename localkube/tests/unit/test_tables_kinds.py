"""Table cells of the cluster-infrastructure kinds, as kube-apiserver 1.32's printers format them."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from localkube.apiserver.tables import render_table

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)
META = {"name": "x", "creationTimestamp": "2024-05-01T11:55:00Z"}


def cells(group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
    table = render_table(group=group, plural=plural, objects=[{"metadata": META, **obj}], now=NOW)
    return dict(zip([c["name"] for c in table["columnDefinitions"]], table["rows"][0]["cells"], strict=True))


def rule(host: str = "") -> dict[str, Any]:
    return {"host": host} if host else {}


@pytest.mark.parametrize(("rules", "hosts"), [
    ([], "*"),
    ([rule()], "*"),
    ([rule("a"), rule(), rule("b")], "a,b"),
    ([rule("a"), rule("b"), rule("c"), rule("d"), rule("e")], "a,b,c + 2 more..."),
    ([rule(), rule("a"), rule("b"), rule("c"), rule("d")], "a,b,c + 2 more..."),
])
def test_ingress_hosts(rules: list[dict[str, Any]], hosts: str) -> None:
    assert cells("networking.k8s.io", "ingresses", {"spec": {"rules": rules}})["Hosts"] == hosts


def test_ingress_row() -> None:
    row = cells("networking.k8s.io", "ingresses", {
        "spec": {"tls": [{}], "rules": [rule("shop.example.com")]},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}, {"hostname": "lb.example.com"},
                                                {"ip": "10.0.0.2"}]}}})
    assert row == {"Name": "x", "Class": "<none>", "Hosts": "shop.example.com", "Address": "10.0.0.2,lb.example.com",
                   "Ports": "80, 443", "Age": "5m"}


@pytest.mark.parametrize(("status", "condition"), [
    ({}, "Pending"),
    ({"conditions": [{"type": "Approved"}]}, "Approved"),
    ({"conditions": [{"type": "Approved"}], "certificate": "Y2VydA=="}, "Approved,Issued"),
    ({"conditions": [{"type": "Denied"}, {"type": "Failed"}]}, "Denied,Failed"),
])
def test_csr_condition(status: dict[str, Any], condition: str) -> None:
    row = cells("certificates.k8s.io", "certificatesigningrequests", {
        "spec": {"signerName": "example.com/s", "username": "bob", "expirationSeconds": 86400}, "status": status})
    assert row == {"Name": "x", "Age": "5m", "SignerName": "example.com/s", "Requestor": "bob",
                   "RequestedDuration": "24h", "Condition": condition}


def test_storage_classes_csi_and_priority_classes() -> None:
    sc = cells("storage.k8s.io", "storageclasses", {
        "metadata": {**META, "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}},
        "provisioner": "p.example.com"})
    assert sc == {"Name": "x (default)", "Provisioner": "p.example.com", "ReclaimPolicy": "Delete",
                  "VolumeBindingMode": "Immediate", "AllowVolumeExpansion": False, "Age": "5m"}
    driver = cells("storage.k8s.io", "csidrivers", {"spec": {}})
    assert driver == {"Name": "x", "AttachRequired": True, "PodInfoOnMount": False, "StorageCapacity": False,
                      "TokenRequests": "<unset>", "RequiresRepublish": False, "Modes": "<none>", "Age": "5m"}
    assert cells("storage.k8s.io", "csistoragecapacities", {"storageClassName": "s"})["Capacity"] == "<unset>"
    assert cells("storage.k8s.io", "csistoragecapacities", {"capacity": "1024Mi"})["Capacity"] == "1Gi"
    pc = cells("scheduling.k8s.io", "priorityclasses", {"value": 7, "preemptionPolicy": "Never"})
    assert pc == {"Name": "x", "Value": 7, "Global-Default": False, "Age": "5m", "PreemptionPolicy": "Never"}


def metric(mtype: str, **source: Any) -> dict[str, Any]:
    return {"type": mtype, {"Resource": "resource", "Pods": "pods", "Object": "object", "External": "external",
                            "ContainerResource": "containerResource"}.get(mtype, "other"): source}


@pytest.mark.parametrize(("metrics", "current", "targets"), [
    ([], [], "<none>"),
    ([metric("Resource", name="cpu", target={"type": "Utilization", "averageUtilization": 80})], [],
     "cpu: <unknown>/80%"),
    ([metric("Resource", name="cpu", target={"type": "Utilization", "averageUtilization": 80})],
     [metric("Resource", name="cpu", current={"averageUtilization": 12})], "cpu: 12%/80%"),
    ([metric("Resource", name="memory", target={"type": "AverageValue", "averageValue": "1024Mi"})], [],
     "memory: <unknown>/1Gi"),
    ([metric("Pods", metric={"name": "qps"}, target={"type": "AverageValue", "averageValue": "1k"})],
     [metric("Pods", current={"averageValue": "500"})], "500/1k"),
    ([metric("External", target={"type": "AverageValue", "averageValue": "30"})], [], "<unknown>/30 (avg)"),
    ([metric("Object", target={"type": "Value", "value": "2"})], [], "<unknown>/2"),
    ([metric("Pods", target={"averageValue": "1"})] * 3, [], "<unknown>/1, <unknown>/1 + 1 more..."),
])
def test_hpa_targets(metrics: list[dict[str, Any]], current: list[dict[str, Any]], targets: str) -> None:
    row = cells("autoscaling", "horizontalpodautoscalers", {
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4, "metrics": metrics},
        "status": {"currentReplicas": 2, "currentMetrics": current}})
    assert row == {"Name": "x", "Reference": "Deployment/web", "Targets": targets, "MinPods": "<unset>",
                   "MaxPods": 4, "Replicas": 2, "Age": "5m"}


def test_hpa_served_at_v1_prints_from_its_v2_form() -> None:
    row = cells("autoscaling", "horizontalpodautoscalers", {
        "apiVersion": "autoscaling/v1", "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                                                 "minReplicas": 1, "maxReplicas": 4,
                                                 "targetCPUUtilizationPercentage": 50},
        "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 20}})
    assert (row["Targets"], row["MinPods"]) == ("cpu: 20%/50%", "1")


def test_pod_templates_limit_ranges_and_quotas() -> None:
    template = cells("", "podtemplates", {"template": {"metadata": {"labels": {"b": "2", "a": "1"}}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}, {"name": "d", "image": "nginx"}]}}})
    assert template == {"Name": "x", "Containers": "c,d", "Images": "busybox,nginx", "Pod Labels": "a=1,b=2"}
    assert cells("", "limitranges", {}) == {"Name": "x", "Created At": "2024-05-01T11:55:00Z"}
    quota = cells("", "resourcequotas", {"status": {
        "hard": {"pods": "10", "limits.cpu": "2000m", "requests.memory": "1Gi", "count/secrets": "3"},
        "used": {"pods": "1", "limits.cpu": "500m"}}})
    assert quota == {"Name": "x", "Age": "5m", "Request": "count/secrets: 0/3, pods: 1/10, requests.memory: 0/1Gi",
                     "Limit": "limits.cpu: 500m/2"}
