"""The four CustomResourceDefinitions, built from shared pieces and written to `crds/*.yaml`.

`python -m dask_kube.operator.crd_schemas` rewrites the YAML files; a unit test fails when they drift from this
module. Pod and Service specs are stored with `x-kubernetes-preserve-unknown-fields`, so fields that newer
Kubernetes versions add are never pruned; the operator validates them against the real API server instead
(a server-side dry run), so that a typo such as `resources: {limit: ...}` becomes an error on the resource.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .. import naming, specs

CRD_DIR = Path(__file__).parent / "crds"

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "description": "Labels and annotations added to the objects created from this spec.",
    "properties": {"labels": _STRING_MAP, "annotations": _STRING_MAP},
}
_POD_SPEC: dict[str, Any] = {
    "type": "object",
    "description": "A Kubernetes PodSpec.",
    "x-kubernetes-preserve-unknown-fields": True,
    "required": ["containers"],
    "properties": {
        "containers": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "required": ["name"],
                      "properties": {"name": {"type": "string"}}},
        },
    },
}
_SERVICE_SPEC = {"type": "object", "description": "A Kubernetes ServiceSpec.",
                 "x-kubernetes-preserve-unknown-fields": True}
_WORKER = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "replicas": {"type": "integer", "default": 1, "minimum": 0, "description": "Number of worker Pods."},
        "metadata": _METADATA,
        "spec": _POD_SPEC,
        "rollingUpdate": {
            "type": "object",
            "description": "How a changed template replaces the workers, as a Deployment's rolling update "
                           "(docs/operator.md); retired workers hand their data over first.",
            "properties": {
                "maxSurge": {"x-kubernetes-int-or-string": True, "description": (
                    "Pods above replicas during a rollout: a number or a percentage of replicas (rounded up); "
                    "default 25%.")},
                "maxUnavailable": {"x-kubernetes-int-or-string": True, "description": (
                    "Connected workers below replicas during a rollout: a number or a percentage (rounded down); "
                    "default 25%.")},
            },
        },
    },
}
_SCHEDULER = {
    "type": "object",
    "required": ["spec", "service"],
    "properties": {
        "metadata": _METADATA, "spec": _POD_SPEC, "service": _SERVICE_SPEC,
        "disruptionBudget": {"type": "boolean", "description": (
            "Protect the scheduler pod with a PodDisruptionBudget (minAvailable 1), so that drains and other "
            "evictions are refused for it instead of restarting it (a new scheduler has lost its state). Unset: "
            "the operator's default (kubernetes.operator.scheduler-disruption-budget).")},
    },
}
# A Secret name is a DNS-1123 subdomain.
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_TLS = {
    "type": "object",
    "description": "Mutual TLS between the scheduler, workers, job runner and clients (docs/security.md).",
    "properties": {
        "enabled": {"type": "boolean", "default": False,
                    "description": "Speak tls:// only; plain connections are refused."},
        "secretName": {"type": "string", "maxLength": 253, "pattern": _DNS_SUBDOMAIN,
                       "description": "A Secret of this namespace with keys ca.crt, tls.crt and tls.key to use; "
                                      "unset: the operator generates a CA and a certificate in Secret "
                                      "{name}-tls."},
    },
}
_NETWORK_POLICY = {
    "type": "object",
    "description": "A NetworkPolicy {name}-scheduler that lets only pods of this namespace and the operator reach "
                   "the scheduler.",
    "properties": {"enabled": {"type": "boolean", "default": False,
                               "description": "Create the NetworkPolicy (and delete it when set back to false)."}},
}
_CLUSTER_SPEC = {
    "type": "object",
    "required": ["scheduler", "worker"],
    "properties": {
        "idleTimeout": {"type": "integer", "default": 0, "minimum": 0,
                        "description": "Delete the cluster once its scheduler has been idle this many seconds; "
                                       "0 never."},
        "tls": _TLS,
        "networkPolicy": _NETWORK_POLICY,
        "scheduler": _SCHEDULER,
        "worker": _WORKER,
    },
}
_CONDITIONS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer"},
        },
    },
}


def _status(**properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {"conditions": _CONDITIONS, "observedGeneration": {"type": "integer"}, **properties},
    }


_WORKER_STATUS = {
    "replicas": {"type": "integer", "description": "Worker Pods that exist and are not terminating."},
    "readyReplicas": {"type": "integer", "description": "Workers connected to the scheduler."},
    "selector": {"type": "string", "description": "Label selector of the worker Pods (for the scale subresource)."},
    "updatedReplicas": {"type": "integer", "description": "Worker Pods made from the current template."},
}


def _column(name: str, type_: str, path: str, description: str = "", priority: int = 0) -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if description:
        col["description"] = description
    if priority:
        col["priority"] = priority
    return col


_AGE = _column("Age", "date", ".metadata.creationTimestamp")


def _crd(kind: str, singular: str, short_names: list[str], spec: dict[str, Any], status: dict[str, Any],
         columns: list[dict[str, Any]], scale: bool) -> dict[str, Any]:
    plural = naming.PLURALS[kind]
    subresources: dict[str, Any] = {"status": {}}
    if scale:
        subresources["scale"] = {"specReplicasPath": ".spec.worker.replicas",
                                 "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"}
    names: dict[str, Any] = {"plural": plural, "singular": singular, "kind": kind, "categories": ["dask"]}
    if short_names:
        names["shortNames"] = short_names
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{naming.GROUP}"},
        "spec": {
            "group": naming.GROUP,
            "scope": "Namespaced",
            "names": names,
            "versions": [{
                "name": naming.VERSION,
                "served": True,
                "storage": True,
                "subresources": subresources,
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {"spec": spec, "status": status},
                }},
            }],
        },
    }


def crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD."""
    worker_columns = [
        _column("Workers", "integer", ".spec.worker.replicas", "Desired workers"),
        _column("Ready", "integer", ".status.readyReplicas", "Workers connected to the scheduler"),
    ]
    cluster = _crd(
        naming.DASKCLUSTER, "daskcluster", ["daskcluster", "dsk"], _CLUSTER_SPEC,
        _status(phase={"type": "string", "enum": [p.value for p in naming.ClusterPhase]}, **_WORKER_STATUS,
                appliedWorkerReplicas={"type": "integer", "description": "The replicas last given to the default "
                                                                        "worker group (which side changed last)."},
                schedulerPodUID={"type": "string", "description": "The scheduler pod the operator created last."},
                tlsSecretName={"type": "string", "description": "The Secret holding the cluster's certificates "
                                                                "(TLS clusters only)."},
                distributedVersion={"type": "string", "description": "The distributed version the scheduler "
                                                                     "reports."},
                networkPolicyName={"type": "string", "description": "The NetworkPolicy the operator created for "
                                                                    "the scheduler (spec.networkPolicy)."}),
        [*worker_columns, _column("Status", "string", ".status.phase"),
         _column("Dask", "string", ".status.distributedVersion", "The scheduler's distributed version"), _AGE],
        scale=True)
    group = _crd(
        naming.DASKWORKERGROUP, "daskworkergroup", ["daskworkers"],
        {"type": "object", "required": ["cluster", "worker"],
         "properties": {"cluster": {"type": "string", "description": "The DaskCluster these workers join."},
                        "worker": _WORKER}},
        _status(**_WORKER_STATUS),
        [_column("Cluster", "string", ".spec.cluster"), *worker_columns, _AGE], scale=True)
    job_pod_spec = {**_POD_SPEC, "properties": {
        **_POD_SPEC["properties"],
        "restartPolicy": {"type": "string", "default": "OnFailure", "enum": ["OnFailure", "Never", "Always"]},
    }}
    job = _crd(
        naming.DASKJOB, "daskjob", ["djb"],
        {"type": "object", "required": ["job", "cluster"], "properties": {
            "job": {"type": "object", "required": ["spec"], "properties": {"metadata": _METADATA,
                                                                           "spec": job_pod_spec}},
            "cluster": {"type": "object", "required": ["spec"], "properties": {"metadata": _METADATA,
                                                                               "spec": _CLUSTER_SPEC}},
            "activeDeadlineSeconds": {"type": "integer", "minimum": 1,
                                      "description": "Fail the job if it has not finished this many seconds after "
                                                     "it was created."},
            "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0,
                                        "description": "Delete the DaskJob this many seconds after it finished."},
        }},
        _status(
            jobStatus={"type": "string", "enum": [s.value for s in naming.JobStatus]},
            clusterName={"type": "string"},
            jobRunnerPodName={"type": "string"},
            startTime={"type": "string", "format": "date-time", "nullable": True},
            endTime={"type": "string", "format": "date-time", "nullable": True},
        ),
        [_column("Status", "string", ".status.jobStatus"),
         _column("Workers", "integer", ".spec.cluster.spec.worker.replicas", "Number of workers"),
         _column("Started", "date", ".status.startTime", priority=1),
         _column("Finished", "date", ".status.endTime", priority=1), _AGE],
        scale=False)
    autoscaler = _crd(
        naming.DASKAUTOSCALER, "daskautoscaler", [],
        {"type": "object", "required": ["cluster", "minimum", "maximum"], "properties": {
            "cluster": {"type": "string", "description": "The DaskCluster to autoscale."},
            "minimum": {"type": "integer", "minimum": 0, "description": "Minimum number of workers."},
            "maximum": {"type": "integer", "minimum": 0, "description": "Maximum number of workers."},
            "workerGroup": {"type": "string", "description": "The DaskWorkerGroup to scale (default: the "
                                                               "cluster's default group)."},
        }},
        _status(desiredWorkers={"type": "integer"}, lastScaleTime={"type": "string", "format": "date-time"}),
        [_column("Cluster", "string", ".spec.cluster", "Cluster to autoscale"),
         _column("Minimum", "integer", ".spec.minimum"), _column("Maximum", "integer", ".spec.maximum"),
         _column("Desired", "integer", ".status.desiredWorkers"), _AGE],
        scale=False)
    return {"daskcluster.yaml": cluster, "daskworkergroup.yaml": group, "daskjob.yaml": job,
            "daskautoscaler.yaml": autoscaler}


def render(crd: dict[str, Any]) -> str:
    header = "# Generated by `python -m dask_kube.operator.crd_schemas`; edit that module, not this file.\n"
    return header + specs.to_yaml(crd)


def main() -> int:
    CRD_DIR.mkdir(exist_ok=True)
    for filename, crd in crds().items():
        (CRD_DIR / filename).write_text(render(crd))
        print(f"wrote {CRD_DIR / filename}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
