"""The CI regression gate on broadcast fan-out latency (bench/gate/).

Runs under plain ``pytest`` (so ``make test`` and CI).  The gate measures
the server (a subprocess) against a calibration relay (another subprocess)
in the same run and compares the ratio of their fan-out times with the
committed ``bench/gate/baseline.json``; absolute times are never compared.

pytest-benchmark times the server's transfers (one burst to every receiver
per round), so ``pytest tests/perf --benchmark-autosave`` and later
``--benchmark-compare`` give a local, absolute before/after view; CI relies
on the committed ratio only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import gate

SLOW_SERVER = Path(__file__).with_name("slow_server.py")


def gate_command() -> list[str]:
    """``python -m bench gate``."""
    return [sys.executable, "-m", "bench", "gate"]


@pytest.fixture(scope="module")
def baseline() -> gate.Baseline:
    return gate.load_baseline()


def _extra_info(measurements: list[gate.Measurement]) -> dict[str, Any]:
    last = measurements[-1]
    return {
        **{k: round(v, 4) for k, v in last.ratios.items()},
        "server_fanout_ms": round(last.server.typical_fanout_us / 1000, 3),
        "relay_fanout_ms": round(last.relay.typical_fanout_us / 1000, 3),
        "attempts": [{k: round(v, 4) for k, v in m.ratios.items()} for m in measurements],
    }


# --------------------------------------------------------------------------
# The gate itself
# --------------------------------------------------------------------------


def test_perf_fanout_gate(benchmark: Any, baseline: gate.Baseline) -> None:
    """The server's fan-out, relative to the calibration relay, is no worse
    than the committed baseline allows."""
    scenario = gate.Scenario()
    with gate.GateRun(scenario) as run:
        run.warm_up()
        benchmark.group = "fan-out"
        # Timed: one server burst per round; between rounds (untimed) the
        # previous burst is checked and a calibration burst runs.
        benchmark.pedantic(run.server_transfer, setup=run.next_round, rounds=scenario.rounds)
        run.complete_rounds()  # also covers --benchmark-disable (one round only)
        first = run.measurement()
    verdict, measurements = gate.check(scenario, baseline, first=first)
    benchmark.extra_info.update(_extra_info(measurements))
    assert first.server.timed_out == 0, verdict.message
    assert len(first.server.fanout_us) == len(first.relay.fanout_us) == scenario.rounds
    # The two gated metrics are two things: the median delivery comes before the last one.
    assert first.server.typical_p50_us < first.server.typical_fanout_us
    assert set(first.ratios) == set(gate.METRIC_DESCRIPTIONS)
    assert verdict.ok, verdict.message


def test_perf_gate_flags_direct_fanout_with_a_stalled_reader(baseline: gate.Baseline) -> None:
    """The proof that the gate can fail: the seed's ``--fanout direct`` with
    one registered client that never reads stalls every broadcast, and the
    gate reports it against the ``queued`` baseline, naming the metric, the
    baseline, the tolerance and the measured value."""
    scenario = gate.Scenario(fanout="direct", stalled=1, rounds=3, warmup=0, burst_timeout=1.0)
    verdict, measurements = gate.check(scenario, baseline)
    assert len(measurements) == 1, "a stall is not re-measured"
    measurement = measurements[0]
    assert measurement.stalled
    assert not verdict.ok
    assert "fanout_ratio" in verdict.failures
    fanout = baseline.metrics["fanout_ratio"]
    message = verdict.message
    assert "REGRESSION" in message
    assert f"fanout_ratio >= {measurement.ratios['fanout_ratio']:.3f}" in message
    assert f"baseline {fanout.value:.3f}" in message
    assert f"tolerance +{fanout.tolerance:.0%}" in message
    assert f"limit {fanout.limit:.3f}" in message
    assert "did not deliver a burst" in message
    # The calibration relay beside it was measured normally.
    assert measurement.relay.timed_out == 0


def test_perf_gate_catches_a_2x_slower_fanout_path(baseline: gate.Baseline) -> None:
    """The real server with its fan-out path made twice as slow
    (tests/perf/slow_server.py: every stretch of server code from reading
    a batch to its last send is followed by a spin as long) fails the gate
    exactly as CI runs it, confirmation measurement included."""
    command = (sys.executable, str(SLOW_SERVER), "2", "--port", "0", "--log-level", "INFO", "--rate-limit", "0")
    scenario = gate.Scenario(server_command=command)
    verdict, measurements = gate.check(scenario, baseline)
    assert not any(m.stalled for m in measurements)
    assert not verdict.ok, verdict.message
    assert "fanout_ratio" in verdict.failures, verdict.message
    assert len(measurements) == 2, "a failure is confirmed by a second measurement"


# --------------------------------------------------------------------------
# Comparison logic and the committed baseline (no sockets)
# --------------------------------------------------------------------------


def test_perf_committed_baseline_records_how_it_was_made(baseline: gate.Baseline) -> None:
    raw = baseline.raw
    assert raw["schema"] == gate.BASELINE_SCHEMA
    # (written before the single command line: "python -m bench.gate")
    assert raw["command"].startswith(("python -m bench gate --write-baseline", "python -m bench.gate --write-baseline"))
    assert raw["created"] and baseline.machine["cpu_count"] >= 1 and baseline.machine["cpu_model"]
    assert len(raw["runs"]) >= 1
    assert baseline.scenario == gate.Scenario().key(), "the baseline must describe the scenario the gate runs"
    assert set(baseline.metrics) == set(gate.METRIC_DESCRIPTIONS)
    # Each gated metric measures something of its own: no two are equal in every run.
    names = sorted(gate.METRIC_DESCRIPTIONS)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert any(run[a] != run[b] for run in raw["runs"]), f"{a} and {b} are one metric"


def test_perf_committed_tolerance_catches_a_2x_slowdown(baseline: gate.Baseline) -> None:
    for name, metric in baseline.metrics.items():
        assert compare_one(baseline, name, metric.value).ok
        assert compare_one(baseline, name, metric.limit * 0.999).ok
        assert not compare_one(baseline, name, metric.limit * 1.001).ok
        doubled = compare_one(baseline, name, metric.value * 2.0)
        assert not doubled.ok, f"{name}: tolerance {metric.tolerance} lets a 2x slowdown through"
        assert doubled.failures == (name,)


def compare_one(baseline: gate.Baseline, name: str, value: float) -> gate.Verdict:
    ratios = {k: m.value for k, m in baseline.metrics.items()}
    ratios[name] = value
    return gate.compare(ratios, baseline, scenario=baseline.scenario)


def test_perf_compare_message_names_metric_baseline_tolerance_and_value() -> None:
    baseline = gate.Baseline({"fanout_ratio": gate.MetricBaseline(1.2, 0.5)}, gate.Scenario().key(), "b.json")
    verdict = gate.compare({"fanout_ratio": 2.5}, baseline)
    assert not verdict.ok
    first = verdict.lines[0]
    assert first.startswith("FAIL fanout_ratio = 2.500")
    assert "baseline 1.200" in first and "tolerance +50%" in first and "limit 1.800" in first
    assert "2.08x the baseline" in first
    assert "b.json" in verdict.message
    assert gate.compare({"fanout_ratio": 1.7}, baseline).ok


def test_perf_compare_refuses_a_baseline_for_another_scenario() -> None:
    baseline = gate.Baseline({"fanout_ratio": gate.MetricBaseline(1.2, 0.5)}, gate.Scenario().key(), "b.json")
    other = gate.Scenario(clients=10).key()
    with pytest.raises(gate.GateError, match="differs from the baseline"):
        gate.compare({"fanout_ratio": 1.0}, baseline, scenario=other)
    with pytest.raises(gate.GateError, match="has no 'fanout_ratio'"):
        gate.compare({"p99_ratio": 1.0}, baseline)


def test_perf_load_baseline_reports_bad_files(tmp_path: Path) -> None:
    with pytest.raises(gate.GateError, match="--write-baseline"):
        gate.load_baseline(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"schema": 1, "metrics": {"fanout_ratio": {"value": 1.0}}}))
    with pytest.raises(gate.GateError, match="malformed"):
        gate.load_baseline(broken)


def test_perf_build_baseline_refuses_a_stalled_run() -> None:
    summary = gate.TargetSummary("server", (1000,), (1000,), (1000,), 1, 50, {})
    relay = gate.TargetSummary("relay", (10,), (5,), (10,), 0, 0, {})
    stalled = gate.Measurement(gate.Scenario(), summary, relay, 1.0)
    with pytest.raises(gate.GateError, match="stalled"):
        gate.build_baseline([stalled], gate.DEFAULT_TOLERANCES, "python -m bench gate --write-baseline")


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------


def test_perf_cli_writes_a_baseline_and_exits_1_on_regression(tmp_path: Path) -> None:
    """End to end through ``python -m bench gate`` with a small scenario."""
    path = tmp_path / "baseline.json"
    small = ["--clients", "5", "--lines", "10", "--rounds", "3", "--warmup", "1", "--baseline", str(path), "-q"]
    write = ["--write-baseline", "--runs", "1", "--tolerance", "fanout_ratio=0.4"]
    written = subprocess.run(
        [*gate_command(), *write, *small],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert written.returncode == 0, written.stderr
    document = json.loads(path.read_text())
    assert document["metrics"]["fanout_ratio"]["tolerance"] == 0.4
    assert document["command"].startswith("python -m bench gate --write-baseline")
    assert document["machine"]["cpu_count"] >= 1, "machine information as every result has it"
    assert document["scenario"]["clients"] == 5
    checked = subprocess.run(
        [*gate_command(), "--fanout", "direct", "--stalled", "1", "--burst-timeout", "0.5", *small],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "REGRESSION" in checked.stdout and "fanout_ratio" in checked.stdout
