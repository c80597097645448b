"""The charts of a workload of rooms (PNG): beside :mod:`bench.report.plots`,
the only other module that imports matplotlib.

From :mod:`bench.report.rooms`' pooled rows: latency against room size (p50
and p99 per series), deliveries per second per room-size bucket (bars side
by side per series), and the workload itself (how many rooms have each
size, both axes logarithmic where the sizes span a power law).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only (before pyplot is imported)

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from bench.report import plots
from bench.report.rooms import CHARTS, RoomRow, largest, room_rows, sizes
from bench.results.schema import RoomSizeCount, RunDocument

#: name -> file, for :data:`bench.report.rooms.CHARTS`.
FILES = {name: f"{name}.png" for name in CHARTS}
#: Sizes spanning more than this factor get logarithmic axes.
LOG_SPAN = 20


def _buckets(rows: Sequence[RoomRow]) -> list[str]:
    return sorted({r.bucket for r in rows}, key=lambda b: int(b.split("-", 1)[0]))


def latency_chart(rows: Sequence[RoomRow], path: Path) -> Path:
    """p50 (dashed) and p99 (solid) per room-size bucket, one colour per series."""
    buckets = _buckets(rows)
    x = {b: i for i, b in enumerate(buckets)}
    labels = list(dict.fromkeys(r.series for r in rows))
    colour = plots.colours(labels)
    fig, ax = plt.subplots(figsize=(9, 5.2), layout="constrained")
    for label in labels:
        mine = [r for r in rows if r.series == label and r.hist.count]
        xs = [x[r.bucket] for r in mine]
        for pct, style, marker in ((50.0, "--", "o"), (99.0, "-", "s")):
            ys = [r.hist.percentile(pct) / 1000 for r in mine]
            ax.plot(xs, ys, style, marker=marker, color=colour[label], label=f"{label} p{pct:g}")
    ax.set_xticks(range(len(buckets)), [f"{b} members" for b in buckets])
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_ylabel("latency, send to receive (ms, log scale)")
    ax.set_xlabel("room size (receiving members)")
    ax.legend(loc="upper left", fontsize="small")
    fig.suptitle(CHARTS["room-latency"])
    return plots.save(fig, path)


def throughput_chart(rows: Sequence[RoomRow], path: Path) -> Path:
    """Deliveries/s per room-size bucket: a bar per series."""
    buckets = _buckets(rows)
    labels = list(dict.fromkeys(r.series for r in rows))
    colour = plots.colours(labels)
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(9, 5.2), layout="constrained")
    for i, label in enumerate(labels):
        by = {r.bucket: r.per_s or 0.0 for r in rows if r.series == label}
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(buckets))]
        ax.bar(xs, [by.get(b, 0.0) for b in buckets], width, color=colour[label], label=label)
    ax.set_xticks(range(len(buckets)), [f"{b} members" for b in buckets])
    ax.set_ylabel("deliveries per second")
    ax.set_xlabel("room size (receiving members)")
    ax.legend(loc="upper left", fontsize="small")
    fig.suptitle(CHARTS["room-throughput"])
    return plots.save(fig, path)


def sizes_chart(clients: int, counts: Sequence[RoomSizeCount], path: Path) -> Path:
    """How many rooms have each size (the run with the most clients)."""
    xs = [c["size"] for c in counts]
    ys = [c["rooms"] for c in counts]
    fig, ax = plt.subplots(figsize=(9, 5.2), layout="constrained")
    ax.bar(xs, ys, width=[max(0.8, 0.08 * x) for x in xs], color="tab:blue")
    if xs and max(xs) > LOG_SPAN * max(1, min(xs)):
        ax.set_xscale("log")
    if ys and max(ys) > LOG_SPAN * max(1, min(ys)):
        ax.set_yscale("log")
    ax.set_xlabel("room size (receiving members)")
    ax.set_ylabel("rooms")
    total = sum(ys)
    fig.suptitle(f"{CHARTS['room-sizes']} ({total:,} rooms at {clients:,} clients)")
    return plots.save(fig, path)


def draw(runs: Sequence[tuple[str, RunDocument]], out: Path) -> dict[str, Path]:
    """The room charts of ``runs`` that have rooms (none for one room): name -> file."""
    drawn: dict[str, Path] = {}
    rows = largest(room_rows(runs))
    if rows:
        drawn["room-latency"] = latency_chart(rows, out / FILES["room-latency"])
        drawn["room-throughput"] = throughput_chart(rows, out / FILES["room-throughput"])
    shape = sizes(runs)
    if shape is not None:
        drawn["room-sizes"] = sizes_chart(shape[0], shape[1], out / FILES["room-sizes"])
    return drawn
