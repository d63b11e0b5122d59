"""Built-in kind validation: strict unknown fields, quantities, names and the 422 causes of a 1.32 server."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from localkube.apiserver.builtin_schemas import BUILTIN_SCHEMAS
from localkube.apiserver.validation import (
    Cause,
    canonical_quantity,
    name_rule_for,
    parse_quantity,
    quantity_decode_error,
    strict_decoding_message,
    unknown_fields,
    validate_builtin,
    validate_object_meta,
    warning_headers,
)

SUBDOMAIN_REGEX = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"


def pod(spec: dict[str, Any], name: str = "p", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", **meta},
        "spec": spec,
    }


def service(spec: dict[str, Any], name: str = "svc") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def container(**extra: Any) -> dict[str, Any]:
    return {"name": "main", "image": "busybox:1.36", **extra}


def messages(causes: list[Cause]) -> list[str]:
    return [c.error() for c in causes]


# --- valid manifests of the described kinds -----------------------------------------------------------------

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}, "annotations": {"example.org/anything": "x"}},
    "spec": {
        "serviceAccountName": "web",
        "securityContext": {"runAsNonRoot": True, "fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [{"name": "init", "image": "busybox", "command": ["true"], "restartPolicy": "Always"}],
        "containers": [
            {
                "name": "web",
                "image": "nginx:1.27",
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token", "optional": True}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                ],
                "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "cfg"}}],
                "resources": {
                    "requests": {"cpu": "250m", "memory": "64Mi"},
                    "limits": {"cpu": 1, "memory": "128Mi", "nvidia.com/gpu": "1"},
                },
                "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                "readinessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2},
                "startupProbe": {"grpc": {"port": 9090}, "failureThreshold": 30},
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }
        ],
        "volumes": [
            {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "a.txt"}]}},
            {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "pvc"}},
            {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
            {"name": "nfs", "nfs": {"server": "nfs.local", "path": "/export"}},
        ],
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {}}
        ],
        "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]},
        "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["local"]}],
        "readinessGates": [{"conditionType": "example.org/ready"}],
        "os": {"name": "linux"},
        "schedulingGates": [{"name": "example.org/gate"}],
        "overhead": {"cpu": "10m"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
    },
}

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app.kubernetes.io/name": "web"}},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "revisionHistoryLimit": 5,
        "template": TEMPLATE,
    },
}

VALID_OBJECTS = [
    DEPLOYMENT,
    {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {
            "serviceName": "db",
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
            "template": TEMPLATE,
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}],
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
        },
    },
    {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
    },
    {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "default"},
        "spec": {
            "schedule": "0 3 * * *",
            "timeZone": "Etc/UTC",
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "podFailurePolicy": {
                        "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
                    },
                    "template": {"spec": {"restartPolicy": "OnFailure", "containers": [container()]}},
                }
            },
        },
    },
    {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}},
    },
    {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "kopf-leader", "namespace": "default"},
        "spec": {"holderIdentity": "op-1", "leaseDurationSeconds": 15, "renewTime": "2025-01-01T00:00:00.000000Z"},
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:dask-operator"},
        "rules": [{"apiGroups": ["kubernetes.dask.org"], "resources": ["*"], "verbs": ["*"]}],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "operator:binding", "namespace": "default"},
        "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "default"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "op"},
    },
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default"},
        "type": "Opaque",
        "stringData": {"token": "abc", ".dockerconfigjson": "{}"},
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"app.properties": "x=1", "KEY_NAME": "v"},
        "binaryData": {"blob": "AAEC"},
    },
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dask-ns", "labels": {"team": "a"}}},
    {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "op", "namespace": "default"},
        "imagePullSecrets": [{"name": "registry"}],
    },
    {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.17a9b8c0d1e2f3a4", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Started",
        "message": "Started container",
        "source": {"component": "kubelet"},
        "type": "Normal",
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny", "namespace": "default"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {}}]}]},
    },
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "daskclusters.kubernetes.dask.org"},
        "spec": {
            "group": "kubernetes.dask.org",
            "names": {"kind": "DaskCluster", "plural": "daskclusters", "shortNames": ["daskcluster"]},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    "subresources": {
                        "status": {},
                        "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"},
                    },
                    "additionalPrinterColumns": [
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                    ],
                }
            ],
        },
    },
]


@pytest.mark.parametrize("obj", VALID_OBJECTS, ids=lambda o: o["kind"])
def test_valid_objects_pass(obj: dict[str, Any]) -> None:
    assert (obj["apiVersion"], obj["kind"]) in BUILTIN_SCHEMAS
    assert unknown_fields(obj["apiVersion"], obj["kind"], obj) == []
    assert quantity_decode_error(obj["apiVersion"], obj["kind"], obj) is None
    assert validate_builtin(obj["apiVersion"], obj["kind"], obj) == []


def test_realistic_pod_with_every_common_field_passes() -> None:
    obj = pod(copy.deepcopy(TEMPLATE["spec"]), labels={"app": "web"})
    obj["status"] = {"phase": "Running", "anything": {"goes": True}}
    assert unknown_fields("v1", "Pod", obj) == []
    assert validate_builtin("v1", "Pod", obj) == []


SERVICES = {
    "ClusterIP": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
    "headless": {"clusterIP": "None", "selector": {"app": "web"}},
    "NodePort": {
        "type": "NodePort",
        "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP", "appProtocol": "kubernetes.io/h2c"},
        ],
        "externalTrafficPolicy": "Local",
    },
    "LoadBalancer": {
        "type": "LoadBalancer",
        "ports": [{"port": 443}],
        "loadBalancerSourceRanges": ["10.0.0.0/8"],
        "allocateLoadBalancerNodePorts": False,
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
        "ipFamilyPolicy": "SingleStack",
        "trafficDistribution": "PreferClose",
    },
    "ExternalName": {"type": "ExternalName", "externalName": "db.example.com."},
}


@pytest.mark.parametrize("spec", SERVICES.values(), ids=SERVICES.keys())
def test_service_types_pass(spec: dict[str, Any]) -> None:
    obj = service(copy.deepcopy(spec))
    assert unknown_fields("v1", "Service", obj) == []
    assert validate_builtin("v1", "Service", obj) == []


# --- strict field validation -------------------------------------------------------------------------------------


def _with(spec_patch: dict[str, Any]) -> dict[str, Any]:
    return pod({"containers": [container(**spec_patch)]})


UNKNOWN_CASES = [
    ("resources typo", _with({"resources": {"limit": {"cpu": "1"}}}), ["spec.containers[0].resources.limit"]),
    ("metadata", {**pod({"containers": [container()]}), "metadata": {"name": "p", "bogus": 1}}, ["metadata.bogus"]),
    ("top level", {**pod({"containers": [container()]}), "foo": 1}, ["foo"]),
    ("spec", pod({"containers": [container()], "restartPolicyy": "Never"}), ["spec.restartPolicyy"]),
    (
        "probe",
        _with({"readinessProbe": {"httpGet": {"prt": 80}, "initialDelay": 1}}),
        ["spec.containers[0].readinessProbe.httpGet.prt", "spec.containers[0].readinessProbe.initialDelay"],
    ),
    (
        "env valueFrom",
        _with({"env": [{"name": "A"}, {"name": "B", "valueFrom": {"secretKeyRef": {"nam": "s", "key": "k"}}}]}),
        ["spec.containers[0].env[1].valueFrom.secretKeyRef.nam"],
    ),
    (
        "volumeMounts",
        _with({"volumeMounts": [{"name": "v", "mountpath": "/x"}]}),
        ["spec.containers[0].volumeMounts[0].mountpath"],
    ),
    (
        "init container",
        pod({"containers": [container()], "initContainers": [container(cmd=["x"])]}),
        ["spec.initContainers[0].cmd"],
    ),
    (
        "volume source",
        pod({"containers": [container()], "volumes": [{"name": "v", "emptyDir": {"size": "1Gi"}}]}),
        ["spec.volumes[0].emptyDir.size"],
    ),
    (
        "security context",
        _with({"securityContext": {"runAsRoot": True}}),
        ["spec.containers[0].securityContext.runAsRoot"],
    ),
    (
        "lifecycle",
        _with({"lifecycle": {"preStop": {"sleep": {"second": 1}}}}),
        ["spec.containers[0].lifecycle.preStop.sleep.second"],
    ),
    (
        "free-form annotations",
        {**pod({"containers": [container()]}), "metadata": {"name": "p", "annotations": {"a": "b"}}},
        [],
    ),
    ("free-form affinity", pod({"containers": [container()], "affinity": {"nodeAffinity": {"whatever": 1}}}), []),
    ("free-form status", {**pod({"containers": [container()]}), "status": {"made": "up"}}, []),
    ("free-form volume source", pod({"containers": [container()], "volumes": [{"name": "v", "csi": {"x": 1}}]}), []),
]


@pytest.mark.parametrize(("obj", "expected"), [c[1:] for c in UNKNOWN_CASES], ids=[c[0] for c in UNKNOWN_CASES])
def test_unknown_pod_fields(obj: dict[str, Any], expected: list[str]) -> None:
    assert unknown_fields("v1", "Pod", obj) == expected


def test_unknown_field_inside_deployment_template() -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limit"] = {}
    obj["spec"]["template"]["metadata"]["label"] = {}
    obj["spec"]["replica"] = 2
    assert unknown_fields("apps/v1", "Deployment", obj) == [  # document order, like the Go decoder
        "spec.template.metadata.label",
        "spec.template.spec.containers[0].resources.limit",
        "spec.replica",
    ]


@pytest.mark.parametrize(
    ("api_version", "kind", "obj", "expected"),
    [
        ("v1", "Service", service({"ports": [{"port": 80, "target": 8080}]}), ["spec.ports[0].target"]),
        ("v1", "ConfigMap", {"metadata": {"name": "c"}, "date": {}}, ["date"]),
        (
            "batch/v1",
            "Job",
            {"spec": {"template": {"spec": {"containers": [{"nme": "x"}]}}}},
            ["spec.template.spec.containers[0].nme"],
        ),
        (
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            {"spec": {"versions": [{"schema": {"openAPIV3Schema": {"anything": 1}}, "servd": True}]}},
            ["spec.versions[0].servd"],
        ),
        ("kubernetes.dask.org/v1", "DaskCluster", {"spec": {"anything": 1}}, []),
        ("v2", "Pod", {"spec": {"anything": 1}}, []),
    ],
)
def test_unknown_fields_other_kinds(api_version: str, kind: str, obj: dict[str, Any], expected: list[str]) -> None:
    assert unknown_fields(api_version, kind, obj) == expected


def test_strict_decoding_message_wording() -> None:
    assert strict_decoding_message("Pod", "v1", ["spec.containers[0].resources.limit"]) == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "spec.containers[0].resources.limit"'
    )
    assert strict_decoding_message("Deployment", "apps/v1", ["spec.a", "spec.b"]) == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.a", unknown field "spec.b"'
    )


def test_warning_headers() -> None:
    assert warning_headers(["spec.foo", "metadata.bar"]) == [
        '299 - "unknown field \\"spec.foo\\""',
        '299 - "unknown field \\"metadata.bar\\""',
    ]


# --- quantities -----------------------------------------------------------------------------------------------------

QUANTITIES = [
    ("500m", Decimal("0.5"), "500m"),
    ("1", Decimal(1), "1"),
    (2, Decimal(2), "2"),
    (0.25, Decimal("0.25"), "250m"),
    ("1Gi", Decimal(2**30), "1Gi"),
    ("1.5Gi", Decimal(3 * 2**29), "1536Mi"),
    ("512Ki", Decimal(512 * 1024), "512Ki"),
    ("0.5Ki", Decimal(512), "512"),
    ("1G", Decimal(10**9), "1G"),
    ("2000", Decimal(2000), "2k"),
    ("1500m", Decimal("1.5"), "1500m"),
    ("1e3", Decimal(1000), "1e3"),
    ("1E3", Decimal(1000), "1e3"),
    ("100u", Decimal("0.0001"), "100u"),
    ("1n", Decimal("1e-9"), "1n"),
    ("0.1n", Decimal("1e-9"), "1n"),
    ("+3", Decimal(3), "3"),
    ("-1", Decimal(-1), "-1"),
    ("  4M ", Decimal(4 * 10**6), "4M"),
    ("0", Decimal(0), "0"),
]


@pytest.mark.parametrize(("text", "value", "canonical"), QUANTITIES)
def test_parse_quantity(text: Any, value: Decimal, canonical: str) -> None:
    assert parse_quantity(text) == value
    assert canonical_quantity(text) == canonical


FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("abc", FORMAT_ERROR),
        ("", FORMAT_ERROR),
        ("1.0.0", FORMAT_ERROR),
        ("1 Gi", FORMAT_ERROR),
        (True, FORMAT_ERROR),
        ("5ki", "unable to parse quantity's suffix"),
        ("1e", "unable to parse quantity's suffix"),
        ("1Gb", FORMAT_ERROR),
        ("1kk", "unable to parse quantity's suffix"),
        ("m", "unable to parse numeric part of quantity"),
    ],
)
def test_parse_quantity_errors(text: Any, error: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_quantity(text)
    assert str(info.value) == error


def test_bad_quantity_is_a_decode_error() -> None:
    obj = _with({"resources": {"limits": {"cpu": "abc"}}})
    assert quantity_decode_error("v1", "Pod", obj) == f'Pod in version "v1" cannot be handled as a Pod: {FORMAT_ERROR}'
    assert validate_builtin("v1", "Pod", obj) == []  # the 422 stage never sees it
    volume = pod({"containers": [container()], "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1kk"}}]})
    assert "suffix" in (quantity_decode_error("v1", "Pod", volume) or "")


# --- names, labels, annotations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "plural", "rule"),
    [
        ("", "namespaces", "label"),
        ("", "services", "dns1035"),
        ("", "pods", "subdomain"),
        ("", "events", "path"),
        ("events.k8s.io", "events", "subdomain"),
        ("rbac.authorization.k8s.io", "clusterroles", "path"),
        ("apps", "deployments", "subdomain"),
        ("kubernetes.dask.org", "daskclusters", "subdomain"),
    ],
)
def test_name_rule_for(group: str, plural: str, rule: str) -> None:
    assert name_rule_for(group, plural) == rule


def test_subdomain_name_message() -> None:
    causes = validate_object_meta({"metadata": {"name": "Bad_Name", "namespace": "default"}}, namespaced=True)
    assert [c.to_dict() for c in causes] == [
        {
            "reason": "FieldValueInvalid",
            "field": "metadata.name",
            "message": 'Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
            f"(e.g. 'example.com', regex used for validation is '{SUBDOMAIN_REGEX}')",
        }
    ]


NAME_CASES = [
    (
        "label",
        "a.b",
        False,
        'metadata.name: Invalid value: "a.b": a lowercase RFC 1123 label must consist of lower case alphanumeric '
        "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    ),
    (
        "dns1035",
        "1svc",
        True,
        'metadata.name: Invalid value: "1svc": a DNS-1035 label must consist of lower case alphanumeric '
        "characters or '-', start with an alphabetic character, and end with an alphanumeric character "
        "(e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
    ),
    ("path", "a/b", True, "metadata.name: Invalid value: \"a/b\": may not contain '/'"),
    ("path", "..", True, "metadata.name: Invalid value: \"..\": may not be '..'"),
]


@pytest.mark.parametrize(("rule", "name", "namespaced", "expected"), NAME_CASES)
def test_name_rules(rule: str, name: str, namespaced: bool, expected: str) -> None:
    meta = {"name": name, **({"namespace": "default"} if namespaced else {})}
    causes = validate_object_meta({"metadata": meta}, namespaced=namespaced, name_rule=rule)
    assert messages(causes) == [expected]


@pytest.mark.parametrize(
    ("meta", "namespaced", "expected"),
    [
        ({"generateName": "worker-", "namespace": "ns"}, True, []),
        ({"name": "Upper-Case", "namespace": "ns"}, True, ["metadata.name"]),
        ({"namespace": "ns"}, True, ["metadata.name: Required value: name or generateName is required"]),
        ({"name": "x"}, True, ["metadata.namespace: Required value"]),
        ({"name": "x", "namespace": "ns"}, False, ["metadata.namespace: Forbidden: not allowed on this type"]),
        (
            {"name": "a" * 254, "namespace": "ns"},
            True,
            ['metadata.name: Invalid value: "' + "a" * 254 + '": must be no more than 253 characters'],
        ),
        (
            {"name": "ok", "namespace": "ns", "generation": -1},
            True,
            ["metadata.generation: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            {
                "name": "ok",
                "namespace": "ns",
                "finalizers": ["kopf.zalando.org/KopfFinalizerMarker", "foregroundDeletion"],
            },
            True,
            [],
        ),
        (
            {
                "name": "ok",
                "namespace": "ns",
                "ownerReferences": [{"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster", "name": "c"}],
            },
            True,
            ['metadata.ownerReferences.uid: Invalid value: "": uid must not be empty'],
        ),
    ],
)
def test_object_meta(meta: dict[str, Any], namespaced: bool, expected: list[str]) -> None:
    errors = messages(validate_object_meta({"metadata": meta}, namespaced=namespaced))
    assert [e if e in expected else e.split(":")[0] for e in errors] == expected


def test_label_key_and_value_messages() -> None:
    meta = {"name": "ok", "namespace": "ns", "labels": {"bad key": "ok", "good": "-bad", "a/b/c": "x"}}
    assert messages(validate_object_meta({"metadata": meta}, namespaced=True)) == [
        "metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' "
        "or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
        "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        'metadata.labels: Invalid value: "-bad": a valid label must be an empty string or consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
        "'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        "metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', "
        "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
        "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS "
        "subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ]


def test_annotations_keys_and_total_size() -> None:
    ok = {"metadata": {"name": "ok", "namespace": "ns", "annotations": {"Example.COM/Key": "v"}}}
    assert validate_object_meta(ok, namespaced=True) == []
    big = {"metadata": {"name": "ok", "namespace": "ns", "annotations": {"a": "x" * 256 * 1024}}}
    assert messages(validate_object_meta(big, namespaced=True)) == [
        "metadata.annotations: Too long: may not be more than 262144 bytes"
    ]


# --- pods -----------------------------------------------------------------------------------------------------------

GPU_PATH = "spec.containers[0].resources.limits[gpu]"
POD_CASES = [
    ("no containers", {"containers": []}, ["spec.containers: Required value"]),
    ("missing image", {"containers": [{"name": "a"}]}, ["spec.containers[0].image: Required value"]),
    ("missing name", {"containers": [{"image": "x"}]}, ["spec.containers[0].name: Required value"]),
    (
        "duplicate names",
        {"containers": [container(), container()]},
        ['spec.containers[1].name: Duplicate value: "main"'],
    ),
    (
        "init duplicates regular",
        {"containers": [container()], "initContainers": [container()]},
        ['spec.initContainers[0].name: Duplicate value: "main"'],
    ),
    (
        "restart policy",
        {"containers": [container()], "restartPolicy": "Sometimes"},
        ['spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'],
    ),
    (
        "pull policy",
        {"containers": [container(imagePullPolicy="Sometimes")]},
        [
            'spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: '
            '"Always", "IfNotPresent", "Never"'
        ],
    ),
    (
        "port range",
        {"containers": [container(ports=[{"containerPort": 70000}, {"containerPort": 0}])]},
        [
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[1].containerPort: Required value",
        ],
    ),
    (
        "port name",
        {
            "containers": [
                container(ports=[{"name": "http-dashboard-x", "containerPort": 1}, {"name": "80", "containerPort": 2}])
            ]
        },
        [
            'spec.containers[0].ports[0].name: Invalid value: "http-dashboard-x": must be no more than 15 characters',
            'spec.containers[0].ports[1].name: Invalid value: "80": must contain at least one letter (a-z)',
        ],
    ),
    (
        "protocol",
        {"containers": [container(ports=[{"containerPort": 1, "protocol": "tcp"}])]},
        ['spec.containers[0].ports[0].protocol: Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"'],
    ),
    (
        "requests above limits",
        {"containers": [container(resources={"limits": {"cpu": "1"}, "requests": {"cpu": "1500m"}})]},
        ['spec.containers[0].resources.requests: Invalid value: "1500m": must be less than or equal to cpu limit of 1'],
    ),
    (
        "extended resource without limit",
        {"containers": [container(resources={"requests": {"nvidia.com/gpu": 1}})]},
        ["spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"],
    ),
    (
        "extended resource not integer",
        {"containers": [container(resources={"limits": {"nvidia.com/gpu": "500m"}})]},
        ['spec.containers[0].resources.limits[nvidia.com/gpu]: Invalid value: "500m": must be an integer'],
    ),
    (
        "negative quantity",
        {"containers": [container(resources={"limits": {"memory": "-1Gi"}})]},
        ['spec.containers[0].resources.limits[memory]: Invalid value: "-1Gi": must be greater than or equal to 0'],
    ),
    (
        "unknown resource name",
        {"containers": [container(resources={"limits": {"gpu": "1"}})]},
        [
            f'{GPU_PATH}: Invalid value: "gpu": must be a standard resource type or fully qualified',
            f'{GPU_PATH}: Invalid value: "gpu": must be a standard resource for containers',
        ],
    ),
    (
        "env name",
        {"containers": [container(env=[{"name": "1BAD", "value": "x"}, {"value": "y"}])]},
        [
            'spec.containers[0].env[0].name: Invalid value: "1BAD": a valid environment variable name must consist of '
            "alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  "
            "or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
            "spec.containers[0].env[1].name: Required value",
        ],
    ),
    (
        "mount of missing volume",
        {"containers": [container(volumeMounts=[{"name": "data", "mountPath": "/d"}])]},
        ['spec.containers[0].volumeMounts[0].name: Not found: "data"'],
    ),
    (
        "probe port name",
        {"containers": [container(livenessProbe={"tcpSocket": {"port": "Bad_Port"}})]},
        [
            'spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: "Bad_Port": must contain only '
            "alpha-numeric characters (a-z, 0-9), and hyphens (-)"
        ],
    ),
    (
        "probe without handler",
        {"containers": [container(readinessProbe={"periodSeconds": 1})]},
        ["spec.containers[0].readinessProbe: Required value: must specify a handler type"],
    ),
    (
        "liveness success threshold",
        {"containers": [container(livenessProbe={"exec": {"command": ["true"]}, "successThreshold": 2})]},
        ["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"],
    ),
    (
        "volume without source",
        {"containers": [container()], "volumes": [{"name": "v"}]},
        ["spec.volumes[0]: Required value: must specify a volume type"],
    ),
    (
        "deadline",
        {"containers": [container()], "activeDeadlineSeconds": 0},
        ["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"],
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in POD_CASES], ids=[c[0] for c in POD_CASES])
def test_pod_causes(spec: dict[str, Any], expected: list[str]) -> None:
    assert messages(validate_builtin("v1", "Pod", pod(spec))) == expected


def test_pod_cause_reasons() -> None:
    causes = validate_builtin("v1", "Pod", pod({"containers": [{"name": "A_b"}], "restartPolicy": "Sometimes"}))
    assert [(c.field, c.reason) for c in causes] == [
        ("spec.containers[0].name", "FieldValueInvalid"),
        ("spec.containers[0].image", "FieldValueRequired"),
        ("spec.restartPolicy", "FieldValueNotSupported"),
    ]


def test_pod_update_allows_image_changes_only() -> None:
    old = pod({"containers": [container(ports=[{"containerPort": 80}])], "tolerations": []})
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:1.37"
    new["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    new["spec"]["activeDeadlineSeconds"] = 30
    assert validate_builtin("v1", "Pod", new, old) == []
    new["spec"]["containers"][0]["ports"][0]["containerPort"] = 81
    causes = validate_builtin("v1", "Pod", new, old)
    assert [(c.field, c.reason) for c in causes] == [("spec", "FieldValueForbidden")]
    assert causes[0].message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    )
    assert "spec.containers[0].ports[0].containerPort" in causes[0].message


def test_pod_update_container_count() -> None:
    old = pod({"containers": [container()]})
    new = pod({"containers": [container(), container(name="two")]})
    assert messages(validate_builtin("v1", "Pod", new, old)) == [
        "spec.containers: Forbidden: pod updates may not add or remove containers"
    ]


# --- services -------------------------------------------------------------------------------------------------------

SERVICE_CASES = [
    ("no ports", {"selector": {"app": "x"}}, ["spec.ports: Required value"]),
    (
        "names required with several ports",
        {"ports": [{"port": 80}, {"name": "b", "port": 81}]},
        ["spec.ports[0].name: Required value"],
    ),
    (
        "duplicate names",
        {"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]},
        ['spec.ports[1].name: Duplicate value: "a"'],
    ),
    (
        "port range",
        {"ports": [{"port": 0}]},
        [  # targetPort defaults to port, so the server reports both
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
        ],
    ),
    (
        "protocol",
        {"ports": [{"port": 80, "protocol": "HTTP"}]},
        ['spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'],
    ),
    (
        "type",
        {"type": "Internal", "ports": [{"port": 80}]},
        [
            'spec.type: Unsupported value: "Internal": supported values: '
            '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'
        ],
    ),
    (
        "target port",
        {"ports": [{"port": 80, "targetPort": 70000}]},
        ["spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"],
    ),
    (
        "node port on ClusterIP",
        {"ports": [{"port": 80, "nodePort": 30000}]},
        ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
    ),
    ("external name", {"type": "ExternalName"}, ["spec.externalName: Required value"]),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in SERVICE_CASES], ids=[c[0] for c in SERVICE_CASES])
def test_service_causes(spec: dict[str, Any], expected: list[str]) -> None:
    assert messages(validate_builtin("v1", "Service", service(spec))) == expected


def test_service_name_is_dns1035() -> None:
    causes = validate_builtin("v1", "Service", service({"ports": [{"port": 80}]}, name="1-svc"))
    assert [c.field for c in causes] == ["metadata.name"]
    assert "DNS-1035" in causes[0].message


# --- config maps and secrets ------------------------------------------------------------------------------------------


def test_config_map_keys() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "d"},
        "data": {"a/b": "", "..x": ""},
    }
    assert messages(validate_builtin("v1", "ConfigMap", obj)) == [
        "data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or "
        "'.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        "data[..x]: Invalid value: \"..x\": must not start with '..'",
    ]


def test_secret_string_data_keys_and_immutability() -> None:
    old = {"metadata": {"name": "s", "namespace": "d"}, "data": {"a": "eA=="}, "immutable": True}
    bad_key = {**old, "stringData": {"b c": "x"}}
    assert [c.field for c in validate_builtin("v1", "Secret", bad_key)] == ["data[b c]"]
    changed = {**old, "data": {"a": "eQ=="}}
    assert messages(validate_builtin("v1", "Secret", changed, old)) == [
        "data: Forbidden: field is immutable when `immutable` is set"
    ]
    assert validate_builtin("v1", "Secret", copy.deepcopy(old), old) == []


# --- workload controllers --------------------------------------------------------------------------------


def test_deployment_selector_mismatch() -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    assert messages(validate_builtin("apps/v1", "Deployment", obj)) == [
        'spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match template `labels`'
    ]


def test_deployment_without_selector() -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    del obj["spec"]["selector"]
    assert messages(validate_builtin("apps/v1", "Deployment", obj)) == [
        "spec.selector: Required value",
        'spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match template `labels`',
    ]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"replicas": -1}, ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]),
        ({"selector": {}}, ["spec.selector: Invalid value: {}: empty selector is invalid for deployment"]),
    ],
)
def test_deployment_spec_causes(patch: dict[str, Any], expected: list[str]) -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["spec"].update(patch)
    assert messages(validate_builtin("apps/v1", "Deployment", obj)) == expected


def test_template_rules_use_template_paths() -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    template = obj["spec"]["template"]
    template["spec"]["restartPolicy"] = "Never"
    template["spec"]["containers"][0]["image"] = ""
    template["metadata"]["labels"]["bad key"] = "x"
    obj["spec"]["selector"] = {"matchLabels": {"app": "web"}}
    errors = messages(validate_builtin("apps/v1", "Deployment", obj))
    assert [e.split(":")[0] for e in errors] == [
        "spec.template.labels",
        "spec.template.spec.containers[0].image",
        "spec.template.spec.restartPolicy",
    ]
    assert errors[-1] == 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'


def test_deployment_selector_is_immutable() -> None:
    old = copy.deepcopy(DEPLOYMENT)
    new = copy.deepcopy(DEPLOYMENT)
    new["spec"]["selector"]["matchLabels"]["tier"] = "x"
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    assert [c.field for c in validate_builtin("apps/v1", "Deployment", new, old)] == ["spec.selector"]


def test_job_restart_policy() -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "d"},
        "spec": {"template": {"spec": {"containers": [container()], "restartPolicy": "Always"}}},
    }
    assert messages(validate_builtin("batch/v1", "Job", job)) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"'
    ]


def test_undescribed_kinds_are_not_validated() -> None:
    obj = {"metadata": {"name": "Bad_Name"}, "spec": {}}
    assert validate_builtin("kubernetes.dask.org/v1", "DaskCluster", obj) == []
    assert validate_builtin("v1", "Namespace", {"metadata": {"name": "ns"}}) == []
    assert [c.field for c in validate_builtin("v1", "Namespace", {"metadata": {"name": "a.b"}})] == ["metadata.name"]
