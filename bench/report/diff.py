"""``chat-bench diff``'s report: two results side by side, point by point
(series x client count), with the ratio NEW/BASE of every metric of
:data:`bench.report.flat.METRICS`, as markdown (stdout, ``diff.md``) and one
overlay chart (BASE dashed, NEW solid) drawn by :mod:`bench.report.plots`.

The comparison itself (which runs, which limits, the exit code) is
:mod:`bench.studies.diff`; this module only pairs points and renders.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report import doc, flat, plots
from bench.report import sweep as sweep_report
from bench.report.flat import Metric, Row
from bench.report.fmt import MISSING

DIFF_MD = "diff.md"
DIFF_PNG = "diff.png"

#: What one run per point is worth, said under every diff: without it a reader
#: takes an 8% difference for a change.
NOISE_NOTE = (
    "**Run-to-run noise**: each point is one run. On the 2-core machine this project was developed on, "
    "two identical sweeps differed by 8% at p99 (more at p99.9 and max, and more on a shared machine), so "
    "a ratio that close to 1 is not a change. Diff two runs of the same build to see this machine's noise; "
    "for a decision, measure with repeats (`compare --repeat N` runs each point N times, interleaved, and "
    "reports the median with its min-max spread) and keep `--fail` limits wider than the noise."
)


@dataclass(frozen=True)
class Pair:
    """One point (series x client count) in BASE and NEW; None where one side lacks it."""

    series: str
    clients: int
    base: Row | None
    new: Row | None


def _rows(series: Sequence[sweep_report.SeriesData]) -> dict[tuple[str, int], Row]:
    out: dict[tuple[str, int], Row] = {}
    for s in series:
        for run in s.runs:  # a count run twice (capacity's repeats): the last run counts
            out[(s.label, run["parameters"]["clients"])] = flat.point_row(s.label, run)
    return out


def pair_points(base: Sequence[sweep_report.SeriesData], new: Sequence[sweep_report.SeriesData]) -> list[Pair]:
    """Every point of either side, matched by series label and client count.
    One series on each side is matched whatever its label (a single series
    directory against another strategy's)."""
    a, b = _rows(base), _rows(new)
    if len(base) == 1 and len(new) == 1 and base[0].label != new[0].label:
        label = f"{base[0].label} / {new[0].label}"
        a = {(label, n): row for (_, n), row in a.items()}
        b = {(label, n): row for (_, n), row in b.items()}
    order = list(dict.fromkeys(s for s, _ in [*a, *b]))
    keys = sorted({*a, *b}, key=lambda k: (order.index(k[0]), k[1]))
    return [Pair(s, n, a.get((s, n)), b.get((s, n))) for s, n in keys]


def value(row: Row | None, metric: Metric) -> float | None:
    v = None if row is None else row.get(metric.column)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def ratio(base: float | None, new: float | None) -> float | None:
    """NEW / BASE; 1 when both are 0, infinite when only BASE is 0."""
    if base is None or new is None:
        return None
    if base == 0:
        return 1.0 if new == 0 else math.inf
    return new / base


def ratio_text(r: float | None) -> str:
    if r is None:
        return MISSING
    return "new" if math.isinf(r) else f"{r:.2f}x"


def _number(v: float | None, metric: Metric) -> str:
    return MISSING if v is None else f"{v * metric.scale:,.{metric.digits}f}"


def cell(pair: Pair, metric: Metric) -> str:
    """'1.20 → 1.35 (1.13x)'."""
    a, b = value(pair.base, metric), value(pair.new, metric)
    return f"{_number(a, metric)} → {_number(b, metric)} ({ratio_text(ratio(a, b))})"


def tables(pairs: Sequence[Pair]) -> list[doc.Block]:
    """One table per series: a row per client count, a cell per metric."""
    out: list[doc.Block] = []
    header = ("clients", *(m.heading for m in flat.METRICS))
    for series in dict.fromkeys(p.series for p in pairs):
        rows: list[list[doc.Cell]] = [
            [str(p.clients), *(cell(p, m) for m in flat.METRICS)] for p in pairs if p.series == series
        ]
        out += [doc.Heading(2, series), doc.Table(header, rows, "r" * len(header))]
    return out


def document(pairs: Sequence[Pair], names: tuple[str, str], failures: Sequence[str], chart: str | None) -> str:
    """diff.md: what was compared, the tables, what is past the limits."""
    base, new = names
    blocks: list[doc.Block] = [
        doc.Heading(1, "chatbench diff"),
        doc.Para(
            f"BASE `{base}`, NEW `{new}`. Each cell is BASE → NEW (NEW/BASE): for latency and CPU below 1 "
            "is better, for deliveries/s above 1. Latency percentiles cover the measured messages; faults "
            "count all traffic, warm-up included; '-' is a point or number one side lacks."
        ),
        *tables(pairs),
        doc.Para(NOISE_NOTE),
    ]
    if failures:
        blocks += [doc.Heading(2, "Past the limits (--fail)"), doc.Bullets(list(failures), css="warn")]
    if chart:
        blocks += [doc.Heading(2, "Chart"), doc.Image("BASE dashed, NEW solid", chart)]
    return doc.to_markdown(blocks).rstrip() + "\n"


def draw(
    base: Sequence[sweep_report.SeriesData], new: Sequence[sweep_report.SeriesData], out: Path, names: tuple[str, str]
) -> Path:
    """The overlay chart: BASE dashed, NEW solid, one colour per series."""
    return plots.overlay_chart(sweep_report.chart_series(base), sweep_report.chart_series(new), out / DIFF_PNG, names)
