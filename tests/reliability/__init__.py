"""Reliability suite: faults injected into LocalKube, the operator and Dask processes; bad input thrown at the API.

Shared helpers live here (the test modules import them). Every test appends what it injected and what it
observed to a JSON-lines file (`record`), which `tests/reliability/report.py` renders into docs/reliability.md.
The file is `$DASK_KUBE_RELIABILITY_REPORT`, by default `<system tmp>/dask-kube-reliability/results.jsonl`.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from dask_kube import naming, specs
from localkube import testing

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
SIMULATE = {"localkube.dask.org/simulate": "true"}
REPORT = Path(os.environ.get("DASK_KUBE_RELIABILITY_REPORT")
              or Path(tempfile.gettempdir()) / "dask-kube-reliability" / "results.jsonl")


def record(test: str, case: str, *, kind: str = "fault", injected: str, survived: str, lost: str = "nothing",
           seconds: float | None = None, **extra: Any) -> None:
    """Append one row of the reliability report (the latest row per (test, case) wins in the rendering)."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    row = {"test": test, "case": case, "kind": kind, "injected": injected, "survived": survived, "lost": lost,
           "seconds": None if seconds is None else round(seconds, 1), "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
           **extra}
    with REPORT.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def until(predicate: Callable[[], Any], what: str, timeout: float = 60,
          explain: Callable[[], str] | None = None, every: float = 0.2) -> Any:
    """localkube.testing.until with this suite's defaults (a minute, polled every 0.2 s)."""
    return testing.until(predicate, what, within=timeout, interval=every, explain=explain)


def get(kubectl: Kubectl, kind: str, name: str) -> dict[str, Any]:
    """The object, or {} while it does not exist."""
    out = kubectl("get", kind, name, "-o", "json", "--ignore-not-found", check=False)
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else {}


def items(kubectl: Kubectl, kinds: str, *args: str) -> list[dict[str, Any]]:
    return json.loads(kubectl("get", kinds, *args, "-o", "json").stdout)["items"]


def worker_pods(kubectl: Kubectl, cluster: str, *, include_deleting: bool = False) -> list[dict[str, Any]]:
    pods = items(kubectl, "pods", "-l", naming.selector_string(naming.worker_selector(cluster)))
    return [p for p in pods if include_deleting or not p["metadata"].get("deletionTimestamp")]


def status(kubectl: Kubectl, kind: str, name: str) -> dict[str, Any]:
    return get(kubectl, kind, name).get("status") or {}


def condition(obj_status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in obj_status.get("conditions") or () if c.get("type") == type_), {})


def cluster_body(name: str, replicas: int, *, simulate_workers: bool = True, idle_timeout: int = 0
                 ) -> dict[str, Any]:
    obj = specs.make_cluster_spec(name, n_workers=replicas, idle_timeout=idle_timeout,
                                  worker_command="dask worker --nthreads 1 --no-dashboard")
    if simulate_workers:
        obj["spec"]["worker"]["metadata"] = {"annotations": dict(SIMULATE)}
    return obj


def apply(kubectl: Kubectl, obj: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(obj))


def running(kubectl: Kubectl, name: str, ready: int | None = None, timeout: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(kubectl, "daskcluster", name)
        st = obj.get("status") or {}
        ok = st.get("phase") == "Running" and (ready is None or st.get("readyReplicas") == ready)
        return obj if ok else None
    return until(check, f"DaskCluster {name} Running" + ("" if ready is None else f" with {ready} ready workers"),
                 timeout, explain=lambda: json.dumps(status(kubectl, "daskcluster", name), indent=1))


def exactly(kubectl: Kubectl, cluster: str, n: int, timeout: float = 60, hold: float = 2.0) -> list[str]:
    """Wait until the cluster has exactly `n` live worker pods, all Running, with unique names and no pod left
    terminating; then check that it stays so for `hold` seconds (no late duplicate creates). The pod names."""
    def ok() -> tuple[list[str]] | None:
        pods = worker_pods(kubectl, cluster, include_deleting=True)
        names = [p["metadata"]["name"] for p in pods]
        running_ = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
                    and not p["metadata"].get("deletionTimestamp")]
        return (names,) if len(pods) == n and len(running_) == n else None

    [names] = until(ok, f"exactly {n} Running worker pods of {cluster}", timeout,
                  explain=lambda: "\n".join(f"{p['metadata']['name']} {(p.get('status') or {}).get('phase')} "
                                            f"deleting={bool(p['metadata'].get('deletionTimestamp'))}"
                                            for p in worker_pods(kubectl, cluster, include_deleting=True)))
    assert len(set(names)) == len(names), f"duplicate pod names: {names}"
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        now = [p["metadata"]["name"] for p in worker_pods(kubectl, cluster, include_deleting=True)]
        assert sorted(now) == sorted(names), f"worker pods changed after convergence: {names} -> {now}"
        time.sleep(0.3)
    return names


def orphans(kubectl: Kubectl) -> list[str]:
    """Pods, Services and worker groups of the namespace whose owner does not exist (or that have none)."""
    owners = {o["metadata"]["uid"] for o in items(kubectl, "daskclusters,daskworkergroups,daskjobs")}
    out = []
    for obj in items(kubectl, "pods,services,daskworkergroups"):
        refs = obj["metadata"].get("ownerReferences") or ()
        if not refs or not all(r.get("uid") in owners for r in refs):
            out.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return out


def tracebacks(log_text: str) -> list[str]:
    """The line before each traceback in an operator log (what failed). A chained exception's further
    tracebacks (after "The above exception was the direct cause...") belong to the same failure: not counted."""
    lines = log_text.splitlines()
    return [lines[i - 1] if i else "" for i, line in enumerate(lines)
            if line.startswith("Traceback") and not (i >= 2 and lines[i - 1] == "" and lines[i - 2].startswith(
                ("The above exception", "During handling of the above exception")))]


def log_since(path: Path, offset: int) -> str:
    return path.read_bytes()[offset:].decode(errors="replace")


def names_unique(names: Iterable[str]) -> bool:
    names = list(names)
    return len(names) == len(set(names))
