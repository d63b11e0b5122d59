"""`make conformance`: the installed kr8s's own test suite against a fresh LocalKube, and the report.

    python localkube/conformance/run.py [--report docs/conformance.md] [--check 0.95] [pytest arguments ...]

kr8s's tests run from its wheel, in place, with the settings its developers use (asyncio_mode=auto, xfail_strict,
a 300 s timeout) but without their automatic reruns: a test that needs a rerun to pass counts as failed here.
The only thing this side supplies is the session cluster (kr8s_cluster.py). Every test that does not pass is listed
in the report with what went wrong and, where it is not LocalKube's doing or LocalKube lacks the feature on
purpose, why (KNOWN below). `--check FRACTION` exits 1 when fewer pass (`make test` checks 0.95).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import kr8s

HERE = Path(__file__).parent
KR8S = Path(kr8s.__file__).parent
PASSING = ("passed", "xfailed")

# Tests that fail because LocalKube deliberately lacks what they need (a container runtime's features): test id
# (without the "tests/" prefix) -> why.
KNOWN: dict[str, str] = {
    "test_api.py::test_api_timeout": (
        "The test sets a 10 µs read timeout and expects `/version` to time out. LocalKube answers on loopback, often "
        "within those 10 µs (a kind cluster, behind a container network, never does), so the test passes or fails "
        "by scheduling, not by anything LocalKube does."),
    "test_objects.py::test_pod_port_forward_context_manager_manual": (
        "kr8s skips it itself (`For manual testing only`)."),
}


def run(pytest_args: list[str]) -> tuple[dict[str, dict[str, object]], float]:
    with tempfile.TemporaryDirectory(prefix="kr8s-conformance-") as tmp:
        results = Path(tmp) / "results.json"
        env = dict(os.environ, CONFORMANCE_RESULTS=str(results),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
        command = [sys.executable, "-m", "pytest", str(KR8S / "tests"), "--rootdir", str(KR8S), "--confcutdir",
                   str(KR8S), "-c", str(HERE / "pytest.ini"), "-p", "kr8s_cluster", "-p", "no:localkube",
                   "-p", "no:cacheprovider", *pytest_args]
        started = time.monotonic()
        subprocess.run(command, env=env, cwd=tmp, check=False)
        took = time.monotonic() - started
        return json.loads(results.read_text()) if results.exists() else {}, took


def report(results: dict[str, dict[str, object]], took: float) -> str:
    counts = Counter(str(r["outcome"]) for r in results.values())
    passing = sum(counts[o] for o in PASSING)
    total = len(results)
    lines = [
        "# Conformance: kr8s's own test suite",
        "",
        "LocalKube is judged by tests nobody here wrote: the suite that ships inside kr8s's wheel, run as kr8s's",
        "developers run it (their settings, their fixtures), against a fresh LocalKube. `make conformance`",
        "regenerates this page.",
        "",
        f"- kr8s {kr8s.__version__}, LocalKube reporting Kubernetes {_reported_version()}, kubectl "
        f"{_kubectl_version()}, Python {platform.python_version()}, {os.cpu_count()} cores",
        f"- **{passing} of {total} collected tests pass ({100 * passing / max(total, 1):.1f} %)** in {took:.0f} s;"
        f" outcomes: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}",
        f"- generated {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
    ]
    failing = {k: v for k, v in sorted(results.items()) if v["outcome"] not in PASSING}
    if failing:
        lines += ["## What does not pass", "", "| test | outcome | why |", "|---|---|---|"]
        for nodeid, result in failing.items():
            short = nodeid.removeprefix("tests/")
            why = KNOWN.get(short) or f"not explained yet: `{_cell(str(result['reason']))}`"
            lines.append(f"| `{_cell(short)}` | {result['outcome']} | {why} |")
        lines.append("")
    else:
        lines += ["Every collected test passes.", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def _reported_version() -> str:
    from localkube.apiserver.discovery import DEFAULT_VERSION

    return DEFAULT_VERSION


def _kubectl_version() -> str:
    kubectl = os.environ.get("CONFORMANCE_KUBECTL") or "kubectl"
    try:
        out = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True,
                             timeout=30).stdout
        return json.loads(out)["clientVersion"]["gitVersion"]
    except (OSError, ValueError, KeyError, subprocess.SubprocessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, help="write the Markdown report here (e.g. docs/conformance.md)")
    parser.add_argument("--check", type=float, metavar="FRACTION",
                        help="exit 1 unless at least this fraction of the collected tests pass")
    args, pytest_args = parser.parse_known_args()
    results, took = run(pytest_args)
    if not results:
        print("conformance: the test run produced no results", file=sys.stderr)
        return 1
    text = report(results, took)
    print("\n" + text.split("\n## ", 1)[0].split("\n\n", 2)[-1])
    if args.report:
        args.report.write_text(text)
        print(f"report written to {args.report}")
    unexplained = sorted(k for k, r in results.items() if r["outcome"] not in PASSING
                         and k.removeprefix("tests/") not in KNOWN)
    if unexplained:
        print("not explained:\n  " + "\n  ".join(f"{k}: {results[k]['reason']}" for k in unexplained))
    passing = sum(r["outcome"] in PASSING for r in results.values()) / len(results)
    if args.check is not None and passing < args.check:
        print(f"conformance: {passing:.1%} of kr8s's tests pass, below {args.check:.0%}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
