"""The three PATCH flavours of the API server: JSON merge patch, JSON patch and strategic merge patch.

Clients observe the patched object and the status code of failures, so the merge rules (including
the list ordering of strategic merge patch) follow apimachinery's strategicpatch package.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer

__all__ = ["PatchError", "json_patch", "merge_patch", "strategic_merge_patch"]

# What a real server answers for a JSON patch that does not apply (details stay empty there too).
INVALID_PATCH_MESSAGE = "the server rejected our request due to an error in our request"


class PatchError(Exception):
    """A patch the server refuses: 400 for a malformed body, 422 (Invalid) for one that does not apply."""

    def __init__(self, code: int, reason: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.detail = detail  # why, for logs; the server's message is deliberately generic

    def __repr__(self) -> str:
        return f"PatchError({self.code}, {self.reason!r}, {self.message!r})"


def _bad_request(message: str) -> PatchError:
    return PatchError(400, "BadRequest", message)


def _invalid(detail: str) -> PatchError:
    return PatchError(422, "Invalid", INVALID_PATCH_MESSAGE, detail)


# --------------------------------------------------------------------------- RFC 7386


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 merge patch; returns a new object and never mutates its inputs."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = {k: copy.deepcopy(v) for k, v in target.items()} if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------- RFC 6902


_REQUIRED_MEMBERS = {
    "add": ("path", "value"),
    "remove": ("path",),
    "replace": ("path", "value"),
    "move": ("from", "path"),
    "copy": ("from", "path"),
    "test": ("path", "value"),
}


def _check_operation(op: Mapping[str, Any]) -> None:
    """Reject what the server's JSON patch library rejects while applying (hence 422, not 400)."""
    kind = op.get("op")
    if kind not in _REQUIRED_MEMBERS:
        raise _invalid(f"Unexpected kind: {kind}")
    for member in _REQUIRED_MEMBERS[kind]:
        if member not in op:
            raise _invalid(f"{kind} operation missing {member} field")
        if member in ("path", "from") and not isinstance(op[member], str):
            raise _invalid(f"{kind} operation has a non-string {member}")


def json_patch(target: Mapping[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 JSON patch: an undecodable body is 400, an operation that fails is 422 Invalid.

    kopf relies on the 422 of a failed `test` on /metadata/resourceVersion for optimistic locking.
    """
    if not isinstance(ops, list):
        raise _bad_request(
            f"json: cannot unmarshal {_json_type(ops)} into Go value of type jsonpatch.Patch"
        )
    for op in ops:
        if not isinstance(op, Mapping):
            raise _bad_request(
                f"json: cannot unmarshal {_json_type(op)} into Go value of type jsonpatch.Operation"
            )
    for op in ops:
        _check_operation(op)
    try:
        result = jsonpatch.JsonPatch(ops).apply(copy.deepcopy(dict(target)), in_place=True)
    except (
        jsonpatch.JsonPatchException,
        jsonpointer.JsonPointerException,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
    ) as err:
        raise _invalid(str(err) or type(err).__name__) from None
    if not isinstance(result, dict):
        raise _invalid("the patched document is not a JSON object")
    return result


def _json_type(value: Any) -> str:
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return "string"


# --------------------------------------------------------------------------- strategic merge patch schema


@dataclass(frozen=True)
class _Field:
    """Patch metadata of one field: its merge strategy and the schema of its value or list items."""

    merge: bool = False  # patchStrategy "merge": keyed lists merge by item, primitive lists as sets
    merge_key: str = ""
    schema: Mapping[str, _Field] = field(default_factory=dict)


_Schema = Mapping[str, _Field]


def _keyed(key: str, schema: _Schema | None = None) -> _Field:
    return _Field(merge=True, merge_key=key, schema=schema or {})


def _nested(schema: _Schema) -> _Field:
    return _Field(schema=schema)


_SET = _Field(merge=True)
_CONDITIONS = {"conditions": _keyed("type")}

_OBJECT_META: _Schema = {"finalizers": _SET, "ownerReferences": _keyed("uid")}
_CONTAINER: _Schema = {
    "ports": _keyed("containerPort"),
    "env": _keyed("name"),
    "volumeMounts": _keyed("mountPath"),
    "volumeDevices": _keyed("devicePath"),
}
_POD_SPEC: _Schema = {
    "containers": _keyed("name", _CONTAINER),
    "initContainers": _keyed("name", _CONTAINER),
    "ephemeralContainers": _keyed("name", _CONTAINER),
    "volumes": _keyed("name"),
    "imagePullSecrets": _keyed("name"),
    "hostAliases": _keyed("ip"),
    "topologySpreadConstraints": _keyed("topologyKey"),
    "resourceClaims": _keyed("name"),
    "schedulingGates": _keyed("name"),
}
_POD_STATUS: _Schema = {
    **_CONDITIONS,
    "podIPs": _keyed("ip"),
    "hostIPs": _keyed("ip"),
    "resourceClaimStatuses": _keyed("name"),
}
_POD_TEMPLATE: _Schema = {"metadata": _nested(_OBJECT_META), "spec": _nested(_POD_SPEC)}
_WITH_POD_TEMPLATE: _Schema = {
    "metadata": _nested(_OBJECT_META),
    "spec": _nested({"template": _nested(_POD_TEMPLATE)}),
    "status": _nested(_CONDITIONS),
}
_JOB_TEMPLATE: _Schema = {
    "metadata": _nested(_OBJECT_META),
    "spec": _nested({"template": _nested(_POD_TEMPLATE)}),
}


def _meta_plus(**fields: _Schema) -> _Schema:
    return {"metadata": _nested(_OBJECT_META), **{name: _nested(s) for name, s in fields.items()}}


_KIND_SCHEMAS: dict[str, _Schema] = {
    "Pod": _meta_plus(spec=_POD_SPEC, status=_POD_STATUS),
    "PodTemplate": _meta_plus(template=_POD_TEMPLATE),
    "Deployment": _WITH_POD_TEMPLATE,
    "ReplicaSet": _WITH_POD_TEMPLATE,
    "StatefulSet": _WITH_POD_TEMPLATE,
    "DaemonSet": _WITH_POD_TEMPLATE,
    "ReplicationController": _WITH_POD_TEMPLATE,
    "Job": _WITH_POD_TEMPLATE,
    "CronJob": _meta_plus(spec={"jobTemplate": _nested(_JOB_TEMPLATE)}),
    "Service": _meta_plus(spec={"ports": _keyed("port")}, status=_CONDITIONS),
    "Node": _meta_plus(
        spec={"podCIDRs": _SET}, status={**_CONDITIONS, "addresses": _keyed("type")}
    ),
    "Namespace": _meta_plus(status=_CONDITIONS),
    "PersistentVolumeClaim": _meta_plus(status=_CONDITIONS),
    "PodDisruptionBudget": _meta_plus(status=_CONDITIONS),
    "HorizontalPodAutoscaler": _meta_plus(status=_CONDITIONS),
    "ServiceAccount": {"metadata": _nested(_OBJECT_META), "secrets": _keyed("name")},
}
for _kind in (
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Event",
    "LimitRange",
    "ResourceQuota",
    "PersistentVolume",
    "Lease",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "StorageClass",
    "EndpointSlice",
    "NetworkPolicy",
    "Ingress",
):
    _KIND_SCHEMAS[_kind] = _meta_plus()


# --------------------------------------------------------------------------- strategic merge patch


_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"


def strategic_merge_patch(target: Mapping[str, Any], patch: Any, kind: str) -> dict[str, Any]:
    """Apply a strategic merge patch to a built-in kind; unknown kinds merge maps and replace lists."""
    if not isinstance(patch, Mapping):
        raise _bad_request(
            f"json: cannot unmarshal {_json_type(patch)} into Go value of type map[string]interface {{}}"
        )
    schema = _KIND_SCHEMAS.get(kind, {})
    return _merge_map(copy.deepcopy(dict(target)), copy.deepcopy(dict(patch)), schema)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: _Schema) -> dict[str, Any]:
    """Merge `patch` into `original` (both private copies, mutated in place)."""
    if _DIRECTIVE in patch:
        return _map_directive(patch)
    _apply_retain_keys(original, patch)
    _apply_set_element_orders(original, patch, schema)
    for key, value in patch.items():
        if key.startswith(_SET_ORDER):
            continue
        delete_list = key.startswith(_DELETE_FROM)
        name = key[len(_DELETE_FROM) :] if delete_list else key
        _merge_key_into(original, name, value, schema.get(name, _Field()), delete_list)
    return original


def _merge_key_into(original: dict[str, Any], name: str, value: Any, meta: _Field, delete_list: bool) -> None:
    if value is None:
        original.pop(name, None)
        return
    current = original.get(name)
    if name not in original or _shape(current) != _shape(value):
        if not delete_list:
            original[name] = _fresh(value, meta)
        return
    if isinstance(value, dict):
        original[name] = _merge_map(current, value, meta.schema)
    elif isinstance(value, list):
        original[name] = _merge_list(current, value, meta, delete_list)
    else:
        original[name] = value


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return "scalar"


def _fresh(value: Any, meta: _Field) -> Any:
    """A patch value with nothing to merge into: directives and nulls are dropped."""
    if isinstance(value, dict):
        return _merge_map({}, value, meta.schema)
    if isinstance(value, list):
        return _merge_list([], value, meta, False)
    return value


def _map_directive(patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch[_DIRECTIVE]
    if directive == "replace":
        return _strip({k: v for k, v in patch.items() if k != _DIRECTIVE})
    if directive == "delete":
        # Kubernetes empties the map rather than removing its key.
        return {}
    raise _bad_request(f"unknown patch type: {_go_format(directive)} in map: {_go_format(patch)}")


def _strip(value: Any) -> Any:
    """Drop directives (and items that are directives) and null map values from a replacing value."""
    if isinstance(value, dict):
        return {
            k: _strip(v)
            for k, v in value.items()
            if v is not None and k not in (_DIRECTIVE, _RETAIN_KEYS) and not k.startswith((_SET_ORDER, _DELETE_FROM))
        }
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and _DIRECTIVE in v)]
    return value


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if _RETAIN_KEYS not in patch:
        return
    keep = patch.pop(_RETAIN_KEYS)
    if not isinstance(keep, list):
        raise _bad_request("invalid patch format of retainKeys")
    for key, value in patch.items():
        if value is None or key.startswith((_SET_ORDER, _DELETE_FROM)):
            continue
        if key not in keep:
            raise _bad_request("invalid patch format of retainKeys")
    for key in [k for k in original if k not in keep]:
        del original[key]


# ---- lists


def _merge_list(original: list[Any], patch: list[Any], meta: _Field, delete_list: bool) -> list[Any]:
    """mergeSliceHandler: atomic lists are replaced, merge lists merged and re-ordered like the server."""
    if not meta.merge and not delete_list:
        return _strip(patch)
    if not original and not patch:
        return original
    is_map = _element_kind(original, patch) == "map"
    if not is_map:
        if delete_list:
            return [v for v in original if v not in patch]
        merged = _dedupe(original + patch)
        patch_items, server_only = _partition(merged, patch, "")
        return _normalize_order(patch_items, server_only, patch, original, "")
    key = meta.merge_key
    if not key:
        raise _bad_request("cannot merge lists without merge key")
    original, patch = _special_elements(original, patch, key)
    merged = _merge_items(original, patch, key, meta.schema)
    patch_items, server_only = _partition(merged, patch, key)
    return _normalize_order(patch_items, server_only, patch, original, key)


def _element_kind(*lists: list[Any]) -> str:
    kind = ""
    for items in lists:
        for item in items:
            this = _type_tag(item)
            if not kind:
                if this == "list":
                    raise _invalid("lists of lists are not supported")
                kind = this
            elif this != kind:
                raise _bad_request(f"list element types are not identical: {_go_format(list(lists))}")
    return kind


def _type_tag(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {dict: "map", list: "list", str: "string"}.get(type(value), "null")


def _dedupe(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _special_elements(original: list[Any], patch: list[Any], key: str) -> tuple[list[Any], list[Any]]:
    """Handle `$patch` items: delete by merge key, or replace the whole list."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if key not in item:
                raise _bad_request(f"map: {_go_format(item)} does not contain declared merge key: {key}")
            original = [o for o in original if o.get(key) != item[key]]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _bad_request("merging lists cannot yet be specified in the patch")
        else:
            raise _bad_request(f"unknown patch type: {_go_format(directive)} in map: {_go_format(item)}")
    if replace:
        return [_strip(item) for item in plain], []
    return original, plain


def _merge_items(original: list[Any], patch: list[Any], key: str, schema: _Schema) -> list[Any]:
    merged = list(original)
    for item in patch:
        if key not in item:
            raise _bad_request(f"map: {_go_format(item)} does not contain declared merge key: {key}")
        for i, existing in enumerate(merged):
            if isinstance(existing, dict) and existing.get(key) == item[key]:
                merged[i] = _merge_map(existing, item, schema)
                break
        else:
            merged.append(_merge_map({}, item, schema))
    return merged


def _identity(item: Any, key: str) -> Any:
    return item.get(key) if key and isinstance(item, dict) else item


def _index(items: list[Any], item: Any, key: str) -> int:
    wanted = _identity(item, key)
    for i, candidate in enumerate(items):
        if _identity(candidate, key) == wanted:
            return i
    return -1


def _partition(merged: list[Any], by: list[Any], key: str) -> tuple[list[Any], list[Any]]:
    """Split into items named in `by` (the patch or its order list) and server-only items."""
    for item in by:
        if key and (not isinstance(item, dict) or key not in item):
            raise _bad_request(f"map: {_go_format(item)} does not contain declared merge key: {key}")
    inside = [item for item in merged if _index(by, item, key) >= 0]
    outside = [item for item in merged if _index(by, item, key) < 0]
    return inside, outside


def _normalize_order(
    patch_items: list[Any], server_only: list[Any], patch_order: list[Any], server_order: list[Any], key: str
) -> list[Any]:
    """Order patch items as the patch lists them and weave server-only items in by their live order.

    A server-only item goes before a patch item only when both are in the live list and it came
    first there, which is how the API server places new items (not always at the end).
    """

    def by(order: list[Any]) -> Any:
        return lambda item: (i if (i := _index(order, item, key)) >= 0 else len(order))

    left = sorted(server_only, key=by(server_order))
    right = sorted(patch_items, key=by(patch_order))
    result: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            result.append(left[i])
            i += 1
        elif i >= len(left):
            result.append(right[j])
            j += 1
        else:
            li, ri = _index(server_order, left[i], key), _index(server_order, right[j], key)
            if li >= 0 and ri >= 0 and li < ri:
                result.append(left[i])
                i += 1
            else:
                result.append(right[j])
                j += 1
    return result


# ---- $setElementOrder


def _apply_set_element_orders(original: dict[str, Any], patch: dict[str, Any], schema: _Schema) -> None:
    """Merge each list that has a `$setElementOrder/` directive, then impose the requested order."""
    for directive in [k for k in patch if k.startswith(_SET_ORDER)]:
        order = patch[directive]
        name = directive[len(_SET_ORDER) :]
        if not isinstance(order, list):
            raise _bad_request("invalid patch format of setElementOrder list")
        meta = schema.get(name, _Field())
        live = original.get(name)
        wanted = patch.get(name)
        if (name in original and not isinstance(live, list)) or (name in patch and not isinstance(wanted, list)):
            raise _bad_request("invalid patch format of setElementOrder list")
        _check_order(wanted or [], order, meta.merge_key)
        if name not in original and name not in patch:
            continue
        if name not in patch:
            merged = list(live)
        elif name not in original:
            merged = _fresh(wanted, meta)
        else:
            merged = _merge_list(list(live), wanted, meta, False)
        inside, outside = _partition(merged, order, meta.merge_key)
        original[name] = _normalize_order(inside, outside, order, live or [], meta.merge_key)
        patch.pop(name, None)


def _check_order(patch_list: list[Any], order: list[Any], key: str) -> None:
    """The patch list must name its items in the same relative order as the order directive."""
    if not patch_list or not order:
        return
    items = [i for i in patch_list if not (key and isinstance(i, dict) and i.get(_DIRECTIVE) == "delete")]
    p = o = 0
    while p < len(items) and o < len(order):
        if isinstance(items[p], dict) and _DIRECTIVE in items[p]:
            p += 1
            continue
        if key and not all(isinstance(x, dict) and key in x for x in (items[p], order[o])):
            raise _bad_request(f"map does not contain declared merge key: {key}")
        if _identity(items[p], key) == _identity(order[o], key):
            p += 1
        o += 1
    if p < len(items):
        raise _bad_request(
            f"The order in patch list:\n{_go_format(patch_list)}\n doesn't match {_SET_ORDER} list:\n"
            f"{_go_format(order)}\n"
        )


def _go_format(value: Any) -> str:
    """Render a decoded JSON value as Go's %v does, so error texts read like the server's."""
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{_go_format(v)}" for k, v in sorted(value.items()))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(_go_format(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
