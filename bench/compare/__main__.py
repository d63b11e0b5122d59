"""dask_kube vs dask-kubernetes, side by side on one LocalKube (`make bench-compare`).

The harness runs here (our .venv) with LocalKube in-process, so that it can count the API requests each client
makes (by User-Agent). dask-kubernetes's operator (`kopf run -m dask_kubernetes.operator.controller -A`) and
client run as processes of .venv-bench-dk; our client of this environment, our operator of .venv-bench-ours (what
its image installs; this environment when that is not built, as the header then says). Every number is a median over
rounds with its spread (max - min, shown as ±half), and ours/theirs is the ratio of medians. Reported, never
asserted.

Scenarios: 1 cold start (+ floor), 2 scale 2 -> 16 -> 2 with data in memory, 3 simulated pods (1 x 1,000 and
100 x 10 workers), 4 a DaskJob to Successful, 5 port-forward throughput, 6 idle API requests per minute. After
the table, each target (verdict.py) as met, missed or not measured. SIGINT or SIGTERM stops every process the
harness started (procs.py) before it exits.

    .venv/bin/python bench/compare [--rounds 3] [--scenarios 1,2,3,4,5,6] [--tools ours,dk]
                                   [--dk-venv .venv-bench-dk] [--ours-venv .venv-bench-ours]
                                   [--write-docs docs/benchmarks.md] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # bench/: the helpers shared with the other benches

import cold_start
import daskjob
import forward
import idle
import procs
import scaling
import simulated
import verdict
from common import OURS_VENV, REPO, Kube, Tool, dk_image_mapping, dk_tool, ours_tool, tool_versions
from localkube.cluster import LocalKube
from report import Row, markdown_table, text_table

import docs

SCENARIOS = {"1": cold_start, "2": scaling, "3": simulated, "4": daskjob, "5": forward, "6": idle}


class Ctx:
    def __init__(self, kube: Kube, tools: dict[str, Tool], missing: dict[str, str], args: argparse.Namespace):
        self.kube = kube
        self.tools = tools
        self.missing = missing
        self.rounds = args.rounds
        self.quick = args.quick
        self.args = args
        self.errors: list[str] = []

    def failure(self, key: str, what: str, err: BaseException) -> str:
        label = self.tools[key].label if key in self.tools else key
        text = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
        self.errors.append(f"{label} / {what}: {err}")
        print(f"!! {label} / {what}: {err}", file=sys.stderr, flush=True)
        return f"failed ({text[:160]})"


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores ({cpu or 'unknown CPU'}), {mem:.0f} GiB, " \
           f"{platform.system()} {platform.release()}, Python {platform.python_version()}"


async def run(args: argparse.Namespace, tmp: Path, threaded) -> tuple[list[Row], Ctx]:  # type: ignore[no-untyped-def]
    tools: dict[str, Tool] = {}
    missing: dict[str, str] = {}
    wanted = args.tools.split(",")
    if "ours" in wanted:
        tools["ours"] = ours_tool(Path(args.ours_venv))
        if "note" in tools["ours"].extra:
            print(f"note: {tools['ours'].extra['note']}", file=sys.stderr)
    else:
        missing["ours"] = "not selected"
    if "dk" in wanted:
        tool = dk_tool(Path(args.dk_venv))
        if tool is None:
            missing["dk"] = f"{args.dk_venv} not built (make bench-compare builds it)"
        else:
            tools["dk"] = tool
    else:
        missing["dk"] = "not selected (--tools)"
    rows: list[Row] = []
    async with Kube(threaded, tmp) as kube:
        ctx = Ctx(kube, tools, missing, args)
        for number in args.scenarios.split(","):
            module = SCENARIOS[number.strip()]
            started = time.perf_counter()
            print(f"== scenario {number} ({module.__name__}) ...", file=sys.stderr, flush=True)
            try:
                new = await module.run(ctx)
            except Exception as err:
                traceback.print_exc()
                ctx.errors.append(f"scenario {number}: {err!r}")
                new = [Row(f"{number} {module.__name__}", "harness error", "",
                           baseline=f"{type(err).__name__}: {str(err)[:200]}")]
            rows += new
            print(text_table(new), file=sys.stderr, flush=True)
            print(f"   ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    return rows, ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default="1,2,3,4,5,6")
    parser.add_argument("--tools", default="ours,dk")
    parser.add_argument("--dk-venv", default=str(REPO / ".venv-bench-dk"))
    parser.add_argument("--ours-venv", default=str(OURS_VENV),
                        help="our operator's environment: dask-kube[operator] only, as its image installs")
    parser.add_argument("--workers", type=int, default=1000, help="scenario 3: workers of the one big cluster")
    parser.add_argument("--clusters", type=int, default=100, help="scenario 3: clusters of 10 workers")
    parser.add_argument("--sim-limit", type=float, default=900, help="scenario 3: seconds before giving up")
    parser.add_argument("--sim-rounds", type=int, default=None, help="scenario 3 rounds (default: --rounds)")
    parser.add_argument("--high", type=int, default=16, help="scenario 2: workers to scale up to")
    parser.add_argument("--megabytes", type=int, default=100, help="scenario 5: payload per transfer")
    parser.add_argument("--idle-seconds", type=float, default=60, help="scenario 6: measurement window")
    parser.add_argument("--write-docs", default=None, help="append/replace our section in this markdown file")
    parser.add_argument("--logs", default=None, help="keep operator, runner and floor logs in this directory")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 1 round, scenario 1, ours only")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.scenarios, args.tools = 1, "1", "ours"
    args.dk_venv = os.path.abspath(args.dk_venv)  # its scripts run from other working directories
    args.ours_venv = os.path.abspath(args.ours_venv)
    if args.sim_rounds is None:
        args.sim_rounds = args.rounds
    procs.install()

    dk_venv = Path(args.dk_venv)
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp_name:
        tmp = Path(tmp_name)
        image_map = [dk_image_mapping(dk_venv, tmp / "dk-scripts")] if (dk_venv / "bin" / "python").exists() else []
        started = datetime.datetime.now(datetime.UTC)
        with LocalKube.in_thread(image_map=image_map, http_port=0) as threaded:
            rows, ctx = asyncio.run(run(args, tmp, threaded))
        minutes = (datetime.datetime.now(datetime.UTC) - started).total_seconds() / 60
        if args.logs:
            shutil.copytree(tmp, args.logs, dirs_exist_ok=True)

    versions = {key: f"{tool.label} {tool.version} ({tool_versions(tool)})" for key, tool in ctx.tools.items()}
    header = [f"date: {started:%Y-%m-%d %H:%M} UTC, {minutes:.0f} min, rounds: {args.rounds}",
              f"machine: {machine()}", *(f"{k}: {v}" for k, v in versions.items()),
              *(f"{k}: {v}" for k, v in ctx.missing.items()),
              *(f"{k}: {t.extra['note']}" for k, t in ctx.tools.items() if "note" in t.extra)]
    print("\n".join(header))
    print(text_table(rows))
    print()
    print(verdict.text(rows))
    if ctx.errors:
        print("\nerrors:")
        for err in ctx.errors:
            print(" -", err.splitlines()[0][:300])
    if args.write_docs:
        notes = docs.scenario_notes([SCENARIOS[n.strip()] for n in args.scenarios.split(",")])
        docs.write_section(Path(args.write_docs), header, markdown_table(rows) + "\n\n" + verdict.markdown(rows),
                           ctx.errors, args, notes)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # SIGINT or SIGTERM (procs.install): every process was stopped, LocalKube closed
        sys.exit(130)
