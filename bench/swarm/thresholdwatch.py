"""Thresholds marked abort-on-fail, checked after every measured interval.

An :class:`~bench.swarm.series.IntervalObserver` that the run adds itself
when a threshold asks for it: after each interval past the warm-up it checks
the thresholds on everything measured so far (the labels' histograms added
up, the faults seen; :func:`bench.measure.thresholds.crossed`) and asks the
run to stop at the first one crossed.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.measure.stats import LatencyHistogram
from bench.measure.thresholds import Observed, Threshold, crossed
from bench.results.schema import RunDocument
from bench.swarm.series import IntervalView, RunInfo
from bench.workload import label_values


class ThresholdWatch:
    """Stops a run when an abort-on-fail threshold is crossed."""

    def __init__(self, thresholds: Sequence[Threshold]) -> None:
        self.thresholds = [t for t in thresholds if t.abort_on_fail]

    def run_started(self, run: RunInfo) -> None:
        pass

    def interval(self, view: IntervalView) -> str | None:
        if view.section["phase"] == "warmup":
            return None

        def observe(selector: tuple[tuple[str, str], ...]) -> Observed | None:
            wanted = dict(selector)
            hists = [
                h for key, h in view.totals.items() if all(label_values(key).get(k) == v for k, v in wanted.items())
            ]
            if not hists:
                return None
            latency = LatencyHistogram()
            for h in hists:
                latency.merge(h)
            seen = view.observed  # the faults are not labelled while the run goes
            return Observed(latency, duplicated=seen.duplicated, reordered=seen.reordered, corrupted=seen.corrupted)

        verdict = crossed(self.thresholds, observe)
        if verdict is None:
            return None
        shown = verdict.threshold.shown(verdict.value)
        return f"{verdict.threshold.text}: crossed at interval {view.section['index']} ({shown})"

    def run_finished(self, doc: RunDocument) -> None:
        pass


def _picks(key: str, wanted: dict[str, str]) -> bool:
    """Whether label ``key`` has every value ``wanted``."""
    values = label_values(key)
    return all(values.get(k) == v for k, v in wanted.items())
