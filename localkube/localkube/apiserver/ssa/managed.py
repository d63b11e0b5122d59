"""`metadata.managedFields`: entries, their order and the bookkeeping every non-apply write leaves behind."""

from __future__ import annotations

import copy
import datetime as dt
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from localkube.apiserver.ssa.errors import ApplyError, SchemaError
from localkube.apiserver.ssa.fieldpath import Path, PathElement, fields_from_json, fields_to_json, go_json, go_quote
from localkube.apiserver.ssa.fieldsets import Diff, compare_objects
from localkube.apiserver.ssa.typed import Schema, builtin_schema

MAX_UPDATE_MANAGERS = 10  # apimachinery's DefaultMaxUpdateManagers; older Update entries fold into one
FIELD_MANAGER_MAX_LENGTH = 128  # bytes, as apimachinery validates it
ANCIENT_CHANGES = "ancient-changes"
BEFORE_FIRST_APPLY = "before-first-apply"

# Paths the server never records as owned (apimachinery's strip set). Exact paths only: `f:metadata` keeps
# its children such as labels, it merely is not owned as a node itself.
STRIPPED: frozenset[Path] = frozenset(
    {(("f", "apiVersion"),), (("f", "kind"),), (("f", "metadata"),)}
    | {
        (("f", "metadata"), ("f", name))
        for name in (
            "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
            "managedFields", "resourceVersion",
        )
    }
)
# ------------------------------------------------------------------------------------- managed fields


class Entry:
    """One managedFields entry, decoded. `fields` is a frozenset once encoded or decoded (shared, interned); `source`
    is the encoded entry it came from with the fields and time it had then, so that an entry whose `fields` is
    still that very frozenset and whose time is unchanged encodes as that same dict, without any work. A plain
    class with one assignment in __init__: every write of every object makes one or two."""

    __slots__ = ("api_version", "fields", "manager", "operation", "source", "subresource", "time")

    def __init__(self, manager: str, operation: str, api_version: str, subresource: str, time: str | None,
                 fields: frozenset[Path] | set[Path],
                 source: tuple[dict[str, Any], frozenset[Path], str | None] | None = None) -> None:
        self.manager, self.operation, self.api_version, self.subresource, self.time, self.fields, self.source = (
            manager, operation, api_version, subresource, time, fields, source)

    def __repr__(self) -> str:
        return (f"Entry({self.manager!r}, {self.operation!r}, {self.api_version!r}, {self.subresource!r}, "
                f"{self.time!r}, {len(self.fields)} fields)")


@lru_cache(maxsize=1024)
def manager_identity(manager: str, operation: str, api_version: str, subresource: str) -> str:
    """apimachinery's manager identifier: appliers are one manager whatever version they apply, updaters are
    one per version. It is also the key conflicts are sorted by."""
    ident: dict[str, str] = {"manager": manager, "operation": operation}
    if operation == "Update" and api_version:
        ident["apiVersion"] = api_version
    if subresource:
        ident["subresource"] = subresource
    return "{" + ",".join(f"{go_json(k)}:{go_json(v)}" for k, v in ident.items()) + "}"


def decode_entries(entries: Any) -> dict[str, Entry]:
    """Entries by manager identity, fresh objects the caller may change; raises ValueError for what the server
    would not decode."""
    return {ident: Entry(e.manager, e.operation, e.api_version, e.subresource, e.time, e.fields, e.source)
            for ident, e in _decoded(entries).items()}


def _decoded(entries: Any, key: ObjectKey | None = None) -> dict[str, Entry]:
    """decode_entries without the copies: shared, never to be changed. The current list of object `key` (stored
    lists are never mutated) decodes once, and a list this module encoded needs no decoding at all."""
    if entries is None:
        return {}
    if key is not None:
        hit = _LAST.get(key)
        if hit is not None and hit[0] is entries:
            return hit[1]
    decoded = _decode_entries(entries)
    if key is not None:
        _remember(key, entries, decoded)
    return decoded


def _decode_entries(entries: Any) -> dict[str, Entry]:
    if not isinstance(entries, list):
        raise ValueError("managedFields must be a list")
    managed: dict[str, Entry] = {}
    for i, raw in enumerate(entries):
        if not isinstance(raw, Mapping):
            raise ValueError(f"managed fields entry {i} is not an object")
        operation = raw.get("operation")
        if operation not in ("Apply", "Update"):
            raise ValueError("operation must be `Apply` or `Update`")
        if not raw.get("apiVersion"):
            raise ValueError("apiVersion must not be empty")
        fields_type = raw.get("fieldsType")
        if not fields_type:
            raise ValueError(f"missing fieldsType in managed fields entry {i}")
        if fields_type != "FieldsV1":
            raise ValueError(f"invalid fieldsType {fields_type!r} in managed fields entry {i}")
        entry = Entry(
            str(raw.get("manager", "")), operation, str(raw["apiVersion"]), str(raw.get("subresource", "")),
            raw.get("time"), _decode_fields(raw.get("fieldsV1") or {}),
        )
        entry.source = (_entry_dict(entry.manager, operation, entry.api_version, entry.subresource, entry.time,
                                    _encode_fields(entry.fields)[1]), entry.fields, entry.time)
        managed[manager_identity(entry.manager, operation, entry.api_version, entry.subresource)] = entry
    return managed


# Field sets are interned: one frozenset, and one fieldsV1 dict, per distinct set, shared by every object that
# holds it (and never mutated, like them). So a set that did not change is written back as the very dict it came
# from, and that dict decodes by identity. Bounded by the number of distinct sets, not of writes.
_INTERNED: dict[frozenset[Path], tuple[frozenset[Path], dict[str, Any]]] = {}
_BY_ID: dict[int, tuple[Any, Any]] = {}  # id(interned set) -> (set, its dict); id(that dict) -> (dict, set)
_INTERNED_MAX = 8192


def _intern(fields: frozenset[Path]) -> tuple[frozenset[Path], dict[str, Any]]:
    hit = _INTERNED.get(fields)
    if hit is None:
        if len(_INTERNED) >= _INTERNED_MAX:
            _INTERNED.clear()
            _BY_ID.clear()
        raw = fields_to_json(fields)
        hit = _INTERNED[fields] = (fields, raw)
        _BY_ID[id(fields)] = hit
        _BY_ID[id(raw)] = (raw, fields)
    return hit


def _decode_fields(raw: Mapping[str, Any]) -> frozenset[Path]:
    hit = _BY_ID.get(id(raw))
    if hit is not None and hit[0] is raw:
        return hit[1]
    return _intern(frozenset(fields_from_json(raw)))[0]


def _encode_fields(fields: frozenset[Path]) -> tuple[frozenset[Path], dict[str, Any]]:
    """The interned set equal to `fields`, and its fieldsV1."""
    hit = _BY_ID.get(id(fields))
    if hit is not None and hit[0] is fields:
        return hit
    return _intern(fields)


# The decoding of each object's current managedFields list, by object: its next write starts from it instead of
# decoding (checked by the list's identity, so a stale or foreign list is simply decoded). One per object, so
# superseded decodings die young instead of piling up with the writes.
ObjectKey = tuple[str, str, str]
_LAST: OrderedDict[ObjectKey, tuple[list[Any], dict[str, Entry]]] = OrderedDict()
_LAST_MAX = 16384


def _object_key(obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind", "")), str(meta.get("namespace", "")), str(meta.get("name", ""))


def _remember(key: ObjectKey, entries: list[Any], decoded: dict[str, Entry]) -> None:
    # Each step is one atomic dict operation: LocalKubes on two threads (tests) may share this cache.
    _LAST.pop(key, None)
    _LAST[key] = (entries, decoded)
    while len(_LAST) > _LAST_MAX:
        try:
            _LAST.popitem(last=False)
        except KeyError:
            break


@lru_cache(maxsize=4096)
def _unix(stamp: str | None) -> int:
    if not stamp:
        return 0
    try:
        return int(dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def encode_entries(managed: dict[str, Entry]) -> list[dict[str, Any]]:
    """Render entries in the server's order (operation, time, manager, apiVersion, subresource)."""
    return _encode(managed)[0]


def _encode(managed: dict[str, Entry]) -> tuple[list[dict[str, Any]], dict[str, Entry]]:
    """encode_entries, and what the list decodes to."""
    ordered = [item for item in managed.items() if item[1].fields]
    if len(ordered) > 1:
        ordered.sort(key=lambda item: (item[1].operation, _unix(item[1].time), item[1].manager,
                                       item[1].api_version, item[1].subresource))
    out = []
    decoded: dict[str, Entry] = {}
    for ident, e in ordered:
        source = e.source
        if source is None or e.fields is not source[1] or e.time != source[2]:
            # A new or changed entry: never one of the shared decoded ones, so it may be completed in place.
            e.fields, raw = _encode_fields(e.fields if isinstance(e.fields, frozenset) else frozenset(e.fields))
            e.source = source = (
                _entry_dict(e.manager, e.operation, e.api_version, e.subresource, e.time, raw), e.fields, e.time)
        out.append(source[0])  # an unchanged entry is the very (immutable) dict it was decoded from
        decoded[ident] = e
    if len(out) == 1:  # the common case, and like the entry dicts the list is shared by all who hold it
        hit = _LISTS.get(id(out[0]))
        if hit is not None and hit[0] is out[0]:
            return hit[1], decoded
        if len(_LISTS) >= _RECENT_MAX:
            _LISTS.clear()
        _LISTS[id(out[0])] = (out[0], out)
    return out, decoded


# Entry dicts (and one-entry lists) written in the current second: a manager writing the same fields of many
# objects writes equal entries, and, like field sets, they are shared rather than made again.
_ENTRY_DICTS: dict[tuple[str, str, str, str, str | None, int], tuple[dict[str, Any], dict[str, Any]]] = {}
_LISTS: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
_RECENT_MAX = 1024


def _entry_dict(manager: str, operation: str, api_version: str, subresource: str, time: str | None,
                fields_v1: dict[str, Any]) -> dict[str, Any]:
    """One managedFields entry as the server writes it (its keys in this order); equal ones are shared."""
    key = (manager, operation, api_version, subresource, time, id(fields_v1))
    hit = _ENTRY_DICTS.get(key)
    if hit is not None and hit[0] is fields_v1:
        return hit[1]
    if len(_ENTRY_DICTS) >= _RECENT_MAX:
        _ENTRY_DICTS.clear()
    entry: dict[str, Any] = {"manager": manager, "operation": operation, "apiVersion": api_version}
    if time:
        entry["time"] = time
    entry["fieldsType"] = "FieldsV1"
    entry["fieldsV1"] = fields_v1
    if subresource:
        entry["subresource"] = subresource
    _ENTRY_DICTS[key] = (fields_v1, entry)
    return entry


def _cap_updaters(managed: dict[str, Entry]) -> None:
    """Fold the oldest Update entries into "ancient-changes" (one per version) beyond MAX_UPDATE_MANAGERS."""
    if len(managed) <= MAX_UPDATE_MANAGERS:
        return
    updaters = [ident for ident, e in managed.items() if e.operation == "Update"]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda ident: (_unix(managed[ident].time), ident))
    first_of_version: dict[str, str] = {}
    length = len(updaters)
    for ident in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        entry = managed[ident]
        version = entry.api_version
        bucket = manager_identity(ANCIENT_CHANGES, "Update", version, "")
        if version not in first_of_version:
            first_of_version[version] = ident
            continue
        if bucket not in managed:
            first = managed.pop(first_of_version[version])
            managed[bucket] = Entry(ANCIENT_CHANGES, "Update", version, "", first.time, first.fields)
        # New entries, never changes to existing ones: those may be shared with the decoding memo.
        managed[bucket] = Entry(ANCIENT_CHANGES, "Update", version, "", entry.time,
                                managed[bucket].fields | entry.fields)
        del managed[ident]
        length -= 1


def set_managed(obj: dict[str, Any], managed: dict[str, Entry]) -> list[dict[str, Any]]:
    encoded = encode_entries(managed)
    meta = obj.setdefault("metadata", {})
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)
    return encoded


def strip_unowned(paths: set[Path]) -> set[Path]:
    return paths - STRIPPED


@lru_cache(maxsize=64)
def reset_fields(subresource: str, status_subresource: bool) -> tuple[PathElement, ...]:
    """Top-level fields the strategy resets, so nobody owns them through this endpoint (GetResetFields)."""
    if subresource == "status":
        return (("f", "spec"),)
    if not subresource and status_subresource:
        return (("f", "status"),)
    return ()


def timestamp(now: dt.datetime | str | None) -> str:
    if isinstance(now, str):
        return now
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def without_managed(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, Mapping) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


def record_update(
    managed: dict[str, Entry],
    old: dict[str, Any],
    new: dict[str, Any],
    manager: str,
    api_version: str,
    subresource: str,
    schema: Schema,
    stamp: str,
    reset: tuple[PathElement, ...],
) -> None:
    """What a non-apply write records: whatever it changed moves to `manager` (Update), out of everyone else's
    sets, and removed fields leave every set."""
    updated = _updated(managed, compare_objects(old, new, schema, reset), manager, api_version, subresource, stamp)
    managed.clear()
    managed.update(updated)


def _updated(managed: Mapping[str, Entry], diff: Diff, manager: str, api_version: str, subresource: str,
             stamp: str) -> dict[str, Entry]:
    """record_update's outcome as a new dict; the entries of `managed` are left as they are (they may be shared)."""
    changed = diff.added | diff.modified
    gone = changed | diff.removed if diff.removed else changed
    out: dict[str, Entry] = {}
    for ident, entry in managed.items():
        if entry.fields.isdisjoint(gone):
            out[ident] = entry
        else:
            fields = entry.fields - gone
            if fields:
                out[ident] = Entry(entry.manager, entry.operation, entry.api_version, entry.subresource, entry.time,
                                   fields)
    mine = changed - STRIPPED
    if mine:
        ident = manager_identity(manager, "Update", api_version, subresource)
        previous = out.get(ident)
        if previous is None:
            fields = mine
        elif mine <= previous.fields:
            fields = previous.fields  # the usual rewrite of one's own fields: the set (and its encoding) stays
        else:
            fields = mine | previous.fields
        out[ident] = Entry(manager, "Update", api_version, subresource, stamp, fields)
    if len(out) > MAX_UPDATE_MANAGERS:
        _cap_updaters(out)
    return out


def _decoded_or_empty(entries: Any, key: ObjectKey) -> dict[str, Entry]:
    try:
        return _decoded(entries, key)
    except ValueError:
        return {}


def _decode_live_or_new(old: Mapping[str, Any] | None, new: Mapping[str, Any], subresource: str,
                        key: ObjectKey | None = None) -> dict[str, Entry]:
    """Whose managedFields an update starts from: a client may set them (or reset them with [] / [{}]) on the
    main resource; otherwise, or if they do not decode, the live object's."""

    def live_fields() -> dict[str, Entry]:
        try:
            return _decoded(((old or {}).get("metadata") or {}).get("managedFields"), key)
        except ValueError:
            return {}

    if subresource:
        return live_fields()
    sent = (new.get("metadata") or {}).get("managedFields")
    if isinstance(sent, list) and (not sent or (len(sent) == 1 and sent[0] == {})):
        return {}
    try:
        managed = _decoded(sent, key)
    except ValueError:
        managed = {}
    return managed or live_fields()


def managed_fields_after_update(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    manager: str,
    *,
    schema: Schema | None = None,
    now: dt.datetime | str | None = None,
    subresource: str = "",
    status_subresource: bool = True,
) -> list[dict[str, Any]] | None:
    """The `metadata.managedFields` to store after a create (old None), update or non-apply patch; None: none.

    `new` is the object as it will be stored (after the patch, after defaulting); `manager` the fieldManager
    query parameter or default_field_manager(User-Agent) ("unknown" if empty). Like the server, an existing
    object without managedFields does not start being tracked by an update, and a schema violation keeps
    the live managedFields rather than failing the write. Neither input is copied or changed.
    """
    manager = manager or "unknown"
    api_version = str(new.get("apiVersion", ""))
    schema = schema or builtin_schema(api_version, str(new.get("kind", "")))
    key = _object_key(new)
    old_meta = (old.get("metadata") or {}) if old is not None else {}
    live = old_meta.get("managedFields")
    if live is not None and (subresource or (new.get("metadata") or {}).get("managedFields") is live):
        managed = _decoded_or_empty(live, key)  # the usual case, made short: the live entries carry over
    else:
        managed = _decode_live_or_new(old, new, subresource, key)  # shared: read, never changed
    if not managed and old_meta.get("uid"):
        return None
    # Comparing skips metadata.managedFields (owned by nobody), so the objects are compared as they are.
    base = old if old is not None else schema.zero()
    try:
        # Comparing raises SchemaError wherever the new object has a malformed list item (check_value's job), in
        # the parts that differ from the live object; the parts equal to it were checked when it was written.
        diff = compare_objects(base, new, schema, reset_fields(subresource, status_subresource))
    except SchemaError:
        return ((old or {}).get("metadata") or {}).get("managedFields") or None
    entries, decoded = _encode(_updated(managed, diff, manager, api_version, subresource, timestamp(now)))
    if not entries:
        return None
    _remember(key, entries, decoded)
    return entries


def update_managed_fields(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    manager: str,
    *,
    schema: Schema | None = None,
    now: dt.datetime | str | None = None,
    subresource: str = "",
    status_subresource: bool = True,
) -> dict[str, Any]:
    """A copy of `new` with the managedFields of managed_fields_after_update, ready to persist."""
    result = copy.deepcopy(dict(new))
    entries = managed_fields_after_update(old, new, manager, schema=schema, now=now, subresource=subresource,
                                          status_subresource=status_subresource)
    meta = result.setdefault("metadata", {})
    if entries:
        meta["managedFields"] = copy.deepcopy(entries)
    else:
        meta.pop("managedFields", None)
    return result


@lru_cache(maxsize=256)
def default_field_manager(user_agent: str | None) -> str:
    """The manager kube-apiserver derives when a write has no fieldManager: the User-Agent up to its first "/",
    non-printable characters dropped, cut at 128 bytes ("kubectl/v1.30.1 (linux/amd64) ..." -> "kubectl")."""
    out: list[str] = []
    size = 0
    for ch in (user_agent or "").split("/", 1)[0]:
        if not ch.isprintable():
            continue
        size += len(ch.encode())
        if size > FIELD_MANAGER_MAX_LENGTH:
            break
        out.append(ch)
    return "".join(out)


def validate_field_manager(name: str, *, apply: bool, options_kind: str = "PatchOptions") -> None:
    """The fieldManager checks of the request options (422 Invalid); apply requests must name a manager."""
    if (name or not apply) and len(name) <= FIELD_MANAGER_MAX_LENGTH and name.isascii() and name.isprintable():
        return  # the common case, decided without building causes
    causes: list[dict[str, str]] = []
    if apply and not name:
        causes.append({"reason": "FieldValueRequired", "message": "Required value: is required for apply patch",
                       "field": "fieldManager"})
    if len(name.encode()) > FIELD_MANAGER_MAX_LENGTH:
        causes.append({"reason": "FieldValueTooLong",
                       "message": f"Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes",
                       "field": "fieldManager"})
    for i, ch in enumerate(name):
        if not ch.isprintable():
            causes.append({"reason": "FieldValueInvalid",
                           "message": f"Invalid value: {go_quote(name)}: invalid character U+{ord(ch):04X} "
                                      f"(at position {i})",
                           "field": "fieldManager"})
    if causes:
        summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        if len(causes) > 1:
            summary = "[" + summary + "]"
        raise ApplyError(422, f'{options_kind}.meta.k8s.io "" is invalid: {summary}', "Invalid",
                         {"group": "meta.k8s.io", "kind": options_kind, "causes": causes})


