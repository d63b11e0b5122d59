"""bench/port_forward.py runs: a small transfer, direct and through our forward, with its CPU columns.

Only the shape of the output is checked: numbers are reported, never asserted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_port_forward_bench_prints_direct_and_ours(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "port_forward.py"), "--paths", "ours",
                          "--megabytes", "4", "--rounds", "1"],
                         capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.startswith(("direct", "ours"))}
    assert set(rows) == {"direct", "ours"}, out.stdout
    ours = rows["ours"]
    assert float(ours[1]) > 0 and float(ours[2]) > 0  # MB/s and the ratio to direct TCP
    assert all(float(cell) >= 0 for cell in ours[4:8]), out.stdout  # CPU ms per MB of the four processes
