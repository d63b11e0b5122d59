"""Shared by the CLI tests: running `dask kube` in-process (click's runner) and as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from dask_kube.cli import main
from localkube import testing

SCRIPT = Path(sys.executable).with_name("dask-kube")


def run(*args: str, kubeconfig: Path | str | None = None, input: str | None = None) -> Result:
    """`dask kube [--kubeconfig K] ARGS...` in this process; exceptions other than click's surface as failures."""
    prefix = ["--kubeconfig", str(kubeconfig)] if kubeconfig else []
    result = CliRunner().invoke(main, [*prefix, *args], input=input, catch_exceptions=False)
    return result


def ok(*args: str, **kwargs: Any) -> str:
    result = run(*args, **kwargs)
    assert result.exit_code == 0, f"dask kube {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return result.output


def listed(namespace: str, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """`dask kube list -n NS -o json`, by cluster name."""
    return {c["name"]: c for c in json.loads(ok("list", "-n", namespace, "-o", "json", **kwargs))}


def spawn(*args: str, kubeconfig: Path | None = None) -> subprocess.Popen[str]:
    """`dask-kube ARGS...` as a process (the installed console script), stdout and stderr as text pipes."""
    env = dict(os.environ)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.Popen([str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def until(predicate: Callable[[], Any], what: str, within: float = 60, explain: Callable[[], str] | None = None
          ) -> Any:
    """localkube.testing.until with the CLI tests' default of a minute."""
    return testing.until(predicate, what, within=within, explain=explain)
