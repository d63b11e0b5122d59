"""Each target of the comparison (docs/benchmarks.md), judged on one run's table: met, missed, or not measured.

A target compares medians: ours against dask-kubernetes's (`ours / theirs <= x`), against the floor measured in
the same run, or against a fixed number. Throughput is better when higher, everything else when lower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from report import Row, fmt_number

Against = Literal["theirs", "floor", "value"]


@dataclass(frozen=True)
class Target:
    key: str              # the Row.key it judges
    what: str             # as printed
    against: Against
    limit: float          # ours <= limit x theirs / x floor, or ours <= limit (>= for throughput)
    higher_is_better: bool = False


TARGETS: tuple[Target, ...] = (
    Target("cold-pf", "cold start <= 0.7x dask-kubernetes (port_forward_cluster_ip=True)", "theirs", 0.7),
    Target("cold-default", "cold start <= 1.2x the floor", "floor", 1.2),
    Target("scale-up", "scale 2 -> 16 <= 0.8x dask-kubernetes", "theirs", 0.8),
    Target("job-plain", "DaskJob (as shipped) <= 0.8x dask-kubernetes", "theirs", 0.8),
    Target("job-probe", "DaskJob (scheduler readinessProbe) <= 0.8x dask-kubernetes", "theirs", 0.8),
    Target("forward", "port-forward >= 2x dask-kubernetes's throughput", "theirs", 2.0, higher_is_better=True),
    Target("forward", "port-forward >= 30 % of direct loopback TCP", "floor", 0.3, higher_is_better=True),
    Target("idle", "idle 10-worker cluster <= 0.4 API requests/min", "value", 0.4),
    Target("idle", "idle 10-worker cluster <= 0.1x dask-kubernetes's requests", "theirs", 0.1),
    Target("sim-one-time", "1 x 1,000 simulated workers Running <= 3 s", "value", 3.0),
    Target("sim-one-rss", "1 x 1,000: operator memory <= dask-kubernetes's", "theirs", 1.0),
    Target("sim-many-time", "100 x 10 simulated workers Running <= 10 s", "value", 10.0),
    Target("sim-many-requests", "100 x 10: API requests <= 0.5x dask-kubernetes's", "theirs", 0.5),
    Target("sim-many-rss", "100 x 10: operator memory <= dask-kubernetes's", "theirs", 1.0),
)


def judge(target: Target, rows: Sequence[Row]) -> tuple[str, str]:
    """("met" | "missed" | "not measured", the numbers or why not)."""
    row = next((r for r in rows if r.key == target.key), None)
    if row is None:
        return "not measured", "scenario not run"
    ours = row.ours.median
    if ours is None:
        return "not measured", f"dask_kube: {row.ours.note or 'no value'}"
    if target.against == "value":
        reference, name = 1.0, ""
    elif target.against == "floor":
        reference, name = row.floor, "floor"
    else:
        reference, name = row.dk.median, "dask-kubernetes"
        if reference is None:
            return "not measured", f"dask-kubernetes: {row.dk.note or 'no value'}"
    if not reference:
        return "not measured", f"no {name or 'reference'}"
    ratio = ours / reference
    met = ratio >= target.limit if target.higher_is_better else ratio <= target.limit
    detail = fmt_number(ours, row.unit) if target.against == "value" else f"{ratio:.2f}x {name}"
    return ("met" if met else "missed"), detail


def verdict(rows: Sequence[Row]) -> list[tuple[str, str, str]]:
    """(target, met/missed/not measured, detail) for every target."""
    return [(t.what, *judge(t, rows)) for t in TARGETS]


def text(rows: Sequence[Row]) -> str:
    lines = ["Targets:"]
    for what, outcome, detail in verdict(rows):
        lines.append(f"  {outcome.upper():<13} {what} ({detail})")
    return "\n".join(lines)


def markdown(rows: Sequence[Row]) -> str:
    lines = ["| target | verdict | this run |", "|---|---|---|"]
    lines += [f"| {what} | {outcome} | {detail} |" for what, outcome, detail in verdict(rows)]
    return "\n".join(lines)
