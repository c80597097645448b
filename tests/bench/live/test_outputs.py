"""The live outputs of a real run, each read back with the real library:
JSON lines parsed, the Prometheus text format parsed with
``prometheus_client``'s parser (during the run and after), the OTLP export
decoded with the ``opentelemetry-proto`` package by a small collector here,
the terminal's lines and table."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from bench.live.jsonl import JsonLines
from bench.live.otlp import OtlpOutput, metrics_url
from bench.live.prom import PrometheusOutput
from bench.live.terminal import LineView, TableView
from bench.results.schema import RunDocument
from bench.swarm import Outputs, SwarmConfig, run_swarm

pytestmark = pytest.mark.slow

#: Seconds a test waits for something the run does (an interval, an export).
WAIT_S = 30.0


class Collector:
    """An OTLP/HTTP metrics receiver: every request decoded with opentelemetry-proto."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = metrics_service_pb2.ExportMetricsServiceRequest()
                request.ParseFromString(body)
                with collector.lock:
                    collector.requests.append((self.path, self.headers["Content-Type"], request))
                reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def points(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every data point of metric ``name`` received, in order: (attributes, value)."""
        out = []
        with self.lock:
            requests = [r for _, _, r in self.requests]
        for request in requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name != name:
                            continue
                        data = metric.gauge if metric.HasField("gauge") else metric.sum
                        for p in data.data_points:
                            attrs = {a.key: a.value.string_value for a in p.attributes}
                            value = p.as_double if p.HasField("as_double") else float(p.as_int)
                            out.append((attrs, value))
        return out


def _scrape(prom: PrometheusOutput) -> dict[str, Any]:
    with urllib.request.urlopen(prom.url, timeout=10) as reply:
        text = reply.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(families: dict[str, Any], name: str, **labels: str) -> float:
    """The sample ``name`` (a counter's with its ``_total``) with ``labels``."""
    for family in families.values():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise KeyError(f"{name} {labels}")


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One run of 20 clients for 3 s at 0.5 s intervals, watched by every output;
    Prometheus is scraped once while it goes."""
    tmp = tmp_path_factory.mktemp("live")
    collector = Collector()
    lines = io.StringIO()
    table_console = Console(file=io.StringIO(), force_terminal=True, width=100)
    outputs = [
        JsonLines(tmp / "run.jsonl"),
        PrometheusOutput(0),
        OtlpOutput(collector.url),
        LineView(lines),
        TableView(table_console),
    ]
    jsonl, prom, otlp, _, table = outputs
    config = SwarmConfig(clients=20, senders=5, rate=300, duration_s=3.0, warmup_s=0.5, interval_s=0.5, progress=False)
    got: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: got.update(doc=run_swarm(config, Outputs(outputs))), daemon=True)
    runner.start()
    deadline = time.monotonic() + WAIT_S
    during = None
    while time.monotonic() < deadline and runner.is_alive():
        families = _scrape(prom)  # type: ignore[arg-type]
        if "chatbench_interval" in families and _value(families, "chatbench_interval") >= 2:
            during = families
            break
        time.sleep(0.1)
    runner.join(WAIT_S * 2)
    after = _scrape(prom)  # type: ignore[arg-type]
    otlp.close()  # type: ignore[attr-defined]
    yield {
        "doc": got["doc"],
        "jsonl": tmp / "run.jsonl",
        "during": during,
        "after": after,
        "collector": collector,
        "lines": lines.getvalue(),
        "table": table_console.file.getvalue(),  # type: ignore[attr-defined]
    }
    for output in (jsonl, prom, table):
        output.close()  # type: ignore[attr-defined]
    collector.server.shutdown()


def test_json_lines_have_one_object_per_interval_then_the_run(live_run: dict[str, Any]) -> None:
    doc: RunDocument = live_run["doc"]
    objects = [json.loads(line) for line in Path(live_run["jsonl"]).read_text().splitlines()]
    intervals = [o for o in objects if o["type"] == "interval"]
    assert objects[-1]["type"] == "run" and objects[-1]["run_id"] == doc["run_id"]
    assert [o["index"] for o in intervals] == [s["index"] for s in doc["intervals"]["intervals"]]
    assert sum(o["delivered"] for o in intervals) == doc["latency_us"]["count"]
    for live, final in zip(intervals, doc["intervals"]["intervals"], strict=True):
        assert live["latency_us"] == final["latency_us"]  # what was shown live is what the run kept
        assert live["sent"] is None and final["sent"] is not None


def test_prometheus_metrics_parse_and_match_the_run(live_run: dict[str, Any]) -> None:
    doc: RunDocument = live_run["doc"]
    during, after = live_run["during"], live_run["after"]
    assert during is not None, "no scrape saw the run going"
    assert 0 < _value(during, "chatbench_measured_deliveries_total") < doc["latency_us"]["count"]
    count = doc["latency_us"]["count"]
    assert _value(after, "chatbench_delivery_latency_seconds_count", label="") == count
    assert _value(after, "chatbench_delivery_latency_seconds_bucket", label="", le="+Inf") == count
    buckets = [s.value for s in after["chatbench_delivery_latency_seconds"].samples if s.name.endswith("_bucket")]
    assert buckets == sorted(buckets) and buckets[0] < count  # cumulative, and not all in the first
    for quantile, key in (("0.5", "p50_us"), ("0.99", "p99_us"), ("1", "max_us")):
        got = _value(after, "chatbench_latency_seconds", window="run", label="", quantile=quantile)
        assert got == pytest.approx(doc["latency_us"][key] / 1e6)  # type: ignore[literal-required]
    assert _value(after, "chatbench_deliveries_total") == doc["deliveries"]["delivered_all"]
    assert _value(after, "chatbench_faults_total", kind="lost") == 0
    assert _value(after, "chatbench_run_completed") == 1


def test_otlp_export_reaches_a_collector_and_decodes(live_run: dict[str, Any]) -> None:
    doc: RunDocument = live_run["doc"]
    collector: Collector = live_run["collector"]
    assert collector.requests and {path for path, _, _ in collector.requests} == {"/v1/metrics"}
    assert collector.requests[0][1] == "application/x-protobuf"
    resource = collector.requests[0][2].resource_metrics[0].resource
    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == "chatbench"
    p99 = [
        v
        for attrs, v in collector.points("chatbench.latency")
        if attrs["window"] == "run" and attrs["quantile"] == "0.99"
    ]
    assert p99 and p99[-1] == pytest.approx(doc["latency_us"]["p99_us"] / 1e6)
    delivered = [v for attrs, v in collector.points("chatbench.deliveries") if attrs["kind"] == "all"]
    assert delivered[-1] == doc["deliveries"]["delivered_all"]
    intervals = [v for _, v in collector.points("chatbench.interval")]
    assert len(set(intervals)) >= 3  # exported interval after interval


def test_otlp_url_gets_the_metrics_path() -> None:
    assert metrics_url("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/metrics"
    assert metrics_url("https://c.example:4318/custom") == "https://c.example:4318/custom"
    with pytest.raises(ValueError, match="OTLP/HTTP URL"):
        metrics_url("127.0.0.1:4318")


def test_the_terminal_shows_every_interval(live_run: dict[str, Any]) -> None:
    doc: RunDocument = live_run["doc"]
    rows = [line for line in live_run["lines"].splitlines() if line.startswith("[")]
    assert len(rows) == len(doc["intervals"]["intervals"])
    assert "deliveries/s" in rows[1] and "p99" in rows[1]
    table = live_run["table"]
    assert "every 0.5 s (deliveries by arrival)" in table and "p99 ms" in table


def test_a_port_in_use_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for option in ("--web", "--prometheus"):
            with pytest.raises(SystemExit) as exc:
                cli.main(["run", option, str(port), "--quiet", "--out", str(tmp_path / option)])
            assert exc.value.code == 2
            assert f"cannot open {option} on 127.0.0.1:{port}" in capsys.readouterr().err
