"""The comparison harness (bench/compare) runs: quick mode, scenario 1 for dask_kube only, one round.

The dask-kubernetes environment is never needed here (CI does not build it); `make bench-compare` runs the real
thing. Only the shape of the output is checked: numbers are reported, never asserted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)  # ~15 s on an idle 2-core machine; generous for a loaded one
def test_quick_mode_prints_the_table(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "compare"), "--quick",
                          "--dk-venv", str(tmp_path / "no-such-venv"), "--ours-venv", str(tmp_path / "no-ours")],
                         capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("scenario"))
    assert "dask_kube" in lines[header] and "dask-kubernetes" in lines[header] and "ours/theirs" in lines[header]
    row = next(line for line in lines[header:] if "2 workers connected" in line)
    assert " s " in row, row  # ours was measured: a number of seconds
    assert "machine:" in out.stdout
    # Without the operator's own environment it runs from this one, and the header says so (its RSS is overstated).
    assert f"ours: operator from {sys.prefix}, not {tmp_path / 'no-ours'}" in out.stdout
