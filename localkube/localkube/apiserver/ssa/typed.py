"""How structured-merge-diff types an object: the `Schema` tree, from a CRD's OpenAPI or the built-in table.

Only what changes merging and ownership is described (list types and keys, atomic maps and structs, key
defaults); everything else in a built-in kind behaves as a typed Go struct.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from localkube.apiserver.ssa.errors import SchemaError
from localkube.apiserver.ssa.fieldpath import Path, PathElement, go_json, go_quote, path_string, pe_string

# ---------------------------------------------------------------------------------------------- schema


@dataclass(eq=False)
class Schema:
    """How structured-merge-diff sees one node of an object.

    kind: "scalar"; "map" (a struct and/or a map: `fields` are declared, other keys use `elements`);
    "list" (`elements` is the item schema); or "any", which decides by the value: dicts are granular maps,
    lists atomic, everything else scalar (SMD's "deduced" type, used under x-kubernetes-preserve-unknown-fields).

    open: undeclared keys count as declared struct fields. Built-in kinds are Go structs; this lets the table
    below describe only the paths whose merge behaviour matters while every other key still renders the way
    a typed struct does (`f:x` without `.: {}`).
    default: the field's default; SMD uses it for list-map keys an item omits (ports' protocol "TCP").
    implicit: a non-pointer Go struct. The server compares an Update on create against the typed zero object,
    where such structs already exist, so it never records them as added; create() mirrors that.
    """

    kind: str = "any"
    fields: dict[str, Schema] = field(default_factory=dict)
    elements: Schema | None = None
    open: bool = False
    map_type: str = "granular"
    list_type: str = "atomic"
    keys: tuple[str, ...] = ()
    default: Any = None
    implicit: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("scalar", "map", "list", "any"):
            raise ValueError(f"unknown schema kind {self.kind!r}")
        if self.map_type not in ("granular", "atomic"):
            raise ValueError(f"unknown map type {self.map_type!r}")
        if self.list_type not in ("atomic", "set", "map"):
            raise ValueError(f"unknown list type {self.list_type!r}")
        if self.list_type == "map" and not self.keys:
            raise ValueError("a list of type map needs keys")

    @classmethod
    def from_openapi(cls, spec: Mapping[str, Any] | None) -> Schema:
        """Build from a CRD's openAPIV3Schema: x-kubernetes-list-type/-list-map-keys/-map-type/-preserve-unknown-
        fields are honoured, lists without a list type are atomic (as for CRDs), unknown shapes become "any"."""
        if not spec:
            return ANY
        default = spec.get("default")
        if spec.get("x-kubernetes-int-or-string"):
            return cls("scalar", default=default)
        kind = spec.get("type")
        if kind == "array" or (kind is None and "items" in spec):
            items = spec.get("items")
            item = cls.from_openapi(items) if isinstance(items, Mapping) else ANY
            list_type = spec.get("x-kubernetes-list-type")
            keys = tuple(spec.get("x-kubernetes-list-map-keys") or ())
            if list_type is None and "merge" in str(spec.get("x-kubernetes-patch-strategy", "")).split(","):
                # Built-in OpenAPI without list types: SMD falls back to the strategic-merge-patch key.
                merge_key = spec.get("x-kubernetes-patch-merge-key")
                list_type, keys = ("map", (merge_key,)) if merge_key else ("set", ())
            return cls("list", elements=item, list_type=list_type or "atomic", keys=keys, default=default)
        if kind == "object" or (kind is None and ("properties" in spec or "additionalProperties" in spec)):
            fields = {name: cls.from_openapi(sub) for name, sub in (spec.get("properties") or {}).items()}
            extra = spec.get("additionalProperties")
            elements: Schema | None = None
            if isinstance(extra, Mapping):
                elements = cls.from_openapi(extra)
            elif extra is True or spec.get("x-kubernetes-preserve-unknown-fields"):
                elements = ANY
            if spec.get("x-kubernetes-embedded-resource"):
                fields.setdefault("apiVersion", SCALAR)
                fields.setdefault("kind", SCALAR)
                fields["metadata"] = OBJECT_META
            map_type = "atomic" if spec.get("x-kubernetes-map-type") == "atomic" else "granular"
            return cls("map", fields=fields, elements=elements, map_type=map_type, default=default)
        if kind in ("string", "integer", "number", "boolean"):
            return cls("scalar", default=default)
        return ANY

    @cached_property
    def checked(self) -> bool:
        """Whether a value of this type can hold list items SMD's typed conversion rejects (a set or a list-type
        map somewhere below); check_value skips the rest, where anything goes."""
        if self.kind == "list":
            return self.list_type != "atomic" or (self.elements is not None and self.elements.checked)
        if self.kind == "map":
            return any(f.checked for f in self.fields.values()) or bool(self.elements and self.elements.checked)
        return False

    @cached_property
    def key_plan(self) -> tuple[tuple[str, str | None], ...]:
        """A list-map's key fields sorted by name (the order of a key path element), each with its default as
        JSON text, or None."""
        element = item_schema(self)
        plan = []
        for name in sorted(self.keys):
            sub = element.fields.get(name) if element.kind == "map" else None
            plan.append((name, go_json(sub.default) if sub is not None and sub.default is not None else None))
        return tuple(plan)

    def zero(self) -> dict[str, Any]:
        """The typed zero object's skeleton: {} for every implicit (non-pointer struct) field, recursively.
        Shared between calls: read it, never change it."""
        return self._zero

    @cached_property
    def _zero(self) -> dict[str, Any]:
        return {name: sub.zero() for name, sub in self.fields.items() if sub.implicit and sub.kind == "map"}


SCALAR = Schema("scalar")
ANY = Schema("any")  # SMD's deduced type: map keys are owned individually (`.: {}` on sub-maps)
ANY_STRUCT = Schema("any", open=True)  # unknown paths inside built-in kinds: keys behave like struct fields


def child_schema(s: Schema, key: str) -> tuple[Schema, bool]:
    """Schema for a map key, and whether the key is a declared (struct) field."""
    if s.kind == "map":
        if key in s.fields:
            return s.fields[key], True
        if s.elements is not None:
            return s.elements, s.open
        return (ANY_STRUCT if s.open else ANY), s.open
    if s.kind == "any":
        return s, s.open
    return ANY, False


def item_schema(s: Schema) -> Schema:
    if s.kind == "list" and s.elements is not None:
        return s.elements
    return s if s.kind == "any" else ANY


class _Nulled:
    """A container emptied by removal. SMD leaves null there; we keep the marker for field-set maths, then drop it."""

    def __repr__(self) -> str:
        return "NULLED"


NULLED = _Nulled()
MISSING: Any = object()


def value_shape(s: Schema, v: Any) -> str:
    """How a value is walked: "map", "list" or a leaf ("scalar"); a value that does not fit its schema is a leaf."""
    if isinstance(v, dict) and s.kind in ("map", "any"):
        return "map"
    if isinstance(v, list) and s.kind in ("list", "any"):
        return "list"
    return "scalar"


def is_atomic(s: Schema, shape: str) -> bool:
    if shape == "map":
        return s.kind == "map" and s.map_type == "atomic"
    if shape == "list":
        return s.kind != "list" or s.list_type == "atomic"
    return True


def item_pe(s: Schema, item: Any) -> PathElement:
    """The path element naming a list item: its key fields (defaults filled in) for maps, its value for sets."""
    if s.list_type == "map":
        if item is None:
            raise SchemaError("associative list with keys may not have a null element")
        if not isinstance(item, dict):
            raise SchemaError("associative list with keys may not have non-map elements")
        plan = s.key_plan
        if len(plan) == 1 and plan[0][0] in item:  # one key field, present: most list-maps, most of the time
            return ("k", ((plan[0][0], go_json(item[plan[0][0]])),))
        parts: list[tuple[str, str]] = []
        for name, default in plan:
            if name in item:
                parts.append((name, go_json(item[name])))
            elif default is not None:
                parts.append((name, default))
        if not parts:
            keys = "[" + " ".join(go_quote(k) for k in s.keys) + "]"
            raise SchemaError(
                f"associative list with keys has an element that omits all key fields {keys} "
                "(and doesn't have default values for any key fields)"
            )
        return ("k", tuple(parts))
    if isinstance(item, dict):
        raise SchemaError("associative list without keys has an element that's a map type")
    if isinstance(item, list):
        raise SchemaError("not supported: associative list with lists as elements")
    if item is None:
        raise SchemaError("associative list without keys has an element that's an explicit null")
    return ("v", go_json(item))


def check_value(v: Any, s: Schema, path: Path, allow_duplicates: bool) -> None:
    """Reject what SMD's typed conversion rejects, so the walkers below may assume well-formed lists."""
    if not s.checked:
        return
    shape = value_shape(s, v)
    if shape == "map" and not is_atomic(s, shape):
        for key, val in v.items():
            if isinstance(val, dict | list):  # scalars cannot be malformed
                check_value(val, child_schema(s, key)[0], (*path, ("f", key)), allow_duplicates)
    elif shape == "list" and not is_atomic(s, shape):
        seen: set[PathElement] = set()
        for i, item in enumerate(v):
            try:
                pe = item_pe(s, item)
            except SchemaError as err:
                raise SchemaError(f"{path_string(path)}: element {i}: {err}") from None
            if pe in seen and not allow_duplicates:
                raise SchemaError(f"{path_string(path)}: duplicate entries for key {pe_string(pe)}")
            seen.add(pe)
            check_value(item, item_schema(s), (*path, pe), allow_duplicates)


# ------------------------------------------------------------------------------------ built-in schemas


def _struct(*, atomic: bool = False, implicit: bool = False, **fields: Schema) -> Schema:
    return Schema("map", fields=fields, elements=ANY_STRUCT, open=True,
                  map_type="atomic" if atomic else "granular", implicit=implicit)


def _map(values: Schema = SCALAR, *, atomic: bool = False) -> Schema:
    return Schema("map", elements=values, map_type="atomic" if atomic else "granular")


def _list_map(item: Schema, *keys: str) -> Schema:
    return Schema("list", elements=item, list_type="map", keys=keys)


_ATOMIC_LIST = Schema("list", elements=ANY_STRUCT, list_type="atomic")
_SET = Schema("list", elements=SCALAR, list_type="set")
_TCP = Schema("scalar", default="TCP")  # the SMD schema defaults protocol, so an omitted one keys as "TCP"
_CONDITIONS = _list_map(_struct(), "type")

OBJECT_META = _struct(
    implicit=True,
    labels=_map(),
    annotations=_map(),
    finalizers=_SET,
    ownerReferences=_list_map(_struct(), "uid"),
    managedFields=_ATOMIC_LIST,
)

_CONTAINER = _struct(
    command=_ATOMIC_LIST,
    args=_ATOMIC_LIST,
    ports=_list_map(_struct(protocol=_TCP), "containerPort", "protocol"),
    env=_list_map(_struct(valueFrom=_struct()), "name"),
    envFrom=_ATOMIC_LIST,
    volumeMounts=_list_map(_struct(), "mountPath"),
    volumeDevices=_list_map(_struct(), "devicePath"),
    resources=_struct(limits=_map(), requests=_map(), claims=_list_map(_struct(), "name")),
    resizePolicy=_ATOMIC_LIST,
    securityContext=_struct(capabilities=_struct(add=_ATOMIC_LIST, drop=_ATOMIC_LIST)),
)

_POD_SPEC = _struct(
    implicit=True,
    containers=_list_map(_CONTAINER, "name"),
    initContainers=_list_map(_CONTAINER, "name"),
    ephemeralContainers=_list_map(_CONTAINER, "name"),
    volumes=_list_map(_struct(csi=_struct(volumeAttributes=_map())), "name"),
    imagePullSecrets=_list_map(_struct(), "name"),
    tolerations=_ATOMIC_LIST,
    hostAliases=_list_map(_struct(hostnames=_ATOMIC_LIST), "ip"),
    topologySpreadConstraints=_list_map(_struct(), "topologyKey", "whenUnsatisfiable"),
    resourceClaims=_list_map(_struct(), "name"),
    schedulingGates=_list_map(_struct(), "name"),
    readinessGates=_ATOMIC_LIST,
    nodeSelector=_map(atomic=True),
    overhead=_map(),
)

_POD_TEMPLATE = _struct(implicit=True, metadata=OBJECT_META, spec=_POD_SPEC)
_SELECTOR = _struct(atomic=True)  # metav1.LabelSelector is +structType=atomic


def _object(**fields: Schema) -> Schema:
    return _struct(apiVersion=SCALAR, kind=SCALAR, metadata=OBJECT_META, **fields)


def _workload(*, conditions: Schema = _CONDITIONS, **spec: Schema) -> Schema:
    return _object(
        spec=_struct(implicit=True, selector=_SELECTOR, template=_POD_TEMPLATE, **spec),
        status=_struct(implicit=True, conditions=conditions),
    )


_BUILTIN: dict[tuple[str, str], Schema] = {
    ("", "Pod"): _object(
        spec=_POD_SPEC,
        status=_struct(
            implicit=True,
            conditions=_CONDITIONS,
            podIPs=_list_map(_struct(), "ip"),
            containerStatuses=_ATOMIC_LIST,
            initContainerStatuses=_ATOMIC_LIST,
            ephemeralContainerStatuses=_ATOMIC_LIST,
        ),
    ),
    ("", "PodTemplate"): _object(template=_POD_TEMPLATE),
    ("", "ReplicationController"): _object(
        spec=_struct(implicit=True, selector=_map(atomic=True), template=_POD_TEMPLATE),
        status=_struct(implicit=True, conditions=_CONDITIONS),
    ),
    ("", "Service"): _object(
        spec=_struct(
            implicit=True,
            ports=_list_map(_struct(protocol=_TCP), "port", "protocol"),
            selector=_map(atomic=True),
            clusterIPs=_ATOMIC_LIST,
            externalIPs=_ATOMIC_LIST,
            ipFamilies=_ATOMIC_LIST,
            loadBalancerSourceRanges=_ATOMIC_LIST,
        ),
        status=_struct(implicit=True, conditions=_CONDITIONS),
    ),
    ("", "ConfigMap"): _object(data=_map(), binaryData=_map()),
    ("", "Secret"): _object(data=_map(), stringData=_map()),
    ("", "ServiceAccount"): _object(secrets=_list_map(_struct(), "name"), imagePullSecrets=_ATOMIC_LIST),
    ("", "Namespace"): _object(
        spec=_struct(implicit=True, finalizers=_ATOMIC_LIST),
        status=_struct(implicit=True, conditions=_CONDITIONS),
    ),
    ("", "PersistentVolumeClaim"): _object(
        spec=_struct(implicit=True, accessModes=_ATOMIC_LIST, selector=_SELECTOR,
                     resources=_struct(limits=_map(), requests=_map())),
        status=_struct(implicit=True, conditions=_CONDITIONS, accessModes=_ATOMIC_LIST, capacity=_map()),
    ),
    ("apps", "Deployment"): _workload(strategy=_struct(implicit=True)),
    ("apps", "ReplicaSet"): _workload(),
    ("apps", "StatefulSet"): _workload(updateStrategy=_struct(implicit=True), volumeClaimTemplates=_ATOMIC_LIST),
    ("apps", "DaemonSet"): _workload(updateStrategy=_struct(implicit=True)),
    ("batch", "Job"): _workload(conditions=_ATOMIC_LIST),
    ("batch", "CronJob"): _object(
        spec=_struct(implicit=True, jobTemplate=_struct(
            implicit=True, metadata=OBJECT_META,
            spec=_struct(implicit=True, selector=_SELECTOR, template=_POD_TEMPLATE),
        )),
        status=_struct(implicit=True, active=_ATOMIC_LIST),
    ),
    ("policy", "PodDisruptionBudget"): _object(
        spec=_struct(implicit=True, selector=_SELECTOR),
        status=_struct(implicit=True, conditions=_CONDITIONS, disruptedPods=_map()),
    ),
    ("networking.k8s.io", "Ingress"): _object(
        spec=_struct(implicit=True, rules=_ATOMIC_LIST, tls=_ATOMIC_LIST),
        status=_struct(implicit=True),
    ),
    ("coordination.k8s.io", "Lease"): _object(spec=_struct(implicit=True)),
}
_GENERIC = _object()


def builtin_schema(api_version: str, kind: str) -> Schema:
    """The schema for a built-in kind; any other kind gets typed-struct defaults (maps granular, lists atomic)
    with real metadata semantics. Custom resources should use schema_for_crd instead."""
    group = api_version.rpartition("/")[0]
    return _BUILTIN.get((group, kind), _GENERIC)


def schema_for_crd(crd: Mapping[str, Any], version: str) -> Schema:
    """The schema of one version of a CustomResourceDefinition (see schema_for_custom_resource)."""
    spec = crd.get("spec") or {}
    oas: Mapping[str, Any] | None = None
    for v in spec.get("versions") or []:
        if v.get("name") == version:
            oas = (v.get("schema") or {}).get("openAPIV3Schema")
    return schema_for_custom_resource(oas or (spec.get("validation") or {}).get("openAPIV3Schema"))


def schema_for_custom_resource(openapi_v3_schema: Mapping[str, Any] | None) -> Schema:
    """A custom resource's schema from its version's openAPIV3Schema. metadata always gets ObjectMeta's semantics
    (the server ignores what a CRD says about it); a version without a schema is untyped below the root."""
    root = Schema.from_openapi(openapi_v3_schema) if openapi_v3_schema else Schema("map", elements=ANY)
    if root.kind != "map":
        root = Schema("map", elements=ANY)
    fields = dict(root.fields)
    fields.update(apiVersion=SCALAR, kind=SCALAR, metadata=OBJECT_META)
    return Schema("map", fields=fields, elements=root.elements, map_type=root.map_type)
