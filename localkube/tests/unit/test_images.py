"""Container process specs: `$(VAR)` expansion, environment sources, quantities and image mappings."""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from typing import Any

import pytest

from localkube.node.images import (
    ConfigError,
    ImageMapping,
    base_environment,
    container_argv,
    container_env,
    expand,
    find_mapping,
    overlay,
    parse_quantity,
)

POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "a"},
                 "annotations": {"note": "n"}},
    "spec": {"nodeName": "node", "serviceAccountName": "sa", "containers": [{"name": "c"}]},
}
OBJECTS = {
    ("configmaps", "ns", "cm"): {"data": {"k": "v", "other": "o"}, "binaryData": {"bin": "Ymlu"}},
    ("secrets", "ns", "s"): {"data": {"pw": "aHVudGVyMg=="}},
}


def lookup(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    return OBJECTS.get((plural, namespace, name))


@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)", "1"),
    ("x$(A)y$(B)z", "x1y2z"),
    ("$$(A)", "$(A)"),
    ("$$$(A)", "$1"),
    ("$(MISSING)", "$(MISSING)"),
    ("$(A", "$(A"),
    ("$()", "$()"),
    ("$A", "$A"),
    ("cost: 5$", "cost: 5$"),
    ("$(A $(B)", "$(A $(B)"),
])
def test_expand_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == expected


def test_env_values_expand_against_earlier_variables_only() -> None:
    container = {"name": "c", "env": [
        {"name": "LATER_REF", "value": "$(B)"},
        {"name": "B", "value": "b"},
        {"name": "C", "value": "$(B)-$(LATER_REF)"},
    ]}
    env = container_env(POD, container, lookup, "10.0.0.1", "127.0.0.1")
    assert env == {"LATER_REF": "$(B)", "B": "b", "C": "b-$(B)"}


def test_field_refs() -> None:
    paths = ["metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels['app']",
             "metadata.annotations['note']", "spec.nodeName", "spec.serviceAccountName", "status.podIP",
             "status.hostIP", "status.podIPs"]
    container = {"name": "c", "env": [{"name": f"V{i}", "valueFrom": {"fieldRef": {"fieldPath": p}}}
                                      for i, p in enumerate(paths)]}
    env = container_env(POD, container, lookup, "10.0.0.1", "127.0.0.1")
    assert list(env.values()) == ["p", "ns", "u-1", "a", "n", "node", "sa", "10.0.0.1", "127.0.0.1", "10.0.0.1"]


def test_config_map_and_secret_refs() -> None:
    container = {"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"},
                                          {"secretRef": {"name": "s"}},
                                          {"secretRef": {"name": "absent", "optional": True}}],
                 "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                         {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                         {"name": "CM_k", "value": "overridden"}]}
    env = container_env(POD, container, lookup, "ip", "host")
    assert env == {"CM_k": "overridden", "CM_other": "o", "CM_bin": "bin", "pw": "hunter2", "K": "v",
                   "PW": "hunter2"}


@pytest.mark.parametrize(("ref", "message"), [
    ({"configMapKeyRef": {"name": "nope", "key": "k"}}, 'configmap "nope" not found'),
    ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
    ({"configMapKeyRef": {"name": "cm", "key": "missing"}}, "couldn't find key missing in ConfigMap ns/cm"),
])
def test_missing_references_are_config_errors(ref: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        container_env(POD, {"name": "c", "env": [{"name": "X", "valueFrom": ref}]}, lookup, "ip", "host")
    assert (info.value.reason, info.value.message) == ("CreateContainerConfigError", message)


def test_resource_field_refs() -> None:
    container = {"name": "c", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
                 "env": [{"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                         {"name": "MCPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                                             "divisor": "1m"}}},
                         {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory",
                                                                            "divisor": "1Mi"}}}]}
    env = container_env(POD, container, lookup, "ip", "host")
    assert env == {"CPU": "1", "MCPU": "500", "MEM": "1024"}


@pytest.mark.parametrize(("text", "value"), [
    ("500m", Decimal("0.5")), ("2", Decimal(2)), ("1Ki", Decimal(1024)), ("1e3", Decimal(1000)),
    ("1.5G", Decimal(1_500_000_000)), ("3E", Decimal(3) * 10**18),
])
def test_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_argv_without_command_runs_args() -> None:
    assert container_argv({"args": ["dask", "worker", "$(ADDR)"]}, {"ADDR": "tcp://x:1"}) == \
        ["dask", "worker", "tcp://x:1"]
    assert container_argv({"command": ["a"], "args": ["b"]}, {}) == ["a", "b"]
    with pytest.raises(ConfigError) as info:
        container_argv({"image": "nginx"}, {})
    assert info.value.reason == "CreateContainerError"


def test_an_image_mapping_supplies_entrypoint_and_cmd_like_a_runtime() -> None:
    image = ImageMapping("op:*", entrypoint=("dask-kube-operator",), cmd=("--verbose",))
    assert container_argv({"args": ["-A"]}, {}, image) == ["dask-kube-operator", "-A"]  # args replace CMD
    assert container_argv({}, {}, image) == ["dask-kube-operator", "--verbose"]
    assert container_argv({"command": ["sh"]}, {}, image) == ["sh"]  # command replaces both
    assert container_argv({"command": ["sh"], "args": ["-c", "x"]}, {}, image) == ["sh", "-c", "x"]
    plain = ImageMapping("x:*", path=("/opt/bin",))  # no entrypoint known: args[0] is still the program
    assert container_argv({"args": ["dask", "worker"]}, {}, plain) == ["dask", "worker"]


def test_base_environment_and_image_mapping() -> None:
    mapping = ImageMapping("ghcr.io/dask/dask:2023.*", path=("/opt/old/bin",), env={"EXTRA": "1"})
    assert find_mapping("ghcr.io/dask/dask:2023.1.0", [mapping]) is mapping
    assert find_mapping("ghcr.io/dask/dask:2024.1.0", [mapping]) is None
    env = base_environment(mapping, inherited={"PATH": "/usr/bin:/bin", "HOME": "/h", "SECRET": "x"})
    assert env["PATH"].split(os.pathsep)[:2] == ["/opt/old/bin", os.path.dirname(sys.executable)]
    assert env["PATH"].endswith("/usr/bin:/bin")
    assert env["EXTRA"] == "1" and env["HOME"] == "/h" and "SECRET" not in env


def test_overlay_prepends_search_paths() -> None:
    env = overlay({"PYTHONPATH": "/user", "A": "1"}, {"PYTHONPATH": "/shim", "A": "2", "B": "3"})
    assert env == {"PYTHONPATH": f"/shim{os.pathsep}/user", "A": "2", "B": "3"}
