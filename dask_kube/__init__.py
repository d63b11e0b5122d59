"""dask_kube: run Dask clusters on Kubernetes.

The public surface: `KubeCluster` (and its `CreateMode`), the spec helpers that build DaskCluster manifests, and
the errors a caller may want to catch.
"""

from . import config as _config  # noqa: F401  (registers the kubernetes.* dask config defaults)
from .cluster import CreateMode, KubeCluster
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

__version__ = "0.1.0.dev0"

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
