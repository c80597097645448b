"""The time axis for the Locust path: interval histograms across Locust's processes,
their ``.hlog`` and JSON lines, and the thresholds -- what the Locust users call.

No Locust import here (so it is tested without Locust, and the users wire it
where their HDR merge is, :mod:`bench.loadtest.hdr`):

* every process keeps an :class:`IntervalRecorder`: ``record(latency_us,
  arrival_unix_ns)`` per delivery (``record_many`` for a batch that arrived
  together: the Locust users' round of reads), into the interval of its
  *arrival* (as the swarm does: :mod:`bench.measure.intervals`).  Intervals are aligned to the
  Unix epoch (interval ``k`` covers ``[k * step, (k + 1) * step)``), so
  processes on different machines agree on them without talking, given
  synchronised clocks;
* a worker ships its closed intervals with each ``report_to_master``
  (``data[REPORT_KEY] = recorder.pack(recorder.close(time.time_ns()))``);
  a local run hands them to its own merge;
* the master (or the local process) keeps an :class:`IntervalMerge`:
  ``merge.add(parts)`` merges them exactly (HDR counts add), whenever they
  come; at the end ``merge.sections()`` is the series (the swarm document's
  interval fields that the Locust path knows), ``merge.write_hlog(path)``
  its HdrHistogram interval log, ``merge.write_jsonl(path)`` its JSON lines,
  and :func:`check_thresholds` checks ``--threshold`` texts against the
  merged figures, by label where a selector names one (exit code 99 when
  one fails, as the swarm and k6 do).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NotRequired, TypedDict

from bench.measure.intervals import CLOSE_GRACE_NS, DEFAULT_INTERVAL_S, IntervalAxis
from bench.measure.stats import LatencyHistogram
from bench.measure.thresholds import COUNT_METRICS, Observed, Verdict, check, parse_all
from bench.results.hlog import interval_log, write_text
from bench.results.schema import IntervalSection
from bench.workload.labels import label_values

#: Key of a worker's closed intervals in Locust's report message.
REPORT_KEY = "chatbench_intervals"
#: ``record_many``'s latencies wait in a list until this many (one numpy step
#: each: ~50 us plus ~50 ns a value, so ~0.1 ms here, ~0.3 ms at 4,096, in
#: which the receive loop reads nothing): a round of reads adds a few dozen.
BATCH = 1024


class PackedInterval(TypedDict):
    """One closed interval of one process, as Locust's messages carry it."""

    index: int  #: epoch-aligned: the interval starts at index * interval_s
    interval_s: float
    histogram: str  #: HDR's compressed base64 (empty: no delivery)
    count: int
    #: the process's read lags (kernel stamp to read, us) in the interval, HDR
    #: base64 (empty: no stamped read; absent from an older worker)
    read_lag: NotRequired[str]


def _hist_at(hists: dict[int, LatencyHistogram], k: int) -> LatencyHistogram:
    """Interval ``k``'s histogram, made the first time (not ``setdefault``,
    which builds one to throw away on every call: ~100 us each, and the
    receive loop asks every 100 ms)."""
    hist = hists.get(k)
    if hist is None:
        hist = hists[k] = LatencyHistogram()
    return hist


class IntervalRecorder:
    """One process's interval histograms (see the module docstring)."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.axis = IntervalAxis.of(0, interval_s)
        self.interval_s = interval_s
        self._open: dict[int, LatencyHistogram] = {}
        self._pending: dict[int, list[int]] = {}  # interval -> latencies not in its histogram yet
        self._lags: dict[int, LatencyHistogram] = {}  # interval -> read lags

    def record(self, latency_us: int, arrival_unix_ns: int) -> None:
        """One delivery that arrived at ``arrival_unix_ns`` (``time.time_ns()``)."""
        k = self.axis.index(arrival_unix_ns)
        hist = self._open.get(k)
        if hist is None:
            hist = self._open[k] = LatencyHistogram()
        hist.record(latency_us)

    def record_many(self, latencies_us: list[int], arrival_unix_ns: int) -> None:
        """Deliveries that arrived together at ``arrival_unix_ns`` (recorded
        in batches: the same histograms as :meth:`record` each)."""
        k = self.axis.index(arrival_unix_ns)
        pending = self._pending.get(k)
        if pending is None:
            pending = self._pending[k] = []
            _hist_at(self._open, k)
        pending += latencies_us
        if len(pending) >= BATCH:
            self._open[k].record_list(pending)
            pending.clear()

    def record_lags(self, lags: LatencyHistogram, now_unix_ns: int) -> None:
        """Read lags (us) taken at ``now_unix_ns``, into its interval (the
        receive loop hands them over every 100 ms: an interval's read lag is
        that of the reads made in it, as the swarm's ``receive_lag_us``)."""
        if not lags.count:
            return
        k = self.axis.index(now_unix_ns)
        _hist_at(self._open, k)
        _hist_at(self._lags, k).merge(lags)

    def close(self, now_unix_ns: int, final: bool = False) -> dict[int, LatencyHistogram]:
        """The intervals that ended at least the grace before ``now_unix_ns``
        (``final``: all), taken out."""
        last = self.axis.index(now_unix_ns - CLOSE_GRACE_NS) - 1
        done = sorted(k for k in self._open if final or k <= last)
        for k in done:
            pending = self._pending.pop(k, None)
            if pending:
                self._open[k].record_list(pending)
        return {k: self._open.pop(k) for k in done}

    def pack(self, closed: dict[int, LatencyHistogram]) -> list[PackedInterval]:
        """``closed`` for a Locust message (plain, msgpack-able)."""
        packed: list[PackedInterval] = []
        for k, h in closed.items():
            lag = self._lags.pop(k, None)
            packed.append(
                {
                    "index": k,
                    "interval_s": self.interval_s,
                    "histogram": h.encode(),
                    "count": h.count,
                    "read_lag": lag.encode() if lag is not None else "",
                }
            )
        return packed


class IntervalMerge:
    """Every process's intervals merged into one series (see the module docstring)."""

    def __init__(self) -> None:
        self._hists: dict[int, LatencyHistogram] = {}
        self._lags: dict[int, LatencyHistogram] = {}
        self.interval_s: float | None = None

    def add(self, parts: Iterable[PackedInterval]) -> None:
        """Parts from any process, in any order, the same interval more than once."""
        for part in parts:
            if self.interval_s is None:
                self.interval_s = part["interval_s"]
            elif part["interval_s"] != self.interval_s:
                raise ValueError(f"intervals of {part['interval_s']} s and {self.interval_s} s cannot be merged")
            hist = _hist_at(self._hists, part["index"])
            if part["histogram"]:
                hist.merge(LatencyHistogram.decode(part["histogram"]))
            lag = part.get("read_lag")
            if lag:
                _hist_at(self._lags, part["index"]).merge(LatencyHistogram.decode(lag))

    @property
    def span_s(self) -> float:
        """From the first interval with a delivery to the end of the last (seconds)."""
        if not self._hists or self.interval_s is None:
            return 0.0
        return (max(self._hists) - min(self._hists) + 1) * self.interval_s

    def total(self) -> LatencyHistogram:
        """Every interval merged: the run's histogram."""
        out = LatencyHistogram()
        for hist in self._hists.values():
            out.merge(hist)
        return out

    @property
    def origin_unix_s(self) -> float:
        """When the first interval began (Unix seconds)."""
        return min(self._hists, default=0) * (self.interval_s or 0.0)

    def sections(self) -> list[IntervalSection]:
        """The series, from the first interval with a delivery to the last,
        empty ones included: what the swarm's document has per interval and
        the Locust path knows (latency, deliveries; the rest None or 0)."""
        if not self._hists or self.interval_s is None:
            return []
        step = self.interval_s
        first, last = min(self._hists), max(self._hists)
        out: list[IntervalSection] = []
        for k in range(first, last + 1):
            hist = self._hists.get(k) or LatencyHistogram()
            lag = self._lags.get(k)
            out.append(
                {
                    "index": k - first,
                    "start_s": round((k - first) * step, 6),
                    "length_s": step,
                    "phase": "measured",
                    "delivered": hist.count,
                    "delivered_all": hist.count,
                    "per_s": round(hist.count / step, 1),
                    "scheduled": 0,
                    "sent": None,
                    "owed": 0,
                    "lost": None,
                    "duplicated": 0,
                    "reordered": 0,
                    "corrupted": 0,
                    "late_reads": 0,
                    "disconnects": 0,
                    "latency_us": hist.summary(),
                    "receive_lag_us": lag.summary() if lag is not None and lag.count else None,
                    "server_cpu_percent": None,
                    "server_rss_bytes": None,
                    "harness_cpu_percent": None,
                    "histogram": {
                        "format": "hdrhistogram-v2-base64",
                        "unit": "us",
                        "data": hist.encode(),
                        "clamped": 0,
                    },
                }
            )
        return out

    def write_hlog(self, path: str | Path) -> Path:
        """The series as an HdrHistogram interval log (the swarm's format: :mod:`bench.results.hlog`)."""
        text = interval_log(self.origin_unix_s, self.sections(), "chatbench Locust FANOUT latency, us, by arrival")
        return write_text(path, text)

    def write_jsonl(self, path: str | Path) -> Path:
        """One JSON object per interval (the swarm's ``--out-jsonl`` fields, without the histogram)."""
        p = Path(path)
        with p.open("w", encoding="utf-8") as f:
            for section in self.sections():
                record = {k: v for k, v in section.items() if k != "histogram"}
                f.write(json.dumps({"type": "interval", "run": "locust", **record}, separators=(",", ":")) + "\n")
        return p


def check_thresholds(  # noqa: PLR0913 - the figures the Locust path has, each by name
    texts: Sequence[str],
    latency: LatencyHistogram,
    *,
    delivered: int,
    expected: int | None = None,
    lost: int | None = None,
    duplicated: int = 0,
    reordered: int = 0,
    corrupted: int = 0,
    per_s: float | None = None,
    labels: Mapping[str, LatencyHistogram] | None = None,
) -> list[Verdict]:
    """``--threshold`` texts (the swarm's syntax, :mod:`bench.measure.thresholds`)
    checked against the Locust run's merged figures.  A label selector
    (``p99{clock=corrected}<5ms``) picks the ``labels`` (key -> histogram,
    :mod:`bench.workload.labels`' keys) whose values match, merged: their
    latencies and deliveries (their faults are not kept by label: unknown);
    one that picks none fails.  A :class:`~bench.measure.thresholds.ThresholdError`
    says what is wrong with a text."""
    observed = Observed(latency, delivered, expected, lost, duplicated, reordered, corrupted, per_s)

    def observe(selector: tuple[tuple[str, str], ...]) -> Observed | None:
        if not selector:
            return observed
        wanted = dict(selector)
        picked = [
            hist
            for key, hist in (labels or {}).items()
            if hist.count and all(label_values(key).get(k) == v for k, v in wanted.items())
        ]
        if not picked:
            return None
        merged = LatencyHistogram()
        for hist in picked:
            merged.merge(hist)
        return Observed(merged, merged.count)

    verdicts = check(parse_all(texts), observe)
    # A label's faults are unknown (not 0): such a threshold has nothing to check.
    return [
        Verdict(v.threshold, False, None) if v.threshold.selector and v.threshold.metric in COUNT_METRICS else v
        for v in verdicts
    ]
