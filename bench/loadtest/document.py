"""What a Locust run's exact measurements look like outside a process: the
deltas a worker attaches to its stats reports, the ``_fanout_hdr.json``
document, its console lines and its CSV (plain Python: no locust, no gevent).

:mod:`bench.loadtest.hdr` builds them; they are typed here so the tests can
read them without Locust's monkey-patching.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any, NotRequired, TypedDict

from bench.loadtest.integrity import IntegrityState
from bench.loadtest.support import FANOUT_NAME, FANOUT_TYPE
from bench.measure.stats import LatencyHistogram
from bench.results.schema import IntervalSection, Latency, ThresholdResult

#: Schema version of ``_fanout_hdr.json`` (2: labels, read lag, clocks).
SCHEMA = 2


# --------------------------------------------------------------------------
# Worker -> master
# --------------------------------------------------------------------------


class HistogramDelta(TypedDict):
    """A histogram since the last report, as a worker report carries it."""

    hist: str  #: LatencyHistogram.encode()
    clamped: int
    count: int


class ClockDelta(TypedDict):
    """A worker's clock counts since its last report."""

    corrected: int
    bound_max_ns: int
    unknown: int
    over_bound: int


class WorkerReport(TypedDict):
    """What a worker attaches to every stats report (all deltas)."""

    labels: dict[str, HistogramDelta]  #: label key -> its latencies (us)
    read_lag: HistogramDelta | None  #: kernel stamp to read (us), one per read
    send_lag: NotRequired[HistogramDelta | None]  #: intended time to the write (us), per paced probe
    unstamped_reads: int
    shared_reads: NotRequired[int]  #: measured deliveries that shared a read with a later one
    clock: ClockDelta


def pack_delta(hist: LatencyHistogram) -> HistogramDelta | None:
    """A histogram as the plain data a worker report can carry (None if empty)."""
    if not hist.count:
        return None
    return {"hist": hist.encode(), "clamped": hist.clamped, "count": hist.count}


def unpack_delta(data: HistogramDelta) -> LatencyHistogram:
    hist = LatencyHistogram.decode(data["hist"], int(data.get("clamped", 0)))
    if hist.count != int(data.get("count", hist.count)):
        raise ValueError(f"histogram delta holds {hist.count} values, report says {data['count']}")
    return hist


def fanout_counts(entries: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """(requests, failures) of the FANOUT row in serialized Locust stats
    (Locust's own format, untyped: hence ``dict[str, Any]``)."""
    requests = failures = 0
    for entry in entries:
        if entry.get("name") == FANOUT_NAME and entry.get("method") == FANOUT_TYPE:
            requests += int(entry.get("num_requests") or 0)
            failures += int(entry.get("num_failures") or 0)
    return requests, failures


# --------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------


class HdrOptions(TypedDict):
    """The options of the test, as Locust parsed them (None where not given)."""

    chat_rate: float | None
    chat_payload: int | None
    chat_step_load: bool | None
    chat_max_clock_error: float | None
    chat_interval: float | None
    chat_threshold: list[str] | None
    num_users: int | None
    run_time: int | None


class Exact(TypedDict):
    """One exact distribution: its summary (us) and its encoded HDR histogram."""

    summary: Latency
    histogram: str


class ReadLag(Exact):
    """The harness's read lag: read time minus the kernel's receive stamp, per read."""

    unstamped_reads: int  #: reads that came without a kernel stamp (timed at the read)
    #: measured deliveries that shared a read with a later one, so carry its
    #: stamp: exact if they came in one segment, late by the gap if not
    shared_reads: NotRequired[int]


class WorkerClockInfo(TypedDict):
    """One worker process's clock, as the master last had it."""

    worker: str  #: Locust's worker id
    origin: int  #: the top bits of its users' sender ids
    key: str  #: boot id hash, and the time namespace's monotonic offset if any
    offset_ms: float | None  #: the master's monotonic clock minus the worker's (None: not measured yet)
    bound_ms: float | None  #: the estimate's error bound (half its lowest round trip)


class ClockResult(TypedDict):
    """How the latencies between clocks were corrected."""

    max_error_ms: float  #: --chat-max-clock-error
    corrected: int  #: deliveries measured under clock=corrected
    bound_max_ms: float | None  #: the largest error bound any of them had
    unmeasured: int  #: counted, not measured (the two below)
    unmeasured_offset_unknown: int
    unmeasured_over_bound: int
    workers: list[WorkerClockInfo]
    warnings: list[str]


class FanoutHdrDocument(TypedDict):
    """``<csv-prefix>_fanout_hdr.json``: the exact fan-out percentiles of a Locust run
    (:meth:`bench.loadtest.hdr.FanoutRecorder.result` writes it)."""

    schema: int
    kind: str
    unit: str
    role: str  #: local, worker or master
    host: str | None
    written_at: float  #: time.time()
    options: HdrOptions
    summary: Latency  #: every measured delivery (the labels merged)
    labels: dict[str, Exact]  #: clock=same, clock=corrected
    read_lag: ReadLag
    #: the load generator's send lag: a paced probe's intended time to its
    #: write (us; the swarm's send_lag_us), the generator's share of the latency
    send_lag: Exact
    clock: ClockResult
    locust_fanout_requests: int
    locust_fanout_failures: int
    per_worker_count: dict[str, int]
    histogram: str
    integrity: IntegrityState  #: lost/duplicated/reordered/corrupted per (receiver, sender)
    #: the deliveries by interval of arrival (bench.loadtest.timeline: the swarm's
    #: interval fields the Locust path knows), first to last interval with one
    intervals: list[IntervalSection]
    interval_origin_unix_s: float  #: wall-clock start of intervals[0] (Unix seconds; 0: no interval)
    thresholds: list[ThresholdResult]  #: --chat-threshold, checked when Locust quits


def exact(hist: LatencyHistogram) -> Exact:
    return {"summary": hist.summary(), "histogram": hist.encode()}


# --------------------------------------------------------------------------
# Console lines and CSV
# --------------------------------------------------------------------------


def _ms(value_us: float | None) -> str:
    return f"{(value_us or 0) / 1000:.3f}ms"


def summary_line(summary: Latency) -> str:
    """``deliveries=N p50=… p90=… p99=… p99.9=… max=…`` in milliseconds."""
    if not summary.get("count"):
        return "deliveries=0 (no fan-out deliveries were received)"
    text = (
        f"deliveries={summary['count']} p50={_ms(summary['p50_us'])} p90={_ms(summary['p90_us'])} "
        f"p99={_ms(summary['p99_us'])} p99.9={_ms(summary['p99_9_us'])} max={_ms(summary['max_us'])}"
    )
    if summary.get("clamped"):
        text += f" clamped={summary['clamped']}"
    return text


def lag_line(lag: ReadLag) -> str:
    """``read lag p50=… p99=… max=…``: how late the harness read what the kernel had stamped."""
    s = lag["summary"]
    if not s.get("count"):
        return "read lag: no stamped reads"
    text = f"read lag p50={_ms(s['p50_us'])} p99={_ms(s['p99_us'])} max={_ms(s['max_us'])}"
    if lag["unstamped_reads"]:
        text += f" unstamped_reads={lag['unstamped_reads']}"
    return text


def send_lag_line(lag: Exact) -> str:
    """``send lag p50=… p99=… max=…``: how late the probes went out (the load generator's share of the latency)."""
    s = lag["summary"]
    if not s.get("count"):
        return "send lag: no paced probes"
    return f"send lag p50={_ms(s['p50_us'])} p99={_ms(s['p99_us'])} max={_ms(s['max_us'])}"


def clock_line(clock: ClockResult) -> str | None:
    """What the clocks did to the measurement, or None when nothing was corrected or left out."""
    if not (clock["corrected"] or clock["unmeasured"] or clock["warnings"]):
        return None
    keys = {w["key"] for w in clock["workers"]}
    text = f"corrected={clock['corrected']}"
    if clock["bound_max_ms"] is not None:
        text += f" (error bound <= {clock['bound_max_ms']:.3f}ms)"
    text += (
        f" unmeasured={clock['unmeasured']} (offset unknown {clock['unmeasured_offset_unknown']}, "
        f"error over {clock['max_error_ms']:g}ms {clock['unmeasured_over_bound']})"
    )
    if clock["workers"]:
        text += f" clocks={len(keys)} workers={len(clock['workers'])}"
    if clock["warnings"]:
        text += f" WARNINGS={len(clock['warnings'])}"
    return text


#: Columns of ``<csv-prefix>_fanout_exact.csv`` (times in milliseconds).
CSV_COLUMNS = (
    "Series",
    "Count",
    "Min",
    "Mean",
    "50%",
    "90%",
    "95%",
    "99%",
    "99.9%",
    "Max",
    "Clamped",
    "Clock error bound",
)


def _row(series: str, s: Latency, bound_ms: float | None = None) -> list[str]:
    def ms(value: float | None) -> str:
        return "" if value is None or not s["count"] else f"{value / 1000:.3f}"

    return [
        series,
        str(s["count"]),
        ms(s["min_us"]),
        ms(s["mean_us"]),
        ms(s["p50_us"]),
        ms(s["p90_us"]),
        ms(s["p95_us"]),
        ms(s["p99_us"]),
        ms(s["p99_9_us"]),
        ms(s["max_us"]),
        str(s.get("clamped", 0)),
        "" if bound_ms is None else f"{bound_ms:.3f}",
    ]


def csv_text(
    summary: Latency, labels: Mapping[str, Exact], lag: ReadLag, clock: ClockResult, send_lag: Exact | None = None
) -> str:
    """The exact figures as CSV: every delivery, each label, and the read and
    send lags beside them (milliseconds; the corrected label's row gives its error bound)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerow(_row("all", summary))
    for key, section in labels.items():
        corrected = key.endswith("=corrected")
        writer.writerow(_row(key, section["summary"], clock["bound_max_ms"] if corrected else None))
    writer.writerow(_row("read lag", lag["summary"]))
    if send_lag is not None:
        writer.writerow(_row("send lag", send_lag["summary"]))
    return out.getvalue()
