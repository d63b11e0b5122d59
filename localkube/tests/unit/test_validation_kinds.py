"""Validation of the cluster-infrastructure kinds: the causes and messages of a 1.32 API server."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from localkube.apiserver.validation import validate_builtin
from localkube.apiserver.validation_kinds import csr_request_error, decode_csr_request


def causes(api_version: str, kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None
           ) -> list[tuple[str, str]]:
    body = {"apiVersion": api_version, "kind": kind, **obj}
    return [(c.field, c.message) for c in validate_builtin(api_version, kind, body, old)]


def meta(name: str = "x", namespace: str | None = "default") -> dict[str, Any]:
    return {"name": name, **({"namespace": namespace} if namespace else {})}


def ingress(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return causes("networking.k8s.io/v1", "Ingress", {"metadata": meta(), "spec": spec})


SERVICE_BACKEND = {"service": {"name": "web", "port": {"number": 80}}}


def test_ingress_needs_a_backend_or_rules() -> None:
    assert ingress({}) == [("spec", "Invalid value: null: either `defaultBackend` or `rules` must be specified")]
    assert ingress({"defaultBackend": SERVICE_BACKEND}) == []


@pytest.mark.parametrize(("path", "expected"), [
    ({"path": "/a", "backend": SERVICE_BACKEND},
     [("spec.rules[0].http.paths[0].pathType", "Required value: pathType must be specified")]),
    ({"path": "/a", "pathType": "Regex", "backend": SERVICE_BACKEND},
     [("spec.rules[0].http.paths[0].pathType",
       'Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix"')]),
    ({"path": "a//b", "pathType": "Prefix", "backend": SERVICE_BACKEND},
     [("spec.rules[0].http.paths[0].path", 'Invalid value: "a//b": must be an absolute path'),
      ("spec.rules[0].http.paths[0].path", "Invalid value: \"a//b\": must not contain '//'")]),
    ({"path": "/a", "pathType": "Exact", "backend": {}},
     [("spec.rules[0].http.paths[0].backend", 'Invalid value: "": resource or service backend is required')]),
    ({"path": "/a", "pathType": "Exact", "backend": {"service": {"name": "Web", "port": {}}}},
     [("spec.rules[0].http.paths[0].backend.service.name",
       'Invalid value: "Web": a DNS-1035 label must consist of lower case alphanumeric characters or \'-\', start '
       "with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
       "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"),
      ("spec.rules[0].http.paths[0].backend", "Required value: port name or number is required")]),
])
def test_ingress_paths_and_backends(path: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert ingress({"rules": [{"host": "shop.example.com", "http": {"paths": [path]}}]}) == expected


def test_ingress_hosts() -> None:
    rule = {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": SERVICE_BACKEND}]}}
    assert ingress({"rules": [{**rule, "host": "*.example.com"}]}) == []
    assert ingress({"rules": [{**rule, "host": "10.0.0.1"}]})[0] == (
        "spec.rules[0].host", 'Invalid value: "10.0.0.1": must be a DNS name, not an IP address')
    [(field, message)] = ingress({"rules": [{**rule, "host": "a.*.com"}]})
    assert field == "spec.rules[0].host" and message.startswith(
        "Invalid value: \"a.*.com\": a wildcard DNS-1123 subdomain must start with '*.'")


def test_ingress_class_controller_is_a_domain_path_and_immutable() -> None:
    def ic(controller: str, old: str | None = None) -> list[tuple[str, str]]:
        body = {"metadata": meta(namespace=None), "spec": {"controller": controller}}
        before = None if old is None else {**body, "spec": {"controller": old}}
        return causes("networking.k8s.io/v1", "IngressClass", body, before)

    assert ic("example.com/ingress") == []
    assert ic("ingress") == [("spec.controller",
                              'Invalid value: "ingress": must be a domain-prefixed path (such as "acme.io/foo")')]
    assert ic("") == [("spec.controller", "Required value")]
    assert ic("example.com/b", old="example.com/a") == [
        ("spec.controller", 'Invalid value: "example.com/b": field is immutable')]


def csr_body(**spec: Any) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bob")])).sign(key, hashes.SHA256()))
    pem = request.public_bytes(serialization.Encoding.PEM)
    return {"metadata": meta("node-csr-Upper_Case", namespace=None), "spec": {
        "request": base64.b64encode(pem).decode(), "signerName": "example.com/signer", "usages": ["client auth"],
        **spec}}


def test_csr_names_are_only_path_segments_and_good_requests_pass() -> None:
    assert causes("certificates.k8s.io/v1", "CertificateSigningRequest", csr_body()) == []


def test_csr_fields() -> None:
    bad = csr_body(request=base64.b64encode(b"hello").decode(), usages=["client auth", "telepathy", "client auth"],
                   signerName="signer", expirationSeconds=60)
    assert causes("certificates.k8s.io/v1", "CertificateSigningRequest", bad) == [
        ("spec.request", 'Invalid value: "aGVsbG8=": PEM block type must be CERTIFICATE REQUEST'),
        ("spec.usages[1]", 'Unsupported value: "telepathy": supported values: "any", "cert sign", "client auth", '
                           '"code signing", "content commitment", "crl sign", "data encipherment", "decipher only", '
                           '"digital signature", "email protection", "encipher only", "ipsec end system", '
                           '"ipsec tunnel", "ipsec user", "key agreement", "key encipherment", "microsoft sgc", '
                           '"netscape sgc", "ocsp signing", "s/mime", "server auth", "signing", "timestamping"'),
        ("spec.usages[2]", 'Duplicate value: "client auth"'),
        ("spec.signerName", "Invalid value: \"signer\": must be a fully qualified domain and path of the form "
                            "'example.com/signer-name'"),
        ("spec.expirationSeconds", "Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)"),
    ]
    assert causes("certificates.k8s.io/v1", "CertificateSigningRequest", csr_body(usages=[]))[0] == (
        "spec.usages", "Required value: usages must be provided")


def test_csr_request_is_checked_for_its_signature_and_base64() -> None:
    request = x509.load_pem_x509_csr(decode_csr_request(csr_body()["spec"]["request"]))
    der = bytearray(request.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 1  # the last byte of the signature's s: still well-formed, no longer valid
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    assert csr_request_error(base64.b64encode(tampered).decode()) == "x509: ECDSA verification failure"
    assert csr_request_error(base64.b64encode(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                              b"-----END CERTIFICATE REQUEST-----\n").decode()) == (
        "x509: malformed certificate request")
    with pytest.raises(ValueError, match="illegal base64 data at input byte 4"):
        decode_csr_request("abcd!")


def test_csr_conditions() -> None:
    from localkube.apiserver.validation_kinds import csr_condition_causes

    both = [{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]
    assert [(c.field, c.message) for c in csr_condition_causes(both)] == [
        ("status.conditions[1].type", 'Invalid value: "Denied": Approved and Denied conditions are mutually exclusive')]
    assert [(c.field, c.message) for c in csr_condition_causes([{"type": "Approved", "status": "False"}])] == [
        ("status.conditions[0].status", 'Unsupported value: "False": supported values: "True"')]


def test_storage_class_fields_and_updates() -> None:
    body = {"metadata": meta("fast", None), "provisioner": "example.com/fast", "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate", "parameters": {"type": "ssd"}}
    assert causes("storage.k8s.io/v1", "StorageClass", body) == []
    assert causes("storage.k8s.io/v1", "StorageClass", {**body, "provisioner": "", "reclaimPolicy": "Recycle"}) == [
        ("provisioner", "Required value"),
        ("reclaimPolicy", 'Unsupported value: "Recycle": supported values: "Delete", "Retain"')]
    changed = {**body, "parameters": {"type": "hdd"}, "reclaimPolicy": "Retain", "volumeBindingMode":
               "WaitForFirstConsumer"}
    assert causes("storage.k8s.io/v1", "StorageClass", changed, body) == [
        ("parameters", "Forbidden: updates to parameters are forbidden."),
        ("reclaimPolicy", "Forbidden: updates to reclaimPolicy are forbidden."),
        ("volumeBindingMode", 'Invalid value: "WaitForFirstConsumer": field is immutable')]


def test_csi_kinds() -> None:
    driver = {"metadata": meta("d.example.com", None), "spec": {
        "attachRequired": True, "podInfoOnMount": False, "storageCapacity": False, "seLinuxMount": False,
        "fsGroupPolicy": "Sometimes", "volumeLifecycleModes": ["Persistent"],
        "tokenRequests": [{"audience": "a", "expirationSeconds": 60}, {"audience": "a"}]}}
    assert causes("storage.k8s.io/v1", "CSIDriver", driver) == [
        ("spec.fsGroupPolicy", 'Unsupported value: "Sometimes": supported values: "File", "None", '
                               '"ReadWriteOnceWithFSType"'),
        ("spec.tokenRequests[0].expirationSeconds", "Invalid value: 60: may not specify a duration less than 10 "
                                                    "minutes"),
        ("spec.tokenRequests[1].audience", 'Duplicate value: "a"')]
    flipped = {**driver, "spec": {**driver["spec"], "attachRequired": False, "fsGroupPolicy": "File",
                                  "tokenRequests": []}}
    assert causes("storage.k8s.io/v1", "CSIDriver", flipped, driver) == [
        ("spec.attachedRequired", "Invalid value: false: field is immutable")]  # sic, as the server spells it
    node = {"metadata": meta("n", None), "spec": {"drivers": [{"name": "d.example.com", "nodeID": ""},
                                                              {"name": "d.example.com", "nodeID": "x"}]}}
    assert causes("storage.k8s.io/v1", "CSINode", node) == [
        ("spec.drivers[0].nodeID", "Required value"), ("spec.drivers[1].name", 'Duplicate value: "d.example.com"')]
    capacity = {"metadata": meta("c"), "storageClassName": "fast", "capacity": "-1Gi"}
    assert causes("storage.k8s.io/v1", "CSIStorageCapacity", capacity) == [
        ("capacity", 'Invalid value: "-1Gi": must be greater than or equal to 0')]
    moved = {**capacity, "capacity": "1Gi", "storageClassName": "slow"}
    assert causes("storage.k8s.io/v1", "CSIStorageCapacity", moved, {**capacity, "capacity": "1Gi"}) == [
        ("storageClassName", 'Invalid value: "slow": field is immutable')]


def test_priority_class_rules() -> None:
    def pc(name: str, value: int, old: dict[str, Any] | None = None, **fields: Any) -> list[tuple[str, str]]:
        return causes("scheduling.k8s.io/v1", "PriorityClass",
                      {"metadata": meta(name, None), "value": value, **fields}, old)

    assert pc("system-node-critical", 2000001000) == []
    assert pc("system-other", 1) == [("metadata.name", "Forbidden: priority class names with 'system-' prefix are "
                                                       "reserved for system use only. error: system-other is not a "
                                                       "known system priority class")]
    assert pc("system-node-critical", 1)[0][1].endswith("error: value of system-node-critical PriorityClass must be "
                                                         "2000001000")
    assert pc("x", 5, preemptionPolicy="Sometimes") == [
        ("preemptionPolicy", 'Unsupported value: "Sometimes": supported values: "PreemptLowerPriority", "Never"')]
    old = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": meta("x", None), "value": 5,
           "preemptionPolicy": "Never"}
    assert pc("x", 6, old, preemptionPolicy="PreemptLowerPriority") == [
        ("value", "Forbidden: may not be changed in an update."),
        ("preemptionPolicy", 'Invalid value: "PreemptLowerPriority": field is immutable')]


def test_hpa_rules() -> None:
    def hpa(spec: dict[str, Any]) -> list[tuple[str, str]]:
        return causes("autoscaling/v2", "HorizontalPodAutoscaler", {"metadata": meta(), "spec": spec})

    ref = {"kind": "Deployment", "name": "web"}
    assert hpa({"scaleTargetRef": ref, "minReplicas": 1, "maxReplicas": 3}) == []
    assert hpa({"scaleTargetRef": {}, "minReplicas": 0, "maxReplicas": 0}) == [
        ("spec.minReplicas", "Invalid value: 0: must be greater than or equal to 1"),
        ("spec.maxReplicas", "Invalid value: 0: must be greater than 0"),
        ("spec.scaleTargetRef.kind", "Required value"), ("spec.scaleTargetRef.name", "Required value")]
    assert hpa({"scaleTargetRef": ref, "minReplicas": 4, "maxReplicas": 3})[0] == (
        "spec.maxReplicas", "Invalid value: 3: must be greater than or equal to `minReplicas`")
    assert hpa({"scaleTargetRef": ref, "maxReplicas": 3, "metrics": [{"type": "Magic"}]}) == [
        ("spec.metrics[0].type", 'Unsupported value: "Magic": supported values: "ContainerResource", "External", '
                                 '"Object", "Pods", "Resource"')]
    assert hpa({"scaleTargetRef": ref, "maxReplicas": 3, "metrics": [{"type": "Resource"}]}) == [
        ("spec.metrics[0].resource", "Required value: must populate information for the given metric source")]


def test_limit_range_rules() -> None:
    def lr(*items: dict[str, Any]) -> list[tuple[str, str]]:
        return causes("v1", "LimitRange", {"metadata": meta(), "spec": {"limits": list(items)}})

    assert lr({"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}, "default": {"cpu": "500m"}}) == []
    assert lr({"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}) == [
        ("spec.limits[0].min[cpu]", 'Invalid value: "2": min value 2 is greater than max value 1')]
    assert lr({"type": "Container", "default": {"cpu": "2"}, "max": {"cpu": "1"}}) == [
        ("spec.limits[0].default[cpu]", 'Invalid value: "1": default value 2 is greater than max value 1')]
    assert lr({"type": "Pod", "default": {"cpu": "1"}}, {"type": "Pod"}) == [
        ("spec.limits[0].default", "Forbidden: may not be specified when `type` is 'Pod'"),
        ("spec.limits[1].type", 'Duplicate value: "Pod"')]
    assert lr({"type": "Node"}) == [("spec.limits[0].type",
                                     'Invalid value: "Node": must be a standard limit type or fully qualified')]


def test_resource_quota_rules() -> None:
    def rq(spec: dict[str, Any]) -> list[tuple[str, str]]:
        return causes("v1", "ResourceQuota", {"metadata": meta(), "spec": spec})

    assert rq({"hard": {"pods": "10", "requests.nvidia.com/gpu": "2", "count/deployments.apps": "3"}}) == []
    assert rq({"hard": {"pods": "1.5", "storage": "1Gi", "cpu": "-1"}}) == [
        ("spec.hard[pods]", 'Invalid value: "1500m": must be an integer'),
        ("spec.hard[storage]", 'Invalid value: "storage": must be a standard resource for quota'),
        ("spec.hard[cpu]", 'Invalid value: "-1": must be greater than or equal to 0')]
    assert rq({"hard": {"pods": "1"}, "scopes": ["BestEffort", "NotBestEffort"]}) == [
        ("spec.scopes", 'Invalid value: ["BestEffort","NotBestEffort"]: conflicting scopes')]
    selector = {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In"}]}
    assert rq({"hard": {"pods": "1"}, "scopeSelector": selector}) == [
        ("spec.scopeSelector.matchExpressions.values",
         "Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector")]


def test_pod_template_validates_its_pod_spec() -> None:
    body = {"metadata": meta(), "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}
    assert causes("v1", "PodTemplate", body) == [("template.spec.containers", "Required value")]
