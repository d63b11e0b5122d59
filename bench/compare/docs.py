"""Writing the results into docs/benchmarks.md: our section only, appended, or replaced on a later run."""

from __future__ import annotations

import argparse
import re
import textwrap
from pathlib import Path

TITLE = "## dask_kube vs dask-kubernetes"

METHOD = """\
`make bench-compare` (harness: `bench/compare/`) builds `.venv-bench-dk` with the latest dask-kubernetes from PyPI
(`bench/compare/requirements-dk.txt`) and `.venv-bench-ours` with what our operator's image installs
(`dask-kube[operator]`: .venv also holds test packages, `kubernetes` and `kubernetes-asyncio` among them, that kopf
imports whenever they are installed, ~70 MB of RSS a deployed operator does not have), and runs both tools against
one LocalKube that the harness runs in-process,
so that it counts the API requests each client makes by User-Agent. Each tool's operator and client run as
processes of its own environment: dask-kubernetes's operator as its image does (`kopf run -m
dask_kubernetes.operator.controller -A`) with its CRDs from its wheel, its client
`dask_kubernetes.operator.KubeCluster`; ours `python -m dask_kube.operator -A` (from `.venv-bench-ours`) and
`dask_kube.KubeCluster` (from .venv). Only
one tool's CRDs and operator are installed at a time (both serve `kubernetes.dask.org/v1`). dask-kubernetes's pods
run in its environment through a LocalKube image map that also provides the `dask-scheduler`/`dask-worker` scripts
its client still defaults to (current distributed no longer installs them). Cells are the median over rounds, ±
half the spread (max - min); ours/theirs is the ratio of medians (below 1 is faster or fewer for time, requests,
memory and CPU; above 1 is better for throughput). Floors are measured in the same run: the same scheduler,
workers and DaskJob runner started directly as processes of this environment, the fastest way there is (`python -m
distributed.cli.dask_scheduler` / `dask_worker`, not the `dask` command, which imports every `dask_cli` plugin
first). After the table, each target of the section "Targets" is judged met, missed or not measured on this run.
Nothing here is asserted or gates CI."""


def scenario_notes(modules: list[object]) -> str:
    """How each scenario measures, from the scenario modules' docstrings, as a list."""
    lines = ["How each scenario measures:", ""]
    for module in modules:
        text = " ".join((getattr(module, "__doc__", "") or "").split())
        if text:
            lines.append(textwrap.fill(f"- {text}", 115, subsequent_indent="  ", break_on_hyphens=False,
                                       break_long_words=False))
    return "\n".join(lines)


def write_section(path: Path, header: list[str], table: str, errors: list[str], args: argparse.Namespace,
                  notes: str = "") -> None:
    body = [TITLE, "", METHOD, "", *(f"- {line}" for line in header), "",
            f"Command: `.venv/bin/python bench/compare --rounds {args.rounds} --scenarios {args.scenarios} "
            f"--idle-seconds {args.idle_seconds:g}`", "", table, ""]
    if notes:
        body += [notes.strip(), ""]
    if errors:
        body += ["Failures in this run (full messages in the harness output):", ""]
        body += [f"- {e.splitlines()[0][:300]}" for e in errors] + [""]
    section = "\n".join(body)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(TITLE)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
