"""`kubectl apply -f deploy/manifests/` against the session's cluster (LocalKube by default), with the real kubectl.

The manifests install into the fixed namespace `dask-kube-operator` and create a ClusterRole and binding, so the
test removes everything it created. The Deployment is scaled to zero right away: the operator must not reconcile the
shared test cluster (on LocalKube its container would run as a local process; without a `command`, LocalKube takes
`args[0]` as the program, so the pod fails to start anyway, which is fine too).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from localkube.pytest_plugin import KubeHandle

from tests.deploy.render_module import load

render = load()
MANIFESTS = render.MANIFESTS
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def manifest_objects() -> list[dict[str, Any]]:
    return [doc for path in sorted(MANIFESTS.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def get(kube: KubeHandle, obj: dict[str, Any]) -> dict[str, Any]:
    args = ["get", f"{obj['kind'].lower()}.{obj['apiVersion'].split('/')[0]}"
            if "/" in obj["apiVersion"] else obj["kind"].lower(), obj["metadata"]["name"], "-o", "json"]
    if "namespace" in obj["metadata"]:
        args += ["--namespace", obj["metadata"]["namespace"]]
    return json.loads(kube.kubectl(*args).stdout)


@pytest.mark.timeout(180)
def test_plain_manifests_apply(kube: KubeHandle) -> None:
    objects = manifest_objects()
    crd_names = [o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"]
    preexisting = {name for name in crd_names if kube.request("GET", f"{CRDS}/{name}")[0] == 200}
    deployment = next(o for o in objects if o["kind"] == "Deployment")["metadata"]
    try:
        out = kube.kubectl("apply", "-f", str(MANIFESTS)).stdout
        kube.kubectl("scale", "deployment", deployment["name"], "--namespace", deployment["namespace"],
                     "--replicas=0")
        assert len(out.strip().splitlines()) == len(objects), out

        for obj in objects:
            live = get(kube, obj)
            assert live["metadata"]["name"] == obj["metadata"]["name"]
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding", "ServiceAccount"):
                for key in ("rules", "roleRef", "subjects"):
                    assert live.get(key) == obj.get(key), key
            if obj["kind"] == "Deployment":
                pod = live["spec"]["template"]["spec"]
                (container,) = pod["containers"]
                assert container["args"] == obj["spec"]["template"]["spec"]["containers"][0]["args"]
                assert container["securityContext"]["readOnlyRootFilesystem"] is True

        # The Dask CRDs are served once applied.
        resources = kube.kubectl("api-resources", "--api-group=kubernetes.dask.org", "-o", "name").stdout.split()
        assert sorted(resources) == sorted(crd_names)

        # Scaled to zero, no operator pod is left behind.
        selector = ",".join(f"{k}={v}" for k, v in
                            next(o for o in objects if o["kind"] == "Deployment")["spec"]["selector"]
                            ["matchLabels"].items())
        kube.kubectl("wait", "--for=delete", "pod", "-l", selector, "--namespace", deployment["namespace"],
                     "--timeout=60s", timeout=90)
    finally:
        operator_file = str(MANIFESTS / "20-operator.yaml")
        kube.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", operator_file, check=False)
        kube.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", str(MANIFESTS / "00-namespace.yaml"),
                     check=False)
        for name in crd_names:
            if name not in preexisting:
                kube.kubectl("delete", "--ignore-not-found", "--wait=false", "customresourcedefinition", name,
                             check=False)
