"""The Priority admission plugin and the system PriorityClasses, with kube-apiserver's messages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

PCS = "/apis/scheduling.k8s.io/v1/priorityclasses"


def pod(name: str, *, resources: dict | None = None, **spec: Any) -> dict:
    container: dict[str, Any] = {"name": "c", "image": "busybox", "command": ["sleep", "3600"]}
    if resources is not None:
        container["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": {"localkube.dask.org/simulate": "true"}},
            "spec": {"containers": [container], **spec}}


def priority_class(name: str, value: int, **fields: Any) -> dict:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, **fields}


@pytest.fixture
def classes(kube) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """PriorityClasses a test creates (cluster-scoped: removed afterwards, a global default above all)."""
    made: list[str] = []
    yield made
    for name in made:
        kube.request("DELETE", f"{PCS}/{name}")


def test_priority_class_name_resolves_into_priority_and_preemption_policy(kube, namespace, classes) -> None:  # type: ignore[no-untyped-def]
    name = f"never-{namespace}"
    assert kube.request("POST", PCS, priority_class(name, 1000, preemptionPolicy="Never"))[0] == 201
    classes.append(name)
    pods = f"/api/v1/namespaces/{namespace}/pods"
    code, created = kube.request("POST", pods, pod("classed", priorityClassName=name))
    assert code == 201
    assert (created["spec"]["priority"], created["spec"]["preemptionPolicy"]) == (1000, "Never")
    code, plain = kube.request("POST", pods, pod("plain"))
    assert code == 201 and (plain["spec"]["priority"], plain["spec"]["preemptionPolicy"]) == (0, "PreemptLowerPriority")
    assert "priorityClassName" not in plain["spec"]
    code, err = kube.request("POST", pods, pod("unknown", priorityClassName="no-such-class"))
    assert (code, err["reason"]) == (403, "Forbidden")
    assert err["message"] == 'pods "unknown" is forbidden: no PriorityClass with name no-such-class was found'
    code, err = kube.request("POST", pods, pod("bossy", priority=5))
    assert code == 403 and err["message"] == (
        'pods "bossy" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority '
        "admission controller computed 0 from the given PriorityClass name")
    code, err = kube.request("POST", pods, pod("policy", priorityClassName=name,
                                               preemptionPolicy="PreemptLowerPriority"))
    assert code == 403 and "the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided" in \
        err["message"]
    assert kube.request("POST", pods, pod("agrees", priority=1000, priorityClassName=name))[0] == 201
    code, critical = kube.request("POST", pods, pod("critical", priorityClassName="system-cluster-critical"))
    assert code == 201 and critical["spec"]["priority"] == 2000000000


def test_global_default_class_applies_to_pods_without_one(kube, namespace, classes) -> None:  # type: ignore[no-untyped-def]
    first, second = f"default-{namespace}", f"second-{namespace}"
    assert kube.request("POST", PCS, priority_class(first, 50, globalDefault=True))[0] == 201
    classes.append(first)
    code, err = kube.request("POST", PCS, priority_class(second, 60, globalDefault=True))
    assert code == 403 and err["message"] == (
        f'priorityclasses.scheduling.k8s.io "{second}" is forbidden: PriorityClass {first} is already marked as '
        "default. Only one default can exist")
    code, created = kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod("defaulted"))
    assert code == 201 and (created["spec"]["priorityClassName"], created["spec"]["priority"]) == (first, 50)


def test_system_priority_classes_exist_and_cannot_be_deleted(kube) -> None:  # type: ignore[no-untyped-def]
    _, listing = kube.request("GET", PCS)
    system = {pc["metadata"]["name"]: pc for pc in listing["items"] if pc["metadata"]["name"].startswith("system-")}
    assert {n: (pc["value"], pc.get("globalDefault", False)) for n, pc in system.items()} == {
        "system-cluster-critical": (2000000000, False), "system-node-critical": (2000001000, False)}
    out = kube.kubectl("delete", "pc", "system-node-critical", check=False)
    assert out.returncode == 1 and ('priorityclasses.scheduling.k8s.io "system-node-critical" is forbidden: this is '
                                    "a system priority class and cannot be deleted") in out.stderr
