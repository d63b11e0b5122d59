"""CRD structural schemas: pruning, defaulting and validation of custom resources.

The real API server runs three passes on every write of a custom resource: it prunes
fields the schema does not declare, applies ``default`` values, then validates the
result with the OpenAPI validator.  Clients (kubectl, kr8s, kopf) surface the
resulting ``Status`` causes verbatim, so the messages below follow the server's
wording (kube-openapi messages wrapped in apimachinery ``field.Error`` bodies).
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = [
    "Cause",
    "SchemaResult",
    "apply_structural_schema",
    "format_invalid_message",
    "go_float",
    "go_value",
    "validate_crd_schema",
]

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
TYPE_INVALID = "FieldValueTypeInvalid"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
FORBIDDEN = "FieldValueForbidden"

# Fields an embedded resource (and the resource root) keeps whatever the schema says.
_META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})
_OPENAPI_TYPES = ("array", "boolean", "integer", "number", "object", "string")


@dataclass(frozen=True)
class Cause:
    """One entry of ``Status.details.causes`` (a Kubernetes ``field.Error``)."""

    reason: str
    message: str
    field: str

    def to_dict(self) -> dict:
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def error(self) -> str:
        """The ``<field>: <message>`` form used in the Status message."""
        return f"{self.field}: {self.message}"


@dataclass
class SchemaResult:
    """Outcome of :func:`apply_structural_schema`."""

    obj: dict
    causes: list[Cause] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- Go formatting


def go_float(v: float) -> str:
    """Go's ``%v`` for float64: shortest digits, exponent form when the exponent is < -4 or >= 6."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign, digits, exp = Decimal(repr(v)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    exp = int(exp) + (len(digits) - len(ds))
    dp = len(ds) + exp  # position of the decimal point relative to the digits
    x = dp - 1
    neg = "-" if sign else ""
    if x < -4 or x >= 6:  # Go uses precision 6 for the %e decision when printing shortest
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'+' if x >= 0 else '-'}{abs(x):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{ds}"
    if dp >= len(ds):
        return f"{neg}{ds}{'0' * (dp - len(ds))}"
    return f"{neg}{ds[:dp]}.{ds[dp:]}"


def _go_quote(s: str) -> str:
    """Go's ``%q`` for strings (close enough: JSON escaping, non-ASCII kept)."""
    return json.dumps(s, ensure_ascii=False)


def _go_sharp(v: Any) -> str:
    """Go's ``%#v`` for decoded JSON values (maps and slices of interface{})."""
    if isinstance(v, dict):
        inner = ", ".join(f"{_go_quote(str(k))}:{_go_sharp(v[k])}" for k in sorted(v))
        return "map[string]interface {}{" + inner + "}"
    if isinstance(v, list):
        return "[]interface {}{" + ", ".join(_go_sharp(i) for i in v) + "}"
    if v is None:
        return "interface {}(nil)"
    if isinstance(v, str):
        return _go_quote(v)
    return go_value(v)


def go_value(v: Any) -> str:
    """Render a bad value the way ``field.Error.ErrorBody`` does."""
    if v is None:
        return '"null"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        return _go_quote(v)
    return _go_sharp(v)


def _num(v: Any) -> str:
    """A schema bound (float64 in Go) as ``%v`` prints it."""
    return go_float(float(v)) if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------- cause builders


def _field(path: str) -> str:
    return path or "<nil>"


def _required(path: str, detail: str = "") -> Cause:
    return Cause(REQUIRED, "Required value" + (f": {detail}" if detail else ""), _field(path))


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause(INVALID, f"Invalid value: {go_value(value)}: {detail}", _field(path))


def _type_invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause(TYPE_INVALID, f"Invalid value: {go_value(value)}: {detail}", _field(path))


def _not_supported(path: str, value: Any, allowed: list[Any]) -> Cause:
    names = [a if isinstance(a, str) else json.dumps(a, separators=(",", ":")) for a in allowed]
    msg = f"Unsupported value: {go_value(value)}"
    if names:
        msg += ": supported values: " + ", ".join(_go_quote(n) for n in names)
    return Cause(NOT_SUPPORTED, msg, _field(path))


def _too_long(path: str, max_length: int) -> Cause:
    unit = "byte" if max_length == 1 else "bytes"
    return Cause(TOO_LONG, f"Too long: may not be more than {max_length} {unit}", _field(path))


def _too_many(path: str, actual: int, maximum: int) -> Cause:
    return Cause(TOO_MANY, f"Too many: {actual}: must have at most {maximum} items", _field(path))


# --------------------------------------------------------------------------- path helpers


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def _props(s: Mapping | None) -> Mapping:
    return (s or {}).get("properties") or {}


def _additional(s: Mapping | None) -> tuple[bool, Mapping | None]:
    """(has additionalProperties, its schema) -- ``true`` means a map without a schema."""
    ap = (s or {}).get("additionalProperties")
    if ap is None or ap is False:
        return False, None
    return True, ap if isinstance(ap, Mapping) else None


def _preserves(s: Mapping | None) -> bool:
    return bool(s and s.get("x-kubernetes-preserve-unknown-fields"))


def _embedded(s: Mapping | None) -> bool:
    return bool(s and s.get("x-kubernetes-embedded-resource"))


# --------------------------------------------------------------------------- pruning


def _prune(x: Any, s: Mapping | None, path: str, found: list[str], root: bool = False) -> None:
    """Drop fields the schema does not declare, recording their paths (server: pruning.go)."""
    if _preserves(s):
        _skip_prune(x, s, path, found, root)
        return
    if isinstance(x, dict):
        if s is None:
            for k in list(x):
                found.append(_child(path, k))
                del x[k]
            return
        keep_meta = root or _embedded(s)
        props = _props(s)
        has_ap, ap = _additional(s)
        for k in list(x):
            if keep_meta and k in _META_FIELDS:
                continue
            if k in props:
                _prune(x[k], props[k], _child(path, k), found)
            elif has_ap:
                _prune(x[k], ap, _child(path, k), found)
            else:
                found.append(_child(path, k))
                del x[k]
    elif isinstance(x, list):
        items = s.get("items") if s is not None else None
        for i, v in enumerate(x):
            _prune(v, items if isinstance(items, Mapping) else None, _index(path, i), found)


def _skip_prune(x: Any, s: Mapping | None, path: str, found: list[str], root: bool = False) -> None:
    """Below x-kubernetes-preserve-unknown-fields: keep unknown fields, prune declared ones."""
    if s is None:
        return
    if isinstance(x, dict):
        keep_meta = root or _embedded(s)
        props = _props(s)
        has_ap, ap = _additional(s)
        for k, v in x.items():
            if keep_meta and k in _META_FIELDS:
                continue
            if k in props:
                _prune(v, props[k], _child(path, k), found)
            elif has_ap:
                _prune(v, ap, _child(path, k), found)
    elif isinstance(x, list):
        items = s.get("items")
        for i, v in enumerate(x):
            _skip_prune(v, items if isinstance(items, Mapping) else None, _index(path, i), found)


def _prune_nulls(x: Any, s: Mapping | None, root: bool = False) -> None:
    """Remove ``null`` of non-nullable fields that have no default (server does this before defaulting)."""
    if s is None:
        return
    if isinstance(x, dict):
        props = _props(s)
        _, ap = _additional(s)
        for k in list(x):
            if root and k == "metadata":
                continue
            sub = props.get(k, ap if k not in props else None)
            if sub is None:
                continue
            if x[k] is None and not sub.get("nullable") and "default" not in sub:
                del x[k]
            else:
                _prune_nulls(x[k], sub)
    elif isinstance(x, list):
        items = s.get("items")
        for v in x:
            _prune_nulls(v, items if isinstance(items, Mapping) else None)


# --------------------------------------------------------------------------- defaulting


def _default(x: Any, s: Mapping | None, root: bool = False) -> None:
    """Apply ``default`` to absent (or non-nullable null) properties, then recurse (server: default.go)."""
    if not s:
        return
    if isinstance(x, dict):
        props = _props(s)
        for k, prop in props.items():
            if root and k == "metadata":
                continue
            if "default" in prop and (k not in x or (x[k] is None and not prop.get("nullable"))):
                x[k] = copy.deepcopy(prop["default"])
        _, ap = _additional(s)
        for k, v in x.items():
            if root and k == "metadata":
                continue
            if k in props:
                _default(v, props[k])
            elif ap is not None:
                _default(v, ap)
    elif isinstance(x, list):
        items = s.get("items")
        for v in x:
            _default(v, items if isinstance(items, Mapping) else None)


# --------------------------------------------------------------------------- validation


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _schema_types(s: Mapping) -> list[str]:
    if s.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    t = s.get("type")
    if isinstance(t, list):
        return [str(i) for i in t]
    return [t] if t else []


def _type_ok(v: Any, types: list[str]) -> bool:
    actual = _json_type(v)
    if actual in types:
        return True
    if actual == "number" and "integer" in types and float(v).is_integer():
        return True  # 2.0 decodes as an integral JSON number
    return actual == "integer" and "number" in types


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: booleans never equal numbers, ints equal integral floats."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(i, j) for i, j in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _valid_ip(v: str, kind: type) -> bool:
    try:
        return isinstance(ipaddress.ip_address(v), kind)
    except ValueError:
        return False


def _valid_uuid(v: str) -> bool:
    try:
        uuid.UUID(v)
    except ValueError:
        return False
    return len(v) == 36


def _valid_date(v: str) -> bool:
    if not _DATE.match(v):
        return False
    try:
        datetime.date.fromisoformat(v)
    except ValueError:
        return False
    return True


# Known string formats; anything else (int32, int64, double, ...) is accepted as the server does.
_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": lambda v: bool(_DATE_TIME.match(v)),
    "datetime": lambda v: bool(_DATE_TIME.match(v)),
    "date": _valid_date,
    "ipv4": lambda v: _valid_ip(v, ipaddress.IPv4Address),
    "ipv6": lambda v: _valid_ip(v, ipaddress.IPv6Address),
    "uuid": _valid_uuid,
}


class _Validator:
    """Collects causes for one value tree, mirroring kube-openapi's validator chain order."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []

    def validate(self, v: Any, s: Mapping | None, path: str, root: bool = False) -> None:
        if not s:
            return
        types = _schema_types(s)
        if v is None:
            if types and not s.get("nullable"):
                self.add(_type_invalid(path, "null", f'{path} in body must be of type {",".join(types)}: "null"'))
            return
        if types and not _type_ok(v, types):
            actual = _json_type(v)
            detail = f"{path} in body must be of type {','.join(types)}: {_go_quote(actual)}"
            self.add(_type_invalid(path, actual, detail))
        self._composition(v, s, path)
        if isinstance(v, str):
            self._string(v, s, path)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            self._number(v, s, path)
        elif isinstance(v, list):
            self._array(v, s, path)
        self._enum(v, s, path)
        if isinstance(v, dict):
            self._object(v, s, path, root)

    def add(self, cause: Cause) -> None:
        self.causes.append(cause)

    def _sub(self, v: Any, s: Mapping, path: str) -> list[Cause]:
        sub = _Validator()
        sub.validate(v, s, path)
        return sub.causes

    def _composition(self, v: Any, s: Mapping, path: str) -> None:
        """allOf/anyOf/oneOf/not: value validation only, with the server's composite messages."""
        quoted = _go_quote(path)
        any_of = s.get("anyOf") or []
        if any_of:
            results = [self._sub(v, sub, path) for sub in any_of]
            if not any(not r for r in results):
                self.add(_invalid("", "", f"{quoted} must validate at least one schema (anyOf)"))
                self.causes.extend(min(results, key=len))
        one_of = s.get("oneOf") or []
        if one_of:
            results = [self._sub(v, sub, path) for sub in one_of]
            ok = sum(1 for r in results if not r)
            if ok != 1:
                extra = "Found none valid" if ok == 0 else f"Found {ok} valid alternatives"
                self.add(_invalid("", "", f"{quoted} must validate one and only one schema (oneOf). {extra}"))
                if ok == 0:
                    self.causes.extend(min(results, key=len))
        all_of = s.get("allOf") or []
        if all_of:
            results = [self._sub(v, sub, path) for sub in all_of]
            for r in results:
                self.causes.extend(r)
            failed = sum(1 for r in results if r)
            if failed:
                extra = ". None validated" if failed == len(results) else ""
                self.add(_invalid("", "", f"{quoted} must validate all the schemas (allOf){extra}"))
        not_schema = s.get("not")
        if isinstance(not_schema, Mapping) and not self._sub(v, not_schema, path):
            self.add(_invalid("", "", f"{quoted} must not validate the schema (not)"))

    def _string(self, v: str, s: Mapping, path: str) -> None:
        n = len(v)
        if "maxLength" in s and n > s["maxLength"]:
            self.add(_too_long(path, int(s["maxLength"])))
        if "minLength" in s and n < s["minLength"]:
            self.add(_invalid(path, v, f"{path} in body should be at least {s['minLength']} chars long"))
        pattern = s.get("pattern")
        if pattern and not _pattern_matches(pattern, v):
            self.add(_invalid(path, v, f"{path} in body should match '{pattern}'"))
        check = _FORMATS.get(s.get("format") or "")
        if check is not None and not check(v):
            self.add(_type_invalid(path, v, f"{path} in body must be of type {s['format']}: {_go_quote(v)}"))

    def _number(self, v: float, s: Mapping, path: str) -> None:
        mult = s.get("multipleOf")
        if mult and not _is_multiple(v, mult):
            self.add(_invalid(path, v, f"{path} in body should be a multiple of {_num(mult)}"))
        if "maximum" in s:
            exclusive = bool(s.get("exclusiveMaximum"))
            if v > s["maximum"] or (exclusive and v == s["maximum"]):
                op = "less than" if exclusive else "less than or equal to"
                self.add(_invalid(path, v, f"{path} in body should be {op} {_num(s['maximum'])}"))
        if "minimum" in s:
            exclusive = bool(s.get("exclusiveMinimum"))
            if v < s["minimum"] or (exclusive and v == s["minimum"]):
                op = "greater than" if exclusive else "greater than or equal to"
                self.add(_invalid(path, v, f"{path} in body should be {op} {_num(s['minimum'])}"))

    def _array(self, v: list, s: Mapping, path: str) -> None:
        items = s.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(v):
                self.validate(item, items, _index(path, i))
        if "minItems" in s and len(v) < s["minItems"]:
            self.add(_invalid(path, len(v), f"{path} in body should have at least {s['minItems']} items"))
        if "maxItems" in s and len(v) > s["maxItems"]:
            self.add(_too_many(path, len(v), int(s["maxItems"])))
        if s.get("uniqueItems") and _has_duplicates(v):
            self.add(_invalid(path, "", f"{path} in body shouldn't contain duplicates"))

    def _enum(self, v: Any, s: Mapping, path: str) -> None:
        enum = s.get("enum")
        if enum and not any(_json_equal(v, e) for e in enum):
            self.add(_not_supported(path, v, list(enum)))

    def _object(self, v: dict, s: Mapping, path: str, root: bool) -> None:
        n = len(v)
        if "minProperties" in s and n < s["minProperties"]:
            self.add(_invalid(path, n, f"{path} in body should have at least {s['minProperties']} properties"))
            return
        if "maxProperties" in s and n > s["maxProperties"]:
            self.add(_too_many(path, n, int(s["maxProperties"])))
            return
        props = _props(s)
        _, ap = _additional(s)
        if ap is not None:
            for k, item in v.items():
                if k not in props:
                    self.validate(item, ap, _child(path, k))
        for k, prop in props.items():
            if k in v and not (root and k == "metadata"):
                self.validate(v[k], prop, _child(path, k))
        for k in s.get("required") or []:
            if k not in v:
                self.add(_required(_child(path, k)))
        if _embedded(s) and not root:
            self._embedded_resource(v, path)

    def _embedded_resource(self, v: dict, path: str) -> None:
        """Embedded objects must name their apiVersion and kind (server: schema/objectmeta)."""
        for key in ("apiVersion", "kind"):
            if key not in v:
                self.add(_required(_child(path, key), "must not be empty"))
            elif not isinstance(v[key], str):
                self.add(_invalid(_child(path, key), v[key], "must be a string"))
            elif not v[key]:
                self.add(_invalid(_child(path, key), "", "must not be empty"))


def _pattern_matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True  # a pattern Python cannot compile is not the user's object's fault


def _is_multiple(v: float, mult: float) -> bool:
    if isinstance(v, int) and isinstance(mult, int):
        return v % mult == 0
    q = v / mult
    return math.isclose(q, round(q), rel_tol=0, abs_tol=1e-9)


def _has_duplicates(items: list) -> bool:
    return any(_json_equal(a, b) for i, a in enumerate(items) for b in items[i + 1 :])


# --------------------------------------------------------------------------- public API


def apply_structural_schema(obj: Mapping, schema: Mapping) -> SchemaResult:
    """Prune, default and validate a custom resource against its version's openAPIV3Schema.

    Works on a deep copy so a rejected write never leaves a half-defaulted object behind.
    ``metadata`` at the root is left untouched: ObjectMeta has its own validation.
    """
    out = copy.deepcopy(dict(obj))
    pruned: list[str] = []
    _prune(out, schema, "", pruned, root=True)
    _prune_nulls(out, schema, root=True)
    _default(out, schema, root=True)
    validator = _Validator()
    validator.validate(out, schema, "", root=True)
    return SchemaResult(obj=out, causes=validator.causes, pruned=sorted(pruned))


def prune_unknown(obj: dict, schema: Mapping) -> list[str]:
    """Drop, in place, the fields a custom resource's schema does not declare; returns their paths (sorted).

    Pruning alone, for a partial object such as a server-side apply configuration: no defaults, no validation.
    """
    pruned: list[str] = []
    _prune(obj, schema, "", pruned, root=True)
    return sorted(pruned)


def _schema_path(path: str, key: str) -> str:
    return f"{path}.{key}"


def _check_schema_node(s: Any, path: str, causes: list[Cause], *, need_type: str | None) -> None:
    """Structural checks for one node; ``need_type`` names the context requiring a type."""
    if not isinstance(s, Mapping):
        return
    t = s.get("type")
    untyped_ok = s.get("x-kubernetes-int-or-string") or s.get("x-kubernetes-preserve-unknown-fields")
    if t and t not in _OPENAPI_TYPES:
        causes.append(_not_supported(_schema_path(path, "type"), t, list(_OPENAPI_TYPES)))
    elif not t and need_type and not untyped_ok:
        causes.append(_required(_schema_path(path, "type"), f"must not be empty for specified {need_type}"))
    if s.get("uniqueItems") is True:
        causes.append(
            Cause(
                FORBIDDEN,
                "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
                _schema_path(path, "uniqueItems"),
            )
        )
    for name, sub in (s.get("properties") or {}).items():
        _check_schema_node(sub, f"{path}.properties[{name}]", causes, need_type="object fields")
    if isinstance(s.get("items"), Mapping):
        _check_schema_node(s["items"], _schema_path(path, "items"), causes, need_type="array items")
    if isinstance(s.get("additionalProperties"), Mapping):
        _check_schema_node(
            s["additionalProperties"], _schema_path(path, "additionalProperties"), causes, need_type=None
        )


def validate_crd_schema(schema: Mapping, version_index: int = 0) -> list[Cause]:
    """Lenient structural check of a CRD version's openAPIV3Schema at CRD create/update time."""
    base = f"spec.versions[{version_index}].schema.openAPIV3Schema"
    causes: list[Cause] = []
    if not isinstance(schema, Mapping):
        return [_required(base)]
    t = schema.get("type")
    if not t and not schema.get("x-kubernetes-preserve-unknown-fields"):
        causes.append(_required(_schema_path(base, "type"), "must not be empty at the root"))
    elif t and t != "object" and t in _OPENAPI_TYPES:
        causes.append(_invalid(_schema_path(base, "type"), t, "must be object at the root"))
    _check_schema_node(schema, base, causes, need_type=None)
    return causes


def format_invalid_message(kind_group: str, name: str, causes: list[Cause]) -> str:
    """The Status message of a 422 Invalid, as apierrors.NewInvalid builds it (duplicates dropped)."""
    errors: list[str] = []
    for cause in causes:
        text = cause.error()
        if text not in errors:
            errors.append(text)
    head = f"{kind_group} {_go_quote(name)} is invalid: "
    if len(errors) == 1:
        return head + errors[0]
    return head + "[" + ", ".join(errors) + "]"
