"""The run's time axis in the swarm: a worker's side, and when messages were due.

:class:`Timeline` is what a worker does with the intervals of
:mod:`bench.measure.intervals`: at ``Start`` it gives the recorder the axis
(interval 0 begins at the schedule's first intended send), at every
housekeeping it closes the intervals that ended more than
:data:`~bench.measure.intervals.CLOSE_GRACE_NS` ago and sends each to the
parent as an :class:`~bench.swarm.messages.Interval`, with the harness's read
lag and the disconnects of that interval; at ``Finish`` it closes the rest.
The worker keeps only the open intervals: its memory does not grow with the
length of the run.

:class:`MessageTimes` says in which interval each message was *intended*:
the parent counts the messages sent and the deliveries they owe per
interval with it, and a worker its lost deliveries (a message that never
arrived has no arrival to be counted by).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from bench.measure.integrity import IntegrityTracker
from bench.measure.intervals import CLOSE_GRACE_NS, ClosedInterval, IntervalAxis
from bench.measure.labelled import EncodedHistogram
from bench.measure.recorder import DeliveryRecorder
from bench.net.rx import StampedReader
from bench.swarm.connections import Conn, Sockets
from bench.swarm.messages import Interval
from bench.swarm.plan import Schedule
from bench.workload import Plan

#: An empty histogram, as an interval without reads carries its read lag.
_NO_LAG = EncodedHistogram()


class MessageTimes:
    """The schedule on the time axis: which interval each message was intended in."""

    def __init__(self, schedule: Schedule, axis: IntervalAxis) -> None:
        self.schedule = schedule
        self.axis = axis
        self._first: dict[tuple[int, int], int] = {}  # (slot, k) -> first seq of k

    def first_seq(self, slot: int, k: int) -> int:
        """Sender ``slot``'s first sequence number intended in interval ``k`` or later."""
        key = (slot, k)
        seq = self._first.get(key)
        if seq is None:
            seq = self._first[key] = self.schedule.first_seq_at(slot, self.axis.start_ns(k)) if k > 0 else 0
        return seq

    def interval_of(self, slot: int, seq: int) -> int:
        """The interval message ``seq`` of sender ``slot`` was intended in."""
        return self.axis.index(self.schedule.intended_ns(seq * self.schedule.senders + slot))

    def count(self, slot: int, first: int, stop: int, into: Counter[int], weight: int = 1) -> None:
        """Add ``weight`` per message ``first <= seq < stop`` of sender ``slot``
        to the interval it was intended in (one step per interval spanned)."""
        if stop <= first:
            return
        k, last = self.interval_of(slot, first), self.interval_of(slot, stop - 1)
        while k <= last:
            lo = max(first, self.first_seq(slot, k))
            hi = stop if k == last else min(stop, self.first_seq(slot, k + 1))
            if hi > lo:
                into[k] += (hi - lo) * weight
            k += 1

    def sent(self, plan: Plan, sent: Mapping[int, int], sizes: Mapping[int, int]) -> tuple[Counter[int], Counter[int]]:
        """Per interval: the messages of ``sent`` (stream id -> messages handed
        to the kernel, in order) intended in it, and the deliveries they owe
        (``sizes``: stream id -> receivers present that must get each)."""
        messages: Counter[int] = Counter()
        owed: Counter[int] = Counter()
        for sid, count in sent.items():
            stream = plan.streams.get(sid)
            if stream is None:
                continue
            self.count(stream.slot, 0, count, messages)
            self.count(stream.slot, 0, count, owed, sizes.get(sid, 0))
        return messages, owed

    def scheduled(self, k: int) -> int:
        """Messages the timetable has intended in interval ``k``."""
        schedule = self.schedule
        return schedule.first_at(self.axis.end_ns(k)) - schedule.first_at(self.axis.start_ns(k))

    def lost(self, plan: Plan, trackers: Iterable[tuple[IntegrityTracker, Mapping[int, int]]]) -> dict[int, int]:
        """Per interval, the deliveries lost (``trackers``: each receiver's
        tracker and what it was owed), by when the lost message was intended."""
        out: Counter[int] = Counter()
        for tracker, owed in trackers:
            for sid, (holes, tail) in tracker.missing(owed).items():
                slot = plan.streams[sid].slot
                for seq in holes:
                    out[self.interval_of(slot, seq)] += 1
                self.count(slot, tail.start, tail.stop, out)
        return dict(out)


class Timeline:
    """A worker's intervals: closed as the clock passes them, sent to the parent."""

    def __init__(
        self,
        worker: int,
        interval_s: float,
        recorder: DeliveryRecorder,
        reader: StampedReader,
        sockets: Sockets,
        send: Callable[[Interval], None],
    ) -> None:
        self.worker = worker
        self.interval_s = interval_s
        self.recorder = recorder
        self.reader = reader
        self.sockets = sockets
        self.send = send
        self.axis: IntervalAxis | None = None
        self.times: MessageTimes | None = None
        self._next_close_ns = 0
        self._boundary = 0  # the interval the read lags and disconnects go to now
        self._boundary_ns = 0
        self._lags: dict[int, EncodedHistogram] = {}
        self._disconnects: Counter[int] = Counter()
        self._disconnects_seen = 0

    def start(self, schedule: Schedule) -> None:
        """Interval 0 begins at the schedule's first intended send."""
        axis = self.axis = IntervalAxis.of(schedule.t0_ns, self.interval_s)
        self.times = MessageTimes(schedule, axis)
        self.recorder.start_intervals(axis)
        self.reader.interval_lag.reset()  # registration's reads are no interval's
        self._disconnects_seen = sum(self.sockets.disconnects.values())
        self._boundary_ns = axis.end_ns(0)
        self._next_close_ns = axis.end_ns(0) + CLOSE_GRACE_NS

    def tick(self, now: int) -> None:
        """After the reader's housekeeping: move the read lags and
        disconnects on at interval boundaries; send the intervals due."""
        axis = self.axis
        if axis is None:
            return
        if now >= self._boundary_ns:
            self._rotate()
            self._boundary = axis.index(now)
            self._boundary_ns = axis.end_ns(self._boundary)
        if now >= self._next_close_ns:
            self._ship(self.recorder.close_intervals(now - CLOSE_GRACE_NS))
            self._next_close_ns = axis.end_ns(axis.index(now - CLOSE_GRACE_NS)) + CLOSE_GRACE_NS

    def finish(self, now: int) -> None:
        """Close and send every interval up to ``now``'s (``Finish``)."""
        if self.axis is None:
            return
        self._rotate()
        self._ship(self.recorder.close_intervals(now, final=True))
        self.axis = None

    def lost(self, plan: Plan, receivers: Iterable[Conn], sent: Mapping[int, int]) -> dict[int, int]:
        """The ``receivers``' lost deliveries of what was ``sent`` (stream id ->
        messages), by the interval the lost message was intended in."""
        if self.times is None:
            return {}
        trackers = [(c.tracker, plan.sent_to(c.spec.cid, sent)) for c in receivers if c.tracker is not None]
        return self.times.lost(plan, trackers)

    def _rotate(self) -> None:
        """What the reads and disconnects so far add to the current boundary's interval."""
        lag = self.reader.interval_lag
        if lag.count:
            self._lags[self._boundary] = EncodedHistogram.of(lag)
            lag.reset()
        seen = sum(self.sockets.disconnects.values())
        if seen != self._disconnects_seen:
            self._disconnects[self._boundary] += seen - self._disconnects_seen
            self._disconnects_seen = seen

    def _ship(self, closed: list[ClosedInterval]) -> None:
        for part in closed:
            counts = part.counts
            counts.disconnects += self._disconnects.pop(part.index, 0)
            lag = self._lags.pop(part.index, _NO_LAG)
            self.send(Interval(self.worker, part.index, part.labels, counts, lag))
