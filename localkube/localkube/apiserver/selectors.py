"""Label and field selectors with the syntax, semantics and error texts of a real API server.

Clients (kubectl, kr8s, kopf) send selectors as query strings; what they can observe is which
objects match and the 400 message for bad input, so both follow the Kubernetes apimachinery rules.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "label_selector_from_map",
    "label_selector_from_spec",
    "label_selector_to_string",
    "parse_field_selector",
    "parse_label_selector",
    "supported_field_labels",
]


class SelectorError(ValueError):
    """Bad selector syntax or unsupported field; the server answers 400 BadRequest with str(err) as message."""


# --------------------------------------------------------------------------- validation


_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RE = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
_LABEL_VALUE_FMT = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    """The validation message layout of apimachinery (including its double space before 'or')."""
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _qualified_name_errors(key: str) -> list[str]:
    parts = key.split("/")
    errors: list[str] = []
    if len(parts) > 2:
        example = _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        return [
            f"a qualified name {example} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errors.append("prefix part must be no more than 253 characters")
            if not _DNS1123_SUBDOMAIN_RE.match(prefix):
                example = _regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com")
                errors.append(f"prefix part {example}")
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if not _QUALIFIED_NAME_RE.match(name):
        example = _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        errors.append(f"name part {example}")
    return errors


def _label_value_errors(value: str) -> list[str]:
    errors: list[str] = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_VALUE_RE.match(value):
        errors.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def _invalid(path: str, value: str, errors: list[str]) -> SelectorError:
    """A field.Invalid error as apimachinery renders it (a nil path prints as `<nil>`)."""
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return SelectorError(f"{path}: Invalid value: {quoted}: {'; '.join(errors)}")


# --------------------------------------------------------------------------- label selectors


_OPS = ("=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt")
_OP_SYMBOL = {"=": "=", "==": "==", "!=": "!=", "gt": ">", "lt": "<"}


@dataclass(frozen=True)
class Requirement:
    """One ANDed term of a label selector; `values` is sorted like the Go string set."""

    key: str
    operator: str  # one of _OPS; "!" means does-not-exist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Apply the term; negative operators also match objects lacking the key, as Kubernetes does."""
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("!=", "notin"):
            return not present or labels[self.key] not in self.values
        if not present:
            return False
        if self.operator in ("gt", "lt"):
            return _compare_int(labels[self.key], self.values[0], self.operator)
        return labels[self.key] in self.values

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{_OP_SYMBOL[self.operator]}{self.values[0]}"


def _compare_int(label: str, bound: str, operator: str) -> bool:
    try:
        have = int(label)
    except ValueError:
        return False
    return have > int(bound) if operator == "gt" else have < int(bound)


def _new_requirement(key: str, operator: str, values: Collection[str]) -> Requirement:
    """Validate like labels.NewRequirement, so bad keys and values get the server's messages."""
    errors = _qualified_name_errors(key)
    if errors:
        raise _invalid("key", key, errors)
    unique = tuple(sorted(set(values)))
    if operator in ("in", "notin") and not unique:
        raise SelectorError("values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty")
    if operator in ("=", "==", "!=") and len(unique) != 1:
        raise SelectorError("values: Invalid value: []: exact-match compatibility requires one single value")
    if operator in ("exists", "!") and unique:
        raise SelectorError("values: Invalid value: []: values set must be empty for exists and does not exist")
    if operator in ("gt", "lt"):
        if len(unique) != 1:
            raise SelectorError("values: Invalid value: []: for 'Gt', 'Lt' operators, exactly one value is required")
        if not re.fullmatch(r"[+-]?\d+", unique[0]):
            raise SelectorError(
                f"values[0]: Invalid value: \"{unique[0]}\": for 'Gt', 'Lt' operators, the value must be an integer"
            )
    for i, value in enumerate(unique):
        errors = _label_value_errors(value)
        if errors:
            raise _invalid(f"values[{i}][{key}]", value, errors)
    return Requirement(key, operator, unique)


class LabelSelector:
    """An immutable AND of requirements; `nothing` selectors (nil metav1 selectors) match no object."""

    __slots__ = ("_nothing", "_requirements")

    def __init__(self, requirements: Sequence[Requirement] = (), *, nothing: bool = False) -> None:
        self._requirements = tuple(sorted(requirements, key=lambda r: r.key))
        self._nothing = nothing

    @property
    def requirements(self) -> tuple[Requirement, ...]:
        return self._requirements

    @property
    def empty(self) -> bool:
        """True when the selector matches everything (Kubernetes' Selector.Empty)."""
        return not self._nothing and not self._requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self._nothing:
            return False
        have = labels or {}
        return all(r.matches(have) for r in self._requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self._requirements)

    def __repr__(self) -> str:
        if self._nothing:
            return "LabelSelector(<nothing>)"
        return f"LabelSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return (self._nothing, self._requirements) == (other._nothing, other._requirements)

    def __hash__(self) -> int:
        return hash((self._nothing, self._requirements))


_EVERYTHING = LabelSelector()
_NOTHING = LabelSelector(nothing=True)

_SYMBOLS = ("!=", "==", "=", "!", "(", ")", ",", ">", "<")
_SPECIAL_CHARS = frozenset("!=(),><")


def _tokenize(text: str) -> list[tuple[str, str]]:
    """Split into (kind, literal); kind is 'id', a symbol, 'in', 'notin' or 'end'."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in _SPECIAL_CHARS:
            symbol = next(s for s in _SYMBOLS if text.startswith(s, i))
            tokens.append((symbol, symbol))
            i += len(symbol)
            continue
        start = i
        while i < len(text) and not text[i].isspace() and text[i] not in _SPECIAL_CHARS:
            i += 1
        word = text[start:i]
        tokens.append((word if word in ("in", "notin") else "id", word))
    tokens.append(("end", ""))
    return tokens


class _LabelParser:
    """Recursive-descent parser following the grammar (and error texts) of apimachinery's labels.Parse."""

    def __init__(self, text: str) -> None:
        self._tokens = _tokenize(text)
        self._pos = 0

    def _peek(self, values: bool = True) -> tuple[str, str]:
        kind, lit = self._tokens[self._pos]
        if values and kind in ("in", "notin"):
            kind = "id"  # keywords are ordinary identifiers in value position
        return kind, lit

    def _next(self, values: bool = True) -> tuple[str, str]:
        token = self._peek(values)
        self._pos = min(self._pos + 1, len(self._tokens) - 1)
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, lit = self._peek()
            if kind == "end":
                return requirements
            if kind not in ("id", "!"):
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except SelectorError as err:
                raise SelectorError(f"unable to parse requirement: {err}") from None
            kind, lit = self._next()
            if kind == "end":
                return requirements
            if kind != ",":
                raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            kind, lit = self._peek()
            if kind not in ("id", "!"):
                raise SelectorError(f"found '{lit}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        negated = False
        kind, lit = self._next()
        if kind == "!":
            negated = True
            kind, lit = self._next()
        if kind != "id":
            raise SelectorError(f"found '{lit}', expected: identifier")
        key = lit
        errors = _qualified_name_errors(key)
        if errors:
            raise _invalid("<nil>", key, errors)
        if negated:
            # `!key` takes no operator; anything after it is reported by the caller.
            return _new_requirement(key, "!", ())
        if self._peek()[0] in ("end", ","):
            return _new_requirement(key, "exists", ())
        operator = self._operator()
        values = self._value_set() if operator in ("in", "notin") else self._exact_value()
        return _new_requirement(key, operator, values)

    def _operator(self) -> str:
        kind, lit = self._next(values=False)
        mapping = {"in": "in", "notin": "notin", "=": "=", "==": "==", "!=": "!=", ">": "gt", "<": "lt"}
        if kind not in mapping:
            raise SelectorError(f"found '{lit}', expected: in, notin, =, ==, !=, gt, lt")
        return mapping[kind]

    def _exact_value(self) -> set[str]:
        kind, lit = self._peek()
        if kind in ("end", ","):
            return {""}
        kind, lit = self._next()
        if kind != "id":
            raise SelectorError(f"found '{lit}', expected: identifier")
        return {lit}

    def _value_set(self) -> set[str]:
        kind, lit = self._next()
        if kind != "(":
            raise SelectorError(f"found '{lit}' expected: '('")
        kind, lit = self._peek()
        if kind == ")":
            self._next()
            return {""}
        if kind not in ("id", ","):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self._identifier_list()
        kind, _ = self._next()
        if kind != ")":
            raise SelectorError(f"found '{lit}', expected: ')'")
        return values

    def _identifier_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            kind, lit = self._next()
            if kind == "id":
                values.add(lit)
                kind2, lit2 = self._peek()
                if kind2 == ",":
                    continue
                if kind2 == ")":
                    return values
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if kind != ",":
                raise SelectorError(f"found '{lit}', expected: ',', or identifier")
            # Empty items between commas stand for the empty value, as in Kubernetes.
            if not values:
                values.add("")
            kind2, _ = self._peek()
            if kind2 == ")":
                values.add("")
                return values
            if kind2 == ",":
                self._next()
                values.add("")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the string form (`?labelSelector=`); empty or None selects everything."""
    if not text or not text.strip():
        return _EVERYTHING
    return LabelSelector(_LabelParser(text).parse())


_SPEC_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def label_selector_from_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a metav1.LabelSelector: nil matches nothing, an empty selector matches everything."""
    if spec is None:
        return _NOTHING
    match_labels = spec.get("matchLabels") or {}
    expressions = spec.get("matchExpressions") or []
    requirements = [_new_requirement(str(k), "=", [str(v)]) for k, v in match_labels.items()]
    for expr in expressions:
        operator = expr.get("operator")
        if operator not in _SPEC_OPERATORS:
            raise SelectorError(f'"{operator}" is not a valid label selector operator')
        values = [str(v) for v in expr.get("values") or []]
        requirements.append(_new_requirement(str(expr.get("key", "")), _SPEC_OPERATORS[operator], values))
    return LabelSelector(requirements)


def label_selector_from_map(labels: Mapping[str, str] | None) -> LabelSelector:
    """Service-style selector map; an empty or missing map selects nothing (a Service without selector)."""
    if not labels:
        return _NOTHING
    return LabelSelector([_new_requirement(str(k), "=", [str(v)]) for k, v in labels.items()])


def label_selector_to_string(spec_or_map: Mapping[str, Any] | None) -> str:
    """Canonical string (sorted by key), as published in Scale.status.selector."""
    if not spec_or_map:
        return ""
    if "matchLabels" in spec_or_map or "matchExpressions" in spec_or_map:
        return str(label_selector_from_spec(spec_or_map))
    return str(label_selector_from_map(spec_or_map))


# --------------------------------------------------------------------------- field selectors


@dataclass(frozen=True)
class _FieldLabel:
    """Where a selectable field lives in the object and what the server reports when it is unset."""

    path: tuple[str, ...] | None  # None: accepted by the server but never populated (always "")
    default: str = ""


_META_FIELDS: dict[str, _FieldLabel] = {
    "metadata.name": _FieldLabel(("metadata", "name")),
    "metadata.namespace": _FieldLabel(("metadata", "namespace")),
}


def _paths(*labels: str) -> dict[str, _FieldLabel]:
    return {label: _FieldLabel(tuple(label.split("."))) for label in labels}


_POD_FIELDS = {
    **_paths(
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "spec.hostNetwork": _FieldLabel(("spec", "hostNetwork"), "false"),
    # Accepted by the v1 field label conversion but absent from the pod's selectable field set.
    "status.podIPs": _FieldLabel(None),
}

_CORE_EVENT_FIELDS = {
    **_paths(
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "type",
    ),
    "source": _FieldLabel(("source", "component")),
}

_EVENTS_K8S_IO_FIELDS = _paths(
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "type",
    "reportingController",
)

_KIND_FIELDS: dict[tuple[str, str], dict[str, _FieldLabel]] = {
    ("", "pods"): _POD_FIELDS,
    ("", "events"): _CORE_EVENT_FIELDS,
    ("events.k8s.io", "events"): _EVENTS_K8S_IO_FIELDS,
    ("", "nodes"): {"spec.unschedulable": _FieldLabel(("spec", "unschedulable"), "false")},
    ("", "namespaces"): _paths("status.phase"),
    ("", "secrets"): _paths("type"),
    ("apps", "replicasets"): {"status.replicas": _FieldLabel(("status", "replicas"), "0")},
    ("", "services"): _paths("spec.clusterIP", "spec.type"),
    # The label says "successful" but the value is Job.status.succeeded.
    ("batch", "jobs"): {"status.successful": _FieldLabel(("status", "succeeded"), "0")},
    ("certificates.k8s.io", "certificatesigningrequests"): _paths("spec.signerName"),
}

# Old clients may still send these names; the server rewrites them before matching.
_FIELD_ALIASES: dict[tuple[str, str], dict[str, str]] = {("", "pods"): {"spec.host": "spec.nodeName"}}


def supported_field_labels(group: str, plural: str) -> frozenset[str]:
    """The field labels a 1.32 server accepts for a resource (metadata.* for every kind)."""
    extra = _KIND_FIELDS.get((group, plural), {})
    aliases = _FIELD_ALIASES.get((group, plural), {})
    return frozenset(_META_FIELDS) | frozenset(extra) | frozenset(aliases)


def _field_label(label: str) -> _FieldLabel:
    for table in (_META_FIELDS, *_KIND_FIELDS.values()):
        if label in table:
            return table[label]
    # Custom resource selectableFields: a dotted JSON path.
    return _FieldLabel(tuple(label.split(".")))


def _stringify(value: Any, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _field_value(obj: Mapping[str, Any], field: _FieldLabel) -> str:
    if field.path is None:
        return ""
    current: Any = obj
    for part in field.path:
        if not isinstance(current, Mapping):
            return field.default
        current = current.get(part)
    if isinstance(current, Mapping | list):
        return field.default
    return _stringify(current, field.default)


@dataclass(frozen=True)
class FieldTerm:
    """One `field=value` or `field!=value` term; `value` is unescaped."""

    field: str
    value: str
    negated: bool = False

    def matches(self, obj: Mapping[str, Any]) -> bool:
        equal = _field_value(obj, _field_label(self.field)) == self.value
        return not equal if self.negated else equal


class FieldSelector:
    """An AND of field terms, evaluated against the object's selectable fields."""

    __slots__ = ("_terms",)

    def __init__(self, terms: Sequence[FieldTerm] = ()) -> None:
        self._terms = tuple(terms)

    @property
    def terms(self) -> tuple[FieldTerm, ...]:
        return self._terms

    @property
    def empty(self) -> bool:
        return not self._terms

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(term.matches(obj) for term in self._terms)

    def exact_value(self, field: str) -> str | None:
        """The value required by a positive `field=value` term, letting the server narrow a lookup."""
        for term in self._terms:
            if term.field == field and not term.negated:
                return term.value
        return None

    def __repr__(self) -> str:
        body = ",".join(f"{t.field}{'!=' if t.negated else '='}{t.value}" for t in self._terms)
        return f"FieldSelector({body!r})"


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped by a backslash."""
    terms: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == ",":
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def _unescape(value: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {ch}")
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(
    text: str | None, supported: Collection[str], aliases: Mapping[str, str] | None = None
) -> FieldSelector:
    """Parse `?fieldSelector=`; empty terms are skipped (kr8s sends a trailing comma).

    `aliases` maps legacy labels to current ones (e.g. pods' `spec.host`); by default the
    built-in aliases of every resource apply to labels present in `supported`.
    """
    if not text:
        return FieldSelector()
    rename = dict(aliases) if aliases is not None else _default_aliases(supported)
    terms: list[FieldTerm] = []
    for part in sorted(_split_terms(text)):
        if part == "":
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, raw = split
        value = _unescape(raw)
        if field not in supported:
            raise SelectorError(f"field label not supported: {field}")
        terms.append(FieldTerm(rename.get(field, field), value, negated=op == "!="))
    return FieldSelector(terms)


def _default_aliases(supported: Collection[str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for table in _FIELD_ALIASES.values():
        merged.update({old: new for old, new in table.items() if old in supported})
    return merged
