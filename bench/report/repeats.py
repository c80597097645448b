"""Repeated runs of one point (``compare --repeat N``): the median and the spread.

One run per point is not a measurement when the same code measures 2x apart
from one run to the next: ``compare --repeat N`` runs every target N times
at each client count, interleaved (A B C A B C), and the comparison reports
per point the **median** over the runs that finished, with the spread
``[min, max]`` beside it.  A ratio ours/peer is the ratio of the medians; its
spread is the lowest and highest ratio any two runs give
(ours min / peer max, ours max / peer min), and a ratio *counts* only when
that spread does not cross 1.0 (:func:`decisive`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, cast

from bench.results.schema import ComparePoint, PointSpread

#: The point's fields given as median with a spread (the others: worst case or sum, see :func:`merge`).
SpreadKey = Literal["deliveries_per_s", "delivered_ratio", "p50_us", "p99_us", "server_cpu_percent"]
SPREAD_KEYS: tuple[SpreadKey, ...] = ("deliveries_per_s", "delivered_ratio", "p50_us", "p99_us", "server_cpu_percent")


def _values(points: Sequence[ComparePoint], key: str) -> list[float]:
    # a point read as a plain mapping: ``key`` names one of its numeric fields
    rows = cast(Sequence[Mapping[str, Any]], points)
    return [float(v) for p in rows if isinstance(v := p.get(key), (int, float)) and not isinstance(v, bool)]


def _median(points: Sequence[ComparePoint], key: str) -> float | None:
    values = _values(points, key)
    return statistics.median(values) if values else None


def _median_us(points: Sequence[ComparePoint], key: str) -> int | None:
    m = _median(points, key)
    return None if m is None else round(m)


def _spread(points: Sequence[ComparePoint]) -> PointSpread:
    spread: PointSpread = {}
    for key in SPREAD_KEYS:
        values = _values(points, key)
        if values:
            spread[key] = [min(values), max(values)]
    return spread


def merge(runs: Sequence[ComparePoint]) -> ComparePoint:
    """One point from the runs of one client count: medians (latency, rate, CPU),
    the worst delivered ratio, summed faults and failed connections, saturated
    if any run was; ``runs``/``failed_runs``/``spread`` say what it stands for.
    A single run comes back unchanged."""
    if len(runs) == 1:
        return runs[0]
    ok = [p for p in runs if p["status"] == "ok"]
    failed = len(runs) - len(ok)
    if not ok:
        errors = "; ".join(dict.fromkeys(str(p.get("error")) for p in runs))
        return {"clients": runs[0]["clients"], "status": "error", "error": errors, "runs": 0, "failed_runs": failed}
    ratios = _values(ok, "delivered_ratio")
    rss = _values(ok, "server_rss_max_bytes")
    max_us = _values(ok, "max_us")
    return {
        "clients": ok[0]["clients"],
        "status": "ok",
        "deliveries_per_s": _median(ok, "deliveries_per_s"),
        "delivered_ratio": min(ratios) if ratios else None,
        "p50_us": _median_us(ok, "p50_us"),
        "p90_us": _median_us(ok, "p90_us"),
        "p95_us": _median_us(ok, "p95_us"),
        "p99_us": _median_us(ok, "p99_us"),
        "p99_9_us": _median_us(ok, "p99_9_us"),
        "max_us": round(max(max_us)) if max_us else None,
        "faults": sum(p.get("faults", 0) for p in ok),
        "failed_connections": sum(p.get("failed_connections", 0) for p in ok),
        "server_cpu_percent": _median(ok, "server_cpu_percent"),
        "server_rss_max_bytes": round(max(rss)) if rss else None,
        "harness_cpu_percent": _median(ok, "harness_cpu_percent"),
        "load_generator_saturated": any(p.get("load_generator_saturated", False) for p in ok),
        "runs": len(ok),
        "failed_runs": failed,
        "spread": _spread(ok),
    }


def merge_repeats(points: Sequence[ComparePoint]) -> list[ComparePoint]:
    """A series' points (several runs per client count with --repeat) -> one
    point per client count, in the order the counts first appear."""
    by_clients: dict[int, list[ComparePoint]] = {}
    for p in points:
        by_clients.setdefault(p["clients"], []).append(p)
    return [merge(runs) for runs in by_clients.values()]


def ratio_spread(ours: ComparePoint, peer: ComparePoint, key: SpreadKey) -> list[float] | None:
    """[lowest, highest] ratio ours/peer over the runs (None without a spread on both sides)."""
    a = ours.get("spread", {}).get(key)
    b = peer.get("spread", {}).get(key)
    if not a or not b or b[0] <= 0:
        return None
    return [round(a[0] / b[1], 3), round(a[1] / b[0], 3)]


def decisive(spread: Sequence[float] | None) -> bool:
    """A ratio counts when its spread lies wholly on one side of 1.0 (or there is no spread: one run)."""
    return spread is None or spread[0] > 1.0 or spread[1] < 1.0


def with_spread(point: ComparePoint, key: SpreadKey, show: Callable[[float | None], str]) -> str:
    """``1.23`` or, for a repeated point, ``1.23 (1.10-1.40)``: the median, then [min-max]."""
    value = point.get(key)
    text = show(value if isinstance(value, (int, float)) else None)
    spread = point.get("spread", {}).get(key)
    return f"{text} ({show(spread[0])}-{show(spread[1])})" if spread else text


def ratio_text(ratio: float | None, spread: Sequence[float] | None) -> str:
    """``0.85`` or ``0.85 (0.70-0.95)``; a spread that crosses 1.0 is marked: that ratio does not count."""
    if ratio is None:
        return "-"
    if spread is None:
        return f"{ratio:.2f}"
    mark = "" if decisive(spread) else " ≈1"
    return f"{ratio:.2f} ({spread[0]:.2f}-{spread[1]:.2f}){mark}"
