"""Server-side apply (``application/apply-patch+yaml``) and ``metadata.managedFields`` for LocalKube.

What kube-apiserver does through structured-merge-diff and apimachinery's field manager, re-implemented from their
documented behaviour: field sets in the ``FieldsV1`` wire format (`fieldpath`), schema-driven typing (`typed`),
merging and comparing (`fieldsets`), the managedFields every write leaves behind (`managed`) and apply itself with
its conflicts (`apply`). Nothing here does I/O, storage, admission or defaulting: `ApiCore` does those and hands
these functions plain JSON-like dicts, which are never mutated.
"""

from localkube.apiserver.ssa.apply import LAST_APPLIED, ApplyResult, apply, parse_apply_body
from localkube.apiserver.ssa.errors import ApplyError, Conflict, ConflictItem
from localkube.apiserver.ssa.fieldpath import Path, PathElement, fields_from_json, fields_to_json, path_string
from localkube.apiserver.ssa.fieldsets import field_set
from localkube.apiserver.ssa.managed import (
    default_field_manager,
    managed_fields_after_update,
    update_managed_fields,
    validate_field_manager,
)
from localkube.apiserver.ssa.typed import (
    ANY,
    ANY_STRUCT,
    OBJECT_META,
    SCALAR,
    Schema,
    builtin_schema,
    schema_for_crd,
    schema_for_custom_resource,
)

__all__ = [
    "ANY",
    "ANY_STRUCT",
    "LAST_APPLIED",
    "OBJECT_META",
    "SCALAR",
    "ApplyError",
    "ApplyResult",
    "Conflict",
    "ConflictItem",
    "Path",
    "PathElement",
    "Schema",
    "apply",
    "builtin_schema",
    "default_field_manager",
    "field_set",
    "fields_from_json",
    "fields_to_json",
    "managed_fields_after_update",
    "parse_apply_body",
    "path_string",
    "schema_for_crd",
    "schema_for_custom_resource",
    "update_managed_fields",
    "validate_field_manager",
]
