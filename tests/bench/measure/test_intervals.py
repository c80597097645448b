"""The time axis without sockets: interval histograms add up exactly to the
run's, a delivery counts in the interval it arrived in, faults and late reads
are counted where they happened, and the schedule says when each message was due."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from bench.measure import probe
from bench.measure import recorder as recorder_mod
from bench.measure.integrity import IntegrityTracker
from bench.measure.intervals import CLOSE_GRACE_NS, ClosedInterval, IntervalAxis
from bench.measure.labelled import Labelled
from bench.measure.recorder import DeliveryRecorder
from bench.measure.stats import LatencyHistogram
from bench.swarm.plan import Schedule
from bench.swarm.timeline import MessageTimes
from bench.wire.lines import BlockLineDecoder
from bench.workload import Client, one_room
from server import protocol

NAMES = {1: "alice", 2: "bob", 40: "dave-40"}
OWN = 3
T0 = 10**12
STEP_NS = 50_000_000  # 50 ms intervals: a few dozen over the stream
MEASURE_START = T0 + 100_000_000


def _counts(h: LatencyHistogram) -> tuple[Any, ...]:
    raw = h._hist
    return (list(raw.counts), raw.total_count, raw.min_value, raw.max_value)


def _stream(rng: random.Random, n: int) -> list[tuple[bytes, int]]:
    """(line, arrival ns): probes of alice, bob and dave, intended 1 ms apart
    from T0 on, arriving 0.2-40 ms later, with duplicates, swaps and a
    corrupted line now and then."""
    out: list[tuple[bytes, int]] = []
    seqs = Counter[int]()
    for m in range(n):
        sender = (1, 2, 40)[m % 3]
        seq = seqs[sender]
        seqs[sender] += 1
        intended = T0 + m * 1_000_000
        line = protocol.encode_message(NAMES[sender], probe.encode_probe(sender, seq, intended, "payload-x"))
        arrival = intended + rng.randrange(200_000, 40_000_000)
        r = rng.random()
        if r < 0.02:
            out.append((line, arrival))  # a duplicate follows
        elif r < 0.03:
            line = line[:20] + (b"Z" if line[20:21] != b"Z" else b"Y") + line[21:]
        out.append((line, arrival))
    if len(out) > 10:
        out[5], out[6] = out[6], out[5]  # one reordering
    return sorted(out, key=lambda item: item[1])


def _record(
    stream: list[tuple[bytes, int]], labelled: Labelled, axis: IntervalAxis | None, reference: bool
) -> tuple[DeliveryRecorder, IntegrityTracker, list[ClosedInterval]]:
    """Feed ``stream`` in reads of 1-20 lines (one arrival stamp per read, the
    newest line's), closing intervals as a worker does."""
    rec = DeliveryRecorder(NAMES, measure_start_ns=MEASURE_START, labelled=labelled)
    tracker = IntegrityTracker(rec.fault_sink)
    decoder = BlockLineDecoder(1 << 16)
    closed: list[ClosedInterval] = []
    if axis is not None:
        rec.start_intervals(axis)
    rng = random.Random(7)
    i = 0
    while i < len(stream):
        batch = stream[i : i + rng.randint(1, 20)]
        i += len(batch)
        now = batch[-1][1]
        data = b"".join(line for line, _ in batch)
        if reference:
            rec.feed_reference(tracker, OWN, decoder.feed(data), now)
        else:
            rec.receive(decoder, tracker, OWN, data, now)
        if axis is not None:
            closed += rec.close_intervals(now - CLOSE_GRACE_NS)
    if axis is not None:
        closed += rec.close_intervals(stream[-1][1], final=True)
    return rec, tracker, closed


LABELS = {
    "one label": (None, None),
    "labels": (["path=same", "path=cross"], {OWN: {1: 0, 2: 1, 40: 0}}),
}


@pytest.mark.parametrize("labels", LABELS.values(), ids=LABELS.keys())
@pytest.mark.parametrize("path", ["block", "lines", "reference"])
def test_intervals_add_up_exactly_to_the_run(labels: Any, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder_mod, "BLOCK_MIN_BYTES", 0 if path == "block" else 1 << 30)
    stream = _stream(random.Random(1), 3000)
    keys, routes = labels
    axis = IntervalAxis(T0, STEP_NS)
    rec, tracker, closed = _record(stream, Labelled(keys, routes), axis, path == "reference")
    plain, plain_tracker, _ = _record(stream, Labelled(keys, routes), None, path == "reference")

    # Every interval from 0 on, once, in order.
    assert [c.index for c in closed] == list(range(len(closed)))
    assert len(closed) >= 60
    # Per label, the intervals add up to the run's histogram, which is the one recorded without a time axis.
    for i, key in enumerate(rec.labelled.keys):
        added = LatencyHistogram()
        for c in closed:
            if key in c.labels:
                added.merge(c.labels[key].decode())
        assert _counts(added) == _counts(rec.labelled.totals[i])
        # HDR's merge keeps every count; min and max become their buckets' (0.1% precision).
        assert _counts(added)[:2] == _counts(plain.labelled.totals[i])[:2]
        assert added.count > 500
    assert rec.delivered_measured == plain.delivered_measured
    # The counts: every intact delivery once, every fault in some interval.
    assert sum(c.counts.delivered_all for c in closed) == rec.delivered_all == plain.delivered_all
    assert sum(c.counts.duplicated for c in closed) == tracker.duplicated == plain_tracker.duplicated > 0
    assert sum(c.counts.reordered for c in closed) == tracker.reordered > 0
    assert sum(c.counts.corrupted for c in closed) == tracker.corrupted > 0


def test_a_delivery_counts_in_the_interval_it_arrived_in() -> None:
    """Intended at 0.5 s, arrived at 3.4 s: interval 3, with its whole 2.9 s latency."""
    rec = DeliveryRecorder(NAMES)
    tracker = IntegrityTracker(rec.fault_sink)
    rec.start_intervals(IntervalAxis(T0, 1_000_000_000))
    early = protocol.encode_message("alice", probe.encode_probe(1, 0, T0 + 100_000_000, "a"))
    late = protocol.encode_message("alice", probe.encode_probe(1, 1, T0 + 500_000_000, "b"))
    rec.record_lines(tracker, OWN, early, T0 + 102_000_000)
    rec.record_lines(tracker, OWN, late, T0 + 3_400_000_000)
    closed = rec.close_intervals(T0 + 10**10, final=True)
    assert [c.index for c in closed] == [0, 1, 2, 3]
    assert [c.counts.delivered_all for c in closed] == [1, 0, 0, 1]
    assert closed[0].labels[""].decode().max == pytest.approx(2000, rel=0.001)
    assert closed[3].labels[""].decode().max == pytest.approx(2_900_000, rel=0.001)
    assert closed[1].labels == closed[2].labels == {}


def test_a_read_stamped_in_a_closed_interval_goes_to_the_oldest_open_one_and_is_counted() -> None:
    rec = DeliveryRecorder(NAMES)
    tracker = IntegrityTracker(rec.fault_sink)
    rec.start_intervals(IntervalAxis(T0, 1_000_000_000))
    line = protocol.encode_message("alice", probe.encode_probe(1, 0, T0, "a"))
    assert [c.index for c in rec.close_intervals(T0 + 2_500_000_000)] == [0, 1]
    rec.record_lines(tracker, OWN, line, T0 + 500_000_000)  # stamped in interval 0, read after it closed
    closed = rec.close_intervals(T0 + 3_000_000_000)
    assert [(c.index, c.counts.late_reads, c.counts.delivered_all) for c in closed] == [(2, 1, 1)]


def test_without_an_axis_the_recorder_keeps_one_histogram() -> None:
    rec = DeliveryRecorder(NAMES)
    assert rec.close_intervals(T0 + 10**12, final=True) == []
    rec.record_lines(IntegrityTracker(), OWN, protocol.encode_message("bob", probe.encode_probe(2, 0, T0, "a")), T0)
    assert rec.hist.count == 1


# -- when messages were due ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "senders", "step_ms"), [(100.0, 4, 1000), (333.0, 7, 250), (1e6 / 3, 3, 7), (0.0, 5, 100)]
)
def test_message_times_agree_with_the_schedule_message_by_message(rate: float, senders: int, step_ms: int) -> None:
    schedule = Schedule(T0, rate, 2000, senders, 100, {})
    times = MessageTimes(schedule, IntervalAxis(T0, step_ms * 1_000_000))
    axis = times.axis
    by_message: Counter[int] = Counter()
    for m in range(schedule.total):
        k = axis.index(schedule.intended_ns(m))
        by_message[k] += 1
        assert times.interval_of(m % senders, m // senders) == k
    assert {k: times.scheduled(k) for k in by_message} == dict(by_message)
    for slot in range(senders):
        for first, stop in ((0, schedule.messages_of(slot)), (3, 77), (50, 51), (9, 9)):
            got: Counter[int] = Counter()
            times.count(slot, first, stop, got)
            want = Counter(times.interval_of(slot, seq) for seq in range(first, stop))
            assert +got == want


def test_lost_deliveries_are_counted_by_when_the_message_was_due() -> None:
    clients = [Client(cid, f"c{cid}", receives=True) for cid in range(4)]
    plan = one_room(clients, {0: 0, 1: 1})
    schedule = Schedule(T0, 10.0, 200, 2, 0, {})  # message m at m / 10 s: sender m % 2, seq m // 2
    times = MessageTimes(schedule, IntervalAxis(T0, 1_000_000_000))
    tracker = IntegrityTracker()
    for seq in range(100):
        if seq not in (7, 8, 33):  # three holes from sender 0 ...
            tracker.observe(0, seq)
    for seq in range(60):  # ... and sender 1 stopped at 60 of 100
        tracker.observe(1, seq)
    lost = times.lost(plan, [(tracker, {0: 100, 1: 100})])
    want: Counter[int] = Counter()
    for sender, seq in [(0, 7), (0, 8), (0, 33), *((1, s) for s in range(60, 100))]:
        want[int((seq * 2 + sender) / 10)] += 1
    assert lost == dict(want)
    assert sum(lost.values()) == tracker.lost({0: 100, 1: 100}) == 43


def test_a_histogram_used_again_is_a_new_one() -> None:
    """Closed intervals' histograms are emptied and used again (no allocation per interval)."""
    used, new = LatencyHistogram(), LatencyHistogram()
    used.record_many([5, 700, 10**9])  # one clamped
    used.record_list([3, 4])
    used.reset()
    assert used.summary() == new.summary() and used.clamped == 0
    for h in (used, new):
        h.record_list([10, 2000, 2000])
        h.record(7)
    assert _counts(used) == _counts(new) and used.summary() == new.summary()
