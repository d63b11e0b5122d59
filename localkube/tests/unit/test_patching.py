"""Merge patch, JSON patch and strategic merge patch, checked against API server behaviour."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from localkube.apiserver.patching import PatchError, json_patch, merge_patch, strategic_merge_patch

INVALID = "the server rejected our request due to an error in our request"

# --------------------------------------------------------------------------- RFC 7386


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
    ids=[f"rfc7386-appendix-{i}" for i in range(1, 16)],
)
def test_merge_patch_rfc7386_appendix(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_merge_patch_does_not_mutate_or_alias() -> None:
    target = {"metadata": {"labels": {"a": "1"}}, "spec": {"list": [{"x": 1}]}}
    patch = {"metadata": {"labels": {"b": "2"}}, "spec": {"new": {"deep": [1]}}}
    before_target, before_patch = copy.deepcopy(target), copy.deepcopy(patch)
    result = merge_patch(target, patch)
    assert target == before_target
    assert patch == before_patch
    result["spec"]["list"][0]["x"] = 99
    result["spec"]["new"]["deep"].append(2)
    assert target == before_target
    assert patch == before_patch


# --------------------------------------------------------------------------- RFC 6902

DOC = {"metadata": {"name": "x", "resourceVersion": "110", "labels": {"a/b": "1", "c~d": "2"}}, "list": [1, 2, 3]}


@pytest.mark.parametrize(
    ("ops", "path", "expected"),
    [
        ([{"op": "add", "path": "/metadata/labels/new", "value": "v"}], ("metadata", "labels", "new"), "v"),
        ([{"op": "add", "path": "/list/-", "value": 4}], ("list",), [1, 2, 3, 4]),
        ([{"op": "add", "path": "/list/0", "value": 0}], ("list",), [0, 1, 2, 3]),
        ([{"op": "remove", "path": "/list/1"}], ("list",), [1, 3]),
        ([{"op": "remove", "path": "/metadata/labels/a~1b"}], ("metadata", "labels"), {"c~d": "2"}),
        ([{"op": "replace", "path": "/metadata/labels/c~0d", "value": "9"}], ("metadata", "labels", "c~d"), "9"),
        ([{"op": "move", "from": "/metadata/name", "path": "/name"}], ("name",), "x"),
        ([{"op": "copy", "from": "/list", "path": "/copy"}], ("copy",), [1, 2, 3]),
        (
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "110"},
                {"op": "replace", "path": "/metadata/name", "value": "y"},
            ],
            ("metadata", "name"),
            "y",
        ),
    ],
    ids=["add", "append-dash", "insert", "remove-index", "escape-slash", "escape-tilde", "move", "copy", "kopf-test"],
)
def test_json_patch_operations(ops: list[dict[str, Any]], path: tuple[str, ...], expected: Any) -> None:
    result: Any = json_patch(DOC, ops)
    for part in path:
        result = result[part]
    assert result == expected


def test_json_patch_move_removes_source_and_does_not_mutate() -> None:
    before = copy.deepcopy(DOC)
    ops = [{"op": "move", "from": "/metadata/name", "path": "/name"}]
    result = json_patch(DOC, ops)
    assert "name" not in result["metadata"]
    assert before == DOC
    result["list"].append(9)
    assert before == DOC


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/metadata/resourceVersion", "value": "109"}],
        [{"op": "test", "path": "/metadata/missing", "value": "x"}],
        [{"op": "remove", "path": "/metadata/missing"}],
        [{"op": "replace", "path": "/spec/missing", "value": 1}],
        [{"op": "add", "path": "/spec/missing/deeper", "value": 1}],
        [{"op": "remove", "path": "/list/7"}],
        [{"op": "move", "from": "/nope", "path": "/x"}],
        [{"op": "frobnicate", "path": "/x"}],
        [{"path": "/x", "value": 1}],
        [{"op": "add", "value": 1}],
        [{"op": "add", "path": "/x"}],
        [{"op": "replace", "path": "", "value": [1]}],
    ],
    ids=[
        "test-mismatch",
        "test-missing",
        "remove-missing",
        "replace-missing",
        "add-missing-parent",
        "remove-out-of-range",
        "move-missing-from",
        "unknown-op",
        "missing-op",
        "missing-path",
        "missing-value",
        "root-not-object",
    ],
)
def test_json_patch_failures_are_422(ops: list[dict[str, Any]]) -> None:
    with pytest.raises(PatchError) as info:
        json_patch(DOC, ops)
    assert (info.value.code, info.value.reason, info.value.message) == (422, "Invalid", INVALID)
    assert info.value.detail


def test_failed_json_patch_leaves_target_untouched() -> None:
    before = copy.deepcopy(DOC)
    ops = [
        {"op": "replace", "path": "/metadata/name", "value": "changed"},
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
    ]
    with pytest.raises(PatchError):
        json_patch(DOC, ops)
    assert before == DOC


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ({"op": "add", "path": "/x", "value": 1}, "cannot unmarshal object into Go value of type jsonpatch.Patch"),
        ("nope", "cannot unmarshal string into Go value of type jsonpatch.Patch"),
        (None, "cannot unmarshal null into Go value of type jsonpatch.Patch"),
        (["add"], "cannot unmarshal string into Go value of type jsonpatch.Operation"),
    ],
    ids=["object", "string", "null", "item-not-object"],
)
def test_json_patch_undecodable_is_400(ops: Any, message: str) -> None:
    with pytest.raises(PatchError) as info:
        json_patch(DOC, ops)
    assert (info.value.code, info.value.reason) == (400, "BadRequest")
    assert message in info.value.message


def test_empty_json_patch_is_identity() -> None:
    assert json_patch(DOC, []) == DOC


# --------------------------------------------------------------------------- strategic merge patch


def _pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "annotations": {"keep": "me"},
            "finalizers": ["a", "b"],
            "ownerReferences": [{"uid": "u1", "kind": "ReplicaSet", "name": "rs"}],
        },
        "spec": {
            "containers": [
                {
                    "name": "nginx",
                    "image": "nginx:1.25",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "volumeMounts": [{"mountPath": "/data", "name": "data"}],
                },
                {"name": "sidecar", "image": "busybox"},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "t1", "operator": "Exists"}],
            "nodeSelector": {"disk": "ssd", "zone": "a"},
        },
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]},
    }


def _service() -> dict[str, Any]:
    return {
        "kind": "Service",
        "metadata": {"name": "svc"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 80, "protocol": "TCP"}]},
    }


def _deployment() -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "d", "annotations": {"old": "1"}},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]},
            },
        },
        "status": {"conditions": [{"type": "Available", "status": "True"}]},
    }


def _names(items: list[dict[str, Any]], key: str = "name") -> list[Any]:
    return [item[key] for item in items]


def test_kubectl_set_image_body_on_pod() -> None:
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"image": "nginx:1.26", "name": "nginx"}],
        },
    }
    result = strategic_merge_patch(_pod(), patch, "Pod")
    nginx = result["spec"]["containers"][0]
    assert nginx["image"] == "nginx:1.26"
    assert nginx["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert _names(result["spec"]["containers"]) == ["nginx", "sidecar"]
    assert result["metadata"]["annotations"] == {
        "keep": "me",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    assert "$setElementOrder/containers" not in result["spec"]


def test_kubectl_apply_body_on_deployment() -> None:
    patch = {
        "metadata": {"annotations": {"new": "2"}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "nginx"}],
                    "containers": [{"image": "nginx:1.26", "name": "nginx"}],
                }
            }
        },
    }
    result = strategic_merge_patch(_deployment(), patch, "Deployment")
    containers = result["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "nginx", "image": "nginx:1.26", "ports": [{"containerPort": 80}]}]
    assert result["metadata"]["annotations"] == {"old": "1", "new": "2"}
    assert result["spec"]["replicas"] == 1


def test_kubectl_service_port_change_body() -> None:
    patch = {
        "spec": {
            "$setElementOrder/ports": [{"port": 8081}],
            "ports": [{"port": 8081, "targetPort": 80}, {"$patch": "delete", "port": 8080}],
        }
    }
    result = strategic_merge_patch(_service(), patch, "Service")
    assert result["spec"]["ports"] == [{"port": 8081, "targetPort": 80}]
    assert result["spec"]["selector"] == {"app": "web"}


@pytest.mark.parametrize(
    ("kind", "obj", "patch", "path", "expected"),
    [
        (
            "Pod",
            _pod(),
            {"spec": {"containers": [{"name": "nginx", "ports": [{"containerPort": 443}]}]}},
            ("spec", "containers", 0, "ports"),
            [{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}],
        ),
        (
            "Pod",
            _pod(),
            {"spec": {"containers": [{"name": "nginx", "ports": [{"containerPort": 80, "name": "http"}]}]}},
            ("spec", "containers", 0, "ports"),
            [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
        ),
        (
            "Service",
            _service(),
            {"spec": {"ports": [{"port": 8080, "name": "web"}]}},
            ("spec", "ports"),
            [{"port": 8080, "targetPort": 80, "protocol": "TCP", "name": "web"}],
        ),
        (
            "Pod",
            _pod(),
            {"spec": {"containers": [{"name": "nginx", "env": [{"name": "B", "value": "20"}]}]}},
            ("spec", "containers", 0, "env"),
            [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}],
        ),
        (
            "Pod",
            _pod(),
            {"spec": {"containers": [{"name": "nginx", "volumeMounts": [{"mountPath": "/data", "readOnly": True}]}]}},
            ("spec", "containers", 0, "volumeMounts"),
            [{"mountPath": "/data", "name": "data", "readOnly": True}],
        ),
        (
            "Pod",
            _pod(),
            {"spec": {"volumes": [{"name": "data", "emptyDir": {"medium": "Memory"}}]}},
            ("spec", "volumes"),
            [{"name": "data", "emptyDir": {"medium": "Memory"}}],
        ),
        (
            "Pod",
            _pod(),
            {"spec": {"tolerations": [{"key": "t2", "operator": "Exists"}]}},
            ("spec", "tolerations"),
            [{"key": "t2", "operator": "Exists"}],
        ),
        (
            "Pod",
            _pod(),
            {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            ("status", "conditions"),
            [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}],
        ),
        (
            "Pod",
            _pod(),
            {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]}},
            ("metadata", "ownerReferences"),
            [{"uid": "u1", "kind": "ReplicaSet", "name": "rs", "controller": True}],
        ),
        (
            "Pod",
            _pod(),
            {"spec": {"nodeSelector": {"zone": None, "gpu": "yes"}}},
            ("spec", "nodeSelector"),
            {"disk": "ssd", "gpu": "yes"},
        ),
        (
            "Pod",
            _pod(),
            {"spec": {"nodeSelector": None}},
            ("spec",),
            None,
        ),
        (
            "Deployment",
            _deployment(),
            {"status": {"conditions": [{"type": "Progressing", "status": "True"}]}},
            ("status", "conditions"),
            [{"type": "Progressing", "status": "True"}, {"type": "Available", "status": "True"}],
        ),
        (
            "Node",
            {"spec": {"podCIDRs": ["10.0.0.0/24"]}, "status": {"addresses": [{"type": "Hostname", "address": "a"}]}},
            {"status": {"addresses": [{"type": "Hostname", "address": "b"}]}},
            ("status", "addresses"),
            [{"type": "Hostname", "address": "b"}],
        ),
        (
            "Node",
            {"spec": {"podCIDRs": ["10.0.0.0/24"]}},
            {"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}},
            ("spec", "podCIDRs"),
            ["10.0.0.0/24", "fd00::/64"],
        ),
        (
            "ConfigMap",
            {"metadata": {"name": "c", "finalizers": ["x"]}, "data": {"a": "1", "b": "2"}},
            {"data": {"a": None, "c": "3"}, "metadata": {"finalizers": ["x", "y"]}},
            (),
            {"metadata": {"name": "c", "finalizers": ["x", "y"]}, "data": {"b": "2", "c": "3"}},
        ),
    ],
    ids=[
        "container-port-added-by-containerPort",
        "container-port-merged-by-containerPort",
        "service-port-merged-by-port",
        "env-merged-by-name",
        "volumeMounts-merged-by-mountPath",
        "volumes-merged-by-name",
        "tolerations-replaced",
        "conditions-merged-by-type",
        "ownerReferences-merged-by-uid",
        "map-null-deletes-key",
        "null-deletes-map",
        "deployment-status-conditions",
        "node-addresses-by-type",
        "node-podCIDRs-set",
        "configmap-data-and-finalizers",
    ],
)
def test_smp_merge_keys(
    kind: str, obj: dict[str, Any], patch: dict[str, Any], path: tuple[Any, ...], expected: Any
) -> None:
    result: Any = strategic_merge_patch(obj, patch, kind)
    for part in path:
        result = result[part]
    if expected is None:
        assert "nodeSelector" not in result
    else:
        assert result == expected


@pytest.mark.parametrize(
    ("patch_list", "expected"),
    [
        ([{"name": "sidecar", "image": "busybox:2"}], ["nginx", "sidecar"]),
        ([{"name": "new"}], ["new", "nginx", "sidecar"]),
        ([{"name": "sidecar"}, {"name": "new"}], ["nginx", "sidecar", "new"]),
        ([{"name": "sidecar"}, {"name": "nginx"}], ["sidecar", "nginx"]),
        ([], ["nginx", "sidecar"]),
    ],
    ids=["update-keeps-order", "new-item-goes-first", "new-after-patched", "patch-order-wins", "empty-list-no-op"],
)
def test_smp_keyed_list_order_follows_server(patch_list: list[dict[str, Any]], expected: list[str]) -> None:
    result = strategic_merge_patch(_pod(), {"spec": {"containers": patch_list}}, "Pod")
    assert _names(result["spec"]["containers"]) == expected


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"finalizers": ["c"]}, ["c", "a", "b"]),
        ({"finalizers": ["b", "c"]}, ["a", "b", "c"]),
        ({"finalizers": ["a"]}, ["a", "b"]),
        ({"$setElementOrder/finalizers": ["a", "b", "c"], "finalizers": ["c"]}, ["a", "b", "c"]),
        ({"$deleteFromPrimitiveList/finalizers": ["a"]}, ["b"]),
        ({"$deleteFromPrimitiveList/finalizers": ["zzz"]}, ["a", "b"]),
        ({"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]}, ["c", "b"]),
        ({"finalizers": None}, None),
    ],
    ids=[
        "add-new",
        "add-after-existing",
        "duplicate-ignored",
        "kubectl-style-append",
        "delete-from-primitive-list",
        "delete-missing-value",
        "delete-and-add",
        "null-clears",
    ],
)
def test_smp_finalizers_set_merge(patch: dict[str, Any], expected: list[str] | None) -> None:
    result = strategic_merge_patch(_pod(), {"metadata": patch}, "Pod")
    assert result["metadata"].get("finalizers") == expected
    assert not any(k.startswith("$") for k in result["metadata"])


@pytest.mark.parametrize(
    ("patch", "path", "expected"),
    [
        (
            {"spec": {"nodeSelector": {"$patch": "replace", "only": "this"}}},
            ("spec", "nodeSelector"),
            {"only": "this"},
        ),
        (
            {"spec": {"containers": [{"name": "solo", "image": "x"}, {"$patch": "replace"}]}},
            ("spec", "containers"),
            [{"name": "solo", "image": "x"}],
        ),
        (
            {"spec": {"containers": [{"$patch": "delete", "name": "sidecar"}]}},
            ("spec", "containers"),
            [_pod()["spec"]["containers"][0]],
        ),
        (
            {"spec": {"containers": [{"name": "nginx", "env": [{"name": "A", "$patch": "delete"}]}]}},
            ("spec", "containers", 0, "env"),
            [{"name": "B", "value": "2"}],
        ),
        (
            {"spec": {"nodeSelector": {"$patch": "delete"}}},
            ("spec", "nodeSelector"),
            {},
        ),
        (
            {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}]}},
            ("spec", "containers"),
            [_pod()["spec"]["containers"][1], _pod()["spec"]["containers"][0]],
        ),
        (
            {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}]}},
            ("spec", "containers"),
            [_pod()["spec"]["containers"][0], _pod()["spec"]["containers"][1]],
        ),
        (
            {
                "spec": {
                    "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}, {"name": "new"}],
                    "containers": [{"name": "new", "image": "n"}],
                }
            },
            ("spec", "containers"),
            ["sidecar", "nginx", "new"],
        ),
        (
            {"spec": {"initContainers": [{"name": "init", "image": "i"}, {"$patch": "delete", "name": "gone"}]}},
            ("spec", "initContainers"),
            [{"name": "init", "image": "i"}],
        ),
        (
            {"spec": {"affinity": {"$patch": "replace", "nodeAffinity": {"x": None, "y": 1}}}},
            ("spec", "affinity"),
            {"nodeAffinity": {"y": 1}},
        ),
    ],
    ids=[
        "replace-map",
        "replace-keyed-list",
        "delete-keyed-item",
        "delete-nested-env",
        "delete-map-empties-it",
        "set-element-order-reorders",
        "set-element-order-partial",
        "set-element-order-with-new-item",
        "new-list-drops-directives",
        "new-map-drops-directive-and-nulls",
    ],
)
def test_smp_directives(patch: dict[str, Any], path: tuple[Any, ...], expected: Any) -> None:
    result: Any = strategic_merge_patch(_pod(), patch, "Pod")
    for part in path:
        result = result[part]
    if expected and isinstance(expected, list) and isinstance(expected[0], str):
        result = _names(result)
    assert result == expected


def test_smp_retain_keys_on_deployment_strategy() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    result = strategic_merge_patch(_deployment(), patch, "Deployment")
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_smp_retain_keys_on_volume() -> None:
    obj = _pod()
    patch = {"spec": {"volumes": [{"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}}
    result = strategic_merge_patch(obj, patch, "Pod")
    assert result["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/x"}}]


@pytest.mark.parametrize(
    ("kind", "obj", "patch", "expected"),
    [
        (
            "CronJob",
            {
                "spec": {
                    "jobTemplate": {
                        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "1"}, {"name": "d"}]}}}
                    }
                }
            },
            {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "2"}]}}}}}},
            [{"name": "c", "image": "2"}, {"name": "d"}],
        ),
        (
            "ReplicaSet",
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "1"}, {"name": "d"}]}}}},
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "2"}]}}}},
            [{"name": "c", "image": "2"}, {"name": "d"}],
        ),
        (
            "Job",
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "1"}, {"name": "d"}]}}}},
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "2"}]}}}},
            [{"name": "c", "image": "2"}, {"name": "d"}],
        ),
        (
            "DaskCluster",
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "1"}, {"name": "d"}]}}}},
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "2"}]}}}},
            [{"name": "c", "image": "2"}],
        ),
    ],
    ids=["cronjob", "replicaset", "job", "unknown-kind-replaces"],
)
def test_smp_embedded_pod_templates(kind: str, obj: dict[str, Any], patch: dict[str, Any], expected: Any) -> None:
    result = strategic_merge_patch(obj, patch, kind)
    spec = result["spec"]
    if kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    assert spec["template"]["spec"]["containers"] == expected


def test_smp_unknown_kind_merges_maps() -> None:
    obj = {"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]}, "spec": {"workers": 1, "image": "i"}}
    patch = {"metadata": {"labels": {"b": "2"}, "finalizers": ["y"]}, "spec": {"workers": 3}}
    result = strategic_merge_patch(obj, patch, "Unknown")
    assert result == {
        "metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["y"]},
        "spec": {"workers": 3, "image": "i"},
    }


@pytest.mark.parametrize(
    ("patch", "code", "fragment"),
    [
        ({"spec": {"nodeSelector": {"$patch": "bogus"}}}, 400, "unknown patch type: bogus in map"),
        ({"spec": {"containers": [{"$patch": "merge", "name": "x"}]}}, 400, "merging lists cannot yet be specified"),
        ({"spec": {"containers": [{"$patch": "explode", "name": "x"}]}}, 400, "unknown patch type: explode"),
        ({"spec": {"containers": [{"$patch": "delete"}]}}, 400, "does not contain declared merge key: name"),
        ({"spec": {"containers": [{"image": "x"}]}}, 400, "does not contain declared merge key: name"),
        ({"spec": {"strategy": {"$retainKeys": "type"}}}, 400, "invalid patch format of retainKeys"),
        ({"spec": {"nodeSelector": {"$retainKeys": ["a"], "b": "1"}}}, 400, "invalid patch format of retainKeys"),
        ({"spec": {"$setElementOrder/containers": "x"}}, 400, "invalid patch format of setElementOrder list"),
        (
            {"spec": {"$setElementOrder/containers": [{"name": "nginx"}], "containers": [{"name": "other"}]}},
            400,
            "doesn't match $setElementOrder/ list",
        ),
        ({"spec": {"imagePullSecrets": [["nested"]]}}, 422, "lists of lists are not supported"),
        ({"metadata": {"finalizers": [1]}}, 400, "list element types are not identical"),
    ],
    ids=[
        "bad-map-directive",
        "list-merge-directive",
        "bad-list-directive",
        "delete-without-key",
        "item-without-key",
        "retain-keys-not-list",
        "retain-keys-mismatch",
        "set-order-not-list",
        "set-order-mismatch",
        "list-of-lists",
        "mixed-element-types",
    ],
)
def test_smp_errors(patch: dict[str, Any], code: int, fragment: str) -> None:
    with pytest.raises(PatchError) as info:
        strategic_merge_patch(_pod(), patch, "Pod")
    assert info.value.code == code
    assert info.value.reason == ("BadRequest" if code == 400 else "Invalid")
    assert fragment in (info.value.detail or info.value.message)


@pytest.mark.parametrize("patch", [[{"a": 1}], "x", None], ids=["list", "string", "null"])
def test_smp_non_object_patch_is_400(patch: Any) -> None:
    with pytest.raises(PatchError) as info:
        strategic_merge_patch(_pod(), patch, "Pod")
    assert info.value.code == 400


def test_smp_does_not_mutate_inputs_or_share_structure() -> None:
    obj = _pod()
    patch = {
        "metadata": {"finalizers": ["z"], "$deleteFromPrimitiveList/finalizers": ["a"]},
        "spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"name": "nginx", "env": [{"name": "A", "$patch": "delete"}], "args": ["x"]}],
            "nodeSelector": {"$patch": "replace", "k": "v"},
            "newList": [{"a": [1]}],
        },
    }
    obj_before, patch_before = copy.deepcopy(obj), copy.deepcopy(patch)
    result = strategic_merge_patch(obj, patch, "Pod")
    assert obj == obj_before
    assert patch == patch_before
    result["spec"]["containers"][0]["args"].append("y")
    result["spec"]["newList"][0]["a"].append(2)
    result["spec"]["containers"][1]["image"] = "changed"
    assert obj == obj_before
    assert patch == patch_before


def _has_directive(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k.startswith("$") or _has_directive(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_directive(v) for v in value)
    return False


def test_smp_result_never_contains_directives() -> None:
    patch = {
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "$setElementOrder/finalizers": ["b"]},
        "spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"name": "nginx", "$retainKeys": ["name", "image"], "image": "x"}],
            "volumes": [{"name": "v2", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}],
            "tolerations": [{"key": "t", "$patch": "replace"}, {"key": "u"}],
            "fresh": {"$patch": "replace", "inner": {"$retainKeys": ["a"], "a": 1}},
            "$setElementOrder/initContainers": [{"name": "i"}],
            "initContainers": [{"name": "i"}, {"$patch": "delete", "name": "j"}],
        },
    }
    result = strategic_merge_patch(_pod(), patch, "Pod")
    assert not _has_directive(result)
    assert result["spec"]["containers"][0] == {"name": "nginx", "image": "x"}
    assert result["spec"]["initContainers"] == [{"name": "i"}]
    assert result["spec"]["tolerations"] == [{"key": "u"}]


def test_patch_error_attributes() -> None:
    err = PatchError(422, "Invalid", "msg")
    assert (err.code, err.reason, err.message, str(err)) == (422, "Invalid", "msg", "msg")
    assert "422" in repr(err)
