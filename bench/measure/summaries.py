"""What the measurement modules report, as types mypy checks: a histogram's
summary (:meth:`~bench.measure.stats.LatencyHistogram.summary`) and the
sampler's resources (:meth:`~bench.measure.sampler.ResourceSampler.result`).

They are sections of the run document; :mod:`bench.results.schema` re-exports
them beside the rest of it.  They live here because ``measure/`` is the layer
below ``results/`` (the store imports :mod:`bench.measure.stats`), so the
measuring code can name its own return types without importing upwards.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class Latency(TypedDict):
    """A histogram's summary, in microseconds (``latency_us`` and the lags)."""

    count: int
    min_us: int | None
    mean_us: float | None
    p50_us: int | None
    p90_us: int | None
    p95_us: int | None
    p99_us: int | None
    p99_9_us: int | None
    max_us: int | None
    clamped: NotRequired[int]


class ProcessSummary(TypedDict, total=False):
    cpu_percent_window: float | None
    #: CPU seconds over the window, to the microsecond (the percent is rounded to 0.1)
    cpu_seconds_window: float | None
    runqueue_wait_percent_window: float | None
    #: context switches into the process's threads over the window (schedstat timeslices)
    switches_window: int | None
    cpu_percent_max: float | None
    rss_max_bytes: int | None
    threads_max: int | None


class ProcessSamples(TypedDict):
    """One process's time series, one value per sample."""

    t_s: list[float]
    cpu_percent: list[float]
    rss_bytes: list[int]
    threads: list[int]


class ProcessResources(TypedDict):
    label: str
    pid: int
    samples: ProcessSamples
    summary: ProcessSummary


class Resources(TypedDict):
    interval_s: float
    window_s: float | None  #: None only when no window was marked (a run always marks one)
    window_t_s: list[float] | None
    server: ProcessResources | None
    workers: list[ProcessResources]
    harness_cpu_percent_window: float | None
    saturation_threshold_percent: float
    saturated_workers: list[str]


class Histogram(TypedDict):
    """An HDR histogram as a result stores it: ``format`` ``hdrhistogram-v2-base64`` (HdrHistogram's
    compressed V2 encoding in ``data``), its ``unit``, and how many values it ``clamped``."""

    format: str
    unit: str
    data: str
    clamped: int
