"""Pass/fail criteria on a run's measurements, written as k6 writes its thresholds.

::

    p99<50ms            p(99.9)<=0.2s        max<1s         mean<5ms
    delivered>=99.9%    lost==0              faults==0      corrupted==0
    p99{path=cross}<80ms                     deliveries_per_s>=90000
    p99<50ms abort-on-fail

A threshold is ``METRIC[{SELECTOR}] OP VALUE[UNIT] [abort-on-fail]``:

* **latency** metrics ``p50 p90 p95 p99 p99.9`` (any percentile; ``p(99)``
  as k6 spells it), ``min``, ``mean``, ``max``; the value in ``us``, ``ms``
  (the default, as k6's durations) or ``s``;
* ``delivered``: measured deliveries / what the plan owed, as ``99.9%`` or
  ``0.999``;
* counts ``lost``, ``duplicated``, ``reordered``, ``corrupted``, ``faults``
  (their sum);
* ``deliveries_per_s``: the run's measured deliveries per second;
* ``OP`` one of ``< <= > >= == !=``;
* ``{dim=value,...}``: only the deliveries of the labels with those values
  (:mod:`bench.workload.labels`), e.g. ``{path=cross}``; without it, the run;
* ``abort-on-fail``: also checked after every measured interval while the
  run goes, on everything measured so far, and the run is stopped the moment
  it is crossed (k6's ``abortOnFail``).  Only what an interval can already
  tell is checked then: the latencies and the faults seen (``duplicated``,
  ``reordered``, ``corrupted``, ``faults``); ``delivered``, ``lost`` and
  ``deliveries_per_s`` are known when the run ends.

A failed threshold makes the command exit with code 99, as k6 does.

No I/O and no documents here: :func:`check` takes a function that gives the
:class:`Observed` figures for a selector, so the swarm (from its run
document, :func:`bench.results.verdicts.check_run`) and the Locust users
(from their merged histogram and integrity counters) check the same
thresholds the same way.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.measure.stats import LatencyHistogram

#: The exit code of a run whose thresholds failed (k6's).
THRESHOLDS_FAILED_EXIT = 99

#: Latency metrics with a fixed meaning; ``pNN`` is any percentile besides.
LATENCY_METRICS = ("min", "mean", "max")
#: Counts of faults, and ``faults`` their sum.
COUNT_METRICS = ("lost", "duplicated", "reordered", "corrupted", "faults")
#: Every metric name besides the percentiles.
METRICS = (*LATENCY_METRICS, "delivered", *COUNT_METRICS, "deliveries_per_s")
#: What an interval can tell while the run goes (see the module docstring).
LIVE_COUNTS = ("duplicated", "reordered", "corrupted", "faults")

#: Microseconds per latency unit.
UNITS_US = {"us": 1.0, "µs": 1.0, "ms": 1000.0, "s": 1_000_000.0}

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}

_PATTERN = re.compile(
    r"""^\s*(?P<metric>p\(\s*[0-9.]+\s*\)|p[0-9][0-9.]*|[a-z_]+)\s*
        (?:\{(?P<selector>[^}]*)\})?\s*
        (?P<op><=|>=|==|!=|<|>)\s*
        (?P<value>[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>us|µs|ms|s|%)?\s*
        (?P<abort>abort-on-fail)?\s*$""",
    re.VERBOSE,
)


class ThresholdError(ValueError):
    """A threshold that cannot be read; the message says why."""


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold; :attr:`text` is how it was written."""

    text: str
    metric: str  #: "p99.9", "max", "delivered", "lost", ...
    selector: tuple[tuple[str, str], ...]  #: (dimension, value) pairs; () is the whole run
    op: str
    value: float  #: in the metric's unit: us for latency, a fraction for delivered
    abort_on_fail: bool = False

    @property
    def percentile(self) -> float | None:
        return float(self.metric[1:]) if self.metric.startswith("p") else None

    @property
    def is_latency(self) -> bool:
        return self.percentile is not None or self.metric in LATENCY_METRICS

    @property
    def live(self) -> bool:
        """Whether it can be checked while the run goes."""
        return self.is_latency or self.metric in LIVE_COUNTS

    def passes(self, measured: float) -> bool:
        return OPERATORS[self.op](measured, self.value)

    def shown(self, measured: float | None) -> str:
        """``measured`` in the unit the threshold was written in."""
        if measured is None:
            return "nothing measured"
        if self.is_latency:
            return f"{measured / 1000:.3f} ms"
        if self.metric == "delivered":
            return f"{measured * 100:.4g}%"
        return f"{measured:g}"


def parse(text: str) -> Threshold:
    """One threshold (see the module docstring); ThresholdError says what is wrong."""
    m = _PATTERN.match(text)
    if m is None:
        raise ThresholdError(
            f"cannot read threshold {text!r}: write METRIC[{{dim=value}}] OP VALUE[unit] [abort-on-fail], "
            "e.g. 'p99<50ms', 'delivered>=99.9%', 'lost==0'"
        )
    metric = m["metric"].replace(" ", "")
    if metric.startswith("p("):
        metric = "p" + metric[2:-1]
    value, unit = float(m["value"]), m["unit"]
    if metric.startswith("p") and metric != "p":
        try:
            pct = float(metric[1:])
        except ValueError:
            raise ThresholdError(f"{text!r}: {metric} is not a percentile") from None
        if not 0 < pct <= 100:
            raise ThresholdError(f"{text!r}: a percentile lies in (0, 100]")
        metric = f"p{pct:g}"
    elif metric not in METRICS:
        raise ThresholdError(f"{text!r}: unknown metric {metric!r}; use pNN, {', '.join(METRICS)}")
    value = _scaled(text, metric, value, unit)
    return Threshold(
        text=text.strip(),
        metric=metric,
        selector=_selector(text, m["selector"]),
        op=m["op"],
        value=value,
        abort_on_fail=m["abort"] is not None,
    )


def _scaled(text: str, metric: str, value: float, unit: str | None) -> float:
    """``value`` in the metric's own unit."""
    latency = metric.startswith("p") or metric in LATENCY_METRICS
    if latency:
        if unit == "%":
            raise ThresholdError(f"{text!r}: a latency is in us, ms or s")
        return value * UNITS_US[unit or "ms"]
    if metric == "delivered":
        if unit == "%":
            return round(value / 100, 12)  # 99.9% is 0.999, not 0.9990000000000001
        if unit is not None or value > 1:
            raise ThresholdError(f"{text!r}: delivered is a share: 99.9% or 0.999")
        return value
    if unit is not None:
        raise ThresholdError(f"{text!r}: {metric} takes a plain number")
    return value


def _selector(text: str, raw: str | None) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    pairs = []
    for part in raw.split(","):
        name, eq, value = part.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise ThresholdError(f"{text!r}: a selector is {{dim=value,...}}, e.g. {{path=cross}}")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def parse_all(texts: Sequence[str]) -> list[Threshold]:
    return [parse(t) for t in texts]


@dataclass
class Observed:
    """What a run (or the labels a selector picks) measured.  None: not known
    (not measured, or not yet: ``lost`` while the run goes)."""

    latency: LatencyHistogram | None
    delivered: int = 0
    expected: int | None = None
    lost: int | None = None
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    per_s: float | None = None

    def value(self, threshold: Threshold) -> float | None:
        """The figure ``threshold`` is about, in its unit."""
        metric = threshold.metric
        if threshold.is_latency:
            hist = self.latency
            if hist is None or not hist.count:
                return None
            pct = threshold.percentile
            if pct is not None:
                return float(hist.percentile(pct))
            return float({"min": hist.min, "max": hist.max, "mean": hist.mean}[metric])
        if metric == "delivered":
            return round(self.delivered / self.expected, 12) if self.expected else None
        if metric == "deliveries_per_s":
            return self.per_s
        counts: Mapping[str, int | None] = {
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "corrupted": self.corrupted,
        }
        if metric == "faults":
            return None if self.lost is None else float(self.lost + self.duplicated + self.reordered + self.corrupted)
        got = counts[metric]
        return None if got is None else float(got)


@dataclass(frozen=True)
class Verdict:
    threshold: Threshold
    ok: bool
    value: float | None

    def line(self) -> str:
        """``p99<50ms: ok (12.345 ms)`` or ``... FAILED (...)``."""
        return f"{self.threshold.text}: {'ok' if self.ok else 'FAILED'} ({self.threshold.shown(self.value)})"


#: Gives the figures of the deliveries a selector picks (() is the whole run), or None if it picks none.
Observe = Callable[[tuple[tuple[str, str], ...]], "Observed | None"]


def check(thresholds: Sequence[Threshold], observe: Observe) -> list[Verdict]:
    """Every threshold against what ``observe`` gives; one with nothing to
    measure fails (a selector that picks no label, a run without deliveries)."""
    verdicts = []
    for t in thresholds:
        observed = observe(t.selector)
        value = observed.value(t) if observed is not None else None
        ok = value is not None and not math.isnan(value) and t.passes(value)
        verdicts.append(Verdict(t, ok, value))
    return verdicts


def crossed(thresholds: Sequence[Threshold], observe: Observe) -> Verdict | None:
    """While the run goes: the first abort-on-fail threshold that what was
    measured so far already fails (only those it can tell: :attr:`Threshold.live`)."""
    for t in thresholds:
        if not (t.abort_on_fail and t.live):
            continue
        observed = observe(t.selector)
        if observed is None:
            continue
        if t.is_latency:
            value = observed.value(t)
            if value is not None and not t.passes(value):
                return Verdict(t, False, value)
            continue
        seen = Observed(
            None, lost=0, duplicated=observed.duplicated, reordered=observed.reordered, corrupted=observed.corrupted
        )
        value = seen.value(t)
        # Faults only grow: a count past an upper bound stays past it; below one it may still get there.
        if (
            value is not None
            and t.op in ("<", "<=", "==")
            and not t.passes(value)
            and (t.op != "==" or value > t.value)
        ):
            return Verdict(t, False, value)
    return None
