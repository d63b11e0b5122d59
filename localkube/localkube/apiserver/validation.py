"""Validation of built-in kinds, as a Kubernetes 1.32 API server does it.

Two stages mirror the real server. Decoding (400 BadRequest): unknown fields under
`fieldValidation=Strict` and malformed quantities. Validation (422 Invalid, `details.causes`): metadata
names, labels, annotations and the per-kind rules dask_kube and its clients meet (pods, services,
config maps, secrets, workload controllers). Messages reproduce apimachinery's `field.Error` bodies,
because kubectl and kr8s show them verbatim and tests match on them. When unsure we accept: rejecting
a manifest a real cluster takes is worse than missing an error.

Callers are expected to apply defaults (see defaults.py) and fill `metadata.namespace` from the URL
before calling `validate_builtin`, exactly as the real server does before validating.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from localkube.apiserver.builtin_schemas import ANY, QUANTITY, ListOf, MapOf, Obj, Schema, schema_for
from localkube.apiserver.schema import Cause
from localkube.apiserver.selectors import SelectorError, label_selector_from_spec

__all__ = [
    "Cause",
    "canonical_quantity",
    "go_quote",
    "name_rule_for",
    "parse_quantity",
    "quantity_decode_error",
    "strict_decoding_message",
    "unknown_fields",
    "validate_builtin",
    "validate_object_meta",
    "warning_headers",
]

Obj_ = Mapping[str, Any]

# ---------------------------------------------------------------------------------------------------------
# Rendering of field errors (apimachinery field.Error.ErrorBody)
# ---------------------------------------------------------------------------------------------------------

_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(text: str) -> str:
    """Go's strconv.Quote (`%q`), which differs from Python's repr in quotes and escapes."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _render(value: Any) -> str:
    """A bad value as ErrorBody prints it: %q for strings, %v for numbers, JSON for the rest."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, int | float):
        return str(value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {_render(value)}: {detail}", path)


def _required(path: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", "Required value" + (f": {detail}" if detail else ""), path)


def _forbidden(path: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", f"Forbidden: {detail}", path)


def _duplicate(path: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {_render(value)}", path)


def _not_found(path: str, value: Any) -> Cause:
    return Cause("FieldValueNotFound", f"Not found: {_render(value)}", path)


def _not_supported(path: str, value: Any, supported: Sequence[str]) -> Cause:
    detail = "supported values: " + ", ".join(go_quote(v) for v in supported)
    return Cause("FieldValueNotSupported", f"Unsupported value: {_render(value)}: {detail}", path)


def _too_long(path: str, max_bytes: int) -> Cause:
    return Cause("FieldValueTooLong", f"Too long: may not be more than {max_bytes} bytes", path)


def _invalid_each(path: str, value: Any, messages: Iterable[str]) -> list[Cause]:
    return [_invalid(path, value, msg) for msg in messages]


# ---------------------------------------------------------------------------------------------------------
# Strict field validation (400 BadRequest at decode time)
# ---------------------------------------------------------------------------------------------------------


def unknown_fields(api_version: str, kind: str, obj: Mapping) -> list[str]:
    """Paths of fields the built-in Go types do not have, in document order and the server's notation.

    `apiVersion`, `kind` and `status` are always accepted at the top level; kinds we do not describe
    (custom resources among them) have no unknown fields.
    """
    schema = schema_for(api_version, kind)
    if schema is None or not isinstance(obj, Mapping):
        return []
    top = schema.extend(status=schema.fields.get("status", ANY))
    out: list[str] = []
    _collect_unknown(obj, top, "", out)
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _collect_unknown(value: Any, schema: Schema, path: str, out: list[str]) -> None:
    if isinstance(schema, Obj):
        if isinstance(value, Mapping):
            for key, sub in value.items():
                child = _join(path, str(key))
                if key in schema.fields:
                    _collect_unknown(sub, schema.fields[key], child, out)
                else:
                    out.append(child)
    elif isinstance(schema, ListOf):
        if isinstance(value, list):
            for i, item in enumerate(value):
                _collect_unknown(item, schema.item, f"{path}[{i}]", out)
    elif isinstance(schema, MapOf) and isinstance(value, Mapping):
        for key, sub in value.items():
            _collect_unknown(sub, schema.value, _join(path, str(key)), out)


def _cannot_handle(kind: str, api_version: str, error: str) -> str:
    version = api_version.rsplit("/", 1)[-1]
    return f"{kind} in version {go_quote(version)} cannot be handled as a {kind}: {error}"


def strict_decoding_message(kind: str, api_version: str, paths: list[str]) -> str:
    """The 400 BadRequest message of a real server rejecting unknown fields under Strict validation."""
    errors = ", ".join(f"unknown field {go_quote(p)}" for p in paths)
    return _cannot_handle(kind, api_version, f"strict decoding error: {errors}")


def warning_headers(paths: list[str]) -> list[str]:
    """`Warning:` header values for unknown fields under `fieldValidation=Warn` (RFC 7234 code 299)."""
    return [warning_header(f"unknown field {go_quote(p)}") for p in paths]


def warning_header(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


# ---------------------------------------------------------------------------------------------------------
# Quantities (k8s.io/apimachinery/pkg/api/resource)
# ---------------------------------------------------------------------------------------------------------

QUANTITY_FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
QUANTITY_SUFFIX_ERROR = "unable to parse quantity's suffix"
QUANTITY_NUMERIC_ERROR = "unable to parse numeric part of quantity"

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_NANO = Decimal("1e-9")


def _split_quantity(text: str) -> tuple[str, str]:
    """Split into number and suffix the way the Go parser scans, raising its errors."""
    pos, end = 0, len(text)
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    if pos < end and text[pos] == ".":
        pos += 1
        while pos < end and text[pos].isdigit() and text[pos].isascii():
            pos += 1
    number, suffix_start = text[:pos], pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    if pos != end:
        raise ValueError(QUANTITY_FORMAT_ERROR)
    return number, text[suffix_start:]


def _interpret_suffix(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) for a suffix; format is DecimalSI, BinarySI or DecimalExponent."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], "DecimalSI"
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], "BinarySI"
    if len(suffix) > 1 and suffix[0] in "eE":
        try:
            return 10, int(suffix[1:]), "DecimalExponent"
        except ValueError:
            pass
    raise ValueError(QUANTITY_SUFFIX_ERROR)


def _quantity_text(value: str | int | float) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(QUANTITY_FORMAT_ERROR)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(QUANTITY_FORMAT_ERROR)
        return repr(value)
    return str(value).strip()


def _parse(value: str | int | float) -> tuple[Decimal, str]:
    text = _quantity_text(value)
    if not text:
        raise ValueError(QUANTITY_FORMAT_ERROR)
    number, suffix = _split_quantity(text)
    base, exponent, fmt = _interpret_suffix(suffix)
    try:
        amount = Decimal(number)
    except InvalidOperation:
        raise ValueError(QUANTITY_NUMERIC_ERROR)
    amount = amount.scaleb(exponent) if base == 10 else amount * (2**exponent)
    # Like the Go parser: round away from zero to the smallest representable unit (1n).
    rounding = ROUND_CEILING if amount >= 0 else ROUND_FLOOR
    return amount.quantize(_NANO, rounding=rounding) if amount else Decimal(0), fmt


def parse_quantity(text: str | int | float) -> Decimal:
    """Value of a Kubernetes resource.Quantity ("500m", "1Gi", "1e3", 2); ValueError with Go's message."""
    return _parse(text)[0]


def canonical_quantity(text: str | int | float) -> str:
    """Quantity.String(): the canonical spelling the server writes back and quotes in errors."""
    return format_quantity(*_parse(text))


def quantity_format(text: str | int | float) -> str:
    """The format a quantity keeps through arithmetic: "DecimalSI", "BinarySI" or "DecimalExponent"."""
    return _parse(text)[1]


def format_quantity(amount: Decimal, fmt: str) -> str:
    """Quantity.String() of `amount` held in format `fmt` (sums keep the format of their first term)."""
    if fmt == "BinarySI" and (abs(amount) < 1024 or amount != amount.to_integral_value()):
        fmt = "DecimalSI"
    if fmt == "BinarySI":
        return _format_binary(int(amount))
    return _format_decimal(amount, exponent_style=fmt == "DecimalExponent")


def _format_binary(value: int) -> str:
    power = 0
    while power < 60 and value and value % (2 ** (power + 10)) == 0:
        power += 10
    suffix = {0: ""} | {v: k for k, v in _BINARY_SUFFIXES.items()}
    return f"{value // 2**power}{suffix[power]}"


def _format_decimal(amount: Decimal, *, exponent_style: bool) -> str:
    nanos = int(amount.scaleb(9))
    exponent = -9
    while nanos and nanos % 1000 == 0 and (exponent < 18 or exponent_style):
        nanos //= 1000
        exponent += 3
    if not nanos:
        return "0"
    if exponent_style:
        return f"{nanos}e{exponent}" if exponent else str(nanos)
    suffix = {v: k for k, v in _DECIMAL_SUFFIXES.items()}
    return f"{nanos}{suffix[exponent]}"


def quantity_decode_error(api_version: str, kind: str, obj: Mapping) -> str | None:
    """The 400 message a real server gives when a quantity field does not parse, else None.

    The Go JSON decoder stops at the first bad quantity, in document order.
    """
    schema = schema_for(api_version, kind)
    if schema is None:
        return None
    for value in _quantities(obj, schema):
        if value is None:
            continue
        try:
            parse_quantity(value)
        except ValueError as exc:
            return _cannot_handle(kind, api_version, str(exc))
    return None


_HOLDS_QUANTITIES: dict[int, bool] = {}  # by id: the schemas are module constants


def _holds_quantities(schema: Schema) -> bool:
    """Whether a quantity can occur under `schema`, so that _quantities skips the parts (metadata, most of any
    spec) where none can."""
    known = _HOLDS_QUANTITIES.get(id(schema))
    if known is None:
        _HOLDS_QUANTITIES[id(schema)] = False  # a cycle, should the DSL ever have one, holds none by itself
        if isinstance(schema, Obj):
            known = any(_holds_quantities(sub) for sub in schema.fields.values())
        elif isinstance(schema, ListOf):
            known = _holds_quantities(schema.item)
        elif isinstance(schema, MapOf):
            known = _holds_quantities(schema.value)
        else:
            known = schema is QUANTITY
        _HOLDS_QUANTITIES[id(schema)] = known
    return known


def _quantities(value: Any, schema: Schema) -> Iterator[Any]:
    if schema is QUANTITY:
        yield value
    elif not _holds_quantities(schema):
        return
    elif isinstance(schema, Obj) and isinstance(value, Mapping):
        for key, sub in value.items():
            if key in schema.fields:
                yield from _quantities(sub, schema.fields[key])
    elif isinstance(schema, ListOf) and isinstance(value, list):
        for item in value:
            yield from _quantities(item, schema.item)
    elif isinstance(schema, MapOf) and isinstance(value, Mapping):
        for sub in value.values():
            yield from _quantities(sub, schema.value)


# ---------------------------------------------------------------------------------------------------------
# Names, labels, annotations (k8s.io/apimachinery/pkg/util/validation)
# ---------------------------------------------------------------------------------------------------------

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_ENV_VAR_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"

_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character"
)
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character"
)
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_ENV_VAR_NAME_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', "
    "and must not start with a digit"
)
_NEGATIVE_MSG = "must be greater than or equal to 0"
_PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"


def _matches(fmt: str, value: str) -> bool:
    return re.fullmatch(fmt, value) is not None


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError, including its quirky "'a',  or 'b', " example list."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    listed = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {listed}regex used for validation is '{fmt}')"


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def dns1123_label_errors(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not _matches(_DNS1123_LABEL_FMT, value):
        errs.append(_regex_error(_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain_errors(value: str) -> list[str]:
    errs = [_max_len(253)] if len(value) > 253 else []
    if not _matches(_DNS1123_SUBDOMAIN_FMT, value):
        errs.append(_regex_error(_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def dns1035_label_errors(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not _matches(_DNS1035_LABEL_FMT, value):
        errs.append(_regex_error(_DNS1035_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def path_segment_errors(value: str) -> list[str]:
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def qualified_name_errors(value: str) -> list[str]:
    """IsQualifiedName: an optional DNS subdomain prefix and '/', then a name part of at most 63 chars."""
    parts = value.split("/")
    if len(parts) > 2:
        return [
            "a qualified name "
            + _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    errs: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain_errors(prefix))
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len(63))
    if not _matches(_QUALIFIED_NAME_FMT, name):
        errs.append(
            "name part " + _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def label_value_errors(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not _matches(_LABEL_VALUE_FMT, value):
        errs.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _chdir_prefix_errors(value: str) -> list[str]:
    if value in (".", ".."):
        return [f"must not be '{value}'"]
    return ["must not start with '..'"] if value.startswith("..") else []


def config_key_errors(value: str) -> list[str]:
    errs = [_max_len(253)] if len(value) > 253 else []
    if not _matches(_CONFIG_KEY_FMT, value):
        errs.append(_regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    return errs + _chdir_prefix_errors(value)


def port_name_errors(value: str) -> list[str]:
    """IANA_SVC_NAME: at most 15 lowercase alphanumerics or '-', with a letter, no '--', no edge '-'."""
    errs = [_max_len(15)] if len(value) > 15 else []
    if not re.fullmatch("[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _port_num_errors(value: Any) -> list[str]:
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
    return [] if ok else [_PORT_RANGE_MSG]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _name_errors(rule: str, name: str, *, prefix: bool = False) -> list[str]:
    """The ValidateNameFunc of a kind; generateName prefixes may end with '-'."""
    if rule == "path":
        return [e for e in path_segment_errors(name) if not (prefix and e.startswith("may not be"))]
    if prefix and len(name) > 1 and name.endswith("-"):
        name = name[:-1] + "a"
    checks = {"label": dns1123_label_errors, "dns1035": dns1035_label_errors}
    return checks.get(rule, dns1123_subdomain_errors)(name)


# group -> plural -> rule; anything else is a DNS-1123 subdomain.
_NAME_RULES: dict[str, dict[str, str]] = {
    "": {"namespaces": "label", "services": "dns1035", "events": "path"},
    "rbac.authorization.k8s.io": {
        "roles": "path",
        "clusterroles": "path",
        "rolebindings": "path",
        "clusterrolebindings": "path",
    },
    "certificates.k8s.io": {"certificatesigningrequests": "path"},
}


def name_rule_for(group: str, plural: str) -> str:
    """How a resource's names are validated: "subdomain", "label", "dns1035" (services) or "path".

    Namespaces are RFC 1123 labels, services RFC 1035 labels (they become DNS names), RBAC objects,
    core/v1 events and CertificateSigningRequests only need to be valid path segments, and the rest (custom
    resources too) subdomains.
    """
    return _NAME_RULES.get(group, {}).get(plural, "subdomain")


ANNOTATIONS_SIZE_LIMIT = 256 * 1024


def validate_labels(labels: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(labels, Mapping):
        return causes
    for key, value in labels.items():
        causes += _invalid_each(path, key, qualified_name_errors(str(key)))
        causes += _invalid_each(path, value, label_value_errors(str(value)))
    return causes


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(annotations, Mapping):
        return causes
    size = 0
    for key, value in annotations.items():
        causes += _invalid_each(path, key, qualified_name_errors(str(key).lower()))
        size += len(str(key).encode()) + len(str(value).encode())
    if size > ANNOTATIONS_SIZE_LIMIT:
        causes.append(_too_long(path, ANNOTATIONS_SIZE_LIMIT))
    return causes


def _validate_owner_references(refs: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    controllers: list[str] = []
    for ref in refs if isinstance(refs, list) else ():
        if not isinstance(ref, Mapping):
            continue
        api_version = str(ref.get("apiVersion") or "")
        if not api_version.rsplit("/", 1)[-1]:
            causes.append(_invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        for key in ("kind", "name", "uid"):
            if not ref.get(key):
                causes.append(_invalid(f"{path}.{key}", str(ref.get(key) or ""), f"{key} must not be empty"))
        if ref.get("controller") is True:
            controllers.append(str(ref.get("name") or ""))
    if len(controllers) > 1:
        detail = 'Only one reference can have Controller set to true. Found "true" in references for ' + " and ".join(
            controllers
        )
        causes.append(_invalid(path, refs, detail))
    return causes


def validate_object_meta(obj: Mapping, *, namespaced: bool, name_rule: str = "subdomain") -> list[Cause]:
    """ValidateObjectMeta: name (or generateName), namespace, labels, annotations, owners, finalizers.

    A missing name is accepted when generateName is set: the server generates it before validating.
    """
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    causes: list[Cause] = []
    generate_name = str(meta.get("generateName") or "")
    name = str(meta.get("name") or "")
    if generate_name:
        causes += _invalid_each(
            "metadata.generateName", generate_name, _name_errors(name_rule, generate_name, prefix=True)
        )
    if name:
        causes += _invalid_each("metadata.name", name, _name_errors(name_rule, name))
    elif not generate_name:
        causes.append(_required("metadata.name", "name or generateName is required"))
    causes += _validate_namespace_field(str(meta.get("namespace") or ""), namespaced)
    generation = meta.get("generation")
    if _is_int(generation) and generation < 0:
        causes.append(_invalid("metadata.generation", generation, _NEGATIVE_MSG))
    causes += validate_labels(meta.get("labels"), "metadata.labels")
    causes += validate_annotations(meta.get("annotations"), "metadata.annotations")
    causes += _validate_owner_references(meta.get("ownerReferences"), "metadata.ownerReferences")
    for finalizer in meta.get("finalizers") or ():
        causes += _invalid_each("metadata.finalizers", finalizer, qualified_name_errors(str(finalizer)))
    return causes


def _validate_namespace_field(namespace: str, namespaced: bool) -> list[Cause]:
    if not namespaced:
        return [_forbidden("metadata.namespace", "not allowed on this type")] if namespace else []
    if not namespace:
        return [_required("metadata.namespace")]
    return _invalid_each("metadata.namespace", namespace, dns1123_label_errors(namespace))


# ---------------------------------------------------------------------------------------------------------
# Pods
# ---------------------------------------------------------------------------------------------------------

_STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
_STANDARD_RESOURCES = _STANDARD_CONTAINER_RESOURCES | frozenset(
    {
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "requests.storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "services.nodeports",
        "services.loadbalancers",
    }
)
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
_HTTP_SCHEMES = ("HTTP", "HTTPS")
_PROBE_TIMINGS = ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold")
_VOLUME_SOURCES = (
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
)


def _items(value: Any) -> list[Mapping[str, Any]]:
    """List entries that are objects; malformed entries are the decoder's business, not ours."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_native_resource(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-")


def _is_extended_resource(name: str) -> bool:
    if _is_native_resource(name) or name.startswith("requests."):
        return False
    return not qualified_name_errors("requests." + name)


def _resource_name_causes(name: str, path: str) -> list[Cause]:
    causes = _invalid_each(path, name, qualified_name_errors(name))
    if causes:
        return causes
    if "/" not in name:
        if name not in _STANDARD_RESOURCES and not _is_hugepages(name):
            causes.append(_invalid(path, name, "must be a standard resource type or fully qualified"))
        if name not in _STANDARD_CONTAINER_RESOURCES and not _is_hugepages(name):
            causes.append(_invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native_resource(name) and not _is_extended_resource(name):
        causes.append(_invalid(path, name, "doesn't follow extended resource name standard"))
    return causes


def _quantity_causes(name: str, raw: Any, path: str) -> tuple[Decimal | None, list[Cause]]:
    """Parse one resource quantity; unparsable ones were already a decode error (quantity_decode_error)."""
    try:
        amount = parse_quantity(raw)
    except ValueError:
        return None, []
    causes: list[Cause] = []
    if amount < 0:
        causes.append(_invalid(path, canonical_quantity(raw), _NEGATIVE_MSG))
    if _is_extended_resource(name) and amount * 1000 % 1000:
        causes.append(_invalid(path, canonical_quantity(raw), "must be an integer"))
    return amount, causes


def _resource_list(resources: Mapping[str, Any], key: str, path: str) -> tuple[dict[str, Any], list[Cause]]:
    parsed: dict[str, Any] = {}
    causes: list[Cause] = []
    for name, raw in _mapping(resources.get(key)).items():
        item_path = f"{path}.{key}[{name}]"
        causes += _resource_name_causes(str(name), item_path)
        amount, more = _quantity_causes(str(name), raw, item_path)
        causes += more
        if amount is not None:
            parsed[str(name)] = (amount, raw)
    return parsed, causes


def validate_resource_requirements(resources: Any, path: str) -> list[Cause]:
    """Names, non-negative (integer for extended) quantities, requests <= limits (== when not overcommittable)."""
    resources = _mapping(resources)
    limits, causes = _resource_list(resources, "limits", path)
    requests, more = _resource_list(resources, "requests", path)
    causes += more
    for name, (amount, raw) in requests.items():
        overcommit = _is_native_resource(name) and not _is_hugepages(name)
        if name in limits:
            limit, limit_raw = limits[name]
            if amount != limit and not overcommit:
                detail = f"must be equal to {name} limit of {canonical_quantity(limit_raw)}"
                causes.append(_invalid(f"{path}.requests", canonical_quantity(raw), detail))
            elif amount > limit:
                detail = f"must be less than or equal to {name} limit of {canonical_quantity(limit_raw)}"
                causes.append(_invalid(f"{path}.requests", canonical_quantity(raw), detail))
        elif not overcommit:
            causes.append(_required(f"{path}.limits", "Limit must be set for non overcommitable resources"))
    return causes


def _port_num_or_name(value: Any, path: str) -> list[Cause]:
    if isinstance(value, str):
        return _invalid_each(path, value, port_name_errors(value))
    return _invalid_each(path, value, _port_num_errors(value))


def _enum(value: Any, supported: Sequence[str], path: str) -> list[Cause]:
    """Defaulted enums: absent is fine (defaulting fills it), anything else must be supported."""
    if value is None or value in supported:
        return []
    return [_not_supported(path, value, supported)]


def _container_ports(ports: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(_items(ports)):
        item = f"{path}[{i}]"
        name = port.get("name")
        if name:
            errors = port_name_errors(str(name))
            if errors:
                causes += _invalid_each(f"{item}.name", name, errors)
            elif name in names:
                causes.append(_duplicate(f"{item}.name", name))
            names.add(str(name))
        container_port = port.get("containerPort")
        if not container_port:
            causes.append(_required(f"{item}.containerPort"))
        else:
            causes += _invalid_each(f"{item}.containerPort", container_port, _port_num_errors(container_port))
        host_port = port.get("hostPort")
        if host_port:
            causes += _invalid_each(f"{item}.hostPort", host_port, _port_num_errors(host_port))
        causes += _enum(port.get("protocol"), _PROTOCOLS, f"{item}.protocol")
    return causes


def _env(env: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, var in enumerate(_items(env)):
        item = f"{path}[{i}]"
        name = str(var.get("name") or "")
        if not name:
            causes.append(_required(f"{item}.name"))
        else:
            errors = (
                []
                if _matches(_ENV_VAR_NAME_FMT, name)
                else [_regex_error(_ENV_VAR_NAME_MSG, _ENV_VAR_NAME_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1")]
            )
            causes += _invalid_each(f"{item}.name", name, errors + _chdir_prefix_errors(name))
        causes += _env_value_from(var, f"{item}.valueFrom")
    return causes


def _env_value_from(var: Mapping[str, Any], path: str) -> list[Cause]:
    source = var.get("valueFrom")
    if not isinstance(source, Mapping):
        return []
    kinds = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
    count = sum(1 for k in kinds if source.get(k) is not None)
    if count == 0:
        detail = "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"
        return [_invalid(path, "", detail)]
    if count > 1:
        detail = "may not have more than one field specified at a time"
        return [_invalid(path, "", detail)]
    if var.get("value"):
        return [_invalid(path, "", "may not be specified when `value` is not empty")]
    return []


def _volume_mounts(mounts: Any, volumes: set[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    mount_paths: set[str] = set()
    for i, mount in enumerate(_items(mounts)):
        item = f"{path}[{i}]"
        name = str(mount.get("name") or "")
        if not name:
            causes.append(_required(f"{item}.name"))
        if name not in volumes:
            causes.append(_not_found(f"{item}.name", name))
        mount_path = str(mount.get("mountPath") or "")
        if not mount_path:
            causes.append(_required(f"{item}.mountPath"))
        if mount_path in mount_paths:
            causes.append(_invalid(f"{item}.mountPath", mount_path, "must be unique"))
        mount_paths.add(mount_path)
    return causes


def _handler(handler: Mapping[str, Any], path: str, kinds: Sequence[str]) -> list[Cause]:
    present = [k for k in kinds if handler.get(k) is not None]
    if not present:
        return [_required(path, "must specify a handler type")]
    if len(present) > 1:
        return [_forbidden(f"{path}.{present[1]}", "may not specify more than 1 handler type")]
    kind, action = present[0], _mapping(handler.get(present[0]))
    sub = f"{path}.{kind}"
    if kind == "exec":
        return [] if action.get("command") else [_required(f"{sub}.command")]
    if kind in ("httpGet", "tcpSocket"):
        causes = _port_num_or_name(action.get("port"), f"{sub}.port")
        if kind == "httpGet":
            causes += _enum(action.get("scheme"), _HTTP_SCHEMES, f"{sub}.scheme")
        return causes
    if kind == "grpc":
        return _invalid_each(f"{sub}.port", action.get("port"), _port_num_errors(action.get("port")))
    return []


def _probe(probe: Any, path: str, *, single_success: bool) -> list[Cause]:
    if not isinstance(probe, Mapping):
        return []
    causes = _handler(probe, path, ("exec", "httpGet", "tcpSocket", "grpc"))
    for key in _PROBE_TIMINGS:
        value = probe.get(key)
        if _is_int(value) and value < 0:
            causes.append(_invalid(f"{path}.{key}", value, _NEGATIVE_MSG))
    success = probe.get("successThreshold")
    if single_success and _is_int(success) and success != 1:
        causes.append(_invalid(f"{path}.successThreshold", success, "must be 1"))
    return causes


def _lifecycle(lifecycle: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for hook in ("postStart", "preStop"):
        handler = _mapping(lifecycle).get(hook)
        if isinstance(handler, Mapping):
            causes += _handler(handler, f"{path}.{hook}", ("exec", "httpGet", "tcpSocket", "sleep"))
    return causes


def _container(ctr: Mapping[str, Any], volumes: set[str], path: str) -> list[Cause]:
    """validateContainerCommon plus probes: the checks every container kind shares."""
    causes: list[Cause] = []
    name = str(ctr.get("name") or "")
    if not name:
        causes.append(_required(f"{path}.name"))
    else:
        causes += _invalid_each(f"{path}.name", name, dns1123_label_errors(name))
    if not ctr.get("image"):
        causes.append(_required(f"{path}.image"))
    causes += _enum(
        ctr.get("terminationMessagePolicy"), _TERMINATION_MESSAGE_POLICIES, f"{path}.terminationMessagePolicy"
    )
    causes += _container_ports(ctr.get("ports"), f"{path}.ports")
    causes += _env(ctr.get("env"), f"{path}.env")
    causes += _volume_mounts(ctr.get("volumeMounts"), volumes, f"{path}.volumeMounts")
    causes += _enum(ctr.get("imagePullPolicy"), _PULL_POLICIES, f"{path}.imagePullPolicy")
    causes += validate_resource_requirements(ctr.get("resources"), f"{path}.resources")
    causes += _probe(ctr.get("livenessProbe"), f"{path}.livenessProbe", single_success=True)
    causes += _probe(ctr.get("readinessProbe"), f"{path}.readinessProbe", single_success=False)
    causes += _probe(ctr.get("startupProbe"), f"{path}.startupProbe", single_success=True)
    causes += _lifecycle(ctr.get("lifecycle"), f"{path}.lifecycle")
    return causes


def _volumes(volumes: Any, path: str) -> tuple[set[str], list[Cause]]:
    names: set[str] = set()
    causes: list[Cause] = []
    for i, vol in enumerate(_items(volumes)):
        item = f"{path}[{i}]"
        sources = [s for s in _VOLUME_SOURCES if vol.get(s) is not None]
        if not sources:
            causes.append(_required(item, "must specify a volume type"))
        elif len(sources) > 1:
            causes.append(_forbidden(f"{item}.{sources[1]}", "may not specify more than 1 volume type"))
        name = str(vol.get("name") or "")
        if not name:
            causes.append(_required(f"{item}.name"))
        else:
            causes += _invalid_each(f"{item}.name", name, dns1123_label_errors(name))
        if name in names:
            causes.append(_duplicate(f"{item}.name", name))
        names.add(name)
    return names, causes


def _containers(spec: Mapping[str, Any], volumes: set[str], path: str) -> list[Cause]:
    containers = spec.get("containers")
    if not containers:
        return [_required(f"{path}.containers")]
    causes: list[Cause] = []
    names: set[str] = set()
    for i, ctr in enumerate(_items(containers)):
        item = f"{path}.containers[{i}]"
        causes += _container(ctr, volumes, item)
        name = ctr.get("name")
        if name and name in names:
            causes.append(_duplicate(f"{item}.name", name))
        names.add(str(name or ""))
    for i, ctr in enumerate(_items(spec.get("initContainers"))):
        item = f"{path}.initContainers[{i}]"
        causes += _container(ctr, volumes, item)
        name = ctr.get("name")
        if name and name in names:
            causes.append(_duplicate(f"{item}.name", name))
        names.add(str(name or ""))
    return causes


def validate_pod_spec(spec: Any, path: str = "spec") -> list[Cause]:
    """The subset of ValidatePodSpec that manifests in practice trip over, in the server's order."""
    spec = _mapping(spec)
    volume_names, causes = _volumes(spec.get("volumes"), f"{path}.volumes")
    causes += _containers(spec, volume_names, path)
    causes += (
        validate_resource_requirements(spec.get("resources"), f"{path}.resources") if spec.get("resources") else []
    )
    restart = spec.get("restartPolicy")
    if restart is not None and restart not in _RESTART_POLICIES:
        causes.append(_not_supported(f"{path}.restartPolicy", restart, _RESTART_POLICIES))
    causes += validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    causes += _dns_names(spec, path)
    deadline = spec.get("activeDeadlineSeconds")
    if _is_int(deadline) and not 1 <= deadline <= 2**31 - 1:
        causes.append(
            _invalid(f"{path}.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, inclusive")
        )
    return causes


def _dns_names(spec: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for key, check in (
        ("serviceAccountName", dns1123_subdomain_errors),
        ("nodeName", dns1123_subdomain_errors),
        ("hostname", dns1123_label_errors),
        ("subdomain", dns1123_label_errors),
    ):
        value = spec.get(key)
        if value:
            causes += _invalid_each(f"{path}.{key}", value, check(str(value)))
    return causes


POD_UPDATABLE_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def validate_pod_update(spec: Any, old_spec: Any) -> list[Cause]:
    """ValidatePodUpdate: only images, a shrinking deadline, added tolerations and removed gates may change."""
    new, old = dict(_mapping(spec)), _mapping(old_spec)
    for key in ("containers", "initContainers"):
        if len(_items(new.get(key))) != len(_items(old.get(key))):
            return [_forbidden(f"spec.{key}", "pod updates may not add or remove containers")]
    causes = _deadline_update(new.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds"))
    if causes:
        return causes
    causes = _tolerations_update(new.get("tolerations"), old.get("tolerations"))
    causes += _scheduling_gates_update(new.get("schedulingGates"), old.get("schedulingGates"))
    munged = _munge_pod_spec(new, old)
    if munged != dict(old):
        diff = "\n".join(f"  {line}" for line in _spec_diff(munged, old, "spec"))
        causes.append(
            _forbidden("spec", f"pod updates may not change fields other than {POD_UPDATABLE_FIELDS}\n{diff}")
        )
    return causes


def _deadline_update(new: Any, old: Any) -> list[Cause]:
    path = "spec.activeDeadlineSeconds"
    if new is None:
        return [_invalid(path, None, "must not update from a positive integer to nil value")] if old is not None else []
    if not _is_int(new):
        return []
    if not 0 <= new <= 2**31 - 1:
        return [_invalid(path, new, "must be between 0 and 2147483647, inclusive")]
    if _is_int(old) and old < new:
        return [_invalid(path, new, "must be less than or equal to previous value")]
    return []


def _tolerations_update(new: Any, old: Any) -> list[Cause]:
    new_items, old_items = _items(new), _items(old)

    def same_but_seconds(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        strip = ("tolerationSeconds",)
        return {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}

    for toleration in old_items:
        if not any(same_but_seconds(toleration, t) for t in new_items):
            return [
                _forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds")
            ]
    return []


def _scheduling_gates_update(new: Any, old: Any) -> list[Cause]:
    old_names = {g.get("name") for g in _items(old)}
    for gate in _items(new):
        if gate.get("name") not in old_names:
            detail = f"only deletion is allowed, but found new scheduling gate '{gate.get('name')}'"
            return [_forbidden("spec.schedulingGates", detail)]
    return []


def _munge_pod_spec(new: dict[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """The new spec with every legitimately updatable field reset to its old value."""
    munged = dict(new)
    for key in ("containers", "initContainers"):
        if key in munged:
            munged[key] = [
                {**n, "image": o.get("image")} if "image" in o else {k: v for k, v in n.items() if k != "image"}
                for n, o in zip(_items(new.get(key)), _items(old.get(key)), strict=True)
            ]
    for key in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        munged.pop(key, None)
        if key in old:
            munged[key] = old[key]
    old_grace, new_grace = old.get("terminationGracePeriodSeconds"), new.get("terminationGracePeriodSeconds")
    if _is_int(old_grace) and old_grace < 0 and new_grace == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    return munged


def _spec_diff(new: Any, old: Any, path: str) -> list[str]:
    """A readable list of changed paths (the real server prints a Go cmp.Diff here)."""
    if isinstance(new, Mapping) and isinstance(old, Mapping):
        lines: list[str] = []
        for key in list(old) + [k for k in new if k not in old]:
            lines += _spec_diff(new.get(key), old.get(key), f"{path}.{key}")
        return lines
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        return [
            line for i, (n, o) in enumerate(zip(new, old, strict=True)) for line in _spec_diff(n, o, f"{path}[{i}]")
        ]
    if new == old:
        return []
    return [f"- {path}: {_render(old)}", f"+ {path}: {_render(new)}"]


def _validate_pod(obj: Obj_, old: Obj_ | None) -> list[Cause]:
    causes = validate_pod_spec(obj.get("spec"))
    if old is not None:
        causes += validate_pod_update(obj.get("spec"), old.get("spec"))
    return causes


# ---------------------------------------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_SESSION_AFFINITIES = ("ClientIP", "None")


def validate_service_spec(spec: Any, path: str = "spec") -> list[Cause]:
    spec = _mapping(spec)
    service_type = spec.get("type") or "ClusterIP"
    headless = spec.get("clusterIP") == "None"
    ports = _items(spec.get("ports"))
    causes: list[Cause] = []
    if not ports and not headless and service_type != "ExternalName":
        causes.append(_required(f"{path}.ports"))
    if service_type == "ExternalName":
        causes += _external_name(spec.get("externalName"), f"{path}.externalName")
    names: set[str] = set()
    for i, port in enumerate(ports):
        causes += _service_port(port, len(ports) > 1, names, f"{path}.ports[{i}]")
        if service_type == "ClusterIP" and port.get("nodePort"):
            causes.append(_forbidden(f"{path}.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'"))
    causes += validate_labels(spec.get("selector"), f"{path}.selector")
    causes += _enum(spec.get("sessionAffinity"), _SESSION_AFFINITIES, f"{path}.sessionAffinity")
    if service_type not in _SERVICE_TYPES:
        causes.append(_not_supported(f"{path}.type", service_type, _SERVICE_TYPES))
    return causes


def _external_name(value: Any, path: str) -> list[Cause]:
    if not value:
        return [_required(path)]
    name = str(value).removesuffix(".")
    return _invalid_each(path, value, dns1123_subdomain_errors(name))


def _service_port(port: Mapping[str, Any], require_name: bool, names: set[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    name = str(port.get("name") or "")
    if require_name and not name:
        causes.append(_required(f"{path}.name"))
    elif name:
        causes += _invalid_each(f"{path}.name", name, dns1123_label_errors(name))
        if name in names:
            causes.append(_duplicate(f"{path}.name", name))
        names.add(name)
    number = port.get("port")
    causes += _invalid_each(f"{path}.port", number if number is not None else 0, _port_num_errors(number))
    causes += _enum(port.get("protocol"), _PROTOCOLS, f"{path}.protocol")
    target = port.get("targetPort", number)
    if target is not None:
        causes += _port_num_or_name(target, f"{path}.targetPort")
    app_protocol = port.get("appProtocol")
    if app_protocol is not None:
        causes += _invalid_each(f"{path}.appProtocol", app_protocol, qualified_name_errors(str(app_protocol)))
    return causes


# ---------------------------------------------------------------------------------------------------------
# ConfigMaps and Secrets
# ---------------------------------------------------------------------------------------------------------

MAX_SECRET_SIZE = 1024 * 1024
_IMMUTABLE = "field is immutable when `immutable` is set"


def _data_keys(data: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for key in _mapping(data):
        causes += _invalid_each(f"{path}[{key}]", key, config_key_errors(str(key)))
    return causes


def _validate_config_map(obj: Obj_, old: Obj_ | None) -> list[Cause]:
    causes = _data_keys(obj.get("data"), "data")
    binary = _mapping(obj.get("binaryData"))
    for key in _mapping(obj.get("data")):
        if key in binary:
            causes.append(_invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
    causes += _data_keys(binary, "binaryData")
    return causes + _immutable_update(obj, old, ("data", "binaryData"))


def _validate_secret(obj: Obj_, old: Obj_ | None) -> list[Cause]:
    keys = {**_mapping(obj.get("data")), **_mapping(obj.get("stringData"))}
    return _data_keys(keys, "data") + _immutable_update(obj, old, ("data",))


def _immutable_update(obj: Obj_, old: Obj_ | None, fields: Sequence[str]) -> list[Cause]:
    if old is None or old.get("immutable") is not True:
        return []
    causes = [] if obj.get("immutable") is True else [_forbidden("immutable", _IMMUTABLE)]
    for key in fields:
        if (obj.get(key) or {}) != (old.get(key) or {}):
            causes.append(_forbidden(key, _IMMUTABLE))
    return causes


# ---------------------------------------------------------------------------------------------------------
# Workload controllers (apps/v1, batch/v1)
# ---------------------------------------------------------------------------------------------------------


def _nonnegative(spec: Mapping[str, Any], key: str, path: str) -> list[Cause]:
    value = spec.get(key)
    return [_invalid(f"{path}.{key}", value, _NEGATIVE_MSG)] if _is_int(value) and value < 0 else []


def _pod_template(template: Any, path: str, restart_policies: Sequence[str]) -> list[Cause]:
    """ValidatePodTemplateSpec plus the controller's restartPolicy restriction.

    Template labels are reported at `<path>.labels` (not `.metadata.labels`), as the real server does.
    """
    template = _mapping(template)
    meta = _mapping(template.get("metadata"))
    causes = validate_labels(meta.get("labels"), f"{path}.labels")
    causes += validate_annotations(meta.get("annotations"), f"{path}.annotations")
    spec = _mapping(template.get("spec"))
    causes += validate_pod_spec(spec, f"{path}.spec")
    restart = spec.get("restartPolicy")
    if restart in _RESTART_POLICIES and restart not in restart_policies:
        causes.append(_not_supported(f"{path}.spec.restartPolicy", restart, restart_policies))
    return causes


def _selector_causes(spec: Mapping[str, Any], path: str, *, kind: str) -> list[Cause]:
    """Selector required, non-empty, and matching the template's labels."""
    selector = spec.get("selector")
    causes: list[Cause] = []
    if selector is None:
        causes.append(_required(f"{path}.selector"))
    elif not (_mapping(selector).get("matchLabels") or _mapping(selector).get("matchExpressions")):
        causes.append(_invalid(f"{path}.selector", selector, f"empty selector is invalid for {kind}"))
    else:
        causes += validate_labels(_mapping(selector).get("matchLabels"), f"{path}.selector.matchLabels")
    labels = _mapping(_mapping(_mapping(spec.get("template")).get("metadata")).get("labels"))
    try:
        parsed = label_selector_from_spec(selector if isinstance(selector, Mapping) else None)
    except SelectorError:
        return [*causes, _invalid(f"{path}.selector", selector, "invalid label selector")]
    if not parsed.empty and not parsed.matches({str(k): str(v) for k, v in labels.items()}):
        message = "`selector` does not match template `labels`"
        causes.append(_invalid(f"{path}.template.metadata.labels", dict(labels) or None, message))
    return causes


def _selector_immutable(obj: Obj_, old: Obj_ | None) -> list[Cause]:
    if old is None:
        return []
    new_sel, old_sel = _mapping(obj.get("spec")).get("selector"), _mapping(old.get("spec")).get("selector")
    return [_invalid("spec.selector", new_sel, "field is immutable")] if new_sel != old_sel else []


def _replicated(kind: str) -> Any:
    """Deployment, ReplicaSet, StatefulSet and DaemonSet share the selector/template rules."""

    def validate(obj: Obj_, old: Obj_ | None) -> list[Cause]:
        spec = _mapping(obj.get("spec"))
        causes = _nonnegative(spec, "replicas", "spec")
        causes += _selector_causes(spec, "spec", kind=kind)
        causes += _pod_template(spec.get("template"), "spec.template", ("Always",))
        for key in ("minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
            causes += _nonnegative(spec, key, "spec")
        return causes + _selector_immutable(obj, old)

    return validate


def _validate_job_spec(spec: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        causes += _nonnegative(spec, key, path)
    return causes + _pod_template(spec.get("template"), f"{path}.template", ("OnFailure", "Never"))


def _job_selector(obj: Obj_) -> list[Cause]:
    """A manual selector must select the template; otherwise it must be exactly the one the server generated."""
    spec = _mapping(obj.get("spec"))
    if spec.get("manualSelector") is True:
        return _selector_causes(spec, "spec", kind="job")
    uid = _mapping(obj.get("metadata")).get("uid")
    selector = spec.get("selector")
    if uid and selector != {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}:
        return [_invalid("spec.selector", selector, "`selector` not auto-generated")]
    return []


def _validate_job(obj: Obj_, old: Obj_ | None) -> list[Cause]:
    spec = _mapping(obj.get("spec"))
    causes = _validate_job_spec(spec, "spec")
    mode = spec.get("completionMode")
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        causes.append(_not_supported("spec.completionMode", mode, ("NonIndexed", "Indexed")))
    if mode == "Indexed" and spec.get("completions") is None:
        causes.append(_required("spec.completions", "when completion mode is Indexed"))
    if old is None:
        return causes + _job_selector(obj)
    return causes + _selector_immutable(obj, old)


def _validate_cron_job(obj: Obj_, old: Obj_ | None) -> list[Cause]:
    spec = _mapping(obj.get("spec"))
    causes = [] if spec.get("schedule") else [_required("spec.schedule")]
    job_spec = _mapping(_mapping(spec.get("jobTemplate")).get("spec"))
    return causes + _validate_job_spec(job_spec, "spec.jobTemplate.spec")


# ---------------------------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------------------------

# (apiVersion, kind) -> (plural, namespaced, spec validator or None for metadata only)
_KINDS: dict[tuple[str, str], tuple[str, bool, Any]] = {
    ("v1", "Pod"): ("pods", True, _validate_pod),
    ("v1", "Service"): ("services", True, lambda obj, old: validate_service_spec(obj.get("spec"))),
    ("v1", "ConfigMap"): ("configmaps", True, _validate_config_map),
    ("v1", "Secret"): ("secrets", True, _validate_secret),
    ("v1", "Namespace"): ("namespaces", False, None),
    ("v1", "ServiceAccount"): ("serviceaccounts", True, None),
    ("v1", "Endpoints"): ("endpoints", True, None),
    ("v1", "Node"): ("nodes", False, None),
    ("v1", "Event"): ("events", True, None),
    ("events.k8s.io/v1", "Event"): ("events", True, None),
    ("apps/v1", "Deployment"): ("deployments", True, _replicated("deployment")),
    ("apps/v1", "ReplicaSet"): ("replicasets", True, _replicated("deployment")),  # sic: the server says "deployment"
    ("apps/v1", "StatefulSet"): ("statefulsets", True, _replicated("statefulset")),
    ("apps/v1", "DaemonSet"): ("daemonsets", True, _replicated("daemonset")),
    ("apps/v1", "ControllerRevision"): ("controllerrevisions", True, None),
    ("batch/v1", "Job"): ("jobs", True, _validate_job),
    ("batch/v1", "CronJob"): ("cronjobs", True, _validate_cron_job),
    ("policy/v1", "PodDisruptionBudget"): ("poddisruptionbudgets", True, None),
    ("coordination.k8s.io/v1", "Lease"): ("leases", True, None),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True, None),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False, None),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True, None),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("clusterrolebindings", False, None),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networkpolicies", True, None),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("customresourcedefinitions", False, None),
}


def validate_builtin(api_version: str, kind: str, obj: Mapping, old: Mapping | None = None) -> list[Cause]:
    """All 422 causes for a built-in object: metadata first, then the kind's own rules, as the server orders them.

    Includes `validate_object_meta` (do not call both). Unknown kinds give []. `old` is the stored object
    on updates and enables the immutability rules (pod spec, selectors, immutable config maps/secrets).
    """
    entry = _KINDS.get((api_version, kind)) or _more_kinds().get((api_version, kind))
    if entry is None or not isinstance(obj, Mapping):
        return []
    plural, namespaced, validator = entry
    group = api_version.rpartition("/")[0]
    causes = validate_object_meta(obj, namespaced=namespaced, name_rule=name_rule_for(group, plural))
    if validator is not None:
        causes += validator(obj, old)
    return causes


@functools.cache
def _more_kinds() -> dict[tuple[str, str], tuple[str, bool, Any]]:
    """The cluster-infrastructure kinds' rules (validation_kinds.py), built from the helpers in this module."""
    from localkube.apiserver import validation_kinds

    return validation_kinds.KINDS
