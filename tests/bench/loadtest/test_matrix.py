"""``tools/locustmatrix.py``'s arithmetic, without running anything: a Locust
run's CPU per delivery over its steady intervals, a swarm run's from its
document, Locust ÷ swarm against the issue's goals, and the table."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bench.measure.stats import LatencyHistogram
from tests.paths import REPO


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("locustmatrix", REPO / "tools" / "locustmatrix.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


lm = load_tool()
ARGS = argparse.Namespace(users=100, settle=3.0)
T0 = 1_800_000_000.0


def encoded(hist: LatencyHistogram) -> dict[str, Any]:
    """A histogram as the Locust JSON's intervals hold it."""
    return {"format": "hdrhistogram-v2-base64", "unit": "us", "data": hist.encode(), "clamped": 0}


def interval(k: int, delivered: int, latency_us: int = 2000) -> dict[str, Any]:
    """Interval ``k``: ``delivered`` deliveries, each ``latency_us`` late."""
    hist = LatencyHistogram()
    hist.record(latency_us, delivered)
    return {"start_s": float(k), "length_s": 1.0, "delivered": delivered, "histogram": encoded(hist)}


def test_locust_cpu_per_delivery_counts_only_the_steady_intervals() -> None:
    # Locust's CPU: 0.5 s per second from T0 (start-up included), sampled every 0.25 s for 10 s.
    samples = [(T0 + i * 0.25, 0.125 * i) for i in range(41)]
    doc = {
        "interval_origin_unix_s": T0 + 1.0,
        # a ramp (slow), then 10k/s: 99% at 2 ms, 1% at 9 ms in the steady intervals
        "intervals": [interval(k, 100, 80_000) if k < 2 else steady(k) for k in range(9)],
        "summary": {"count": 70_200, "p50_us": 1500, "p99_us": 4000},
        "read_lag": {"summary": {"p50_us": 100, "p99_us": 900}},
        "send_lag": {"summary": {"p50_us": 40, "p99_us": 700}},
        "integrity": {"lost": 0, "duplicated": 0, "reordered": 1, "corrupted": 0},
    }
    row = lm.locust_row(doc, samples, 5.0, ARGS, "x.json")
    # Intervals 2..7 start 3 s after the first sample and end a second before the last: 6 s, 60k deliveries.
    assert row.deliveries_per_s == 10_000
    assert row.cpu_percent == 50.0
    assert row.cpu_us_per_delivery == 50.0  # 3 CPU s / 60,000
    assert (row.p50_ms, row.p99_ms, row.read_lag_p99_ms, row.send_lag_p99_ms, row.faults) == (1.5, 4.0, 0.9, 0.7, 1)
    # The steady percentiles: the same intervals' exact histograms merged, the ramp's 80 ms left out.
    assert row.steady_p50_ms == pytest.approx(2.0, rel=0.002)
    assert row.steady_p99_ms == pytest.approx(2.0, rel=0.002)
    assert lm.merged_percentiles([steady(2), interval(3, 500, 80_000)])[1] == pytest.approx(80.0, rel=0.002)
    assert lm.merged_percentiles([]) == (None, None)


def steady(k: int) -> dict[str, Any]:
    """A steady interval: 10,000 deliveries, 9,901 at 2 ms and 99 at 9 ms (under 1%)."""
    section = interval(k, 9_901, 2000)
    hist = LatencyHistogram.decode(section["histogram"]["data"])
    hist.record(9000, 99)
    return {**section, "delivered": 10_000, "histogram": encoded(hist)}


def test_swarm_row_and_the_goals() -> None:
    doc = {
        "latency_us": {"p50_us": 1000, "p99_us": 3000},
        "receive_lag_us": {"p50_us": 50, "p99_us": 400},
        "send_lag_us": {"p50_us": 20, "p99_us": 300},
        "deliveries": {"delivered": 99_000, "per_s": 19_800.0},
        "resources": {"harness_cpu_percent_window": 29.7},
        "integrity": {"lost": 0, "duplicated": 0, "reordered": 0, "corrupted": 0},
    }
    swarm = lm.swarm_row(doc, 2.0, ARGS, "run.json")
    assert swarm.cpu_us_per_delivery == 15.0  # 0.297 core / 19,800 per s
    assert swarm.send_lag_p99_ms == 0.3
    assert (swarm.steady_p50_ms, swarm.steady_p99_ms) == (1.0, 3.0)  # its measured window is the steady one
    # Locust's whole-run p99 (ramp included, 40 ms) is shown, but the goal compares the steady one.
    locust = lm.Row("locust", 100, 2.0, 1, 19_800.0, 9.0, 40.0, 0.1, 0.5, 40.0, 19.5, 0, 0, "l.json", 1.2, 4.1)
    compared = lm.verdicts(locust, swarm)
    assert compared == {
        "rate_per_user": 2.0,
        "p99_ratio": 1.37,
        "p99_goal_met": True,
        "cpu_ratio": 1.3,
        "cpu_goal_met": True,
    }
    slow = lm.Row("locust", 100, 2.0, 1, 19_800.0, 1.2, 4.2, 0.1, 0.5, 40.0, 19.6, 0, 0, "l.json", 1.2, 4.2)
    assert lm.verdicts(slow, swarm)["p99_goal_met"] is False and lm.verdicts(slow, swarm)["cpu_goal_met"] is False
    table = lm.markdown([locust, swarm], [compared], "now")
    assert "| 100 users x 2 msg/s | locust | 19800 | 1.2 ms | 4.1 ms | 9 ms | 40 ms |" in table
    assert "| 2 | 1.37 | yes | 1.3 | yes |" in table


def test_the_cores_must_differ(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        lm.parse_args(["--out", "x", "--server-cpu", "0", "--harness-cpu", "0"])
    assert "two different cores" in capsys.readouterr().err


def test_cpu_between_interpolates_and_knows_its_limits() -> None:
    samples = [(0.0, 0.0), (1.0, 0.5), (2.0, 1.5)]
    assert lm.cpu_between(samples, 0.5, 1.5) == pytest.approx(0.75)
    assert lm.cpu_between(samples, 0.5, 2.5) is None


def test_the_tool_exists_where_the_docs_say() -> None:
    assert "tools/locustmatrix.py" in (REPO / "docs" / "locust.md").read_text(encoding="utf-8")
    assert isinstance(lm.REPO, Path)


def run(generator: str, repeat: int, p99: float, cpu: float, lost: int = 0) -> Any:
    """Run ``repeat`` at 5 msg/s: its steady p99 (ms; its whole-run p99 3x that) and CPU per delivery (µs)."""
    row = lm.Row(generator, 100, 5.0, 1000, 49_500.0, 0.5, p99 * 3, 0.9, 2.5, 90.0, cpu, lost, 0, generator)
    return lm.replace(row, repeat=repeat, steady_p50_ms=0.5, steady_p99_ms=p99)


def test_repeats_give_medians_the_pairs_spread_and_each_run() -> None:
    runs = [
        run("locust", 1, 3.0, 20.0),
        run("swarm", 1, 2.5, 17.0),
        run("locust", 2, 30.0, 19.0, lost=2),  # a hiccup of the machine in one run
        run("swarm", 2, 2.0, 18.0),
        run("locust", 3, 3.2, 21.0),
        run("swarm", 3, 3.0, 16.0),
    ]
    rows, compared = lm.summarise(runs, [5.0])
    locust, swarm = rows
    assert (locust.generator, locust.repeat, locust.steady_p99_ms, locust.cpu_us_per_delivery) == (
        "locust",
        0,
        3.2,
        20.0,
    )
    assert (swarm.steady_p99_ms, swarm.cpu_us_per_delivery) == (2.5, 17.0)
    assert locust.lost == 2  # lost and faults: the most of any run
    [goal] = compared
    assert goal["p99_ratio"] == 1.28 and goal["p99_goal_met"] is True  # 3.2 <= 1.2 x 2.5 + 0.5
    assert goal["p99_ratio_pairs"] == [1.07, 15.0] and goal["cpu_ratio_pairs"] == [1.06, 1.31]
    assert goal["repeats"] == 3
    table = lm.markdown(rows, compared, "now", runs)
    assert "Medians of 3 runs each" in table
    assert "| 5 | 1.28 (1.07-15) | yes | 1.18 (1.06-1.31) | yes |" in table
    assert "| 100 users x 5 msg/s | locust | 2 | 49500 | 0.5 ms | 30 ms | 0.5 ms | 90 ms |" in table
    args = lm.parse_args(["--out", "x", "--repeat", "3", "--seconds", "20", "--settle", "3"])
    assert (args.repeat, args.swarm_duration) == (3, 16.0)  # the swarm runs as long as Locust's steady window
    assert lm.run_name("swarm", 5.0, 2, args) == "swarm-r5-2"
