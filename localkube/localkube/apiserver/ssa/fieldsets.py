"""Field sets, merging, comparing and removing, driven by a `Schema` (structured-merge-diff's typed package)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from localkube.apiserver.ssa.errors import SchemaError, internal_error
from localkube.apiserver.ssa.fieldpath import Path, PathElement, path_trie
from localkube.apiserver.ssa.typed import (
    MISSING,
    NULLED,
    Schema,
    builtin_schema,
    check_value,
    child_schema,
    is_atomic,
    item_pe,
    item_schema,
    value_shape,
)

# ------------------------------------------------------------------------------------------- field sets


def collect_fields(v: Any, s: Schema, path: Path, out: set[Path]) -> None:
    shape = value_shape(s, v)
    if shape == "scalar" or is_atomic(s, shape):
        out.add(path)
        return
    if shape == "list":
        element = item_schema(s)
        pes = [item_pe(s, item) for item in v]
        counts = Counter(pes)
        for pe, item in zip(pes, v, strict=True):
            item_path = (*path, pe)
            if counts[pe] == 1:  # duplicates (only ever in live objects) are owned whole, never descended
                collect_fields(item, element, item_path, out)
            out.add(item_path)
        return
    for key, val in v.items():
        sub, declared = child_schema(s, key)
        key_path = (*path, ("f", key))
        collect_fields(val, sub, key_path, out)
        if val is None or val is NULLED or (isinstance(val, dict) and not val) or not declared:
            out.add(key_path)


def field_set(obj: Mapping[str, Any], schema: Schema | None = None) -> set[Path]:
    """The fields an object (typically an apply configuration) sets, as SMD's ToFieldSet computes them.

    Leaves, atomic lists/maps, list items and map entries are members; struct fields are implied by their
    children. Raises ApplyError(500) for objects that violate the schema (duplicate list keys and the like).
    """
    schema = schema or builtin_schema(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    try:
        check_value(obj, schema, (), allow_duplicates=True)
    except SchemaError as err:
        raise internal_error(str(err)) from None
    out: set[Path] = set()
    collect_fields(dict(obj), schema, (), out)
    out.discard(())
    return out


def ensure_named(paths: Iterable[Path], schema: Schema) -> set[Path]:
    """EnsureNamedFieldsAreMembers: also own the struct fields on the way to owned paths, so removing the last
    owned leaf under a struct removes the struct."""
    out = set(paths)
    for path in list(out):
        s = schema
        for i in range(len(path) - 1):
            kind, data = path[i]
            if kind == "f":
                sub, declared = child_schema(s, data)
                if declared:
                    out.add(path[: i + 1])
                s = sub
            else:
                s = item_schema(s)
    return out


# ------------------------------------------------------------------------------------------- equality


def json_eq(a: Any, b: Any) -> bool:
    """Deep JSON equality where 1 == 1.0 but True != 1 (Python's == conflates bools and ints)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(json_eq(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(json_eq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------------------------------------- merging


def merge_values(lhs: Any, rhs: Any, s: Schema) -> Any:
    """live ⊕ config: config wins on leaves and atomic nodes, granular maps and associative lists combine."""
    if rhs is MISSING:
        return lhs
    if lhs is MISSING:
        return rhs
    shape = value_shape(s, rhs)
    if shape != value_shape(s, lhs) or is_atomic(s, shape) or (not lhs and not rhs):
        return rhs
    if shape == "map":
        out = {key: merge_values(val, rhs.get(key, MISSING), child_schema(s, key)[0]) for key, val in lhs.items()}
        out.update({key: val for key, val in rhs.items() if key not in lhs})
        return out
    return _merge_list(lhs, rhs, s)


def _merge_list(lhs: list[Any], rhs: list[Any], s: Schema) -> list[Any]:
    """Merge associative lists keeping SMD's order: applied items in applied order, items only live has stay
    where they were, shared items move to where the applied list puts them."""
    element = item_schema(s)
    lpes = [item_pe(s, item) for item in lhs]
    rpes = [item_pe(s, item) for item in rhs]
    live: dict[PathElement, Any] = {}
    for pe, item in zip(lpes, lhs, strict=True):
        live[pe] = MISSING if pe in live else item  # a duplicated live item is replaced by the applied one
    applied = dict(zip(rpes, rhs, strict=True))
    shared = [pe for pe in rpes if pe in live]
    next_shared = 0
    emitted: set[PathElement] = set()
    out: list[Any] = []
    i = j = 0
    while i < len(lpes) or j < len(rpes):
        if i < len(lpes) and j < len(rpes):
            if lpes[i] == rpes[j]:
                out.append(merge_values(live[lpes[i]], rhs[j], element))
                emitted.add(lpes[i])
                i, j, next_shared = i + 1, j + 1, next_shared + 1
                continue
            if lpes[i] in applied and next_shared < len(shared) and shared[next_shared] != lpes[i]:
                i += 1  # a shared item the applied list wants later: it is emitted when we get there
                continue
        if i < len(lpes):
            if lpes[i] not in applied:
                out.append(lhs[i])
                i += 1
                continue
            if lpes[i] in emitted:
                i += 1
        if j < len(rpes):
            pe = rpes[j]
            emitted.add(pe)
            out.append(merge_values(live.get(pe, MISSING), rhs[j], element))
            j += 1
            if next_shared < len(shared) and shared[next_shared] == pe:
                next_shared += 1
    return out


# -------------------------------------------------------------------------------------------- comparing


class Diff:
    """What a comparison found: paths added, modified and removed."""

    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added, self.modified, self.removed = set(), set(), set()

    def changed(self) -> set[Path]:
        return self.added | self.modified


_CONTAINERS = (dict, list)


def _same(a: Any, b: Any) -> bool:
    """For values Python finds equal: whether they are also the same JSON, quickly in the usual cases (== takes
    True for 1 and 1 for 1.0; json_eq tells the first apart but not the second)."""
    return type(a) is type(b) and (not isinstance(a, _CONTAINERS) or repr(a) == repr(b))
_NO_SKIP: frozenset[str] = frozenset()
# Keys never owned by anyone (apimachinery strips them from every set), so never worth comparing.
_ROOT_SKIP = frozenset({"apiVersion", "kind"})
_META_SKIP = frozenset({"name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
                        "managedFields", "resourceVersion"})


def _compare(lhs: Any, rhs: Any, s: Schema, path: Path, diff: Diff, skip: frozenset[str] = _NO_SKIP) -> None:
    """SMD's Compare: leaves that changed are modified; whole nodes that appear or vanish are added/removed
    together with everything under them (which is what strips fields from other managers' sets). Keys in `skip`
    (at this level) are not compared. Written for speed: every write of every object runs it."""
    lt = type(lhs)
    if lt is type(rhs) and (lt is dict or lt is list) and not skip and lhs == rhs and repr(lhs) == repr(rhs):
        return  # identical (repr also tells True from 1 and 1.0 from 1, which == does not): nothing to record
    v = lhs if rhs is MISSING else rhs
    kind = s.kind
    if isinstance(v, dict) and (kind == "any" or (kind == "map" and s.map_type != "atomic")):
        walk = "map" if lhs is MISSING or isinstance(lhs, dict) else ""
    elif isinstance(v, list) and kind == "list" and s.list_type != "atomic":
        walk = "list" if lhs is MISSING or isinstance(lhs, list) else ""
    else:
        walk = ""  # a scalar, an atomic node, or a value that does not fit its schema
    if not walk or ((lhs is MISSING or not lhs) and (rhs is MISSING or not rhs)):
        if lhs is MISSING:
            diff.added.add(path)
        elif rhs is MISSING:
            diff.removed.add(path)
        elif lhs != rhs or (not _same(lhs, rhs) and not json_eq(lhs, rhs)):
            diff.modified.add(path)
            check_value(rhs, s, path, allow_duplicates=True)  # a container replacing a scalar, or the reverse
        return
    if walk == "map":
        left = lhs if lhs is not MISSING else {}
        right = rhs if rhs is not MISSING else {}
        keys = left.keys() | right.keys()
        for key in keys - skip if skip else keys:
            lv, rv = left.get(key, MISSING), right.get(key, MISSING)
            if not isinstance(lv, _CONTAINERS) and not isinstance(rv, _CONTAINERS):
                # Scalars (the bulk of any object) are leaves whatever their schema: decided here, without a call.
                if lv is MISSING:
                    diff.added.add((*path, ("f", key)))
                elif rv is MISSING:
                    diff.removed.add((*path, ("f", key)))
                elif lv != rv or (type(lv) is not type(rv) and not json_eq(lv, rv)):
                    diff.modified.add((*path, ("f", key)))
                continue
            child_skip = _META_SKIP if key == "metadata" and not path else _NO_SKIP
            _compare(lv, rv, child_schema(s, key)[0], (*path, ("f", key)), diff, child_skip)
    else:
        _compare_list(lhs if lhs is not MISSING else [], rhs if rhs is not MISSING else [], s, path, diff)
    if path and lhs is MISSING:
        diff.added.add(path)
    elif path and rhs is MISSING:
        diff.removed.add(path)


def _compare_list(lhs: list[Any], rhs: list[Any], s: Schema, path: Path, diff: Diff) -> None:
    element = item_schema(s)
    lone_left = {item_pe(s, item): item for item in lhs}
    lone_right = {item_pe(s, item): item for item in rhs}
    if len(lone_left) == len(lhs) and len(lone_right) == len(rhs):  # no key twice: the usual case
        for pe in lone_left.keys() | lone_right.keys():
            _compare(lone_left.get(pe, MISSING), lone_right.get(pe, MISSING), element, (*path, pe), diff)
        return
    left: dict[PathElement, list[Any]] = {}
    right: dict[PathElement, list[Any]] = {}
    for item in lhs:
        left.setdefault(item_pe(s, item), []).append(item)
    for item in rhs:
        right.setdefault(item_pe(s, item), []).append(item)
    for pe in {**left, **right}:
        ls, rs = left.get(pe, []), right.get(pe, [])
        item_path = (*path, pe)
        if len(ls) <= 1 and len(rs) <= 1:
            _compare(ls[0] if ls else MISSING, rs[0] if rs else MISSING, element, item_path, diff)
        elif len(ls) >= 2 and len(rs) >= 2:
            if len(ls) != len(rs) or not all(json_eq(a, b) for a, b in zip(ls, rs, strict=True)):
                diff.modified.add(item_path)
                for item in rs:  # duplicates are not descended into, but must be well-formed
                    check_value(item, element, item_path, allow_duplicates=True)
        elif len(ls) >= 2:
            if rs:
                _compare(MISSING, rs[0], element, item_path, diff)
            diff.removed.add(item_path)
        else:
            for item in rs:
                check_value(item, element, item_path, allow_duplicates=True)
            if ls:
                _compare(ls[0], MISSING, element, item_path, diff)
            diff.added.add(item_path)


def visible(paths: set[Path], reset: tuple[PathElement, ...]) -> set[Path]:
    return {p for p in paths if not (p and p[0] in reset)} if reset else paths


def compare_objects(old: Any, new: Any, s: Schema, reset: tuple[PathElement, ...]) -> Diff:
    """Compare two objects, leaving out the top-level fields in `reset` (nobody owns them through this endpoint)
    and the identity fields nobody ever owns. The top two levels are walked here: most writes change little
    below them, and metadata is mostly identity."""
    diff = Diff()
    if not isinstance(old, dict) or not isinstance(new, dict):
        _compare(old, new, s, (), diff)
        return diff
    skip = _ROOT_SKIP.union(data for _, data in reset) if reset else _ROOT_SKIP
    for key in (old.keys() | new.keys()) - skip:
        lv, rv = old.get(key, MISSING), new.get(key, MISSING)
        sub = s.fields.get(key) or child_schema(s, key)[0]
        if key == "metadata" and type(lv) is dict and type(rv) is dict:
            for meta_key in (lv.keys() | rv.keys()) - _META_SKIP:
                _compare(lv.get(meta_key, MISSING), rv.get(meta_key, MISSING), child_schema(sub, meta_key)[0],
                         (("f", "metadata"), ("f", meta_key)), diff)
        else:
            _compare(lv, rv, sub, (("f", key),), diff)
    return diff


# --------------------------------------------------------------------------------------------- removing


def _remove(v: Any, s: Schema, trie: dict[PathElement, list[Any]]) -> Any:
    """Drop the owned paths in `trie` from a value; a granular node emptied this way becomes NULLED."""
    shape = value_shape(s, v)
    if shape == "scalar" or is_atomic(s, shape) or not v:
        return v
    if shape == "map":
        out: dict[str, Any] = {}
        for key, val in v.items():
            entry = trie.get(("f", key))
            if entry is None:
                out[key] = val
            elif not entry[0]:
                out[key] = _remove(val, child_schema(s, key)[0], entry[1]) if entry[1] else val
        return out if out else NULLED
    items: list[Any] = []
    element = item_schema(s)
    for item in v:
        entry = trie.get(item_pe(s, item))
        if entry is None:
            items.append(item)
        elif not entry[0]:
            kept = _remove(item, element, entry[1]) if entry[1] else item
            if kept is not NULLED:
                items.append(kept)
    return items if items else NULLED


def remove_paths(v: dict[str, Any], paths: set[Path], s: Schema) -> dict[str, Any]:
    out = _remove(v, s, path_trie(paths)) if paths else v
    return {} if out is NULLED else out


def drop_nulled(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: drop_nulled(x) for k, x in v.items() if x is not NULLED}
    if isinstance(v, list):
        return [drop_nulled(x) for x in v if x is not NULLED]
    return v


def owned_fields(v: dict[str, Any], s: Schema) -> set[Path]:
    out: set[Path] = set()
    collect_fields(v, s, (), out)
    out.discard(())
    return ensure_named(out, s)


def prune_applied(merged: dict[str, Any], owned_sets: Iterable[set[Path]], last: set[Path], s: Schema
                  ) -> dict[str, Any]:
    """Remove what the applier owned last time and omits now, unless someone (the applier included) still owns
    it; unowned fields under a removed struct go with it, exactly as SMD's prune/addBackOwned/addBackDangling."""
    last_owned = ensure_named(last, s)
    everything = owned_fields(merged, s)
    pruned = remove_paths(merged, last_owned, s)
    owned = ensure_named(set().union(*owned_sets), s)
    pruned = remove_paths(merged, everything - owned_fields(pruned, s) - owned, s)
    return remove_paths(merged, (everything - owned_fields(pruned, s)) & last_owned, s)


