"""`{crd-reference}`: the resource reference, rendered from the CRDs that the operator installs.

The schemas come from `dask_kube.operator.crd_schemas.crds()` (the same function that writes
`dask_kube/operator/crds/*.yaml`), so the reference cannot drift from what the API server enforces. For each
kind: its names, its printer columns, then one table per schema (spec, status) with every field's path, type,
default, constraints and description.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

Field = tuple[str, str, str, str, str]  # path, type, default, constraints, description


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "")
    if kind == "array":
        kind = f"array of {_type(schema.get('items') or {}) or 'any'}"
    elif kind == "object" and "additionalProperties" in schema:
        kind = f"map of {_type(schema['additionalProperties']) or 'any'}"
    if schema.get("format"):
        kind += f" ({schema['format']})"
    return kind or "any"


def _constraints(schema: dict[str, Any], required: bool) -> str:
    parts = []
    if required:
        parts.append("required")
    if "minimum" in schema:
        parts.append(f"minimum {schema['minimum']}")
    if "maximum" in schema:
        parts.append(f"maximum {schema['maximum']}")
    if "minItems" in schema:
        parts.append(f"at least {schema['minItems']} items")
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"{v}" for v in schema["enum"]))
    if schema.get("nullable"):
        parts.append("nullable")
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        parts.append("unknown fields kept")
    return "; ".join(parts)


def fields(schema: dict[str, Any], prefix: str, required: bool = False) -> Iterator[Field]:
    """Every field below `schema`, depth first; PodSpecs and ServiceSpecs are not expanded past their own keys."""
    yield (prefix, _type(schema), repr(schema["default"]) if "default" in schema else "",
           _constraints(schema, required), schema.get("description", ""))
    needed = set(schema.get("required") or ())
    for name, sub in (schema.get("properties") or {}).items():
        yield from fields(sub, f"{prefix}.{name}", name in needed)
    items = schema.get("items")
    if isinstance(items, dict) and items.get("properties"):
        for name, sub in items["properties"].items():
            yield from fields(sub, f"{prefix}[].{name}", name in set(items.get("required") or ()))


def _table(title: str, header: list[str], rows: list[list[str]], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=["crd-reference"])
    table += nodes.title(text=title)
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    head += _row(header)
    body = nodes.tbody()
    group += body
    for row in rows:
        body += _row(row, literal_first=True)
    return table


def _row(cells: list[str], literal_first: bool = False) -> nodes.row:
    row = nodes.row()
    for i, text in enumerate(cells):
        entry = nodes.entry()
        para = nodes.paragraph()
        para += nodes.literal(text=text) if (literal_first and i == 0 and text) else nodes.Text(text)
        entry += para
        row += entry
    return row


class CRDReference(SphinxDirective):
    """`{crd-reference}` with an optional `:kinds:` list (default: every CRD, in the operator's order)."""

    option_spec = {"kinds": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        from dask_kube.operator import crd_schemas

        crds = list(crd_schemas.crds().values())
        wanted = [k.strip() for k in self.options.get("kinds", "").split(",") if k.strip()]
        if wanted:
            crds = [c for c in crds if c["spec"]["names"]["kind"] in wanted]
        self.env.note_dependency(crd_schemas.__file__)
        out: list[nodes.Node] = []
        for crd in crds:
            names = crd["spec"]["names"]
            (version,) = crd["spec"]["versions"]
            section = nodes.section(ids=[nodes.make_id(names["kind"])])
            section += nodes.title(text=names["kind"])
            facts = [f"apiVersion {crd['spec']['group']}/{version['name']}", f"plural {names['plural']}",
                     f"scope {crd['spec']['scope']}"]
            if names.get("shortNames"):
                facts.append("short names " + ", ".join(names["shortNames"]))
            if "scale" in version.get("subresources", {}):
                scale = version["subresources"]["scale"]
                facts.append(f"scale subresource {scale['specReplicasPath']} / {scale['statusReplicasPath']}")
            section += nodes.paragraph(text="; ".join(facts) + ".")
            columns = [[c["name"], c["jsonPath"], c.get("description", "")]
                       for c in version.get("additionalPrinterColumns", [])]
            if columns:
                section += _table(f"{names['kind']}: kubectl get columns", ["column", "JSON path", "meaning"],
                                  columns, [15, 40, 45])
            schema = version["schema"]["openAPIV3Schema"]["properties"]
            for part in ("spec", "status"):
                rows = [list(f) for f in fields(schema[part], part, part in ("spec",))]
                section += _table(f"{names['kind']} {part}", ["field", "type", "default", "constraints",
                                                              "description"], rows, [30, 14, 8, 20, 28])
            out.append(section)
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("crd-reference", CRDReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
