"""``--otlp URL``: the running run's metrics exported to an OpenTelemetry collector.

OTLP over HTTP (``opentelemetry-sdk`` and its protobuf HTTP exporter) to
``URL`` (``http://HOST:4318`` gets the standard path ``/v1/metrics``),
exported after every interval, from a thread of its own so a slow or absent
collector never holds the run up (each export gives up after
:data:`EXPORT_TIMEOUT_S`).  Resource ``service.name=chatbench``; instruments:

* ``chatbench.latency`` (gauge, seconds; attributes ``window`` =
  ``interval``/``run``, ``label``, ``quantile`` 0.5 0.9 0.99 0.999 and 1 for
  the max): the exact percentiles of the last interval and of the run so far;
* ``chatbench.deliveries`` (counter; ``kind`` = ``all`` with the warm-up,
  ``measured``, ``owed``), ``chatbench.faults`` (counter; ``kind``);
* ``chatbench.deliveries_per_second``, ``chatbench.interval``,
  ``chatbench.server.cpu_percent``, ``chatbench.server.rss`` (gauges of the last interval).

Every observation carries the ``run`` it belongs to ("queued, 100 clients").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from bench.live.prom import QUANTILES
from bench.results.schema import Latency, RunDocument
from bench.swarm.series import IntervalView, RunInfo

log = logging.getLogger(__name__)

#: Seconds one export may take before it is given up (the next interval tries again).
EXPORT_TIMEOUT_S = 5.0
#: The SDK's own export period (ms): long, since exports follow the intervals.
SDK_PERIOD_MS = 3_600_000
#: The OTLP/HTTP path for metrics.
METRICS_PATH = "/v1/metrics"


def metrics_url(url: str) -> str:
    """``http://host:4318`` -> ``http://host:4318/v1/metrics`` (a URL with a path is kept)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--otlp {url!r}: give the collector's OTLP/HTTP URL, e.g. http://127.0.0.1:4318")
    return url if parts.path not in ("", "/") else url.rstrip("/") + METRICS_PATH


class OtlpOutput:
    """Exports the run's metrics after every interval (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = metrics_url(url)
        exporter = OTLPMetricExporter(endpoint=self.url, timeout=EXPORT_TIMEOUT_S)
        self.reader = PeriodicExportingMetricReader(exporter, export_interval_millis=SDK_PERIOD_MS)
        self.provider = MeterProvider(
            resource=Resource.create({"service.name": "chatbench"}), metric_readers=[self.reader]
        )
        meter = self.provider.get_meter("chatbench")
        self._lock = threading.Lock()
        self._run = ""
        self._latency: dict[tuple[str, str], Latency] = {}
        self._deliveries: dict[str, float] = {}
        self._faults: dict[str, int] = {}
        self._gauges: dict[str, float] = {}
        meter.create_observable_gauge("chatbench.latency", [self._observe_latency], unit="s")
        meter.create_observable_counter("chatbench.deliveries", [self._observe_deliveries])
        meter.create_observable_counter("chatbench.faults", [self._observe_faults])
        for name, unit in (
            ("deliveries_per_second", "1/s"),
            ("interval", "1"),
            ("server.cpu_percent", "%"),
            ("server.rss", "By"),
        ):
            meter.create_observable_gauge(f"chatbench.{name}", [self._gauge(name)], unit=unit)
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._export_loop, name="otlp-export", daemon=True)
        self._thread.start()

    # -- the observer --------------------------------------------------------------------

    def run_started(self, run: RunInfo) -> None:
        with self._lock:
            self._run = run.title
            self._latency, self._deliveries, self._faults, self._gauges = {}, {}, {}, {}

    def interval(self, view: IntervalView) -> str | None:
        section = view.section
        latency = {("interval", key): h.summary() for key, h in view.hists.items()}
        latency.update({("run", key): h.summary() for key, h in view.totals.items()})
        with self._lock:
            self._latency = latency
            d = self._deliveries
            d["all"] = d.get("all", 0) + section["delivered_all"]
            d["measured"], d["owed"] = view.delivered, view.owed
            seen = view.observed
            self._faults.update(duplicated=seen.duplicated, reordered=seen.reordered, corrupted=seen.corrupted)
            self._gauges["deliveries_per_second"] = section["per_s"]
            self._gauges["interval"] = section["index"]
            if section["server_cpu_percent"] is not None:
                self._gauges["server.cpu_percent"] = section["server_cpu_percent"]
            if section["server_rss_bytes"] is not None:
                self._gauges["server.rss"] = section["server_rss_bytes"]
        self._wake.set()
        return None

    def run_finished(self, doc: RunDocument) -> None:
        with self._lock:
            self._faults["lost"] = doc["integrity"]["lost"]
        self._wake.set()

    def close(self) -> None:
        """The last export, then the SDK's shutdown."""
        self._closing = True
        self._wake.set()
        self._thread.join(EXPORT_TIMEOUT_S * 2)
        self.provider.shutdown(timeout_millis=EXPORT_TIMEOUT_S * 1000)

    def _export_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                self.reader.force_flush(timeout_millis=EXPORT_TIMEOUT_S * 1000)
            except Exception as exc:  # a collector's trouble must not end the run
                log.warning("OTLP export to %s failed: %s", self.url, exc)
            if self._closing:
                return

    # -- the SDK's callbacks ---------------------------------------------------------------

    def _observe_latency(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items, run = list(self._latency.items()), self._run
        for (window, key), summary in items:
            if not summary["count"]:
                continue
            for quantile, field_name in QUANTILES.items():
                value = (summary[field_name] or 0) / 1e6  # type: ignore[literal-required]
                yield Observation(value, {"run": run, "window": window, "label": key, "quantile": quantile})

    def _observe_deliveries(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items, run = list(self._deliveries.items()), self._run
        return [Observation(v, {"run": run, "kind": kind}) for kind, v in items]

    def _observe_faults(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items, run = list(self._faults.items()), self._run
        return [Observation(v, {"run": run, "kind": kind}) for kind, v in items]

    def _gauge(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                value, run = self._gauges.get(name), self._run
            return [] if value is None else [Observation(value, {"run": run})]

        return observe
