"""``--prometheus PORT``: the running run as a Prometheus scrape target.

``http://HOST:PORT/metrics`` (``prometheus_client``'s server, loopback unless
``--prometheus-host`` says otherwise) shows the run going on, updated at
every interval:

* ``chatbench_delivery_latency_seconds`` -- a histogram of every measured
  delivery so far, per label, with buckets from 100 us to 10 s
  (:data:`BUCKETS_S`), built from the exact HDR histogram;
* ``chatbench_latency_seconds{window="interval"|"run", quantile=...}`` -- the
  exact percentiles (0.5, 0.9, 0.99, 0.999, and 1 for the max) of the last
  interval and of the run so far, per label;
* ``chatbench_deliveries_total`` (warm-up included), ``chatbench_measured_deliveries_total``,
  ``chatbench_owed_deliveries_total`` (what the timetable owed so far),
  ``chatbench_faults_total{kind=...}`` (lost is known when the run ends);
* gauges of the last interval: ``chatbench_interval``, ``chatbench_deliveries_per_second``,
  ``chatbench_read_lag_seconds{quantile=...}``, ``chatbench_server_cpu_percent``,
  ``chatbench_server_rss_bytes``; ``chatbench_run_info{run, clients}`` and,
  once it ended, ``chatbench_run_completed`` and ``chatbench_thresholds_failed``.

Every series is the current run's (a sweep's next run starts them again).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from bench.measure.stats import LatencyHistogram
from bench.results.schema import Latency, RunDocument
from bench.swarm.series import IntervalView, RunInfo

#: Histogram bucket bounds (seconds): fan-out latency from a tenth of a
#: millisecond (loopback, idle) to seconds (a server far behind).
BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: quantile label -> the Latency summary key (1 is the max).
QUANTILES = {"0.5": "p50_us", "0.9": "p90_us", "0.99": "p99_us", "0.999": "p99_9_us", "1": "max_us"}


@dataclass
class _State:
    """What the last interval left to show (plain numbers, taken under the lock)."""

    run: RunInfo | None = None
    buckets: dict[str, tuple[list[int], int, float]] = field(default_factory=dict)  #: label -> (counts, total, sum s)
    interval: dict[str, Latency] = field(default_factory=dict)
    total: dict[str, Latency] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    lag: Latency | None = None


def _buckets(hist: LatencyHistogram) -> tuple[list[int], int, float]:
    counts = hist.cumulative([b * 1e6 for b in BUCKETS_S])
    return counts, hist.count, hist.mean * hist.count / 1e6


class PrometheusOutput:
    """A scrape target for the run going on (see the module docstring)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.host, self.port = host, int(self.server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    # -- the observer --------------------------------------------------------------------

    def run_started(self, run: RunInfo) -> None:
        with self._lock:
            self._state = _State(run=run)

    def interval(self, view: IntervalView) -> str | None:
        section = view.section
        buckets = {key: _buckets(h) for key, h in view.totals.items()}
        totals = {key: h.summary() for key, h in view.totals.items()}
        interval = {key: h.summary() for key, h in view.hists.items()}
        with self._lock:
            state = self._state
            state.buckets, state.total, state.interval = buckets, totals, interval
            state.counters["deliveries"] = state.counters.get("deliveries", 0) + section["delivered_all"]
            state.counters["measured_deliveries"] = view.delivered
            state.counters["owed_deliveries"] = view.owed
            seen = view.observed
            state.faults.update(duplicated=seen.duplicated, reordered=seen.reordered, corrupted=seen.corrupted)
            state.gauges.update(
                interval=section["index"],
                interval_start_seconds=section["start_s"],
                deliveries_per_second=section["per_s"],
            )
            for name, value in (
                ("server_cpu_percent", section["server_cpu_percent"]),
                ("server_rss_bytes", section["server_rss_bytes"]),
            ):
                if value is not None:
                    state.gauges[name] = value
            state.lag = section["receive_lag_us"]
        return None

    def run_finished(self, doc: RunDocument) -> None:
        with self._lock:
            state = self._state
            state.faults["lost"] = doc["integrity"]["lost"]
            state.gauges["run_completed"] = float(doc["completed"])
            state.gauges["thresholds_failed"] = sum(1 for t in doc.get("thresholds", []) if not t["ok"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the collector ---------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            state = self._state
            yield from self._latency(state)
            yield from self._counts(state)

    def _latency(self, state: _State) -> Iterator[Metric]:
        hist = HistogramMetricFamily(
            "chatbench_delivery_latency_seconds",
            "Latency of every measured delivery so far, intended send to arrival",
            labels=["label"],
        )
        for key, (counts, total, sum_s) in sorted(state.buckets.items()):
            pairs = [(f"{b:g}", float(c)) for b, c in zip(BUCKETS_S, counts, strict=True)] + [("+Inf", float(total))]
            hist.add_metric([key], pairs, sum_s)
        yield hist
        gauge = GaugeMetricFamily(
            "chatbench_latency_seconds",
            "Exact latency percentiles (quantile 1: the max) of the last interval and of the run so far",
            labels=["window", "label", "quantile"],
        )
        for window, by_label in (("interval", state.interval), ("run", state.total)):
            for key, summary in sorted(by_label.items()):
                if summary["count"]:
                    for quantile, field_name in QUANTILES.items():
                        value = summary[field_name]  # type: ignore[literal-required]
                        gauge.add_metric([window, key, quantile], (value or 0) / 1e6)
        yield gauge

    def _counts(self, state: _State) -> Iterator[Metric]:
        helps = {
            "deliveries": "Intact deliveries so far, warm-up included",
            "measured_deliveries": "Measured deliveries so far",
            "owed_deliveries": "Deliveries the timetable owed so far",
        }
        for name, help_text in helps.items():
            yield CounterMetricFamily(f"chatbench_{name}", help_text, value=state.counters.get(name, 0))
        faults = CounterMetricFamily("chatbench_faults", "Integrity faults seen (lost: at the end)", labels=["kind"])
        for kind, count in sorted(state.faults.items()):
            faults.add_metric([kind], count)
        yield faults
        for name, value in sorted(state.gauges.items()):
            yield GaugeMetricFamily(f"chatbench_{name}", name.replace("_", " "), value=value)
        lag = GaugeMetricFamily(
            "chatbench_read_lag_seconds", "The harness's read lag in the last interval", labels=["quantile"]
        )
        if state.lag is not None:
            for quantile, field_name in QUANTILES.items():
                lag.add_metric([quantile], (state.lag[field_name] or 0) / 1e6)  # type: ignore[literal-required]
        yield lag
        if state.run is not None:
            info = GaugeMetricFamily("chatbench_run_info", "The run going on", labels=["run", "clients"])
            info.add_metric([state.run.title, str(state.run.clients)], 1)
            yield info
