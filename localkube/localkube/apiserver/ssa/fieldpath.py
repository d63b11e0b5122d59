"""Field paths and their text forms: the FieldsV1 wire format, conflict-message rendering, Go-compatible JSON.

A path is a tuple of path elements, small tuples so that they hash and sort cheaply: ``("f", name)`` a struct
field or map key, ``("k", ((field, json), ...))`` an item of a list-type map (key fields sorted by name, values
as JSON text), ``("v", json)`` an item of a list-type set and ``("i", index)`` a list index (only ever read from
the wire; LocalKube never owns by index).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from localkube.apiserver.validation import go_quote  # Go's %q, as the server quotes names and keys

PathElement = tuple[str, Any]
Path = tuple[PathElement, ...]


# ------------------------------------------------------------------------------------ Go-compatible text


def _norm(v: Any) -> Any:
    """Integral floats become ints: Go decodes `80.0` and `80` to values that compare equal and print `80`."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**63:
        return int(v)
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def go_json(v: Any) -> str:
    """JSON as Go's encoder writes it (compact, sorted map keys, HTML-escaped), so keys match the wire byte-wise."""
    if type(v) is str:  # list keys: names, types, addresses, written over and over
        text = _STRING_JSON.get(v)
        if text is None:
            if len(_STRING_JSON) >= 16384:
                _STRING_JSON.clear()
            text = _STRING_JSON[v] = _go_json(v)
        return text
    if isinstance(v, str | int | float | bool) or v is None:
        return _go_json_scalar(v)
    return _go_json(v)


_STRING_JSON: dict[str, str] = {}


@lru_cache(maxsize=16384, typed=True)  # typed: True, 1 and 1.0 are three keys
def _go_json_scalar(v: str | float | bool | None) -> str:
    """List keys are mostly the same few names and numbers, written over and over."""
    return _go_json(v)


def _go_json(v: Any) -> str:
    text = json.dumps(_norm(v), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                     ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return text


def _go_float(f: float) -> str:
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f.is_integer() and abs(f) < 1e21:
        return str(int(f))
    return repr(f)


def go_string(v: Any) -> str:
    """structured-merge-diff's value.ToString, used inside rendered paths such as `[name="nginx"]`."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, list):
        return "[" + ",".join(go_string(x) for x in v) + "]"
    if isinstance(v, dict):
        return "".join(f"{k}={go_string(v[k])}" for k in sorted(v))
    return str(v)


# ------------------------------------------------------------------------------------------ path elements


def _value_order(v: Any) -> tuple[Any, ...]:
    """structured-merge-diff's total order: numbers < strings < bools < lists < maps < null."""
    if isinstance(v, bool):
        return (2, v)
    if isinstance(v, int | float):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    if isinstance(v, list):
        return (3, tuple(_value_order(x) for x in v))
    if isinstance(v, dict):
        return (4, tuple((k, _value_order(v[k])) for k in sorted(v)))
    return (5,)


@lru_cache(maxsize=65536)
def pe_order(pe: PathElement) -> tuple[Any, ...]:
    """Sort key matching PathElement.Compare: fields, then keys, then values, then indexes."""
    kind, data = pe
    if kind == "f":
        return (0, data)
    if kind == "k":
        return (1, tuple((name, _value_order(json.loads(val))) for name, val in data))
    if kind == "v":
        return (2, _value_order(json.loads(data)))
    return (3, data)


def _pe_wire(pe: PathElement) -> str:
    kind, data = pe
    if kind == "f":
        return "f:" + data
    if kind == "k":
        return "k:{" + ",".join(f"{go_json(name)}:{val}" for name, val in data) + "}"
    if kind == "v":
        return "v:" + data
    return f"i:{data}"


def _pe_parse(text: str) -> PathElement:
    if len(text) < 2 or text[1] != ":":
        raise ValueError(f"malformed path element {text!r}")
    kind, rest = text[0], text[2:]
    if kind == "f":
        return ("f", rest)
    if kind == "v":
        return ("v", go_json(json.loads(rest)))
    if kind == "k":
        key = json.loads(rest)
        if not isinstance(key, dict):
            raise ValueError(f"malformed key path element {text!r}")
        return ("k", tuple(sorted((name, go_json(val)) for name, val in key.items())))
    if kind == "i":
        return ("i", int(rest))
    raise ValueError(f"unknown path element type in {text!r}")


def pe_string(pe: PathElement) -> str:
    kind, data = pe
    if kind == "f":
        return "." + data
    if kind == "k":
        return "[" + ",".join(f"{name}={go_string(json.loads(val))}" for name, val in data) + "]"
    if kind == "v":
        return f"[={go_string(json.loads(data))}]"
    return f"[{data}]"


def path_string(path: Path) -> str:
    """Render a path the way conflict messages do, e.g. `.spec.template.spec.containers[name="nginx"].image`."""
    return "".join(pe_string(pe) for pe in path)


def path_trie(paths: Iterable[Path]) -> dict[PathElement, list[Any]]:
    """Nest paths into {element: [is_member, children]}, the shape both FieldsV1 and removal walk."""
    root: dict[PathElement, list[Any]] = {}
    for path in paths:
        node = root
        for i, pe in enumerate(path):
            entry = node.setdefault(pe, [False, {}])
            if i == len(path) - 1:
                entry[0] = True
            node = entry[1]
    return root


def fields_to_json(paths: Iterable[Path]) -> dict[str, Any]:
    """Encode a field set as `fieldsV1`: sorted like the server, `.: {}` marking a node that is itself owned."""

    def emit(node: dict[PathElement, list[Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pe in sorted(node, key=pe_order):
            member, children = node[pe]
            if children:
                sub: dict[str, Any] = {".": {}} if member else {}
                sub.update(emit(children))
                out[_pe_wire(pe)] = sub
            else:
                out[_pe_wire(pe)] = {}
        return out

    return emit(path_trie(paths))


def fields_from_json(fields: Mapping[str, Any]) -> set[Path]:
    """Decode `fieldsV1`; raises ValueError on anything the server would refuse to decode."""
    out: set[Path] = set()

    def walk(node: Any, prefix: Path) -> None:
        if not isinstance(node, Mapping):
            raise ValueError(f"expected an object at {path_string(prefix) or 'the root'}")
        for key, sub in node.items():
            if key == ".":
                continue
            path = (*prefix, _pe_parse(key))
            if not isinstance(sub, Mapping):
                raise ValueError(f"expected an object at {path_string(path)}")
            if not sub or "." in sub:
                out.add(path)
            walk(sub, path)

    walk(fields, ())
    return out


def iteration_order(paths: Iterable[Path]) -> list[Path]:
    """Set.Iterate's order (members of a node before its children's), which orders conflicts in messages."""
    out: list[Path] = []

    def walk(node: dict[PathElement, list[Any]], prefix: Path) -> None:
        ordered = sorted(node, key=pe_order)
        out.extend((*prefix, pe) for pe in ordered if node[pe][0])
        for pe in ordered:
            if node[pe][1]:
                walk(node[pe][1], (*prefix, pe))

    walk(path_trie(paths), ())
    return out


