"""`dask kube install`: apply the packaged CRDs (or given manifests) as `kubectl apply` would, then wait until the
CRDs are served."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import kr8s
import kr8s.asyncio
import yaml
from kr8s.asyncio.objects import APIObject, CustomResourceDefinition, object_from_spec

from .. import kubernetes_api, waits
from ..errors import SpecError
from ..operator.crd_schemas import CRD_DIR as PACKAGED_CRDS
from .shell import Target, target, with_api

ESTABLISH_TIMEOUT = 30.0


def load_manifests(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every object of the YAML files given (a directory means its `*.yaml` and `*.yml`, in name order)."""
    docs: list[dict[str, Any]] = []
    for path in paths:
        if not path.exists():
            raise SpecError(f"{path} does not exist", "manifests")
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
        if not files:
            raise SpecError(f"{path} holds no .yaml files", "manifests")
        for file in files:
            try:
                found = [doc for doc in yaml.safe_load_all(file.read_text()) if doc]
            except yaml.YAMLError as err:
                raise SpecError(f"{file} is not valid YAML: {err}", "manifests") from None
            for doc in found:
                if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= doc.keys():
                    raise SpecError(f"{file} holds something that is not a Kubernetes object", "manifests")
            docs.extend(found)
    return docs


def describe(doc: dict[str, Any]) -> str:
    """`customresourcedefinition.apiextensions.k8s.io/daskclusters.kubernetes.dask.org`, as kubectl prints it."""
    group = doc["apiVersion"].rpartition("/")[0]
    kind = doc["kind"].lower() + (f".{group}" if group else "")
    namespace = doc["metadata"].get("namespace")
    return f"{kind}/{doc['metadata']['name']}" + (f" (namespace {namespace})" if namespace else "")


def _established(raw: Mapping[str, Any] | None) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in ((raw or {}).get("status") or {}).get("conditions") or ())


async def apply_manifests(api: kr8s.asyncio.Api, docs: Sequence[dict[str, Any]],
                          report: Callable[[str], None]) -> None:
    """Create each object, or merge-patch it when it exists (reporting created/configured/unchanged), then wait
    until every CustomResourceDefinition among them is Established."""
    crds: list[APIObject] = []
    for doc in docs:
        obj = object_from_spec(doc, api=api, allow_unknown_type=True)
        try:
            await obj.create()
            outcome = "created"
        except kr8s.ServerError as err:
            if not kubernetes_api.is_conflict(err):
                raise
            await obj.refresh()
            before = obj.raw["metadata"].get("resourceVersion")
            await obj.patch({k: v for k, v in doc.items() if k != "status"})
            outcome = "configured" if obj.raw["metadata"].get("resourceVersion") != before else "unchanged"
        report(f"{describe(doc)} {outcome}")
        if doc["kind"] == "CustomResourceDefinition":
            crds.append(obj)
    for crd in crds:
        await waits.wait_for(kubernetes_api.ref(CustomResourceDefinition, crd.name, None, api), _established,
                             ESTABLISH_TIMEOUT)


# -- the click shell -----------------------------------------------------------------------------------------------


@click.command("install", epilog="""\b
Examples:
  dask kube install --dry-run
  dask kube install                                   # the CRDs only
  dask kube install --manifests deploy/manifests/     # CRDs, namespace, RBAC and the operator Deployment""")
@click.option("--manifests", "paths", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="A YAML file or a directory of them to apply instead of the CRDs packaged with dask_kube "
                   "(repeatable).")
@click.option("--dry-run", is_flag=True, help="Print what would be applied; change nothing.")
@click.pass_context
def install_command(ctx: click.Context, paths: tuple[Path, ...], dry_run: bool) -> None:
    """Apply the dask_kube CRDs (kubernetes.dask.org/v1) or the given manifests to the cluster: each object is
    created, or updated when it exists; then wait until the CRDs are served. The operator itself comes with
    `--manifests deploy/manifests/` or the Helm chart (docs/install.md)."""
    try:
        docs = load_manifests(paths or [PACKAGED_CRDS])
    except SpecError as err:
        raise click.BadParameter(err.message, param_hint="--manifests") from None
    if dry_run:
        for doc in docs:
            click.echo(f"{describe(doc)} (dry run)")
        return

    async def run(api: kr8s.asyncio.Api, namespace: str) -> None:
        await apply_manifests(api, docs, click.echo)

    with_api(target(ctx), run, None)


def install_packaged_crds(kubeconfig: Path) -> None:
    """What `local up` applies to its fresh LocalKube: the packaged CRDs, quietly."""
    async def run(api: kr8s.asyncio.Api, namespace: str) -> None:
        await apply_manifests(api, load_manifests([PACKAGED_CRDS]), lambda line: None)

    with_api(Target(str(kubeconfig), None), run, None)

