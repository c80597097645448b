"""A workload of rooms in a report: latency and deliveries/s by room size, and the rooms themselves.

A run of several rooms keeps its deliveries by the ``room_size`` label (the
room's receiving members, in decades: :func:`bench.workload.labels.size_bucket`)
and the sizes of its rooms (the document's ``rooms`` section).  Here they
become, per series and client count -- the repeats of a point pooled, their
histograms merged exactly -- one table row per room-size bucket (rooms,
members, delivered, deliveries/s, p50/p99/p99.9) and three charts
(:mod:`bench.report.roomcharts`): latency against room size, deliveries/s
per room-size bucket, and the histogram of the room sizes.  The sweep
report and COMPARE.md both show them; runs of one room have none of this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.measure.stats import LatencyHistogram
from bench.report import doc
from bench.report.fmt import ms, num, ratio_pct
from bench.report.labels import slices
from bench.results.schema import RoomSizeCount, RunDocument

#: The label dimension of a room's size (bench.workload.labels.DIMENSIONS).
DIMENSION = "room_size"

#: The charts, name -> title (files: :data:`bench.report.roomcharts.FILES`).
CHARTS = {
    "room-latency": "Latency vs room size (p50 and p99, each series at its largest client count)",
    "room-throughput": "Deliveries per second by room size",
    "room-sizes": "The workload: how many rooms have each size",
}

HEADER = (
    "series",
    "clients",
    "room size",
    "rooms",
    "members",
    "delivered",
    "deliveries/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
)

NOTE = (
    "A room's size is its receiving members; a delivery counts under the size of the room it was said in. "
    "*delivered* is of what the plan owed in those rooms (measured messages); *deliveries/s* divide the "
    "bucket's deliveries by the run's span (repeats of a point pooled: their deliveries over their spans, their "
    "histograms merged)."
)


@dataclass
class RoomRow:
    """One room-size bucket of one series at one client count, its repeats pooled."""

    series: str
    clients: int
    bucket: str
    rooms: int = 0
    members: int = 0
    expected: int = 0
    delivered: int = 0
    span_s: float = 0.0
    hist: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def per_s(self) -> float | None:
        return self.delivered / self.span_s if self.span_s > 0 else None


def _bucket_order(bucket: str) -> int:
    low = bucket.split("-", 1)[0]
    return int(low) if low.isdigit() else 0


def room_rows(runs: Sequence[tuple[str, RunDocument]]) -> list[RoomRow]:
    """Per (series, clients, bucket), in that order: the runs of several rooms, pooled."""
    rows: dict[tuple[str, int, str], RoomRow] = {}
    for series, run in runs:
        parts = slices(run.get("labels", []), DIMENSION)
        if not parts:
            continue
        clients = run["parameters"]["clients"]
        span = run["deliveries"].get("span_s") or 0.0
        shape = {b["bucket"]: b for b in run.get("rooms", {}).get("buckets", [])}
        for bucket, part in parts.items():
            row = rows.get((series, clients, bucket))
            if row is None:
                row = rows[series, clients, bucket] = RoomRow(series, clients, bucket)
                if bucket in shape:
                    row.rooms, row.members = shape[bucket]["rooms"], shape[bucket]["members"]
            row.expected += part.expected
            row.delivered += part.delivered
            row.span_s += span
            if part.hist is not None:
                row.hist.merge(part.hist)
    order = {name: i for i, name in enumerate(dict.fromkeys(s for s, _ in runs))}
    return sorted(rows.values(), key=lambda r: (order[r.series], r.clients, _bucket_order(r.bucket)))


def table(rows: Sequence[RoomRow]) -> doc.Table:
    """The rows as the report's table."""
    cells: list[list[doc.Cell]] = []
    for r in rows:
        lat = r.hist.summary() if r.hist.count else None
        cells.append(
            [
                r.series,
                str(r.clients),
                r.bucket,
                num(r.rooms),
                num(r.members),
                f"{r.delivered:,} ({ratio_pct(r.delivered / r.expected if r.expected else None, 2)})",
                num(round(r.per_s)) if r.per_s is not None else "-",
                ms(lat["p50_us"] if lat else None),
                ms(lat["p99_us"] if lat else None),
                ms(lat["p99_9_us"] if lat else None),
            ]
        )
    return doc.Table(HEADER, cells, "lrlrrrrrrr")


def largest(rows: Sequence[RoomRow]) -> list[RoomRow]:
    """Each series' rows at its largest client count (what the charts show)."""
    top: dict[str, int] = {}
    for r in rows:
        top[r.series] = max(top.get(r.series, 0), r.clients)
    return [r for r in rows if r.clients == top[r.series]]


def sizes(runs: Sequence[tuple[str, RunDocument]]) -> tuple[int, list[RoomSizeCount]] | None:
    """The room sizes of the run with the most clients: (clients, every size's room count)."""
    best: RunDocument | None = None
    for _, run in runs:
        if "rooms" in run and (best is None or run["parameters"]["clients"] > best["parameters"]["clients"]):
            best = run
    if best is None:
        return None
    return best["parameters"]["clients"], best["rooms"]["sizes"]


def workload_line(runs: Sequence[tuple[str, RunDocument]]) -> str | None:
    """One sentence on the runs' workload (the first run that has one)."""
    for _, run in runs:
        w = run["parameters"].get("workload")
        if w is None:
            continue
        name = f"scenario *{w['scenario']}*: " if w["scenario"] else ""
        shape = run.get("rooms")
        rooms = ""
        if shape is not None:
            rooms = (
                f" At {run['parameters']['clients']:,} clients: {shape['rooms']:,} rooms of {shape['smallest']} "
                f"to {shape['largest']} members, {shape['memberships']:,} memberships, {shape['streams']:,} streams "
                f"from {shape['sending_clients']:,} sending clients."
            )
        return f"Workload: {name}{w['summary']} (seed {w['seed']}, {w['total_rate']:g} msg/s in total).{rooms}"
    return None


def blocks(runs: Sequence[tuple[str, RunDocument]], charts: dict[str, str], level: int = 2) -> list[doc.Block]:
    """The report's rooms section: the workload, the table by room size, the charts."""
    rows = room_rows(runs)
    line = workload_line(runs)
    if not rows and line is None:
        return []
    out: list[doc.Block] = [doc.Heading(level, "Rooms")]
    if line is not None:
        out.append(doc.Para(line))
    if rows:
        out += [doc.Para(NOTE), table(rows)]
    for name, title in CHARTS.items():
        if name in charts:
            out += [doc.Heading(level + 1, title), doc.Image(title, charts[name])]
    return out


def markdown(runs: Sequence[tuple[str, RunDocument]], charts: dict[str, str]) -> list[str]:
    """:func:`blocks` as markdown lines (COMPARE.md is written line by line)."""
    section = blocks(runs, charts)
    return ["", *doc.to_markdown(section).splitlines()] if section else []
