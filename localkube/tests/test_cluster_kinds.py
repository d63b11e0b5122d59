"""The kinds a real cluster serves besides workloads: created, listed and printed by kubectl and kr8s.

Ingress, IngressClass, CertificateSigningRequest, StorageClass, the CSI kinds, PriorityClass, HorizontalPodAutoscaler
(v2, and v1 for `kubectl autoscale`), PodTemplate, LimitRange and ResourceQuota.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import kr8s
import kr8s.asyncio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kr8s.asyncio.objects import (
    HorizontalPodAutoscaler,
    Ingress,
    IngressClass,
    LimitRange,
    PodTemplate,
    ResourceQuota,
    new_class,
)

from localkube.apiserver.authn import ADMIN
from localkube.testing import api_request, until

MANIFESTS = Path(__file__).parent / "manifests"
StorageClass = new_class("StorageClass", "storage.k8s.io/v1", namespaced=False, asyncio=True, plural="storageclasses")
PriorityClass = new_class("PriorityClass", "scheduling.k8s.io/v1", namespaced=False, asyncio=True,
                          plural="priorityclasses")
CSIStorageCapacity = new_class("CSIStorageCapacity", "storage.k8s.io/v1", namespaced=True, asyncio=True,
                               plural="csistoragecapacities")


def table(text: str) -> list[list[str]]:
    """kubectl's table output as rows of cells (cells are separated by two or more spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def csr_pem(common_name: str = "bob") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
               .sign(key, hashes.SHA256()))
    return base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode()


def csr(name: str, signer: str = "example.com/signer", **spec: object) -> dict:
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": csr_pem(), "signerName": signer, "usages": ["client auth"], **spec}}


@pytest.fixture
def global_kinds(kube) -> Iterator[None]:  # type: ignore[no-untyped-def]
    out = kube.kubectl("create", "-f", str(MANIFESTS / "cluster-kinds-global.yaml")).stdout
    assert "priorityclass.scheduling.k8s.io/batch-low created" in out
    yield
    kube.kubectl("delete", "-f", str(MANIFESTS / "cluster-kinds-global.yaml"), "--wait=false")


def test_namespaced_kinds_through_kubectl_with_their_columns(kubectl) -> None:  # type: ignore[no-untyped-def]
    out = kubectl("create", "-f", str(MANIFESTS / "cluster-kinds.yaml")).stdout
    for created in ("ingress.networking.k8s.io/shop", "horizontalpodautoscaler.autoscaling/shop",
                    "podtemplate/worker", "limitrange/defaults", "resourcequota/small",
                    "csistoragecapacity.storage.k8s.io/zone-a"):
        assert f"{created} created" in out
    ing = table(kubectl("get", "ing").stdout)
    assert ing[0] == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert ing[1][:4] == ["shop", "web", "shop.example.com,api.example.com", "80, 443"]  # no address yet
    hpa = table(kubectl("get", "hpa").stdout)
    assert hpa[0] == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert hpa[1][:6] == ["shop", "Deployment/shop", "cpu: <unknown>/60%, <unknown>/100", "2", "10", "0"]
    templates = table(kubectl("get", "podtemplates").stdout)
    assert templates == [["NAME", "CONTAINERS", "IMAGES", "POD LABELS"], ["worker", "w", "busybox", "app=worker"]]
    limits = table(kubectl("get", "limits").stdout)
    assert limits[0] == ["NAME", "CREATED AT"] and limits[1][0] == "defaults"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", limits[1][1])
    quota = until(lambda: (rows := table(kubectl("get", "quota").stdout))[1][2:] == [
        "pods: 0/10, requests.cpu: 0/4", "limits.memory: 0/8Gi"] and rows, "the quota's status")
    assert quota[0] == ["NAME", "AGE", "REQUEST", "LIMIT"]
    capacity = table(kubectl("get", "csistoragecapacities").stdout)
    assert capacity[0] == ["NAME", "STORAGECLASSNAME", "CAPACITY", "AGE"]
    assert capacity[1][:3] == ["zone-a", "fast", "100Gi"]
    defaults = json.loads(kubectl("get", "limits", "defaults", "-o", "json").stdout)["spec"]["limits"][0]
    assert defaults["defaultRequest"] == {"cpu": "200m", "memory": "64Mi"}  # the server's LimitRange defaulting
    assert json.loads(kubectl("get", "ing", "shop", "-o", "json").stdout)["status"] == {"loadBalancer": {}}


def test_cluster_scoped_kinds_through_kubectl_with_their_columns(kube, global_kinds) -> None:  # type: ignore[no-untyped-def]
    ic = table(kube.kubectl("get", "ingressclasses", "web").stdout)
    assert ic[0] == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
    assert ic[1][:3] == ["web", "example.com/ingress-controller", "IngressParameters.example.com/web-params"]
    sc = table(kube.kubectl("get", "sc", "fast").stdout)
    assert sc[0] == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"]
    assert sc[1][:5] == ["fast (default)", "fast.csi.example.com", "Delete", "WaitForFirstConsumer", "true"]
    drivers = table(kube.kubectl("get", "csidrivers", "fast.csi.example.com").stdout)
    assert drivers[0] == ["NAME", "ATTACHREQUIRED", "PODINFOONMOUNT", "STORAGECAPACITY", "TOKENREQUESTS",
                          "REQUIRESREPUBLISH", "MODES", "AGE"]
    assert drivers[1][:7] == ["fast.csi.example.com", "true", "true", "false", "vault", "false", "Persistent"]
    nodes = table(kube.kubectl("get", "csinodes", "csi-node-a").stdout)
    assert nodes[0] == ["NAME", "DRIVERS", "AGE"] and nodes[1][:2] == ["csi-node-a", "1"]
    pc = {row[0]: row for row in table(kube.kubectl("get", "pc").stdout)}
    assert pc["NAME"] == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    assert [pc["batch-low"][i] for i in (1, 2, 4)] == ["100", "false", "Never"]
    assert [pc["system-node-critical"][i] for i in (1, 2, 4)] == ["2000001000", "false", "PreemptLowerPriority"]
    sc_obj = json.loads(kube.kubectl("get", "sc", "fast", "-o", "json").stdout)
    assert sc_obj["reclaimPolicy"] == "Delete"  # defaulted
    driver = json.loads(kube.kubectl("get", "csidriver", "fast.csi.example.com", "-o", "json").stdout)["spec"]
    assert driver["attachRequired"] is True and driver["volumeLifecycleModes"] == ["Persistent"]


def test_discovery_lists_short_names_categories_and_subresources(kube) -> None:  # type: ignore[no-untyped-def]
    rows = {row[0]: row for row in table(kube.kubectl("api-resources", "-o", "wide").stdout)}
    assert rows["ingresses"][1:5] == ["ing", "networking.k8s.io/v1", "true", "Ingress"]
    assert rows["certificatesigningrequests"][1:5] == ["csr", "certificates.k8s.io/v1", "false",
                                                       "CertificateSigningRequest"]
    assert rows["horizontalpodautoscalers"][1:5] == ["hpa", "autoscaling/v2", "true", "HorizontalPodAutoscaler"]
    assert rows["horizontalpodautoscalers"][-1] == "all"
    for plural, short in (("storageclasses", "sc"), ("priorityclasses", "pc"), ("limitranges", "limits"),
                          ("resourcequotas", "quota")):
        assert rows[plural][1] == short
    _, certs = kube.request("GET", "/apis/certificates.k8s.io/v1")
    names = {r["name"]: r for r in certs["resources"]}
    assert names["certificatesigningrequests/approval"]["verbs"] == ["get", "patch", "update"]
    assert "certificatesigningrequests/status" in names
    _, group = kube.request("GET", "/apis/autoscaling")
    assert [v["version"] for v in group["versions"]] == ["v2", "v1"] and group["preferredVersion"]["version"] == "v2"


def test_strict_field_validation_knows_the_new_kinds(kubectl) -> None:  # type: ignore[no-untyped-def]
    manifest = ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: typo}\n"
                "spec: {defaultBackend: {service: {name: x, port: {number: 80}}}, rulez: []}\n")
    out = kubectl("create", "--validate=strict", "-f", "-", input=manifest, check=False)
    assert out.returncode == 1 and 'strict decoding error: unknown field "spec.rulez"' in out.stderr


def test_invalid_objects_get_the_servers_messages(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    code, err = kube.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses", {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "empty"}, "spec": {}})
    assert code == 422
    assert err["message"] == ('Ingress.networking.k8s.io "empty" is invalid: spec: Invalid value: null: either '
                              '`defaultBackend` or `rules` must be specified')
    code, err = kube.request("POST", "/apis/scheduling.k8s.io/v1/priorityclasses", {
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "too-high"},
        "value": 2000000000})
    assert code == 422 and err["details"]["causes"] == [{
        "reason": "FieldValueForbidden", "field": "value",
        "message": "Forbidden: maximum allowed value of a user defined priority is 1000000000"}]


def test_csr_approve_and_deny_with_kubectl(kube) -> None:  # type: ignore[no-untyped-def]
    base = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
    for name in ("csr-approve", "csr-deny"):
        code, created = kube.request("POST", base, csr(name, expirationSeconds=3600, username="mallory"))
        assert code == 201, created
        assert created["spec"]["username"] == ADMIN.name  # the server writes who asked
        assert created["status"] == {}
    try:
        rows = {r[0]: r for r in table(kube.kubectl("get", "csr").stdout)}
        assert rows["NAME"] == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
        assert rows["csr-approve"][2:] == ["example.com/signer", ADMIN.name, "60m", "Pending"]
        assert "approved" in kube.kubectl("certificate", "approve", "csr-approve").stdout
        assert "denied" in kube.kubectl("certificate", "deny", "csr-deny").stdout
        rows = {r[0]: r for r in table(kube.kubectl("get", "csr").stdout)}
        assert rows["csr-approve"][-1] == "Approved" and rows["csr-deny"][-1] == "Denied"
        refused = kube.kubectl("certificate", "deny", "csr-approve", check=False)
        assert refused.returncode == 1 and "is already Approved" in refused.stderr
        _, approved = kube.request("GET", f"{base}/csr-approve")
        [cond] = approved["status"]["conditions"]
        assert (cond["type"], cond["status"], cond["reason"]) == ("Approved", "True", "KubectlApprove")
        assert cond["lastTransitionTime"]
        # The status subresource cannot take the approval away; the main resource cannot change the spec.
        code, err = kube.request("PUT", f"{base}/csr-approve/status", {**approved, "status": {}})
        assert code == 200 and err["status"]["conditions"][0]["type"] == "Approved"
        code, err = kube.request("PUT", f"{base}/csr-approve/approval", {**approved, "status": {}})
        assert code == 422 and err["details"]["causes"][0]["message"] == (
            'Forbidden: updates may not remove a condition of type "Approved"')
        code, changed = kube.request("PUT", f"{base}/csr-approve", {
            **approved, "spec": {**approved["spec"], "signerName": "example.com/other"}})
        assert code == 200 and changed["spec"]["signerName"] == "example.com/signer"
        by_signer = kube.kubectl("get", "csr", "--field-selector", "spec.signerName=example.com/signer",
                                 "-o", "name").stdout.split()
        assert sorted(by_signer) == ["certificatesigningrequest.certificates.k8s.io/csr-approve",
                                     "certificatesigningrequest.certificates.k8s.io/csr-deny"]
    finally:
        kube.kubectl("delete", "csr", "csr-approve", "csr-deny", "--ignore-not-found")


def test_csr_approval_needs_the_approve_verb_on_the_signer(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    kube.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                 {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "approver"}})
    role = f"csr-approver-{namespace}"
    kube.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role},
        "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests",
                                                                       "certificatesigningrequests/approval"],
                   "verbs": ["get", "list", "update"]}]})
    kube.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "approver", "namespace": namespace}]})
    name = f"csr-{namespace}"
    assert kube.request("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", csr(name))[0] == 201
    try:
        config = kube.service_account_kubeconfig(namespace, "approver")
        out = kube.kubectl("--kubeconfig", str(config), "certificate", "approve", name, check=False)
        assert out.returncode == 1
        assert (f'certificatesigningrequests.certificates.k8s.io "{name}" is forbidden: user not permitted to '
                'approve requests with signerName "example.com/signer"') in out.stderr
        code, _ = api_request(kube.kubeconfig, "PATCH", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}",
                              [{"op": "add", "path": "/rules/-", "value": {
                                  "apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
                                  "resourceNames": ["example.com/*"], "verbs": ["approve"]}}],
                              headers={"Content-Type": "application/json-patch+json"})
        assert code == 200
        assert "approved" in kube.kubectl("--kubeconfig", str(config), "certificate", "approve", name).stdout
    finally:
        kube.kubectl("delete", "csr", name, "--ignore-not-found")
        kube.kubectl("delete", "clusterrolebinding,clusterrole", role, "--ignore-not-found")


def test_kubectl_autoscale_writes_v1_and_both_versions_read_it(kubectl, kube, namespace) -> None:  # type: ignore[no-untyped-def]
    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=0")
    assert "horizontalpodautoscaler.autoscaling/web autoscaled" in kubectl(
        "autoscale", "deployment", "web", "--min=2", "--max=5", "--cpu-percent=70").stdout
    v1 = f"/apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers/web"
    v2 = f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/web"
    _, old = kube.request("GET", v1)
    assert old["apiVersion"] == "autoscaling/v1" and old["spec"]["targetCPUUtilizationPercentage"] == 70
    _, new = kube.request("GET", v2)
    assert new["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    # A v2-only metric survives a read-modify-write at v1 (it rides in an annotation there).
    pods_metric = {"type": "Pods", "pods": {"metric": {"name": "qps"},
                                            "target": {"type": "AverageValue", "averageValue": "10"}}}
    code, _ = kube.request("PUT", v2, {**new, "spec": {**new["spec"], "metrics": [*new["spec"]["metrics"],
                                                                                   pods_metric]}})
    assert code == 200
    _, old = kube.request("GET", v1)
    assert json.loads(old["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]) == [pods_metric]
    code, _ = kube.request("PUT", v1, {**old, "spec": {**old["spec"], "maxReplicas": 7}})
    assert code == 200
    _, new = kube.request("GET", v2)
    assert new["spec"]["maxReplicas"] == 7 and new["spec"]["metrics"][1] == pods_metric
    assert "annotations" not in new["metadata"]
    row = table(kubectl("get", "hpa", "web").stdout)[1]
    assert row[2:5] == ["cpu: <unknown>/70%, <unknown>/10", "2", "7"]


async def test_kr8s_creates_gets_and_lists_the_new_kinds(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    api = await kr8s.asyncio.api(kubeconfig=str(kube.kubeconfig))
    ing = await Ingress({"metadata": {"name": "k", "namespace": namespace}, "spec": {"defaultBackend": {
        "service": {"name": "web", "port": {"number": 80}}}}}, api=api)
    await ing.create()
    assert (await Ingress.get("k", namespace=namespace, api=api)).raw["spec"]["defaultBackend"]["service"][
        "name"] == "web"
    hpa = await HorizontalPodAutoscaler({"metadata": {"name": "k", "namespace": namespace}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "k"}, "maxReplicas": 3}}, api=api)
    await hpa.create()
    assert hpa.raw["spec"]["minReplicas"] == 1 and hpa.raw["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    for cls, body in ((PodTemplate, {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}),
                      (LimitRange, {"spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}}]}}),
                      (ResourceQuota, {"spec": {"hard": {"pods": "5"}}}),
                      (CSIStorageCapacity, {"storageClassName": "fast", "capacity": "1Gi"})):
        obj = await cls({"metadata": {"name": "k", "namespace": namespace}, **body}, api=api)
        await obj.create()
        assert [o.name async for o in api.get(cls, namespace=namespace)] == ["k"]
    quota = await ResourceQuota.get("k", namespace=namespace, api=api)
    await quota.wait("jsonpath='{.status.used.pods}'=0", timeout=30)
    for cls, name in ((IngressClass, f"kr8s-{namespace}"), (StorageClass, f"kr8s-{namespace}"),
                      (PriorityClass, f"kr8s-{namespace}")):
        body = {"IngressClass": {"spec": {"controller": "example.com/c"}},
                "StorageClass": {"provisioner": "example.com/p"}, "PriorityClass": {"value": 5}}[cls.kind]
        obj = await cls({"metadata": {"name": name}, **body}, api=api)
        await obj.create()
        try:
            assert name in [o.name async for o in api.get(cls)]
        finally:
            await obj.delete()
    names = [o.name async for o in api.get("csr")]  # no kr8s class: a dynamic one from discovery
    assert isinstance(names, list)
    assert [o.name async for o in api.get("pc") if o.name.startswith("system-")] == [
        "system-cluster-critical", "system-node-critical"]
