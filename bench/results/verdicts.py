"""Thresholds (:mod:`bench.measure.thresholds`) checked against a run document.

:func:`observed` gives the figures of the whole run, or of the labels a
selector picks (``{path=cross}``: every label section whose values include
``path=cross``, their histograms merged exactly); :func:`check_run` checks
every threshold and returns the document's ``thresholds`` section.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.measure.stats import LatencyHistogram
from bench.measure.thresholds import Observed, Threshold, check
from bench.results.schema import RunDocument, ThresholdResult
from bench.results.store import run_histogram


def observed(doc: RunDocument, selector: tuple[tuple[str, str], ...]) -> Observed | None:
    """What ``doc`` measured for ``selector`` (() is the run); None when no label matches."""
    deliveries, integrity = doc["deliveries"], doc["integrity"]
    span = deliveries.get("span_s") or 0.0
    if not selector:
        return Observed(
            latency=run_histogram(doc),
            delivered=deliveries["delivered"],
            expected=deliveries["expected"],
            lost=integrity["lost"],
            duplicated=integrity["duplicated"],
            reordered=integrity["reordered"],
            corrupted=integrity["corrupted"],
            per_s=deliveries["per_s"],
        )
    wanted = dict(selector)
    picked = [s for s in doc.get("labels", []) if all(s["values"].get(k) == v for k, v in wanted.items())]
    if not picked:
        return None
    out = Observed(latency=LatencyHistogram(), expected=0, lost=0)
    for section in picked:
        encoded = section.get("histogram")
        if encoded is None or out.latency is None:
            out.latency = None  # a document upgraded from version 1: no histogram per label
        else:
            out.latency.merge(LatencyHistogram.decode(encoded["data"], encoded["clamped"]))
        out.delivered += section["delivered"]
        out.expected = (out.expected or 0) + section["expected"]
        counts = section["integrity"]
        out.lost = (out.lost or 0) + counts["lost"]
        out.duplicated += counts["duplicated"]
        out.reordered += counts["reordered"]
        out.corrupted += counts["corrupted"]
    out.per_s = round(out.delivered / span, 1) if span > 0 else None
    return out


def check_run(doc: RunDocument, thresholds: Sequence[Threshold], aborted: str | None = None) -> list[ThresholdResult]:
    """The document's ``thresholds``: each checked on ``doc`` (``aborted``:
    why the run was stopped early, naming the threshold that stopped it)."""
    results: list[ThresholdResult] = []
    for verdict in check(thresholds, lambda selector: observed(doc, selector)):
        t = verdict.threshold
        results.append(
            {
                "threshold": t.text,
                "ok": verdict.ok,
                "value": verdict.value,
                "abort_on_fail": t.abort_on_fail,
                "aborted": aborted is not None and aborted.startswith(t.text + ":"),
            }
        )
    return results


def failed(doc: RunDocument) -> list[ThresholdResult]:
    """The thresholds ``doc`` failed."""
    return [t for t in doc.get("thresholds", []) if not t["ok"]]
