"""The resource kinds LocalKube serves: built-ins and those registered by CRDs.

One `Kind` describes everything the server needs to route, validate and discover a resource. Built-ins are
declared once here; CRD kinds are derived from CRD objects by `kinds_from_crd`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from localkube.apiserver import ssa

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_VERBS = ("get", "list", "watch")


@dataclass(frozen=True)
class ScaleSpec:
    """Where a kind keeps its replica counts (the CRD `subresources.scale` block, or a built-in's fixed paths)."""

    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    label_selector_path: str | None = ".status.selector"


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    has_status: bool = False
    scale: ScaleSpec | None = None
    # Pods: log, exec, portforward, attach, binding, eviction; CertificateSigningRequests: approval.
    extra_subresources: tuple[str, ...] = ()
    builtin: bool = True
    # Review kinds (TokenReview, SelfSubjectAccessReview, ...) are answered, never stored.
    virtual: bool = False
    schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    printer_columns: tuple[Mapping[str, Any], ...] = field(default=(), compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Identity of the stored resource, independent of the version it is served at."""
        return (self.group, self.plural)

    @property
    def resource(self) -> str:
        """The name used in error messages: `pods`, `deployments.apps`, `daskclusters.kubernetes.dask.org`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """`Pod`, or `DaskCluster.kubernetes.dask.org`: the subject of 422 messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @cached_property
    def merge_schema(self) -> ssa.Schema:
        """How server-side apply and managedFields see this kind's objects: the CRD version's openAPIV3Schema
        (list types, map keys, atomic maps), or the built-in table. Computed once per Kind, and a CRD update
        makes new Kinds, so it is cached per CRD version and never stale."""
        if self.builtin:
            return ssa.builtin_schema(self.api_version, self.kind)
        return ssa.schema_for_custom_resource(self.schema)

    def subresources(self) -> tuple[str, ...]:
        subs = list(self.extra_subresources)
        if self.has_status:
            subs.append("status")
        if self.scale is not None:
            subs.append("scale")
        return tuple(subs)


def _k(group: str, version: str, plural: str, kind: str, namespaced: bool = True, **kw: Any) -> Kind:
    singular = kw.pop("singular", kind.lower())
    return Kind(group, version, plural, singular, kind, namespaced, **kw)


_POD_SUBRESOURCES = ("log", "exec", "portforward", "attach", "binding", "eviction", "proxy")

BUILTIN_KINDS: tuple[Kind, ...] = (
    _k("", "v1", "pods", "Pod", short_names=("po",), categories=("all",), has_status=True,
       extra_subresources=_POD_SUBRESOURCES),
    _k("", "v1", "services", "Service", short_names=("svc",), categories=("all",), has_status=True,
       extra_subresources=("proxy",)),
    _k("", "v1", "endpoints", "Endpoints", short_names=("ep",), singular="endpoints"),
    _k("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _k("", "v1", "secrets", "Secret"),
    _k("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), has_status=True,
       verbs=("create", "delete", "get", "list", "patch", "update", "watch"), extra_subresources=("finalize",)),
    _k("", "v1", "events", "Event", short_names=("ev",)),
    _k("", "v1", "nodes", "Node", namespaced=False, short_names=("no",), has_status=True,
       extra_subresources=("proxy",)),
    _k("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",), extra_subresources=("token",)),
    _k("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",), has_status=True),
    _k("", "v1", "podtemplates", "PodTemplate"),
    _k("", "v1", "limitranges", "LimitRange", short_names=("limits",)),
    _k("", "v1", "resourcequotas", "ResourceQuota", short_names=("quota",), has_status=True),
    _k("apps", "v1", "deployments", "Deployment", short_names=("deploy",), categories=("all",), has_status=True,
       scale=ScaleSpec()),
    _k("apps", "v1", "replicasets", "ReplicaSet", short_names=("rs",), categories=("all",), has_status=True,
       scale=ScaleSpec()),
    _k("apps", "v1", "statefulsets", "StatefulSet", short_names=("sts",), categories=("all",), has_status=True,
       scale=ScaleSpec()),
    _k("apps", "v1", "daemonsets", "DaemonSet", short_names=("ds",), categories=("all",), has_status=True),
    _k("apps", "v1", "controllerrevisions", "ControllerRevision"),
    _k("batch", "v1", "jobs", "Job", categories=("all",), has_status=True),
    _k("batch", "v1", "cronjobs", "CronJob", short_names=("cj",), categories=("all",), has_status=True),
    _k("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short_names=("pdb",), has_status=True),
    _k("coordination.k8s.io", "v1", "leases", "Lease"),
    _k("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _k("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _k("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _k("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _k("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",)),
    _k("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",), has_status=True),
    _k("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False),
    _k("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", short_names=("hpa",),
       categories=("all",), has_status=True),
    # Stored as v2 (registered first: by_key finds it), also served converted (autoscaling.py).
    _k("autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", short_names=("hpa",),
       categories=("all",), has_status=True),
    _k("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", namespaced=False,
       short_names=("csr",), has_status=True, extra_subresources=("approval",)),
    _k("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False, short_names=("sc",)),
    _k("storage.k8s.io", "v1", "csidrivers", "CSIDriver", namespaced=False),
    _k("storage.k8s.io", "v1", "csinodes", "CSINode", namespaced=False),
    _k("storage.k8s.io", "v1", "csistoragecapacities", "CSIStorageCapacity"),
    _k("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", namespaced=False, short_names=("pc",)),
    _k("events.k8s.io", "v1", "events", "Event", short_names=("ev",)),
    _k("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False,
       short_names=("crd", "crds"), has_status=True),
    _k("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", namespaced=False, verbs=("create",),
       virtual=True),
    _k("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", namespaced=False,
       verbs=("create",), virtual=True),
    _k("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", namespaced=False,
       verbs=("create",), virtual=True),
    _k("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", namespaced=False,
       verbs=("create",), virtual=True),
    _k("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", namespaced=False,
       verbs=("create",), virtual=True),
)


def kinds_from_crd(crd: Mapping[str, Any]) -> list[Kind]:
    """One `Kind` per served version of a CRD, carrying its schema, subresources and printer columns."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    plural = names.get("plural", "")
    kind = names.get("kind", "")
    out: list[Kind] = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subs = version.get("subresources") or {}
        scale = None
        if "scale" in subs:
            s = subs["scale"] or {}
            scale = ScaleSpec(
                s.get("specReplicasPath", ".spec.replicas"),
                s.get("statusReplicasPath", ".status.replicas"),
                s.get("labelSelectorPath"),
            )
        out.append(
            Kind(
                group=group,
                version=version["name"],
                plural=plural,
                singular=names.get("singular") or kind.lower(),
                kind=kind,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                has_status="status" in subs,
                scale=scale,
                builtin=False,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
            )
        )
    return out


class KindRegistry:
    """Maps URL parts to kinds; CRD kinds come and go as CRDs are established and deleted."""

    def __init__(self, builtins: Iterable[Kind] = BUILTIN_KINDS) -> None:
        self._builtins = list(builtins)
        self._crd_kinds: dict[str, list[Kind]] = {}  # CRD name -> its kinds

    def all(self) -> list[Kind]:
        kinds = list(self._builtins)
        for crd_kinds in self._crd_kinds.values():
            kinds.extend(crd_kinds)
        return kinds

    def lookup(self, group: str, version: str, plural: str) -> Kind | None:
        for kind in self.all():
            if kind.group == group and kind.version == version and kind.plural == plural:
                return kind
        return None

    def by_key(self, key: tuple[str, str]) -> Kind | None:
        for kind in self.all():
            if kind.key == key:
                return kind
        return None

    def by_kind(self, api_version: str, kind_name: str) -> Kind | None:
        for kind in self.all():
            if kind.api_version == api_version and kind.kind == kind_name:
                return kind
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """Group name -> served versions, in registration order ("" is the core group)."""
        out: dict[str, list[str]] = {}
        for kind in self.all():
            versions = out.setdefault(kind.group, [])
            if kind.version not in versions:
                versions.append(kind.version)
        return out

    def kinds_in(self, group: str, version: str) -> list[Kind]:
        return [k for k in self.all() if k.group == group and k.version == version]

    def set_crd(self, crd_name: str, kinds: list[Kind]) -> None:
        self._crd_kinds[crd_name] = kinds

    def remove_crd(self, crd_name: str) -> None:
        self._crd_kinds.pop(crd_name, None)

    def crd_kinds(self, crd_name: str) -> list[Kind]:
        return list(self._crd_kinds.get(crd_name, ()))
