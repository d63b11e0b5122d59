"""A Kubernetes without the dask_kube CRDs (a LocalKube of this module's own): the errors that say so, `install`,
and the errors for a missing or dead kubeconfig."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from localkube.cluster import LocalKube, ThreadedLocalKube
from localkube.testing import api_request

from dask_kube import discovery

from .helpers import ok, run

REPO = Path(__file__).parents[2]
CRD_NAMES = {f"{plural}.kubernetes.dask.org" for plural in
             ("daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers")}


@pytest.fixture(scope="module")
def bare() -> Iterator[ThreadedLocalKube]:
    """A fresh API server (no kubelet: nothing here runs pods)."""
    with LocalKube.in_thread(run_pods=False) as kube:
        yield kube


async def _discovered() -> list[tuple[str, type]]:
    return [found async for found in discovery.discover()]


def _crds(kube: ThreadedLocalKube) -> set[str]:
    code, crds = api_request(kube.kubeconfig, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    assert code == 200, crds
    return {item["metadata"]["name"] for item in crds["items"]}


def test_missing_crds_then_install(bare: ThreadedLocalKube, monkeypatch: pytest.MonkeyPatch) -> None:
    kc = bare.kubeconfig
    for args in (["list"], ["list", "-A"], ["scale", "x", "1"], ["logs", "x"], ["delete", "x"],
                 ["port-forward", "x"]):
        result = run(*args, kubeconfig=kc)
        assert result.exit_code == 1, (args, result.output)
        assert "are not installed in this Kubernetes cluster" in result.output, (args, result.output)
        assert "dask kube install" in result.output and "dask kube local up" in result.output

    # dask-ctl discovery finds no clusters where there are no CRDs, and says nothing
    monkeypatch.setenv("KUBECONFIG", str(kc))
    assert asyncio.run(_discovered()) == []

    dry = ok("install", "--dry-run", kubeconfig=kc)
    assert sorted(dry.splitlines()) == sorted(f"customresourcedefinition.apiextensions.k8s.io/{name} (dry run)"
                                              for name in CRD_NAMES)
    assert _crds(bare) == set()  # a dry run changes nothing

    first = ok("install", kubeconfig=kc)
    assert sorted(first.splitlines()) == sorted(f"customresourcedefinition.apiextensions.k8s.io/{name} created"
                                                for name in CRD_NAMES)
    assert _crds(bare) == CRD_NAMES
    again = ok("install", kubeconfig=kc)
    assert all(line.endswith(" unchanged") for line in again.splitlines()), again
    assert "No DaskClusters found in namespace default." in ok("list", kubeconfig=kc)
    assert json.loads(ok("list", "-A", "-o", "json", kubeconfig=kc)) == []
    assert yaml.safe_load(ok("list", "-A", "-o", "yaml", kubeconfig=kc)) == []
    missing = run("scale", "x", "1", kubeconfig=kc)
    assert missing.exit_code == 1 and "there is no DaskCluster 'x' in namespace 'default'" in missing.output


def test_install_the_operator_manifests(bare: ThreadedLocalKube) -> None:
    out = ok("install", "--manifests", str(REPO / "deploy" / "manifests"), kubeconfig=bare.kubeconfig)
    lines = out.splitlines()
    assert lines[0] == "namespace/dask-kube-operator created"
    assert "deployment.apps/dask-kube-operator (namespace dask-kube-operator) created" in lines
    assert "serviceaccount/dask-kube-operator (namespace dask-kube-operator) created" in lines
    assert any(line.startswith("clusterrole.rbac.authorization.k8s.io/dask-kube-operator ") for line in lines)
    assert _crds(bare) == CRD_NAMES


def test_install_rejects_bad_manifest_paths(bare: ThreadedLocalKube, tmp_path: Path) -> None:
    result = run("install", "--manifests", str(tmp_path / "nope"), kubeconfig=bare.kubeconfig)
    assert result.exit_code == 2 and "does not exist" in result.output
    (tmp_path / "bad.yaml").write_text("just: [a, mapping]\n")
    result = run("install", "--manifests", str(tmp_path / "bad.yaml"), kubeconfig=bare.kubeconfig)
    assert result.exit_code == 2 and "not a Kubernetes object" in result.output
    result = run("install", "--manifests", str(tmp_path), "--dry-run", kubeconfig=bare.kubeconfig)
    assert result.exit_code == 2


def test_no_kubeconfig_or_a_dead_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config either
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = run("list", kubeconfig=tmp_path / "missing.yaml")
    assert result.exit_code == 1
    assert "no usable Kubernetes credentials" in result.output and "hint: set KUBECONFIG" in result.output

    dead = tmp_path / "dead.yaml"
    dead.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "users": [{"name": "u", "user": {}}]}))
    result = run("scale", "x", "1", kubeconfig=dead)
    assert result.exit_code == 1
    assert "the Kubernetes API server at http://127.0.0.1:9 does not answer" in result.output
    result = run("--context", "elsewhere", "list", kubeconfig=dead)
    assert result.exit_code == 1 and "elsewhere" in result.output
