"""Thresholds as k6 writes them: parsed, checked on known figures, crossed while a run goes."""

from __future__ import annotations

import pytest

from bench.measure.stats import LatencyHistogram
from bench.measure.thresholds import Observed, ThresholdError, check, crossed, parse


def _hist(*values_us: int) -> LatencyHistogram:
    h = LatencyHistogram()
    for v in values_us:
        h.record(v)
    return h


@pytest.mark.parametrize(
    ("text", "metric", "op", "value", "selector", "abort"),
    [
        ("p99<50ms", "p99", "<", 50_000, (), False),
        ("p(99.9)<=0.2s", "p99.9", "<=", 200_000, (), False),
        ("p(95)<200", "p95", "<", 200_000, (), False),  # k6: milliseconds
        ("max < 800us", "max", "<", 800, (), False),
        ("delivered>=99.9%", "delivered", ">=", 0.999, (), False),
        ("delivered>=0.5", "delivered", ">=", 0.5, (), False),
        ("lost==0", "lost", "==", 0, (), False),
        ("p99{path=cross}<80ms", "p99", "<", 80_000, (("path", "cross"),), False),
        ("p99{path=cross,room=big}<80ms abort-on-fail", "p99", "<", 80_000, (("path", "cross"), ("room", "big")), True),
        ("deliveries_per_s>=90000", "deliveries_per_s", ">=", 90_000, (), False),
    ],
)
def test_parse(
    text: str, metric: str, op: str, value: float, selector: tuple[tuple[str, str], ...], abort: bool
) -> None:
    t = parse(text)
    assert (t.metric, t.op, t.selector, t.abort_on_fail) == (metric, op, selector, abort)
    assert t.value == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("p99", "cannot read"),
        ("latency<5ms", "unknown metric"),
        ("p0<5ms", "percentile"),
        ("p99<5%", "us, ms or s"),
        ("delivered>=99.9", "share"),
        ("lost==0ms", "plain number"),
        ("p99{path}<5ms", "selector"),
        ("p99<5ms abort", "cannot read"),
    ],
)
def test_bad_thresholds_say_why(text: str, why: str) -> None:
    with pytest.raises(ThresholdError, match=why):
        parse(text)


def test_check_on_known_figures() -> None:
    run = Observed(_hist(*range(1000, 101_000, 1000)), delivered=999, expected=1000, lost=1, per_s=5000.0)
    cross = Observed(_hist(70_000, 90_000), delivered=2, expected=2, lost=0)
    observe = {(): run, (("path", "cross"),): cross}.get
    texts = [
        "p50<60ms",  # ok: p50 is 50 ms
        "p99<50ms",  # fails: p99 is 99 ms
        "delivered>=99.9%",  # ok: 99.9%
        "delivered>99.9%",  # fails
        "lost==0",  # fails: one lost
        "faults<=1",  # ok
        "deliveries_per_s>=5000",  # ok
        "max{path=cross}<80ms",  # fails: 90 ms
        "p99{path=same}<1s",  # fails: no such label, nothing measured
    ]
    verdicts = check([parse(t) for t in texts], lambda selector: observe(selector))
    assert [v.ok for v in verdicts] == [True, False, True, False, False, True, True, False, False]
    assert verdicts[1].value == pytest.approx(99_000, rel=0.001)
    assert verdicts[1].line() == "p99<50ms: FAILED (99.007 ms)"
    assert verdicts[8].line() == "p99{path=same}<1s: FAILED (nothing measured)"


def test_crossed_while_the_run_goes_only_when_it_cannot_come_back() -> None:
    seen = Observed(_hist(1000, 2000, 300_000), duplicated=2)
    thresholds = [parse(t) for t in ("lost==0 abort-on-fail", "duplicated>5 abort-on-fail", "p99<1s abort-on-fail")]
    assert crossed(thresholds, lambda s: seen) is None  # lost is known at the end; 2 duplicates may become 6
    assert crossed([*thresholds, parse("p99<5ms")], lambda s: seen) is None  # not abort-on-fail
    got = crossed([*thresholds, parse("duplicated<=1 abort-on-fail")], lambda s: seen)
    assert got is not None and got.threshold.text == "duplicated<=1 abort-on-fail" and got.value == 2
    got = crossed([parse("max<100ms abort-on-fail")], lambda s: seen)
    assert got is not None and got.value == pytest.approx(300_000, rel=0.001)
    assert crossed([parse("faults==3 abort-on-fail")], lambda s: seen) is None
    assert crossed([parse("faults==1 abort-on-fail")], lambda s: seen) is not None
