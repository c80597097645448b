"""The parent's side of the time axis: every worker's intervals merged, exactly,
into the run's series, handed to the live outputs as each one completes.

Every worker sends every interval from 0 on (:class:`~bench.swarm.messages.Interval`);
once all of them have sent interval ``k`` it is merged (HDR counts add, so the
series is exact and sums to the run's histograms), summed up in an
:class:`~bench.results.schema.IntervalSection` and shown to the observers
(:class:`IntervalObserver`: the live view, JSON lines, Prometheus, OTLP,
thresholds; :mod:`bench.live`).  At the end of the run the sections get what
only the end knows (the messages sent per interval and the deliveries lost),
and become the document's ``intervals``.

The parent keeps, per interval, the merged histograms in their compressed form
and the section (a few KiB): what it holds grows with the intervals it keeps,
and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bench.measure.integrity import IntegrityCounts
from bench.measure.intervals import IntervalAxis, IntervalCounts
from bench.measure.sampler import ResourceSampler
from bench.measure.stats import LatencyHistogram
from bench.measure.thresholds import Threshold
from bench.results.schema import Histogram, IntervalLabel, IntervalSection, IntervalSeries, RunDocument
from bench.swarm.messages import Interval
from bench.swarm.plan import Schedule
from bench.swarm.timeline import MessageTimes
from bench.workload import Plan


@dataclass(frozen=True)
class RunInfo:
    """What the observers are told when a run's traffic starts."""

    title: str  #: e.g. "queued, 100 clients"
    clients: int
    interval_s: float
    warmup_s: float  #: the measured messages begin here (seconds after the first send)
    send_end_s: float  #: the last intended send


@dataclass
class IntervalView:
    """One merged interval, as the observers see it."""

    section: IntervalSection  #: its numbers (``sent`` and ``lost`` None: known at the end)
    #: its latencies per label ("" with one label); emptied and used again for the next interval
    hists: dict[str, LatencyHistogram]
    totals: dict[str, LatencyHistogram]  #: every measured delivery so far, per label
    observed: IntegrityCounts  #: the faults seen so far (``lost`` 0: known at the end)
    delivered: int  #: measured deliveries so far
    owed: int  #: deliveries owed so far by the timetable (an upper bound until the end)


class IntervalObserver(Protocol):
    """A live output of a run's intervals (:mod:`bench.live`)."""

    def run_started(self, run: RunInfo) -> None: ...

    def interval(self, view: IntervalView) -> str | None:
        """One more interval; a text says why the run must stop now (a
        threshold with abort-on-fail was crossed), None to go on."""
        ...

    def run_finished(self, doc: RunDocument) -> None: ...


@dataclass(frozen=True)
class Outputs:
    """What a run shows and checks while it goes (:func:`bench.live.outputs`
    builds it from the command line)."""

    observers: Sequence[IntervalObserver] = ()
    #: checked at the end; those marked abort-on-fail after every measured interval too
    thresholds: Sequence[Threshold] = ()
    #: where the run's status line goes instead of stderr (a live view that draws it)
    status: Callable[[str], None] | None = None


def histogram_doc(hist: LatencyHistogram) -> Histogram:
    """A histogram as the document keeps it (HDR's interchange format)."""
    return {"format": "hdrhistogram-v2-base64", "unit": "us", "data": hist.encode(), "clamped": hist.clamped}


@dataclass
class _Record:
    section: IntervalSection
    histogram: Histogram
    labels: dict[str, tuple[int, Histogram]] = field(default_factory=dict)  #: label -> (count, histogram)


class SeriesMerger:
    """The run's intervals, merged as they complete (see the module docstring)."""

    def __init__(self, workers: int, observers: Sequence[IntervalObserver], sampler: ResourceSampler | None) -> None:
        self.workers = workers
        self.observers = list(observers)
        self.sampler = sampler
        self.abort: str | None = None  #: why an observer asked the run to stop
        self.axis: IntervalAxis | None = None
        self._times: MessageTimes | None = None
        self._plan: Plan | None = None
        self._sizes: dict[int, int] = {}
        self._schedule: Schedule | None = None
        self._origin_unix_s = 0.0
        self._parts: dict[int, dict[int, Interval]] = {}
        self._next = 0
        self._records: list[_Record] = []
        self._totals: dict[str, LatencyHistogram] = {}
        self._scratches: dict[str, LatencyHistogram] = {}
        self._observed = IntegrityCounts()
        self._delivered = 0
        self._owed = 0

    # -- the run -------------------------------------------------------------------

    def start(self, schedule: Schedule, interval_s: float, plan: Plan, sizes: dict[int, int], info: RunInfo) -> None:
        """Traffic begins: interval 0 starts at ``schedule.t0_ns``; ``sizes``:
        stream id -> receivers present that must get each of its messages."""
        self.axis = IntervalAxis.of(schedule.t0_ns, interval_s)
        self._times = MessageTimes(schedule, self.axis)
        self._schedule, self._plan, self._sizes = schedule, plan, sizes
        self._origin_unix_s = time.time() - (time.monotonic_ns() - schedule.t0_ns) / 1e9
        for observer in self.observers:
            observer.run_started(info)

    def add(self, part: Interval) -> None:
        """One worker's interval; merges every interval all workers have sent."""
        self._parts.setdefault(part.index, {})[part.worker] = part
        while len(self._parts.get(self._next, ())) >= self.workers:
            self._emit(self._next, None)

    def finish(self, end_ns: int) -> None:
        """Every worker has closed its last interval (they all have answered
        ``Finish``): merge what is left; the last interval ends at ``end_ns``."""
        last = max(self._parts, default=self._next - 1)
        while self._next <= last:
            self._emit(self._next, end_ns)

    def run_finished(self, doc: RunDocument) -> None:
        for observer in self.observers:
            observer.run_finished(doc)

    # -- merging -----------------------------------------------------------------------

    def _emit(self, k: int, end_ns: int | None) -> None:
        axis, times = self.axis, self._times
        assert axis is not None and times is not None
        self._next = k + 1
        hists: dict[str, LatencyHistogram] = {}
        counts = IntervalCounts()
        lag = self._scratch(" lag")
        for part in self._parts.pop(k, {}).values():
            for key, encoded in part.labels.items():
                if key not in hists:
                    hists[key] = self._scratch(key)
                hists[key].merge(encoded.decode())
            counts.add(part.counts)
            if part.receive_lag.data:
                lag.merge(part.receive_lag.decode())
        merged = hists[""] if list(hists) == [""] else self._scratch(" merged")
        for key, hist in hists.items():
            if hist is not merged:
                merged.merge(hist)
            self._totals.setdefault(key, LatencyHistogram()).merge(hist)
        start = axis.start_ns(k)
        length_ns = axis.step_ns if end_ns is None else max(1, min(axis.step_ns, end_ns - start))
        section = self._section(k, length_ns, merged, counts, lag)
        if len(hists) > 1 or any(hists):
            section["labels"] = [
                {"label": key, "delivered": h.count, "latency_us": h.summary()} for key, h in sorted(hists.items())
            ]
        record = _Record(section, histogram_doc(merged))
        if "labels" in section:
            record.labels = {key: (h.count, histogram_doc(h)) for key, h in hists.items()}
        self._records.append(record)
        self._observed.add(IntegrityCounts(0, counts.duplicated, counts.reordered, counts.corrupted))
        self._delivered += merged.count
        self._owed += section["owed"]
        view = IntervalView(section, hists, self._totals, self._observed, self._delivered, self._owed)
        for observer in self.observers:
            reason = observer.interval(view)
            if reason is not None and self.abort is None:
                self.abort = reason

    def _scratch(self, name: str) -> LatencyHistogram:
        """An emptied histogram kept for this use from interval to interval (one
        allocation of its counts per run, not per interval: see LatencyHistogram.reset)."""
        hist = self._scratches.get(name)
        if hist is None:
            hist = self._scratches[name] = LatencyHistogram()
        else:
            hist.reset()
        return hist

    def _section(
        self, k: int, length_ns: int, merged: LatencyHistogram, counts: IntervalCounts, lag: LatencyHistogram
    ) -> IntervalSection:
        axis, schedule = self.axis, self._schedule
        assert axis is not None and schedule is not None
        start = axis.start_ns(k)
        length_s = length_ns / 1e9
        server_cpu = server_rss = harness_cpu = None
        if self.sampler is not None:
            lo, hi = start / 1e9, (start + length_ns) / 1e9
            server_cpu, server_rss = self.sampler.between("server", lo, hi)
            harness_cpu, _ = self.sampler.between("worker", lo, hi)
        scheduled = {sid: self._scheduled_of(sid) for sid in self._sizes}
        messages, owed = self._in_interval(k, scheduled)
        return {
            "index": k,
            "start_s": round((start - schedule.t0_ns) / 1e9, 6),
            "length_s": round(length_s, 6),
            "phase": self._phase(start),
            "delivered": merged.count,
            "delivered_all": counts.delivered_all,
            "per_s": round(counts.delivered_all / length_s, 1),
            "scheduled": messages,
            "sent": None,
            "owed": owed,
            "lost": None,
            "duplicated": counts.duplicated,
            "reordered": counts.reordered,
            "corrupted": counts.corrupted,
            "late_reads": counts.late_reads,
            "disconnects": counts.disconnects,
            "latency_us": merged.summary(),
            "receive_lag_us": lag.summary() if lag.count else None,
            "server_cpu_percent": server_cpu,
            "server_rss_bytes": server_rss,
            "harness_cpu_percent": harness_cpu,
        }

    def _phase(self, start_ns: int) -> str:
        schedule = self._schedule
        assert schedule is not None
        if start_ns < schedule.measure_start_ns:
            return "warmup"
        return "drain" if start_ns > schedule.end_ns else "measured"

    def _scheduled_of(self, sid: int) -> int:
        """Messages the timetable gives stream ``sid``."""
        assert self._plan is not None and self._schedule is not None
        stream = self._plan.streams.get(sid)
        return self._schedule.messages_of(stream.slot) if stream is not None else 0

    def _in_interval(self, k: int, counts: Mapping[int, int]) -> tuple[int, int]:
        """Of ``counts`` (stream id -> its first messages, in order): those
        intended in interval ``k``, and the deliveries they owe."""
        times, plan = self._times, self._plan
        assert times is not None and plan is not None
        messages = owed = 0
        for sid, count in counts.items():
            stream = plan.streams.get(sid)
            if stream is None:
                continue
            lo = min(count, times.first_seq(stream.slot, k))
            hi = min(count, times.first_seq(stream.slot, k + 1))
            messages += hi - lo
            owed += (hi - lo) * self._sizes.get(sid, 0)
        return messages, owed

    # -- the document ---------------------------------------------------------------------

    def document(self, sent: Mapping[int, int], lost: Mapping[int, int]) -> IntervalSeries | None:
        """``intervals``, with what the end knows: per interval the messages
        ``sent`` (stream id -> handed to the kernel) intended in it, the
        deliveries they owe, and the deliveries ``lost`` (interval -> count)."""
        schedule, axis = self._schedule, self.axis
        if schedule is None or axis is None:
            return None
        intervals: list[IntervalSection] = []
        for record in self._records:
            section: IntervalSection = {**record.section}
            k = section["index"]
            section["sent"], section["owed"] = self._in_interval(k, sent)
            section["lost"] = lost.get(k, 0)
            section["histogram"] = record.histogram
            if "labels" in section:
                section["labels"] = [_with_histogram(part, record.labels) for part in section["labels"]]
            intervals.append(section)
        return {
            "interval_s": axis.step_ns / 1e9,
            "assigned_by": "arrival",
            "origin_unix_s": round(self._origin_unix_s, 6),
            "warmup_s": round((schedule.measure_start_ns - schedule.t0_ns) / 1e9, 6),
            "send_end_s": round((schedule.end_ns - schedule.t0_ns) / 1e9, 6),
            "intervals": intervals,
        }


def _with_histogram(part: IntervalLabel, hists: Mapping[str, tuple[int, Histogram]]) -> IntervalLabel:
    got = hists.get(part["label"])
    return {**part, "histogram": got[1]} if got is not None else part
