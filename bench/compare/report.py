"""The comparison table: one row per measured quantity, median and spread over rounds, ratio ours/theirs."""

from __future__ import annotations

from dataclasses import dataclass, field

from common import Sample


@dataclass
class Row:
    scenario: str
    metric: str
    unit: str                      # "s", "MB/s", "MB", "req", "req/min", "" (text)
    ours: Sample = field(default_factory=Sample)
    dk: Sample = field(default_factory=Sample)
    baseline: str = ""             # the floor measured in the same run, or a note
    key: str = ""                  # how the verdict finds the row (verdict.py); "" for rows it does not judge
    floor: float | None = None     # the floor's median, in the row's unit

    def ratio(self) -> str:
        a, b = self.ours.median, self.dk.median
        if a is None or b is None or b == 0:
            return "-"
        return f"{a / b:.2f}"


def fmt_number(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s"
    if unit in ("MB/s", "MB"):
        return f"{value:,.0f} {unit}"
    if unit in ("req", "req/min"):
        return f"{value:,.0f} {unit}"
    return f"{value:.3g}"


def cell(sample: Sample, unit: str) -> str:
    if sample.text:
        return sample.text
    if sample.median is None:
        return f"n/a: {sample.note}" if sample.note else "not run"
    text = fmt_number(sample.median, unit)
    if sample.spread is not None:
        text += f" (±{fmt_number(sample.spread / 2, unit).split(' ')[0]})"
    if sample.note:
        text += f" [{sample.note}]"
    return text


HEADER = ("scenario", "metric", "dask_kube", "dask-kubernetes", "ours/theirs", "floor / notes")


def rows_as_cells(rows: list[Row]) -> list[tuple[str, ...]]:
    return [(r.scenario, r.metric, cell(r.ours, r.unit), cell(r.dk, r.unit), r.ratio(), r.baseline) for r in rows]


def text_table(rows: list[Row]) -> str:
    cells = [HEADER, *rows_as_cells(rows)]
    widths = [min(max(len(c[i]) for c in cells), 60) for i in range(len(HEADER))]
    lines = []
    for n, c in enumerate(cells):
        lines.append("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    cells = rows_as_cells(rows)
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(v.replace("|", "\\|") for v in c) + " |" for c in cells]
    return "\n".join(out)
