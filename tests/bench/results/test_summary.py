"""One run-summary function: the index, the capacity steps, the comparison's
points and the flat rows carry the same numbers, picked in one place; the
machine is read once per series."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.report import compare as compare_report
from bench.report import flat
from bench.results import machine
from bench.results.schema import RunDocument, SeriesParameters
from bench.results.store import SeriesWriter, index_entry, load_run
from bench.results.summary import run_summary
from bench.studies import capacity
from tests.paths import FIXTURES

RUN = FIXTURES / "report_sweep" / "queued" / "run-c00006.json"


def _run() -> RunDocument:
    return load_run(RUN)


def test_the_summary_is_the_run_documents_numbers() -> None:
    doc = _run()
    summary = run_summary(doc)
    assert summary["p99_us"] == doc["latency_us"]["p99_us"]
    assert summary["p95_us"] == doc["latency_us"]["p95_us"]
    assert summary["deliveries_per_s"] == doc["deliveries"]["per_s"]
    assert summary["delivered_ratio"] == doc["deliveries"]["delivered_ratio"]
    assert summary["faults"] == doc["integrity"]["faults"]
    server = doc["resources"]["server"]
    assert server is not None and summary["server_cpu_percent"] == server["summary"]["cpu_percent_window"]
    assert summary["load_generator_saturated"] is doc["load_generator_saturated"]


def test_index_capacity_compare_and_flat_rows_carry_the_same_summary() -> None:
    doc = _run()
    summary = run_summary(doc)
    entry = index_entry(doc, RUN.name)
    assert entry["summary"] == summary
    point = compare_report._point(entry, doc)
    step = capacity._step_record(6, doc, None, bound=10_000.0)
    row = flat.point_row("queued", doc)
    for key, value in summary.items():
        assert point.get(key) == value, key
        assert step.get(key) == value, key
        assert row[f"summary.{key}"] == value, key
    assert step["saturated"] is summary["load_generator_saturated"]
    # what diff compares is read from the summary columns
    assert all(metric.column.startswith("summary.") for metric in flat.METRICS)


def test_a_failed_point_has_no_summary() -> None:
    step = capacity._step_record(6, None, "server failed to start", bound=500.0)
    assert "p95_us" not in step and step["error"] == "server failed to start"
    point = compare_report._point({"clients": 6, "file": None, "status": "error", "error": "boom"}, None)
    assert point == {"clients": 6, "status": "error", "error": "boom"}


def test_the_machine_is_read_once_and_the_index_carries_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine.machine.cache_clear()
    calls: list[tuple[str, ...]] = []
    real = subprocess.run

    def counting(argv: Any, *args: Any, **kwargs: Any) -> Any:
        if argv and argv[0] == "git":
            calls.append(tuple(argv))
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting)
    first, second = machine.environment(), machine.environment()
    assert len(calls) == 2  # rev-parse and status, once for the process
    assert {k: v for k, v in first.items() if k != "load_average"} == {
        k: v for k, v in second.items() if k != "load_average"
    }
    assert first["load_average"] is not None  # read every time: it changes
    parameters: SeriesParameters = json.loads((RUN.parent / "index.json").read_text())["parameters"]
    writer = SeriesWriter(tmp_path, parameters, "queued", None)
    writer.add(_run())
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["environment"]["cpu_count"] == first["cpu_count"]
    assert index["runs"][0]["summary"] == run_summary(_run())
    assert len(calls) == 2
