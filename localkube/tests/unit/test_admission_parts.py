"""The pure parts of LimitRanger and ResourceQuota: quantity sums, usage, scopes, bounds, defaults."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from localkube.apiserver import defaults, limitranger, quota, resources
from localkube.apiserver.kinds import KindRegistry

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def container(name: str = "c", **res: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "resources": res}


def text(values: resources.Resources) -> dict[str, str]:
    return {name: str(amount) for name, amount in values.items()}


def test_sums_keep_the_format_of_their_first_term() -> None:
    total: resources.Resources = {}
    for raw in ("64Mi", "64Mi", "1Gi"):
        resources.add(total, {"memory": resources.Amount.of(raw)})  # type: ignore[dict-item]
    resources.add(total, {"cpu": resources.Amount.of("500m")})  # type: ignore[dict-item]
    resources.add(total, {"cpu": resources.Amount.of("0.5")})  # type: ignore[dict-item]
    assert text(total) == {"memory": "1152Mi", "cpu": "1"}
    assert resources.text(total, ["memory", "cpu", "gpu"]) == "cpu=1,memory=1152Mi"


def test_pod_totals_count_init_containers_sidecars_and_overhead() -> None:
    spec = {
        "containers": [container(requests={"cpu": "200m"}), container("d", requests={"cpu": "300m"},
                                                                       limits={"memory": "1Gi"})],
        "initContainers": [container("init", requests={"cpu": "1"}),
                           {**container("sidecar", requests={"cpu": "100m"}), "restartPolicy": "Always"}],
        "overhead": {"cpu": "50m", "memory": "10Mi", "nvidia.com/gpu": "1"},
    }
    # containers 500m + sidecar 100m = 600m, against the init container's 1 (it runs before the sidecar starts).
    assert text(resources.pod_resources(spec, "requests", overhead=False)) == {"cpu": "1"}
    assert text(resources.pod_resources(spec, "requests", overhead=True)) == {
        "cpu": "1050m", "memory": "10Mi", "nvidia.com/gpu": "1"}
    # Overhead is added to limits only where a limit is set.
    assert text(resources.pod_resources(spec, "limits", overhead=True)) == {"memory": "1034Mi"}


def pod(*containers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "n", **extra.pop("metadata", {})},
            "spec": {"containers": list(containers), **extra.pop("spec", {})}, **extra}


def test_pod_usage_by_quota_resource() -> None:
    usage = text(quota.usage_of(quota.POD_KEY, pod(container(
        requests={"cpu": "250m", "memory": "64Mi", "hugepages-2Mi": "4Mi", "example.com/fpga": "1"},
        limits={"memory": "128Mi"})), NOW))
    assert usage == {"count/pods": "1", "pods": "1", "cpu": "250m", "requests.cpu": "250m", "memory": "64Mi",
                     "requests.memory": "64Mi", "limits.memory": "128Mi", "hugepages-2Mi": "4Mi",
                     "requests.hugepages-2Mi": "4Mi", "requests.example.com/fpga": "1"}
    finished = pod(container(requests={"cpu": "1"}), status={"phase": "Succeeded"})
    assert text(quota.usage_of(quota.POD_KEY, finished, NOW)) == {"count/pods": "1"}  # counted, but not computed
    gone = pod(container(), metadata={"deletionTimestamp": "2024-05-01T11:59:00Z", "deletionGracePeriodSeconds": 30})
    assert "pods" not in quota.usage_of(quota.POD_KEY, gone, NOW)  # past its grace period
    leaving = pod(container(), metadata={"deletionTimestamp": "2024-05-01T11:59:50Z",
                                         "deletionGracePeriodSeconds": 30})
    assert "pods" in quota.usage_of(quota.POD_KEY, leaving, NOW)


def test_service_and_claim_usage() -> None:
    lb = {"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}
    assert text(quota.usage_of(quota.SERVICE_KEY, lb, NOW)) == {
        "count/services": "1", "services": "1", "services.nodeports": "2", "services.loadbalancers": "1"}
    claim = {"metadata": {"name": "c"}, "spec": {"storageClassName": "gold", "resources": {
        "requests": {"storage": "5Gi"}}}}
    assert text(quota.usage_of(quota.PVC_KEY, claim, NOW)) == {
        "count/persistentvolumeclaims": "1", "persistentvolumeclaims": "1",
        "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1", "requests.storage": "5Gi",
        "gold.storageclass.storage.k8s.io/requests.storage": "5Gi"}
    assert quota.tracked_keys({"count/deployments.apps": 1, "secrets": 1, "services.nodeports": 1, "cpu": 1}) == {
        ("apps", "deployments"), ("", "secrets"), quota.SERVICE_KEY, quota.POD_KEY}


def scoped(*scopes: str, selector: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"hard": {"pods": "1"}, "scopes": list(scopes)}
    if selector is not None:
        spec["scopeSelector"] = {"matchExpressions": selector}
    return {"metadata": {"name": "q", "namespace": "n"}, "spec": spec}


@pytest.mark.parametrize(("quota_obj", "the_pod", "applies"), [
    (scoped(), pod(container()), True),
    (scoped("BestEffort"), pod(container()), True),
    (scoped("BestEffort"), pod(container(limits={"memory": "1Gi"})), False),
    (scoped("NotBestEffort"), pod(container(requests={"cpu": "1"})), True),
    (scoped("Terminating"), pod(container(), spec={"activeDeadlineSeconds": 60}), True),
    (scoped("NotTerminating"), pod(container(), spec={"activeDeadlineSeconds": 60}), False),
    (scoped(selector=[{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]),
     pod(container(), spec={"priorityClassName": "high"}), True),
    (scoped(selector=[{"scopeName": "PriorityClass", "operator": "NotIn", "values": ["high"]}]),
     pod(container(), spec={"priorityClassName": "high"}), False),
    (scoped(selector=[{"scopeName": "PriorityClass", "operator": "DoesNotExist"}]), pod(container()), True),
    (scoped("CrossNamespacePodAffinity"), pod(container(), spec={"affinity": {"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{"namespaces": ["other"], "topologyKey": "k"}]}}}), True),
])
def test_quota_scopes(quota_obj: dict[str, Any], the_pod: dict[str, Any], applies: bool) -> None:
    assert quota.matches(quota_obj, quota.POD_KEY, the_pod) is applies


def test_scoped_quotas_never_apply_to_other_kinds() -> None:
    assert not quota.matches(scoped("NotTerminating"), ("", "configmaps"), {"metadata": {"name": "c"}})


def test_limit_range_bounds_in_the_plugins_words() -> None:
    limit_range = {"spec": {"limits": [
        {"type": "Container", "max": {"cpu": "1"}, "maxLimitRequestRatio": {"memory": "2"}},
        {"type": "Pod", "min": {"cpu": "300m"}},
    ]}}
    spec = {"containers": [container(limits={"cpu": "2", "memory": "1Gi"}, requests={"memory": "256Mi"}),
                           container("d", requests={"cpu": "100m"}, limits={"memory": "1Gi"})]}
    assert limitranger.violations(limit_range, spec) == [
        "maximum cpu usage per Container is 1, but limit is 2",
        "memory max limit to request ratio per Container is 2, but provided ratio is 4.000000",
        "maximum cpu usage per Container is 1.  No limit is specified",
        "memory max limit to request ratio per Container is 2, but no request is specified or request is 0",
        "minimum cpu usage per Pod is 300m, but request is 100m",
    ]


def test_limit_range_defaulting_fills_requests_from_limits_and_min() -> None:
    kind = KindRegistry().by_key(("", "limitranges"))
    assert kind is not None
    obj: dict[str, Any] = {"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"},
                                                "default": {"memory": "64Mi"}}]}}
    defaults.apply(kind, obj, None)
    assert obj["spec"]["limits"][0]["default"] == {"cpu": "2", "memory": "64Mi"}
    assert obj["spec"]["limits"][0]["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}
