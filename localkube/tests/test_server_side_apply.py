"""Server-side apply and managedFields through real clients: kubectl (apply --server-side, diff, patch, scale,
get --show-managed-fields), kr8s and raw HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import kr8s.asyncio
import pytest
import yaml
from kr8s.asyncio.objects import ConfigMap

from localkube.testing import api_request, until

CRD_NAME = "pools.ssa.example.com"
CRD = f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {CRD_NAME}}}
spec:
  group: ssa.example.com
  names: {{kind: Pool, plural: pools, singular: pool}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              workers:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name, zone]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {{type: string}}
                    zone: {{type: string, default: a}}
                    size: {{type: integer}}
              selector:
                type: object
                x-kubernetes-map-type: atomic
                additionalProperties: {{type: string}}
          status:
            type: object
            properties:
              phase: {{type: string}}
"""

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: "nginx:1.27", ports: [{containerPort: 80}]}
"""
SIDECAR = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - {name: proxy, image: "envoy:1.30", args: ["--config", "/etc/envoy.yaml"]}
"""
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue, size: large}\n"
APPLY = {"Content-Type": "application/apply-patch+yaml"}


def _managed(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """managedFields by manager (and subresource, when set)."""
    return {e["manager"] + (f"/{e['subresource']}" if e.get("subresource") else ""): e
            for e in obj["metadata"].get("managedFields", [])}


def _get(kubectl, *what: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return json.loads(kubectl("get", *what, "-o", "json", "--show-managed-fields").stdout)


def _apply(kube, path: str, body: dict[str, Any], query: str = "fieldManager=test") -> tuple[int, Any]:  # type: ignore[no-untyped-def]
    return api_request(kube.kubeconfig, "PATCH", f"{path}?{query}", body, headers=APPLY)


@pytest.fixture(scope="module")
def pool_crd(kube):  # type: ignore[no-untyped-def]
    kube.kubectl("apply", "--server-side", "-f", "-", input=CRD)
    kube.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=30s")
    return CRD_NAME


# ------------------------------------------------------------------------------------------- kubectl apply


def test_apply_creates_then_is_unchanged_and_records_one_apply_entry(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert kubectl("apply", "--server-side", "-f", "-", input=CONFIGMAP).stdout.strip() == (
        "configmap/settings serverside-applied")
    first = _get(kubectl, "configmap", "settings")
    assert first["data"] == {"color": "blue", "size": "large"}
    (entry,) = first["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == ("kubectl", "Apply", "v1")
    assert entry["fieldsV1"] == {"f:data": {"f:color": {}, "f:size": {}}}
    kubectl("apply", "--server-side", "-f", "-", input=CONFIGMAP)
    again = _get(kubectl, "configmap", "settings")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]  # a no-op apply writes nothing


def test_two_field_managers_own_their_fields_and_removal_is_per_manager(kubectl) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "--server-side", "--field-manager=alpha", "-f", "-", input=CONFIGMAP)
    kubectl("apply", "--server-side", "--field-manager=beta", "-f", "-",
            input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {shape: round, size: large}\n")
    obj = _get(kubectl, "configmap", "settings")
    assert obj["data"] == {"color": "blue", "size": "large", "shape": "round"}
    managed = _managed(obj)
    assert managed["alpha"]["fieldsV1"] == {"f:data": {"f:color": {}, "f:size": {}}}
    assert managed["beta"]["fieldsV1"] == {"f:data": {"f:shape": {}, "f:size": {}}}  # size: same value, shared
    # alpha stops applying size and color: color goes, size stays (beta still owns it).
    kubectl("apply", "--server-side", "--field-manager=alpha", "-f", "-",
            input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n")
    obj = _get(kubectl, "configmap", "settings")
    assert obj["data"] == {"size": "large", "shape": "round"}
    assert "alpha" not in _managed(obj)  # it owns nothing any more


def test_conflict_with_another_manager_then_force_takes_ownership(kubectl) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "--server-side", "-f", "-", input=DEPLOYMENT)
    assert "deployment.apps/web scaled" in kubectl("scale", "deployment/web", "--replicas=3").stdout
    kubectl("patch", "deployment", "web", "-p", '{"spec":{"template":{"spec":{"containers":'
                                                '[{"name":"app","image":"nginx:1.28"}]}}}}')
    out = kubectl("apply", "--server-side", "-f", "-", input=DEPLOYMENT, check=False)
    assert out.returncode == 1
    # kube-apiserver's text, managers sorted, then kubectl's own advice.
    assert out.stderr.startswith(
        "error: Apply failed with 2 conflicts: conflicts with \"kubectl\" with subresource \"scale\" using apps/v1:\n"
        "- .spec.replicas\n"
        "conflicts with \"kubectl-patch\" using apps/v1:\n"
        "- .spec.template.spec.containers[name=\"app\"].image\n"
        "Please review the fields above--they currently have other managers."), out.stderr
    assert _get(kubectl, "deployment", "web")["spec"]["replicas"] == 3  # nothing was applied

    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=DEPLOYMENT)
    obj = _get(kubectl, "deployment", "web")
    assert obj["spec"]["replicas"] == 2
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    managed = _managed(obj)
    assert "kubectl/scale" not in managed and "kubectl-patch" not in managed  # they owned nothing else
    assert managed["kubectl"]["operation"] == "Apply"
    assert "f:replicas" in managed["kubectl"]["fieldsV1"]["f:spec"]


def test_conflict_status_has_the_causes_kubectl_reads(kube, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "--server-side", "-f", "-", input=CONFIGMAP)
    kubectl("patch", "configmap", "settings", "-p", '{"data":{"color":"red"}}')
    code, status = _apply(kube, f"/api/v1/namespaces/{namespace}/configmaps/settings",
                          yaml.safe_load(CONFIGMAP), "fieldManager=kubectl")
    assert code == 409
    assert status["reason"] == "Conflict"
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .data.color'
    assert status["details"]["causes"] == [{"reason": "FieldManagerConflict", "message":
                                            'conflict with "kubectl-patch" using v1', "field": ".data.color"}]


def test_stale_resource_version_in_an_apply_is_a_conflict(kubectl) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "--server-side", "-f", "-", input=CONFIGMAP)
    stale = CONFIGMAP.replace("{name: settings}", '{name: settings, resourceVersion: "1"}')
    out = kubectl("apply", "--server-side", "-f", "-", input=stale, check=False)
    assert out.returncode == 1
    assert 'Operation cannot be fulfilled on configmaps "settings": the object has been modified' in out.stderr


def test_show_managed_fields(kubectl) -> None:  # type: ignore[no-untyped-def]
    kubectl("create", "configmap", "made", "--from-literal=a=1")
    kubectl("label", "configmap", "made", "team=blue")
    hidden = yaml.safe_load(kubectl("get", "configmap", "made", "-o", "yaml").stdout)
    assert "managedFields" not in hidden["metadata"]
    shown = yaml.safe_load(kubectl("get", "configmap", "made", "-o", "yaml", "--show-managed-fields").stdout)
    managed = _managed(shown)
    assert managed["kubectl-create"]["fieldsV1"] == {"f:data": {".": {}, "f:a": {}}}
    assert managed["kubectl-label"]["fieldsV1"] == {"f:metadata": {"f:labels": {".": {}, "f:team": {}}}}
    assert all(e["operation"] == "Update" and e["time"] for e in managed.values())


# ----------------------------------------------------------------------------------------------- list maps


def test_deployment_containers_from_two_managers(kubectl) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "--server-side", "--field-manager=app-team", "-f", "-", input=DEPLOYMENT)
    kubectl("apply", "--server-side", "--field-manager=mesh", "-f", "-", input=SIDECAR)
    obj = _get(kubectl, "deployment", "web")
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "proxy"]
    assert containers[1]["args"] == ["--config", "/etc/envoy.yaml"]
    assert containers[1]["imagePullPolicy"] == "IfNotPresent"  # defaulted like any write
    managed = _managed(obj)
    app = managed["app-team"]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    mesh = managed["mesh"]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert list(app) == ['k:{"name":"app"}'] and list(mesh) == ['k:{"name":"proxy"}']
    assert mesh['k:{"name":"proxy"}'] == {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}
    # Each changes its own container without conflict; dropping the sidecar removes only it.
    kubectl("apply", "--server-side", "--field-manager=app-team", "-f", "-",
            input=DEPLOYMENT.replace("nginx:1.27", "nginx:1.28"))
    kubectl("apply", "--server-side", "--field-manager=mesh", "-f", "-",
            input="apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n")
    containers = _get(kubectl, "deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("app", "nginx:1.28")]


def test_crd_list_map_keys_atomic_maps_and_conflicts(kubectl, pool_crd) -> None:  # type: ignore[no-untyped-def]
    pool = "apiVersion: ssa.example.com/v1\nkind: Pool\nmetadata: {name: p}\nspec:\n"
    kubectl("apply", "--server-side", "--field-manager=east", "-f", "-", input=pool + (
        "  workers: [{name: w, zone: east, size: 1}, {name: v, size: 4}]\n  selector: {a: '1', b: '2'}\n"))
    kubectl("apply", "--server-side", "--field-manager=west", "-f", "-",
            input=pool + "  workers: [{name: w, zone: west, size: 2}]\n")
    obj = _get(kubectl, "pool", "p")
    assert obj["spec"]["workers"] == [{"name": "w", "zone": "east", "size": 1}, {"name": "v", "zone": "a", "size": 4},
                                      {"name": "w", "zone": "west", "size": 2}]
    west = _managed(obj)["west"]["fieldsV1"]["f:spec"]["f:workers"]
    assert list(west) == ['k:{"name":"w","zone":"west"}']
    east = _managed(obj)["east"]["fieldsV1"]["f:spec"]
    assert east["f:selector"] == {}  # x-kubernetes-map-type: atomic is owned whole
    assert set(east["f:workers"]) == {'k:{"name":"v","zone":"a"}', 'k:{"name":"w","zone":"east"}'}  # key default
    # An atomic map is replaced whole, and west changing it conflicts with east.
    out = kubectl("apply", "--server-side", "--field-manager=west", "-f", "-", check=False,
                  input=pool + "  workers: [{name: w, zone: west, size: 2}]\n  selector: {c: '3'}\n")
    assert 'Apply failed with 1 conflict: conflict with "east": .spec.selector' in out.stderr
    kubectl("apply", "--server-side", "--field-manager=west", "--force-conflicts", "-f", "-",
            input=pool + "  workers: [{name: w, zone: west, size: 2}]\n  selector: {c: '3'}\n")
    assert _get(kubectl, "pool", "p")["spec"]["selector"] == {"c": "3"}


def test_multi_document_file_with_a_crd_and_its_resources(kube, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    crd = CRD.replace("pools", "fleets").replace("Pool", "Fleet").replace("pool", "fleet")
    docs = crd + "".join(
        f"---\napiVersion: ssa.example.com/v1\nkind: Fleet\nmetadata: {{name: f{i}}}\n"
        f"spec:\n  workers: [{{name: w{i}, size: {i}}}]\n" for i in (1, 2))
    try:
        # kubectl reads discovery once: its first run creates the CRD but cannot map the new kind yet (as against
        # any cluster); a run after the CRD is established applies everything.
        first = kubectl("apply", "--server-side", "-f", "-", input=docs, check=False)
        assert "customresourcedefinition.apiextensions.k8s.io/fleets.ssa.example.com serverside-applied" in first.stdout
        kube.kubectl("wait", "--for=condition=Established", "crd/fleets.ssa.example.com", "--timeout=30s")
        out = until(lambda: (r := kubectl("apply", "--server-side", "-f", "-", input=docs, check=False)).returncode == 0
                    and r.stdout, "the whole file applies", within=30)
        assert out.splitlines() == ["customresourcedefinition.apiextensions.k8s.io/fleets.ssa.example.com "
                                    "serverside-applied", "fleet.ssa.example.com/f1 serverside-applied",
                                    "fleet.ssa.example.com/f2 serverside-applied"]
        fleet = _get(kubectl, "fleet", "f2")
        assert fleet["spec"]["workers"] == [{"name": "w2", "zone": "a", "size": 2}]  # schema defaults applied
        assert _managed(fleet)["kubectl"]["operation"] == "Apply"
    finally:
        kube.kubectl("delete", "crd", "fleets.ssa.example.com", "--ignore-not-found", "--wait=false")


# ---------------------------------------------------------------------------------------------- kubectl diff


@pytest.mark.parametrize("server_side", [False, True], ids=["client-side", "server-side"])
def test_kubectl_diff_against_a_live_object(kubectl, server_side: bool) -> None:  # type: ignore[no-untyped-def]
    # A ConfigMap: no controller writes to it while kubectl compares.
    kubectl("apply", "--server-side", "-f", "-", input=CONFIGMAP)
    before = _get(kubectl, "configmap", "settings")
    flags = ["--server-side"] if server_side else []
    same = kubectl("diff", *flags, "-f", "-", input=CONFIGMAP, check=False)
    assert same.returncode == 0 and same.stdout == ""
    changed = kubectl("diff", *flags, "-f", "-", input=CONFIGMAP.replace("color: blue", "color: green"), check=False)
    assert changed.returncode == 1, changed.stderr
    assert "-  color: blue\n+  color: green" in changed.stdout
    after = _get(kubectl, "configmap", "settings")  # a dry run: nothing changed
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["data"]["color"] == "blue"


# --------------------------------------------------------------------------------------------------- kr8s


async def test_kr8s_writes_are_owned_and_its_api_applies(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    api = await kr8s.asyncio.api(kubeconfig=str(kube.kubeconfig))
    # kr8s 0.20 has no apply of its own (its patch() sends merge or JSON patches): its API call does it.
    assert not hasattr(ConfigMap, "apply")
    cm = await ConfigMap({"metadata": {"name": "k", "namespace": namespace}, "data": {"a": "1"}}, api=api)
    await cm.create()
    await cm.patch({"data": {"b": "2"}})
    managed = _managed(cm.raw)
    assert managed["kr8s"]["fieldsV1"] == {"f:data": {".": {}, "f:a": {}, "f:b": {}}}  # manager from User-Agent

    async def apply(body: dict[str, Any], **params: str) -> dict[str, Any]:
        async with api.call_api("PATCH", version="v1", namespace=namespace, url="configmaps/k",
                                headers=APPLY, content=json.dumps(body),
                                params={"fieldManager": "tool", **params}) as resp:
            return resp.json()

    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k"}, "data": {"b": "3"}}
    with pytest.raises(kr8s.ServerError, match=r'conflict with "kr8s" using v1: \.data\.b'):
        await apply(config)
    obj = await apply(config, force="true")
    assert obj["data"] == {"a": "1", "b": "3"}
    assert _managed(obj)["tool"]["fieldsV1"] == {"f:data": {"f:b": {}}}
    assert _managed(obj)["kr8s"]["fieldsV1"] == {"f:data": {".": {}, "f:a": {}}}


# ------------------------------------------------------------------------------------------------ raw HTTP


def test_apply_request_options_and_errors(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    path = f"/api/v1/namespaces/{namespace}/configmaps/raw"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "raw"}, "data": {"a": "1"}}
    code, err = _apply(kube, path, body, query="")
    assert code == 422 and err["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')
    code, err = _apply(kube, path, body, query="fieldManager=t&dryRun=All")
    assert code == 201 and err["data"] == {"a": "1"}
    assert kube.request("GET", path)[0] == 404  # the dry run stored nothing
    code, obj = _apply(kube, path, body)
    assert code == 201 and obj["metadata"]["uid"]
    code, obj = _apply(kube, path, dict(body, data={"a": "2"}))
    assert code == 200 and obj["data"] == {"a": "2"}
    code, err = _apply(kube, path, dict(body, kind="Secret"))
    assert code == 400 and err["message"] == "invalid object type: /v1, Kind=Secret"
    code, err = api_request(kube.kubeconfig, "PATCH", f"{path}?fieldManager=t", body,
                            headers={"Content-Type": "application/apply-patch+cbor"})
    assert code == 415 and "application/apply-patch+yaml" in err["message"]
    code, err = api_request(kube.kubeconfig, "PATCH", f"{path}?force=true", {"data": {"a": "3"}},
                            headers={"Content-Type": "application/merge-patch+json"})
    assert code == 422 and err["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch')


@pytest.mark.localkube_only  # a real server's handling of unknown fields in an apply under Ignore is not pinned here
def test_field_validation_applies_to_apply_configurations(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    path = f"/api/v1/namespaces/{namespace}/configmaps/fv"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fv"}, "data": {"a": "1"}, "bogus": 1}
    code, err = _apply(kube, path, body, "fieldManager=t&fieldValidation=Strict")
    assert code == 400 and 'strict decoding error: unknown field "bogus"' in err["message"]
    code, obj = _apply(kube, path, body, "fieldManager=t&fieldValidation=Ignore")
    assert code == 201 and "bogus" not in obj
    assert obj["metadata"]["managedFields"][0]["fieldsV1"] == {"f:data": {"f:a": {}}}  # nobody owns the dropped field


def test_apply_to_the_status_subresource(kube, kubectl, namespace, pool_crd) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "--server-side", "-f", "-",
            input="apiVersion: ssa.example.com/v1\nkind: Pool\nmetadata: {name: s}\nspec: {workers: []}\n")
    path = f"/apis/ssa.example.com/v1/namespaces/{namespace}/pools/s"
    body = {"apiVersion": "ssa.example.com/v1", "kind": "Pool", "metadata": {"name": "s"},
            "spec": {"workers": [{"name": "ignored"}]}, "status": {"phase": "Ready"}}
    code, obj = _apply(kube, f"{path}/status", body, "fieldManager=pool-controller")
    assert code == 200, obj
    assert obj["status"] == {"phase": "Ready"} and obj["spec"] == {"workers": []}  # only status is applied
    assert obj["metadata"]["generation"] == 1
    entry = _managed(obj)["pool-controller/status"]
    assert entry["operation"] == "Apply" and entry["fieldsV1"] == {"f:status": {"f:phase": {}}}
    code, _ = _apply(kube, f"/apis/ssa.example.com/v1/namespaces/{namespace}/pools/missing/status", body)
    assert code == 404


async def test_apply_emits_one_watch_event_per_change(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}, "data": {"a": "1"}}
    target = kube.api
    async with aiohttp.ClientSession(headers=target.headers) as http, http.get(
            f"{target.server}{path}?watch=true&timeoutSeconds=10", ssl=target.context) as resp:
        for data in ({"a": "1"}, {"a": "1"}, {"a": "2"}):  # the second apply changes nothing
            code, _ = await asyncio.to_thread(_apply, kube, f"{path}/w", dict(body, data=data))
            assert code in (200, 201)
        seen = [json.loads(await resp.content.readline()) for _ in range(2)]
    assert [(e["type"], e["object"]["data"]["a"]) for e in seen] == [("ADDED", "1"), ("MODIFIED", "2")]
    assert int(seen[1]["object"]["metadata"]["resourceVersion"]) > int(seen[0]["object"]["metadata"]["resourceVersion"])


@pytest.mark.localkube_only
def test_controllers_record_their_real_manager_names(kube, kubectl, namespace) -> None:  # type: ignore[no-untyped-def]
    simulated = DEPLOYMENT.replace("metadata: {labels: {app: web}}", "metadata: {labels: {app: web}, annotations: "
                                   "{localkube.dask.org/simulate: 'true'}}").replace("replicas: 2", "replicas: 1")
    kubectl("apply", "--server-side", "-f", "-", input=simulated)
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    (pod,) = _get(kubectl, "pods", "-l", "app=web")["items"]
    assert set(_managed(pod)) == {"kube-controller-manager", "kubelet/status"}  # binding records nothing
    assert "f:phase" in _managed(pod)["kubelet/status"]["fieldsV1"]["f:status"]
    deployment = _managed(_get(kubectl, "deployment", "web"))
    assert {"kubectl", "kube-controller-manager", "kube-controller-manager/status"} <= set(deployment)
    # So an apply to the pod's status by anyone else conflicts with the kubelet, as on a cluster.
    name = pod["metadata"]["name"]
    code, err = _apply(kube, f"/api/v1/namespaces/{namespace}/pods/{name}/status", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "status": {"phase": "Failed"}})
    assert code == 409 and err["message"] == (
        'Apply failed with 1 conflict: conflict with "kubelet" with subresource "status" using v1: .status.phase')
