"""A run over time: its chart per interval, from the run JSON's ``intervals``.

One PNG per run, beside its JSON (``run-c00100-time.png``): above, the p50,
p99 and max latency of the deliveries that arrived in each interval (log
scale); below, the deliveries that arrived per second against what the
timetable owed per second (the messages sent in each interval times their
audience).  The warm-up is shaded grey, the drain after the last send pale
blue; intervals with integrity faults, disconnects or late reads are marked
in red, and a run that a threshold stopped says so in its title.  The sweep
report embeds it for a single run and links every point's from its table;
``compare`` and ``cluster-scaling`` link theirs.  matplotlib, like
:mod:`bench.report.plots`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only (before pyplot is imported)

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bench.report import doc
from bench.results.schema import IntervalSection, RunDocument

DPI = 110
#: What a list of links to the charts says about them.
LINKS_NOTE = (
    "Each run per interval of its time axis (the deliveries that arrived in it): p50, p99 and max latency, and "
    "deliveries per second against what the timetable owed; warm-up shaded, faults in red."
)
#: The chart beside run-cNNNNN.json.
SUFFIX = "-time.png"


def chart_name(json_file: str) -> str:
    """``queued/run-c00100.json`` -> ``queued/run-c00100-time.png``."""
    return json_file.removesuffix(".json") + SUFFIX


def _ms(section: IntervalSection, key: str) -> float:
    lat = section["latency_us"]
    value = lat[key] if lat["count"] else None  # type: ignore[literal-required]
    return math.nan if value is None else value / 1000


def marks(section: IntervalSection) -> list[str]:
    """What went wrong in an interval, in words (empty: nothing)."""
    out = [
        f"{section[kind]} {kind}"
        for kind in ("lost", "duplicated", "reordered", "corrupted", "disconnects", "late_reads")
        if section.get(kind)
    ]
    return out


def timeline_figure(run: RunDocument, title: str) -> Figure | None:
    """The chart of ``run`` (None when it has no intervals: a run from before the time axis)."""
    series = run.get("intervals")
    if not series or not series["intervals"]:
        return None
    sections = series["intervals"]
    mids = [s["start_s"] + s["length_s"] / 2 for s in sections]
    end = sections[-1]["start_s"] + sections[-1]["length_s"]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6), layout="constrained")
    for name, key, style in (("p50", "p50_us", "-"), ("p99", "p99_us", "--"), ("max", "max_us", ":")):
        top.plot(mids, [_ms(s, key) for s in sections], style, marker=".", label=name)
    top.set_yscale("log")
    top.set_ylabel("latency (ms, log scale)")
    bottom.plot(
        mids, [s["per_s"] for s in sections], "-", marker=".", color="tab:green", label="deliveries/s (arrived)"
    )
    owed = [s["owed"] / s["length_s"] if s["length_s"] else math.nan for s in sections]
    bottom.plot(mids, owed, "--", color="grey", label="owed/s (sent in the interval x audience)")
    bottom.set_ylabel("deliveries per second")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel(f"seconds after the first intended send ({series['interval_s']:g} s intervals, by arrival)")
    for ax in (top, bottom):
        if series["warmup_s"] > 0:
            ax.axvspan(0, series["warmup_s"], color="grey", alpha=0.15, label="warm-up (not measured)")
        if end > series["send_end_s"]:
            ax.axvspan(series["send_end_s"], end, color="tab:blue", alpha=0.06, label="drain (after the last send)")
        ax.grid(True, alpha=0.3)
        ax.set_xlim(0, end)
    faulty = [(m, marks(s)) for m, s in zip(mids, sections, strict=True) if marks(s)]
    for i, (mid, _) in enumerate(faulty):
        for ax in (top, bottom):
            ax.axvline(mid, color="tab:red", linestyle=":", alpha=0.7, label="faults" if i == 0 and ax is top else None)
    if faulty:
        top.annotate(
            "; ".join(f"{m:.1f}s: {', '.join(what)}" for m, what in faulty[:4]) + (" ..." if len(faulty) > 4 else ""),
            xy=(0.01, 0.02),
            xycoords="axes fraction",
            fontsize="x-small",
            color="tab:red",
        )
    top.legend(loc="upper right", fontsize="small")
    bottom.legend(loc="lower right", fontsize="small")
    stopped = [t["threshold"] for t in run.get("thresholds", []) if t["aborted"]]
    fig.suptitle(title + (f"\nstopped early: threshold {stopped[0]} crossed" if stopped else ""), fontsize=11)
    return fig


def timeline_chart(run: RunDocument, path: Path, title: str) -> Path | None:
    """Write ``run``'s chart to ``path``; None when it has no intervals."""
    fig = timeline_figure(run, title)
    if fig is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def draw_runs(runs: Sequence[tuple[str, RunDocument, str]], root: Path) -> dict[str, str]:
    """Each (title, run, its JSON relative to ``root``)'s chart beside the
    JSON under ``root``: JSON file -> chart file (relative), for the runs with intervals."""
    out = {}
    for title, run, file in runs:
        name = chart_name(file)
        if timeline_chart(run, root / name, title) is not None:
            out[file] = name
    return out


TITLE = "The run over time: latency and deliveries per interval"
NOTE = (
    "Per interval of the run's time axis, the deliveries that *arrived* in it: their p50, p99 and max latency "
    "(from each message's intended send time), and deliveries per second against what the timetable owed (the "
    "messages sent in the interval times their audience). Warm-up shaded grey, the drain after the last send "
    "pale blue, intervals with faults in red. The histograms per interval are in the run's `.hlog` (HdrHistogram's "
    "interval log) beside its JSON."
)


def blocks(charts: Sequence[str]) -> list[doc.Block]:
    """A report's section on its runs over time: one run's chart shown, several runs' linked from its table."""
    if not charts:
        return []
    heading = doc.Heading(3, TITLE)
    if len(charts) == 1:
        return [heading, doc.Para(NOTE), doc.Image(TITLE, charts[0])]
    return [heading, doc.Para(NOTE + " Each point's chart is linked in the table below (*over time*).")]
