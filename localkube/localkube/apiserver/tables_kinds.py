"""Table printers of the cluster-infrastructure kinds (kubectl get ingress, csr, sc, pc, hpa, quota, ...).

The column sets and cell formats of kube-apiserver 1.32's printers for these kinds, built from tables.py's
helpers; `tables._printer` looks them up here.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

from localkube.apiserver import autoscaling
from localkube.apiserver.tables import (
    _AGE,
    _CREATED_AT,
    _NAME,
    _NONE,
    _age,
    _col,
    _containers_cells,
    _created_at_cells,
    _format_labels,
    _int,
    _meta,
    _name,
    _sub,
    human_duration,
)
from localkube.apiserver.validation import canonical_quantity

_Cells = Callable[[Mapping, datetime.datetime], list[Any]]


def _quantity(value: Any) -> str:
    try:
        return canonical_quantity(value)
    except (ValueError, TypeError):
        return str(value)


# --------------------------------------------------------------------------- networking.k8s.io


def _ingress_hosts(rules: list[Mapping]) -> str:
    """The first three hosts, then `+ N more...` counting rules; `*` when no rule names a host."""
    hosts: list[str] = []
    more = False
    for rule in rules:
        more = more or len(hosts) == 3
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


def _ingress_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    addresses = sorted({i.get("ip") or i.get("hostname") for i in _sub(obj, "status", "loadBalancer", "ingress") or []
                        if i.get("ip") or i.get("hostname")})
    return [
        _name(obj),
        spec.get("ingressClassName") or _NONE,
        _ingress_hosts(spec.get("rules") or []),
        ",".join(addresses),
        "80, 443" if spec.get("tls") else "80",
        _age(obj, now),
    ]


def _ingress_class_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    params = _sub(obj, "spec", "parameters")
    shown = _NONE
    if params:
        kind = params.get("kind", "") + (f".{params['apiGroup']}" if params.get("apiGroup") is not None else "")
        shown = f"{kind}/{params.get('name', '')}"
    return [_name(obj), _sub(obj, "spec", "controller") or "", shown, _age(obj, now)]


# --------------------------------------------------------------------------- certificates.k8s.io


def _csr_condition(obj: Mapping) -> str:
    """Denied wins over Approved, else Pending; then `,Failed` and `,Issued`."""
    types = {c.get("type") for c in _sub(obj, "status", "conditions") or []}
    text = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    if "Failed" in types:
        text += ",Failed"
    if _sub(obj, "status", "certificate"):
        text += ",Issued"
    return text


def _csr_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    seconds = spec.get("expirationSeconds")
    duration = human_duration(datetime.timedelta(seconds=seconds)) if isinstance(seconds, int) else _NONE
    return [_name(obj), _age(obj, now), spec.get("signerName") or _NONE, spec.get("username") or "", duration,
            _csr_condition(obj)]


# --------------------------------------------------------------------------- storage.k8s.io

_DEFAULT_CLASS = ("storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class")


def _storage_class_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    annotations = _meta(obj).get("annotations") or {}
    default = any(annotations.get(key) == "true" for key in _DEFAULT_CLASS)
    return [
        _name(obj) + (" (default)" if default else ""),
        obj.get("provisioner", ""),
        obj.get("reclaimPolicy") or "Delete",
        obj.get("volumeBindingMode") or "Immediate",
        bool(obj.get("allowVolumeExpansion")),
        _age(obj, now),
    ]


def _csi_driver_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    requests = spec.get("tokenRequests")
    return [
        _name(obj),
        spec.get("attachRequired", True) is not False,
        bool(spec.get("podInfoOnMount")),
        bool(spec.get("storageCapacity")),
        "<unset>" if requests is None else ",".join(r.get("audience", "") for r in requests),
        bool(spec.get("requiresRepublish")),
        ",".join(spec.get("volumeLifecycleModes") or []) or _NONE,
        _age(obj, now),
    ]


def _csi_node_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    return [_name(obj), len(_sub(obj, "spec", "drivers") or []), _age(obj, now)]


def _csi_capacity_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    capacity = obj.get("capacity")
    return [_name(obj), obj.get("storageClassName", ""), "<unset>" if capacity is None else _quantity(capacity),
            _age(obj, now)]


# --------------------------------------------------------------------------- scheduling.k8s.io, autoscaling


def _priority_class_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    return [_name(obj), _int(obj.get("value")), bool(obj.get("globalDefault")), _age(obj, now),
            obj.get("preemptionPolicy") or ""]


def _metric_text(spec: Mapping, status: Mapping | None) -> str:
    """One entry of the Targets cell: `current/target`, resource metrics prefixed with their name."""
    mtype = spec.get("type")
    field = {"External": "external", "Pods": "pods", "Object": "object", "Resource": "resource",
             "ContainerResource": "containerResource"}.get(mtype or "")
    if field is None:
        return "<unknown type>"
    source, target = spec.get(field) or {}, (spec.get(field) or {}).get("target") or {}
    current = ((status or {}).get(field) or {}).get("current") if status and status.get(field) is not None else None
    if field in ("resource", "containerResource"):
        name = source.get("name", "")
        if target.get("averageValue") is not None:
            now_text = "<unknown>" if current is None else _quantity(current.get("averageValue") or 0)
            return f"{name}: {now_text}/{_quantity(target['averageValue'])}"
        used = (current or {}).get("averageUtilization")
        goal = target.get("averageUtilization")
        return (f"{name}: {'<unknown>' if used is None else f'{used}%'}/"
                f"{'<auto>' if goal is None else f'{goal}%'}")
    if field == "pods":
        now_text = "<unknown>" if current is None else _quantity(current.get("averageValue") or 0)
        return f"{now_text}/{_quantity(target.get('averageValue') or 0)}"
    if target.get("averageValue") is not None:
        value = (current or {}).get("averageValue")
        return f"{'<unknown>' if value is None else _quantity(value)}/{_quantity(target['averageValue'])} (avg)"
    now_text = "<unknown>" if current is None else _quantity(current.get("value") or 0)
    return f"{now_text}/{_quantity(target.get('value') or 0)}"


def _hpa_targets(specs: list[Mapping], statuses: list[Mapping]) -> str:
    if not specs:
        return _NONE
    texts = [_metric_text(s, statuses[i] if i < len(statuses) else None) for i, s in enumerate(specs)]
    shown = ", ".join(texts[:2])
    return f"{shown} + {len(texts) - 2} more..." if len(texts) > 2 else shown


def _hpa_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    if obj.get("apiVersion") == "autoscaling/v1":  # printed from the stored (v2) form, whatever the version asked
        obj = autoscaling.v1_to_v2(dict(obj))
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    low = spec.get("minReplicas")
    return [
        _name(obj),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _hpa_targets(spec.get("metrics") or [], status.get("currentMetrics") or []),
        "<unset>" if low is None else str(low),
        _int(spec.get("maxReplicas")),
        _int(status.get("currentReplicas")),
        _age(obj, now),
    ]


# --------------------------------------------------------------------------- core/v1


def _pod_template_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    template = obj.get("template") or {}
    return [_name(obj), *_containers_cells(template.get("spec")), _format_labels(_sub(template, "metadata", "labels"))]


def _quota_cells(obj: Mapping, now: datetime.datetime) -> list[Any]:
    """`name: used/hard` per resource in status.hard, limits.* in the Limit column, the rest in Request."""
    hard, used = _sub(obj, "status", "hard") or {}, _sub(obj, "status", "used") or {}
    request, limit = [], []
    for name in sorted(hard):
        entry = f"{name}: {_quantity(used.get(name, 0))}/{_quantity(hard[name])}"
        (limit if name.startswith("limits.") else request).append(entry)
    return [_name(obj), _age(obj, now), ", ".join(request), ", ".join(limit)]


PRINTERS: dict[tuple[str, str], tuple[list[dict], _Cells]] = {
    ("networking.k8s.io", "ingresses"): (
        [_NAME, _col("Class", description="The IngressClass that serves the ingress."),
         _col("Hosts", description="Hosts the rules match."), _col("Address", description="Load-balancer addresses."),
         _col("Ports", description="Ports the ingress opens."), _AGE],
        _ingress_cells,
    ),
    ("networking.k8s.io", "ingressclasses"): (
        [_NAME, _col("Controller", description="The controller implementing the class."),
         _col("Parameters", description="Controller-specific parameters."), _AGE],
        _ingress_class_cells,
    ),
    ("certificates.k8s.io", "certificatesigningrequests"): (
        [_NAME, _AGE, _col("SignerName", description="The requested signer."),
         _col("Requestor", description="Who created the request."),
         _col("RequestedDuration", description="The requested validity of the certificate."),
         _col("Condition", description="Approval and issuance of the request.")],
        _csr_cells,
    ),
    ("storage.k8s.io", "storageclasses"): (
        [_NAME, _col("Provisioner", description="The volume plugin that provisions volumes."),
         _col("ReclaimPolicy", description="What happens to released volumes."),
         _col("VolumeBindingMode", description="When volumes are bound and provisioned."),
         _col("AllowVolumeExpansion", description="Whether volumes can be expanded."), _AGE],
        _storage_class_cells,
    ),
    ("storage.k8s.io", "csidrivers"): (
        [_NAME, _col("AttachRequired", "boolean", description="Whether volumes need an attach operation."),
         _col("PodInfoOnMount", "boolean", description="Whether pod information is passed on mount."),
         _col("StorageCapacity", "boolean", description="Whether storage capacity is considered."),
         _col("TokenRequests", description="Audiences of the service account tokens passed on mount."),
         _col("RequiresRepublish", "boolean", description="Whether volumes are republished periodically."),
         _col("Modes", description="Supported volume lifecycle modes."), _AGE],
        _csi_driver_cells,
    ),
    ("storage.k8s.io", "csinodes"): (
        [_NAME, _col("Drivers", "integer", description="CSI drivers registered on the node."), _AGE],
        _csi_node_cells,
    ),
    ("storage.k8s.io", "csistoragecapacities"): (
        [_NAME, _col("StorageClassName", description="The storage class the capacity is for."),
         _col("Capacity", description="Capacity reported by the driver."), _AGE],
        _csi_capacity_cells,
    ),
    ("scheduling.k8s.io", "priorityclasses"): (
        [_NAME, _col("Value", "integer", description="The priority of pods in the class."),
         _col("Global-Default", "boolean", description="Whether pods without a class get this one."), _AGE,
         _col("PreemptionPolicy", description="Whether pods of the class preempt lower-priority pods.")],
        _priority_class_cells,
    ),
    ("autoscaling", "horizontalpodautoscalers"): (
        [_NAME, _col("Reference", description="The scaled resource."),
         _col("Targets", description="Current and target values of the metrics."),
         _col("MinPods", description="Lower limit of replicas."),
         _col("MaxPods", "integer", description="Upper limit of replicas."),
         _col("Replicas", "integer", description="Current replicas."), _AGE],
        _hpa_cells,
    ),
    ("", "podtemplates"): (
        [_NAME, _col("Containers", description="Names of the containers in the template."),
         _col("Images", description="Images of the containers in the template."),
         _col("Pod Labels", description="Labels of the template's pods.")],
        _pod_template_cells,
    ),
    ("", "limitranges"): ([_NAME, _CREATED_AT], _created_at_cells),
    ("", "resourcequotas"): (
        [_NAME, _AGE, _col("Request", description="Used and hard amounts of requests and object counts."),
         _col("Limit", description="Used and hard amounts of limits.")],
        _quota_cells,
    ),
}
