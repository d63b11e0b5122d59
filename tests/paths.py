"""Paths the tests share: the repository's example manifests (the RAPIDS, CPU and DaskJob samples)."""

from pathlib import Path

REPO = Path(__file__).parents[1]
EXAMPLE_MANIFESTS = REPO / "examples" / "manifests"
