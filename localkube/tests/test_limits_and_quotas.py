"""LimitRanger and ResourceQuota admission and the quota controller, with kube-apiserver's messages."""

from __future__ import annotations

import re
from typing import Any

from localkube.testing import until


def pod(name: str, *, resources: dict | None = None, **spec: Any) -> dict:
    container: dict[str, Any] = {"name": "c", "image": "busybox", "command": ["sleep", "3600"]}
    if resources is not None:
        container["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": {"localkube.dask.org/simulate": "true"}},
            "spec": {"containers": [container], **spec}}


def test_limit_range_defaults_containers_and_enforces_bounds(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    code, _ = kube.request("POST", f"/api/v1/namespaces/{namespace}/limitranges", {
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"}, "spec": {"limits": [
            {"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"}, "defaultRequest": {"cpu": "250m"},
             "max": {"cpu": "1"}, "min": {"memory": "16Mi"}},
            {"type": "Pod", "max": {"memory": "1Gi"}}]}})
    assert code == 201
    pods = f"/api/v1/namespaces/{namespace}/pods"
    code, created = kube.request("POST", pods, pod("defaulted", resources={"requests": {"memory": "32Mi"}}))
    assert code == 201
    assert created["spec"]["containers"][0]["resources"] == {
        "requests": {"memory": "32Mi", "cpu": "250m"}, "limits": {"cpu": "500m", "memory": "128Mi"}}
    assert created["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu request for container c; cpu, memory limit for container c")
    code, err = kube.request("POST", pods, pod("greedy", resources={"limits": {"cpu": "2"}}))
    assert code == 403 and err["message"] == (
        'pods "greedy" is forbidden: maximum cpu usage per Container is 1, but limit is 2')
    code, err = kube.request("POST", pods, pod("tiny", resources={"limits": {"memory": "8Mi"}}))
    assert code == 403 and err["message"] == (
        'pods "tiny" is forbidden: minimum memory usage per Container is 16Mi, but request is 8Mi')
    two = pod("two", resources={"limits": {"memory": "600Mi"}})
    two["spec"]["containers"].append({**two["spec"]["containers"][0], "name": "d"})
    code, err = kube.request("POST", pods, two)
    assert code == 403 and err["message"] == 'pods "two" is forbidden: maximum memory usage per Pod is 1Gi, ' \
                                             "but limit is 1200Mi"


def quota_status(kube, namespace: str, name: str) -> dict:  # type: ignore[no-untyped-def]
    return kube.request("GET", f"/api/v1/namespaces/{namespace}/resourcequotas/{name}")[1].get("status") or {}


def test_resource_quota_tracks_usage_and_refuses_what_exceeds_it(kube, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    quotas = f"/api/v1/namespaces/{namespace}/resourcequotas"
    assert kube.request("POST", quotas, {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                                         "spec": {"hard": {"pods": "2", "requests.cpu": "1", "limits.memory": "1Gi",
                                                           "count/configmaps": "1"}}})[0] == 201
    until(lambda: quota_status(kube, namespace, "q") == {
        "hard": {"pods": "2", "requests.cpu": "1", "limits.memory": "1Gi", "count/configmaps": "1"},
        "used": {"pods": "0", "requests.cpu": "0", "limits.memory": "0", "count/configmaps": "0"}},
        "the quota's first status")
    pods = f"/api/v1/namespaces/{namespace}/pods"
    small = {"requests": {"cpu": "400m"}, "limits": {"memory": "256Mi"}}
    code, err = kube.request("POST", pods, pod("bare"))
    assert code == 403 and err["message"] == (
        'pods "bare" is forbidden: failed quota: q: must specify limits.memory for: c; requests.cpu for: c')
    assert kube.request("POST", pods, pod("a", resources=small))[0] == 201
    assert kube.request("POST", pods, pod("b", resources=small))[0] == 201
    until(lambda: quota_status(kube, namespace, "q").get("used", {}).get("pods") == "2", "two pods counted")
    assert quota_status(kube, namespace, "q")["used"] == {"pods": "2", "requests.cpu": "800m",
                                                          "limits.memory": "512Mi", "count/configmaps": "0"}
    code, err = kube.request("POST", pods, pod("c", resources=small))
    assert code == 403 and err["message"] == (
        'pods "c" is forbidden: exceeded quota: q, requested: pods=1,requests.cpu=400m, used: pods=2,'
        "requests.cpu=800m, limited: pods=2,requests.cpu=1")
    row = re.split(r"\s{2,}", kubectl("get", "quota", "q").stdout.splitlines()[1].strip())
    assert row[2:] == ["count/configmaps: 0/1, pods: 2/2, requests.cpu: 800m/1", "limits.memory: 512Mi/1Gi"]
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    assert kube.request("POST", cms, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}})[0] == 201
    code, err = kube.request("POST", cms, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}})
    assert code == 403 and err["message"] == ('configmaps "two" is forbidden: exceeded quota: q, requested: '
                                              "count/configmaps=1, used: count/configmaps=1, limited: "
                                              "count/configmaps=1")
    kube.request("DELETE", f"{pods}/a?gracePeriodSeconds=0")
    until(lambda: kube.request("POST", pods, pod("c", resources=small))[0] == 201, "room once a pod is gone")
    until(lambda: quota_status(kube, namespace, "q")["used"]["requests.cpu"] == "800m", "usage after the swap")


def test_scoped_quota_counts_only_matching_pods(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    quotas = f"/api/v1/namespaces/{namespace}/resourcequotas"
    assert kube.request("POST", quotas, {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "be"},
                                         "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}})[0] == 201
    pods = f"/api/v1/namespaces/{namespace}/pods"
    assert kube.request("POST", pods, pod("effort-1"))[0] == 201
    code, err = kube.request("POST", pods, pod("effort-2"))
    assert code == 403 and "exceeded quota: be, requested: pods=1, used: pods=1, limited: pods=1" in err["message"]
    assert kube.request("POST", pods, pod("burstable", resources={"requests": {"cpu": "10m"}}))[0] == 201
    until(lambda: quota_status(kube, namespace, "be").get("used") == {"pods": "1"}, "only best-effort pods counted")
    code, err = kube.request("POST", quotas, {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "x"},
                                              "spec": {"hard": {"requests.cpu": "1"}, "scopes": ["BestEffort"]}})
    assert code == 422 and err["details"]["causes"][0]["message"] == (
        'Invalid value: ["BestEffort"]: unsupported scope applied to resource')
