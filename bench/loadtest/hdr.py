"""Exact fan-out percentiles for Locust runs: HDR histograms across processes.

Locust rounds every response time to about two significant digits before it
counts it, so its percentiles of sub-millisecond fan-out latency are coarse.
Every Locust user of ours therefore also records each delivery's latency,
exactly, in the histograms of its process's receive path
(:mod:`bench.loadtest.receive`: one per label, ``clock=same`` and
``clock=corrected``), together with the harness's read lag, in the same step
that fires the ``FANOUT`` request event.  Where the numbers go depends on the
role of the process:

* **local run** (no ``--master``/``--worker``/``--processes``): the process's
  histograms are the result.
* **worker**: on every ``report_to_master`` (the same message that carries
  Locust's own request stats, so both always agree) the histograms and clock
  counts are encoded, attached under :data:`REPORT_KEY` and started afresh,
  so each report is a delta.
* **master**: ``worker_report`` decodes each delta and merges it exactly; it
  also runs the clock exchanges (:mod:`bench.loadtest.clocksync`) and lists
  every worker's clock in the result.

The same deltas carry each process's closed intervals (the time axis,
:mod:`bench.loadtest.timeline`: every measured delivery also counted in the
interval of its arrival, ``--chat-interval``), which the master merges as
exactly as the rest.

At the end of a test the summary (count, p50/p90/p95/p99/p99.9, max, in
microseconds, per label and in all, the read lag, the clocks, plus the
encoded histograms, the intervals and the thresholds' verdicts) is written
as JSON next to Locust's CSV files (``<csv-prefix>_fanout_hdr.json``, or
``--chat-hdr-file``) with the same figures as CSV
(``<csv-prefix>_fanout_exact.csv``) and the intervals as an HdrHistogram
interval log (``<csv-prefix>_fanout.hlog``), and printed.
``--chat-threshold`` criteria are checked on the master (or the local
process) when Locust quits, after the workers' last reports: a failed one
makes the exit code 99.  On a master
the final write happens on Locust's ``quit`` event, after the workers' last
reports have arrived; ``test_stop`` fires on a master before that, so there
it only schedules a provisional write.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner, Runner, WorkerRunner

from bench.loadtest import clocksync, integrity, timeline
from bench.loadtest.clocks import DEFAULT_MAX_CLOCK_ERROR_MS
from bench.loadtest.document import (
    SCHEMA,
    ClockResult,
    FanoutHdrDocument,
    ReadLag,
    WorkerClockInfo,
    WorkerReport,
    clock_line,
    csv_text,
    exact,
    fanout_counts,
    lag_line,
    pack_delta,
    send_lag_line,
    summary_line,
    unpack_delta,
)
from bench.loadtest.locuststats import FanoutRows
from bench.loadtest.pacer import take_send_lag
from bench.loadtest.receive import CORRECTED_KEY, SAME_KEY, ClockCounts, receiving
from bench.loadtest.support import FANOUT_NAME, FANOUT_TYPE
from bench.measure.intervals import DEFAULT_INTERVAL_S
from bench.measure.stats import LatencyHistogram
from bench.measure.thresholds import THRESHOLDS_FAILED_EXIT, Verdict
from bench.results.schema import ThresholdResult

log = logging.getLogger("chatbench.locust")

#: Key under which a worker attaches its deltas to a stats report.
REPORT_KEY = "chatbench_fanout_hdr"
__all__ = ["RECORDER", "REPORT_KEY", "SCHEMA", "FanoutRecorder"]


class FanoutRecorder:
    """The exact figures of this process (one per process: the users record
    into the receive path, this ships, merges and reports them)."""

    def __init__(self) -> None:
        self.labels = {SAME_KEY: LatencyHistogram(), CORRECTED_KEY: LatencyHistogram()}
        self.read_lag = LatencyHistogram()
        self.send_lag = LatencyHistogram()  #: intended send time to the write (us), per paced probe
        self.unstamped_reads = 0
        #: measured deliveries that shared a read with a later one (DeliveryRecorder.shared_reads)
        self.shared_reads = 0
        self.clock = ClockCounts()
        #: Deltas merged from each worker (master only), for the JSON.
        self.per_worker: dict[str, int] = {}
        #: Each worker's latest integrity counters (master only).
        self.integrity_states: dict[str, integrity.IntegrityState] = {}
        #: Locust's own FANOUT (requests, failures), summed from the same
        #: worker reports (master) or read from its stats (local run).
        self.locust_counts = (0, 0)
        self.environment: Environment | None = None
        self.role = "local"
        self.clocks: clocksync.MasterClock | clocksync.WorkerClock | None = None
        self._unstamped_shipped = 0
        self._shared_shipped = 0
        self._written_count = -1
        self._pending: gevent.Greenlet | None = None
        #: every process's intervals, merged (master, local run)
        self.intervals = timeline.IntervalMerge()
        self._stopped = False  #: a worker's test stopped: its next report ships every interval
        self.verdicts: list[Verdict] = []  #: --chat-threshold, checked when Locust quits

    @property
    def hist(self) -> LatencyHistogram:
        """Every measured delivery (the labels merged)."""
        hist = LatencyHistogram()
        for h in self.labels.values():
            hist.merge(h)
        return hist

    # -- lifecycle ------------------------------------------------------------

    def reset(self, **_kwargs: Any) -> None:
        self.labels = {key: LatencyHistogram() for key in self.labels}
        self.read_lag = LatencyHistogram()
        self.send_lag = LatencyHistogram()
        take_send_lag()
        self.clock = ClockCounts()
        self.per_worker = {}
        self.integrity_states = {}
        rx = receiving()
        rx.labels.take()
        rx.take_read_lag()
        self.unstamped_reads = 0
        self._unstamped_shipped = rx.reader.unstamped_reads
        self.shared_reads = 0
        self._shared_shipped = rx.recorder.shared_reads
        integrity.LEDGER.reset()
        self.locust_counts = (0, 0)
        self._written_count = -1
        self.intervals = timeline.IntervalMerge()
        rx.labels.timeline = timeline.IntervalRecorder(float(self._option("chat_interval") or DEFAULT_INTERVAL_S))
        self._stopped = False
        self.verdicts = []

    def attach(self, environment: Environment, runner: Runner | None) -> None:
        """Wire the listeners for this process's role.  Called from Locust's
        ``init`` event, once the runner exists."""
        self.environment = environment
        events: Any = environment.events  # EventHook.add_listener is untyped
        rx = receiving()
        rx.labels.rows = FanoutRows(environment.stats)
        rx.labels.timeline = timeline.IntervalRecorder(float(self._option("chat_interval") or DEFAULT_INTERVAL_S))
        events.test_start.add_listener(self.reset)
        events.reset_stats.add_listener(self.reset)
        if environment.reset_stats:
            events.spawning_complete.add_listener(self.reset)
        self.clocks = clocksync.install(runner, rx)
        if isinstance(runner, WorkerRunner):
            self.role = "worker"
            events.report_to_master.add_listener(self._on_report_to_master)
            events.test_stop.add_listener(self._on_worker_test_stop)
            return
        if isinstance(runner, MasterRunner):
            self.role = "master"
            events.worker_report.add_listener(self._on_worker_report)
            events.test_stop.add_listener(self._on_master_test_stop)
        else:
            self.role = "local"
            events.test_stop.add_listener(self._on_test_stop)
        events.quitting.add_listener(self._on_quitting)
        events.quit.add_listener(self._on_quit)

    # -- this process's figures -------------------------------------------------

    def _take_local(self) -> tuple[dict[str, LatencyHistogram], LatencyHistogram, int, int, ClockCounts]:
        """This process's figures since the last take (the two counts: unstamped and shared reads)."""
        rx = receiving()
        hists, clock = rx.labels.take()
        unstamped = rx.reader.unstamped_reads - self._unstamped_shipped
        self._unstamped_shipped = rx.reader.unstamped_reads
        shared = rx.recorder.shared_reads - self._shared_shipped
        self._shared_shipped = rx.recorder.shared_reads
        return hists, rx.take_read_lag(), unstamped, shared, clock

    def _add(
        self,
        hists: dict[str, LatencyHistogram],
        lag: LatencyHistogram,
        unstamped: int,
        shared: int,
        clock: ClockCounts,
    ) -> int:
        """Merge figures into the result; returns the deliveries they hold."""
        count = 0
        for key, hist in hists.items():
            self.labels.setdefault(key, LatencyHistogram()).merge(hist)
            count += hist.count
        self.read_lag.merge(lag)
        self.unstamped_reads += unstamped
        self.shared_reads += shared
        self.clock.add(clock)
        return count

    # -- worker -> master -----------------------------------------------------

    # ``data`` below is Locust's report message (its event kwargs): untyped.
    def _on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        # No greenlet switch happens between Locust's own stats listener and
        # this one, so the deltas shipped here cover exactly the same
        # deliveries as the FANOUT stats in the same message.
        data[integrity.REPORT_KEY] = integrity.LEDGER.state()  # not a delta: the master keeps the latest
        hists, lag, unstamped, shared, clock = self._take_local()
        report: WorkerReport = {
            "labels": {key: delta for key, hist in hists.items() if (delta := pack_delta(hist)) is not None},
            "read_lag": pack_delta(lag),
            "send_lag": pack_delta(take_send_lag()),
            "unstamped_reads": unstamped,
            "shared_reads": shared,
            "clock": {
                "corrected": clock.corrected,
                "bound_max_ns": clock.bound_max_ns,
                "unknown": clock.unknown,
                "over_bound": clock.over_bound,
            },
        }
        data[REPORT_KEY] = report
        rec = receiving().labels.timeline
        if rec is not None:
            data[timeline.REPORT_KEY] = rec.pack(rec.close(time.time_ns(), final=self._stopped))

    def _on_worker_test_stop(self, **_kwargs: Any) -> None:
        self._stopped = True  # (its last report follows: every interval goes with it)

    def _on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        requests, failures = fanout_counts(data.get("stats", ()))
        self.locust_counts = (self.locust_counts[0] + requests, self.locust_counts[1] + failures)
        if integrity.REPORT_KEY in data:
            self.integrity_states[client_id] = data[integrity.REPORT_KEY]
        self.intervals.add(data.get(timeline.REPORT_KEY) or [])
        report: WorkerReport | None = data.get(REPORT_KEY)
        if not report:
            return
        lag = report["read_lag"]
        sent = report.get("send_lag")
        if sent:
            self.send_lag.merge(unpack_delta(sent))
        c = report["clock"]
        count = self._add(
            {key: unpack_delta(delta) for key, delta in report["labels"].items()},
            unpack_delta(lag) if lag else LatencyHistogram(),
            int(report["unstamped_reads"]),
            int(report.get("shared_reads", 0)),  # (absent from an older worker)
            ClockCounts(int(c["corrected"]), int(c["bound_max_ns"]), int(c["unknown"]), int(c["over_bound"])),
        )
        self.per_worker[client_id] = self.per_worker.get(client_id, 0) + count

    # -- the end of a test ----------------------------------------------------

    def _on_test_stop(self, environment: Environment, **_kwargs: Any) -> None:
        self.finalise("test stopped")

    def _on_master_test_stop(self, environment: Environment, **_kwargs: Any) -> None:
        # Workers send their last deltas after this event; write once they
        # should have arrived (the quit event writes the final numbers anyway).
        if self._pending is not None:
            self._pending.kill(block=False)
        self._pending = gevent.spawn_later(WORKER_REPORT_INTERVAL + 1.0, self.finalise, "test stopped")

    def _on_quitting(self, environment: Environment, **_kwargs: Any) -> None:
        """The thresholds, on the figures as Locust quits (a master has had
        the workers' last reports: it waits for them before this event)."""
        texts = self._option("chat_threshold") or []
        if not texts:
            return
        doc = self.result()
        counts = doc["integrity"]
        span = self.intervals.span_s
        self.verdicts = timeline.check_thresholds(
            texts,
            self.hist,
            delivered=doc["summary"]["count"],
            lost=counts["lost"],
            duplicated=counts["duplicated"],
            reordered=counts["reordered"],
            corrupted=counts["corrupted"],
            per_s=round(doc["summary"]["count"] / span, 1) if span else None,
            labels=self.labels,
        )
        for verdict in self.verdicts:
            print(f"chatbench threshold {verdict.line()}", flush=True)
        if not all(v.ok for v in self.verdicts):
            environment.process_exit_code = THRESHOLDS_FAILED_EXIT

    def _on_quit(self, exit_code: int = 0, **_kwargs: Any) -> None:
        if self._pending is not None:
            self._pending.kill(block=False)
            self._pending = None
        self.finalise("final")

    def _option(self, key: str) -> Any:  # argparse's Namespace: untyped
        options = self.environment.parsed_options if self.environment else None
        return getattr(options, key, None)

    def output_path(self) -> Path | None:
        explicit = self._option("chat_hdr_file")
        if explicit:
            return Path(explicit)
        prefix = self._option("csv_prefix")
        if prefix:
            return Path(f"{prefix}_fanout_hdr.json")
        return None

    def clock_result(self) -> ClockResult:
        """The clocks: the counts, and (master) every worker's clock and the warnings."""
        c = self.clock
        workers: list[WorkerClockInfo] = []
        warnings: list[str] = []
        clocks = self.clocks
        if isinstance(clocks, clocksync.MasterClock):
            workers = [
                WorkerClockInfo(
                    worker=clocks.workers.get(origin, ""),
                    origin=origin,
                    key=entry["key"],
                    offset_ms=None if entry["offset_ns"] is None else entry["offset_ns"] / 1e6,
                    bound_ms=None if entry["bound_ns"] is None else entry["bound_ns"] / 1e6,
                )
                for origin, entry in sorted(clocks.entries.items())
            ]
            warnings = list(clocks.warnings)
        max_error = self._option("chat_max_clock_error")
        return ClockResult(
            max_error_ms=float(DEFAULT_MAX_CLOCK_ERROR_MS if max_error is None else max_error),
            corrected=c.corrected,
            bound_max_ms=c.bound_max_ns / 1e6 if c.corrected else None,
            unmeasured=c.unknown + c.over_bound,
            unmeasured_offset_unknown=c.unknown,
            unmeasured_over_bound=c.over_bound,
            workers=workers,
            warnings=warnings,
        )

    def result(self) -> FanoutHdrDocument:
        """The JSON document: summaries in microseconds plus the encoded
        histograms, and Locust's own FANOUT count for comparison."""
        if self.role == "local" and self.environment is not None:
            self._add(*self._take_local())
            self.send_lag.merge(take_send_lag())
            rec = receiving().labels.timeline
            if rec is not None:
                self.intervals.add(rec.pack(rec.close(time.time_ns(), final=True)))
            # (Locust's --json-file resets its stats at exit: read them while valid.)
            entry = self.environment.stats.entries.get((FANOUT_NAME, FANOUT_TYPE))
            if entry is not None and entry.num_requests:
                self.locust_counts = (entry.num_requests, entry.num_failures)
        hist = self.hist
        option = self._option
        return {
            "schema": SCHEMA,
            "kind": "chatbench.locust.fanout",
            "unit": "us",
            "role": self.role,
            "host": self.environment.host if self.environment else None,
            "written_at": time.time(),
            "options": {
                "chat_rate": option("chat_rate"),
                "chat_payload": option("chat_payload"),
                "chat_step_load": option("chat_step_load"),
                "chat_max_clock_error": option("chat_max_clock_error"),
                "chat_interval": option("chat_interval"),
                "chat_threshold": option("chat_threshold"),
                "num_users": option("num_users"),
                "run_time": option("run_time"),
            },
            "summary": hist.summary(),
            "labels": {key: exact(h) for key, h in self.labels.items()},
            "read_lag": ReadLag(
                **exact(self.read_lag), unstamped_reads=self.unstamped_reads, shared_reads=self.shared_reads
            ),
            "send_lag": exact(self.send_lag),
            "clock": self.clock_result(),
            # Locust's FANOUT requests and failures: the histogram holds the
            # successful ones, so count == requests - failures.
            "locust_fanout_requests": self.locust_counts[0],
            "locust_fanout_failures": self.locust_counts[1],
            "per_worker_count": dict(self.per_worker),
            "integrity": self.integrity(),
            "histogram": hist.encode(),
            "intervals": self.intervals.sections(),
            "interval_origin_unix_s": self.intervals.origin_unix_s,
            "thresholds": [_threshold_result(v) for v in self.verdicts],
        }

    def integrity(self) -> integrity.IntegrityState:
        """The integrity counters: merged from the workers on a master, this process's otherwise."""
        if self.role == "master":
            return integrity.merge_states(list(self.integrity_states.values()))
        return integrity.LEDGER.state()

    def finalise(self, reason: str) -> None:
        """Print the exact percentiles and save the JSON and CSV (if anything
        changed since the last write)."""
        self._pending = None
        doc = self.result()
        written = (
            doc["summary"]["count"]
            + doc["read_lag"]["summary"]["count"]
            + doc["send_lag"]["summary"]["count"]
            + doc["clock"]["unmeasured"]
            + len(doc["thresholds"])  # (checked after the last deliveries: written once more)
        )
        if written == self._written_count:
            return
        self._written_count = written
        path = self.output_path()
        if path is not None:
            try:
                if path.parent != Path():
                    path.parent.mkdir(parents=True, exist_ok=True)
                _write(path, json.dumps(doc, indent=2) + "\n")
                csv_path = _csv_path(path)
                text = csv_text(doc["summary"], doc["labels"], doc["read_lag"], doc["clock"], doc["send_lag"])
                _write(csv_path, text)
                if doc["intervals"]:
                    self.intervals.write_hlog(_sibling(path, "_fanout.hlog", ".hlog"))
            except OSError as exc:
                log.error("cannot write %s: %s", path, exc)
                path = None
        self._print(doc, reason, path)

    def _print(self, doc: FanoutHdrDocument, reason: str, path: Path | None) -> None:
        where = f" -> {path}" if path is not None else ""
        # A result for the person running the test: stdout, like Locust's own tables.
        print(
            f"chatbench FANOUT exact ({reason}): {summary_line(doc['summary'])} | {lag_line(doc['read_lag'])} | "
            f"{send_lag_line(doc['send_lag'])}{where}",
            flush=True,
        )
        clock = doc["clock"]
        text = clock_line(clock)
        if text is not None:
            for key, section in doc["labels"].items():
                if section["summary"]["count"]:
                    print(f"chatbench FANOUT {key} ({reason}): {summary_line(section['summary'])}", flush=True)
            print(f"chatbench clocks ({reason}): {text}", flush=True)
            for warning in clock["warnings"]:
                print(f"chatbench clocks WARNING: {warning}", flush=True)
        print(f"chatbench integrity ({reason}): {integrity.summary_text(doc['integrity'])}", flush=True)


def _csv_path(json_path: Path) -> Path:
    """``PREFIX_fanout_hdr.json`` -> ``PREFIX_fanout_exact.csv`` (any other name: the suffix replaced)."""
    return _sibling(json_path, "_fanout_exact.csv", ".csv")


def _sibling(json_path: Path, ending: str, suffix: str) -> Path:
    """``PREFIX_fanout_hdr.json`` -> ``PREFIX`` + ``ending`` (any other name: ``suffix`` for its own)."""
    name = json_path.name
    if name.endswith("_fanout_hdr.json"):
        return json_path.with_name(name[: -len("_fanout_hdr.json")] + ending)
    return json_path.with_suffix(suffix)


def _threshold_result(verdict: Verdict) -> ThresholdResult:
    t = verdict.threshold
    return {
        "threshold": t.text,
        "ok": verdict.ok,
        "value": verdict.value,
        "abort_on_fail": t.abort_on_fail,
        "aborted": False,
    }


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


#: The figures of this process.  A forked ``--processes`` child starts with
#: the parent's (still empty) copy, which is what it should.
RECORDER = FanoutRecorder()
