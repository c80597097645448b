"""The sweep report: results JSON -> ``report.md`` + ``report.html`` + PNG charts.

``python -m bench report DIR`` redraws everything from the JSON saved in
``DIR`` without running anything.  ``DIR`` holds one or more *series*: a
swarm index (``index.json``, see ``docs/results.md``) with its run files,
either in ``DIR`` itself or in its subdirectories (``DIR/queued/``,
``DIR/direct/`` as ``python -m bench sweep`` writes them).  Each series is
one fan-out strategy (or one target) and gets one colour in every chart.
A ``capacity.json`` in ``DIR`` (``python -m bench capacity``) adds the
capacity section.

The report opens with warnings in plain words (load generator saturated,
integrity faults, failed connections, incomplete or failed runs), then the
charts, the table of every point and the environment.
"""

from __future__ import annotations

import datetime as dt
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import results
from bench.progname import PROG
from bench.report import capacity, doc, fmt, plots, roomcharts, rooms, runline, stall, timeline
from bench.report.environment import environment_rows, server_rows
from bench.report.fmt import mib, ms, num, pct, ratio_pct
from bench.report.labels import label_tables
from bench.report.sweepwarnings import run_warnings, warnings
from bench.results.schema import CapacityDocument, IndexDocument, IndexEntry, RunDocument, server_summary
from bench.results.store import load_capacity

REPORT_MD = "report.md"
REPORT_HTML = "report.html"

#: Series order in tables and legends: the known strategies first.
KNOWN_ORDER = ("queued", "direct")
#: The server's fan-out strategy when none was given.
DEFAULT_FANOUT = "queued"
DEFAULT_TITLE = "chatbench fan-out report"

#: The capacity chart's name among the charts (drawn when capacity.json is there).
CAPACITY_CHART = "capacity"
CHART_TITLES = {
    "latency": "Broadcast latency (p50, p99, max) vs connected clients",
    "throughput": "Deliveries per second vs connected clients (offered rate as a pale band; each series "
    "a little to the side, so coinciding points stay visible)",
    "percentiles": "Latency percentile distribution per client count",
    "resources": "Server CPU and memory vs connected clients",
}


class ReportError(Exception):
    """Nothing to report on, or unreadable results; the message says why."""


@dataclass
class SeriesData:
    """One swarm index and its runs."""

    label: str
    directory: Path
    index: IndexDocument
    runs: list[RunDocument] = field(default_factory=list)
    #: run file (relative to the report directory) per run, same order
    files: list[str] = field(default_factory=list)
    #: index entries that have no run document (errors, skipped points)
    failed: list[IndexEntry] = field(default_factory=list)
    #: each run's chart over time (relative to the report), same order; None: the run has no intervals
    timelines: list[str | None] = field(default_factory=list)


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


def find_indexes(directory: Path) -> list[Path]:
    """``DIR/index.json`` and ``DIR/*/index.json``."""
    found = []
    if (directory / results.INDEX_NAME).is_file():
        found.append(directory / results.INDEX_NAME)
    found += sorted(p for p in directory.glob(f"*/{results.INDEX_NAME}") if p.is_file())
    return found


def _base_label(index: IndexDocument) -> str:
    params = index.get("parameters") or {}
    target = params.get("target") or "embedded"
    if target == "embedded":
        return str(params.get("fanout") or DEFAULT_FANOUT)
    return str(target)


def load_series(directory: str | Path) -> list[SeriesData]:
    """Every series under ``directory``, in display order."""
    root = Path(directory)
    if not root.is_dir():
        raise ReportError(f"{root} is not a directory")
    indexes = find_indexes(root)
    if not indexes:
        raise ReportError(
            f"no {results.INDEX_NAME} in {root} or its subdirectories: point at a directory written by "
            f"`{PROG} sweep` or `{PROG} run`"
        )
    out: list[SeriesData] = []
    for path in indexes:
        try:
            index = results.load_index(path)
        except results.ResultsError as exc:
            raise ReportError(str(exc)) from exc
        s = SeriesData(label=_base_label(index), directory=path.parent, index=index)
        entries = sorted(index.get("runs", []), key=lambda e: int(e.get("clients", 0)))
        for entry in entries:
            file = entry.get("file")
            if file:
                try:
                    s.runs.append(results.load_run(path.parent / file))
                except results.ResultsError as exc:
                    raise ReportError(str(exc)) from exc
                s.files.append((path.parent / file).relative_to(root).as_posix())
            else:
                s.failed.append(entry)
        out.append(s)
    labels = [s.label for s in out]
    for s in out:
        if labels.count(s.label) > 1:
            s.label = f"{s.label} ({s.directory.relative_to(root).as_posix() or '.'})"

    def order(s: SeriesData) -> tuple[int, str]:
        base = _base_label(s.index)
        return (KNOWN_ORDER.index(base) if base in KNOWN_ORDER else len(KNOWN_ORDER), s.label)

    return sorted(out, key=order)


# ---------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------


def fmt_ratio(run: RunDocument) -> str:
    d = run["deliveries"]
    return f"{d['delivered']:,} / {d['expected']:,} ({ratio_pct(d['delivered_ratio'])})"


TABLE_HEADER = (
    "strategy",
    "clients",
    "rate msg/s",
    "delivered / expected",
    "faults",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "deliveries/s",
    "offered/s",
    "server CPU %",
    "server RSS MiB",
    "server threads",
    "warnings",
    "data",
    "over time",
)


def table_rows(series: Sequence[SeriesData]) -> list[list[str]]:
    """One row per run (text cells), in series then client-count order."""
    rows = []
    for s in series:
        for run, file in zip(s.runs, s.files, strict=True):
            p = run["parameters"]
            lat = run["latency_us"]
            d = run["deliveries"]
            srv = server_summary(run)
            rate = f"{p['rate']:g}" if p["rate"] else "burst"
            rows.append(
                [
                    s.label,
                    str(p["clients"]),
                    rate,
                    fmt_ratio(run),
                    str(run["integrity"]["faults"]),
                    ms(lat["p50_us"]),
                    ms(lat["p90_us"]),
                    ms(lat["p99_us"]),
                    ms(lat["p99_9_us"]),
                    ms(lat["max_us"]),
                    num(d.get("per_s")),
                    num(d.get("offered_per_s")),
                    pct(srv.get("cpu_percent_window")),
                    mib(srv.get("rss_max_bytes")),
                    "-" if srv.get("threads_max") is None else str(srv["threads_max"]),
                    ", ".join(run_warnings(run)) or "",
                    file,
                ]
            )
        for entry in s.failed:
            rows.append(
                [s.label, str(entry.get("clients")), "", "not run", "", *[""] * 10, "error", ""],
            )
    return rows


def highlights(series: Sequence[SeriesData]) -> list[str]:
    """One plain sentence per series about its largest measured point."""
    out = []
    for s in series:
        if not s.runs:
            continue
        r = s.runs[-1]
        lat, d = r["latency_us"], r["deliveries"]
        ratio = d.get("delivered_ratio")
        delivered = "-" if ratio is None else f"{100 * ratio:.2f}%"
        out.append(
            f"{s.label}: at {r['parameters']['clients']} clients, p50 {ms(lat['p50_us'])} ms, "
            f"p99 {ms(lat['p99_us'])} ms, max {ms(lat['max_us'])} ms; "
            f"{num(d.get('per_s'))} deliveries/s {runline.RATE_WINDOW} of {num(d.get('offered_per_s'))} offered; "
            f"{delivered} of the {runline.MEASURED} deliveries arrived"
            + (f" ({', '.join(run_warnings(r))})" if run_warnings(r) else "")
        )
    return out


def _subtitle(series: Sequence[SeriesData]) -> str:
    runs = [r for s in series for r in s.runs]
    if not runs:
        return ""
    rates = sorted({r["parameters"]["rate"] for r in runs})
    p = runs[0]["parameters"]
    env = runs[0]["environment"]
    rate = ", ".join(f"{x:g} msg/s" if x else "burst" for x in rates)
    return (
        f"{rate} from {p['senders']} senders, {p['payload_bytes']} B payload, {p['duration_s']:g} s per point; "
        f"{env.get('cpu_count')} CPUs for server + load generator"
    )


def chart_series(series: Sequence[SeriesData]) -> list[plots.Series]:
    out = []
    for s in series:
        c = plots.Series(label=s.label)
        for run in s.runs:
            n = int(run["parameters"]["clients"])
            lat, d, srv = run["latency_us"], run["deliveries"], server_summary(run)
            c.clients.append(n)
            c.p50_us.append(lat["p50_us"] if lat["count"] else None)
            c.p99_us.append(lat["p99_us"] if lat["count"] else None)
            c.max_us.append(lat["max_us"] if lat["count"] else None)
            c.deliveries_per_s.append(d.get("per_s"))
            c.offered_per_s.append(d.get("offered_per_s"))
            c.server_cpu_percent.append(srv.get("cpu_percent_window"))
            c.harness_cpu_percent.append((run.get("resources") or {}).get("harness_cpu_percent_window"))
            c.server_rss_bytes.append(srv.get("rss_max_bytes"))
            c.flagged.append(bool(run_warnings(run)))
            hist = results.run_histogram(run)
            if hist.count:
                c.distributions[n] = hist.distribution()
                c.sample_counts[n] = hist.count
        out.append(c)
    return out


# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------


def arrival_clock(series: Sequence[SeriesData]) -> str:
    """How the runs timed an arrival, in words (runs before the kernel clock
    existed timed the read)."""
    clocks = {run.get("rx_clock", "read") for sd in series for run in sd.runs}
    if clocks == {"kernel"}:
        return (
            "the kernel's receive stamp at the client's socket, so the harness's own delay in reading does not "
            "count (it is reported apart as the harness read lag)"
        )
    if clocks == {"read"}:
        return "the moment the harness read it"
    return "the kernel's receive stamp in some runs and the harness's read in others"


def document(
    series: Sequence[SeriesData],
    charts: dict[str, str],
    capacity_doc: CapacityDocument | None = None,
    title: str = DEFAULT_TITLE,
    stalled: Sequence[stall.StallRun] = (),
) -> list[doc.Block]:
    """The report as blocks (rendered by :func:`render_markdown` and :func:`render_html`)."""
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    blocks: list[doc.Block] = [
        doc.Heading(1, title),
        doc.Para(
            f"Generated {generated} from the JSON results in this directory "
            f"(`{PROG} report DIR` redraws it). Latency is measured from each message's *intended* send "
            "time to its arrival at every other client (open loop: a stalled server shows as latency); arrival is "
            f"{arrival_clock(series)}. Units: ms, deliveries per second, CPU in % of one core."
        ),
        doc.Heading(2, "Warnings"),
    ]
    warn = warnings(series)
    if warn:
        blocks.append(doc.Bullets(warn, css="warn"))
    else:
        blocks.append(doc.Para(ALL_WELL, css="ok"))
    hl = highlights(series)
    if hl:
        blocks += [doc.Heading(2, "At a glance"), doc.Bullets(hl)]
    blocks += stall.blocks(stalled)
    if capacity_doc is not None:
        blocks += capacity.blocks(capacity_doc, level=2, chart=charts.get(CAPACITY_CHART))
    blocks.append(doc.Heading(2, "Charts"))
    for name, file in charts.items():
        if name == CAPACITY_CHART or name in rooms.CHARTS:
            continue
        blocks += [doc.Heading(3, CHART_TITLES[name]), doc.Image(CHART_TITLES[name], file)]
    blocks += timeline.blocks([t for s in series for t in s.timelines if t])
    blocks += [doc.Heading(2, "Every point"), doc.Para(TABLE_NOTE), points_table(series)]
    runs = [(s.label, r) for s in series for r in s.runs]
    for dim, meaning, table in label_tables(runs):
        blocks += [doc.Heading(3, f"By {dim}"), doc.Para(meaning), table]
    blocks += rooms.blocks(runs, charts)
    notes = [
        f"{label}, {r['parameters']['clients']} clients: {note}"
        for label, r in ((s.label, r) for s in series for r in s.runs)
        for note in r.get("notes") or []
    ]
    if notes:
        blocks += [doc.Heading(3, "Notes from the runs"), doc.Bullets(notes)]
    env = environment_rows(series) + server_rows(series)
    if env:
        blocks += [doc.Heading(2, "Environment"), doc.Table(None, [list(kv) for kv in env], "ll")]
    return blocks


ALL_WELL = "None: every run delivered every message, in order, to every client, with a load generator that kept up."
TABLE_NOTE = (
    "Latency percentiles over every measured delivery (HDR histograms merged across the load generator's "
    "processes). Windows: *delivered / expected* and the percentiles cover the measured messages only; "
    "*faults* (lost, duplicated, reordered, corrupted) count all traffic, warm-up included, so a run can show "
    "100% delivered beside a fault; *deliveries/s* divide the measured deliveries by the time until the last "
    "one arrived, *offered/s* (rate x receivers per message) by the send window alone, so late arrivals make "
    "deliveries/s the smaller. *server CPU* is the average over the traffic window. *data* is the run's JSON."
)


def points_table(series: Sequence[SeriesData]) -> doc.Table:
    """The 'Every point' table: numbers right-aligned, the run JSON and its chart over time linked."""
    charts = [
        c for s in series for c in [*s.timelines, *[None] * (len(s.runs) - len(s.timelines)), *[None] * len(s.failed)]
    ]
    rows: list[list[doc.Cell]] = [
        [*row[:-1], doc.Link("json", row[-1]) if row[-1] else "", doc.Link("chart", chart) if chart else ""]
        for row, chart in zip(table_rows(series), charts, strict=True)
    ]
    align = "".join("l" if h in ("strategy", "warnings", "data", "over time") else "r" for h in TABLE_HEADER)
    return doc.Table(TABLE_HEADER, rows, align, flag_column=TABLE_HEADER.index("warnings"))


def render_markdown(
    series: Sequence[SeriesData],
    charts: dict[str, str],
    capacity_doc: CapacityDocument | None = None,
    title: str = DEFAULT_TITLE,
    stalled: Sequence[stall.StallRun] = (),
) -> str:
    return doc.to_markdown(document(series, charts, capacity_doc, title, stalled))


def render_html(
    series: Sequence[SeriesData],
    charts: dict[str, str],
    capacity_doc: CapacityDocument | None = None,
    title: str = DEFAULT_TITLE,
    stalled: Sequence[stall.StallRun] = (),
) -> str:
    return doc.to_html(title, document(series, charts, capacity_doc, title, stalled))


def build_report(
    directory: str | Path, out_dir: str | Path | None = None, title: str = DEFAULT_TITLE
) -> dict[str, Path]:
    """Read the results in ``directory``, draw the charts and write
    ``report.md`` and ``report.html`` (into ``out_dir``, default the same
    directory).  Returns name -> path of everything written."""
    root = Path(directory)
    out = Path(out_dir) if out_dir is not None else root
    series = load_series(root)
    if not any(s.runs for s in series):
        raise ReportError(f"no completed run in {root}: every point failed (see its index.json)")
    capacity_doc = load_capacity(root) if (root / results.CAPACITY_JSON).is_file() else None
    stalled = load_stalled(root, out)
    drawn = plots.draw_all(chart_series(series), out, _subtitle(series))
    if capacity_doc is not None:
        drawn[CAPACITY_CHART] = capacity.draw(capacity_doc, out)
    drawn.update(roomcharts.draw([(s.label, r) for s in series for r in s.runs], out))
    charts = {name: path.relative_to(out).as_posix() for name, path in drawn.items()}
    written: dict[str, Path] = dict(drawn)
    runs = [
        (f"{s.label}, {r['parameters']['clients']} clients", r, f)
        for s in series
        for r, f in zip(s.runs, s.files, strict=True)
    ]
    timelines = timeline.draw_runs(runs, out)
    for s in series:
        s.timelines = [timelines.get(f) for f in s.files]
    written.update({f"over time: {f}": out / name for f, name in timelines.items()})
    if out.resolve() != root.resolve():
        # links to the run JSON must still resolve from the report's location
        for s in series:
            s.files = [Path(os.path.relpath(root / f, out)).as_posix() for f in s.files]
    md = out / REPORT_MD
    md.write_text(render_markdown(series, charts, capacity_doc, title, stalled), encoding="utf-8")
    page = out / REPORT_HTML
    page.write_text(render_html(series, charts, capacity_doc, title, stalled), encoding="utf-8")
    written["markdown"] = md
    written["html"] = page
    return written


def load_stalled(root: Path, out: Path) -> list[stall.StallRun]:
    """The stalled-reader runs under ``root/stalled/`` (the sweep's last point), their JSON linked from ``out``."""
    where = root / stall.STALL_DIR
    if not where.is_dir() or not find_indexes(where):
        return []
    return [
        stall.StallRun(s.label, run, Path(os.path.relpath(where / file, out)).as_posix())
        for s in load_series(where)
        for run, file in zip(s.runs, s.files, strict=True)
    ]


def print_warnings(series: Sequence[SeriesData]) -> None:
    """The report's warnings on stdout, wrapped, without the markdown."""
    warn = warnings(series)
    if warn:
        print(f"{fmt.plural(len(warn), 'warning')} at the top of the report:")
        for w in warn:
            print(textwrap.fill(w.replace("**", ""), width=100, initial_indent="  - ", subsequent_indent="    "))
