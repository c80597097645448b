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

:class:`EncodedHistogram` is a histogram as it travels between processes
and into the result document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

    __slots__ = ("_lists", "_tables", "hists", "keys", "pending", "routes", "single", "strays")

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

    def merged(self) -> LatencyHistogram:
        """Every label in one histogram (exact: HDR counts add)."""
        self.flush()
        if self.single:
            return self.hists[0]
        hist = LatencyHistogram()
        for h in self.hists:
            hist.merge(h)
        return hist

    def encoded(self) -> dict[str, EncodedHistogram]:
        """Label key -> its histogram, for the worker's result."""
        self.flush()
        return {key: EncodedHistogram.of(h) for key, h in zip(self.keys, self.hists, strict=True)}
