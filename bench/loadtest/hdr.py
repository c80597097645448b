"""Exact fan-out percentiles for Locust runs: HDR histograms across processes.

Locust rounds every response time to about two significant digits before it
counts it, so its percentiles of sub-millisecond fan-out latency are coarse.
Every Locust user of ours therefore also records each delivery's latency in a
:class:`~bench.measure.stats.LatencyHistogram` of its own process, at the same moment
it fires the ``FANOUT`` request event.  Where the numbers go depends on the
role of the process:

* **local run** (no ``--master``/``--worker``/``--processes``): the process's
  histogram is the result.
* **worker**: on every ``report_to_master`` (the same message that carries
  Locust's own request stats, so both always agree) the histogram is encoded,
  attached under :data:`REPORT_KEY` and reset, so each report is a delta.
* **master**: ``worker_report`` decodes each delta and merges it exactly.

At the end of a test the summary (count, p50/p90/p95/p99/p99.9, max, in
microseconds, plus the encoded histogram) is written as JSON next to Locust's
CSV files (``<csv-prefix>_fanout_hdr.json``, or ``--chat-hdr-file``) and one
text line is printed.  On a master the final write happens on Locust's
``quit`` event, after the workers' last reports have arrived; ``test_stop``
fires on a master before that, so there it only schedules a provisional write.
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

from bench.loadtest import integrity
from bench.loadtest.support import (
    FANOUT_NAME,
    FANOUT_TYPE,
    FanoutHdrDocument,
    fanout_counts,
    pack_delta,
    summary_line,
    unpack_delta,
)
from bench.measure.stats import LatencyHistogram

log = logging.getLogger("chatbench.locust")

#: Key under which a worker attaches its histogram delta to a stats report.
REPORT_KEY = "chatbench_fanout_hdr"
#: Schema version of the JSON file.
SCHEMA = 1


class FanoutRecorder:
    """The fan-out histogram of this process (one per process: users record
    into it, the event listeners ship, merge and report it)."""

    def __init__(self) -> None:
        self.hist = LatencyHistogram()
        #: Deltas merged from each worker (master only), for the JSON.
        self.per_worker: dict[str, int] = {}
        #: Each worker's latest integrity counters (master only).
        self.integrity_states: dict[str, integrity.IntegrityState] = {}
        #: Locust's own FANOUT (requests, failures), summed from the same
        #: worker reports (master) or read from its stats (local run).
        self.locust_counts = (0, 0)
        self.environment: Environment | None = None
        self.role = "local"
        self._written_count = -1
        self._pending: gevent.Greenlet | None = None

    # -- recording (hot path) -------------------------------------------------

    def record(self, latency_us: int) -> None:
        self.hist.record(latency_us)

    # -- lifecycle ------------------------------------------------------------

    def reset(self, **_kwargs: Any) -> None:
        self.hist = LatencyHistogram()
        self.per_worker = {}
        self.integrity_states = {}
        integrity.LEDGER.reset()
        self.locust_counts = (0, 0)
        self._written_count = -1

    def attach(self, environment: Environment, runner: Runner | None) -> None:
        """Wire the listeners for this process's role.  Called from Locust's
        ``init`` event, once the runner exists."""
        self.environment = environment
        events: Any = environment.events  # EventHook.add_listener is untyped
        events.test_start.add_listener(self.reset)
        events.reset_stats.add_listener(self.reset)
        if environment.reset_stats:
            events.spawning_complete.add_listener(self.reset)
        if isinstance(runner, WorkerRunner):
            self.role = "worker"
            events.report_to_master.add_listener(self._on_report_to_master)
            return
        if isinstance(runner, MasterRunner):
            self.role = "master"
            events.worker_report.add_listener(self._on_worker_report)
            events.test_stop.add_listener(self._on_master_test_stop)
        else:
            self.role = "local"
            events.test_stop.add_listener(self._on_test_stop)
        events.quit.add_listener(self._on_quit)

    # -- worker -> master -----------------------------------------------------

    # ``data`` below is Locust's report message (its event kwargs): untyped.
    def _on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        # No greenlet switch happens between Locust's own stats listener and
        # this one, so the delta shipped here covers exactly the same
        # deliveries as the FANOUT stats in the same message.
        data[integrity.REPORT_KEY] = integrity.LEDGER.state()  # not a delta: the master keeps the latest
        delta = pack_delta(self.hist)
        if delta is not None:
            data[REPORT_KEY] = delta
            self.hist = LatencyHistogram()

    def _on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        requests, failures = fanout_counts(data.get("stats", ()))
        self.locust_counts = (self.locust_counts[0] + requests, self.locust_counts[1] + failures)
        if integrity.REPORT_KEY in data:
            self.integrity_states[client_id] = data[integrity.REPORT_KEY]
        payload = data.get(REPORT_KEY)
        if not payload:
            return
        delta = unpack_delta(payload)
        self.hist.merge(delta)
        self.per_worker[client_id] = self.per_worker.get(client_id, 0) + delta.count

    # -- the end of a test ----------------------------------------------------

    def _on_test_stop(self, environment: Environment, **_kwargs: Any) -> None:
        self.finalise("test stopped")

    def _on_master_test_stop(self, environment: Environment, **_kwargs: Any) -> None:
        # Workers send their last deltas after this event; write once they
        # should have arrived (the quit event writes the final numbers anyway).
        if self._pending is not None:
            self._pending.kill(block=False)
        self._pending = gevent.spawn_later(WORKER_REPORT_INTERVAL + 1.0, self.finalise, "test stopped")

    def _on_quit(self, exit_code: int = 0, **_kwargs: Any) -> None:
        if self._pending is not None:
            self._pending.kill(block=False)
            self._pending = None
        self.finalise("final")

    def output_path(self) -> Path | None:
        options = self.environment.parsed_options if self.environment else None
        explicit = getattr(options, "chat_hdr_file", None)
        if explicit:
            return Path(explicit)
        prefix = getattr(options, "csv_prefix", None)
        if prefix:
            return Path(f"{prefix}_fanout_hdr.json")
        return None

    def result(self) -> FanoutHdrDocument:
        """The JSON document: summary in microseconds plus the encoded
        histogram, and Locust's own FANOUT count for comparison."""
        if self.role == "local" and self.environment is not None:
            # (Locust's --json-file resets its stats at exit: read them while valid.)
            entry = self.environment.stats.entries.get((FANOUT_NAME, FANOUT_TYPE))
            if entry is not None and entry.num_requests:
                self.locust_counts = (entry.num_requests, entry.num_failures)
        options = self.environment.parsed_options if self.environment else None

        def option(key: str) -> Any:  # argparse's Namespace: untyped
            return getattr(options, key, None)

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
                "num_users": option("num_users"),
                "run_time": option("run_time"),
            },
            "summary": self.hist.summary(),
            # Locust's FANOUT requests and failures: the histogram holds the
            # successful ones, so count == requests - failures.
            "locust_fanout_requests": self.locust_counts[0],
            "locust_fanout_failures": self.locust_counts[1],
            "per_worker_count": dict(self.per_worker),
            "integrity": self.integrity(),
            "histogram": self.hist.encode(),
        }

    def integrity(self) -> integrity.IntegrityState:
        """The integrity counters: merged from the workers on a master, this process's otherwise."""
        if self.role == "master":
            return integrity.merge_states(list(self.integrity_states.values()))
        return integrity.LEDGER.state()

    def finalise(self, reason: str) -> None:
        """Print the exact percentiles and save the JSON (if anything changed
        since the last write)."""
        self._pending = None
        if self.hist.count == self._written_count:
            return
        self._written_count = self.hist.count
        doc = self.result()
        path = self.output_path()
        if path is not None:
            try:
                if path.parent != Path():
                    path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
                tmp.replace(path)
            except OSError as exc:
                log.error("cannot write %s: %s", path, exc)
                path = None
        line = summary_line(doc["summary"])
        where = f" -> {path}" if path is not None else ""
        # A result for the person running the test: stdout, like Locust's own tables.
        print(f"chatbench FANOUT exact ({reason}): {line}{where}", flush=True)
        print(f"chatbench integrity ({reason}): {integrity.summary_text(doc['integrity'])}", flush=True)


#: The histogram of this process.  A forked ``--processes`` child starts with
#: the parent's (still empty) copy, which is what it should.
RECORDER = FanoutRecorder()
