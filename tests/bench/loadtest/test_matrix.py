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


def interval(k: int, delivered: int) -> dict[str, Any]:
    return {"start_s": float(k), "length_s": 1.0, "delivered": delivered}


def test_locust_cpu_per_delivery_counts_only_the_steady_intervals() -> None:
    # Locust's CPU: 0.5 s per second from T0 (start-up included), sampled every 0.25 s for 10 s.
    samples = [(T0 + i * 0.25, 0.125 * i) for i in range(41)]
    doc = {
        "interval_origin_unix_s": T0 + 1.0,
        "intervals": [interval(k, 100 if k < 2 else 10_000) for k in range(9)],  # ramp, then 10k/s
        "summary": {"count": 70_200, "p50_us": 1500, "p99_us": 4000},
        "read_lag": {"summary": {"p50_us": 100, "p99_us": 900}},
        "integrity": {"lost": 0, "duplicated": 0, "reordered": 1, "corrupted": 0},
    }
    row = lm.locust_row(doc, samples, 5.0, ARGS, "x.json")
    # Intervals 2..7 start 3 s after the first sample and end a second before the last: 6 s, 60k deliveries.
    assert row.deliveries_per_s == 10_000
    assert row.cpu_percent == 50.0
    assert row.cpu_us_per_delivery == 50.0  # 3 CPU s / 60,000
    assert (row.p50_ms, row.p99_ms, row.read_lag_p99_ms, row.faults) == (1.5, 4.0, 0.9, 1)


def test_swarm_row_and_the_goals() -> None:
    doc = {
        "latency_us": {"p50_us": 1000, "p99_us": 3000},
        "receive_lag_us": {"p50_us": 50, "p99_us": 400},
        "deliveries": {"delivered": 99_000, "per_s": 19_800.0},
        "resources": {"harness_cpu_percent_window": 29.7},
        "integrity": {"lost": 0, "duplicated": 0, "reordered": 0, "corrupted": 0},
    }
    swarm = lm.swarm_row(doc, 2.0, ARGS, "run.json")
    assert swarm.cpu_us_per_delivery == 15.0  # 0.297 core / 19,800 per s
    locust = lm.Row("locust", 100, 2.0, 1, 19_800.0, 1.2, 4.1, 0.1, 0.5, 40.0, 19.5, 0, 0, "l.json")
    compared = lm.verdicts(locust, swarm)
    assert compared == {
        "rate_per_user": 2.0,
        "p99_ratio": 1.37,
        "p99_goal_met": True,
        "cpu_ratio": 1.3,
        "cpu_goal_met": True,
    }
    slow = lm.Row("locust", 100, 2.0, 1, 19_800.0, 1.2, 4.2, 0.1, 0.5, 40.0, 19.6, 0, 0, "l.json")
    assert lm.verdicts(slow, swarm)["p99_goal_met"] is False and lm.verdicts(slow, swarm)["cpu_goal_met"] is False
    table = lm.markdown([locust, swarm], [compared], "now")
    assert "| 100 users x 2 msg/s | locust | 19800 | 1.2 ms | 4.1 ms |" in table
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
