"""Every sample in examples/manifests is applied to LocalKube by some end-to-end test (samples are tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.paths import EXAMPLE_MANIFESTS, REPO

TEST_SOURCES = "\n".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py"))


@pytest.mark.parametrize("sample", sorted(EXAMPLE_MANIFESTS.glob("*.yaml")), ids=lambda p: p.name)
def test_sample_is_applied_by_a_test(sample: Path) -> None:
    assert f'"{sample.name}"' in TEST_SOURCES, f"no test applies examples/manifests/{sample.name}"


def test_there_are_samples() -> None:
    assert len(list(EXAMPLE_MANIFESTS.glob("*.yaml"))) >= 3
