"""One flat row per point: a run document (or a failed index entry) as
``column -> scalar``, for spreadsheets (``chat-bench export``) and for the
metrics ``chat-bench diff`` compares.

Columns: the run's headline numbers first (``summary.p99_us``,
``summary.deliveries_per_s``: :func:`bench.results.summary.run_summary`, the
same as the index, capacity and compare documents, and what ``diff``
compares), then the document's sections joined with a dot
(``latency_us.p99_9_us``, ``integrity.lost``, ``parameters.rate``); lists
become space-separated text, nested mappings other than the server's
resource summary are left out (they are in the run JSON).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from bench.results.schema import IndexEntry, RunDocument, server_summary
from bench.results.summary import run_summary

#: Scalar = what a CSV cell holds.
Scalar = str | int | float | bool | None
Row = dict[str, Scalar]

#: The run document's sections that become columns, in this order.
SECTIONS = ("latency_us", "deliveries", "integrity", "connections", "messages", "send_lag_us", "receive_lag_us")


def _scalar(value: object) -> Scalar | None:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple) and all(not isinstance(v, dict | list) for v in value):
        return " ".join(str(v) for v in value)
    return None  # nested: in the JSON, not in a flat row


def _section(row: Row, prefix: str, section: Mapping[str, Any] | None) -> None:
    for key, value in (section or {}).items():
        cell = _scalar(value)
        if cell is not None or value is None:
            row[f"{prefix}.{key}"] = cell


def point_row(series: str, run: RunDocument, file: str = "") -> Row:
    """One completed point."""
    row: Row = {
        "series": series,
        "clients": run["parameters"]["clients"],
        "status": "ok",
        "completed": run.get("completed", True),
    }
    _section(row, "summary", run_summary(run))
    for name in SECTIONS:
        _section(row, name, run.get(name))  # type: ignore[arg-type]
    _section(row, "server", server_summary(run))
    _section(row, "parameters", run["parameters"])
    env = run.get("environment") or {}
    for key in ("cpu_model", "cpu_count", "memory_bytes", "git_commit"):
        row[f"environment.{key}"] = _scalar(env.get(key))
    row["started_at"] = run.get("started_at")
    row["run_id"] = run.get("run_id")
    row["file"] = file
    return row


def failed_row(series: str, entry: IndexEntry) -> Row:
    """A point that has no run document (it failed, or was skipped)."""
    return {"series": series, "clients": entry.get("clients"), "status": "error", "error": entry.get("error")}


def columns(rows: Iterable[Row]) -> list[str]:
    """Every column of ``rows``, in the order they first appear."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def write_csv(rows: Sequence[Row], out: TextIO) -> None:
    """``rows`` as CSV with a header; a point without a column gets an empty cell."""
    writer = csv.DictWriter(out, fieldnames=columns(rows), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


@dataclass(frozen=True)
class Metric:
    """One number ``diff`` compares: its name on the command line, the flat
    row's column, how the table shows it."""

    name: str
    column: str
    heading: str
    scale: float = 1.0  #: table value = column value x scale
    digits: int = 2


#: What ``diff`` compares, in table order (latencies in ms).
METRICS: tuple[Metric, ...] = (
    Metric("p50", "summary.p50_us", "p50 ms", 1e-3),
    Metric("p95", "summary.p95_us", "p95 ms", 1e-3),
    Metric("p99", "summary.p99_us", "p99 ms", 1e-3),
    Metric("p99.9", "summary.p99_9_us", "p99.9 ms", 1e-3),
    Metric("max", "summary.max_us", "max ms", 1e-3),
    Metric("deliveries", "summary.deliveries_per_s", "deliveries/s", 1.0, 0),
    Metric("faults", "summary.faults", "faults", 1.0, 0),
    Metric("cpu", "summary.server_cpu_percent", "server CPU %", 1.0, 0),
)
METRIC_NAMES = {m.name: m for m in METRICS}
