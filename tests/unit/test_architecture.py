"""The arrows of docs/architecture.md, checked on the source."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "dask_kube"
IO_LIBRARIES = {"kr8s", "httpx", "httpx_ws", "aiohttp", "kopf"}


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by a file (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
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


def _files(*parts: str) -> list[Path]:
    root = PACKAGE.joinpath(*parts)
    return sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]


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


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_product_never_imports_localkube(path: Path) -> None:
    assert not any(m == "localkube" or m.startswith("localkube.") for m in _imports(path))


def test_product_holds_no_emulator_code() -> None:
    assert not (PACKAGE / "localkube").exists()
    assert all("localkube" not in p.stem for p in PRODUCT if p.name != "cli_local.py")


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


@pytest.mark.parametrize("name", ["specs", "naming", "validation", "errors"])
def test_pure_modules_import_no_io_library(name: str) -> None:
    roots = {m.split(".")[0] for m in _imports(PACKAGE / f"{name}.py")}
    assert not roots & IO_LIBRARIES


@pytest.mark.parametrize("path", [p for p in PRODUCT if p.name not in ("naming.py", "crd_schemas.py")],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_label_keys_live_in_naming(path: Path) -> None:
    text = path.read_text()
    for literal in ('"dask.org/cluster-name"', '"dask.org/component"', '"dask.org/workergroup-name"'):
        assert literal not in text, f"use dask_kube.naming instead of {literal}"
