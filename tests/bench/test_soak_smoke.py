"""The soak (bench/soak.py, `make soak`) in miniature: 15 seconds of churn with one operator SIGKILL, then nothing
may be left behind: no pod, Service, Lease, Secret, budget or custom resource, no operator state for the namespace,
no reconcile error. The long run is `make soak MINUTES=30`; this only keeps the script working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)  # ~45 s on an idle 2-core machine (LocalKube, two operator starts, the probe cache)
def test_a_short_soak_leaves_nothing_behind(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "soak.py"), "--minutes", "0.25", "--kills", "1",
                          "--sample", "5", "--json", str(tmp_path / "soak.json")],
                         capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["operator_starts"] == 2 and sum(result["operations"].values()) > 5, result["operations"]
    assert {kind: names for kind, names in result["leftovers"].items() if names} == {}
    assert result["held"] == {} and result["errors"] == 0, result["error_lines"]
    assert result["samples"] and all(s["rss_mib"] > 0 for s in result["samples"])
    assert "| leftovers |" in out.stdout
