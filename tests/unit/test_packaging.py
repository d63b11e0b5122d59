"""What each install brings: a notebook's `pip install dask-kube` has the client and the CLI and nothing only the
operator or LocalKube needs; the operator's image installs the `[operator]` extra."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OPERATOR_ONLY = {"kopf", "aiohttp", "jsonpatch", "localkube"}


def _name(requirement: str) -> str:
    return requirement.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip()


def test_the_core_install_has_no_operator_only_dependency() -> None:
    assert not {_name(r) for r in PROJECT["dependencies"]} & OPERATOR_ONLY
    assert "kopf" in {_name(r) for r in PROJECT["optional-dependencies"]["operator"]}
    # `dask kube local up` runs the operator: the [local] extra brings it.
    assert "dask-kube[operator]" in PROJECT["optional-dependencies"]["local"]


def test_the_operator_image_installs_the_operator_extra() -> None:
    assert "pip install '.[operator]'" in (ROOT / "deploy" / "Dockerfile").read_text()


# Run where kopf cannot be imported, as after a plain `pip install dask-kube`.
WITHOUT_KOPF = """
import sys
sys.modules["kopf"] = None  # any `import kopf` now fails
import dask_kube
from dask_kube import KubeCluster, legacy, discovery
from dask_kube.cli import COMMANDS, main
import importlib
for target in COMMANDS.values():
    module, attribute = target.split(":")
    getattr(importlib.import_module(module), attribute)
from dask_kube.operator.main import main as operator_main
print("exit", operator_main([]))
"""


def test_the_client_and_the_cli_work_without_the_operators_dependencies() -> None:
    proc = subprocess.run([sys.executable, "-c", WITHOUT_KOPF], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("exit 2")
    assert "pip install 'dask-kube[operator]'" in proc.stderr


def test_the_former_name_of_legacy_mode_still_imports_with_a_warning() -> None:
    warns = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", "import dask_kube.classic"],
                           capture_output=True, text=True, timeout=120)
    assert warns.returncode != 0 and "dask_kube.classic is now dask_kube.legacy" in warns.stderr
    same = ("from dask_kube.classic import KubeCluster, make_pod_spec\n"
            "import dask_kube.legacy as legacy\n"
            "assert KubeCluster is legacy.KubeCluster and make_pod_spec is legacy.make_pod_spec")
    works = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", same], capture_output=True,
                           text=True, timeout=120)
    assert works.returncode == 0, works.stderr
