"""Validation of the cluster-infrastructure kinds, worded as a Kubernetes 1.32 API server words it.

Ingress and IngressClass, StorageClass and the CSI kinds, CertificateSigningRequest, PriorityClass,
HorizontalPodAutoscaler, PodTemplate, LimitRange and ResourceQuota: required fields, enums, name rules and the
immutable fields the real server enforces. Kept to the common, well-known checks; as in validation.py, when unsure
we accept. `validation.validate_builtin` dispatches here through `KINDS`, after checking metadata.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from localkube.apiserver.validation import (
    _DNS1123_SUBDOMAIN_FMT,
    _NEGATIVE_MSG,
    _RESTART_POLICIES,
    _STANDARD_RESOURCES,
    Cause,
    _duplicate,
    _forbidden,
    _invalid,
    _invalid_each,
    _is_extended_resource,
    _is_hugepages,
    _is_int,
    _items,
    _mapping,
    _max_len,
    _not_supported,
    _pod_template,
    _port_num_errors,
    _regex_error,
    _required,
    _resource_name_causes,
    _too_long,
    canonical_quantity,
    dns1035_label_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    parse_quantity,
    path_segment_errors,
    port_name_errors,
    qualified_name_errors,
    validate_labels,
)

Obj = Mapping[str, Any]
_IMMUTABLE = "field is immutable"


def _immutable(path: str, new: Any, old: Any) -> list[Cause]:
    return [_invalid(path, new, _IMMUTABLE)] if new != old else []


def _quantity(raw: Any) -> Decimal | None:
    try:
        return parse_quantity(raw)
    except (ValueError, TypeError):
        return None  # a decode error (400) was reported before validation


# ---------------------------------------------------------------------------------------------------------
# networking.k8s.io/v1: Ingress, IngressClass
# ---------------------------------------------------------------------------------------------------------

_PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIXES = ("/..", "/.")
_WILDCARD_FMT = "\\*\\." + _DNS1123_SUBDOMAIN_FMT
_WILDCARD_MSG = (
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of "
    "lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character"
)
_HTTP_PATH_FMT = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+"


def _host_errors(host: str) -> list[str]:
    """IsDNS1123Subdomain, or IsWildcardDNS1123Subdomain for a host with a '*'."""
    if "*" not in host:
        return dns1123_subdomain_errors(host)
    errs = [_max_len(253)] if len(host) > 253 else []
    if not re.fullmatch(_WILDCARD_FMT, host):
        errs.append(_regex_error(_WILDCARD_MSG, _WILDCARD_FMT, "*.example.com"))
    return errs


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _typed_reference(ref: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if ref.get("apiGroup") is not None:
        group = str(ref["apiGroup"])
        causes += _invalid_each(f"{path}.apiGroup", group, dns1123_subdomain_errors(group))
    for key in ("kind", "name"):
        value = str(ref.get(key) or "")
        if not value:
            causes.append(_required(f"{path}.{key}", f"{key} is required"))
        else:
            causes += _invalid_each(f"{path}.{key}", value, path_segment_errors(value))
    return causes


def _backend(backend: Any, path: str) -> list[Cause]:
    backend = _mapping(backend)
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [_invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return _typed_reference(_mapping(resource), f"{path}.resource")
    if service is None:
        return [_invalid(path, "", "resource or service backend is required")]
    service = _mapping(service)
    causes: list[Cause] = []
    name = str(service.get("name") or "")
    if not name:
        causes.append(_required(f"{path}.service.name"))
    else:
        causes += _invalid_each(f"{path}.service.name", name, dns1035_label_errors(name))
    port = _mapping(service.get("port"))
    port_name, number = port.get("name") or "", port.get("number") or 0
    if port_name and number:
        causes.append(_invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        causes += _invalid_each(f"{path}.service.port.name", port_name, port_name_errors(str(port_name)))
    elif number:
        causes += _invalid_each(f"{path}.service.port.number", number, _port_num_errors(number))
    else:
        causes.append(_required(path, "port name or number is required"))
    return causes


def _http_path(item: Obj, path: str) -> list[Cause]:
    path_type = item.get("pathType")
    if path_type is None:
        return [_required(f"{path}.pathType", "pathType must be specified")]
    value = str(item.get("path") or "")
    causes: list[Cause] = []
    if path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            causes.append(_invalid(f"{path}.path", value, "must be an absolute path"))
        if value:
            causes += [_invalid(f"{path}.path", value, f"must not contain '{seq}'")
                       for seq in _INVALID_PATH_SEQUENCES if seq in value]
            causes += [_invalid(f"{path}.path", value, f"cannot end with '{suffix}'")
                       for suffix in _INVALID_PATH_SUFFIXES if value.endswith(suffix)]
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            causes.append(_invalid(f"{path}.path", value, "must be an absolute path"))
    else:
        causes.append(_not_supported(f"{path}.pathType", path_type, _PATH_TYPES))
    return causes + _backend(item.get("backend"), f"{path}.backend")


def _ingress_rules(rules: Any) -> list[Cause]:
    causes: list[Cause] = []
    for i, rule in enumerate(_items(rules)):
        path = f"spec.rules[{i}]"
        host = str(rule.get("host") or "")
        if host:
            if _is_ip(host):
                causes.append(_invalid(f"{path}.host", host, "must be a DNS name, not an IP address"))
            causes += _invalid_each(f"{path}.host", host, _host_errors(host))
        http = rule.get("http")
        if http is not None:
            paths = _items(_mapping(http).get("paths"))
            if not paths:
                causes.append(_required(f"{path}.http.paths"))
            for j, item in enumerate(paths):
                causes += _http_path(item, f"{path}.http.paths[{j}]")
    return causes


def _validate_ingress(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _mapping(obj.get("spec"))
    causes: list[Cause] = []
    rules = spec.get("rules")
    if not rules and spec.get("defaultBackend") is None:
        causes.append(_invalid("spec", rules, "either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        causes += _backend(spec["defaultBackend"], "spec.defaultBackend")
    causes += _ingress_rules(rules)
    for i, tls in enumerate(_items(spec.get("tls"))):
        for j, host in enumerate(tls.get("hosts") or ()):
            causes += _invalid_each(f"spec.tls[{i}].hosts[{j}]", host, _host_errors(str(host)))
        secret = str(tls.get("secretName") or "")
        if secret:
            causes += _invalid_each(f"spec.tls[{i}].secretName", secret, dns1123_subdomain_errors(secret))
    if spec.get("ingressClassName") is not None:
        name = str(spec["ingressClassName"])
        causes += _invalid_each("spec.ingressClassName", name, dns1123_subdomain_errors(name))
    return causes


def _domain_prefixed_path(path: str, value: str) -> list[Cause]:
    if not value:
        return [_required(path)]
    host, _, rest = value.partition("/")
    if not host or not rest:
        return [_invalid(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    causes = _invalid_each(path, host, dns1123_subdomain_errors(host))
    if not re.fullmatch(_HTTP_PATH_FMT, rest):
        causes.append(_invalid(path, rest, _regex_error("must be a valid path", _HTTP_PATH_FMT)))
    return causes


def _class_parameters(params: Obj, path: str) -> list[Cause]:
    causes = _typed_reference(params, path)
    scope = params.get("scope")
    if scope is None:
        return [*causes, _required(f"{path}.scope")]
    if scope not in ("Cluster", "Namespace"):
        return [*causes, _not_supported(f"{path}.scope", scope, ("Cluster", "Namespace"))]
    namespace = params.get("namespace")
    if scope == "Namespace":
        if namespace is None:
            causes.append(_required(f"{path}.namespace", "`parameters.scope` is set to 'Namespace'"))
        else:
            causes += _invalid_each(f"{path}.namespace", namespace, dns1123_label_errors(str(namespace)))
    elif namespace is not None:
        causes.append(_forbidden(f"{path}.namespace", "`parameters.scope` is set to 'Cluster'"))
    return causes


def _validate_ingress_class(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _mapping(obj.get("spec"))
    controller = str(spec.get("controller") or "")
    causes = [_too_long("spec.controller", 250)] if len(controller) > 250 else []
    causes += _domain_prefixed_path("spec.controller", controller)
    if spec.get("parameters") is not None:
        causes += _class_parameters(_mapping(spec["parameters"]), "spec.parameters")
    if old is not None:
        causes += _immutable("spec.controller", controller, str(_mapping(old.get("spec")).get("controller") or ""))
    return causes


# ---------------------------------------------------------------------------------------------------------
# storage.k8s.io/v1: StorageClass, CSIDriver, CSINode, CSIStorageCapacity
# ---------------------------------------------------------------------------------------------------------


def _validate_storage_class(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    provisioner = str(obj.get("provisioner") or "")
    if not provisioner:
        causes.append(_required("provisioner"))
    else:
        causes += _invalid_each("provisioner", provisioner.lower(), qualified_name_errors(provisioner.lower()))
    for key in _mapping(obj.get("parameters")):
        if not key:
            causes.append(_invalid("parameters", key, "field can not be empty."))
    reclaim = obj.get("reclaimPolicy")
    if reclaim and reclaim not in ("Delete", "Retain"):
        causes.append(_not_supported("reclaimPolicy", reclaim, ("Delete", "Retain")))
    mode = obj.get("volumeBindingMode")
    if mode is None:
        causes.append(_required("volumeBindingMode"))
    elif mode not in ("Immediate", "WaitForFirstConsumer"):
        causes.append(_not_supported("volumeBindingMode", mode, ("Immediate", "WaitForFirstConsumer")))
    if old is not None:
        if (obj.get("parameters") or {}) != (old.get("parameters") or {}):
            causes.append(_forbidden("parameters", "updates to parameters are forbidden."))
        if provisioner != str(old.get("provisioner") or ""):
            causes.append(_forbidden("provisioner", "updates to provisioner are forbidden."))
        if reclaim != old.get("reclaimPolicy"):
            causes.append(_forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
        causes += _immutable("volumeBindingMode", mode, old.get("volumeBindingMode"))
    return causes


def _csi_driver_name(name: str, path: str) -> list[Cause]:
    causes = [_required(path)] if not name else []
    if len(name) > 63:
        causes.append(_too_long(path, 63))
    return causes + _invalid_each(path, name, dns1123_subdomain_errors(name.lower()))


_FS_GROUP_POLICIES = ("File", "None", "ReadWriteOnceWithFSType")


def _validate_csi_driver(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _mapping(obj.get("spec"))
    causes: list[Cause] = []
    for key, path in (("attachRequired", "attachedRequired"), ("podInfoOnMount", "podInfoOnMount"),
                      ("storageCapacity", "storageCapacity"), ("seLinuxMount", "seLinuxMount")):
        if spec.get(key) is None:
            causes.append(_required(f"spec.{path}"))  # sic: the server spells the first one "attachedRequired"
    policy = spec.get("fsGroupPolicy")
    if policy is not None and policy not in _FS_GROUP_POLICIES:
        causes.append(_not_supported("spec.fsGroupPolicy", policy, _FS_GROUP_POLICIES))
    audiences: set[str] = set()
    for i, request in enumerate(_items(spec.get("tokenRequests"))):
        path, audience = f"spec.tokenRequests[{i}]", str(request.get("audience") or "")
        if audience in audiences:
            causes.append(_duplicate(f"{path}.audience", audience))
            continue
        audiences.add(audience)
        seconds = request.get("expirationSeconds")
        if _is_int(seconds) and seconds < 600:
            causes.append(_invalid(f"{path}.expirationSeconds", seconds, "may not specify a duration less than "
                                                                            "10 minutes"))
        if _is_int(seconds) and seconds > 1 << 32:
            causes.append(_invalid(f"{path}.expirationSeconds", seconds, "may not specify a duration larger than "
                                                                            "2^32 seconds"))
    for mode in spec.get("volumeLifecycleModes") or ():
        if mode not in ("Persistent", "Ephemeral"):
            causes.append(_not_supported("spec.volumeLifecycleModes", mode, ("Persistent", "Ephemeral")))
    if old is not None:
        old_spec = _mapping(old.get("spec"))
        causes += _immutable("spec.attachedRequired", spec.get("attachRequired"), old_spec.get("attachRequired"))
        causes += _immutable("spec.volumeLifecycleModes", spec.get("volumeLifecycleModes"),
                             old_spec.get("volumeLifecycleModes"))
    return causes


def _validate_csi_node(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    drivers = _items(_mapping(obj.get("spec")).get("drivers"))
    for i, driver in enumerate(drivers):
        path, name = f"spec.drivers[{i}]", str(driver.get("name") or "")
        causes += _csi_driver_name(name, f"{path}.name")
        node_id = str(driver.get("nodeID") or "")
        if not node_id:
            causes.append(_required(f"{path}.nodeID"))
        if len(node_id) > 192:
            causes.append(_invalid(f"{path}.nodeID", node_id, "must be 192 characters or less"))
        count = _mapping(driver.get("allocatable")).get("count")
        if _is_int(count) and count < 0:
            causes.append(_invalid(f"{path}.allocatable.count", count, _NEGATIVE_MSG))
        if name in names:
            causes.append(_duplicate(f"{path}.name", name))
        names.add(name)
        keys: set[str] = set()
        for key in driver.get("topologyKeys") or ():
            if not key:
                causes.append(_required(path))
            if key in keys:
                causes.append(_duplicate(path, key))
            keys.add(key)
            causes += _invalid_each(path, key, qualified_name_errors(str(key)))
    if old is not None:
        before = {d.get("name"): d for d in _items(_mapping(old.get("spec")).get("drivers"))}
        for driver in drivers:
            if driver.get("name") in before and driver != before[driver["name"]]:
                causes.append(_invalid("spec.drivers", driver, _IMMUTABLE))
    return causes


def _selector_causes(selector: Any, path: str) -> list[Cause]:
    selector = _mapping(selector)
    causes = validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(_items(selector.get("matchExpressions"))):
        op = expr.get("operator")
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            causes.append(_invalid(f"{path}.matchExpressions[{i}].operator", op, "not a valid selector operator"))
    return causes


def _validate_csi_storage_capacity(obj: Obj, old: Obj | None) -> list[Cause]:
    causes = _selector_causes(obj.get("nodeTopology"), "nodeTopology")
    class_name = str(obj.get("storageClassName") or "")
    causes += _invalid_each("storageClassName", class_name, dns1123_subdomain_errors(class_name))
    capacity = _quantity(obj.get("capacity")) if obj.get("capacity") is not None else None
    if capacity is not None and capacity < 0:
        causes.append(_invalid("capacity", canonical_quantity(obj["capacity"]), _NEGATIVE_MSG))
    if old is not None:
        causes += _immutable("nodeTopology", obj.get("nodeTopology"), old.get("nodeTopology"))
        causes += _immutable("storageClassName", class_name, str(old.get("storageClassName") or ""))
    return causes


# ---------------------------------------------------------------------------------------------------------
# certificates.k8s.io/v1: CertificateSigningRequest
# ---------------------------------------------------------------------------------------------------------

KEY_USAGES = (
    "any", "cert sign", "client auth", "code signing", "content commitment", "crl sign", "data encipherment",
    "decipher only", "digital signature", "email protection", "encipher only", "ipsec end system", "ipsec tunnel",
    "ipsec user", "key agreement", "key encipherment", "microsoft sgc", "netscape sgc", "ocsp signing", "s/mime",
    "server auth", "signing", "timestamping",
)
_PEM_BLOCK = re.compile(rb"-----BEGIN ([^-\r\n]*)-----\r?\n(.*?)-----END \1-----", re.S)
_SIGNATURE_ERRORS = (
    (ec.EllipticCurvePublicKey, "x509: ECDSA verification failure"),
    (ed25519.Ed25519PublicKey, "x509: Ed25519 verification failure"),
    (rsa.RSAPublicKey, "crypto/rsa: verification error"),
)


def decode_csr_request(value: Any) -> bytes:
    """The PEM bytes of `spec.request`; ValueError with Go's base64 message (a 400 decode error)."""
    text = "" if value is None else str(value)
    stripped = text.replace("\r", "").replace("\n", "")
    for i, ch in enumerate(stripped):
        if not (ch.isascii() and (ch.isalnum() or ch in "+/=")):
            raise ValueError(f"illegal base64 data at input byte {i}")
    try:
        return base64.b64decode(stripped, validate=True)
    except binascii.Error:
        raise ValueError(f"illegal base64 data at input byte {len(stripped)}") from None


def csr_request_error(value: Any) -> str | None:
    """Why `spec.request` is not a signed PKCS#10 request in a CERTIFICATE REQUEST PEM block, or None."""
    try:
        data = decode_csr_request(value)
    except ValueError:
        return None  # reported at decode time
    match = _PEM_BLOCK.search(data)
    if match is None or match.group(1) != b"CERTIFICATE REQUEST":
        return "PEM block type must be CERTIFICATE REQUEST"
    try:
        request = x509.load_der_x509_csr(base64.b64decode(b"".join(match.group(2).split())))
        if request.is_signature_valid:
            return None
        key = request.public_key()
    except ValueError:
        return "x509: malformed certificate request"
    return next((msg for cls, msg in _SIGNATURE_ERRORS if isinstance(key, cls)), "x509: signature verification failure")


def _signer_name(name: str, path: str) -> list[Cause]:
    if not name:
        return [_required(path)]
    segments = name.split("/")
    if len(segments) != 2:
        return [_invalid(path, name, "must be a fully qualified domain and path of the form "
                                     "'example.com/signer-name'")]
    domain = segments[0]
    causes = [_too_long(path, 253)] if len(domain) > 253 else []
    labels = domain.split(".")
    for label in labels:
        errs = dns1123_label_errors(label)
        if errs:
            causes += [_invalid(path, domain, f'validating label "{label}": {err}') for err in errs]
            break
    if len(labels) < 2:
        causes.append(_invalid(path, domain, "should be a domain with at least two segments separated by dots"))
    return causes


def csr_condition_causes(conditions: Any) -> list[Cause]:
    """Condition types and statuses; Approved and Denied exclude each other, and those and Failed must be True."""
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, cond in enumerate(_items(conditions)):
        path = f"status.conditions[{i}]"
        ctype, status = str(cond.get("type") or ""), str(cond.get("status") or "")
        if not ctype:
            causes.append(_required(f"{path}.type"))
        if not status:
            causes.append(_required(f"{path}.status"))
        elif status not in ("True", "False", "Unknown"):
            causes.append(_not_supported(f"{path}.status", status, ("False", "True", "Unknown")))
        if ctype in ("Approved", "Denied"):
            other = "Denied" if ctype == "Approved" else "Approved"
            if other in seen:
                causes.append(_invalid(f"{path}.type", ctype, "Approved and Denied conditions are mutually exclusive"))
        if ctype in ("Approved", "Denied", "Failed") and status and status != "True":
            causes.append(_not_supported(f"{path}.status", status, ("True",)))
        if ctype in seen:
            causes.append(_duplicate(f"{path}.type", ctype))
        seen.add(ctype)
    return causes


def _validate_csr(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _mapping(obj.get("spec"))
    causes: list[Cause] = []
    error = csr_request_error(spec.get("request"))
    if error:
        causes.append(_invalid("spec.request", spec.get("request"), error))
    usages = spec.get("usages") if isinstance(spec.get("usages"), list) else []
    if not usages:
        causes.append(_required("spec.usages", "usages must be provided"))
    for i, usage in enumerate(usages):
        if usage not in KEY_USAGES:
            causes.append(_not_supported(f"spec.usages[{i}]", usage, KEY_USAGES))
    for i, usage in enumerate(usages):
        if usage in usages[:i]:
            causes.append(_duplicate(f"spec.usages[{i}]", usage))
    causes += _signer_name(str(spec.get("signerName") or ""), "spec.signerName")
    seconds = spec.get("expirationSeconds")
    if _is_int(seconds) and seconds < 600:
        causes.append(_invalid("spec.expirationSeconds", seconds,
                               "may not specify a duration less than 600 seconds (10 minutes)"))
    return causes + csr_condition_causes(_mapping(obj.get("status")).get("conditions"))


# ---------------------------------------------------------------------------------------------------------
# scheduling.k8s.io/v1: PriorityClass
# ---------------------------------------------------------------------------------------------------------

SYSTEM_PRIORITY_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
HIGHEST_USER_PRIORITY = 1000000000
PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")


def _validate_priority_class(obj: Obj, old: Obj | None) -> list[Cause]:
    name = str(_mapping(obj.get("metadata")).get("name") or "")
    value = obj.get("value", 0)
    causes: list[Cause] = []
    if name.startswith("system-"):
        error = None
        if name not in SYSTEM_PRIORITY_CLASSES:
            error = f"{name} is not a known system priority class"
        elif value != SYSTEM_PRIORITY_CLASSES[name]:
            error = f"value of {name} PriorityClass must be {SYSTEM_PRIORITY_CLASSES[name]}"
        elif obj.get("globalDefault"):
            error = f"globalDefault of {name} PriorityClass must be false"
        if error:
            causes.append(_forbidden("metadata.name", "priority class names with 'system-' prefix are reserved for "
                                                      f"system use only. error: {error}"))
    elif _is_int(value) and value > HIGHEST_USER_PRIORITY:
        causes.append(_forbidden("value", f"maximum allowed value of a user defined priority is "
                                          f"{HIGHEST_USER_PRIORITY}"))
    policy = obj.get("preemptionPolicy")
    if policy == "":
        causes.append(_required("preemptionPolicy"))
    elif policy is not None and policy not in PREEMPTION_POLICIES:
        causes.append(_not_supported("preemptionPolicy", policy, PREEMPTION_POLICIES))
    if old is not None:
        if value != old.get("value", 0):
            causes.append(_forbidden("value", "may not be changed in an update."))
        causes += _immutable("preemptionPolicy", policy, old.get("preemptionPolicy"))
    return causes


# ---------------------------------------------------------------------------------------------------------
# autoscaling/v2: HorizontalPodAutoscaler
# ---------------------------------------------------------------------------------------------------------

_METRIC_SOURCES = {"ContainerResource": "containerResource", "External": "external", "Object": "object",
                   "Pods": "pods", "Resource": "resource"}
_METRIC_TARGET_TYPES = ("AverageValue", "Utilization", "Value")


def _metric(metric: Obj, path: str) -> list[Cause]:
    mtype = metric.get("type")
    causes: list[Cause] = []
    if not mtype:
        causes.append(_required(f"{path}.type", "must specify a metric source type"))
    field = _METRIC_SOURCES.get(str(mtype or ""))
    if field is None:
        return [*causes, _not_supported(f"{path}.type", mtype or "", tuple(_METRIC_SOURCES))]
    if metric.get(field) is None:
        causes.append(_required(f"{path}.{field}", "must populate information for the given metric source"))
    for other in _METRIC_SOURCES.values():
        if other != field and metric.get(other) is not None:
            causes.append(_forbidden(f"{path}.{other}", "must populate the given metric source only"))
    source = _mapping(metric.get(field))
    if field in ("resource", "containerResource") and metric.get(field) is not None:
        if not source.get("name"):
            causes.append(_required(f"{path}.{field}.name", "must specify a resource name"))
        target = _mapping(source.get("target"))
        if target.get("averageUtilization") is None and target.get("averageValue") is None:
            causes.append(_required(f"{path}.{field}.target.averageUtilization",
                                    "must set either a target raw value or a target utilization"))
    target_type = _mapping(source.get("target")).get("type")
    if metric.get(field) is not None and target_type is not None and target_type not in _METRIC_TARGET_TYPES:
        causes.append(_not_supported(f"{path}.{field}.target.type", target_type, _METRIC_TARGET_TYPES))
    return causes


def _validate_hpa(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _mapping(obj.get("spec"))
    causes: list[Cause] = []
    low, high = spec.get("minReplicas"), spec.get("maxReplicas", 0)
    if _is_int(low) and low < 1:
        causes.append(_invalid("spec.minReplicas", low, "must be greater than or equal to 1"))
    if _is_int(high) and high < 1:
        causes.append(_invalid("spec.maxReplicas", high, "must be greater than 0"))
    if _is_int(low) and _is_int(high) and high < low:
        causes.append(_invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`"))
    ref = _mapping(spec.get("scaleTargetRef"))
    for key in ("kind", "name"):
        value = str(ref.get(key) or "")
        if not value:
            causes.append(_required(f"spec.scaleTargetRef.{key}"))
        else:
            causes += _invalid_each(f"spec.scaleTargetRef.{key}", value, path_segment_errors(value))
    for i, metric in enumerate(_items(spec.get("metrics"))):
        causes += _metric(metric, f"spec.metrics[{i}]")
    return causes


# ---------------------------------------------------------------------------------------------------------
# v1: PodTemplate, LimitRange, ResourceQuota
# ---------------------------------------------------------------------------------------------------------


def _validate_pod_template(obj: Obj, old: Obj | None) -> list[Cause]:
    return _pod_template(obj.get("template"), "template", _RESTART_POLICIES)


LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")


def _limit_type(value: str, path: str) -> list[Cause]:
    causes = _invalid_each(path, value, qualified_name_errors(value))
    if not causes and "/" not in value and value not in LIMIT_TYPES:
        causes.append(_invalid(path, value, "must be a standard limit type or fully qualified"))
    return causes


def _resource_name(name: str, path: str) -> list[Cause]:
    """validateResourceName: qualified, and standard unless it has a domain prefix."""
    causes = _invalid_each(path, name, qualified_name_errors(name))
    if not causes and "/" not in name and name not in _STANDARD_RESOURCES and not _is_quota_hugepages(name):
        causes.append(_invalid(path, name, "must be a standard resource type or fully qualified"))
    return causes


def _limit_item_causes(item: Obj, path: str) -> list[Cause]:
    ltype = str(item.get("type") or "")
    sections: dict[str, dict[str, Decimal]] = {}
    causes: list[Cause] = []
    for section in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
        values = _mapping(item.get(section))
        if ltype == "Pod" and section in ("default", "defaultRequest"):
            if values:
                causes.append(_forbidden(f"{path}.{section}", "may not be specified when `type` is 'Pod'"))
            continue
        parsed = sections.setdefault(section, {})
        for name, raw in values.items():
            key_path = f"{path}.{section}[{name}]"
            causes += (_resource_name_causes(str(name), key_path) if ltype in ("Pod", "Container")
                       else _resource_name(str(name), key_path))
            amount = _quantity(raw)
            if amount is not None:
                parsed[str(name)] = amount
    if ltype == "PersistentVolumeClaim" and "storage" not in sections["min"] and "storage" not in sections["max"]:
        causes.append(_required(f"{path}.limits", "either minimum or maximum storage value is required, but "
                                                  "neither was provided"))
    return causes + _limit_bounds(item, sections, path)


# (lower, higher, where the error is reported, whose value it quotes, message)
_LIMIT_ORDER = (
    ("min", "max", "min", "min", "min value {a} is greater than max value {b}"),
    ("min", "defaultRequest", "defaultRequest", "defaultRequest", "min value {a} is greater than default request "
                                                                  "value {b}"),
    ("defaultRequest", "max", "defaultRequest", "defaultRequest", "default request value {a} is greater than max "
                                                                  "value {b}"),
    ("defaultRequest", "default", "defaultRequest", "defaultRequest", "default request value {a} is greater than "
                                                                      "default limit value {b}"),
    ("min", "default", "default", "min", "min value {a} is greater than default value {b}"),
    ("default", "max", "default", "max", "default value {a} is greater than max value {b}"),
)


def _limit_bounds(item: Obj, sections: dict[str, dict[str, Decimal]], path: str) -> list[Cause]:
    """min <= defaultRequest <= default <= max for each resource, and ratios of at least 1."""
    causes: list[Cause] = []

    def text(section: str, name: str) -> str:
        return canonical_quantity(_mapping(item.get(section))[name])

    for name in sorted({name for values in sections.values() for name in values}):
        for low, high, where, shown, message in _LIMIT_ORDER:
            lo, hi = sections.get(low, {}).get(name), sections.get(high, {}).get(name)
            if lo is not None and hi is not None and lo > hi:
                causes.append(_invalid(f"{path}.{where}[{name}]", text(shown, name),
                                       message.format(a=text(low, name), b=text(high, name))))
        ratio = sections.get("maxLimitRequestRatio", {}).get(name)
        if ratio is not None and ratio < 1:
            value = text("maxLimitRequestRatio", name)
            causes.append(_invalid(f"{path}.maxLimitRequestRatio[{name}]", value, f"ratio {value} is less than 1"))
    return causes


def _validate_limit_range(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    types: set[str] = set()
    for i, item in enumerate(_items(_mapping(obj.get("spec")).get("limits"))):
        path = f"spec.limits[{i}]"
        ltype = str(item.get("type") or "")
        causes += _limit_type(ltype, f"{path}.type")
        if ltype in types:
            causes.append(_duplicate(f"{path}.type", ltype))
        types.add(ltype)
        causes += _limit_item_causes(item, path)
    return causes


QUOTA_RESOURCES = frozenset({
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.storage",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods", "services",
    "replicationcontrollers", "resourcequotas", "secrets", "persistentvolumeclaims", "configmaps",
    "services.nodeports", "services.loadbalancers",
})
_INTEGER_RESOURCES = frozenset({"pods", "services", "replicationcontrollers", "resourcequotas", "secrets",
                                "persistentvolumeclaims", "configmaps", "services.nodeports",
                                "services.loadbalancers"})
QUOTA_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
                "CrossNamespacePodAffinity")
_POD_COMPUTE = frozenset({"cpu", "memory", "limits.cpu", "limits.memory", "requests.cpu", "requests.memory"})
_EXISTS_ONLY_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "CrossNamespacePodAffinity")


def _is_quota_hugepages(name: str) -> bool:
    return _is_hugepages(name) or name.startswith("requests.hugepages-")


def _scope_fits(scope: str, resource: str) -> bool:
    """IsResourceQuotaScopeValidForResource: scoped quotas only track pods (and BestEffort only their count)."""
    if scope == "BestEffort":
        return resource == "pods"
    if scope in QUOTA_SCOPES:
        return resource == "pods" or resource in _POD_COMPUTE
    return True


def _quota_hard(hard: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for name, raw in _mapping(hard).items():
        name, key_path = str(name), f"{path}[{name}]"
        causes += _resource_name(name, key_path)
        if "/" not in name and name not in QUOTA_RESOURCES and not _is_quota_hugepages(name):
            causes.append(_invalid(key_path, name, "must be a standard resource for quota"))
        amount = _quantity(raw)
        if amount is not None and amount < 0:
            causes.append(_invalid(key_path, canonical_quantity(raw), _NEGATIVE_MSG))
        integral = name in _INTEGER_RESOURCES or _is_extended_resource(name)
        if amount is not None and integral and (amount * 1000) % 1000:
            causes.append(_invalid(key_path, canonical_quantity(raw), "must be an integer"))
    return causes


def _quota_scopes(spec: Obj) -> list[Cause]:
    scopes = [str(s) for s in spec.get("scopes") or ()]
    hard = sorted(str(k) for k in _mapping(spec.get("hard")))
    causes: list[Cause] = []
    for scope in scopes:
        if scope not in QUOTA_SCOPES:
            causes.append(_invalid("spec.scopes", scopes, "unsupported scope"))
        causes += [_invalid("spec.scopes", scopes, "unsupported scope applied to resource")
                   for name in hard if name in QUOTA_RESOURCES and not _scope_fits(scope, name)]
    for pair in (("BestEffort", "NotBestEffort"), ("Terminating", "NotTerminating")):
        if set(pair) <= set(scopes):
            causes.append(_invalid("spec.scopes", scopes, "conflicting scopes"))
    selector = spec.get("scopeSelector")
    path = "spec.scopeSelector.matchExpressions"
    names: set[str] = set()
    for expr in _items(_mapping(selector).get("matchExpressions")):
        scope, op, values = str(expr.get("scopeName") or ""), expr.get("operator"), expr.get("values") or []
        if scope not in QUOTA_SCOPES:
            causes.append(_invalid(f"{path}.scopeName", scope, "unsupported scope"))
        causes += [_invalid(path, selector, "unsupported scope applied to resource")
                   for name in hard if name in QUOTA_RESOURCES and not _scope_fits(scope, name)]
        if scope in _EXISTS_ONLY_SCOPES and op != "Exists":
            causes.append(_invalid(f"{path}.operator", op, "must be 'Exist' when scope is any of "
                                   "ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, "
                                   "ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or "
                                   "ResourceQuotaScopeCrossNamespacePodAffinity"))
        if op in ("In", "NotIn") and not values:
            causes.append(_required(f"{path}.values",
                                    "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"))
        elif op in ("Exists", "DoesNotExist") and values:
            causes.append(_invalid(f"{path}.values", values,
                                   "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"))
        elif op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            causes.append(_invalid(f"{path}.operator", op, "not a valid selector operator"))
        names.add(scope)
    for pair in (("BestEffort", "NotBestEffort"), ("Terminating", "NotTerminating")):
        if set(pair) <= names:
            causes.append(_invalid(path, selector, "conflicting scopes"))
    return causes


def _validate_resource_quota(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    return (_quota_hard(spec.get("hard"), "spec.hard") + _quota_scopes(spec)
            + _quota_hard(status.get("hard"), "status.hard") + _quota_hard(status.get("used"), "status.used"))


# ---------------------------------------------------------------------------------------------------------
# Dispatch (see validation.validate_builtin)
# ---------------------------------------------------------------------------------------------------------

Validator = Any  # Callable[[Obj, Obj | None], list[Cause]]

KINDS: dict[tuple[str, str], tuple[str, bool, Validator]] = {
    ("v1", "PodTemplate"): ("podtemplates", True, _validate_pod_template),
    ("v1", "LimitRange"): ("limitranges", True, _validate_limit_range),
    ("v1", "ResourceQuota"): ("resourcequotas", True, _validate_resource_quota),
    ("networking.k8s.io/v1", "Ingress"): ("ingresses", True, _validate_ingress),
    ("networking.k8s.io/v1", "IngressClass"): ("ingressclasses", False, _validate_ingress_class),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): ("certificatesigningrequests", False, _validate_csr),
    ("storage.k8s.io/v1", "StorageClass"): ("storageclasses", False, _validate_storage_class),
    ("storage.k8s.io/v1", "CSIDriver"): ("csidrivers", False, _validate_csi_driver),
    ("storage.k8s.io/v1", "CSINode"): ("csinodes", False, _validate_csi_node),
    ("storage.k8s.io/v1", "CSIStorageCapacity"): ("csistoragecapacities", True, _validate_csi_storage_capacity),
    ("scheduling.k8s.io/v1", "PriorityClass"): ("priorityclasses", False, _validate_priority_class),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True, _validate_hpa),
}

__all__ = ["KEY_USAGES", "KINDS", "csr_condition_causes", "csr_request_error", "decode_csr_request"]
