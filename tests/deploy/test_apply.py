"""`kubectl apply -f deploy/manifests/` against the session's cluster (LocalKube by default), with the real kubectl.

The manifests install into the fixed namespace `dask-kube-operator` and create a ClusterRole and binding, so the
test removes everything it created. The Deployment is scaled to zero right away: the operator must not reconcile the
shared test cluster (on LocalKube its container would run as a local process; without a `command`, LocalKube takes
`args[0]` as the program, so the pod fails to start anyway, which is fine too).

docs/install.md's CRD upgrade step (`kubectl apply --server-side ...` after `helm upgrade`) is run verbatim, from the
repository's root, over CRDs that Helm owns, as they are after a Helm install.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from localkube.pytest_plugin import KubeHandle

from tests.deploy.render_module import load

render = load()
MANIFESTS = render.MANIFESTS
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
ROOT = Path(__file__).resolve().parents[2]
CHART_CRDS = ROOT / "deploy" / "helm" / "dask-kube-operator" / "crds"


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


def documented_crd_upgrade() -> list[str]:
    """The `kubectl apply --server-side` commands of docs/install.md, as written there."""
    lines = (ROOT / "docs" / "install.md").read_text().splitlines()
    return [line.strip() for line in lines if line.strip().startswith("kubectl apply --server-side")]


def run_from_root(kube: KubeHandle, command: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig))
    return subprocess.run(shlex.split(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def managers(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["manager"]: e for e in crd["metadata"].get("managedFields", [])}


@pytest.mark.timeout(180)
def test_documented_crd_upgrade_after_helm(kube: KubeHandle) -> None:
    commands = documented_crd_upgrade()
    assert commands == ["kubectl apply --server-side --force-conflicts -f deploy/helm/dask-kube-operator/crds/"]
    chart = {doc["metadata"]["name"]: doc for path in sorted(CHART_CRDS.glob("*.yaml"))
             for doc in yaml.safe_load_all(path.read_text()) if doc}
    preexisting = {name for name in chart if kube.request("GET", f"{CRDS}/{name}")[0] == 200}
    # The CRDs as an older chart left them: Helm's install creates them (field manager "helm"); where the session
    # already has them, Helm's last write is a replace. Only descriptions differ, so other tests are unaffected.
    for name, crd in chart.items():
        older = yaml.safe_dump(crd).replace("description: Desired workers", "description: Worker count")
        older = older.replace("description:", "description: (older chart)", 1)
        if name in preexisting:
            live = json.loads(kube.kubectl("get", "crd", name, "-o", "json").stdout)
            doc = yaml.safe_load(older)
            doc["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            kube.kubectl("replace", "--field-manager=helm", "-f", "-", input=yaml.safe_dump(doc))
        else:
            kube.kubectl("create", "--field-manager=helm", "-f", "-", input=older)
    try:
        # Why the documented command has --force-conflicts: without it the API server refuses to take Helm's fields.
        plain = run_from_root(kube, commands[0].replace(" --force-conflicts", ""))
        assert plain.returncode == 1
        assert 'conflict with "helm" using apiextensions.k8s.io/v1: .spec.versions' in plain.stderr, plain.stderr

        for command in commands:
            done = run_from_root(kube, command)
            assert done.returncode == 0, done.stderr
            assert sorted(done.stdout.splitlines()) == sorted(
                f"customresourcedefinition.apiextensions.k8s.io/{name} serverside-applied" for name in chart)
        for name, crd in chart.items():
            kube.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")
            live = json.loads(kube.kubectl("get", "crd", name, "-o", "json", "--show-managed-fields").stdout)
            assert live["spec"]["versions"] == crd["spec"]["versions"]  # the chart's CRDs, not the older ones
            owners = managers(live)
            assert owners["kubectl"]["operation"] == "Apply"
            assert "f:versions" in owners["kubectl"]["fieldsV1"]["f:spec"]
            assert "f:versions" not in owners.get("helm", {}).get("fieldsV1", {}).get("f:spec", {})
        # Running it again changes nothing and conflicts with nobody.
        again = run_from_root(kube, commands[0])
        assert again.returncode == 0, again.stderr
        assert run_from_root(kube, commands[0].replace(" --force-conflicts", "")).returncode == 0
    finally:
        for name in chart:
            if name not in preexisting:
                kube.kubectl("delete", "--ignore-not-found", "--wait=false", "customresourcedefinition", name,
                             check=False)
