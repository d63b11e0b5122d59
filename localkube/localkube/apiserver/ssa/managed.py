"""`metadata.managedFields`: entries, their order and the bookkeeping every non-apply write leaves behind."""

from __future__ import annotations

import copy
import datetime as dt
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from localkube.apiserver.ssa.errors import ApplyError, SchemaError
from localkube.apiserver.ssa.fieldpath import Path, PathElement, fields_from_json, fields_to_json, go_json, go_quote
from localkube.apiserver.ssa.fieldsets import compare_objects
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


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    fields: frozenset[Path] | set[Path]  # a decoded set stays the shared frozenset until it changes
    # The encoded entry this one was decoded from, with the fields and time it had: encoding an entry whose
    # `fields` is still that very frozenset and whose time is unchanged gives it back without any work.
    source: tuple[dict[str, Any], frozenset[Path], str | None] | None = field(default=None, repr=False,
                                                                                compare=False)


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
    """Entries by manager identity; raises ValueError for what the server would not decode. A list decodes once
    (stored lists are never mutated); each call gets fresh Entry objects to change."""
    if entries is None:
        return {}
    decoded = _ENTRIES_OF.get(entries)
    if decoded is None:
        decoded = _decode_entries(entries)
        _ENTRIES_OF.put(entries, decoded)
    return {ident: Entry(e.manager, e.operation, e.api_version, e.subresource, e.time, e.fields, e.source)
            for ident, e in decoded.items()}


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
        entry.source = (_entry_dict(entry), entry.fields, entry.time)
        managed[manager_identity(entry.manager, operation, entry.api_version, entry.subresource)] = entry
    return managed


class _IdentityMemo:
    """Values by the identity of objects that are never mutated (stored objects and what they hold), FIFO-bounded.
    Each entry keeps its object alive, so the id stays its own while remembered."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[int, tuple[Any, Any]] = OrderedDict()
        self._size = size

    def get(self, obj: Any) -> Any:
        hit = self._items.get(id(obj))
        return hit[1] if hit is not None and hit[0] is obj else None

    def put(self, obj: Any, value: Any) -> None:
        self._items[id(obj)] = (obj, value)
        if len(self._items) > self._size:
            self._items.popitem(last=False)


# A stored entry's fieldsV1 decodes once however often its object is written over, and a field set that did not
# change is written back as the very fieldsV1 it came from: both directions are remembered by identity.
_FIELDS_OF = _IdentityMemo(32768)  # fieldsV1 dict -> frozenset of paths
_ENTRIES_OF = _IdentityMemo(32768)  # managedFields list -> its decoded entries
_RAW_OF = _IdentityMemo(32768)  # frozenset of paths -> fieldsV1 dict


def _decode_fields(raw: Mapping[str, Any]) -> frozenset[Path]:
    fields = _FIELDS_OF.get(raw)
    if fields is None:
        fields = frozenset(fields_from_json(raw))
        _FIELDS_OF.put(raw, fields)
        _RAW_OF.put(fields, raw)
    return fields


def _encode_fields(fields: frozenset[Path]) -> dict[str, Any]:
    raw = _RAW_OF.get(fields)
    if raw is None:
        raw = _shared_encoding(fields)
        _RAW_OF.put(fields, raw)
        _FIELDS_OF.put(raw, fields)
    return raw


@lru_cache(maxsize=8192)
def _shared_encoding(fields: frozenset[Path]) -> dict[str, Any]:
    """fieldsV1 of a field set, shared between the objects that hold it: like them, never to be mutated."""
    return fields_to_json(fields)


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
    ordered = sorted(
        (e for e in managed.values() if e.fields),
        key=lambda e: (e.operation, _unix(e.time), e.manager, e.api_version, e.subresource),
    )
    out = []
    for e in ordered:
        source = e.source
        if source is not None and e.fields is source[1] and e.time == source[2]:
            out.append(source[0])  # unchanged since decoded: the same (immutable) dict
        else:
            out.append(_entry_dict(e))
    return out


def _entry_dict(e: Entry) -> dict[str, Any]:
    """One managedFields entry as the server writes it (its keys in this order)."""
    entry: dict[str, Any] = {"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version}
    if e.time:
        entry["time"] = e.time
    entry["fieldsType"] = "FieldsV1"
    fields = e.fields if isinstance(e.fields, frozenset) else frozenset(e.fields)
    entry["fieldsV1"] = _encode_fields(fields)
    if e.subresource:
        entry["subresource"] = e.subresource
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
            managed[bucket] = Entry(ANCIENT_CHANGES, "Update", version, "", first.time, set(first.fields))
        managed[bucket].fields |= entry.fields
        managed[bucket].time = entry.time
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
    diff = compare_objects(old, new, schema, reset)
    changed = diff.changed()
    gone = changed | diff.removed
    for ident in list(managed):
        entry = managed[ident]
        if not entry.fields.isdisjoint(gone):
            entry.fields = entry.fields - gone
            if not entry.fields:
                del managed[ident]
    mine = strip_unowned(changed)
    if mine:
        ident = manager_identity(manager, "Update", api_version, subresource)
        previous = managed.get(ident)
        if previous is None:
            fields = mine
        elif mine <= previous.fields:
            fields = previous.fields  # the usual rewrite of one's own fields: the set (and its encoding) stays
        else:
            fields = mine | previous.fields
        managed[ident] = Entry(manager, "Update", api_version, subresource, stamp, fields)
    _cap_updaters(managed)


def _decode_live_or_new(old: Mapping[str, Any] | None, new: Mapping[str, Any], subresource: str) -> dict[str, Entry]:
    """Whose managedFields an update starts from: a client may set them (or reset them with [] / [{}]) on the
    main resource; otherwise, or if they do not decode, the live object's."""

    def live_fields() -> dict[str, Entry]:
        try:
            return decode_entries(((old or {}).get("metadata") or {}).get("managedFields"))
        except ValueError:
            return {}

    if subresource:
        return live_fields()
    sent = (new.get("metadata") or {}).get("managedFields")
    if isinstance(sent, list) and (not sent or (len(sent) == 1 and sent[0] == {})):
        return {}
    try:
        managed = decode_entries(sent)
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
    managed = _decode_live_or_new(old, new, subresource)
    old_uid = ((old or {}).get("metadata") or {}).get("uid")
    if not managed and old is not None and old_uid:
        return None
    # Comparing skips metadata.managedFields (owned by nobody), so the objects are compared as they are.
    base = old if old is not None else schema.zero()
    try:
        # Comparing raises SchemaError wherever the new object has a malformed list item (check_value's job), in
        # the parts that differ from the live object; the parts equal to it were checked when it was written.
        record_update(managed, base, new, manager, api_version, subresource, schema, timestamp(now),
                      reset_fields(subresource, status_subresource))
    except SchemaError:
        return ((old or {}).get("metadata") or {}).get("managedFields") or None
    return encode_entries(managed) or None


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


