"""dask_kube: run Dask clusters on Kubernetes.

The public surface: `KubeCluster` (and its `CreateMode`), the spec helpers that build DaskCluster manifests, and
the errors a caller may want to catch.

dask imports this package whenever it loads dask_kube's entry points (every `dask ...` command, every `dask worker`
where dask_kube is installed), so it imports nothing heavy itself: `KubeCluster` (kr8s, distributed's deploy
machinery) is imported on first use, and the version is read from the installed distribution's metadata, whose
one source is pyproject.toml.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import config as _config  # noqa: F401  (registers the kubernetes.* dask config defaults)
from .errors import (
    ClusterExistsError,
    ClusterNotFoundError,
    CrashLoopBackOffError,
    CRDsNotInstalledError,
    DaskKubeError,
    OperatorNotRunningError,
    SchedulerStartTimeoutError,
    SchedulerStartupError,
    SpecError,
    ValidationError,
)
from .specs import make_cluster_spec, make_scheduler_spec, make_worker_spec

if TYPE_CHECKING:
    from .cluster import CreateMode, KubeCluster

__all__ = [
    "CRDsNotInstalledError",
    "ClusterExistsError",
    "ClusterNotFoundError",
    "CrashLoopBackOffError",
    "CreateMode",
    "DaskKubeError",
    "KubeCluster",
    "OperatorNotRunningError",
    "SchedulerStartTimeoutError",
    "SchedulerStartupError",
    "SpecError",
    "ValidationError",
    "__version__",
    "make_cluster_spec",
    "make_scheduler_spec",
    "make_worker_spec",
]

_LAZY = {"KubeCluster": "dask_kube.cluster", "CreateMode": "dask_kube.cluster"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name == "__version__":
        from importlib.metadata import version

        value = version("dask-kube")
    else:
        raise AttributeError(f"module 'dask_kube' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
