"""A run's measurements by label, as report tables: one per label dimension.

Every run document keeps its deliveries by label (``labels``, see
:mod:`bench.workload.labels`).  For each dimension present in the runs
(``path`` for a cluster, ...) :func:`label_tables` gives one table: per run
and per value of the dimension, the deliveries, their share, what the plan
owed, and the latency percentiles.  A run with several dimensions is shown
per dimension, its labels merged over the others (their histograms add up
exactly); a document upgraded from schema version 1 has no histograms per
label, and shows its one dimension's summaries as they were.

The sweep report and ``cluster-scaling``'s report both show them; what a
dimension means is its function's docstring in :data:`bench.workload.DIMENSIONS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

from bench.measure.stats import LatencyHistogram
from bench.report import doc
from bench.report.fmt import ms, num, ratio_pct
from bench.results.schema import LabelSection, Latency, RunDocument
from bench.workload import DIMENSIONS

HEADER = ("series", "clients", "{dim}", "deliveries", "share", "expected", "p50 ms", "p99 ms", "p99.9 ms", "max ms")


@dataclass
class Slice:
    """One value of one dimension in one run: its sections added up."""

    expected: int = 0
    delivered: int = 0
    latency: Latency | None = None
    hist: LatencyHistogram | None = None


def dimensions(runs: Sequence[tuple[str, RunDocument]]) -> list[str]:
    """The dimensions any of ``runs`` is labelled by, in :data:`DIMENSIONS` order."""
    seen = {dim for _, run in runs for section in run.get("labels", []) for dim in section["values"]}
    return [dim for dim in DIMENSIONS if dim in seen] + sorted(seen - set(DIMENSIONS))


def meaning(dim: str) -> str:
    """What a dimension means, from its labelling function's docstring."""
    fn = DIMENSIONS.get(dim)
    text = inspect.getdoc(fn) if fn is not None else None
    return f"*{dim}*: {text}" if text else f"*{dim}*"


def slices(sections: list[LabelSection], dim: str) -> dict[str, Slice]:
    """``sections`` merged over every dimension but ``dim``: value -> slice."""
    out: dict[str, Slice] = {}
    for section in sections:
        value = section["values"].get(dim)
        if value is None:
            continue
        part = out.setdefault(value, Slice())
        part.expected += section["expected"]
        part.delivered += section["delivered"]
        encoded = section.get("histogram")
        if encoded is None:  # upgraded from version 1: one section per value
            part.latency = section["latency_us"]
            continue
        if part.hist is None:
            part.hist = LatencyHistogram()
        part.hist.merge(LatencyHistogram.decode(encoded["data"], encoded["clamped"]))
    for part in out.values():
        if part.hist is not None:
            part.latency = part.hist.summary()
    return out


def label_tables(runs: Sequence[tuple[str, RunDocument]]) -> list[tuple[str, str, doc.Table]]:
    """Per dimension: (its name, what it means, its table); empty when no run has labels."""
    tables: list[tuple[str, str, doc.Table]] = []
    for dim in dimensions(runs):
        rows: list[list[doc.Cell]] = []
        for series, run in runs:
            parts = slices(run.get("labels", []), dim)
            total = sum(p.delivered for p in parts.values())
            for value, part in sorted(parts.items()):
                lat = part.latency
                rows.append(
                    [
                        series,
                        str(run["parameters"]["clients"]),
                        value,
                        f"{part.delivered:,}",
                        ratio_pct(part.delivered / total if total else None, 1),
                        num(part.expected),
                        ms(lat["p50_us"] if lat else None),
                        ms(lat["p99_us"] if lat else None),
                        ms(lat["p99_9_us"] if lat else None),
                        ms(lat["max_us"] if lat else None),
                    ]
                )
        if rows:
            header = tuple(h.format(dim=dim) for h in HEADER)
            tables.append((dim, meaning(dim), doc.Table(header, rows, "lrlrrrrrrr")))
    return tables
