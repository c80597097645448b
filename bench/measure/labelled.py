"""Latency histograms keyed by label (:mod:`bench.workload.labels`).

A worker's receivers record each measured delivery's latency under the label
of its (receiver, stream) pair; the run's one distribution is the exact
merge of the labels' histograms (HDR counts add).  :class:`Labelled` holds
them for the recorder (:mod:`bench.measure.recorder`), which hands it
latencies two ways, as cheaply as it records them without labels:

* the block path: a numpy array of latencies and the array of their streams
  (:meth:`Labelled.record_array`: one table lookup, then one
  ``record_array`` per label present);
* the per-line path: :meth:`Labelled.route` gives, for one receiver, a dict
  stream id -> the pending list of its label, so a line costs one dict
  lookup; the lists are recorded in batches (:meth:`Labelled.flush`).

With one label (no dimension applies) and one room there is nothing to
route: :attr:`Labelled.single` is true and the recorder appends to list 0
directly.

Time is one more dimension (:mod:`bench.measure.intervals`): once given an
axis (:meth:`Labelled.start`), :attr:`Labelled.hists` are the histograms of
the interval being recorded into (:meth:`Labelled.at` switches them, once per
read that falls outside it), closed intervals are handed on
(:meth:`Labelled.close`) and added to :attr:`Labelled.totals`, the run's
histograms per label.  Without an axis ``hists`` are the totals.

:class:`EncodedHistogram` is a histogram as it travels between processes
and into the result document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.measure.intervals import ClosedInterval, IntervalAxis, IntervalCounts, Marks, OpenInterval
from bench.measure.stats import LatencyHistogram


@dataclass(frozen=True, slots=True)
class EncodedHistogram:
    """An HDR histogram in its compressed base64 form, with its clamped count."""

    data: str = ""
    clamped: int = 0

    @classmethod
    def of(cls, hist: LatencyHistogram) -> EncodedHistogram:
        return cls(hist.encode(), hist.clamped)

    def decode(self) -> LatencyHistogram:
        return LatencyHistogram.decode(self.data, self.clamped)


class Labelled:
    """One worker's latency histograms by label.  ``keys``: label index ->
    key; ``routes``: receiver id -> stream id -> label index (empty with a
    single label)."""

    __slots__ = (
        "_current",
        "_idle",
        "_lists",
        "_marks",
        "_next_close",
        "_open",
        "_spare",
        "_tables",
        "axis",
        "faults",
        "hists",
        "keys",
        "pending",
        "routes",
        "single",
        "strays",
        "totals",
    )

    def __init__(self, keys: list[str] | None = None, routes: dict[int, dict[int, int]] | None = None) -> None:
        self.keys = list(keys) if keys else [""]
        self.routes = routes or {}
        #: one label and nothing to route (with several rooms the routes
        #: also tell the streams a receiver hears from strays)
        self.single = len(self.keys) == 1 and not self.routes
        self.hists = [LatencyHistogram() for _ in self.keys]
        #: the per-line path's latencies, not yet in their histograms
        self.pending: list[list[int]] = [[] for _ in self.keys]
        self._lists: dict[int, dict[int, list[int]]] = {}  # receiver -> stream -> pending list
        self._tables: dict[int, Any] = {}  # receiver -> numpy: stream -> label index (-1: not heard)
        #: measured deliveries of a stream the receiver is not in the audience of
        self.strays = 0
        #: the run's histograms per label: ``hists`` itself until an axis is given
        self.totals = self.hists
        #: cumulative faults observed (duplicated, reordered, corrupted): the
        #: trackers' sink (:class:`bench.measure.integrity.IntegrityTracker`)
        self.faults = [0, 0, 0]
        self.axis: IntervalAxis | None = None
        self._open: dict[int, OpenInterval] = {}
        self._current: OpenInterval | None = None
        self._next_close = 0  # the oldest interval not closed yet
        self._marks = Marks()
        #: closed intervals' histograms, emptied, for the next ones: a worker
        #: allocates a few sets for a whole run (see LatencyHistogram.reset)
        self._spare: list[list[LatencyHistogram]] = []
        self._idle: list[LatencyHistogram] = []  # hists between closing the current interval and the next at()

    def route(self, own: int) -> dict[int, list[int]]:
        """For receiver ``own``: stream id -> the pending list of its label
        (streams it does not hear are absent)."""
        lists = self._lists.get(own)
        if lists is None:
            pending = self.pending
            lists = self._lists[own] = {sid: pending[at] for sid, at in self.routes.get(own, {}).items()}
        return lists

    def pending_count(self) -> int:
        return sum(map(len, self.pending))

    def record_array(self, own: int, sids: Any, latencies: Any) -> None:
        """The block path: ``latencies[i]`` (numpy) is a delivery of stream ``sids[i]`` to ``own``."""
        if self.single:
            self.hists[0].record_array(latencies)
            return
        import numpy as np

        table = self._tables.get(own)
        if table is None:
            route = self.routes.get(own, {})
            table = np.full(max(route, default=0) + 1, -1, dtype=np.int64)
            if route:
                table[list(route)] = list(route.values())
            self._tables[own] = table
        inside = sids < len(table)
        at = np.where(inside, table[np.minimum(sids, len(table) - 1)], -1)
        for index in np.unique(at).tolist():
            if index < 0:
                self.strays += int(np.count_nonzero(at < 0))
                continue
            self.hists[index].record_array(latencies[at == index])

    def flush(self) -> None:
        """Record the per-line path's pending latencies."""
        for pending, hist in zip(self.pending, self.hists, strict=True):
            if pending:
                hist.record_list(pending)
                pending.clear()

    def by_label(self) -> list[LatencyHistogram]:
        """The run's histograms per label so far: the totals, with the open
        intervals added (in copies) when there are any."""
        self.flush()
        if not self._open:
            return self.totals
        out = []
        for i, total in enumerate(self.totals):
            hist = LatencyHistogram()
            hist.merge(total)
            for interval in self._open.values():
                hist.merge(interval.hists[i])
            out.append(hist)
        return out

    def merged(self) -> LatencyHistogram:
        """Every label in one histogram (exact: HDR counts add)."""
        hists = self.by_label()
        if self.single:
            return hists[0]
        hist = LatencyHistogram()
        for h in hists:
            hist.merge(h)
        return hist

    def encoded(self) -> dict[str, EncodedHistogram]:
        """Label key -> its histogram, for the worker's result."""
        return {key: EncodedHistogram.of(h) for key, h in zip(self.keys, self.by_label(), strict=True)}

    # -- the time axis ------------------------------------------------------------

    def start(self, axis: IntervalAxis) -> None:
        """Record by interval of ``axis`` from now on; what was recorded
        before stays in the totals."""
        self.flush()
        self.axis = axis
        self.totals = self.hists
        self._open = {}
        self._current = None
        self._next_close = 0

    def at(self, now: int, delivered_all: int) -> tuple[int, int]:
        """Record into the interval of arrival time ``now`` (``delivered_all``:
        the recorder's count so far, for the intervals' counts); returns its
        bounds, for the recorder to check the next reads against."""
        axis = self.axis
        assert axis is not None
        self._settle(delivered_all)
        k = axis.index(now)
        late = k < self._next_close
        if late:  # stamped in a closed interval: the oldest open one takes it
            k = self._next_close
        interval = self._open.get(k)
        if interval is None:
            hists = self._spare.pop() if self._spare else [LatencyHistogram() for _ in self.keys]
            interval = self._open[k] = OpenInterval(k, hists)
        if late:
            interval.counts.late_reads += 1
        self._current = interval
        self.hists = interval.hists
        return axis.start_ns(k), axis.end_ns(k)

    def close(self, until_ns: int, delivered_all: int, final: bool = False) -> list[ClosedInterval]:
        """Close every interval that ended by ``until_ns`` (``final``: every
        one opened so far), in order, empty ones included; each is added to
        the totals and returned encoded."""
        axis = self.axis
        if axis is None:
            return []
        self._settle(delivered_all)
        last = max(self._open, default=self._next_close - 1) if final else axis.index(until_ns) - 1
        closed = []
        while self._next_close <= last:
            k = self._next_close
            interval = self._open.pop(k, None)
            if interval is None:
                closed.append(ClosedInterval(k, {}, IntervalCounts()))
            else:
                labels = {}
                for key, total, hist in zip(self.keys, self.totals, interval.hists, strict=True):
                    if hist.count:
                        total.merge(hist)
                        labels[key] = EncodedHistogram.of(hist)
                closed.append(ClosedInterval(k, labels, interval.counts))
                if interval is self._current:
                    self._current = None
                    if not self._idle:
                        self._idle = [LatencyHistogram() for _ in self.keys]
                    self.hists = self._idle  # until the next at(): nothing is recorded meanwhile
                for hist in interval.hists:
                    hist.reset()
                self._spare.append(interval.hists)
            self._next_close += 1
        return closed

    def _settle(self, delivered_all: int) -> None:
        """The counters' growth since the last switch goes to the current interval."""
        self.flush()
        current = self._current
        if current is not None:
            self._marks.settle(current.counts, delivered_all, self.faults)
        else:
            self._marks.delivered_all = delivered_all
            self._marks.faults = list(self.faults)
