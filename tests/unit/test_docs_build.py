"""The documentation site builds with Sphinx, warnings as errors, and holds what it promises."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

DOCS = Path(__file__).parents[2] / "docs"


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS),
                           str(tmp_path / "html"), "-d", str(tmp_path / "doctrees")],
                          capture_output=True, text=True, timeout=180)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert took < 120, f"the docs build took {took:.0f}s"
    html = tmp_path / "html"

    # every Markdown page of docs/ is part of the site (in a toctree, or the build would have warned)
    for page in DOCS.glob("*.md"):
        assert (html / f"{page.stem}.html").exists(), page.name

    # the resource reference is generated from the CRDs: every spec field of every kind, with its description
    reference = (html / "resources.html").read_text()
    for name in ("daskcluster", "daskworkergroup", "daskjob", "daskautoscaler"):
        crd = yaml.safe_load((DOCS.parent / "dask_kube" / "operator" / "crds" / f"{name}.yaml").read_text())
        assert crd["spec"]["names"]["kind"] in reference
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        for field in spec["properties"]:
            assert f"spec.{field}" in reference, (name, field)
    assert "Delete the cluster once its scheduler has been idle" in reference  # a description
    assert "minimum 0" in reference  # a constraint

    # the API reference comes from docstrings
    api = (html / "api.html").read_text()
    for name in ("KubeCluster", "make_cluster_spec", "SchedulerStartTimeoutError", "CRDsNotInstalledError"):
        assert f'id="dask_kube.{name}"' in api, name
    assert 'id="dask_kube.KubeCluster.from_name"' in api and 'id="dask_kube.discovery.discover"' in api
    assert "reach a scheduler from your machine" in (html / "cli.html").read_text()

    # LocalKube's pages are its own docs (localkube/), with their links between each other kept working
    localkube = (html / "localkube.html").read_text()
    assert "The configuration file" in localkube and 'href="localkube-networking.html"' in localkube
    assert "Address plan" in (html / "localkube-networking.html").read_text()


def test_troubleshooting_explains_every_reason_the_operator_reports() -> None:
    from dask_kube.naming import Reason

    page = (DOCS / "troubleshooting.md").read_text()
    missing = [reason.value for reason in Reason if f"`{reason.value}`" not in page]
    assert missing == [], f"docs/troubleshooting.md does not explain: {missing}"


def test_every_setting_is_documented() -> None:
    """Every key of dask_kube's config file appears in the docs by its dotted name (`kubernetes.operator.events`)."""
    defaults = yaml.safe_load((DOCS.parent / "dask_kube" / "kubernetes.yaml").read_text())["kubernetes"]
    text = "\n".join(page.read_text() for page in DOCS.glob("*.md"))

    def keys(tree: dict, prefix: str) -> list[str]:
        out = []
        for key, value in tree.items():
            dotted = f"{prefix}.{key}"
            nested = isinstance(value, dict) and value and key != "scheduler-service-template"  # a setting's value
            out += keys(value, dotted) if nested else [dotted]
        return out
    missing = [k for k in keys(defaults, "kubernetes") if k not in text]
    assert missing == [], f"settings without documentation: {missing}"
