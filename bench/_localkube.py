"""Shared by the bench scripts: LocalKube as its own process, as users run it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from localkube.testing import free_port


def start_localkube(tmp: Path) -> tuple[subprocess.Popen[bytes], Path, str]:
    """Start the `localkube` command; return the process, its kubeconfig (HTTPS, for clients) and the URL of its
    plain-HTTP listener (for the benchmark's own raw requests) once it answers."""
    kubeconfig, http_port = tmp / "k.yaml", free_port()
    command = str(Path(sys.executable).with_name("localkube"))  # this environment's, whatever PATH says
    proc = subprocess.Popen([command, "--kubeconfig", str(kubeconfig), "--http-port", str(http_port)],
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not kubeconfig.exists():  # written only once the server answers
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("LocalKube did not start")
        time.sleep(0.05)
    return proc, kubeconfig, f"http://127.0.0.1:{http_port}"
