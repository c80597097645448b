"""The Locust path's time axis without Locust: two processes record by arrival,
ship their closed intervals, a master merges them exactly, writes the
``.hlog`` (read back with ``hdrhistogram``) and checks thresholds."""

from __future__ import annotations

import json
import random
from pathlib import Path

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from bench.loadtest.timeline import IntervalMerge, IntervalRecorder, check_thresholds
from bench.measure.stats import HIGHEST_US, LOWEST_US, SIGNIFICANT_FIGURES, LatencyHistogram

T0 = 1_767_225_600 * 10**9  # a whole second, Unix ns


def test_two_processes_merge_exactly_and_the_log_reads_back(tmp_path: Path) -> None:
    rng = random.Random(3)
    workers = [IntervalRecorder(0.5), IntervalRecorder(0.5)]
    merge = IntervalMerge()
    whole = LatencyHistogram()
    now = T0
    for step in range(60):  # 6 s of deliveries, shipped every 0.1 s as report_to_master would
        now = T0 + step * 100_000_000
        for w in workers:
            for _ in range(rng.randint(0, 30)):
                latency = rng.randint(100, 50_000)
                w.record(latency, now + rng.randint(0, 99_999_999))
                whole.record(latency)
            merge.add(w.pack(w.close(now)))
    for w in workers:
        merge.add(w.pack(w.close(now, final=True)))

    sections = merge.sections()
    assert [s["start_s"] for s in sections] == [k * 0.5 for k in range(12)]
    assert sum(s["delivered"] for s in sections) == whole.count
    assert list(merge.total()._hist.counts) == list(whole._hist.counts)
    assert merge.origin_unix_s == T0 / 1e9

    path = merge.write_hlog(tmp_path / "run_fanout.hlog")
    reader = HistogramLogReader(str(path), HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES))
    total, n = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES), 0
    while (h := reader.get_next_interval_histogram()) is not None:
        total.add(h)
        n += 1
    reader.close()
    assert n == 12 and list(total.counts) == list(whole._hist.counts)
    lines = [json.loads(line) for line in merge.write_jsonl(tmp_path / "run.jsonl").read_text().splitlines()]
    assert [line["delivered"] for line in lines] == [s["delivered"] for s in sections]


def test_thresholds_from_the_locust_path() -> None:
    hist = LatencyHistogram()
    for v in range(1000, 11000, 10):
        hist.record(v)
    verdicts = check_thresholds(
        ["p99<20ms", "p50<1ms", "lost==0", "delivered>=99.9%", "p99{path=cross}<1s"],
        hist,
        delivered=hist.count,
        expected=hist.count,
        lost=0,
    )
    assert [v.ok for v in verdicts] == [True, False, True, True, False]


def test_thresholds_pick_the_locust_users_labels() -> None:
    same, corrected = LatencyHistogram(), LatencyHistogram()
    for v in range(1000, 2000):
        same.record(v)  # 1 to 2 ms
        corrected.record(v * 10)  # 10 to 20 ms
    whole = LatencyHistogram()
    whole.merge(same)
    whole.merge(corrected)
    verdicts = check_thresholds(
        [
            "p99{clock=same}<3ms",
            "p99{clock=corrected}<3ms",
            "p50<30ms",
            "p99{clock=other}<1s",
            "corrupted{clock=same}==0",
        ],
        whole,
        delivered=whole.count,
        lost=0,
        labels={"clock=same": same, "clock=corrected": corrected},
    )
    assert [v.ok for v in verdicts] == [True, False, True, False, False]
    assert verdicts[1].value is not None and 19_000 <= verdicts[1].value <= 20_100  # us
    assert verdicts[3].value is None and verdicts[4].value is None  # no such label; faults not kept by label


def test_a_batch_goes_to_the_interval_of_its_arrival() -> None:
    rec = IntervalRecorder(1.0)
    rec.record_many([100, 200, 300], T0 + 999_999_999)
    rec.record_many([400], T0 + 1_000_000_000)
    rec.record_many(list(range(1, 5001)), T0 + 1_500_000_000)  # past a batch: recorded at once
    closed = rec.close(T0 + 3 * 10**9)
    assert {k - T0 // 10**9: h.count for k, h in closed.items()} == {0: 3, 1: 5001}
    assert closed[T0 // 10**9 + 1].max >= 4995 and rec.close(T0 + 9 * 10**9, final=True) == {}
    merge = IntervalMerge()
    merge.add(rec.pack(closed))
    assert merge.span_s == 2.0


def test_read_lags_go_to_the_interval_they_were_taken_in_and_merge_across_processes() -> None:
    workers = [IntervalRecorder(1.0), IntervalRecorder(1.0)]
    merge = IntervalMerge()
    for n, w in enumerate(workers):
        w.record(2000, T0)  # a delivery in interval 0
        lags = LatencyHistogram()
        lags.record_many([100 * (n + 1)] * 10)
        w.record_lags(lags, T0 + 200_000_000)  # taken in interval 0
        late = LatencyHistogram()
        late.record(9000)
        w.record_lags(late, T0 + 1_500_000_000)  # interval 1: reads (notices, say) but no delivery
        w.record_lags(LatencyHistogram(), T0 + 2_500_000_000)  # nothing read: no interval made
        merge.add(w.pack(w.close(T0 + 3_000_000_000, final=True)))
    first, second = merge.sections()
    lag = first["receive_lag_us"]
    assert lag is not None and lag["count"] == 20 and (lag["min_us"], lag["max_us"]) == (100, 200)
    assert first["delivered"] == 2
    assert second["delivered"] == 0 and second["receive_lag_us"] is not None
    assert second["receive_lag_us"]["count"] == 2 and 9000 <= second["receive_lag_us"]["max_us"] <= 9010
    assert len(merge.sections()) == 2
