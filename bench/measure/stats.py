"""Latency statistics: HDR histograms, exact merges across processes, percentiles.

Latencies are recorded in microseconds.  An HDR histogram with 3 significant
figures keeps every recorded value to within 0.1% at any magnitude, in a few
tens of KiB, and two histograms merge exactly (counts add), so each worker
process records its own and the parent adds them up: percentiles of the merge
are the percentiles of all deliveries, not an average of averages.
"""

from __future__ import annotations

import ctypes
import operator
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.measure.summaries import Latency

#: Smallest latency the histogram resolves, in microseconds.
LOWEST_US = 1
#: Largest latency recorded, in microseconds (10 minutes).  Longer values are
#: clamped to this and counted in ``clamped`` so the report can say so.
HIGHEST_US = 600_000_000
#: Significant decimal digits kept for every value.
SIGNIFICANT_FIGURES = 3

#: The percentiles every result reports.
REPORTED_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)


class LatencyHistogram:
    """An HDR histogram of latencies in microseconds, with exact merge and a
    compact text encoding for shipping between processes."""

    __slots__ = ("_hist", "_index_tables", "clamped")

    def __init__(self) -> None:
        self._hist = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
        self.clamped = 0
        self._index_tables: tuple[Any, ...] | None = None  # record_array's, for _hist.counts

    # -- recording ------------------------------------------------------------

    def record(self, latency_us: int, count: int = 1) -> None:
        if latency_us < LOWEST_US:
            latency_us = LOWEST_US
        elif latency_us > HIGHEST_US:
            latency_us = HIGHEST_US
            self.clamped += count
        self._hist.record_value(latency_us, count)

    def record_many(self, latencies_us: Iterable[int]) -> None:
        """Record a batch: the same result as :meth:`record` for each value,
        several times cheaper.  Each value's bucket index is computed inline
        (the arithmetic ``HdrHistogram.record_value`` does), equal indexes are
        counted first, so a batch costs one counter update per distinct
        bucket instead of one method call chain per value."""
        values = latencies_us if isinstance(latencies_us, list) else list(latencies_us)
        if not values:
            return
        lo, hi = min(values), max(values)
        if lo < LOWEST_US or hi > HIGHEST_US:
            self.clamped += sum(1 for v in values if v > HIGHEST_US)
            values = [LOWEST_US if v < LOWEST_US else HIGHEST_US if v > HIGHEST_US else v for v in values]
            lo, hi = min(values), max(values)
        h = self._hist
        mask = h.sub_bucket_mask
        unit = h.unit_magnitude
        half_mag = h.sub_bucket_half_count_magnitude
        shift0 = unit + half_mag + 1
        base = h.sub_bucket_half_count
        counts = h.counts
        if len(values) <= 8:  # small batches (light load): counting first costs more than it saves
            for v in values:
                b = (v | mask).bit_length() - shift0
                counts[((b + 1) << half_mag) + (v >> (b + unit)) - base] += 1
        else:
            for index, count in Counter(
                (((b := (v | mask).bit_length() - shift0) + 1) << half_mag) + (v >> (b + unit)) - base for v in values
            ).items():
                counts[index] += count
        h.total_count += len(values)
        if lo < h.min_value:
            h.min_value = lo
        if hi > h.max_value:
            h.max_value = hi

    def record_array(self, latencies_us: Any) -> None:
        """Record a numpy integer array of latencies: exactly what
        :meth:`record` does for each value (same counts, total, min, max and
        ``clamped``), vectorised.  Each value's bucket index is the
        arithmetic of ``HdrHistogram.record_value``, looked up by the bit
        length of ``v | sub_bucket_mask`` (a binary search among the powers
        of two), and the counts of the batch's index range are added to the
        histogram's counts array in one step."""
        import numpy as np

        values = np.asarray(latencies_us, dtype=np.int64)
        if values.size == 0:
            return
        lo, hi = int(values.min()), int(values.max())
        if lo < LOWEST_US or hi > HIGHEST_US:
            self.clamped += int(np.count_nonzero(values > HIGHEST_US))
            values = np.clip(values, LOWEST_US, HIGHEST_US)
            lo, hi = int(values.min()), int(values.max())
        h = self._hist
        tables = self._index_tables
        if tables is None or tables[0] is not h.counts:
            tables = self._index_tables = _index_tables(np, h)
        _, powers, shifts, offsets, counts = tables
        bits = np.searchsorted(powers, values | h.sub_bucket_mask, side="right")  # bit lengths
        index = (values >> shifts[bits]) + offsets[bits]
        first = int(index.min())
        added = np.bincount(index - first)
        counts[first : first + len(added)] += added.astype(counts.dtype, copy=False)
        h.total_count += int(values.size)
        if lo < h.min_value:
            h.min_value = lo
        if hi > h.max_value:
            h.max_value = hi

    def record_list(self, latencies_us: list[int]) -> None:
        """Record a list of latencies in one numpy step (~50 ns a value,
        against ~500 for :meth:`record_many`); values too big for int64 (a
        probe's absurd intended time) go the plain way."""
        if not latencies_us:
            return
        import numpy as np

        try:
            values = np.fromiter(latencies_us, dtype=np.int64, count=len(latencies_us))
        except OverflowError:
            self.record_many(latencies_us)
        else:
            self.record_array(values)

    def reset(self) -> None:
        """Empty, as new, keeping its counts array: a histogram used again
        (an interval's, :mod:`bench.measure.intervals`) costs no allocation of
        its ~170 KiB counts each time, and so leaves no heap fragments behind."""
        h = self._hist
        ctypes.memset(h.counts, 0, ctypes.sizeof(h.counts))
        h.total_count = 0
        h.min_value = sys.maxsize
        h.max_value = 0
        self.clamped = 0

    def merge(self, other: LatencyHistogram) -> None:
        if not other.count:
            return  # hdrh's add() would take the empty histogram's minimum, 0
        self._hist.add(other._hist)
        self.clamped += other.clamped

    # -- reading --------------------------------------------------------------

    @property
    def count(self) -> int:
        return int(self._hist.get_total_count())

    def percentile(self, pct: float) -> int:
        return self.percentiles((pct,))[0] if self.count else 0

    @property
    def max(self) -> int:
        return int(self._hist.get_max_value()) if self.count else 0

    @property
    def min(self) -> int:
        return int(self._hist.get_min_value()) if self.count else 0

    @property
    def mean(self) -> float:
        """What ``HdrHistogram.get_mean_value`` gives (each value at its bucket's
        middle), from the counts with numpy: hdrh walks every bucket in Python,
        ~0.1 s for a wide histogram, too slow for a summary per interval."""
        if not self.count:
            return 0.0
        index, counts = self._recorded()
        lowest, size = self._buckets(index)
        total = sum(map(operator.mul, counts.tolist(), (lowest + (size >> 1)).tolist()))  # exact: Python ints
        return float(total) / self.count

    def percentiles(self, pcts: Sequence[float]) -> list[int]:
        """``HdrHistogram.get_value_at_percentile`` for each of ``pcts`` (the
        highest value of the bucket holding it; the lowest for 0), from the
        counts with numpy in one pass."""
        if not self.count:
            return [0] * len(pcts)
        import numpy as np

        index, counts = self._recorded()
        cumulative = np.cumsum(counts)
        lowest, size = self._buckets(index)
        total = self.count
        out = []
        for pct in pcts:
            target = max(int(min(pct, 100.0) * total / 100 + 0.5), 1)  # hdrh's get_target_count_at_percentile
            at = int(np.searchsorted(cumulative, target, side="left"))
            if at >= len(index):
                out.append(0)
            else:
                out.append(int(lowest[at] + size[at] - 1) if pct else int(lowest[at]))
        return out

    def _recorded(self) -> tuple[Any, Any]:
        """The counts array's non-zero indexes and their counts (numpy)."""
        import numpy as np

        h = self._hist
        tables = self._index_tables
        if tables is None or tables[0] is not h.counts:
            tables = self._index_tables = _index_tables(np, h)
        counts = tables[4]
        index = np.flatnonzero(counts)
        return index, counts[index].astype(np.int64)

    def _buckets(self, index: Any) -> tuple[Any, Any]:
        """For counts indexes: the lowest value of each one's bucket and the
        bucket's width (``HdrHistogram.get_value_from_index`` and the
        equivalent-range size, vectorised)."""
        import numpy as np

        h = self._hist
        half_mag, half, unit = h.sub_bucket_half_count_magnitude, h.sub_bucket_half_count, h.unit_magnitude
        bucket = (index >> half_mag) - 1
        sub = (index & (half - 1)) + half
        first = bucket < 0
        sub = np.where(first, sub - half, sub)
        bucket = np.where(first, 0, bucket)
        return sub << (bucket + unit), np.int64(1) << (bucket + unit)

    def summary(self) -> Latency:
        """Count, min, mean, max and the :data:`REPORTED_PERCENTILES`, in
        microseconds (``percentile_key`` names them)."""
        p50, p90, p95, p99, p999 = self.percentiles(REPORTED_PERCENTILES)
        return {
            "count": self.count,
            "min_us": self.min,
            "mean_us": round(self.mean, 1),
            "p50_us": p50,
            "p90_us": p90,
            "p95_us": p95,
            "p99_us": p99,
            "p99_9_us": p999,
            "max_us": self.max,
            "clamped": self.clamped,
        }

    def cumulative(self, bounds_us: Sequence[float]) -> list[int]:
        """How many values lie at or below each of ``bounds_us``, each value
        taken as its bucket's highest equivalent value: the bucket counts of a
        Prometheus-style histogram."""
        if not self.count:
            return [0] * len(bounds_us)
        import numpy as np

        index, counts = self._recorded()
        lowest, size = self._buckets(index)
        highest = lowest + size - 1
        cumulative = np.cumsum(counts)
        at = np.searchsorted(highest, np.asarray(bounds_us, dtype=np.float64), side="right")
        return [int(cumulative[i - 1]) if i else 0 for i in at.tolist()]

    def distribution(self, ticks_per_half: int = 5) -> list[tuple[float, int]]:
        """(percentile, value_us) points of the HDR percentile distribution,
        as plotted on a log "1/(1-p)" axis."""
        if not self.count:
            return []
        points: list[tuple[float, int]] = []
        for item in self._hist.get_percentile_iterator(ticks_per_half):
            points.append((float(item.percentile_level_iterated_to), int(item.value_iterated_to)))
        return points

    # -- shipping -------------------------------------------------------------

    def encode(self) -> str:
        """Compressed, base64 text (the HdrHistogram interchange format)."""
        return self._hist.encode().decode("ascii") if self.count else ""

    def encoded_always(self) -> str:
        """:meth:`encode`, an empty histogram included (an interval log's
        line needs one)."""
        return str(self._hist.encode().decode("ascii"))

    @classmethod
    def decode(cls, encoded: str, clamped: int = 0) -> LatencyHistogram:
        hist = cls()
        if encoded:
            hist._hist = HdrHistogram.decode(encoded.encode("ascii"))
        hist.clamped = clamped
        return hist


def _index_tables(np: Any, h: HdrHistogram) -> tuple[Any, ...]:
    """For :meth:`LatencyHistogram.record_array`: ``(h.counts, powers, shifts,
    offsets, counts)``.  ``powers[k] = 2**k``, so ``searchsorted(powers, x,
    "right")`` is the bit length ``L`` of ``x``; for a value ``v`` whose
    ``v | sub_bucket_mask`` has bit length ``L`` the counts index is
    ``(v >> shifts[L]) + offsets[L]`` (``HdrHistogram``'s bucket arithmetic:
    bucket ``b = L - (unit_magnitude + sub_bucket_half_count_magnitude + 1)``,
    index ``((b + 1) << half_count_magnitude) + (v >> (b + unit_magnitude))
    - sub_bucket_half_count``); ``counts`` is a numpy view of ``h``'s counts."""
    half_mag = h.sub_bucket_half_count_magnitude
    unit = h.unit_magnitude
    lengths = np.arange(64, dtype=np.int64)
    bucket = np.maximum(lengths - (unit + half_mag + 1), 0)  # lengths below the mask's never occur
    shifts = bucket + unit
    offsets = ((bucket + 1) << half_mag) - h.sub_bucket_half_count
    powers = np.int64(1) << np.arange(63, dtype=np.int64)
    return (h.counts, powers, shifts, offsets, np.ctypeslib.as_array(h.counts))


def percentile_key(pct: float) -> str:
    """50.0 -> "p50_us", 99.9 -> "p99_9_us"."""
    text = f"{pct:g}".replace(".", "_")
    return f"p{text}_us"
