"""The time axis of a run: its measurements per interval.

A run's deliveries are measured in one HDR histogram per label
(:mod:`bench.measure.labelled`); the time axis splits each of them once more,
by **interval** (1 s by default): interval ``k`` covers ``[origin + k*step,
origin + (k+1)*step)`` on the ``time.monotonic_ns()`` clock, ``origin`` being
the first intended send of the run's schedule.  Each process keeps only its
*open* intervals (usually one or two) and hands every closed one on
(:class:`ClosedInterval`); the run's histogram per label is the exact merge
of its intervals' (HDR counts add), so the series sums to the run.

**Which interval a delivery belongs to: its arrival.**  A delivery is put in
the interval in which it arrived -- the kernel's receive stamp of the read
that brought it (``--rx-clock kernel``; the read's own time with ``read``),
the moment its latency ends -- as HdrHistogram's ``Recorder`` puts a value in
the interval in which it was recorded.  Its latency still starts at the
message's *intended* send time.  So:

* an interval is final once it has ended (plus a short grace for the reads
  still in the harness's hands: :data:`CLOSE_GRACE_NS`), which the live view,
  the JSON lines and the Prometheus and OTLP outputs need: nothing they showed
  is revised later;
* a server that stalls from 3.2 s to 3.5 s shows in interval 3 only: the
  held messages arrive at 3.5 s with latencies up to 300 ms, and no other
  interval has them; a stall longer than an interval shows as intervals with
  few or no deliveries (deliveries/s falls, against the messages the
  timetable owed in them, which are counted by *intended* time: ``owed``),
  then one whose latency holds the whole wait -- never as a quiet interval
  with a good latency;
* it costs nothing per delivery: every line of one read has the same arrival,
  so the recorder checks the interval once per read (two integer comparisons)
  and switches histograms only when a read falls outside the current one.

Reads whose stamp falls in an interval already closed (the harness read them
more than the grace late) are recorded in the oldest open interval and
counted in its ``late_reads``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.measure.stats import LatencyHistogram

if TYPE_CHECKING:  # labelled.py keeps the intervals: it imports this module
    from bench.measure.labelled import EncodedHistogram

#: Default interval length (seconds): ``--interval``.
DEFAULT_INTERVAL_S = 1.0
#: Shortest interval allowed: below it the per-interval histograms and
#: messages cost more than they show.
MIN_INTERVAL_S = 0.05
#: An interval is closed this long after it ended: reads of bytes that arrived
#: in it are normally taken within a few ms (the harness read lag), so 200 ms
#: leaves room for a busy harness while keeping the live view prompt.
CLOSE_GRACE_NS = 200_000_000

#: Index of each observed fault kind in :attr:`IntervalCounts.faults` and in a
#: tracker's fault sink (:class:`bench.measure.integrity.IntegrityTracker`).
FAULT_KINDS = ("duplicated", "reordered", "corrupted")


@dataclass(frozen=True, slots=True)
class IntervalAxis:
    """Where the intervals of a run lie on the monotonic clock."""

    origin_ns: int  #: start of interval 0
    step_ns: int  #: every interval's length

    @classmethod
    def of(cls, origin_ns: int, interval_s: float) -> IntervalAxis:
        return cls(origin_ns, max(1, round(interval_s * 1e9)))

    def index(self, t_ns: int) -> int:
        """The interval ``t_ns`` lies in (times before the origin: 0)."""
        return max(0, (t_ns - self.origin_ns) // self.step_ns)

    def start_ns(self, k: int) -> int:
        return self.origin_ns + k * self.step_ns

    def end_ns(self, k: int) -> int:
        return self.origin_ns + (k + 1) * self.step_ns


@dataclass(slots=True)
class IntervalCounts:
    """What an interval counts besides its latencies; addable across processes."""

    delivered_all: int = 0  #: intact first deliveries that arrived in it, warm-up included
    duplicated: int = 0  #: faults observed in it (by arrival)
    reordered: int = 0
    corrupted: int = 0
    late_reads: int = 0  #: reads recorded in it although stamped in an interval already closed
    disconnects: int = 0  #: receivers the server disconnected in it

    def add(self, other: IntervalCounts) -> None:
        self.delivered_all += other.delivered_all
        self.duplicated += other.duplicated
        self.reordered += other.reordered
        self.corrupted += other.corrupted
        self.late_reads += other.late_reads
        self.disconnects += other.disconnects


@dataclass(frozen=True, slots=True)
class ClosedInterval:
    """One closed interval of one process: its latencies per label (labels
    without deliveries left out) and its counts."""

    index: int
    labels: dict[str, EncodedHistogram]
    counts: IntervalCounts


@dataclass(slots=True)
class OpenInterval:
    """An interval still being recorded into: one histogram per label."""

    index: int
    hists: list[LatencyHistogram]
    counts: IntervalCounts = field(default_factory=IntervalCounts)


class Marks:
    """The cumulative counters an interval's counts are the differences of:
    the recorder's deliveries and the trackers' fault sink."""

    __slots__ = ("delivered_all", "faults")

    def __init__(self) -> None:
        self.delivered_all = 0
        self.faults = [0, 0, 0]

    def settle(self, counts: IntervalCounts, delivered_all: int, faults: list[int]) -> None:
        """Add what happened since the last mark to ``counts``."""
        counts.delivered_all += delivered_all - self.delivered_all
        self.delivered_all = delivered_all
        if faults != self.faults:
            counts.duplicated += faults[0] - self.faults[0]
            counts.reordered += faults[1] - self.faults[1]
            counts.corrupted += faults[2] - self.faults[2]
            self.faults = list(faults)
