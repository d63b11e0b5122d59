"""The object model over HTTP: system fields, generation, finalizers, namespaces, validation, CRDs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localkube.testing import until

MANIFESTS = Path(__file__).parent / "manifests"


def _cm(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {"a": "1"}}


def test_create_overwrites_system_fields_and_generates_names(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    code, obj = kube.request("POST", base, _cm("", generateName="gen-", uid="x", creationTimestamp="1999"))
    assert code == 201
    meta = obj["metadata"]
    assert meta["name"].startswith("gen-") and len(meta["name"]) == len("gen-") + 5
    assert meta["uid"] != "x" and meta["creationTimestamp"] != "1999" and meta["generation"] == 1
    code, err = kube.request("POST", base, _cm("rv", resourceVersion="5"))
    assert code == 400 and "resourceVersion should not be set" in err["message"]
    code, err = kube.request("POST", "/api/v1/namespaces/nope-404/configmaps", _cm("x"))
    assert code == 404 and err["message"] == 'namespaces "nope-404" not found'


def test_generation_bumps_only_on_spec_changes(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/services"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}}
    code, obj = kube.request("POST", base, svc)
    assert code == 201 and obj["metadata"]["generation"] == 1
    obj["metadata"]["labels"] = {"x": "y"}
    code, obj = kube.request("PUT", f"{base}/s", obj)
    assert code == 200 and obj["metadata"]["generation"] == 1
    obj["spec"]["selector"] = {"a": "c"}
    code, obj = kube.request("PUT", f"{base}/s", obj)
    assert code == 200 and obj["metadata"]["generation"] == 2
    stale = dict(obj, metadata=dict(obj["metadata"], resourceVersion="1"))
    code, err = kube.request("PUT", f"{base}/s", stale)
    assert code == 409 and "the object has been modified" in err["message"]


def test_finalizers_hold_deletion_until_removed(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    kube.request("POST", base, _cm("held", finalizers=["example.com/hold"]))
    code, obj = kube.request("DELETE", f"{base}/held")
    assert code == 200 and obj["metadata"]["deletionTimestamp"]
    code, again = kube.request("DELETE", f"{base}/held")  # a repeated delete is a no-op
    assert code == 200 and again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    code, err = kube.request("PUT", f"{base}/held", dict(obj, metadata=dict(
        obj["metadata"], finalizers=["example.com/hold", "example.com/more"])))
    assert code == 422 and "no new finalizers can be added" in err["message"]
    code, _ = kube.request("PUT", f"{base}/held", dict(obj, metadata=dict(obj["metadata"], finalizers=[])))
    assert code == 200
    assert kube.request("GET", f"{base}/held")[0] == 404


def test_namespace_deletion_empties_it_first(kube) -> None:  # type: ignore[no-untyped-def]
    name = "ns-to-delete"
    kube.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    kube.request("POST", f"/api/v1/namespaces/{name}/configmaps", _cm("held", finalizers=["example.com/hold"]))
    kube.request("POST", f"/api/v1/namespaces/{name}/configmaps", _cm("free"))
    code, ns = kube.request("DELETE", f"/api/v1/namespaces/{name}")
    assert code == 200
    until(lambda: kube.request("GET", f"/api/v1/namespaces/{name}/configmaps/free")[0] == 404, "free cm gone",
          within=10)
    code, ns = kube.request("GET", f"/api/v1/namespaces/{name}")
    assert code == 200 and ns["status"]["phase"] == "Terminating"
    code, err = kube.request("POST", f"/api/v1/namespaces/{name}/configmaps", _cm("new"))
    assert code == 403 and "is being terminated" in err["message"]
    kube.request("PUT", f"/api/v1/namespaces/{name}/configmaps/held", {
        **kube.request("GET", f"/api/v1/namespaces/{name}/configmaps/held")[1], "metadata": {
            **kube.request("GET", f"/api/v1/namespaces/{name}/configmaps/held")[1]["metadata"], "finalizers": []}})
    until(lambda: kube.request("GET", f"/api/v1/namespaces/{name}")[0] == 404, "namespace gone", within=10)


def test_standard_namespaces_exist(kube) -> None:  # type: ignore[no-untyped-def]
    for name in ("default", "kube-system", "kube-public"):
        code, ns = kube.request("GET", f"/api/v1/namespaces/{name}")
        assert code == 200 and ns["status"]["phase"] == "Active"


def test_field_validation_strict_warn_ignore(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/pods"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "x", "resources": {"limit": {"cpu": "1"}}}]}}
    code, err = kube.request("POST", f"{base}?fieldValidation=Strict", pod)
    assert code == 400
    assert 'strict decoding error: unknown field "spec.containers[0].resources.limit"' in err["message"]
    import urllib.request

    api = kube.api
    req = urllib.request.Request(api.server + f"{base}?fieldValidation=Warn", data=json.dumps(pod).encode(),
                                 method="POST", headers={"Content-Type": "application/json", **api.headers})
    with urllib.request.urlopen(req, context=api.context) as resp:
        assert resp.status == 201
        assert 'unknown field \\"spec.containers[0].resources.limit\\"' in resp.headers["Warning"]
    code, obj = kube.request("POST", f"{base}?fieldValidation=Ignore", dict(pod, metadata={"name": "q"}))
    assert code == 201 and "limit" not in obj["spec"]["containers"][0]["resources"]


def test_dry_run_validates_without_storing(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    code, obj = kube.request("POST", f"{base}?dryRun=All", _cm("dry"))
    assert code == 201 and obj["metadata"]["name"] == "dry"
    assert kube.request("GET", f"{base}/dry")[0] == 404


def test_unsupported_things_are_refused_with_status(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    code, err = kube.request("GET", "/apis/nothing.example.com/v1/things")
    assert code == 404 and err["kind"] == "Status" and err["message"]
    code, err = kube.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/x/bogus")
    assert code == 404 and err["kind"] == "Status"
    import urllib.error
    import urllib.request

    api = kube.api
    req = urllib.request.Request(api.server + f"/api/v1/namespaces/{namespace}/configmaps/x", method="PATCH",
                                 data=b"{}", headers={"Content-Type": "application/xml", **api.headers})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, context=api.context)
    assert info.value.code == 415 and json.loads(info.value.read())["reason"] == "UnsupportedMediaType"


def test_kubectl_create_generators_send_protobuf(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert "configmap/pb created" in kubectl("create", "configmap", "pb", "--from-literal=k=v").stdout
    assert kubectl("get", "cm", "pb", "-o", "jsonpath={.data.k}").stdout == "v"
    assert "deployment.apps/web created" in kubectl("create", "deployment", "web", "--image=nginx:1.25",
                                                    "--replicas=0").stdout
    dep = json.loads(kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 0 and dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert "secret/s created" in kubectl("create", "secret", "generic", "s", "--from-literal=pw=x").stdout


def test_crd_schema_defaults_pruning_and_errors_over_the_api(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    # A renamed copy of the widget CRD, since this test deletes it at the end.
    crd = (MANIFESTS / "widget-crd.yaml").read_text().replace("widget", "gadget").replace("Widget", "Gadget")
    kube.kubectl("apply", "-f", "-", input=crd.replace("shortNames: [wd]", "shortNames: [gd]"))
    kube.kubectl("wait", "--for=condition=Established", "crd/gadgets.example.com", "--timeout=30s")
    base = f"/apis/example.com/v1/namespaces/{namespace}/gadgets"
    body = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "w"},
            "spec": {"size": "small", "port": "http", "unknown": 1, "template": {"anything": {"goes": True}}}}
    code, obj = kube.request("POST", base, body)
    assert code == 201
    assert obj["spec"]["replicas"] == 1  # default
    assert "unknown" not in obj["spec"]  # pruned
    assert obj["spec"]["template"] == {"anything": {"goes": True}}  # preserved
    assert obj["spec"]["port"] == "http"  # int-or-string
    code, err = kube.request("POST", f"{base}?fieldValidation=Strict", dict(body, metadata={"name": "s"}))
    assert code == 400 and 'unknown field "spec.unknown"' in err["message"]
    bad = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "bad"},
           "spec": {"size": "giant", "replicas": 1000, "port": 1.5}}
    code, err = kube.request("POST", base, bad)
    assert code == 422 and err["reason"] == "Invalid"
    fields = {c["field"]: c for c in err["details"]["causes"]}
    assert fields["spec.size"]["reason"] == "FieldValueNotSupported"
    assert "less than or equal to 100" in fields["spec.replicas"]["message"]
    assert err["message"].startswith('Gadget.example.com "bad" is invalid: [')
    code, err = kube.request("POST", base, {"apiVersion": "example.com/v1", "kind": "Gadget",
                                            "metadata": {"name": "nospec"}})
    assert code == 422 and err["details"]["causes"][0]["field"] == "spec"
    code, err = kube.request("PATCH", f"{base}/w", {"spec": {"size": "huge"}})
    assert code == 415  # application/json is not a patch type
    code, _ = kube.request("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.com")
    assert code == 200
    until(lambda: kube.request("GET", base)[0] == 404, "CRD and its objects gone", within=10)
    code, resources = kube.request("GET", "/apis/example.com/v1")
    assert "gadgets" not in [r["name"] for r in (resources or {}).get("resources", [])]
