"""The report's charts (PNG).  With :mod:`bench.report.roomcharts` (a
workload's rooms), the only module that imports matplotlib.

Every function takes plain data (:class:`Series`, built by
:mod:`bench.report` from the results JSON) and writes one PNG, so the
charts can be redrawn from saved results at any time.  One colour per
series (a fan-out strategy or a target) in every chart; line styles tell
statistics apart.  Points whose run carries a warning (load generator
saturated, lost deliveries, failed connections, incomplete) are drawn with
hollow markers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only (before pyplot is imported)

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator
from matplotlib.typing import ColorType
from matplotlib.typing import LineStyleType as LineStyle

#: Fixed colours for the known fan-out strategies, so a chart in one report
#: matches the same strategy's colour in every other report.
KNOWN_COLOURS = {"queued": "tab:blue", "direct": "tab:orange", "threads": "tab:green"}
OTHER_COLOURS = ("tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
DPI = 110

#: Percentile ticks of the distribution chart: (percentile, label).
PERCENTILE_TICKS: tuple[tuple[float, str], ...] = (
    (50.0, "50%"),
    (90.0, "90%"),
    (99.0, "99%"),
    (99.9, "99.9%"),
    (99.99, "99.99%"),
    (99.999, "99.999%"),
    (99.9999, "99.9999%"),
)

CHART_FILES = {
    "latency": "latency.png",
    "throughput": "throughput.png",
    "percentiles": "percentiles.png",
    "resources": "resources.png",
}


@dataclass
class Series:
    """One line per chart: one fan-out strategy (or target), its points in
    client-count order.  Latencies in microseconds; ``None`` = not measured."""

    label: str
    clients: list[int] = field(default_factory=list)
    p50_us: list[float | None] = field(default_factory=list)
    p99_us: list[float | None] = field(default_factory=list)
    max_us: list[float | None] = field(default_factory=list)
    deliveries_per_s: list[float | None] = field(default_factory=list)
    offered_per_s: list[float | None] = field(default_factory=list)
    server_cpu_percent: list[float | None] = field(default_factory=list)
    harness_cpu_percent: list[float | None] = field(default_factory=list)
    server_rss_bytes: list[float | None] = field(default_factory=list)
    flagged: list[bool] = field(default_factory=list)  #: the run has a warning
    #: client count -> HDR percentile distribution [(percentile, value_us)]
    distributions: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    #: client count -> number of latency samples behind that distribution
    sample_counts: dict[int, int] = field(default_factory=dict)


def colours(labels: Sequence[str]) -> dict[str, str]:
    """label -> colour: the known strategies keep theirs, others take the next free one."""
    out: dict[str, str] = {}
    spare = iter(OTHER_COLOURS)
    for label in labels:
        out[label] = KNOWN_COLOURS.get(label) or next(spare, "black")
    return out


def _ms(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v / 1000.0 for v in values]


def _nan(values: Sequence[float | None], scale: float = 1.0) -> list[float]:
    return [math.nan if v is None else v * scale for v in values]


# Four data arguments and three keyword-only styling options that every call
# site names; grouping them in an object would only move the same names.
def _plot(  # noqa: PLR0913
    ax: Axes,
    x: Sequence[float],
    y: Sequence[float],
    flagged: Sequence[bool],
    *,
    colour: str,
    style: LineStyle = "-",
    marker: str = "o",
) -> None:
    ax.plot(x, y, style, color=colour, linewidth=1.6)
    solid = [(a, b) for a, b, f in zip(x, y, flagged, strict=True) if not f]
    hollow = [(a, b) for a, b, f in zip(x, y, flagged, strict=True) if f]
    if solid:
        ax.plot(*zip(*solid, strict=True), marker, color=colour, markersize=5, linestyle="none")
    if hollow:
        ax.plot(
            *zip(*hollow, strict=True),
            marker,
            markerfacecolor="white",
            markeredgecolor=colour,
            markersize=6,
            linestyle="none",
        )


#: A client-count axis spans this many times from its first count to its last
#: before it turns logarithmic (evenly spread ticks for 10, 50, 100, ... 1000).
LOG_AXIS_SPAN = 8
#: Labelled ticks are at least this fraction of the axis apart: about the width
#: of a five-digit label on a 9-inch chart, so ``4100 4550 5000`` never run together.
MIN_LABEL_GAP = 0.07


def axis_position(values: Sequence[float], log: bool) -> list[float]:
    """Where each value sits along the axis, 0 .. 1."""
    xs = [math.log(v) if log else float(v) for v in values]
    lo, hi = min(xs), max(xs)
    return [0.0 if hi == lo else (x - lo) / (hi - lo) for x in xs]


def labelled_ticks(counts: Sequence[int], log: bool) -> list[int]:
    """The counts that get a label: the first, the last, and every other one
    at least :data:`MIN_LABEL_GAP` from its labelled neighbours (the others
    keep an unlabelled tick)."""
    if len(counts) <= 2:
        return list(counts)
    pos = axis_position(counts, log)
    keep = [0]
    for i in range(1, len(counts) - 1):
        if pos[i] - pos[keep[-1]] >= MIN_LABEL_GAP and pos[-1] - pos[i] >= MIN_LABEL_GAP:
            keep.append(i)
    keep.append(len(counts) - 1)
    return [counts[i] for i in keep]


def _client_axis(ax: Axes, series: Sequence[Series]) -> None:
    _count_axis(ax, sorted({c for s in series for c in s.clients}))


def _count_axis(ax: Axes, counts: Sequence[int]) -> None:
    """A client-count x axis: log when it spans :data:`LOG_AXIS_SPAN`, a tick
    at every count, a label where there is room (:func:`labelled_ticks`)."""
    log = bool(counts) and counts[-1] / max(counts[0], 1) >= LOG_AXIS_SPAN
    if log:
        ax.set_xscale("log")
    labelled = labelled_ticks(counts, log) if counts else []
    ax.xaxis.set_major_locator(FixedLocator(labelled))
    ax.xaxis.set_minor_locator(FixedLocator([c for c in counts if c not in labelled]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("connected clients")
    ax.grid(True, which="both", alpha=0.3)


def _legend_handles(series: Sequence[Series], colour: dict[str, str], flagged: bool) -> list[Line2D]:
    handles = [Line2D([], [], color=colour[s.label], marker="o", label=s.label) for s in series]
    if flagged:
        handles.append(
            Line2D(
                [],
                [],
                color="grey",
                marker="o",
                markerfacecolor="white",
                linestyle="none",
                label="run with a warning (see report)",
            )
        )
    return handles


def _title(fig: Figure, title: str, subtitle: str) -> None:
    fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""), fontsize=11)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG and close it (for :mod:`bench.report.roomcharts`, the room charts)."""
    return _save(fig, path)


def latency_chart(series: Sequence[Series], path: Path, subtitle: str = "") -> Path:
    """Chart 1: p50 / p99 / max broadcast latency vs client count (log y)."""
    colour = colours([s.label for s in series])
    fig, ax = plt.subplots(figsize=(9, 5.2), layout="constrained")
    styles: tuple[tuple[str, LineStyle, str], ...] = (("p50", "-", "o"), ("p99", "--", "s"), ("max", ":", "^"))
    for s in series:
        for (_name, style, marker), values in zip(styles, (s.p50_us, s.p99_us, s.max_us), strict=True):
            _plot(ax, s.clients, _ms(values), s.flagged, colour=colour[s.label], style=style, marker=marker)
    ax.set_yscale("log")
    ax.set_ylabel("latency, send to receive (ms, log scale)")
    _client_axis(ax, series)
    _title(fig, "Broadcast latency vs connected clients", subtitle)
    handles = _legend_handles(series, colour, any(f for s in series for f in s.flagged))
    handles += [
        Line2D([], [], color="black", linestyle=style, marker=marker, label=name) for name, style, marker in styles
    ]
    ax.legend(handles=handles, loc="upper left", fontsize="small")
    return _save(fig, path)


#: One marker shape per series in the throughput chart, so lines that coincide
#: (every strategy delivering all it was offered) still show each series.
SERIES_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: Each series is shifted by this fraction of its x value from the next one
#: (a few pixels on the log axis): coinciding points sit side by side.
SERIES_X_OFFSET = 0.06


def series_markers(n: int) -> list[str]:
    return [SERIES_MARKERS[i % len(SERIES_MARKERS)] for i in range(n)]


def series_offsets(n: int) -> list[float]:
    """x multipliers centred on 1: (0.94, 1.0, 1.06) for three series."""
    return [1.0 + SERIES_X_OFFSET * (i - (n - 1) / 2) for i in range(n)]


def throughput_figure(series: Sequence[Series], subtitle: str = "") -> Figure:
    """Chart 2's figure: measured deliveries/s vs client count over the
    offered rate (a pale band); one marker shape and a small x offset per series."""
    colour = colours([s.label for s in series])
    fig, ax = plt.subplots(figsize=(9, 5.2), layout="constrained")
    markers = series_markers(len(series))
    for s, marker, shift in zip(series, markers, series_offsets(len(series)), strict=True):
        # offered: a wide pale band under the measured line, so "measured = offered" stays visible
        ax.plot(s.clients, _nan(s.offered_per_s), "-", color=colour[s.label], linewidth=7, alpha=0.2)
        xs = [c * shift for c in s.clients]
        _plot(ax, xs, _nan(s.deliveries_per_s), s.flagged, colour=colour[s.label], marker=marker)
    ax.set_yscale("log")
    ax.set_ylabel("deliveries per second (log scale)")
    _client_axis(ax, series)
    _title(fig, "Deliveries per second vs connected clients", subtitle)
    handles = [
        Line2D([], [], color=colour[s.label], marker=m, label=s.label) for s, m in zip(series, markers, strict=True)
    ]
    handles += _legend_handles([], colour, any(f for s in series for f in s.flagged))
    handles.append(Line2D([], [], color="grey", linewidth=7, alpha=0.3, label="offered: rate x receivers per message"))
    ax.legend(handles=handles, loc="upper left", fontsize="small")
    return fig


def throughput_chart(series: Sequence[Series], path: Path, subtitle: str = "") -> Path:
    """Chart 2: :func:`throughput_figure` as a PNG."""
    return _save(throughput_figure(series, subtitle), path)


def _percentile_x(p: float, count: int) -> float:
    """1/(1-p) for a percentile p in percent, capped at the sample count (the
    last point, 100%, is the maximum: the top 1/count of the samples)."""
    if p >= 100.0:
        return float(max(count, 2))
    return min(1.0 / (1.0 - p / 100.0), float(max(count, 2)))


def percentiles_chart(series: Sequence[Series], path: Path, subtitle: str = "") -> Path:
    """Chart 3: HDR latency percentile distribution, one panel per client
    count, one line per series; x = percentile on a log 1/(1-p) axis."""
    colour = colours([s.label for s in series])
    counts = sorted({c for s in series for c in s.distributions})
    n = max(1, len(counts))
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows + 0.6), sharey=True, squeeze=False, layout="constrained"
    )
    top = 2.0
    for i, ax in enumerate(axes.flat):
        if i >= len(counts):
            ax.set_visible(False)
            continue
        clients = counts[i]
        for s in series:
            dist = s.distributions.get(clients)
            if not dist:
                continue
            xs = [_percentile_x(p, s.sample_counts.get(clients, 2)) for p, _ in dist]
            ys = [v / 1000.0 for _, v in dist]
            top = max(top, max(xs))
            ax.plot(xs, ys, color=colour[s.label], linewidth=1.4, label=s.label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{clients} clients", fontsize="medium")
        ax.grid(True, which="major", alpha=0.3)
        if i % ncols == 0:
            ax.set_ylabel("latency (ms, log scale)")
        if i >= len(counts) - ncols:
            ax.set_xlabel("percentile")
    ticks = [(1.0 / (1.0 - p / 100.0), label) for p, label in PERCENTILE_TICKS]
    for ax in axes.flat:
        if not ax.get_visible():
            continue
        ax.set_xlim(1.0, max(top, 100.0) * 1.2)
        shown = [(x, label) for x, label in ticks if x <= max(top, 100.0) * 1.2]
        ax.xaxis.set_major_locator(FixedLocator([x for x, _ in shown]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([label for _, label in shown], rotation=45, fontsize="small")
    handles = [Line2D([], [], color=colour[s.label], label=s.label) for s in series]
    fig.legend(handles=handles, loc="outside lower center", ncols=max(1, len(handles)), fontsize="small")
    _title(fig, "Latency percentile distribution (HDR): the latency at each percentile of deliveries", subtitle)
    return _save(fig, path)


def resources_chart(series: Sequence[Series], path: Path, subtitle: str = "") -> Path:
    """Chart 4: server CPU (and the harness's, dotted) and server RSS vs client count."""
    colour = colours([s.label for s in series])
    fig, (cpu_ax, rss_ax) = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    for s in series:
        _plot(cpu_ax, s.clients, _nan(s.server_cpu_percent), s.flagged, colour=colour[s.label])
        cpu_ax.plot(s.clients, _nan(s.harness_cpu_percent), ":", color=colour[s.label], linewidth=1.2)
        _plot(rss_ax, s.clients, _nan(s.server_rss_bytes, 1 / 2**20), s.flagged, colour=colour[s.label])
    cpu_ax.set_ylabel("CPU (% of one core, traffic window average)")
    cpu_ax.set_ylim(bottom=0)
    cpu_ax.set_title("Server CPU")
    rss_ax.set_ylabel("resident memory (MiB, peak)")
    rss_ax.set_ylim(bottom=0)
    rss_ax.set_title("Server memory (RSS)")
    for ax in (cpu_ax, rss_ax):
        _client_axis(ax, series)
    handles = _legend_handles(series, colour, any(f for s in series for f in s.flagged))
    cpu_handles = [*handles, Line2D([], [], color="grey", linestyle=":", label="load generator (all workers)")]
    cpu_ax.legend(handles=cpu_handles, loc="upper left", fontsize="small")
    rss_ax.legend(handles=handles, loc="upper left", fontsize="small")
    _title(fig, "Server resources vs connected clients", subtitle)
    return _save(fig, path)


def draw_all(series: Sequence[Series], out_dir: Path, subtitle: str = "") -> dict[str, Path]:
    """All four charts into ``out_dir``; returns name -> path."""
    return {
        "latency": latency_chart(series, out_dir / CHART_FILES["latency"], subtitle),
        "throughput": throughput_chart(series, out_dir / CHART_FILES["throughput"], subtitle),
        "percentiles": percentiles_chart(series, out_dir / CHART_FILES["percentiles"], subtitle),
        "resources": resources_chart(series, out_dir / CHART_FILES["resources"], subtitle),
    }


# ---------------------------------------------------------------------------
# diff (python -m bench diff): BASE dashed, NEW solid
# ---------------------------------------------------------------------------

#: The diff chart's panels: (title, Series field, scale to the unit, y label).
OVERLAY_PANELS: tuple[tuple[str, str, float, str], ...] = (
    ("p50 latency", "p50_us", 1e-3, "ms (log scale)"),
    ("p99 latency", "p99_us", 1e-3, "ms (log scale)"),
    ("deliveries per second", "deliveries_per_s", 1.0, "deliveries/s (log scale)"),
)
BASE_STYLE: LineStyle = "--"
NEW_STYLE: LineStyle = "-"


def overlay_chart(base: Sequence[Series], new: Sequence[Series], path: Path, names: tuple[str, str]) -> Path:
    """Two results on one set of panels: BASE dashed, NEW solid, one colour per series."""
    colour = colours(list(dict.fromkeys(s.label for s in (*base, *new))))
    fig, axes = plt.subplots(1, len(OVERLAY_PANELS), figsize=(13, 4.6), layout="constrained", squeeze=False)
    for ax, (title, attr, scale, unit) in zip(axes.flat, OVERLAY_PANELS, strict=True):
        for side, style in ((base, BASE_STYLE), (new, NEW_STYLE)):
            for s in side:
                values = _nan(getattr(s, attr), scale)
                ax.plot(s.clients, values, style, marker="o", markersize=4, color=colour[s.label], linewidth=1.5)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.4g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:,.3g}"))
        ax.set_title(title, fontsize="medium")
        ax.set_ylabel(unit)
        _client_axis(ax, [*base, *new])
    handles = [Line2D([], [], color=c, marker="o", label=label) for label, c in colour.items()]
    handles += [
        Line2D([], [], color="black", linestyle=BASE_STYLE, label=f"BASE {names[0]}"),
        Line2D([], [], color="black", linestyle=NEW_STYLE, label=f"NEW {names[1]}"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize="small")
    _title(fig, "diff: BASE (dashed) and NEW (solid)", "")
    return _save(fig, path)


# ---------------------------------------------------------------------------
# the capacity search: p95 (the criterion) against the bound
# ---------------------------------------------------------------------------


@dataclass
class CapacityLine:
    """One search's steps in client-count order (attempts and repeats included)."""

    label: str
    clients: list[int] = field(default_factory=list)
    p50_us: list[float | None] = field(default_factory=list)
    p95_us: list[float | None] = field(default_factory=list)
    p99_us: list[float | None] = field(default_factory=list)
    passed: list[bool] = field(default_factory=list)


CAPACITY_PNG = "capacity.png"
#: How failed steps are drawn: a large cross, the same in every series.
FAILED_MARKER = {"marker": "X", "markersize": 10, "markerfacecolor": "tab:red", "markeredgecolor": "black"}


def capacity_figure(lines: Sequence[CapacityLine], bound_ms: float, subtitle: str = "") -> Figure:
    """p95 latency of every step (solid: the criterion; p50 and p99 faint),
    the bound as a horizontal line, failed steps as red crosses."""
    colour = colours([line.label for line in lines])
    fig, ax = plt.subplots(figsize=(9, 5.2), layout="constrained")
    for line in lines:
        c = colour[line.label]
        ax.plot(line.clients, _ms(line.p50_us), ":", color=c, linewidth=1, alpha=0.6)
        ax.plot(line.clients, _ms(line.p99_us), "-.", color=c, linewidth=1, alpha=0.6)
        ax.plot(line.clients, _ms(line.p95_us), "-", marker="o", color=c, linewidth=1.8, markersize=5)
        failed = [(n, v) for n, v, ok in zip(line.clients, _ms(line.p95_us), line.passed, strict=True) if not ok]
        if failed:
            ax.plot(*zip(*failed, strict=True), linestyle="none", **FAILED_MARKER)  # type: ignore[arg-type]
    ax.axhline(bound_ms, color="black", linestyle="--", linewidth=1.2)
    ax.set_yscale("log")
    ax.set_ylabel("latency, send to receive (ms, log scale)")
    _count_axis(ax, sorted({n for line in lines for n in line.clients}))
    _title(fig, "Capacity search: p95 latency of each step against the bound", subtitle)
    handles = [Line2D([], [], color=colour[line.label], marker="o", label=f"{line.label} p95") for line in lines]
    handles += [
        Line2D([], [], color="grey", linestyle=":", label="p50"),
        Line2D([], [], color="grey", linestyle="-.", label="p99"),
        Line2D([], [], color="black", linestyle="--", label=f"p95 bound {bound_ms:g} ms"),
        Line2D([], [], linestyle="none", label="failed step", **FAILED_MARKER),  # type: ignore[arg-type]
    ]
    ax.legend(handles=handles, loc="upper left", fontsize="small")
    return fig


def capacity_chart(lines: Sequence[CapacityLine], bound_ms: float, path: Path, subtitle: str = "") -> Path:
    return _save(capacity_figure(lines, bound_ms, subtitle), path)


# ---------------------------------------------------------------------------
# the comparison (python -m bench compare): one line per target
# ---------------------------------------------------------------------------

#: (file, metric key, axis label, scale, log y axis) of the comparison's charts.
COMPARE_CHARTS: tuple[tuple[str, str, str, float, bool], ...] = (
    ("compare-p99.png", "p99_us", "p99 latency (ms)", 1e-3, True),
    ("compare-deliveries.png", "deliveries_per_s", "deliveries/s", 1.0, True),
    ("compare-server-cpu.png", "server_cpu_percent", "server CPU (% of one core)", 1.0, False),
)
#: The comparison's charts are smaller than the report's (three side by side in COMPARE.md).
COMPARE_DPI = 90


#: --repeat N: each target's min-max bars are moved sideways by this share of x (log axis),
#: so the bars of targets at the same client count do not hide each other.
BAR_DODGE = 0.03


def repeated_bars(ax: Axes, pts: Sequence[Mapping[str, Any]], how: tuple[str, float, float], colour: ColorType) -> None:
    """--repeat N: a bar from the lowest to the highest run at each point (the line joins the
    medians); ``how`` is (the point's key, the y scale, the x factor that moves the bars aside)."""
    key, scale, shift = how
    bars = [
        (p["clients"] * shift, p[key] * scale, p["spread"][key][0] * scale, p["spread"][key][1] * scale)
        for p in pts
        if p["status"] == "ok" and p.get(key) and key in p.get("spread", {})
    ]
    if bars:
        xs, ys, lo, hi = zip(*bars, strict=True)
        yerr = [[y - low for y, low in zip(ys, lo, strict=True)], [high - y for y, high in zip(ys, hi, strict=True)]]
        ax.errorbar(xs, ys, yerr=yerr, fmt="none", ecolor=colour, capsize=3, alpha=0.8)


#: Line styles of the comparison's targets, with :data:`SERIES_MARKERS`: lines that
#: coincide (two servers alike at some counts) stay apart by shape as well as colour.
COMPARE_LINESTYLES = ("-", "--", "-.", ":")


@dataclass(frozen=True)
class TargetStyle:
    """How one target's line is drawn in the comparison's charts."""

    marker: str
    linestyle: str
    linewidth: float
    zorder: float
    shift: float  #: x factor: each target a little to the side (log axis), points and bars alike


def compare_styles(names: Sequence[str], ours: str | None = None) -> dict[str, TargetStyle]:
    """A marker, a line style and a small x offset per target, each its own;
    ``ours`` drawn thicker and on top, so no peer's line hides it."""
    n = len(names)
    return {
        name: TargetStyle(
            marker=SERIES_MARKERS[i % len(SERIES_MARKERS)],
            linestyle=COMPARE_LINESTYLES[i % len(COMPARE_LINESTYLES)],
            linewidth=2.4 if name == ours else 1.4,
            zorder=3.0 if name == ours else 2.0,
            shift=1 + BAR_DODGE * (i - (n - 1) / 2),
        )
        for i, name in enumerate(names)
    }


def compare_charts(
    points: Mapping[str, Sequence[Mapping[str, Any]]],
    out: Path,
    labels: Mapping[str, str] | None = None,
    ours: str | None = None,
) -> list[str]:
    """One PNG per metric of :data:`COMPARE_CHARTS`, one line per target,
    named ``labels[target]`` (the server and its version), each in a style
    of its own (:func:`compare_styles`).  ``points``: target -> its points
    (compare.json's); those with a ``status`` other than ``ok`` are left
    out.  One client count is no line: no chart then (the report's table
    holds the numbers).  Returns the file names."""
    files: list[str] = []
    all_clients = sorted({p["clients"] for pts in points.values() for p in pts})
    if len(all_clients) < 2:
        return files
    styles = compare_styles(list(points), ours)
    for file, key, label, scale, logy in COMPARE_CHARTS:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for name, pts in points.items():
            xy = [(p["clients"], p[key] * scale) for p in pts if p["status"] == "ok" and p.get(key)]
            if xy:
                xs, ys = zip(*xy, strict=True)
                st = styles[name]
                line = ax.plot(
                    [x * st.shift for x in xs], ys, marker=st.marker, linestyle=st.linestyle,
                    linewidth=st.linewidth, zorder=st.zorder, label=(labels or {}).get(name, name),
                )[0]  # fmt: skip
                repeated_bars(ax, pts, (key, scale, st.shift), line.get_color())
        ax.set_xscale("log")
        ax.set_xticks(all_clients)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        if logy:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.10g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("clients")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs clients")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / file, dpi=COMPARE_DPI)
        plt.close(fig)
        files.append(file)
    return files


def scaling_chart(
    nodes: Sequence[int], deliveries_per_s: Sequence[float | None], p99_us: Sequence[float | None], path: Path
) -> Path:
    """The cluster's scaling curve: deliveries/s vs nodes with the linear ideal
    (N x the first point's per node) dashed, and p99 latency vs nodes."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), layout="constrained", sharex=True)
    measured = _nan(deliveries_per_s)
    if nodes and not math.isnan(measured[0]):
        per_node = measured[0] / nodes[0]
        top.plot(nodes, [per_node * n for n in nodes], "--", color="grey", label="linear ideal")
    top.plot(nodes, measured, "o-", color="tab:blue", label="measured")
    top.set_ylabel("deliveries per second")
    top.legend(loc="upper left", fontsize="small")
    bottom.plot(nodes, _ms(p99_us), "s-", color="tab:red")
    bottom.set_ylabel("p99 latency (ms)")
    bottom.set_xlabel("nodes (server processes on one Redis backplane)")
    bottom.set_xticks(list(nodes))
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    _title(fig, "Cluster scaling: deliveries/s and p99 vs nodes", "")
    return _save(fig, path)
