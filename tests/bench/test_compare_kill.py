"""Killing the comparison harness (SIGINT or SIGTERM) leaves none of the processes it started behind.

The harness runs in quick mode (scenario 1, dask_kube only), whose first step starts the floor's scheduler and
workers directly. Every process it starts inherits a marker in its environment; once a floor worker runs, the
harness gets the signal, and afterwards no process with the marker may remain.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
from localkube.testing import until

REPO = Path(__file__).resolve().parents[2]
MARK = "BENCH_COMPARE_TEST_MARK"


def _marked(mark: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(MARK) == mark and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def _floor_worker(mark: str) -> bool:
    for proc in _marked(mark):
        with contextlib.suppress(psutil.Error):
            if "distributed.cli.dask_worker" in " ".join(proc.cmdline()):
                return True
    return False


@pytest.mark.timeout(400)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_killing_the_harness_leaves_no_process(tmp_path: Path, sig: signal.Signals) -> None:
    mark = uuid.uuid4().hex
    env = dict(os.environ, **{MARK: mark})
    with (tmp_path / "out.log").open("wb") as log:
        harness = subprocess.Popen([sys.executable, str(REPO / "bench" / "compare"), "--quick", "--dk-venv",
                                    str(tmp_path / "no-such-venv")], stdout=log, stderr=subprocess.STDOUT,
                                   env=env, cwd=tmp_path, start_new_session=True)
    try:
        until(lambda: _floor_worker(mark) or harness.poll() is not None, "a floor worker started", 240,
              interval=0.05)
        assert harness.poll() is None, (tmp_path / "out.log").read_text()[-3000:]
        harness.send_signal(sig)
        # Promptly: no thread of the harness may keep it waiting on a process the clean-up killed (a floor's
        # Client once retried its killed scheduler for 60 s). A clean exit, no traceback.
        assert harness.wait(60) == 130
        until(lambda: not _marked(mark), "no process of the harness left", 30,
              explain=lambda: "\n".join(" ".join(p.cmdline()) for p in _marked(mark)))
        out = (tmp_path / "out.log").read_text()
        assert "stopping every process the harness started" in out and "Traceback" not in out, out[-3000:]
    finally:
        for proc in _marked(mark):
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if harness.poll() is None:
            harness.kill()
            harness.wait(30)
