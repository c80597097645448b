"""A cluster run's deliveries by path (same node or across), as a report table;
the sweep report and ``cluster-scaling``'s report both show it."""

from __future__ import annotations

from collections.abc import Sequence

from bench.report import doc
from bench.report.fmt import ms, num, ratio_pct
from bench.results.schema import RunDocument

PATHS_HEADER = (
    "series",
    "clients",
    "path",
    "deliveries",
    "share",
    "expected",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
)
PATHS_NOTE = (
    "A cluster's deliveries by path: *same node* (sender and receiver on one node: its own fan-out) and "
    "*across* (publisher, Redis, the other node's subscriber, then its fan-out). Client i is on node i mod N, "
    "so *expected* follows from the plan: per message, the receivers on the sender's node and those on the others."
)


def paths_table(runs: Sequence[tuple[str, RunDocument]]) -> doc.Table | None:
    """Both latency distributions of every run that kept each delivery's path
    (a target of several nodes); None when no run did."""
    rows: list[list[doc.Cell]] = []
    for label, run in runs:
        same, across = run.get("latency_same_node_us"), run.get("latency_cross_node_us")
        if same is None or across is None:
            continue
        d = run["deliveries"]
        total = same["count"] + across["count"]
        for path, lat, expected in (
            ("same node", same, d.get("expected_same_node")),
            ("across", across, d.get("expected_cross_node")),
        ):
            rows.append(
                [
                    label,
                    str(run["parameters"]["clients"]),
                    path,
                    f"{lat['count']:,}",
                    ratio_pct(lat["count"] / total if total else None, 1),
                    num(expected),
                    ms(lat["p50_us"]),
                    ms(lat["p99_us"]),
                    ms(lat["p99_9_us"]),
                    ms(lat["max_us"]),
                ]
            )
    return doc.Table(PATHS_HEADER, rows, "lrlrrrrrrr") if rows else None
