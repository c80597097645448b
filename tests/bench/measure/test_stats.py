"""Latency statistics: exact merges and percentiles against hand-computed data."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.measure.stats import HIGHEST_US, LatencyHistogram, percentile_key


def _hist(values: list[int]) -> LatencyHistogram:
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    return h


def test_merge_of_parts_equals_one_histogram_over_all_values() -> None:
    rng = random.Random(3)
    values = [int(rng.lognormvariate(7, 2)) + 1 for _ in range(5000)]
    parts = [values[i::4] for i in range(4)]
    merged = LatencyHistogram()
    for part in parts:
        # ship each part as a worker would: encoded text, decoded by the parent
        merged.merge(LatencyHistogram.decode(_hist(part).encode()))
    single = _hist(values)
    assert merged.count == single.count == 5000
    assert merged.summary() == single.summary()
    assert merged.encode() == single.encode()


def test_percentiles_match_hand_computed_values() -> None:
    # 1..100 us: below 2048 every microsecond is its own bucket, so the
    # percentiles are exact: the k-th percentile is the value at rank k.
    h = _hist(list(range(1, 101)))
    s = h.summary()
    assert (s["p50_us"], s["p90_us"], s["p95_us"], s["p99_us"], s["p99_9_us"]) == (50, 90, 95, 99, 100)
    assert (s["min_us"], s["max_us"], s["count"]) == (1, 100, 100)
    assert s["mean_us"] == 50.5


def test_percentiles_of_large_values_are_within_the_stated_precision() -> None:
    # 900 deliveries at 10 ms and 100 at 250 ms: p50 and p90 are 10 ms, p99 is 250 ms (3 significant figures).
    h = LatencyHistogram()
    h.record_many([10_000] * 900 + [250_000] * 100)
    for key, expected in (("p50_us", 10_000), ("p90_us", 10_000), ("p99_us", 250_000), ("max_us", 250_000)):
        assert abs(h.summary()[key] - expected) <= expected / 1000, key


def test_record_many_equals_recording_one_by_one() -> None:
    rng = random.Random(5)
    values = [rng.choice([0, 1, 2047, 2048, 2049, 65_535, HIGHEST_US, HIGHEST_US + 5]) for _ in range(200)]
    values += [int(rng.lognormvariate(8, 3)) for _ in range(2000)]
    batched = LatencyHistogram()
    i = 0
    for size in [1, 3, 8, 9, 97] * 100:  # small and large batches take different paths
        batched.record_many(values[i : i + size])
        i += size
    assert i >= len(values)
    one_by_one = _hist(values)
    assert batched.encode() == one_by_one.encode()
    assert batched.summary() == one_by_one.summary()
    assert batched.clamped == one_by_one.clamped == values.count(HIGHEST_US + 5)


def test_empty_histogram_and_keys() -> None:
    h = LatencyHistogram()
    h.record_many([])
    assert h.summary()["count"] == 0 and h.encode() == ""
    assert LatencyHistogram.decode("").count == 0
    assert percentile_key(99.9) == "p99_9_us"


# -- the summary from the counts (numpy) is hdrh's own ----------------------------------


def _hdrh_reference(h: LatencyHistogram, pcts: list[float], bounds: list[float]) -> tuple[object, ...]:
    raw = h._hist
    below = []
    for bound in bounds:
        below.append(
            sum(it.count_at_value_iterated_to for it in raw.get_recorded_iterator() if it.value_iterated_to <= bound)
        )
    return (raw.get_mean_value(), [raw.get_value_at_percentile(p) for p in pcts], below)


@given(
    st.lists(st.integers(1, HIGHEST_US), min_size=1, max_size=400),
    st.lists(st.integers(1, 3000), max_size=200),
    st.lists(st.floats(0, 100), max_size=6),
)
@settings(max_examples=50, deadline=None)
def test_summary_from_the_counts_is_hdrhs(wide: list[int], narrow: list[int], pcts: list[float]) -> None:
    h = LatencyHistogram()
    h.record_many(wide)
    other = LatencyHistogram()
    other.record_list(narrow)
    h.merge(LatencyHistogram.decode(other.encode()) if narrow else other)
    pcts = [*pcts, 0.0, 50.0, 99.9, 100.0]
    bounds = [0.5, 100, 2500, 1e6, 1e9]
    mean, values, below = _hdrh_reference(h, pcts, bounds)
    assert h.mean == mean
    assert h.percentiles(pcts) == values
    assert h.cumulative(bounds) == below
    assert h.summary()["p99_us"] == h._hist.get_value_at_percentile(99.0)
