"""`make demo`: run examples/quickstart.py against a LocalKube started here, then stop everything.

Starts LocalKube on a background thread, applies the CRDs, starts the operator as a subprocess (as it runs
in a cluster, watching all namespaces), runs the quickstart with KUBECONFIG pointing at LocalKube, and stops
the operator and LocalKube whatever happens. The exit code is the quickstart's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from localkube.cluster import LocalKube
from localkube.pytest_plugin import run_kubectl

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "dask_kube" / "operator" / "crds"
QUICKSTART = ROOT / "examples" / "quickstart.py"


def start_operator(kubeconfig: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "dask_kube.operator", "-A", "--verbose"], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while b"operator started" not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the operator did not start:\n" + log_path.read_text(errors="replace")[-3000:])
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="dask-kube-demo-"))
    print("starting LocalKube ...", flush=True)
    with LocalKube.in_thread() as kube:
        run_kubectl(kube.kubeconfig, work, "apply", "-f", str(CRDS))
        run_kubectl(kube.kubeconfig, work, "wait", "--for=condition=Established", "--timeout=30s",
                    *(f"crd/{p}.kubernetes.dask.org" for p in ("daskclusters", "daskworkergroups", "daskjobs",
                                                               "daskautoscalers")))
        print("starting the operator ...", flush=True)
        operator = start_operator(kube.kubeconfig, work / "operator.log")
        try:
            print(f"running {QUICKSTART.relative_to(ROOT)} (KUBECONFIG={kube.kubeconfig})", flush=True)
            code = subprocess.call([sys.executable, str(QUICKSTART)],
                                   env=dict(os.environ, KUBECONFIG=str(kube.kubeconfig)))
        finally:
            stop(operator)
        if code:
            print("quickstart failed; operator log tail:\n"
                  + (work / "operator.log").read_text(errors="replace")[-3000:], file=sys.stderr)
    print(f"demo finished with exit code {code}; LocalKube and the operator are stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
