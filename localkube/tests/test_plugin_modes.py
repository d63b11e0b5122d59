"""The pytest plugin's `--kube=existing`: the same tests against the cluster in KUBECONFIG (here, another
LocalKube started with the CLI), with LocalKube-only tests skipped there."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localkube.testing import kubectl_binaries

TESTS = Path(__file__).parent


@pytest.fixture
def other_cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    kubeconfig = tmp_path / "other.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "localkube", "--kubeconfig", str(kubeconfig)],
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not kubeconfig.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the other cluster did not start"
        time.sleep(0.05)
    yield kubeconfig
    proc.terminate()
    proc.wait(15)


def test_existing_cluster_mode_runs_the_same_tests(other_cluster: Path) -> None:
    env = dict(os.environ, KUBECONFIG=str(other_cluster))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--kube=existing",
         str(TESTS / "test_kubectl.py"), str(TESTS / "test_faults_and_simulation.py"),
         "-k", "version or output_formats or fail_requests"],
        env=env, capture_output=True, text=True, timeout=300, cwd=TESTS.parent.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    # Three kubectl tests, each with every kubectl at hand; the fault-hook test needs LocalKube's own hooks.
    assert f"{3 * len(kubectl_binaries())} passed, 1 skipped" in out.stdout
