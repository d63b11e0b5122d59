"""Structural schema pruning, defaulting and validation as the real API server does it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from localkube.apiserver.schema import (
    Cause,
    apply_structural_schema,
    format_invalid_message,
    go_float,
    validate_crd_schema,
)


def _root(spec_schema: dict, **extra: Any) -> dict:
    return {"type": "object", "properties": {"spec": spec_schema, **extra}}


def _cr(spec: Any, **extra: Any) -> dict:
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": "x"},
        "spec": spec,
        **extra,
    }


# --------------------------------------------------------------------------- defaulting

DEFAULT_CASES = [
    pytest.param(
        {"type": "object", "properties": {"replicas": {"type": "integer", "default": 1}}},
        {},
        {"replicas": 1},
        id="absent-scalar",
    ),
    pytest.param(
        {"type": "object", "properties": {"replicas": {"type": "integer", "default": 1}}},
        {"replicas": 5},
        {"replicas": 5},
        id="present-scalar-kept",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "worker": {
                    "type": "object",
                    "default": {},
                    "properties": {"replicas": {"type": "integer", "default": 2}},
                }
            },
        },
        {},
        {"worker": {"replicas": 2}},
        id="absent-object-created-then-nested-default",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {"worker": {"type": "object", "properties": {"replicas": {"type": "integer", "default": 2}}}},
        },
        {},
        {},
        id="absent-parent-without-default-not-created",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {"worker": {"type": "object", "properties": {"replicas": {"type": "integer", "default": 2}}}},
        },
        {"worker": {}},
        {"worker": {"replicas": 2}},
        id="nested-existing-object",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "ports": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}},
                    },
                }
            },
        },
        {"ports": [{"port": 1}, {"port": 2, "protocol": "UDP"}]},
        {"ports": [{"port": 1, "protocol": "TCP"}, {"port": 2, "protocol": "UDP"}]},
        id="array-items",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "groups": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"size": {"type": "integer", "default": 3}},
                    },
                }
            },
        },
        {"groups": {"a": {}, "b": {"size": 1}}},
        {"groups": {"a": {"size": 3}, "b": {"size": 1}}},
        id="map-values",
    ),
    pytest.param(
        {"type": "object", "properties": {"mode": {"type": "string", "default": "auto"}}},
        {"mode": None},
        {"mode": "auto"},
        id="non-nullable-null-gets-default",
    ),
    pytest.param(
        {"type": "object", "properties": {"mode": {"type": "string", "nullable": True, "default": "auto"}}},
        {"mode": None},
        {"mode": None},
        id="nullable-null-kept",
    ),
    pytest.param(
        {"type": "object", "properties": {"mode": {"type": "string"}}},
        {"mode": None},
        {},
        id="non-nullable-null-without-default-dropped",
    ),
    pytest.param(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"known": {"type": "integer", "default": 7}},
        },
        {"other": 1},
        {"other": 1, "known": 7},
        id="default-under-preserve-unknown",
    ),
]


@pytest.mark.parametrize(("spec_schema", "spec", "expected"), DEFAULT_CASES)
def test_defaults(spec_schema: dict, spec: dict, expected: dict) -> None:
    result = apply_structural_schema(_cr(spec), _root(spec_schema))
    assert result.causes == []
    assert result.obj["spec"] == expected


def test_default_is_copied_not_shared() -> None:
    schema = _root(
        {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "default": ["a"]}}}
    )
    first = apply_structural_schema(_cr({}), schema)
    first.obj["spec"]["tags"].append("b")
    second = apply_structural_schema(_cr({}), schema)
    assert second.obj["spec"]["tags"] == ["a"]


# --------------------------------------------------------------------------- pruning

PRUNE_CASES = [
    pytest.param(
        {"type": "object", "properties": {"a": {"type": "string"}}},
        {"a": "x", "foo": 1},
        {"a": "x"},
        ["spec.foo"],
        id="unknown-scalar",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
            },
        },
        {"items": [{"name": "a", "bar": 1}, {"name": "b"}]},
        {"items": [{"name": "a"}, {"name": "b"}]},
        ["spec.items[0].bar"],
        id="inside-array-item",
    ),
    pytest.param(
        {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        {"anything": {"deep": [1, {"x": 2}]}},
        {"anything": {"deep": [1, {"x": 2}]}},
        [],
        id="preserve-keeps-everything",
    ),
    pytest.param(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"strict": {"type": "object", "properties": {"a": {"type": "integer"}}}},
        },
        {"loose": {"z": 1}, "strict": {"a": 1, "b": 2}},
        {"loose": {"z": 1}, "strict": {"a": 1}},
        ["spec.strict.b"],
        id="declared-property-below-preserve-still-pruned",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "other": {"type": "string"},
            },
        },
        {"template": {"spec": {"containers": [{"name": "c", "extra": 1}]}}, "junk": True},
        {"template": {"spec": {"containers": [{"name": "c", "extra": 1}]}}},
        ["spec.junk"],
        id="nested-preserve-under-declared-property",
    ),
    pytest.param(
        {"type": "object", "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
        {"labels": {"a": "1", "b": "2"}},
        {"labels": {"a": "1", "b": "2"}},
        [],
        id="map-keys-kept",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "pod": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}},
                }
            },
        },
        {"pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": "x", "b": 1}}},
        {"pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": "x"}}},
        ["spec.pod.spec.b"],
        id="embedded-resource-keeps-type-meta",
    ),
]


@pytest.mark.parametrize(("spec_schema", "spec", "expected", "pruned"), PRUNE_CASES)
def test_pruning(spec_schema: dict, spec: dict, expected: dict, pruned: list[str]) -> None:
    result = apply_structural_schema(_cr(spec), _root(spec_schema))
    assert result.obj["spec"] == expected
    assert result.pruned == pruned


def test_root_type_meta_and_metadata_untouched() -> None:
    obj = _cr({"a": 1}, status={"phase": "Running"})
    obj["metadata"] = {"name": "x", "labels": {"a": "b"}, "whatever": {"kept": True}}
    schema = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 1}}},
            "spec": {"type": "object", "properties": {"a": {"type": "integer"}}},
        },
    }
    result = apply_structural_schema(obj, schema)
    assert result.obj["apiVersion"] == obj["apiVersion"]
    assert result.obj["kind"] == "DaskCluster"
    assert result.obj["metadata"] == obj["metadata"]
    assert "status" not in result.obj
    assert result.pruned == ["status"]
    assert result.causes == []


def test_input_never_mutated() -> None:
    obj = _cr({"foo": 1, "worker": {}})
    schema = _root(
        {
            "type": "object",
            "properties": {
                "worker": {"type": "object", "properties": {"replicas": {"type": "integer", "default": 2}}},
                "n": {"type": "integer", "minimum": 1, "default": 0},
            },
        }
    )
    before, schema_before = copy.deepcopy(obj), copy.deepcopy(schema)
    result = apply_structural_schema(obj, schema)
    assert obj == before
    assert schema == schema_before
    assert result.obj["spec"] == {"worker": {"replicas": 2}, "n": 0}
    assert [c.field for c in result.causes] == ["spec.n"]


# --------------------------------------------------------------------------- validation

VALIDATION_CASES = [
    pytest.param(
        {"type": "object", "required": ["cluster"], "properties": {"cluster": {"type": "string"}}},
        {},
        ("FieldValueRequired", "Required value", "spec.cluster"),
        id="required",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {"worker": {"type": "object", "properties": {"replicas": {"type": "integer"}}}},
        },
        {"worker": {"replicas": "abc"}},
        (
            "FieldValueTypeInvalid",
            'Invalid value: "string": spec.worker.replicas in body must be of type integer: "string"',
            "spec.worker.replicas",
        ),
        id="type-integer-given-string",
    ),
    pytest.param(
        {"type": "object", "properties": {"flag": {"type": "boolean"}}},
        {"flag": 1},
        (
            "FieldValueTypeInvalid",
            'Invalid value: "integer": spec.flag in body must be of type boolean: "integer"',
            "spec.flag",
        ),
        id="type-boolean-given-integer",
    ),
    pytest.param(
        {"type": "object", "properties": {"n": {"type": "integer"}}},
        {"n": True},
        (
            "FieldValueTypeInvalid",
            'Invalid value: "boolean": spec.n in body must be of type integer: "boolean"',
            "spec.n",
        ),
        id="type-integer-rejects-bool",
    ),
    pytest.param(
        {"type": "object", "properties": {"n": {"type": "integer"}}},
        {"n": 2.5},
        (
            "FieldValueTypeInvalid",
            'Invalid value: "number": spec.n in body must be of type integer: "number"',
            "spec.n",
        ),
        id="type-integer-rejects-fraction",
    ),
    pytest.param(
        {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}}},
        {"items": ["a", None]},
        (
            "FieldValueTypeInvalid",
            'Invalid value: "null": spec.items[1] in body must be of type string: "null"',
            "spec.items[1]",
        ),
        id="null-array-item",
    ),
    pytest.param(
        {"type": "object", "properties": {"mode": {"type": "string", "enum": ["a", "b"]}}},
        {"mode": "c"},
        ("FieldValueNotSupported", 'Unsupported value: "c": supported values: "a", "b"', "spec.mode"),
        id="enum-string",
    ),
    pytest.param(
        {"type": "object", "properties": {"n": {"type": "integer", "enum": [1, 2]}}},
        {"n": 3},
        ("FieldValueNotSupported", 'Unsupported value: 3: supported values: "1", "2"', "spec.n"),
        id="enum-integer",
    ),
    pytest.param(
        {"type": "object", "properties": {"replicas": {"type": "integer", "minimum": 0}}},
        {"replicas": -1},
        (
            "FieldValueInvalid",
            "Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
            "spec.replicas",
        ),
        id="minimum",
    ),
    pytest.param(
        {"type": "object", "properties": {"r": {"type": "integer", "minimum": 0, "exclusiveMinimum": True}}},
        {"r": 0},
        ("FieldValueInvalid", "Invalid value: 0: spec.r in body should be greater than 0", "spec.r"),
        id="exclusive-minimum",
    ),
    pytest.param(
        {"type": "object", "properties": {"r": {"type": "number", "maximum": 1.5}}},
        {"r": 2},
        ("FieldValueInvalid", "Invalid value: 2: spec.r in body should be less than or equal to 1.5", "spec.r"),
        id="maximum-number-accepts-int",
    ),
    pytest.param(
        {"type": "object", "properties": {"r": {"type": "integer", "maximum": 10, "exclusiveMaximum": True}}},
        {"r": 10},
        ("FieldValueInvalid", "Invalid value: 10: spec.r in body should be less than 10", "spec.r"),
        id="exclusive-maximum",
    ),
    pytest.param(
        {"type": "object", "properties": {"r": {"type": "integer", "multipleOf": 5}}},
        {"r": 7},
        ("FieldValueInvalid", "Invalid value: 7: spec.r in body should be a multiple of 5", "spec.r"),
        id="multiple-of",
    ),
    pytest.param(
        {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}},
        {"name": "abcdef"},
        ("FieldValueTooLong", "Too long: may not be more than 5 bytes", "spec.name"),
        id="max-length",
    ),
    pytest.param(
        {"type": "object", "properties": {"name": {"type": "string", "minLength": 3}}},
        {"name": "ab"},
        ("FieldValueInvalid", 'Invalid value: "ab": spec.name in body should be at least 3 chars long', "spec.name"),
        id="min-length",
    ),
    pytest.param(
        {"type": "object", "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}}},
        {"name": "ABC"},
        ("FieldValueInvalid", "Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'", "spec.name"),
        id="pattern",
    ),
    pytest.param(
        {"type": "object", "properties": {"l": {"type": "array", "minItems": 2, "items": {"type": "string"}}}},
        {"l": ["a"]},
        ("FieldValueInvalid", "Invalid value: 1: spec.l in body should have at least 2 items", "spec.l"),
        id="min-items",
    ),
    pytest.param(
        {"type": "object", "properties": {"l": {"type": "array", "maxItems": 2, "items": {"type": "string"}}}},
        {"l": ["a", "b", "c"]},
        ("FieldValueTooMany", "Too many: 3: must have at most 2 items", "spec.l"),
        id="max-items",
    ),
    pytest.param(
        {"type": "object", "properties": {"l": {"type": "array", "uniqueItems": True, "items": {"type": "integer"}}}},
        {"l": [1, 2, 1]},
        ("FieldValueInvalid", 'Invalid value: "": spec.l in body shouldn\'t contain duplicates', "spec.l"),
        id="unique-items",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {"m": {"type": "object", "minProperties": 2, "additionalProperties": {"type": "string"}}},
        },
        {"m": {"a": "1"}},
        ("FieldValueInvalid", "Invalid value: 1: spec.m in body should have at least 2 properties", "spec.m"),
        id="min-properties",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {"m": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}}},
        },
        {"m": {"a": "1", "b": "2"}},
        ("FieldValueTooMany", "Too many: 2: must have at most 1 items", "spec.m"),
        id="max-properties",
    ),
    pytest.param(
        {"type": "object", "properties": {"m": {"type": "object", "additionalProperties": {"type": "integer"}}}},
        {"m": {"a": "x"}},
        (
            "FieldValueTypeInvalid",
            'Invalid value: "string": spec.m.a in body must be of type integer: "string"',
            "spec.m.a",
        ),
        id="map-value-type",
    ),
    pytest.param(
        {"type": "object", "properties": {"t": {"type": "string", "format": "date-time"}}},
        {"t": "yesterday"},
        (
            "FieldValueTypeInvalid",
            'Invalid value: "yesterday": spec.t in body must be of type date-time: "yesterday"',
            "spec.t",
        ),
        id="format-date-time",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "containers": {
                    "type": "array",
                    "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
                }
            },
        },
        {"containers": [{"name": "a"}, {}]},
        ("FieldValueRequired", "Required value", "spec.containers[1].name"),
        id="required-in-array-item",
    ),
    pytest.param(
        {"type": "object", "properties": {"p": {"x-kubernetes-int-or-string": True}}},
        {"p": True},
        (
            "FieldValueTypeInvalid",
            'Invalid value: "boolean": spec.p in body must be of type integer,string: "boolean"',
            "spec.p",
        ),
        id="int-or-string-rejects-bool",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "p": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                }
            },
        },
        {"p": {"apiVersion": "v1", "spec": {}}},
        ("FieldValueRequired", "Required value: must not be empty", "spec.p.kind"),
        id="embedded-resource-needs-kind",
    ),
    pytest.param(
        {"type": "object", "properties": {"v": {"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 0}]}}},
        {"v": 5},
        ("FieldValueInvalid", 'Invalid value: "": "spec.v" must validate at least one schema (anyOf)', "<nil>"),
        id="any-of",
    ),
    pytest.param(
        {"type": "object", "properties": {"v": {"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}]}}},
        {"v": 5},
        (
            "FieldValueInvalid",
            'Invalid value: "": "spec.v" must validate one and only one schema (oneOf). Found 2 valid alternatives',
            "<nil>",
        ),
        id="one-of-two-match",
    ),
    pytest.param(
        {"type": "object", "properties": {"v": {"type": "string", "not": {"enum": ["bad"]}}}},
        {"v": "bad"},
        ("FieldValueInvalid", 'Invalid value: "": "spec.v" must not validate the schema (not)', "<nil>"),
        id="not",
    ),
]


@pytest.mark.parametrize(("spec_schema", "spec", "expected"), VALIDATION_CASES)
def test_validation_cause(spec_schema: dict, spec: dict, expected: tuple[str, str, str]) -> None:
    result = apply_structural_schema(_cr(spec), _root(spec_schema))
    assert Cause(*expected) in result.causes, result.causes


def test_all_of_reports_sub_errors_and_summary() -> None:
    schema = _root(
        {"type": "object", "properties": {"v": {"type": "integer", "allOf": [{"minimum": 0}, {"maximum": 3}]}}}
    )
    causes = apply_structural_schema(_cr({"v": 5}), schema).causes
    assert (
        Cause("FieldValueInvalid", "Invalid value: 5: spec.v in body should be less than or equal to 3", "spec.v")
        in causes
    )
    assert (
        Cause("FieldValueInvalid", 'Invalid value: "": "spec.v" must validate all the schemas (allOf)', "<nil>")
        in causes
    )


ACCEPTED_CASES = [
    pytest.param({"type": "integer"}, 2.0, id="integral-float-is-integer"),
    pytest.param({"type": "number"}, 3, id="number-accepts-int"),
    pytest.param({"x-kubernetes-int-or-string": True}, 8786, id="int-or-string-int"),
    pytest.param({"x-kubernetes-int-or-string": True}, "50%", id="int-or-string-string"),
    pytest.param({"type": "string", "nullable": True}, None, id="nullable-null"),
    pytest.param({"type": "integer", "format": "int32"}, 5, id="int32-format"),
    pytest.param({"type": "string", "format": "date-time"}, "2024-01-02T03:04:05Z", id="date-time"),
    pytest.param({"type": "string", "format": "date-time"}, "2024-01-02T03:04:05.123+02:00", id="date-time-offset"),
    pytest.param({"type": "string", "format": "int64"}, "anything", id="unknown-string-format"),
    pytest.param({"type": "string", "enum": ["a"]}, "a", id="enum-member"),
    pytest.param({"type": "integer", "minimum": 0, "maximum": 10}, 10, id="inclusive-bounds"),
    pytest.param({"type": "number", "multipleOf": 0.5}, 1.5, id="fractional-multiple"),
    pytest.param({"type": "string", "maxLength": 3}, "äöü", id="max-length-counts-characters"),
]


@pytest.mark.parametrize(("prop", "value"), ACCEPTED_CASES)
def test_valid_values_accepted(prop: dict, value: Any) -> None:
    schema = _root({"type": "object", "properties": {"v": prop}})
    result = apply_structural_schema(_cr({"v": value}), schema)
    assert result.causes == []
    assert result.obj["spec"] == {"v": value}


def test_causes_serialise() -> None:
    cause = Cause("FieldValueRequired", "Required value", "spec.cluster")
    assert cause.to_dict() == {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.cluster"}


# --------------------------------------------------------------------------- messages


def test_invalid_message_one_cause() -> None:
    causes = [Cause("FieldValueRequired", "Required value", "spec.cluster")]
    assert (
        format_invalid_message("DaskCluster.kubernetes.dask.org", "simple", causes)
        == 'DaskCluster.kubernetes.dask.org "simple" is invalid: spec.cluster: Required value'
    )


def test_invalid_message_several_causes_bracketed_and_deduplicated() -> None:
    a = Cause("FieldValueRequired", "Required value", "spec.cluster")
    b = Cause("FieldValueInvalid", "Invalid value: -1: spec.n in body should be greater than or equal to 0", "spec.n")
    assert format_invalid_message("Pod", "web", [a, b, a]) == (
        'Pod "web" is invalid: [spec.cluster: Required value, '
        "spec.n: Invalid value: -1: spec.n in body should be greater than or equal to 0]"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5, "1.5"),
        (2.0, "2"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5, "-2.5"),
    ],
)
def test_go_float_formatting(value: float, text: str) -> None:
    assert go_float(value) == text


# --------------------------------------------------------------------------- CRD schema checks


def test_crd_schema_valid_has_no_causes() -> None:
    schema = _root(
        {
            "type": "object",
            "properties": {
                "ports": {"type": "array", "items": {"type": "integer"}},
                "port": {"x-kubernetes-int-or-string": True},
                "free": {"x-kubernetes-preserve-unknown-fields": True},
            },
        }
    )
    assert validate_crd_schema(schema) == []


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        pytest.param(
            {"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}},
            Cause(
                "FieldValueRequired",
                "Required value: must not be empty for specified object fields",
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].type",
            ),
            id="missing-type",
        ),
        pytest.param(
            {"type": "object", "properties": {"spec": {"type": "dict"}}},
            Cause(
                "FieldValueNotSupported",
                'Unsupported value: "dict": supported values: "array", "boolean", "integer", "number", "object", '
                '"string"',
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].type",
            ),
            id="unknown-type",
        ),
        pytest.param(
            {"type": "object", "properties": {"l": {"type": "array", "items": {}}}},
            Cause(
                "FieldValueRequired",
                "Required value: must not be empty for specified array items",
                "spec.versions[1].schema.openAPIV3Schema.properties[l].items.type",
            ),
            id="items-without-type",
        ),
        pytest.param(
            {"type": "string"},
            Cause(
                "FieldValueInvalid",
                'Invalid value: "string": must be object at the root',
                "spec.versions[1].schema.openAPIV3Schema.type",
            ),
            id="root-not-object",
        ),
    ],
)
def test_crd_schema_errors(schema: dict, expected: Cause) -> None:
    assert expected in validate_crd_schema(schema, version_index=1)
