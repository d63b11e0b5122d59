"""Unit tests for the server-side apply engine: wire format, merge semantics, ownership, conflicts, managedFields."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest

from localkube.apiserver import ssa

T1, T2, T3, T4 = (f"2024-01-0{d}T00:00:00Z" for d in range(1, 5))


# ------------------------------------------------------------------------------------------------ helpers


def deployment(replicas: int | None = 2, image: str = "nginx:1", **spec_extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    spec.update(spec_extra)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": spec}


def persisted(obj: dict[str, Any], uid: str = "uid-1") -> dict[str, Any]:
    """What a store would hand back: the object plus server-set identity."""
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("uid", uid)
    out["metadata"].setdefault("resourceVersion", "1")
    return out


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def owned(obj: dict[str, Any], manager: str, operation: str = "Apply") -> set[str]:
    entry = entries(obj).get((manager, operation))
    return {ssa.path_string(p) for p in ssa.fields_from_json(entry["fieldsV1"])} if entry else set()


def applied(live: dict[str, Any] | None, config: dict[str, Any], manager: str, **kw: Any) -> dict[str, Any]:
    kw.setdefault("now", T1)
    return persisted(ssa.apply(live, config, manager, **kw).object)


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusters.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Cluster", "plural": "clusters"},
        "scope": "Namespaced",
        "versions": [{
            "name": "v1",
            "served": True,
            "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "properties": {
                            "replicas": {"type": "integer"},
                            "workers": {
                                "type": "array",
                                "x-kubernetes-list-type": "map",
                                "x-kubernetes-list-map-keys": ["name", "zone"],
                                "items": {"type": "object", "properties": {
                                    "name": {"type": "string"},
                                    "zone": {"type": "string", "default": "a"},
                                    "size": {"type": "integer"},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                }},
                            },
                            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                            "args": {"type": "array", "items": {"type": "string"}},
                            "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                                         "additionalProperties": {"type": "string"}},
                            "options": {"type": "object", "additionalProperties": {"type": "string"}},
                            "resources": {"type": "object", "properties": {
                                "cpu": {"type": "string"}, "memory": {"type": "string"}}},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    },
                    "status": {
                        "type": "object",
                        "properties": {
                            "phase": {"type": "string"},
                            "conditions": {
                                "type": "array",
                                "x-kubernetes-list-type": "map",
                                "x-kubernetes-list-map-keys": ["type"],
                                "items": {"type": "object", "properties": {
                                    "type": {"type": "string"}, "status": {"type": "string"}}},
                            },
                        },
                    },
                },
            }},
        }],
    },
}
SCHEMA = ssa.schema_for_crd(CRD, "v1")


def cluster(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Cluster", "metadata": {"name": "c1", "namespace": "ns"},
            "spec": spec}


# --------------------------------------------------------------------------------- FieldsV1 wire format


def test_fieldsv1_round_trip_and_server_ordering() -> None:
    paths = {
        (("f", "spec"), ("f", "tags"), ("v", '"b"')),
        (("f", "spec"), ("f", "tags"), ("v", "1")),
        (("f", "spec"), ("f", "workers"), ("k", (("name", '"w"'), ("zone", '"a"')))),
        (("f", "spec"), ("f", "workers"), ("k", (("name", '"w"'), ("zone", '"a"'))), ("f", "size")),
        (("f", "spec"), ("f", "a")),
        (("f", "spec"), ("f", "list"), ("i", 2)),
    }
    wire = ssa.fields_to_json(paths)
    assert list(wire["f:spec"]) == ["f:a", "f:list", "f:tags", "f:workers"]
    assert list(wire["f:spec"]["f:tags"]) == ["v:1", 'v:"b"']  # numbers sort before strings
    assert wire["f:spec"]["f:workers"] == {'k:{"name":"w","zone":"a"}': {".": {}, "f:size": {}}}
    assert wire["f:spec"]["f:list"] == {"i:2": {}}
    assert ssa.fields_from_json(wire) == paths


def test_fieldsv1_parsing_normalises_keys_and_rejects_garbage() -> None:
    parsed = ssa.fields_from_json({'k:{"zone": "a", "name": "w"}': {}})
    assert parsed == {(("k", (("name", '"w"'), ("zone", '"a"'))),)}
    for bad in ({"x:foo": {}}, {"foo": {}}, {"f:a": 1}, {"k:[1]": {}}, {"i:x": {}}):
        with pytest.raises(ValueError):
            ssa.fields_from_json(bad)


def test_path_strings_match_conflict_rendering() -> None:
    assert ssa.path_string((("f", "spec"), ("f", "replicas"))) == ".spec.replicas"
    containers = (("f", "spec"), ("f", "template"), ("f", "spec"), ("f", "containers"))
    assert ssa.path_string((*containers, ("k", (("name", '"nginx"'),)), ("f", "image"))) == (
        '.spec.template.spec.containers[name="nginx"].image'
    )
    port = ("k", (("containerPort", "80"), ("protocol", '"TCP"')))
    assert ssa.path_string((("f", "ports"), port)) == '.ports[containerPort=80,protocol="TCP"]'
    assert ssa.path_string((("f", "metadata"), ("f", "finalizers"), ("v", '"a/b"'))) == '.metadata.finalizers[="a/b"]'
    assert ssa.path_string((("f", "x"), ("i", 3))) == ".x[3]"


def test_key_values_are_written_like_go_json() -> None:
    paths = ssa.field_set(cluster(workers=[{"name": "<a&b>", "size": 1}]), SCHEMA)
    wire = ssa.fields_to_json(paths)
    assert 'k:{"name":"\\u003ca\\u0026b\\u003e","zone":"a"}' in wire["f:spec"]["f:workers"]


# ----------------------------------------------------------------------------------------- field sets


def test_field_set_of_a_deployment_apply_configuration() -> None:
    wire = ssa.fields_to_json(ssa.field_set(deployment()))
    assert wire == {
        "f:apiVersion": {},
        "f:kind": {},
        "f:metadata": {"f:name": {}, "f:namespace": {}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},  # LabelSelector is an atomic struct
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {'k:{"name":"nginx"}': {
                    ".": {},
                    "f:image": {},
                    "f:name": {},
                    # protocol omitted, yet the key carries the schema default like the real server
                    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                }}},
            },
        },
    }


def test_field_set_shapes_on_a_crd() -> None:
    obj = cluster(
        workers=[{"name": "w1", "size": 1}], tags=["x"], args=[], selector={"k": "v"}, options={},
        extra={"deep": {"x": 1}}, resources={},
    )
    wire = ssa.fields_to_json(ssa.field_set(obj, SCHEMA))["f:spec"]
    assert wire["f:args"] == {}  # atomic list: owned whole, even when empty
    assert wire["f:selector"] == {}  # atomic map
    assert wire["f:options"] == {}  # an empty map is owned as a leaf
    assert wire["f:resources"] == {}
    assert wire["f:tags"] == {'v:"x"': {}}
    assert wire["f:extra"] == {"f:deep": {".": {}, "f:x": {}}}  # preserved-unknown keys are owned as map entries
    assert wire["f:workers"] == {'k:{"name":"w1","zone":"a"}': {".": {}, "f:name": {}, "f:size": {}}}


def test_empty_associative_list_owns_nothing() -> None:
    assert ssa.fields_to_json(ssa.field_set(cluster(tags=[], workers=[]), SCHEMA)) == {
        "f:apiVersion": {}, "f:kind": {}, "f:metadata": {"f:name": {}, "f:namespace": {}},
    }


def test_untyped_maps_own_their_keys() -> None:
    schema = ssa.Schema.from_openapi({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    wire = ssa.fields_to_json(ssa.field_set({"spec": {"a": {"b": 1}, "l": [1, 2]}}, schema))
    assert wire == {"f:spec": {".": {}, "f:a": {".": {}, "f:b": {}}, "f:l": {}}}


# ------------------------------------------------------------------------------------------- create


def test_apply_creates_and_records_one_apply_entry() -> None:
    result = ssa.apply(None, deployment(), "kubectl", now=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    assert result.created and result.changed
    obj = result.object
    assert obj["spec"]["replicas"] == 2
    [entry] = obj["metadata"]["managedFields"]
    assert list(entry) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"]
    assert entry["manager"] == "kubectl"
    assert entry["operation"] == "Apply"
    assert entry["apiVersion"] == "apps/v1"
    assert entry["time"] == T1
    assert entry["fieldsType"] == "FieldsV1"
    # identity and server-owned metadata are never owned
    assert "f:apiVersion" not in entry["fieldsV1"] and "f:metadata" not in entry["fieldsV1"]
    assert result.managed_fields == obj["metadata"]["managedFields"]


def test_apply_drops_server_owned_metadata_from_the_body() -> None:
    config = deployment()
    config["metadata"].update(uid="stale", resourceVersion="7", creationTimestamp="2020-01-01T00:00:00Z",
                              generation=4, labels={"a": "1"})
    live = persisted(ssa.apply(None, deployment(), "kubectl", now=T1).object, uid="real")
    live["metadata"]["creationTimestamp"] = "2023-01-01T00:00:00Z"
    obj = ssa.apply(live, config, "kubectl", now=T2).object
    assert obj["metadata"]["uid"] == "real"
    assert obj["metadata"]["resourceVersion"] == "1"
    assert obj["metadata"]["creationTimestamp"] == "2023-01-01T00:00:00Z"
    assert "generation" not in obj["metadata"]
    assert owned(obj, "kubectl") >= {".metadata.labels.a"}


# ---------------------------------------------------------------------------------------- conflicts


def test_conflict_with_an_updater_has_the_servers_message_and_status() -> None:
    live = applied(None, deployment(), "kubectl")
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    live = ssa.update_managed_fields(live, scaled, "kubectl-client-side-apply", now=T2)
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(live, deployment(replicas=3), "kubectl", now=T3)
    err = info.value
    assert err.code == 409
    assert err.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    )
    assert err.conflicts == [ssa.ConflictItem(".spec.replicas", "kubectl-client-side-apply", "Update", "apps/v1")]
    assert err.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": err.message,
        "reason": "Conflict",
        "details": {"causes": [{
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
            "field": ".spec.replicas",
        }]},
        "code": 409,
    }


def test_conflict_with_another_applier_names_no_version() -> None:
    live = applied(None, deployment(), "alice")
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(live, deployment(replicas=9), "bob")
    assert info.value.message == 'Apply failed with 1 conflict: conflict with "alice": .spec.replicas'


def test_several_conflicts_grouped_by_sorted_manager() -> None:
    live = applied(None, deployment(minReadySeconds=1), "zed")
    changed = copy.deepcopy(live)
    changed["spec"]["paused"] = True
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    changed["spec"]["replicas"] = 4
    live = persisted(ssa.update_managed_fields(live, changed, "alpha", now=T2))
    config = deployment(replicas=1, image="nginx:3", paused=False, minReadySeconds=5)
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(live, config, "me")
    assert info.value.message == (
        "Apply failed with 4 conflicts: "
        'conflicts with "alpha" using apps/v1:\n'
        "- .spec.paused\n"
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="nginx"].image\n'
        'conflicts with "zed":\n'
        "- .spec.minReadySeconds"
    )
    assert [c["field"] for c in info.value.details["causes"]] == [
        ".spec.paused", ".spec.replicas", '.spec.template.spec.containers[name="nginx"].image', ".spec.minReadySeconds"
    ]


def test_equal_values_are_shared_not_conflicting() -> None:
    live = applied(None, deployment(), "alice")
    result = ssa.apply(live, deployment(), "bob", now=T2)
    assert not result.changed
    obj = result.object
    assert ".spec.replicas" in owned(obj, "alice") and ".spec.replicas" in owned(obj, "bob")
    # a no-op apply does not stamp a time (the server only stamps when the object changed)
    assert "time" not in entries(obj)[("bob", "Apply")]
    assert entries(obj)[("alice", "Apply")]["time"] == T1


def test_force_takes_ownership_from_everyone() -> None:
    live = applied(None, deployment(), "alice")
    live = applied(live, deployment(), "bob")  # bob shares everything
    result = ssa.apply(live, deployment(replicas=7), "carol", force=True, now=T3)
    obj = result.object
    assert obj["spec"]["replicas"] == 7
    assert ".spec.replicas" in owned(obj, "carol")
    assert ".spec.replicas" not in owned(obj, "alice") | owned(obj, "bob")
    assert ".spec.selector" in owned(obj, "alice")  # unchanged fields stay shared
    assert entries(obj)[("carol", "Apply")]["time"] == T3


def test_conflict_with_own_update_entry() -> None:
    """Apply and Update entries of one manager name are different managers, as on the real server."""
    live = persisted(ssa.update_managed_fields(None, deployment(), "kubectl", now=T1))
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(live, deployment(replicas=3), "kubectl")
    assert 'conflict with "kubectl" using apps/v1: .spec.replicas' in info.value.message


# ----------------------------------------------------------------------------------------- removal


def test_fields_a_manager_stops_applying_are_removed() -> None:
    config = deployment()
    config["metadata"]["labels"] = {"a": "1", "b": "2"}
    config["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "X", "value": "1"}]
    live = applied(None, config, "alice")
    config2 = deployment(replicas=None)
    config2["metadata"]["labels"] = {"a": "1"}
    obj = ssa.apply(live, config2, "alice", now=T2).object
    assert obj["metadata"]["labels"] == {"a": "1"}
    assert "replicas" not in obj["spec"]
    assert "env" not in obj["spec"]["template"]["spec"]["containers"][0]
    assert ".spec.replicas" not in owned(obj, "alice")


def test_removing_the_last_label_drops_the_map() -> None:
    config = deployment()
    config["metadata"]["labels"] = {"a": "1"}
    live = applied(None, config, "alice")
    obj = ssa.apply(live, deployment(), "alice", now=T2).object
    assert "labels" not in obj["metadata"]


def test_fields_another_manager_owns_stay_and_only_ownership_goes() -> None:
    live = applied(None, deployment(), "alice")
    live = applied(live, deployment(), "bob")
    obj = ssa.apply(live, deployment(replicas=None), "alice", now=T3).object
    assert obj["spec"]["replicas"] == 2
    assert ".spec.replicas" not in owned(obj, "alice")
    assert ".spec.replicas" in owned(obj, "bob")


def test_fields_an_updater_took_over_are_not_removed() -> None:
    live = applied(None, deployment(), "alice")
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    live = persisted(ssa.update_managed_fields(live, scaled, "hpa", now=T2))
    assert ".spec.replicas" not in owned(live, "alice")
    obj = ssa.apply(live, deployment(replicas=None), "alice", now=T3).object
    assert obj["spec"]["replicas"] == 5


def test_unowned_fields_go_with_a_struct_nobody_owns_any_more() -> None:
    live = applied(None, cluster(resources={"cpu": "1"}, replicas=1), "alice", schema=SCHEMA)
    live["spec"]["resources"]["memory"] = "1Gi"  # written behind the engine's back (e.g. defaulting)
    obj = ssa.apply(live, cluster(replicas=1), "alice", schema=SCHEMA, now=T2).object
    assert "resources" not in obj["spec"]
    # an unowned sibling of a still-owned field survives
    live = applied(None, cluster(resources={"cpu": "1"}, replicas=1), "alice", schema=SCHEMA)
    live["spec"]["resources"]["memory"] = "1Gi"
    obj = ssa.apply(live, cluster(resources={"cpu": "2"}, replicas=1), "alice", schema=SCHEMA, now=T2).object
    assert obj["spec"]["resources"] == {"cpu": "2", "memory": "1Gi"}


def test_removal_never_touches_fields_the_applier_never_owned() -> None:
    live = applied(None, deployment(), "alice")
    live["spec"]["paused"] = True  # unowned
    obj = ssa.apply(live, deployment(replicas=None), "alice", now=T2).object
    assert obj["spec"]["paused"] is True


# ------------------------------------------------------------------------------- list-type map, CRD


def test_list_map_items_from_two_managers_merge_and_own_separately() -> None:
    live = applied(None, cluster(workers=[{"name": "w1", "size": 1}]), "alice", schema=SCHEMA)
    obj = ssa.apply(live, cluster(workers=[{"name": "w2", "zone": "b", "size": 2}]), "bob", schema=SCHEMA,
                    now=T2).object
    assert obj["spec"]["workers"] == [{"name": "w1", "size": 1}, {"name": "w2", "zone": "b", "size": 2}]
    assert owned(obj, "alice") == {
        '.spec.workers[name="w1",zone="a"]', '.spec.workers[name="w1",zone="a"].name',
        '.spec.workers[name="w1",zone="a"].size',
    }
    assert '.spec.workers[name="w2",zone="b"].zone' in owned(obj, "bob")


def test_list_map_item_removed_when_its_applier_drops_it() -> None:
    live = applied(None, cluster(workers=[{"name": "w1"}, {"name": "w2"}]), "alice", schema=SCHEMA)
    live = applied(live, cluster(workers=[{"name": "w3"}]), "bob", schema=SCHEMA)
    obj = ssa.apply(live, cluster(workers=[{"name": "w2"}]), "alice", schema=SCHEMA, now=T3).object
    assert [w["name"] for w in obj["spec"]["workers"]] == ["w2", "w3"]


def test_list_map_conflict_on_an_items_field_and_composite_key_defaults() -> None:
    live = applied(None, cluster(workers=[{"name": "w1", "size": 1}]), "alice", schema=SCHEMA)
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(live, cluster(workers=[{"name": "w1", "zone": "a", "size": 3}]), "bob", schema=SCHEMA)
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "alice": .spec.workers[name="w1",zone="a"].size'
    )
    # same name in another zone is a different item: no conflict
    obj = ssa.apply(live, cluster(workers=[{"name": "w1", "zone": "b", "size": 3}]), "bob", schema=SCHEMA).object
    assert len(obj["spec"]["workers"]) == 2


def test_list_map_items_merge_granularly() -> None:
    live = applied(None, cluster(workers=[{"name": "w1", "size": 1, "labels": {"a": "1"}}]), "alice", schema=SCHEMA)
    obj = ssa.apply(live, cluster(workers=[{"name": "w1", "labels": {"b": "2"}}]), "bob", schema=SCHEMA).object
    assert obj["spec"]["workers"] == [{"name": "w1", "size": 1, "labels": {"a": "1", "b": "2"}}]
    assert '.spec.workers[name="w1",zone="a"].labels.b' in owned(obj, "bob")
    assert '.spec.workers[name="w1",zone="a"]' in owned(obj, "bob")  # the item itself is shared


def test_list_map_order_follows_the_applied_list() -> None:
    live = applied(None, cluster(workers=[{"name": "a"}, {"name": "b"}, {"name": "c"}]), "alice", schema=SCHEMA)
    live = applied(live, cluster(workers=[{"name": "x"}]), "bob", schema=SCHEMA)
    obj = ssa.apply(live, cluster(workers=[{"name": "c"}, {"name": "b"}, {"name": "a"}]), "alice", schema=SCHEMA,
                    now=T3).object
    # SMD's order: applied items in applied order; an item only live has keeps its place after the shared
    # item that preceded it in the live list ("x" followed "c").
    assert [w["name"] for w in obj["spec"]["workers"]] == ["c", "x", "b", "a"]


def test_duplicate_keys_in_an_apply_configuration_are_rejected() -> None:
    with pytest.raises(ssa.ApplyError) as info:
        ssa.apply(None, cluster(workers=[{"name": "w"}, {"name": "w", "zone": "a"}]), "m", schema=SCHEMA)
    assert info.value.code == 500
    assert info.value.message == (
        "Internal error occurred: failed to create typed patch object (ns/c1; example.com/v1, Kind=Cluster): "
        '.spec.workers: duplicate entries for key [name="w",zone="a"]'
    )


def test_list_map_item_without_any_key_is_rejected() -> None:
    schema = ssa.Schema.from_openapi({"type": "object", "properties": {"items": {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
        "items": {"type": "object"}}}})
    with pytest.raises(ssa.ApplyError, match=r'element 0: associative list with keys has an element that omits all '
                                             r'key fields \["id"\]'):
        ssa.apply(None, {"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}, "items": [{"a": 1}]}, "m",
                  schema=schema)


def test_duplicates_in_live_objects_are_tolerated() -> None:
    live = persisted(cluster(workers=[{"name": "w", "size": 1}, {"name": "w", "size": 2}]))
    cfg = cluster(workers=[{"name": "w", "size": 3}, {"name": "v"}])
    # the untracked object's fields go to before-first-apply, which owns the duplicated item whole
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(live, cfg, "m", schema=SCHEMA)
    assert [c.path for c in info.value.conflicts] == ['.spec.workers[name="w",zone="a"]']
    obj = ssa.apply(live, cfg, "m", schema=SCHEMA, force=True).object
    assert obj["spec"]["workers"] == [{"name": "w", "size": 3}, {"name": "v"}]


# ------------------------------------------------------------------------- list-type map, Deployment


def test_containers_from_two_managers_sidecar_injection() -> None:
    live = applied(None, deployment(), "kubectl")
    sidecar = deployment(replicas=None)
    sidecar["spec"] = {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy"}]}}}
    obj = ssa.apply(live, sidecar, "mesh", now=T2).object
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == ["nginx", "proxy"]
    # kubectl re-applies without knowing the sidecar: it stays
    obj = ssa.apply(persisted(obj), deployment(image="nginx:2"), "kubectl", now=T3).object
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("nginx", "nginx:2"), ("proxy", "envoy")]
    with pytest.raises(ssa.Conflict) as info:
        sidecar["spec"]["template"]["spec"]["containers"][0]["name"] = "nginx"
        ssa.apply(persisted(obj), sidecar, "mesh")
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl": .spec.template.spec.containers[name="nginx"].image'
    )


def test_env_volume_mounts_and_ports_merge_by_their_real_keys() -> None:
    base = deployment()
    c = base["spec"]["template"]["spec"]["containers"][0]
    c["env"] = [{"name": "A", "value": "1"}]
    c["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    live = applied(None, base, "alice")
    extra = deployment(replicas=None)
    extra["spec"] = {"template": {"spec": {"containers": [{
        "name": "nginx",
        "env": [{"name": "B", "value": "2"}],
        "volumeMounts": [{"name": "data", "mountPath": "/cache", "subPath": "c"}],
        "ports": [{"containerPort": 80, "protocol": "UDP"}, {"containerPort": 443}],
    }]}}}
    obj = ssa.apply(live, extra, "bob", now=T2).object
    c = obj["spec"]["template"]["spec"]["containers"][0]
    assert [e["name"] for e in c["env"]] == ["A", "B"]
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/data", "/cache"]  # same volume, two mount paths
    assert c["ports"] == [{"containerPort": 80}, {"containerPort": 80, "protocol": "UDP"}, {"containerPort": 443}]
    mine = owned(obj, "bob")
    prefix = '.spec.template.spec.containers[name="nginx"]'
    assert f'{prefix}.volumeMounts[mountPath="/cache"].subPath' in mine
    assert f'{prefix}.ports[containerPort=443,protocol="TCP"].containerPort' in mine
    assert f'{prefix}.env[name="B"].value' in mine


def test_explicit_tcp_port_is_the_same_item_as_an_omitted_protocol() -> None:
    live = applied(None, deployment(), "alice")
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "protocol": "TCP", "name": "h"}]
    obj = ssa.apply(live, cfg, "bob").object
    assert obj["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "h"}
    ]


def test_service_ports_key_on_port_and_protocol() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    wire = ssa.fields_to_json(ssa.field_set(svc))
    assert 'k:{"port":80,"protocol":"TCP"}' in wire["f:spec"]["f:ports"]
    assert wire["f:spec"]["f:selector"] == {}  # Service selector is an atomic map


def test_pod_template_metadata_and_owner_references() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-1", "controller": True}]},
        "spec": {"containers": [{"name": "c", "image": "i"}], "imagePullSecrets": [{"name": "reg"}]}}
    wire = ssa.fields_to_json(ssa.field_set(pod))
    assert list(wire["f:metadata"]["f:ownerReferences"]) == ['k:{"uid":"u-1"}']
    assert list(wire["f:spec"]["f:imagePullSecrets"]) == ['k:{"name":"reg"}']


# ------------------------------------------------------------------------------------------ set lists


def test_finalizers_are_a_set_shared_between_managers() -> None:
    cfg_a = cluster(replicas=1)
    cfg_a["metadata"]["finalizers"] = ["a.example.com/x"]
    live = applied(None, cfg_a, "alice", schema=SCHEMA)
    cfg_b = cluster()
    cfg_b["metadata"]["finalizers"] = ["b.example.com/y", "a.example.com/x"]
    live = applied(live, cfg_b, "bob", schema=SCHEMA)
    assert live["metadata"]["finalizers"] == ["b.example.com/y", "a.example.com/x"]
    wire = entries(live)[("bob", "Apply")]["fieldsV1"]
    assert wire["f:metadata"]["f:finalizers"] == {'v:"a.example.com/x"': {}, 'v:"b.example.com/y"': {}}
    # bob drops his; the shared one stays because alice still owns it
    obj = ssa.apply(live, cluster(), "bob", schema=SCHEMA, now=T3).object
    assert obj["metadata"]["finalizers"] == ["a.example.com/x"]


def test_set_items_from_the_crd_schema() -> None:
    live = applied(None, cluster(tags=["x", "y"]), "alice", schema=SCHEMA)
    obj = ssa.apply(live, cluster(tags=["z"]), "bob", schema=SCHEMA).object
    assert obj["spec"]["tags"] == ["x", "y", "z"]
    obj = ssa.apply(persisted(obj), cluster(tags=["y"]), "alice", schema=SCHEMA, now=T3).object
    assert obj["spec"]["tags"] == ["y", "z"]


def test_set_with_map_items_is_rejected() -> None:
    with pytest.raises(ssa.ApplyError, match="associative list without keys has an element that's a map type"):
        ssa.apply(None, cluster(tags=[{"a": 1}]), "m", schema=SCHEMA)


# ---------------------------------------------------------------------------------------- atomic lists


def test_atomic_lists_are_replaced_whole_and_owned_whole() -> None:
    live = applied(None, cluster(args=["a", "b"]), "alice", schema=SCHEMA)
    obj = ssa.apply(live, cluster(args=["c"]), "alice", schema=SCHEMA, now=T2).object
    assert obj["spec"]["args"] == ["c"]
    assert ".spec.args" in owned(obj, "alice")
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(persisted(obj), cluster(args=["c", "d"]), "bob", schema=SCHEMA)
    assert info.value.conflicts[0].path == ".spec.args"


def test_tolerations_are_atomic() -> None:
    live = applied(None, deployment(tolerations=[{"key": "a", "operator": "Exists"}]), "alice")
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(live, deployment(tolerations=[{"key": "b", "operator": "Exists"}]), "bob")
    assert info.value.conflicts[0].path == ".spec.tolerations"
    template_level = deployment()
    template_level["spec"]["template"]["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    wire = ssa.fields_to_json(ssa.field_set(template_level))
    assert wire["f:spec"]["f:template"]["f:spec"]["f:tolerations"] == {}


# -------------------------------------------------------------------------------- granular vs atomic maps


def test_granular_maps_merge_per_key() -> None:
    live = applied(None, cluster(options={"a": "1"}), "alice", schema=SCHEMA)
    obj = ssa.apply(live, cluster(options={"b": "2"}), "bob", schema=SCHEMA).object
    assert obj["spec"]["options"] == {"a": "1", "b": "2"}
    assert ".spec.options.b" in owned(obj, "bob") and ".spec.options.a" not in owned(obj, "bob")


def test_atomic_maps_are_replaced_whole() -> None:
    live = applied(None, cluster(selector={"a": "1"}), "alice", schema=SCHEMA)
    obj = ssa.apply(live, cluster(selector={"b": "2"}), "alice", schema=SCHEMA, now=T2).object
    assert obj["spec"]["selector"] == {"b": "2"}
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(persisted(obj), cluster(selector={"c": "3"}), "bob", schema=SCHEMA)
    assert info.value.conflicts[0].path == ".spec.selector"


def test_node_selector_is_atomic_and_labels_granular() -> None:
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    live = applied(None, cfg, "alice")
    cfg2 = deployment(replicas=None)
    cfg2["spec"] = {"template": {"metadata": {"labels": {"team": "x"}}, "spec": {"nodeSelector": {"zone": "a"}}}}
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(live, cfg2, "bob")
    assert [c.path for c in info.value.conflicts] == [".spec.template.spec.nodeSelector"]
    obj = ssa.apply(live, cfg2, "bob", force=True).object
    assert obj["spec"]["template"]["spec"]["nodeSelector"] == {"zone": "a"}
    assert obj["spec"]["template"]["metadata"]["labels"] == {"app": "web", "team": "x"}


# --------------------------------------------------------------------------------- Update operations


def test_create_by_update_records_what_the_server_records() -> None:
    obj = ssa.update_managed_fields(None, deployment(), "kubectl-create", now=T1)
    [entry] = obj["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"], entry["time"]) == (
        "kubectl-create", "Update", "apps/v1", T1)
    fields = entry["fieldsV1"]
    assert "." not in fields["f:spec"] and "." not in fields["f:spec"]["f:template"]  # typed structs pre-exist
    assert fields["f:spec"]["f:template"]["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}  # maps are added
    assert fields["f:spec"]["f:selector"] == {}


def test_create_of_a_custom_resource_owns_spec_as_a_node() -> None:
    obj = ssa.update_managed_fields(None, cluster(replicas=1), "kr8s", schema=SCHEMA, now=T1)
    assert obj["metadata"]["managedFields"][0]["fieldsV1"] == {"f:spec": {".": {}, "f:replicas": {}}}


def test_update_takes_changed_fields_from_other_managers() -> None:
    live = applied(None, deployment(), "alice")
    edited = copy.deepcopy(live)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:9"
    edited["spec"]["paused"] = True
    obj = ssa.update_managed_fields(live, edited, "kubectl-edit", now=T2)
    assert owned(obj, "kubectl-edit", "Update") == {
        '.spec.template.spec.containers[name="nginx"].image', ".spec.paused"}
    assert '.spec.template.spec.containers[name="nginx"].image' not in owned(obj, "alice")
    assert ".spec.replicas" in owned(obj, "alice")
    order = [(e["manager"], e["operation"]) for e in obj["metadata"]["managedFields"]]
    assert order == [("alice", "Apply"), ("kubectl-edit", "Update")]  # Apply entries sort first


def test_update_removing_a_field_removes_it_from_every_set() -> None:
    live = applied(None, deployment(), "alice")
    edited = copy.deepcopy(live)
    del edited["spec"]["replicas"]
    obj = ssa.update_managed_fields(live, edited, "kubectl-edit", now=T2)
    assert ".spec.replicas" not in owned(obj, "alice")
    assert ("kubectl-edit", "Update") not in entries(obj)  # it changed nothing it could own


def test_update_accumulates_and_only_restamps_on_change() -> None:
    live = persisted(ssa.update_managed_fields(None, cluster(replicas=1), "ctl", schema=SCHEMA, now=T1))
    nochange = ssa.update_managed_fields(live, copy.deepcopy(live), "ctl", schema=SCHEMA, now=T2)
    assert nochange["metadata"]["managedFields"] == live["metadata"]["managedFields"]
    more = copy.deepcopy(live)
    more["spec"]["args"] = ["x"]
    obj = ssa.update_managed_fields(live, more, "ctl", schema=SCHEMA, now=T3)
    [entry] = obj["metadata"]["managedFields"]
    assert entry["time"] == T3
    assert owned(obj, "ctl", "Update") == {".spec", ".spec.replicas", ".spec.args"}


def test_update_of_an_untracked_object_is_not_tracked() -> None:
    live = persisted(cluster(replicas=1))
    new = copy.deepcopy(live)
    new["spec"]["replicas"] = 2
    assert "managedFields" not in ssa.update_managed_fields(live, new, "ctl", schema=SCHEMA, now=T2)["metadata"]


def test_client_can_reset_or_replace_managed_fields() -> None:
    live = persisted(ssa.update_managed_fields(None, cluster(replicas=1), "ctl", schema=SCHEMA, now=T1))
    reset = copy.deepcopy(live)
    reset["metadata"]["managedFields"] = []
    assert "managedFields" not in ssa.update_managed_fields(live, reset, "x", schema=SCHEMA)["metadata"]
    reset["metadata"]["managedFields"] = [{}]
    assert "managedFields" not in ssa.update_managed_fields(live, reset, "x", schema=SCHEMA)["metadata"]
    replaced = copy.deepcopy(live)
    replaced["metadata"]["managedFields"][0]["manager"] = "renamed"
    obj = ssa.update_managed_fields(live, replaced, "x", schema=SCHEMA, now=T2)
    assert [e["manager"] for e in obj["metadata"]["managedFields"]] == ["renamed"]
    garbage = copy.deepcopy(live)
    garbage["metadata"]["managedFields"] = [{"manager": "m", "operation": "Bogus"}]
    obj = ssa.update_managed_fields(live, garbage, "x", schema=SCHEMA, now=T2)
    assert obj["metadata"]["managedFields"] == live["metadata"]["managedFields"]  # falls back to live


def test_update_on_status_subresource_is_a_separate_manager() -> None:
    live = persisted(ssa.update_managed_fields(None, cluster(replicas=1), "ctl", schema=SCHEMA, now=T1))
    new = copy.deepcopy(live)
    new["status"] = {"phase": "Running"}
    obj = ssa.update_managed_fields(live, new, "ctl", schema=SCHEMA, subresource="status", now=T2)
    status_entry = [e for e in obj["metadata"]["managedFields"] if e.get("subresource") == "status"]
    assert status_entry and status_entry[0]["fieldsV1"] == {"f:status": {".": {}, "f:phase": {}}}
    assert list(status_entry[0])[-1] == "subresource"
    # on the main resource status changes are not owned when there is a status subresource
    obj = ssa.update_managed_fields(live, new, "ctl", schema=SCHEMA, now=T2)
    assert owned(obj, "ctl", "Update") == {".spec", ".spec.replicas"}


def test_update_managers_are_capped_into_ancient_changes() -> None:
    live = persisted(ssa.update_managed_fields(None, cluster(replicas=0), "m00", schema=SCHEMA, now=T1))
    for i in range(1, 12):
        new = copy.deepcopy(live)
        new["spec"][f"f{i}"] = i  # unknown fields are still tracked
        stamp = dt.datetime(2024, 2, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i)
        live = persisted(ssa.update_managed_fields(live, new, f"m{i:02}", schema=SCHEMA, now=stamp))
    managers = [e["manager"] for e in live["metadata"]["managedFields"]]
    assert len(managers) == 10
    assert "ancient-changes" in managers and "m00" not in managers and "m01" not in managers and "m02" not in managers
    ancient = entries(live)[("ancient-changes", "Update")]
    assert {ssa.path_string(p) for p in ssa.fields_from_json(ancient["fieldsV1"])} == {
        ".spec", ".spec.replicas", ".spec.f1", ".spec.f2"}


def test_default_field_manager_from_user_agent() -> None:
    assert ssa.default_field_manager("kubectl/v1.30.1 (linux/amd64) kubernetes/7c48c2b") == "kubectl"
    assert ssa.default_field_manager("kr8s/0.17.0") == "kr8s"
    assert ssa.default_field_manager("OpenAPI-Generator/30.1.0/python") == "OpenAPI-Generator"
    assert ssa.default_field_manager("python-httpx/0.27.0") == "python-httpx"
    assert ssa.default_field_manager("ctl\x00\tx") == "ctlx"
    assert ssa.default_field_manager("é" * 100) == "é" * 64  # 128 bytes
    assert ssa.default_field_manager(None) == ""
    obj = ssa.update_managed_fields(None, cluster(replicas=1), ssa.default_field_manager(""), schema=SCHEMA, now=T1)
    assert obj["metadata"]["managedFields"][0]["manager"] == "unknown"


# ------------------------------------------------------------------------------ apply on special cases


def test_apply_to_an_untracked_object_conflicts_with_before_first_apply() -> None:
    live = persisted(deployment())
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(live, deployment(replicas=3), "kubectl", now=T2)
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas'
    )
    obj = ssa.apply(live, deployment(replicas=2), "kubectl", now=T2).object
    assert {e["manager"] for e in obj["metadata"]["managedFields"]} == {"before-first-apply", "kubectl"}


def test_status_is_ignored_on_the_main_resource() -> None:
    cfg = cluster(replicas=1)
    cfg["status"] = {"phase": "Bogus"}
    live = applied(None, cluster(replicas=1), "alice", schema=SCHEMA)
    live["status"] = {"phase": "Running"}
    obj = ssa.apply(live, cfg, "alice", schema=SCHEMA).object
    assert obj["status"] == {"phase": "Running"}
    assert not any(p.startswith(".status") for p in owned(obj, "alice"))
    # without a status subresource, status is an ordinary field
    obj = ssa.apply(live, cfg, "alice", schema=SCHEMA, status_subresource=False, force=True).object
    assert obj["status"] == {"phase": "Bogus"}


def test_apply_on_status_subresource_applies_only_status() -> None:
    live = applied(None, cluster(replicas=1), "alice", schema=SCHEMA)
    cfg = cluster(replicas=99)
    cfg["status"] = {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}
    obj = persisted(ssa.apply(live, cfg, "ctrl", schema=SCHEMA, subresource="status", now=T2).object)
    assert obj["spec"] == {"replicas": 1}
    assert obj["status"]["phase"] == "Ready"
    entry = next(e for e in obj["metadata"]["managedFields"] if e["manager"] == "ctrl")
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {
        "f:conditions": {'k:{"type":"Ready"}': {".": {}, "f:status": {}, "f:type": {}}}, "f:phase": {}}}
    other = cluster()
    other["status"] = {"phase": "Failed"}
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(obj, other, "ctrl2", schema=SCHEMA, subresource="status")
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "ctrl" with subresource "status": .status.phase'
    )


def test_noop_apply_keeps_time_and_reports_unchanged() -> None:
    live = applied(None, deployment(), "alice")
    result = ssa.apply(live, deployment(), "alice", now=T4)
    assert not result.changed and not result.created
    assert result.object == live
    assert entries(result.object)[("alice", "Apply")]["time"] == T1


def test_applied_object_is_independent_of_inputs() -> None:
    cfg = deployment()
    live = applied(None, cfg, "alice")
    snapshot = copy.deepcopy((cfg, live))
    obj = ssa.apply(live, cfg, "alice", now=T2).object
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = "mutated"
    assert (cfg, live) == snapshot


def test_managed_fields_sort_by_operation_then_time() -> None:
    live = applied(None, cluster(replicas=1), "zeta", schema=SCHEMA, now=T1)
    live = applied(live, cluster(args=["a"]), "alpha", schema=SCHEMA, now=T2)
    new = copy.deepcopy(live)
    new["spec"]["tags"] = ["t"]
    live = persisted(ssa.update_managed_fields(live, new, "aaa", schema=SCHEMA, now=T3))
    assert [(e["manager"], e["operation"]) for e in live["metadata"]["managedFields"]] == [
        ("zeta", "Apply"), ("alpha", "Apply"), ("aaa", "Update")]


# ------------------------------------------------------------------------------------ request checks


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.pop("kind"), "invalid object type: apps/v1, Kind="),
        (lambda c: c.update(apiVersion="apps/v2"), "invalid object type: apps/v2, Kind=Deployment"),
        (lambda c: c.update(kind="StatefulSet"), "invalid object type: apps/v1, Kind=StatefulSet"),
        (lambda c: c["metadata"].update(managedFields=[]), "metadata.managedFields must be nil"),
        (lambda c: c["metadata"].pop("name"), "metadata.name is required in an apply configuration"),
        (lambda c: c["metadata"].update(name="other"),
         "the name of the object (other) does not match the name on the URL (web)"),
    ],
)
def test_bad_apply_bodies_are_400(mutate: Any, message: str) -> None:
    live = applied(None, deployment(), "alice")
    cfg = deployment()
    mutate(cfg)
    with pytest.raises(ssa.ApplyError) as info:
        ssa.apply(live, cfg, "alice")
    assert (info.value.code, info.value.reason, info.value.message) == (400, "BadRequest", message)


def test_expected_type_is_checked_on_create() -> None:
    with pytest.raises(ssa.ApplyError, match=r"invalid object type: /v1, Kind=Pod"):
        ssa.apply(None, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}, "m",
                  expected_type=("apps/v1", "Deployment"))


def test_apply_requires_a_field_manager() -> None:
    with pytest.raises(ssa.ApplyError) as info:
        ssa.apply(None, deployment(), "")
    assert info.value.code == 422
    assert info.value.message == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
    assert info.value.status()["details"]["causes"][0]["field"] == "fieldManager"
    with pytest.raises(ssa.ApplyError, match="Too long: may not be more than 128 bytes"):
        ssa.validate_field_manager("x" * 129, apply=False)
    with pytest.raises(ssa.ApplyError, match=r"invalid character U\+0007 \(at position 1\)"):
        ssa.validate_field_manager("a\ab", apply=False)
    ssa.validate_field_manager("", apply=False)


def test_undecodable_live_managed_fields_are_an_internal_error() -> None:
    live = applied(None, deployment(), "alice")
    live["metadata"]["managedFields"][0]["fieldsType"] = "FieldsV2"
    with pytest.raises(ssa.ApplyError) as info:
        ssa.apply(live, deployment(), "alice")
    assert info.value.code == 500
    assert "invalid fieldsType 'FieldsV2' in managed fields entry 0" in info.value.message


def test_parse_apply_body() -> None:
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  when: 2024-01-01\n  on: yes\n"
    assert ssa.parse_apply_body(body) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"when": "2024-01-01", "true": True},  # YAML 1.1, as Go's YAML reader sees it
    }
    assert ssa.parse_apply_body('{"kind":\t"ConfigMap"}') == {"kind": "ConfigMap"}
    assert ssa.parse_apply_body("") == {}
    for bad in ("a: [", "- 1\n- 2", b"\xff"):
        with pytest.raises(ssa.ApplyError) as info:
            ssa.parse_apply_body(bad)
        assert info.value.code == 400 and info.value.message.startswith("error decoding YAML: ")


# ------------------------------------------------------------------------------------------- schemas


def test_crd_schema_translation() -> None:
    assert SCHEMA.fields["metadata"] is ssa.OBJECT_META
    spec = SCHEMA.fields["spec"]
    workers = spec.fields["workers"]
    assert (workers.kind, workers.list_type, workers.keys) == ("list", "map", ("name", "zone"))
    assert workers.elements is not None and workers.elements.fields["zone"].default == "a"
    assert spec.fields["args"].list_type == "atomic"  # no list type: atomic, as for CRDs
    assert spec.fields["tags"].list_type == "set"
    assert spec.fields["selector"].map_type == "atomic"
    assert spec.fields["extra"].elements is ssa.ANY
    embedded = ssa.Schema.from_openapi({"type": "object", "x-kubernetes-embedded-resource": True})
    assert embedded.fields["metadata"] is ssa.OBJECT_META
    legacy = ssa.Schema.from_openapi({"type": "array", "x-kubernetes-patch-strategy": "merge",
                                      "x-kubernetes-patch-merge-key": "name", "items": {"type": "object"}})
    assert (legacy.list_type, legacy.keys) == ("map", ("name",))
    assert ssa.Schema.from_openapi({"x-kubernetes-int-or-string": True}).kind == "scalar"
    with pytest.raises(ValueError):
        ssa.Schema.from_openapi({"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}})


def test_schemaless_crd_is_untyped_below_the_root() -> None:
    schema = ssa.schema_for_crd({"spec": {"versions": [{"name": "v1"}]}}, "v1")
    obj = ssa.update_managed_fields(None, cluster(a={"b": 1}), "m", schema=schema, now=T1)
    assert obj["metadata"]["managedFields"][0]["fieldsV1"] == {"f:spec": {".": {}, "f:a": {".": {}, "f:b": {}}}}


def test_unknown_builtin_paths_default_to_granular_maps_and_atomic_lists() -> None:
    obj = {"apiVersion": "example.io/v9", "kind": "Thing", "metadata": {"name": "t", "labels": {"a": "b"}},
           "spec": {"nested": {"x": 1}, "list": [{"a": 1}]}}
    wire = ssa.fields_to_json(ssa.field_set(obj))
    assert wire["f:spec"] == {"f:list": {}, "f:nested": {"f:x": {}}}
    assert wire["f:metadata"]["f:labels"] == {"f:a": {}}
    live = applied(None, obj, "alice")
    other = {**obj, "spec": {"nested": {"y": 2}}}
    merged = ssa.apply(live, other, "bob").object
    assert merged["spec"]["nested"] == {"x": 1, "y": 2}


def test_conditions_are_keyed_by_type_in_builtin_status() -> None:
    dep = deployment()
    dep["status"] = {"conditions": [{"type": "Available", "status": "True"}]}
    wire = ssa.fields_to_json(ssa.field_set(dep))
    assert list(wire["f:status"]["f:conditions"]) == ['k:{"type":"Available"}']


def test_manager_rendering_in_messages() -> None:
    item = ssa.ConflictItem(".status.phase", 'we "quote"', "Update", "v1", "status")
    assert item.describe() == '"we \\"quote\\"" with subresource "status" using v1'
    assert ssa.ConflictItem(".x", "m", "Apply", "v1").describe() == '"m"'


def test_real_server_fieldsv1_survives_a_round_trip() -> None:
    # as kube-apiserver renders a `kubectl create deployment` (key order included)
    wire = {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:progressDeadlineSeconds": {},
            "f:replicas": {},
            "f:selector": {},
            "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
            "f:template": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:containers": {'k:{"name":"nginx"}': {
                        ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {},
                        "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {},
                    }},
                    "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {},
                    "f:terminationGracePeriodSeconds": {},
                },
            },
        },
    }
    encoded = ssa.fields_to_json(ssa.fields_from_json(wire))
    assert encoded == wire
    assert repr(encoded) == repr(wire)  # same key order too


def test_shared_ownership_alone_changes_the_object_to_persist() -> None:
    live = applied(None, deployment(), "alice")
    result = ssa.apply(live, deployment(), "bob", now=T2)
    assert not result.changed
    assert result.object != live  # only managedFields differ: still worth a write


def go_json(obj: Any) -> str:
    """How Go's JSON encoder writes an unstructured object (ASCII input): compact, sorted keys, newline."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n"


def csa_created(config: dict[str, Any]) -> dict[str, Any]:
    """An object as `kubectl apply` (client-side) leaves it: last-applied annotation, kubectl-client-side-apply."""
    obj = copy.deepcopy(config)
    obj["metadata"].setdefault("annotations", {})[ssa.LAST_APPLIED] = go_json(config)
    return persisted(ssa.update_managed_fields(None, obj, "kubectl-client-side-apply", now=T1))


def test_kubectl_takes_over_fields_from_client_side_apply() -> None:
    live = csa_created(deployment())
    result = ssa.apply(live, deployment(replicas=3), "kubectl", now=T2)
    obj = result.object
    assert obj["spec"]["replicas"] == 3
    assert ".spec.replicas" in owned(obj, "kubectl")
    assert ".spec.replicas" not in owned(obj, "kubectl-client-side-apply", "Update")
    # the annotation follows what kubectl applied, so a later client-side apply diffs correctly
    assert obj["metadata"]["annotations"][ssa.LAST_APPLIED] == go_json(deployment(replicas=3))
    # any other manager still conflicts
    with pytest.raises(ssa.Conflict, match='conflict with "kubectl-client-side-apply" using apps/v1'):
        ssa.apply(live, deployment(replicas=3), "helm")


def test_kubectl_still_conflicts_where_live_drifted_from_last_applied() -> None:
    live = csa_created(deployment())
    drifted = copy.deepcopy(live)
    drifted["spec"]["replicas"] = 5
    drifted["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:5"
    live = persisted(ssa.update_managed_fields(live, drifted, "kubectl-client-side-apply", now=T2))
    with pytest.raises(ssa.Conflict) as info:
        ssa.apply(live, deployment(replicas=3, image="nginx:1"), "kubectl", now=T3)
    assert [c.path for c in info.value.conflicts] == [
        ".spec.replicas", '.spec.template.spec.containers[name="nginx"].image']


def test_dropping_a_shared_container_keeps_the_other_appliers_fields() -> None:
    live = applied(None, deployment(), "alice")
    mine = deployment(replicas=None)
    mine["spec"] = {"template": {"spec": {"containers": [
        {"name": "nginx", "image": "nginx:1", "env": [{"name": "X", "value": "1"}]}]}}}
    live = applied(live, mine, "bob")
    moved = deployment()
    moved["spec"]["template"]["spec"]["containers"] = [{"name": "other", "image": "o"}]
    obj = ssa.apply(live, moved, "alice", now=T3).object
    assert obj["spec"]["template"]["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx:1", "env": [{"name": "X", "value": "1"}]},  # alice's ports are gone
        {"name": "other", "image": "o"},
    ]


def test_an_updater_owning_a_field_inside_an_item_does_not_keep_the_item() -> None:
    """SMD keeps an item only if someone owns the item itself; an updater owning `.image` does not."""
    live = applied(None, deployment(), "alice")
    edited = copy.deepcopy(live)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:edited"
    live = persisted(ssa.update_managed_fields(live, edited, "kubectl-edit", now=T2))
    moved = deployment()
    moved["spec"]["template"]["spec"]["containers"] = [{"name": "other", "image": "o"}]
    obj = ssa.apply(live, moved, "alice", now=T3).object
    assert obj["spec"]["template"]["spec"]["containers"] == [{"name": "other", "image": "o"}]
    assert ("kubectl-edit", "Update") not in entries(obj)
