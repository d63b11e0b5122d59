"""Soak: the operator churning clusters for a long while, to find what only time shows (`make soak MINUTES=30`).

On an embedded LocalKube, with the real operator as a subprocess (production settings), for `--minutes`:
simulated clusters (simulated scheduler and workers: the operator's pod management at no CPU cost) are created,
scaled, given and relieved of a DaskAutoscaler, and deleted, at random (seeded); one cluster with a real scheduler
and real workers is scaled, autoscaled and recreated; the operator is SIGKILLed and restarted `--kills` times.
Every `--sample` seconds it records the operator's RSS, its API requests per minute (counted by LocalKube) and the
reconcile errors in its log (tracebacks, and ERROR lines). At the end every cluster is deleted and, once the
namespace has settled, it counts what is left behind: pods, Services, Leases, Secrets, PodDisruptionBudgets, worker
groups and autoscalers, and what the operator still holds per object (its probe's `held_by_namespace`).

Reported, never asserted: a table for docs/reliability.md on stdout, the samples as JSON with `--json PATH`.

    .venv/bin/python bench/soak.py --minutes 30 [--seed 1] [--kills 3] [--json soak.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from localkube.cluster import LocalKube, ThreadedLocalKube
from localkube.testing import free_port

from dask_kube import naming, specs

CRDS = Path(__file__).parents[1] / "dask_kube" / "operator" / "crds"
SIMULATE = {"localkube.dask.org/simulate": "true"}
NS = "soak"
DASK = f"/apis/{naming.API_VERSION}/namespaces/{NS}"
CORE = f"/api/v1/namespaces/{NS}"
MAX_SIMULATED = 8  # simulated clusters alive at once
LEFTOVER_KINDS = {"pods": CORE + "/pods", "services": CORE + "/services",
                  "leases": f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases", "secrets": CORE + "/secrets",
                  "poddisruptionbudgets": f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets",
                  "daskworkergroups": DASK + "/daskworkergroups", "daskautoscalers": DASK + "/daskautoscalers",
                  "daskclusters": DASK + "/daskclusters"}


class Api:
    """Plain JSON over LocalKube's HTTP listener: the soak's own requests are not the operator's."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, method: str, path: str, body: Any = None, patch: bool = False) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Content-Type": "application/merge-patch+json" if patch else "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")


@dataclass
class Operator:
    kubeconfig: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    probe: str = ""
    starts: int = 0

    def start(self) -> None:
        self.probe = f"http://127.0.0.1:{free_port()}/healthz"
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dask_kube.operator", "--all-namespaces", "--verbose", "--liveness", self.probe],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=dict(os.environ, KUBECONFIG=str(self.kubeconfig)))
        deadline = time.monotonic() + 180  # importing kopf and distributed is slow on a busy machine
        while b"operator started" not in self.log.read_bytes()[offset:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()  # never leave it running behind us
                raise RuntimeError("the operator did not start:\n" + self.log.read_text()[-3000:])
            time.sleep(0.05)
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def rss_mib(self) -> float:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def held(self) -> dict[str, int]:
        with urllib.request.urlopen(self.probe, timeout=10) as resp:
            return dict(json.loads(resp.read())["held_by_namespace"].get(NS, {}))


def errors(log_text: str) -> int:
    """Reconcile errors in an operator log: tracebacks (a chained one counts once) and ERROR lines."""
    lines = log_text.splitlines()
    tracebacks = sum(1 for i, line in enumerate(lines) if line.startswith("Traceback") and not (
        i >= 2 and lines[i - 1] == "" and lines[i - 2].startswith(("The above exception", "During handling"))))
    return tracebacks + sum(1 for line in lines if re.search(r"\bERROR\b", line))


def cluster(name: str, workers: int, simulated: bool) -> dict[str, Any]:
    body = specs.make_cluster_spec(name, n_workers=workers, worker_command="dask worker --nthreads 1 --no-dashboard")
    if simulated:
        body["spec"]["worker"]["metadata"] = {"annotations": dict(SIMULATE)}
        body["spec"]["scheduler"]["metadata"] = {"annotations": dict(SIMULATE)}
    return body


@dataclass
class Churn:
    api: Api
    rng: random.Random
    alive: list[str] = field(default_factory=list)
    serial: int = 0
    done: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.done[what] = self.done.get(what, 0) + 1

    def step(self) -> None:
        """One random operation on the simulated clusters."""
        choices: list[Callable[[], None]] = [self.create]
        if self.alive:
            choices += [self.scale, self.scale, self.adapt, self.unadapt, self.delete]
        if len(self.alive) >= MAX_SIMULATED:
            choices = [self.delete, self.scale]
        self.rng.choice(choices)()

    def create(self) -> None:
        self.serial += 1
        name = f"sim-{self.serial}"
        code, body = self.api("POST", DASK + "/daskclusters", cluster(name, self.rng.randint(1, 20), True))
        assert code == 201, body
        self.alive.append(name)
        self.count("create")

    def scale(self) -> None:
        name = self.rng.choice(self.alive)
        self.api("PATCH", f"{DASK}/daskclusters/{name}", {"spec": {"worker": {"replicas": self.rng.randint(0, 30)}}},
                 patch=True)
        self.count("scale")

    def adapt(self) -> None:
        name = self.rng.choice(self.alive)
        self.api("POST", DASK + "/daskautoscalers", specs.make_autoscaler(name, 1, self.rng.randint(2, 10)))
        self.count("adapt")

    def unadapt(self) -> None:
        name = self.rng.choice(self.alive)
        self.api("DELETE", f"{DASK}/daskautoscalers/{naming.autoscaler_name(name)}")
        self.count("unadapt")

    def delete(self) -> None:
        name = self.alive.pop(self.rng.randrange(len(self.alive)))
        self.api("DELETE", f"{DASK}/daskclusters/{name}")
        self.count("delete")


def real_cluster_step(api: Api, phase: int) -> str:
    """The real cluster's life, one phase per call: create, scale up, adapt, stop adapting, recreate."""
    name = "real"
    if phase % 5 == 0:
        api("DELETE", f"{DASK}/daskclusters/{name}")
        deadline = time.monotonic() + 120
        while api("GET", f"{DASK}/daskclusters/{name}")[0] != 404 and time.monotonic() < deadline:
            time.sleep(0.5)
        api("POST", DASK + "/daskclusters", cluster(name, 1, False))
        return "real: (re)created with 1 worker"
    if phase % 5 == 1:
        api("PATCH", f"{DASK}/daskclusters/{name}", {"spec": {"worker": {"replicas": 3}}}, patch=True)
        return "real: scaled to 3"
    if phase % 5 == 2:
        api("POST", DASK + "/daskautoscalers", specs.make_autoscaler(name, 1, 2))
        return "real: adaptive 1..2 (idle: goes to 1)"
    if phase % 5 == 3:
        api("DELETE", f"{DASK}/daskautoscalers/{naming.autoscaler_name(name)}")
        return "real: adaptive off"
    api("PATCH", f"{DASK}/daskclusters/{name}", {"spec": {"worker": {"replicas": 2}}}, patch=True)
    return "real: scaled to 2"


def leftovers(api: Api) -> dict[str, list[str]]:
    out = {}
    for kind, path in LEFTOVER_KINDS.items():
        code, body = api("GET", path)
        names = [o["metadata"]["name"] for o in body["items"]] if code == 200 else [f"(GET failed: {code})"]
        if kind == "secrets":  # the ServiceAccount token LocalKube may make is not ours
            names = [n for n in names if not n.startswith("default-token")]
        out[kind] = names
    return out


def settle(api: Api, limit: float) -> float:
    """Delete every cluster; seconds until no pod of the namespace is left (or the limit)."""
    start = time.monotonic()
    api("DELETE", DASK + "/daskclusters")
    api("DELETE", DASK + "/daskautoscalers")
    while time.monotonic() - start < limit:
        code, pods = api("GET", CORE + "/pods")
        code2, clusters = api("GET", DASK + "/daskclusters")
        if code == 200 and code2 == 200 and not pods["items"] and not clusters["items"]:
            break
        time.sleep(1)
    return time.monotonic() - start


def run(kube: ThreadedLocalKube, tmp: Path, minutes: float, seed: int, kills: int, sample: float) -> dict[str, Any]:
    api = Api(kube.http_url)
    code, body = api("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    assert code == 201, body
    operator = Operator(kube.kubeconfig, tmp / "operator.log")
    operator.start()  # stops what it started if the operator does not come up
    rng = random.Random(seed)
    churn = Churn(api, rng)
    duration = minutes * 60
    kill_at = [duration * (i + 1) / (kills + 1) for i in range(kills)]
    start = last_sample = time.monotonic()
    last_requests = requests_of(kube)
    samples: list[dict[str, Any]] = []
    log: list[str] = [real_cluster_step(api, 0)]
    real_phase, next_real = 1, 60.0
    try:
        while (elapsed := time.monotonic() - start) < duration:
            churn.step()
            if elapsed >= next_real:
                log.append(f"{elapsed:6.0f}s {real_cluster_step(api, real_phase)}")
                real_phase, next_real = real_phase + 1, elapsed + 60
            if kill_at and elapsed >= kill_at[0]:
                kill_at.pop(0)
                operator.kill()
                log.append(f"{elapsed:6.0f}s operator SIGKILLed and restarted")
                operator.start()
            if time.monotonic() - last_sample >= sample:
                now = time.monotonic()
                count = requests_of(kube)
                samples.append({"minute": round((now - start) / 60, 1), "rss_mib": round(operator.rss_mib(), 1),
                                "requests_per_minute": round((count - last_requests) * 60 / (now - last_sample)),
                                "errors": errors(operator.log.read_text(errors="replace"))})
                print(f"  {samples[-1]}", file=sys.stderr, flush=True)
                last_sample, last_requests = now, count
            time.sleep(rng.uniform(0.5, 3.0))
        settled = settle(api, 300)
        time.sleep(12)  # the probe's answer is cached by kopf for 10 s
        held = operator.held()
        final_rss = operator.rss_mib()
    finally:
        operator.stop()
    return {"minutes": minutes, "seed": seed, "kills": kills, "operator_starts": operator.starts,
            "operations": churn.done, "real_cluster": log, "samples": samples, "settled_seconds": round(settled, 1),
            "leftovers": leftovers(api), "held": held, "final_rss_mib": round(final_rss, 1),
            "errors": errors(operator.log.read_text(errors="replace")),
            "error_lines": [line for line in operator.log.read_text(errors="replace").splitlines()
                            if re.search(r"\bERROR\b", line)][:20]}


def requests_of(kube: ThreadedLocalKube) -> int:
    counts = kube.call(kube.kube.request_counts)
    return counts.get("kopf", 0) + counts.get("kr8s", 0)


def table(result: dict[str, Any]) -> str:
    samples = result["samples"]
    rss = [s["rss_mib"] for s in samples] or [0.0]
    warm = rss[len(rss) // 3:] or rss
    rates = [s["requests_per_minute"] for s in samples] or [0]
    left = {k: len(v) for k, v in result["leftovers"].items()}
    rows = [
        ("duration", f"{result['minutes']:g} min, seed {result['seed']}, operator SIGKILLed {result['kills']} times"),
        ("operations", ", ".join(f"{k} {v}" for k, v in sorted(result["operations"].items()))),
        ("operator RSS", f"{rss[0]:.0f} MiB at first sample, {min(warm):.0f}-{max(warm):.0f} MiB after warm-up "
                         f"(last third), {result['final_rss_mib']:.0f} MiB at the end"),
        ("API requests/min (operator)", f"median {sorted(rates)[len(rates) // 2]}, max {max(rates)}"),
        ("reconcile errors", str(result["errors"])),
        ("settled after deleting everything", f"{result['settled_seconds']:.0f} s"),
        ("leftovers", ", ".join(f"{k} {v}" for k, v in left.items())),
        ("operator state held for the namespace", json.dumps(result["held"]) if result["held"] else "nothing"),
    ]
    return "| soak | result |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--sample", type=float, default=30, help="seconds between samples")
    parser.add_argument("--json", type=Path, help="write the whole result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalKube.in_thread(http_port=0) as kube:
        subprocess.run(["kubectl", "apply", "-f", str(CRDS)], check=True, capture_output=True,
                       env=dict(os.environ, KUBECONFIG=str(kube.kubeconfig), KUBECACHEDIR=tmp))
        result = run(kube, Path(tmp), args.minutes, args.seed, args.kills, args.sample)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(table(result))
    for line in result["real_cluster"]:
        print(f"  {line}")
    for line in result["error_lines"]:
        print(f"  ERROR: {line}")


if __name__ == "__main__":
    main()
