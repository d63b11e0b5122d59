"""The default image follows the client's own versions, and dask config can name another or change the template."""

from __future__ import annotations

import dask.config
import pytest

from dask_kube import images, specs
from dask_kube.cluster import options


@pytest.mark.parametrize(("distributed", "python", "expected"), [
    ("2025.1.0", "3.12", "ghcr.io/dask/dask:2025.1.0-py3.12"),
    ("2025.1.1.dev4+gabc", "3.13", "ghcr.io/dask/dask:latest-py3.13"),  # no image for an unreleased build
    (None, "3.11", "ghcr.io/dask/dask:latest-py3.11"),
])
def test_tag_from_versions(distributed: str | None, python: str, expected: str) -> None:
    assert images.tagged(images.DEFAULT_TEMPLATE, distributed, python) == expected


def test_every_builder_uses_the_installed_versions_by_default() -> None:
    expected = f"ghcr.io/dask/dask:{images.installed('distributed')}-py{images.python_version()}"
    cluster = specs.make_cluster_spec("demo")
    used = {c["image"] for block in ("scheduler", "worker") for c in cluster["spec"][block]["spec"]["containers"]}
    assert used == {expected}
    assert options.resolve(name="demo").image == expected
    assert options.resolve(name="demo", image="mine:1").image == "mine:1"


def test_config_names_an_image_or_a_template() -> None:
    with dask.config.set({"kubernetes.image-template": "registry.example/dask:{distributed}-{python}-gpu"}):
        assert images.default_image() == (f"registry.example/dask:{images.installed('distributed')}-"
                                          f"{images.python_version()}-gpu")
    with dask.config.set({"kubernetes.image": "pinned:2024.1.0"}):
        assert specs.make_worker_spec()["spec"]["containers"][0]["image"] == "pinned:2024.1.0"
        assert options.resolve(name="demo").image == "pinned:2024.1.0"
