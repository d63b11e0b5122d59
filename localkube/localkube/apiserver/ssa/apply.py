"""Server-side apply itself: check the apply configuration, merge, prune, settle ownership, report conflicts."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from localkube.apiserver.ssa.errors import Conflict, ConflictItem, SchemaError, bad_request, internal_error
from localkube.apiserver.ssa.fieldpath import PathElement, go_json, iteration_order, path_string
from localkube.apiserver.ssa.fieldsets import (
    collect_fields,
    compare_objects,
    drop_nulled,
    field_set,
    json_eq,
    merge_values,
    prune_applied,
    visible,
)
from localkube.apiserver.ssa.managed import (
    BEFORE_FIRST_APPLY,
    Entry,
    decode_entries,
    manager_identity,
    record_update,
    reset_fields,
    set_managed,
    strip_unowned,
    timestamp,
    validate_field_manager,
    without_managed,
)
from localkube.apiserver.ssa.typed import Schema, builtin_schema, check_value

# Server-owned metadata an apply configuration cannot set: dropped before merging so that a stale copy in the
# body (kubectl edit output, a saved manifest) neither overwrites nor gets owned. resourceVersion/uid act as
# preconditions and are the caller's to check.
_SERVER_METADATA = (
    "uid", "resourceVersion", "creationTimestamp", "generation", "selfLink", "managedFields",
    "deletionTimestamp", "deletionGracePeriodSeconds",
)


# ------------------------------------------------------------------------------------------- public API


@dataclass
class ApplyResult:
    """`object` is what to persist (metadata.managedFields already set); `created` when there was no live object;
    `changed` when anything but managedFields differs from live. Persist when `object != live` (managedFields
    can change alone, e.g. a second manager taking shared ownership)."""

    object: dict[str, Any]
    managed_fields: list[dict[str, Any]]
    created: bool
    changed: bool


def _gvk(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={kind}"


def _check_config(
    applied: Any, live: Mapping[str, Any] | None, expected_type: tuple[str, str] | None
) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(applied, Mapping):
        raise bad_request("error decoding YAML: the apply configuration must be an object")
    api_version, kind = applied.get("apiVersion") or "", applied.get("kind") or ""
    if expected_type is None and live is not None:
        expected_type = (str(live.get("apiVersion", "")), str(live.get("kind", "")))
    if not api_version or not kind or (expected_type is not None and (api_version, kind) != expected_type):
        raise bad_request(f"invalid object type: {_gvk(str(api_version), str(kind))}")
    meta = applied.get("metadata")
    if meta is not None and not isinstance(meta, Mapping):
        raise bad_request("metadata must be an object")
    meta = dict(meta or {})
    if meta.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    if not meta.get("name"):
        raise bad_request("metadata.name is required in an apply configuration")
    if live is not None:
        live_meta = live.get("metadata") or {}
        if meta["name"] != live_meta.get("name"):
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({live_meta.get('name')})"
            )
        if meta.get("namespace") and meta["namespace"] != live_meta.get("namespace"):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
    return str(api_version), str(kind), meta


def _prepare_config(applied: Mapping[str, Any], meta: dict[str, Any], subresource: str,
                    status_subresource: bool) -> dict[str, Any]:
    """The part of the body that is applied: server-owned metadata dropped; status only via the status
    subresource, and there nothing but status (the status strategy keeps everything else from live)."""
    for key in _SERVER_METADATA:
        meta.pop(key, None)
    if subresource == "status":
        ident = {k: meta[k] for k in ("name", "namespace") if k in meta}
        config = {"apiVersion": applied["apiVersion"], "kind": applied["kind"], "metadata": ident}
        if "status" in applied:
            config["status"] = applied["status"]
        return copy.deepcopy(config)
    config = {k: v for k, v in applied.items() if k != "metadata"}
    config["metadata"] = meta
    if not subresource and status_subresource:
        config.pop("status", None)
    return copy.deepcopy(config)


def apply(
    live: Mapping[str, Any] | None,
    applied: Mapping[str, Any],
    manager: str,
    *,
    force: bool = False,
    schema: Schema | None = None,
    now: dt.datetime | str | None = None,
    subresource: str = "",
    status_subresource: bool = True,
    expected_type: tuple[str, str] | None = None,
) -> ApplyResult:
    """Server-side apply `applied` (the decoded body) onto `live` (None: create) as field manager `manager`.

    Raises Conflict (409) when a changed field belongs to another manager and not `force`, ApplyError for a
    bad body (400), an invalid manager name (422) or an object the schema cannot hold (500).
    `status_subresource` says whether the kind has a status subresource (then status is ignored on the main
    resource); `expected_type` is (apiVersion, kind) of the request path, defaulting to the live object's.
    """
    validate_field_manager(manager, apply=True)
    api_version, kind, meta = _check_config(applied, live, expected_type)
    schema = schema or builtin_schema(api_version, kind)
    stamp = timestamp(now)
    reset = reset_fields(subresource, status_subresource)
    config = _prepare_config(applied, meta, subresource, status_subresource)
    where = f"{meta.get('namespace', '')}/{meta['name']}; {_gvk(api_version, kind)}"
    live_obj = without_managed(live) if live is not None else {}
    try:
        check_value(config, schema, (), allow_duplicates=False)
    except SchemaError as err:
        raise internal_error(f"failed to create typed patch object ({where}): {err}") from None
    try:
        check_value(live_obj, schema, (), allow_duplicates=True)
    except SchemaError as err:
        raise internal_error(f"failed to create typed live object ({where}): {err}") from None
    try:
        managed = decode_entries((live or {}).get("metadata", {}).get("managedFields"))
    except ValueError as err:
        raise internal_error(f"failed to decode managed fields: {err}") from None

    if not managed and live is not None:
        # An object nobody tracked yet: what exists is attributed to one updater, so applying over it conflicts.
        record_update(managed, schema.zero(), live_obj, BEFORE_FIRST_APPLY, str(live.get("apiVersion", "")),
                       subresource, schema, stamp, reset)

    try:
        merged, managed = _apply_once(live_obj, config, copy.deepcopy(managed), manager, api_version, subresource,
                                      schema, reset, force)
    except Conflict as conflict:
        if manager != "kubectl":
            raise
        # kubectl's switch from client-side to server-side apply: conflicts over fields whose live value still
        # is what the last-applied annotation says are the user's own, so they are taken over silently.
        allowed = _last_applied_fields(live_obj, api_version, schema)
        remaining = [c for c in conflict.conflicts if c.path not in allowed]
        if remaining:
            raise Conflict(remaining) from None
        merged, managed = _apply_once(live_obj, config, managed, manager, api_version, subresource, schema, reset,
                                      True)
    ident = manager_identity(manager, "Apply", api_version, subresource)
    changed = live is None or not json_eq(live_obj, merged)
    if changed and ident in managed:
        managed[ident].time = stamp  # like the server: a no-op apply leaves the time alone
    result = copy.deepcopy(merged)
    if manager == "kubectl":
        _sync_last_applied(result, applied)
    encoded = copy.deepcopy(set_managed(result, managed))  # the caller's to keep: no dict shared with the caches
    if encoded:
        result["metadata"]["managedFields"] = encoded
    return ApplyResult(result, encoded, live is None, live is None or not json_eq(live_obj, without_managed(result)))


def _apply_once(
    live_obj: dict[str, Any],
    config: dict[str, Any],
    managed: dict[str, Entry],
    manager: str,
    api_version: str,
    subresource: str,
    schema: Schema,
    reset: tuple[PathElement, ...],
    force: bool,
) -> tuple[dict[str, Any], dict[str, Entry]]:
    """SMD's Updater.Apply: merge, prune what the applier dropped, then settle ownership with everyone else."""
    ident = manager_identity(manager, "Apply", api_version, subresource)
    previous = managed.get(ident)
    applied_set = visible(field_set(config, schema), reset)
    managed[ident] = Entry(manager, "Apply", api_version, subresource, previous.time if previous else None,
                            applied_set)
    merged = merge_values(live_obj, config, schema)
    if previous is not None and previous.fields:
        merged = drop_nulled(prune_applied(merged, (e.fields for e in managed.values()), previous.fields, schema))

    diff = compare_objects(live_obj, merged, schema, reset)
    changed_fields = diff.changed()
    conflicts: list[ConflictItem] = []
    for other in sorted(managed):
        if other == ident:
            continue
        entry = managed[other]
        for path in iteration_order(entry.fields & changed_fields):
            conflicts.append(ConflictItem(path_string(path), entry.manager, entry.operation, entry.api_version,
                                          entry.subresource))
    if conflicts and not force:
        raise Conflict(conflicts)
    for other in list(managed):
        if other != ident:
            managed[other].fields = managed[other].fields - (changed_fields | diff.removed)
        else:
            managed[other].fields = strip_unowned(managed[other].fields)
        if not managed[other].fields:
            del managed[other]
    return merged, managed


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _last_applied_fields(live_obj: dict[str, Any], api_version: str, schema: Schema) -> set[str]:
    """Paths (rendered) of the last-applied annotation whose value still matches live; empty when unusable."""
    text = ((live_obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        last = json.loads(text) if text else None
    except ValueError:
        return set()
    if not isinstance(last, dict) or last.get("apiVersion") != api_version:
        return set()
    try:
        check_value(last, schema, (), allow_duplicates=False)
    except SchemaError:
        return set()
    diff = compare_objects(last, live_obj, schema, ())
    fields = set()
    collect_fields(last, schema, (), fields)
    return {path_string(p) for p in fields - diff.added - diff.modified - diff.removed}


def _sync_last_applied(result: dict[str, Any], applied: Mapping[str, Any]) -> None:
    """kubectl server-side apply keeps an existing last-applied annotation equal to what it applied, so a later
    client-side apply still computes the right patch."""
    annotations = (result.get("metadata") or {}).get("annotations") or {}
    if not annotations.get(LAST_APPLIED):
        return
    body = copy.deepcopy(dict(applied))
    body_annotations = (body.get("metadata") or {}).get("annotations")
    if isinstance(body_annotations, dict):
        body_annotations.pop(LAST_APPLIED, None)
    annotations[LAST_APPLIED] = go_json(body) + "\n"


class _Loader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, minus timestamps: Go's YAML-to-JSON keeps `2024-01-01` a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _json_keys(v: Any) -> Any:
    if isinstance(v, dict):
        return {(json.dumps(k) if isinstance(k, bool) or k is None else str(k)): _json_keys(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_keys(x) for x in v]
    return v


def parse_apply_body(body: bytes | str) -> dict[str, Any]:
    """Decode an application/apply-patch+yaml body (YAML or JSON) into a dict; 400 like the server otherwise."""
    try:
        text = body.decode() if isinstance(body, bytes) else body
    except UnicodeDecodeError as err:
        raise bad_request(f"error decoding YAML: {err}") from None
    try:
        data = json.loads(text)  # JSON first: it is YAML, but PyYAML rejects some valid JSON (tabs)
    except ValueError:
        try:
            data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
        except yaml.YAMLError as err:
            raise bad_request(f"error decoding YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise bad_request(f"error decoding YAML: the apply configuration must be an object, not {type(data).__name__}")
    return _json_keys(data)


