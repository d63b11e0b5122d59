"""Shared by the bench scripts: LocalKube as its own process, as users run it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml


def start_localkube(tmp: Path) -> tuple[subprocess.Popen[bytes], Path, str]:
    """Start `python -m localkube`; return the process, its kubeconfig and its URL once it answers."""
    kubeconfig = tmp / "k.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "localkube", "--kubeconfig", str(kubeconfig)],
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not kubeconfig.exists():  # written only once the server answers
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("LocalKube did not start")
        time.sleep(0.05)
    return proc, kubeconfig, yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
