"""Errors that carry their reason, so that a person reading them knows what to do."""

from __future__ import annotations


class DaskKubeError(Exception):
    """Base class of dask_kube's errors."""


class SpecError(DaskKubeError, ValueError):
    """An invalid argument or spec, found before anything was created. `field` says where."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


# The name dask-kubernetes users catch.
ValidationError = SpecError


# What to do when the API server does not serve DaskClusters: said the same way by the client and the CLI.
INSTALL_HINT = ("The kubernetes.dask.org resources (DaskCluster, ...) are not installed in this Kubernetes cluster. "
                "Install the CRDs and the operator (docs/install.md): `dask kube install --manifests "
                "deploy/manifests/`, `kubectl apply -f deploy/manifests/` or the Helm chart (`dask kube install` "
                "alone applies the CRDs). To try dask_kube without a cluster, `dask kube local up` starts a local "
                "Kubernetes that has both.")


class CRDsNotInstalledError(DaskKubeError, RuntimeError):
    """The kubernetes.dask.org resources are not served by this cluster."""

    def __init__(self, message: str = INSTALL_HINT) -> None:
        super().__init__(message)


class ClusterExistsError(DaskKubeError, ValueError):
    """`create_mode=CREATE_ONLY` and the cluster exists."""


class ClusterNotFoundError(DaskKubeError, ValueError):
    """`create_mode=CONNECT_ONLY` (or `from_name`) and there is no such cluster."""


class OperatorNotRunningError(DaskKubeError, TimeoutError):
    """A DaskCluster was created but no operator acted on it within the timeout."""


class SchedulerStartTimeoutError(DaskKubeError, TimeoutError):
    """The scheduler did not answer in time; the message says what its pod is doing and why."""

    def __init__(self, message: str, *, phase: str | None = None, reason: str | None = None,
                 logs: str | None = None) -> None:
        super().__init__(message)
        self.phase = phase
        self.reason = reason
        self.logs = logs


class SchedulerStartupError(DaskKubeError, RuntimeError):
    """The scheduler container crashed (CrashLoopBackOff); the message carries its last log lines."""

    def __init__(self, message: str, logs: str = "") -> None:
        super().__init__(message)
        self.logs = logs


class CrashLoopBackOffError(SchedulerStartupError):
    """Kept for code written against dask-kubernetes."""


class KubeconfigError(DaskKubeError, RuntimeError):
    """No usable kubeconfig (or in-cluster service account), or its API server does not answer."""


class ForwardDenied(DaskKubeError, PermissionError):
    """The API server refused a port-forward (403); the message is its own, naming the verb and resource."""
