"""A cluster whose image holds another distributed: the client warns once, saying what differs and how to fix it,
and the operator records the scheduler's version on the DaskCluster.

The "older" image is a LocalKube config file entry (localkube/README.md, "An image with other versions"): its
environment puts first on PYTHONPATH a directory holding only the installation metadata of distributed 2024.1.0,
so the scheduler and workers report that version (distributed reads versions from installation metadata, as
`pip list` does) while running this environment's code. The clusters of the other tests run the client's own
versions, and warnings are errors there: they show that equal versions give no warning.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from distributed.versions import VersionMismatchWarning
from localkube.cluster import LocalKube
from localkube.pytest_plugin import run_kubectl
from localkube.testing import until

from dask_kube import KubeCluster, images
from tests.conftest import CRDS, OperatorProcess

pytestmark = pytest.mark.e2e

OLD_VERSION = "2024.1.0"
OLD_IMAGE = f"ghcr.io/dask/dask:{OLD_VERSION}-py{images.python_version()}"


def write_old_metadata(root: Path) -> Path:
    """distributed's installation metadata with another version; its entry points too (they give `dask` its
    `scheduler` and `worker` commands, and the first metadata found for a distribution hides the others)."""
    info = root / f"distributed-{OLD_VERSION}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: distributed\nVersion: {OLD_VERSION}\n")
    (info / "entry_points.txt").write_text(metadata.distribution("distributed").read_text("entry_points.txt") or "")
    return root


@pytest.fixture(scope="module")
def old_image_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A LocalKube whose config maps the older image, the CRDs, and the operator on it."""
    work = tmp_path_factory.mktemp("old-image")
    site = write_old_metadata(work / "site")
    config = work / "cluster.yaml"
    config.write_text(yaml.safe_dump({"apiVersion": "localkube/v1alpha1", "kind": "Cluster", "images": [
        {"pattern": f"ghcr.io/dask/dask:{OLD_VERSION}-*", "env": {"PYTHONPATH": str(site)}}]}))
    cache = work / "kubectl-cache"
    with LocalKube.in_thread(config=config) as local:
        run_kubectl(local.kubeconfig, cache, "apply", "-f", str(CRDS))
        run_kubectl(local.kubeconfig, cache, "wait", "--for=condition=Established",
                    "crd/daskclusters.kubernetes.dask.org", "crd/daskworkergroups.kubernetes.dask.org",
                    "--timeout=30s")
        operator = OperatorProcess(local.kubeconfig, work / "operator.log")
        operator.start()
        try:
            yield local.kubeconfig, cache
        finally:
            operator.stop()


def test_an_older_image_is_named_in_one_warning_and_in_the_status(
        old_image_kube: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig, cache = old_image_kube
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    mine = images.installed("distributed")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cluster = KubeCluster(name="older", namespace="default", image=OLD_IMAGE, n_workers=1, quiet=True)
        try:
            cluster.wait_for_workers(1, timeout=60)
            mismatches = [w for w in caught if issubclass(w.category, VersionMismatchWarning)]
            assert len(mismatches) == 1, [str(w.message) for w in caught]
            text = str(mismatches[0].message)
            assert f"distributed: client {mine}; scheduler {OLD_VERSION}" in text, text
            assert f"ghcr.io/dask/dask:{mine}-py{images.python_version()}" in text, text
            assert f"pip install distributed=={OLD_VERSION}" in text, text
            assert "dask:" not in text.split("Fix:")[0]  # only what differs is named: dask itself is equal

            def recorded() -> str | None:
                out = run_kubectl(kubeconfig, cache, "get", "daskcluster", "older", "-o", "json").stdout
                return json.loads(out).get("status", {}).get("distributedVersion")

            assert until(recorded, "the scheduler's version in the status", 30) == OLD_VERSION
            table = run_kubectl(kubeconfig, cache, "get", "daskclusters").stdout.splitlines()
            assert "DASK" in table[0].split() and OLD_VERSION in table[1].split(), table
        finally:
            cluster.close()
    assert os.environ["KUBECONFIG"] == str(kubeconfig)
