"""Deliveries into Locust's statistics, a block at a time.

Locust counts a request when its ``request`` event fires: about 3 us each
(the event hook, Locust's listener, two ``StatsEntry.log`` calls), measured
here as 2.9 us per event, against about 9-15 us per delivery for the whole
of the swarm's receive path -- so one event per fan-out delivery made the
Locust users a third more expensive than the swarm.  The users therefore
add each received block's deliveries to the ``FANOUT broadcast`` row (and
Locust's total) in one step: :func:`log_many` changes a
:class:`locust.stats.StatsEntry` exactly as ``entry.log(value, length)``
for every value would (the same counts, sums, minimum, maximum, per-second
counts and rounded response-time buckets, through Locust's own
``bucket_response_time``; ``tests/bench/loadtest/test_locuststats.py`` checks it
against ``StatsEntry.log`` on the installed Locust).  Everything Locust
builds from its statistics -- the console tables, the CSV files, the web UI,
the master's merge of its workers -- sees them as usual; what does not see
them is a listener of the ``request`` event itself.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from locust import stats as locust_stats

from bench.loadtest.support import FANOUT_NAME, FANOUT_TYPE, UNMEASURED_NAME

#: Up to this many values, bucket them one by one (with spread phases a round
#: of the receive loop holds about one delivery: py-spy put 5% of a Locust
#: process in making a Counter for it).
SMALL_BATCH = 8


def buckets_of(values_ms: list[float]) -> dict[int, int]:
    """Locust's rounded response-time buckets of ``values_ms`` and how many
    fall in each (:func:`log_many`'s ``buckets``: worked out once for the row
    and Locust's total)."""
    bucket = locust_stats.bucket_response_time
    if len(values_ms) <= SMALL_BATCH:
        counts: dict[int, int] = {}
        for value in values_ms:  # a round of one or two reads: a Counter would cost more
            rounded = bucket(value)
            counts[rounded] = counts.get(rounded, 0) + 1
        return counts
    return Counter(map(bucket, values_ms))


def log_many(
    entry: Any, values_ms: list[float] | None, count: int, length: int, buckets: dict[int, int] | None = None
) -> None:
    """``entry.log(v, length)`` for each of ``values_ms``, or ``count`` times
    ``entry.log(None, length)`` (a request without a response time) when it is
    None.  ``entry`` is Locust's StatsEntry (untyped); ``buckets``: the
    values' :func:`buckets_of`, when the caller has them already."""
    if not count:
        return
    now = time.time()
    second = int(now)
    if entry.use_response_times_cache and entry.last_request_timestamp and second > int(entry.last_request_timestamp):
        entry._cache_response_times(second - 1)
    entry.num_requests += count
    entry.num_reqs_per_sec[second] += count
    entry.last_request_timestamp = now
    entry.total_content_length += count * length
    if values_ms is None:
        entry.num_none_requests += count
        return
    total = entry.total_response_time
    for value in values_ms:
        total += value  # one at a time, as StatsEntry.log adds them
    entry.total_response_time = total
    low, high = min(values_ms), max(values_ms)
    entry.min_response_time = low if entry.min_response_time is None else min(entry.min_response_time, low)
    entry.max_response_time = max(entry.max_response_time, high)
    times = entry.response_times
    for rounded, n in (buckets if buckets is not None else buckets_of(values_ms)).items():
        times[rounded] += n


class FanoutRows:
    """The FANOUT rows of one process's Locust statistics."""

    def __init__(self, stats: Any) -> None:  # locust.stats.RequestStats
        self.stats = stats

    def delivered(self, latencies_us: list[int], length: int) -> None:
        """Measured deliveries: ``FANOUT broadcast``, response time in ms."""
        values = [v / 1000.0 for v in latencies_us]
        stats = self.stats
        buckets = buckets_of(values)  # once for both rows
        log_many(stats.entries[(FANOUT_NAME, FANOUT_TYPE)], values, len(values), length, buckets)
        log_many(stats.total, values, len(values), length, buckets)

    def unmeasured(self, count: int, length: int) -> None:
        """Deliveries counted, not timed: ``FANOUT broadcast (clock unmeasured)``."""
        stats = self.stats
        log_many(stats.entries[(UNMEASURED_NAME, FANOUT_TYPE)], None, count, length)
        log_many(stats.total, None, count, length)
