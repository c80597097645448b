"""The Locust users' receive path: the swarm's, per process.

Every user of a process reads its connection through one
:class:`~bench.net.rx.StampedReader` (one reused buffer, the kernel's receive
stamp of each read on the monotonic clock, the read lag apart: gevent's
socket passes ``recvmsg_into`` and its ancillary data through) and hands the
bytes to a :class:`~bench.net.rx.ReceivePath` over the process's one
:class:`~bench.measure.recorder.DeliveryRecorder`: the adapter's deliveries,
the recorder's checks, integrity per (receiver, sender) in the user's
tracker.  So a Locust user is measured exactly as a swarm receiver is.

Locust users come and go on every worker, so the recorder learns senders as
their first probe arrives: a sender id names its process (its *origin*) and
its name (:func:`bench.loadtest.support.name_of`).  Latencies wait in one
list per origin (:class:`ClockLabels`) until the block is done; then each
list goes, through the process's :class:`~bench.loadtest.clocks.ClockTable`,
to ``clock=same`` as it is, to ``clock=corrected`` moved by the two clocks'
offsets, or -- offset unknown, or its error bound over ``--max-clock-error``
-- nowhere: counted, not measured.  In the same step the block's deliveries
are added to Locust's ``FANOUT`` rows (:mod:`bench.loadtest.locuststats`),
so Locust's count and the exact histograms always agree; and, with a time
axis (:attr:`ClockLabels.timeline`, :mod:`bench.loadtest.timeline`), into the
interval of the flush (a round of reads: at most its 250 us and the read lag
after the kernel's stamps).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

from bench.loadtest.clocks import DEFAULT_MAX_CLOCK_ERROR_MS, OVER_BOUND, ClockTable, Correction, clock_key
from bench.loadtest.support import clock_labels, name_of, origin_of, process_origin
from bench.loadtest.timeline import IntervalRecorder
from bench.measure.labelled import EncodedHistogram, Labelled
from bench.measure.recorder import DeliveryRecorder
from bench.measure.stats import LatencyHistogram
from bench.net.rx import RECV_BYTES, StampedReader

#: Label keys of the Locust users' deliveries (``clock=same``, ``clock=corrected``).
SAME_KEY, CORRECTED_KEY = clock_labels()
#: A correction is reused this long (ns) before it is worked out again (its
#: bound is worked out for the end of that time, so it never shrinks).
CORRECTION_TTL_NS = 100_000_000
#: Latencies are added to the exact histograms in batches of this many (one
#: numpy step each, ~0.1 ms at this size: a step stalls the receive loop, so
#: not 4,096's ~0.3 ms); a report or the end of the test adds what is left.
BATCH = 1024


class Rows(Protocol):
    """Where a block's deliveries are counted besides the exact histograms
    (Locust's statistics: :class:`bench.loadtest.locuststats.FanoutRows`)."""

    def delivered(self, latencies_us: list[int], length: int) -> None: ...

    def unmeasured(self, count: int, length: int) -> None: ...


@dataclass
class ClockCounts:
    """The clock side of what a process measured (deltas between reports)."""

    corrected: int = 0  #: deliveries measured under ``clock=corrected``
    bound_max_ns: int = 0  #: the largest error bound any of them had
    unknown: int = 0  #: counted, not measured: the sender's clock offset was not known yet
    over_bound: int = 0  #: counted, not measured: the offsets' error bound was over --chat-max-clock-error

    def add(self, other: ClockCounts) -> None:
        self.corrected += other.corrected
        self.bound_max_ns = max(self.bound_max_ns, other.bound_max_ns)
        self.unknown += other.unknown
        self.over_bound += other.over_bound


class ClockLabels(Labelled):
    """The recorder's :class:`Labelled` for the Locust users: one pending
    list per sender origin, shared by every receiver of the process (they
    are all on its clock), flushed through the clock table after every block."""

    __slots__ = (
        "_batches",
        "_cache",
        "_origin_lists",
        "_route",
        "_slots",
        "clock",
        "max_error_ns",
        "rows",
        "table",
        "timeline",
    )

    def __init__(self, table: ClockTable) -> None:
        super().__init__([SAME_KEY, CORRECTED_KEY])
        self.table = table
        self.max_error_ns = int(DEFAULT_MAX_CLOCK_ERROR_MS * 1e6)
        self.rows: Rows | None = None
        #: the measured latencies by interval of arrival (None: no time axis)
        self.timeline: IntervalRecorder | None = None
        self.clock = ClockCounts()
        self._slots: dict[int, list[int]] = {}  # origin -> latencies (us) not flushed yet
        #: the same lists (``pending_count``, twice a read, sums them: ~60 ns
        #: with one origin, against ~300 over the dict's values)
        self._origin_lists: list[list[int]] = []
        self._route: dict[int, list[int]] = {}  # sender id -> its origin's list
        self._batches: list[list[int]] = [[], []]  # per label: flushed, not in its histogram yet
        self._cache: dict[int, tuple[int, int, Correction | str]] = {}  # origin -> (version, until, correction)

    # -- what the recorder calls -----------------------------------------------------

    def add_sender(self, sid: int) -> None:
        """A sender the recorder just learned: its latencies go to its origin's list."""
        self._route[sid] = self._slot(origin_of(sid))

    def route(self, own: int) -> dict[int, list[int]]:
        return self._route

    def pending_count(self) -> int:
        lists = self._origin_lists
        return len(lists[0]) if len(lists) == 1 else sum(map(len, lists))

    def record_array(self, own: int, sids: Any, latencies: Any) -> None:
        import numpy as np

        origins = sids >> 32
        for origin in np.unique(origins).tolist():
            self._slot(origin).extend(latencies[origins == origin].tolist())

    def _slot(self, origin: int) -> list[int]:
        """The pending list of ``origin``'s latencies, made the first time."""
        slot = self._slots.get(origin)
        if slot is None:
            slot = self._slots[origin] = []
            self._origin_lists.append(slot)
        return slot

    def flush(self, length: int = 0) -> None:
        """Every origin's waiting latencies to their label (or counted as not
        measured), and to Locust's rows (``length`` bytes each)."""
        now = unix = 0
        for origin, pending in self._slots.items():
            if not pending:
                continue
            if not now:
                now, unix = time.monotonic_ns(), time.time_ns()
            correction = self._correction(origin, now)
            if isinstance(correction, str):
                self._unmeasured(correction, len(pending), length)
            elif correction.same:
                self._add(0, pending, length, unix)
            else:
                shift = (correction.shift_ns + 500) // 1000
                self._add(1, [v - shift for v in pending], length, unix)
                self.clock.corrected += len(pending)
                self.clock.bound_max_ns = max(self.clock.bound_max_ns, correction.bound_ns)
            pending.clear()

    # -- flushing ------------------------------------------------------------------------

    def _correction(self, origin: int, now: int) -> Correction | str:
        version = self.table.version
        cached = self._cache.get(origin)
        if cached is not None and cached[0] == version and now < cached[1]:
            return cached[2]
        until = now + CORRECTION_TTL_NS
        correction = self.table.correction(origin, until, self.max_error_ns)
        self._cache[origin] = (version, until, correction)
        return correction

    def _add(self, label: int, values: list[int], length: int, arrival_unix_ns: int) -> None:
        batch = self._batches[label]
        batch += values
        if self.rows is not None:
            self.rows.delivered(values, length)
        if self.timeline is not None:
            self.timeline.record_many(values, arrival_unix_ns)
        if len(batch) >= BATCH:
            self.hists[label].record_list(batch)
            batch.clear()

    def _unmeasured(self, reason: str, count: int, length: int) -> None:
        if reason == OVER_BOUND:
            self.clock.over_bound += count
        else:
            self.clock.unknown += count
        if self.rows is not None:
            self.rows.unmeasured(count, length)

    # -- the histograms ------------------------------------------------------------------

    def settle(self) -> None:
        """Every latency so far in its histogram."""
        self.flush()
        for batch, hist in zip(self._batches, self.hists, strict=True):
            if batch:
                hist.record_list(batch)
                batch.clear()

    def merged(self) -> LatencyHistogram:
        self.settle()
        hist = LatencyHistogram()
        for h in self.hists:
            hist.merge(h)
        return hist

    def encoded(self) -> dict[str, EncodedHistogram]:
        self.settle()
        return {key: EncodedHistogram.of(h) for key, h in zip(self.keys, self.hists, strict=True)}

    def take(self) -> tuple[dict[str, LatencyHistogram], ClockCounts]:
        """The histograms and clock counts since the last take (a worker's
        report), starting afresh."""
        self.settle()
        hists = dict(zip(self.keys, self.hists, strict=True))
        self.hists = [LatencyHistogram() for _ in self.keys]
        clock, self.clock = self.clock, ClockCounts()
        return hists, clock


class Receiving:
    """One process's receive side: the reader, the recorder, the clocks."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.table = ClockTable(process_origin(), clock_key())
        self.labels = ClockLabels(self.table)
        self.recorder = DeliveryRecorder({}, labelled=self.labels, resolve=self._resolve)
        self.reader = StampedReader(kernel=True, buffer_bytes=RECV_BYTES)

    def _resolve(self, sid: int) -> str | None:
        """A sender not seen yet: the name it must arrive under (every sender
        id names one; :func:`name_of`), and its latencies' list."""
        self.labels.add_sender(sid)
        return name_of(sid)

    def housekeeping(self, now_unix_ns: int) -> None:
        """Every 100 ms (the receive loop; and before a take): the reader's
        clock offset refreshed and its read lags moved into their histograms
        (so none pile up in a list), the interval's share to the time axis."""
        reader = self.reader
        reader.housekeeping()
        if reader.interval_lag.count:
            timeline = self.labels.timeline
            if timeline is not None:
                timeline.record_lags(reader.interval_lag, now_unix_ns)
            reader.interval_lag.reset()

    def take_read_lag(self) -> LatencyHistogram:
        """The read lags since the last take."""
        self.housekeeping(time.time_ns())
        lag, self.reader.receive_lag = self.reader.receive_lag, LatencyHistogram()
        return lag


_receiving: Receiving | None = None


def receiving() -> Receiving:
    """This process's receive side (a forked ``--processes`` child gets its own)."""
    global _receiving
    if _receiving is None or _receiving.pid != os.getpid():
        _receiving = Receiving()
    return _receiving
