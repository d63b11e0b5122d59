"""The arrows of docs/architecture.md, checked on the source."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "dask_kube"
IO_LIBRARIES = {"kr8s", "httpx", "httpx_ws", "aiohttp", "kopf"}
# What the entry points must not import before a command runs: the client and operator stacks.
HEAVY = {"kr8s", "httpx", "httpx_ws", "kopf", "rich", "cryptography", "distributed", "aiohttp"}


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Absolute module names imported by a file (relative imports resolved against its package); with
    `top_level_only`, only those that run when the module is imported (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    if path.name == "__init__.py":
        package = path.relative_to(PACKAGE.parent).parts[:-1]
    nodes = list(ast.walk(tree)) if not top_level_only else [
        n for n in tree.body if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))]
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(base + ((node.module,) if node.module else ()))
                out.update({prefix} | {f"{prefix}.{a.name}" for a in node.names})
            elif node.module:
                out.add(node.module)
    return out


def _roots(path: Path) -> set[str]:
    return {m.split(".")[0] for m in _imports(path)}


def _files(*parts: str) -> list[Path]:
    root = PACKAGE.joinpath(*parts)
    return sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]


def _rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


PRODUCT = _files()
LOCALKUBE = Path(__file__).parents[2] / "localkube"


def _localkube_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


@pytest.mark.parametrize("path", PRODUCT, ids=_rel)
def test_product_never_imports_localkube(path: Path) -> None:
    assert not any(m == "localkube" or m.startswith("localkube.") for m in _imports(path))


def test_product_holds_no_emulator_code() -> None:
    assert not (PACKAGE / "localkube").exists()
    assert all("localkube" not in p.stem for p in PRODUCT)


@pytest.mark.parametrize("path", sorted((LOCALKUBE / "localkube").rglob("*.py")) + sorted(
    (LOCALKUBE / "tests").rglob("*.py")), ids=lambda p: str(p.relative_to(LOCALKUBE)))
def test_localkube_imports_nothing_of_dask(path: Path) -> None:
    """LocalKube stands alone: neither its code nor its own tests import the product, dask or distributed."""
    roots = {m.split(".")[0] for m in _localkube_imports(path)}
    assert not roots & {"dask_kube", "dask", "distributed"}


def test_localkube_is_an_extra_not_a_dependency() -> None:
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("localkube") for dep in project["dependencies"])
    extras = project["optional-dependencies"]
    assert any(dep.startswith("localkube") for dep in extras["local"])
    assert any(dep.startswith("localkube[test]") for dep in extras["test"])
    own = tomllib.loads((LOCALKUBE / "pyproject.toml").read_text())["project"]
    assert not any(dep.split("[")[0].split(">")[0].split("<")[0].strip() in {"dask", "distributed", "dask-kube"}
                   for dep in own["dependencies"] + own["optional-dependencies"]["test"])


PURE = ["specs.py", "naming.py", "validation.py", "errors.py", "status.py", "operator/plan.py",
        "operator/conditions.py", "operator/worker_pods.py", "operator/client_leases.py", "operator/evictions.py",
        "operator/rollout.py", "worker_lifecycle.py", "cluster/options.py", "legacy/pods.py"]


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_no_io_library(name: str) -> None:
    assert not _roots(PACKAGE / name) & IO_LIBRARIES


# Which part of the product may import which: the arrows point one way. (`KubeCluster.from_yaml` hands over to
# legacy mode, which uses the client's networking: that one import waits until the method runs.)
LAYERS = {
    "cluster": {"operator", "cli"},
    "legacy": {"operator", "cli"},
    "operator": {"cluster", "legacy", "cli"},
    "cli": {"legacy"},
}


def _parts(path: Path, top_level_only: bool = False) -> set[str]:
    return {m.split(".")[1] for m in _imports(path, top_level_only) if m.startswith("dask_kube.")}


@pytest.mark.parametrize("path", [p for p in PRODUCT if p.relative_to(PACKAGE).parts[0] in LAYERS], ids=_rel)
def test_layers_point_one_way(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0]
    used = _parts(path)
    assert not used & LAYERS[layer], f"{layer}/ must not import {sorted(used & LAYERS[layer])}"
    if layer == "cluster":
        assert "legacy" not in _parts(path, top_level_only=True)
    if layer == "cli":  # the CLI uses the operator's packaged CRDs only, never its machinery
        deep = {m for m in _imports(path) if m.startswith("dask_kube.operator.")}
        assert deep <= {"dask_kube.operator.crd_schemas", "dask_kube.operator.crd_schemas.CRD_DIR"}, deep


@pytest.mark.parametrize("path", PRODUCT, ids=_rel)
def test_only_the_operator_imports_kopf(path: Path) -> None:
    """A notebook's `pip install dask-kube` has no kopf: it is the `[operator]` extra's."""
    if path.relative_to(PACKAGE).parts[0] != "operator":
        assert "kopf" not in _roots(path)


@pytest.mark.parametrize("path", [PACKAGE / "__init__.py", PACKAGE / "config.py", PACKAGE / "cli" / "__init__.py",
                                  PACKAGE / "discovery.py", PACKAGE / "errors.py", PACKAGE / "naming.py",
                                  PACKAGE / "specs.py"], ids=_rel)
def test_entry_point_modules_import_nothing_heavy_at_import(path: Path) -> None:
    roots = {m.split(".")[0] for m in _imports(path, top_level_only=True)}
    assert not roots & HEAVY, sorted(roots & HEAVY)


def test_loading_the_entry_points_imports_nothing_heavy() -> None:
    """dask loads every `dask_cli` entry point before any subcommand (every `dask worker`), dask-ctl every
    `dask_cluster_discovery` one: ours are a click group and a function, with nothing heavy behind them."""
    code = ("import importlib.metadata as m, sys\n"
            "eps = [e for g in ('dask_cli', 'dask_cluster_discovery') for e in m.entry_points(group=g)\n"
            "       if e.value.startswith('dask_kube')]\n"
            "assert len(eps) == 3, eps\n"
            "[e.load() for e in eps]\n"
            "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not set(out.split()) & HEAVY, sorted(set(out.split()) & HEAVY)


@pytest.mark.parametrize("path", [p for p in PRODUCT if p.name not in ("naming.py", "crd_schemas.py")], ids=_rel)
def test_label_keys_live_in_naming(path: Path) -> None:
    text = path.read_text()
    for literal in ('"dask.org/cluster-name"', '"dask.org/component"', '"dask.org/workergroup-name"'):
        assert literal not in text, f"use dask_kube.naming instead of {literal}"


# Documents that live outside the repository (the design notes it was built from, numbered lists of traps).
OUTSIDE = re.compile(r"COMPAT\.md|ARCHITECTURE\.md|STYLE\.md|LOCALKUBE\.md|/work/|\bW\d{1,2}\b|the reference's")


@pytest.mark.parametrize("path", PRODUCT, ids=_rel)
def test_comments_refer_to_nothing_outside_the_repository(path: Path) -> None:
    text = path.read_text()
    assert not OUTSIDE.search(text), OUTSIDE.search(text)
    for doc in re.findall(r"docs/[\w-]+\.md", text):
        assert (PACKAGE.parent / doc).exists(), f"{doc} does not exist"


def test_the_version_has_one_source() -> None:
    """pyproject.toml; the package reads it from the installed distribution's metadata."""
    import dask_kube

    version = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]["version"]
    assert dask_kube.__version__ == version
    assert version not in "".join(p.read_text() for p in PRODUCT)


def test_the_package_is_typed() -> None:
    assert (PACKAGE / "py.typed").exists()
