"""Kubernetes object semantics, independent of HTTP.

`ApiCore` is what the HTTP layer and the in-process controllers (garbage collector, namespaces, kubelet, ...)
call, so that a write from kubectl and a write from the kubelet follow exactly the same rules: system fields,
status and scale subresources, generation, finalizers and graceful deletion, schema defaults and validation.
All methods are synchronous; they run on the server's event loop.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import re
import secrets
import string
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from localkube.apiserver import defaults, patching, reviews, schema, selectors, ssa, validation
from localkube.apiserver.authn import ADMIN
from localkube.apiserver.errors import ApiError, already_exists, conflict, invalid, not_found, unsupported_patch
from localkube.apiserver.kinds import Kind, KindRegistry, kinds_from_crd
from localkube.apiserver.rbac import Authorizer
from localkube.apiserver.store import ADDED, MODIFIED, Store

Obj = dict[str, Any]
# Sets an object's metadata.managedFields for the write under way; runs after defaulting, before admission.
Recorder = Callable[[Obj], None]

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACE_KEY = ("", "namespaces")
POD_KEY = ("", "pods")
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# The field manager of in-process writes that name none (tests, tools); LocalKube's own controllers name theirs.
LOCAL_MANAGER = "localkube"


def now_rfc3339(clock: Callable[[], dt.datetime] | None = None) -> str:
    moment = clock() if clock else dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return _rfc3339(int(moment.timestamp()))


@functools.lru_cache(maxsize=8)
def _rfc3339(epoch_seconds: int) -> str:
    """Formatted once per second: every write stamps a time or two."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))


def get_path(obj: Mapping[str, Any], dotted: str) -> Any:
    """Value at a `.spec.worker.replicas`-style path, or None."""
    cur: Any = obj
    for part in dotted.strip(".").split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def set_path(obj: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = value


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _remove_path(obj: Any, path: str) -> None:
    """Delete the field at a `spec.containers[0].resources.limit`-style path, if present."""
    parts: list[str | int] = [int(i) if i else k for k, i in _PATH_PART.findall(path)]
    cur = obj
    for part in parts[:-1]:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(cur, dict):
        cur.pop(parts[-1], None)


def _drop_empty_meta(meta: dict[str, Any]) -> None:
    """Empty labels, annotations, finalizers and ownerReferences are not stored (Go's omitempty)."""
    for empty in ("labels", "annotations", "finalizers", "ownerReferences"):
        if empty in meta and not meta[empty]:
            del meta[empty]


def _without_managed_fields(obj: Obj) -> Obj:
    """A shallow copy without metadata.managedFields."""
    return {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "managedFields"}}


def _copy_for_write(obj: Obj) -> Obj:
    """A deep copy for a write to change, sharing metadata.managedFields: writes replace that list and never edit
    it, and copying it would cost as much as copying the rest of a typical object."""
    managed = obj["metadata"].get("managedFields")
    if managed is None:
        return copy.deepcopy(obj)
    out = copy.deepcopy(_without_managed_fields(obj))
    out["metadata"]["managedFields"] = managed
    return out


def _mentions_managed_fields(patch: Any) -> bool:
    return isinstance(patch, Mapping) and isinstance(patch.get("metadata"), Mapping) and (
        "managedFields" in patch["metadata"])


def _set_managed_fields(obj: Obj, entries: list[dict[str, Any]] | None) -> None:
    if entries:
        obj["metadata"]["managedFields"] = entries
    else:
        obj["metadata"].pop("managedFields", None)


class ApiCore:
    def __init__(self, store: Store | None = None, registry: KindRegistry | None = None) -> None:
        self.store = store or Store()
        self.registry = registry or KindRegistry()
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
        # Mutating hooks run on create and update of a kind (service IP allocation, ...), set by controllers.
        self.admission: dict[tuple[str, str], list[Callable[[Obj, Obj | None], None]]] = {}
        # Hooks run right after an object of a kind is stored, inside the same write (a namespace's default
        # ServiceAccount), so no client can observe the object without them.
        self.after_create: dict[tuple[str, str], list[Callable[[Obj], None]]] = {}
        # Validating admission: run once the object passed validation, before it is stored (quotas, limit ranges).
        # A hook refuses by raising; it may return Warning header values for the response (PodSecurity's warn).
        self.validating: dict[tuple[str, str], list[Callable[[Obj, Obj | None], list[str] | None]]] = {}
        # (kind key, subresource) -> (request body, stored object) -> the object to store: subresources with their
        # own update strategy (a CSR's approval, and its status, which keeps the approval conditions).
        self.subresource_writes: dict[tuple[tuple[str, str], str], Callable[[Obj, Obj], Obj]] = {}
        # Checks before an object is deleted (the system PriorityClasses cannot be).
        self.before_delete: dict[tuple[str, str], list[Callable[[Obj], None]]] = {}
        # Kinds also served at a version other than the stored one (autoscaling/v1 HPAs):
        # (kind key, served version) -> (served form -> stored form, stored form -> served form).
        self.conversions: dict[tuple[tuple[str, str], str], tuple[Callable[[Obj], Obj], Callable[[Obj], Obj]]] = {}

    # -- helpers -------------------------------------------------------------------------------------------

    def now(self) -> str:
        return now_rfc3339(self.clock)

    def kind_of(self, key: tuple[str, str]) -> Kind:
        kind = self.registry.by_key(key)
        if kind is None:
            raise ApiError(404, f"the server could not find the requested resource ({key[1]})")
        return kind

    def bootstrap(self) -> None:
        """Objects a fresh cluster has: the standard namespaces."""
        ns_kind = self.kind_of(NAMESPACE_KEY)
        for name in INITIAL_NAMESPACES:
            if self.store.get(NAMESPACE_KEY, "", name) is None:
                self.create(ns_kind, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                            manager="kube-apiserver")
        # CRDs restored from a saved state must be served again.
        for crd in self.store.list(CRD_KEY):
            self.registry.set_crd(crd["metadata"]["name"], kinds_from_crd(crd))

    def _check_namespace(self, kind: Kind, namespace: str) -> None:
        if not kind.namespaced:
            return
        ns = self.store.get(NAMESPACE_KEY, "", namespace)
        if ns is None:
            raise not_found("namespaces", namespace, kind="namespaces")
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f"{kind.plural} \"{'<generated>'}\" is forbidden: unable to create new content in namespace "
                f"{namespace} because it is being terminated",
                details={"group": kind.group, "kind": kind.plural},
            )

    # -- reads ---------------------------------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        obj = self.store.get(kind.key, namespace if kind.namespaced else "", name)
        if obj is None:
            raise not_found(kind.resource, name, kind.group, kind.plural)
        return self._served(kind, obj)

    def _served(self, kind: Kind, obj: Obj) -> Obj:
        """The object as seen at `kind`'s version (only apiVersion differs, unless a conversion is registered)."""
        convert = self.conversions.get((kind.key, kind.version))
        if convert is not None:
            return convert[1](obj)
        if obj.get("apiVersion") != kind.api_version:
            return dict(obj, apiVersion=kind.api_version)
        return obj

    def _converted(self, kind: Kind, obj: Obj) -> tuple[Kind, Obj]:
        """The stored kind and the object in its form, for a kind served through a conversion; else unchanged."""
        convert = self.conversions.get((kind.key, kind.version))
        if convert is None:
            return kind, obj
        self._check_type(kind, obj)
        return self.kind_of(kind.key), convert[0](obj)

    def predicate(
        self, kind: Kind, label_selector: str | None, field_selector: str | None
    ) -> Callable[[Obj], bool] | None:
        try:
            labels = selectors.parse_label_selector(label_selector)
            fields = selectors.parse_field_selector(
                field_selector, selectors.supported_field_labels(kind.group, kind.plural)
            )
        except selectors.SelectorError as err:
            raise ApiError(400, str(err))
        if not label_selector and not field_selector:
            return None

        def match(obj: Obj) -> bool:
            return labels.matches(obj.get("metadata", {}).get("labels") or {}) and fields.matches(obj)

        return match

    def list(
        self,
        kind: Kind,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], str]:
        match = self.predicate(kind, label_selector, field_selector)
        items = self.store.list(kind.key, namespace if kind.namespaced else None)
        if match is not None:
            items = [o for o in items if match(o)]
        return [self._served(kind, o) for o in items], str(self.store.revision)

    # -- create --------------------------------------------------------------------------------------------

    def create(
        self,
        kind: Kind,
        namespace: str,
        body: Mapping[str, Any],
        *,
        field_validation: str = "Ignore",
        dry_run: bool = False,
        manager: str = LOCAL_MANAGER,
    ) -> tuple[Obj, list[str]]:
        if not isinstance(body, Mapping):
            raise ApiError(400, "the body of the request was in an unknown format")
        obj: Obj = copy.deepcopy(dict(body))
        stored_kind, obj = self._converted(kind, obj)
        if stored_kind is not kind:
            created, warnings = self.create(stored_kind, namespace, obj, field_validation=field_validation,
                                            dry_run=dry_run)
            return self._served(kind, created), warnings
        self._check_type(kind, obj)
        if kind.virtual:
            # Only in-process callers get here (the server answers reviews itself, as the requesting user).
            return reviews.answer(kind.kind, obj, ADMIN, Authorizer(self.store)), []
        return self._create(kind, namespace, obj, field_validation, dry_run, self._recorder(kind, None, manager))

    def _create(self, kind: Kind, namespace: str, obj: Obj, field_validation: str, dry_run: bool,
                record: Recorder) -> tuple[Obj, list[str]]:
        """Store a new object (a copy the caller owns) after the checks, defaults and admission of a create."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if meta.get("resourceVersion"):
            raise ApiError(400, "resourceVersion should not be set on objects to be created")
        if kind.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise ApiError(
                    400, "the namespace of the provided object does not match the namespace sent on the request"
                )
            namespace = namespace or body_ns or "default"
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
            namespace = ""
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5)
            )
        # managedFields a client sends are kept if they decode, as kube-apiserver keeps them (the recorder decides).
        for system_field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                             "generation", "selfLink"):
            meta.pop(system_field, None)
        if kind.has_status:
            obj.pop("status", None)
        meta["uid"] = str(uuid.uuid4())  # before defaulting: a Job's generated selector names it
        warnings = self._prepare(kind, obj, None, field_validation, record)
        self._check_namespace(kind, namespace)
        name = meta["name"]
        if self.store.get(kind.key, namespace, name) is not None:
            raise already_exists(kind.resource, name, kind.group, kind.plural)
        _drop_empty_meta(meta)
        meta["creationTimestamp"] = self.now()
        meta["generation"] = 1
        if dry_run:
            return obj, warnings
        stored = self.store.put(kind.key, obj, ADDED)
        if kind.key == CRD_KEY:
            stored = self._establish_crd(stored)
        for hook in self.after_create.get(kind.key, ()):
            hook(stored)
        return self._served(kind, stored), warnings

    def _check_type(self, kind: Kind, obj: Obj) -> None:
        api_version = obj.get("apiVersion")
        if api_version and api_version.split("/")[0] != kind.api_version.split("/")[0] and "/" in api_version:
            raise ApiError(
                400,
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({kind.api_version})",
            )
        if obj.get("kind") and obj["kind"] != kind.kind:
            raise ApiError(
                400, f"the kind in the data ({obj['kind']}) does not match the expected kind ({kind.kind})"
            )
        obj["apiVersion"] = kind.api_version
        obj["kind"] = kind.kind

    def _prepare(self, kind: Kind, obj: Obj, old: Obj | None, field_validation: str, record: Recorder) -> list[str]:
        """Defaults, schema and validation shared by every write path. Returns Warning header values.

        managedFields are recorded where kube-apiserver's field manager runs: after decoding and defaulting (so the
        writer owns the defaults), before mutating admission (so it does not own what admission adds).
        """
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName") or ""
        causes: list[dict[str, Any]] = []
        unknown: list[str] = []
        if kind.builtin:
            unknown = self._unknown_fields(kind, obj, old)
            for path in unknown:  # Go's decoder drops what its types lack
                _remove_path(obj, path)
            defaults.apply(kind, obj, old)
            _drop_empty_meta(obj["metadata"])
            record(obj)
            for hook in self.admission.get(kind.key, ()):
                hook(obj, old)
            decode_error = validation.quantity_decode_error(kind.api_version, kind.kind, obj)
            if decode_error:
                raise ApiError(400, decode_error)
            # validate_builtin checks metadata first, with the kind's own name rule, as the real server does.
            causes += [c.to_dict() for c in validation.validate_builtin(kind.api_version, kind.kind, obj, old)]
        else:
            causes += [c.to_dict() for c in validation.validate_object_meta(
                obj, namespaced=kind.namespaced, name_rule="subdomain")]
            if kind.schema is not None:
                result = schema.apply_structural_schema(obj, kind.schema)
                unknown = result.pruned
                causes += [c.to_dict() for c in result.causes]
                meta = obj["metadata"]
                obj.clear()
                obj.update(result.obj)
                obj["metadata"] = meta
            _drop_empty_meta(obj["metadata"])
            record(obj)
            for hook in self.admission.get(kind.key, ()):
                hook(obj, old)
        if kind.key == CRD_KEY:
            causes += self._validate_crd(obj)
        if unknown and field_validation == "Strict":
            raise ApiError(400, validation.strict_decoding_message(kind.kind, kind.api_version, unknown))
        if causes:
            raise invalid(kind.qualified_kind, name, causes, kind.group)
        warnings = validation.warning_headers(unknown) if unknown and field_validation == "Warn" else []
        for hook in self.validating.get(kind.key, ()):
            warnings += hook(obj, old) or []
        return warnings

    def _unknown_fields(self, kind: Kind, obj: Obj, old: Obj | None) -> list[str]:
        """Fields the built-in kind lacks; managedFields carried over from the live object were checked when
        they were recorded, and are a good part of a small object, so they are not walked again."""
        meta = obj["metadata"]
        managed = meta.get("managedFields")
        if old is None or managed is None or managed is not old["metadata"].get("managedFields"):
            return validation.unknown_fields(kind.api_version, kind.kind, obj)
        del meta["managedFields"]
        try:
            return validation.unknown_fields(kind.api_version, kind.kind, obj)
        finally:
            meta["managedFields"] = managed

    # -- update --------------------------------------------------------------------------------------------

    def replace(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str | None = None,
        field_validation: str = "Ignore",
        dry_run: bool = False,
        manager: str = LOCAL_MANAGER,
    ) -> tuple[Obj, list[str]]:
        old = self.get(kind, namespace, name)
        if not isinstance(body, Mapping):
            raise ApiError(400, "the body of the request was in an unknown format")
        new: Obj = copy.deepcopy(dict(body))
        stored_kind, new = self._converted(kind, new)
        if stored_kind is not kind:
            replaced, warnings = self.replace(stored_kind, namespace, name, new, subresource=subresource,
                                              field_validation=field_validation, dry_run=dry_run)
            return self._served(kind, replaced), warnings
        self._check_type(kind, new)
        meta = new.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise ApiError(
                400, f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(kind.resource, name, kind.group, kind.plural)
        return self._update(kind, old, new, subresource, field_validation, dry_run,
                            self._recorder(kind, old, manager, subresource))

    def patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        content_type: str,
        patch_body: Any,
        *,
        subresource: str | None = None,
        field_validation: str = "Ignore",
        dry_run: bool = False,
        manager: str = LOCAL_MANAGER,
    ) -> tuple[Obj, list[str]]:
        old = self.get(kind, namespace, name)
        # The patch is applied without managedFields unless it sets them (patches copy all they do not touch).
        managed = old["metadata"].get("managedFields")
        keep = managed is not None and content_type != JSON_PATCH and not _mentions_managed_fields(patch_body)
        base = _without_managed_fields(old) if keep else old
        try:
            if content_type == MERGE_PATCH:
                new = patching.merge_patch(base, patch_body)
            elif content_type == JSON_PATCH:
                new = patching.json_patch(old, patch_body)
            elif content_type == STRATEGIC_PATCH:
                if not kind.builtin:
                    raise unsupported_patch(False)
                new = patching.strategic_merge_patch(base, patch_body, kind.kind)
            else:
                raise unsupported_patch(kind.builtin)
        except patching.PatchError as err:
            raise ApiError(err.code, err.message, err.reason)
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise ApiError(422, f"{kind.qualified_kind} \"{name}\" is invalid: metadata: Required value")
        if keep:
            new["metadata"]["managedFields"] = managed
        rv = new["metadata"].get("resourceVersion")
        if rv != old["metadata"]["resourceVersion"]:
            if rv:
                raise conflict(kind.resource, name, kind.group, kind.plural)
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        stored_kind, new = self._converted(kind, new)
        if stored_kind is not kind:
            stored = self.get(stored_kind, namespace, name)
            patched, warnings = self._update(stored_kind, stored, new, subresource, field_validation, dry_run,
                                             self._recorder(stored_kind, stored, manager, subresource))
            return self._served(kind, patched), warnings
        return self._update(kind, old, new, subresource, field_validation, dry_run,
                            self._recorder(kind, old, manager, subresource))

    def apply(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        body: Any,
        *,
        manager: str,
        force: bool = False,
        subresource: str | None = None,
        field_validation: str = "Ignore",
        dry_run: bool = False,
    ) -> tuple[Obj, list[str], bool]:
        """Server-side apply of `body` (an apply configuration) as field manager `manager`; creates the object
        when it does not exist (third value True). Conflicts are 409s worded as kube-apiserver words them.

        The merged object then takes the path of any other create or update (defaults, validation, admission,
        generation, resourceVersion, watch events); only its managedFields come from the apply.
        """
        ssa.validate_field_manager(manager, apply=True)
        if not isinstance(body, Mapping):
            raise ApiError(400, "the body of the request was in an unknown format")
        if subresource not in (None, "status"):
            raise ApiError(404, f"the server could not find the requested resource ({subresource})")
        namespace = namespace if kind.namespaced else ""
        stored = self.store.get(kind.key, namespace, name)
        live = self._served(kind, stored) if stored is not None else None
        meta = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
        rv = meta.get("resourceVersion")
        if rv and (live is None or rv != live["metadata"]["resourceVersion"]):
            raise conflict(kind.resource, name, kind.group, kind.plural)
        if live is None:
            if subresource is not None:
                raise not_found(kind.resource, name, kind.group, kind.plural)
            if meta.get("name") and meta["name"] != name:
                raise ApiError(
                    400, f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        config, warnings = self._drop_unknown_fields(kind, body, field_validation)
        result = ssa.apply(live, config, manager, force=force, schema=kind.merge_schema, now=self.now(),
                           subresource=subresource or "", status_subresource=kind.has_status,
                           expected_type=(kind.api_version, kind.kind))
        entries = result.managed_fields or None

        def record(obj: Obj) -> None:
            _set_managed_fields(obj, entries)

        if live is None:
            obj = result.object
            obj.setdefault("metadata", {})["name"] = name
            return (*self._create(kind, namespace, obj, "Ignore", dry_run, record)[:1], warnings, True)
        return (*self._update(kind, live, result.object, subresource, "Ignore", dry_run, record)[:1], warnings,
                False)

    def _drop_unknown_fields(self, kind: Kind, body: Mapping[str, Any], field_validation: str
                             ) -> tuple[Obj, list[str]]:
        """The apply configuration without the fields the kind does not have, so that nobody comes to own them:
        400 under fieldValidation=Strict, Warning headers under Warn, silence under Ignore (as for any write)."""
        config = copy.deepcopy(dict(body))
        if kind.builtin:
            unknown = validation.unknown_fields(kind.api_version, kind.kind, config)
            for path in unknown:
                _remove_path(config, path)
        elif kind.schema is not None:
            unknown = schema.prune_unknown(config, kind.schema)
        else:
            unknown = []
        if unknown and field_validation == "Strict":
            raise ApiError(400, validation.strict_decoding_message(kind.kind, kind.api_version, unknown))
        return config, validation.warning_headers(unknown) if unknown and field_validation == "Warn" else []

    def mutate(self, kind: Kind, namespace: str, name: str, change: Callable[[Obj], None],
               *, subresource: str | None = None, manager: str = LOCAL_MANAGER) -> Obj:
        """Controllers' write path: apply `change` to a copy of the current object and store it as `manager`."""
        old = self.get(kind, namespace, name)
        new = _copy_for_write(old)
        change(new)
        return self._update(kind, old, new, subresource, "Ignore", False,
                            self._recorder(kind, old, manager, subresource))[0]

    def _recorder(self, kind: Kind, old: Obj | None, manager: str, subresource: str | None = None) -> Recorder:
        """What a create, update or non-apply patch records in managedFields: an Update entry for `manager`."""

        def record(obj: Obj) -> None:
            entries = ssa.managed_fields_after_update(
                old, obj, manager, schema=kind.merge_schema, now=self.now(), subresource=subresource or "",
                status_subresource=kind.has_status)
            _set_managed_fields(obj, entries)

        return record

    def _update(
        self, kind: Kind, old: Obj, new: Obj, subresource: str | None, field_validation: str, dry_run: bool,
        record: Recorder,
    ) -> tuple[Obj, list[str]]:
        old_meta = old["metadata"]
        write = self.subresource_writes.get((kind.key, subresource)) if subresource else None
        if write is not None:
            new = write(new, old)
        elif subresource == "status":
            status = new.get("status")
            new = _copy_for_write(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = copy.deepcopy(status)
        elif subresource is not None:
            raise ApiError(404, f"the server could not find the requested resource ({subresource})")
        elif kind.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        meta = new.setdefault("metadata", {})
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        for fixed in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "resourceVersion", "generation"):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
            else:
                meta.pop(fixed, None)
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
            if added:
                raise invalid(kind.qualified_kind, old_meta["name"], [{
                    "reason": "FieldValueForbidden",
                    "message": "Forbidden: no new finalizers can be added if the object is being deleted, "
                               f"found new finalizers {sorted(added)!r}",
                    "field": "metadata.finalizers"}], kind.group)
        if subresource is None:
            warnings = self._prepare(kind, new, old, field_validation, record)
        else:
            _drop_empty_meta(meta)
            record(new)
            warnings = []
        if subresource is None and self._essence(kind, new) != self._essence(kind, old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        _drop_empty_meta(meta)
        if new == old:
            return self._served(kind, old), warnings
        if dry_run:
            return new, warnings
        stored = self.store.put(kind.key, new, MODIFIED)
        if kind.key == CRD_KEY and subresource is None:
            self.registry.set_crd(stored["metadata"]["name"], kinds_from_crd(stored))
        return self._served(kind, self._finish_if_released(kind, stored)), warnings

    def _essence(self, kind: Kind, obj: Obj) -> dict[str, Any]:
        """What bumps `metadata.generation`: everything but metadata (and status where it is a subresource)."""
        skip = {"metadata", "apiVersion", "kind"} | ({"status"} if kind.has_status or kind.builtin else set())
        return {k: v for k, v in obj.items() if k not in skip}

    # -- delete --------------------------------------------------------------------------------------------

    def delete(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        *,
        grace_period: int | None = None,
        propagation: str | None = None,
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        old = self.get(kind, namespace, name)
        meta_old = old["metadata"]
        for hook in self.before_delete.get(kind.key, ()):
            hook(old)
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != meta_old["uid"]:
                raise ApiError(409, f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                               f"UID in object meta: {meta_old['uid']}", "Conflict")
            if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta_old[
                    "resourceVersion"]:
                raise conflict(kind.resource, name, kind.group, kind.plural)
        if propagation not in (None, "", "Background", "Foreground", "Orphan"):
            raise invalid("DeleteOptions", "", [{"reason": "FieldValueNotSupported", "field": "propagationPolicy",
                          "message": f'Unsupported value: "{propagation}": supported values: '
                                     '"Foreground", "Background", "Orphan", "nil"'}])
        if dry_run:
            return old
        new = copy.deepcopy(old)
        meta = new["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        deleting = bool(meta_old.get("deletionTimestamp"))
        if propagation == "Foreground" and "foregroundDeletion" not in finalizers and not deleting:
            finalizers.append("foregroundDeletion")
        elif propagation == "Orphan" and "orphan" not in finalizers and not deleting:
            finalizers.append("orphan")
        grace = 0
        if kind.key == POD_KEY:
            spec = old.get("spec") or {}
            phase = (old.get("status") or {}).get("phase")
            grace = grace_period if grace_period is not None else int(
                spec.get("terminationGracePeriodSeconds", 30))
            if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
                grace = 0
            grace = max(grace, 0)
        if kind.key == NAMESPACE_KEY:
            new.setdefault("spec", {})["finalizers"] = ["kubernetes"]
            new.setdefault("status", {})["phase"] = "Terminating"
            finalizers_pending = True
        else:
            finalizers_pending = bool(finalizers)
        if deleting:
            current = int(meta_old.get("deletionGracePeriodSeconds") or 0)
            if kind.key == POD_KEY and grace < current:
                meta["deletionGracePeriodSeconds"] = grace
                meta["deletionTimestamp"] = now_rfc3339(
                    lambda: self.clock() + dt.timedelta(seconds=grace))
                stored = self.store.put(kind.key, new, MODIFIED)
                return self._served(kind, self._finish_if_released(kind, stored))
            return self._served(kind, old)
        if not finalizers_pending and grace == 0:
            return self._served(kind, self._remove(kind, old))
        meta["finalizers"] = finalizers
        if not finalizers:
            del meta["finalizers"]
        meta["deletionTimestamp"] = now_rfc3339(lambda: self.clock() + dt.timedelta(seconds=grace))
        meta["deletionGracePeriodSeconds"] = grace
        if kind.key == CRD_KEY:
            meta.setdefault("finalizers", [])
            if CRD_CLEANUP_FINALIZER not in meta["finalizers"]:
                meta["finalizers"].append(CRD_CLEANUP_FINALIZER)
        stored = self.store.put(kind.key, new, MODIFIED)
        return self._served(kind, stored)

    def _finish_if_released(self, kind: Kind, obj: Obj) -> Obj:
        """Remove a deleting object once nothing holds it: no finalizers and (pods) no grace period left."""
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return obj
        if kind.key == NAMESPACE_KEY and (obj.get("spec") or {}).get("finalizers"):
            return obj
        if kind.key == POD_KEY and int(meta.get("deletionGracePeriodSeconds") or 0) > 0:
            return obj
        return self._remove(kind, obj)

    def _remove(self, kind: Kind, obj: Obj) -> Obj:
        final = self.store.remove(kind.key, obj)
        if kind.key == CRD_KEY:
            self.registry.remove_crd(obj["metadata"]["name"])
        return final

    def finalize_pod(self, namespace: str, name: str, uid: str | None = None) -> None:
        """The kubelet's last word on a deleting pod: its containers are gone, release it (grace 0).

        With `uid`, only that pod: a StatefulSet may already have created a new one under the same name."""
        kind = self.kind_of(POD_KEY)
        obj = self.store.get(POD_KEY, namespace, name)
        if obj is None or (uid is not None and obj["metadata"]["uid"] != uid):
            return
        new = copy.deepcopy(obj)
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        if not new["metadata"].get("deletionTimestamp"):
            new["metadata"]["deletionTimestamp"] = self.now()
        stored = self.store.put(POD_KEY, new, MODIFIED)
        self._finish_if_released(kind, stored)

    def bind_pod(self, namespace: str, name: str, node_name: str) -> Obj:
        """POST pods/{name}/binding: set `spec.nodeName` and `PodScheduled=True` in one write.

        The main resource refuses nodeName changes (pod specs are immutable), so binding is its own path,
        with its own checks, as on a real server.
        """
        kind = self.kind_of(POD_KEY)
        current = self.get(kind, namespace, name)
        if current["metadata"].get("deletionTimestamp"):
            raise ApiError(409, f"pod {name} is being deleted, cannot be assigned to a host", "Conflict")
        bound_to = (current.get("spec") or {}).get("nodeName")
        if bound_to:
            raise ApiError(409, f'pod {name} is already assigned to node "{bound_to}"', "Conflict")
        pod = copy.deepcopy(current)
        pod.setdefault("spec", {})["nodeName"] = node_name
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"]
        conditions.insert(0, {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                              "lastTransitionTime": self.now()})
        status["conditions"] = conditions
        return self.store.put(POD_KEY, pod, MODIFIED)

    # -- scale subresource ---------------------------------------------------------------------------------

    def get_scale(self, kind: Kind, namespace: str, name: str) -> Obj:
        if kind.scale is None:
            raise ApiError(404, "the server could not find the requested resource")
        obj = self.get(kind, namespace, name)
        meta = obj["metadata"]
        status: dict[str, Any] = {"replicas": get_path(obj, kind.scale.status_replicas_path) or 0}
        if kind.scale.label_selector_path:
            sel = get_path(obj, kind.scale.label_selector_path)
            if kind.builtin:
                sel = selectors.label_selector_to_string(get_path(obj, ".spec.selector"))
            if sel:
                status["selector"] = sel
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": get_path(obj, kind.scale.spec_replicas_path) or 0},
            "status": status,
        }

    def update_scale(self, kind: Kind, namespace: str, name: str, scale: Mapping[str, Any], *,
                     manager: str = LOCAL_MANAGER) -> Obj:
        if kind.scale is None:
            raise ApiError(404, "the server could not find the requested resource")
        current = self.get_scale(kind, namespace, name)
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise conflict(kind.resource, name, kind.group, kind.plural)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise invalid("Scale.autoscaling", name, [{
                "reason": "FieldValueInvalid", "field": "spec.replicas",
                "message": f"Invalid value: {replicas!r}: must be greater than or equal to 0"}], "autoscaling")
        old = self.get(kind, namespace, name)
        new = _copy_for_write(old)
        set_path(new, kind.scale.spec_replicas_path, replicas)
        # Owned as kube-apiserver records scale writes: the parent's replicas path, subresource "scale".
        self._update(kind, old, new, None, "Ignore", False, self._recorder(kind, old, manager, "scale"))
        return self.get_scale(kind, namespace, name)

    def patch_scale(self, kind: Kind, namespace: str, name: str, content_type: str, body: Any, *,
                    manager: str = LOCAL_MANAGER) -> Obj:
        current = self.get_scale(kind, namespace, name)
        if content_type == APPLY_PATCH:
            raise ApiError(415, "LocalKube does not implement server-side apply on the scale subresource; "
                                "apply the object itself, or patch its scale with a merge or JSON patch")
        try:
            if content_type == JSON_PATCH:
                new = patching.json_patch(current, body)
            else:  # merge and strategic patches of a Scale are the same thing
                new = patching.merge_patch(current, body)
        except patching.PatchError as err:
            raise ApiError(err.code, err.message, err.reason)
        return self.update_scale(kind, namespace, name, new, manager=manager)

    # -- CRDs ----------------------------------------------------------------------------------------------

    def _validate_crd(self, crd: Obj) -> list[dict[str, Any]]:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        causes: list[dict[str, Any]] = []
        group, plural = spec.get("group"), names.get("plural")
        for field, value in (("spec.group", group), ("spec.names.plural", plural), ("spec.names.kind",
                             names.get("kind")), ("spec.scope", spec.get("scope"))):
            if not value:
                causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": field})
        if group and plural and crd["metadata"].get("name") != f"{plural}.{group}":
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                           "message": f'Invalid value: "{crd["metadata"].get("name")}": must be spec.names.plural+"."'
                                      '+spec.group'})
        versions = spec.get("versions") or []
        if not versions:
            causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.versions"})
        elif sum(1 for v in versions if v.get("storage")) != 1:
            causes.append({"reason": "FieldValueInvalid", "field": "spec.versions",
                           "message": "Invalid value: must have exactly one version marked as storage version"})
        if spec.get("scope") not in (None, "Namespaced", "Cluster"):
            causes.append({"reason": "FieldValueNotSupported", "field": "spec.scope",
                           "message": f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", '
                                      '"Namespaced"'})
        for i, version in enumerate(versions):
            sch = (version.get("schema") or {}).get("openAPIV3Schema")
            if sch is None:
                causes.append({"reason": "FieldValueRequired", "message": "Required value",
                               "field": f"spec.versions[{i}].schema.openAPIV3Schema"})
            else:
                causes += [c.to_dict() for c in schema.validate_crd_schema(sch, i)]
        if not causes:
            for kind in self.registry.all():
                if kind.group == group and kind.plural == plural and kind.builtin:
                    causes.append({"reason": "FieldValueInvalid", "field": "spec.names.plural",
                                   "message": f'Invalid value: "{plural}": conflicts with a built-in resource'})
        return causes

    def _establish_crd(self, crd: Obj) -> Obj:
        """What the CRD controllers do right after creation: accept names, establish, start serving."""
        name = crd["metadata"]["name"]
        spec = crd["spec"]
        now = self.now()
        self.registry.set_crd(name, kinds_from_crd(crd))
        kind = self.kind_of(CRD_KEY)

        def establish(obj: Obj) -> None:
            obj["status"] = {
                "acceptedNames": copy.deepcopy(spec["names"]),
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": now},
                ],
                "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
            }

        self.mutate(kind, "", name, establish, subresource="status", manager="kube-apiserver")
        return crd
