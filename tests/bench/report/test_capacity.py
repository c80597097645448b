"""The capacity search's logic, with a simulated server (no sockets)."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import report, results
from bench.report import capacity as capacity_report
from bench.report import plots
from bench.studies import capacity
from tests.paths import FIXTURES


def fake_run(
    clients: int,
    *,
    p95_ms: float,
    lost: int = 0,
    failed: int = 0,
    saturated: bool = False,
) -> dict[str, Any]:
    """The keys of a swarm run document that the search reads."""
    p95 = int(p95_ms * 1000)
    return {
        "latency_us": {
            "count": 1000,
            "p50_us": p95 // 2,
            "p90_us": p95 - 1,
            "p95_us": p95,
            "p99_us": p95 * 2,
            "p99_9_us": p95 * 2,
            "max_us": p95 * 3,
        },
        "resources": {},
        "integrity": {"lost": lost, "duplicated": 0, "reordered": 0, "corrupted": 0, "faults": lost},
        "connections": {"requested": clients, "failed": failed, "failures": {"timed out": failed} if failed else {}},
        "deliveries": {"delivered_ratio": 1.0, "per_s": 1000.0},
        "load_generator_saturated": saturated,
    }


def linear_server(ms_per_client: float, **kw: Any) -> capacity.RunPoint:
    """p95 grows linearly with the client count."""

    def run(n: int) -> tuple[dict[str, Any] | None, str | None]:
        return fake_run(n, p95_ms=n * ms_per_client, **kw), None

    return run


def test_search_doubles_then_bisects_to_the_largest_passing_count() -> None:
    # p95 = n ms: 500 clients is the last within 500 ms
    seen: list[int] = []
    found = capacity.search(
        linear_server(1.0),
        capacity.SearchConfig(start=100, growth=2, refine=3, confirm=0),
        on_step=lambda s: seen.append(s["clients"]),
    )
    assert seen == [100, 200, 400, 800, 600, 500, 550]
    r = found["result"]
    assert r["largest_passing"] == 500
    assert r["smallest_failing"] == 550
    assert r["why"] == ["p95 latency 550.0 ms is above the 500 ms bound"]
    assert r["summary"].startswith("500 clients pass; 550 fail: p95 latency 550.0 ms")
    assert [s["passed"] for s in found["steps"]] == [True, True, True, False, False, True, False]


def test_additive_steps_and_the_bound_are_configurable() -> None:
    found = capacity.search(
        linear_server(1.0),
        capacity.SearchConfig(start=50, step=50, refine=0, p95_bound_ms=120, max_clients=1000, confirm=0),
    )
    assert [s["clients"] for s in found["steps"]] == [50, 100, 150]
    assert found["result"]["largest_passing"] == 100 and found["result"]["smallest_failing"] == 150


def test_a_lost_delivery_or_a_failed_connection_fails_a_point_whatever_the_latency() -> None:
    def lossy(n: int) -> tuple[dict[str, Any] | None, str | None]:
        return fake_run(n, p95_ms=1, lost=3 if n >= 300 else 0, failed=5 if n >= 1000 else 0), None

    found = capacity.search(lossy, capacity.SearchConfig(start=100, growth=2, refine=0))
    assert found["result"]["largest_passing"] == 200
    assert found["result"]["why"] == ["3 deliveries lost"]
    assert capacity.judge(fake_run(1000, p95_ms=1, failed=5), 500) == [
        "5 of 1000 clients failed to connect (5x timed out)"
    ]


def test_reaching_the_limit_a_failing_start_and_a_broken_run_are_reported() -> None:
    found = capacity.search(linear_server(0.01), capacity.SearchConfig(start=100, growth=3, max_clients=1000))
    assert [s["clients"] for s in found["steps"]] == [100, 300, 900, 1000]
    assert found["result"]["reached_max_clients"] is True and found["result"]["largest_passing"] == 1000
    assert "at least 1000 clients" in found["result"]["summary"]

    found = capacity.search(linear_server(10.0), capacity.SearchConfig(start=100, refine=2, confirm=0))
    assert found["result"]["largest_passing"] is not None  # bisection below the start found a passing count
    assert found["result"]["largest_passing"] < 100

    def broken(n: int) -> tuple[dict[str, Any] | None, str | None]:
        return (None, "no sender could register") if n > 150 else (fake_run(n, p95_ms=1), None)

    found = capacity.search(broken, capacity.SearchConfig(start=100, growth=2, refine=0))
    assert found["result"]["smallest_failing"] == 200
    assert found["result"]["why"] == ["the run failed: no sender could register"]


def test_saturated_load_generator_at_the_limit_is_called_out() -> None:
    found = capacity.search(linear_server(1.0, saturated=True), capacity.SearchConfig(start=400, growth=2, refine=0))
    assert found["result"]["load_generator_saturated_at_limit"] is True
    assert "may be the harness's capacity" in found["result"]["summary"]


def test_document_round_trip_and_markdown(tmp_path: Any) -> None:
    cfg = capacity.SearchConfig(start=100, growth=2, refine=1, confirm=0)
    found = capacity.search(linear_server(1.0), cfg)
    params = {"senders": 4, "rate": 100.0, "duration_s": 3.0, "payload_bytes": 64}
    doc = capacity.document(
        [{"label": "queued", "directory": "queued", **found}], cfg, params, ["python", "-m", "bench"]
    )
    json_path, md_path = capacity.write(tmp_path, doc)
    assert results.load_capacity(tmp_path) == doc
    md = md_path.read_text()
    assert "**queued: 400**" in md
    assert "4 concurrent senders, 100 msg/s" in md
    assert "| 800 | FAIL | 400.0 | 800.0 | 1600.0 | 2400.0 | 100.00% | p95 latency 800.0 ms" in md
    json_path.write_text('{"kind": "other"}')
    with pytest.raises(results.ResultsError):
        results.load_capacity(tmp_path)


def test_a_slow_point_is_confirmed_but_a_loss_is_not_retried() -> None:
    attempts: dict[int, int] = {}

    def flaky(n: int) -> tuple[dict[str, Any] | None, str | None]:
        attempts[n] = attempts.get(n, 0) + 1
        if n == 200 and attempts[n] == 1:
            return fake_run(n, p95_ms=900), None  # one unlucky run
        if n >= 800:
            return fake_run(n, p95_ms=1, lost=1), None
        return fake_run(n, p95_ms=n / 10), None

    found = capacity.search(flaky, capacity.SearchConfig(start=100, growth=2, refine=0, confirm=1))
    assert [(s["clients"], s["attempt"], s["passed"]) for s in found["steps"]] == [
        (100, 1, True),
        (200, 1, False),
        (200, 2, True),
        (400, 1, True),
        (800, 1, False),
    ]
    assert found["result"]["largest_passing"] == 400 and found["result"]["why"] == ["1 delivery lost"]


@pytest.mark.parametrize(
    "kw",
    [
        {"start": 1},
        {"growth": 1.0},
        {"step": 0},
        {"max_clients": 10, "start": 20},
        {"refine": -1},
        {"p95_bound_ms": 0},
        {"confirm": -1},
    ],
)
def test_bad_search_parameters_are_refused(kw: dict[str, Any]) -> None:
    with pytest.raises(capacity.CapacityError):
        capacity.SearchConfig(**kw)


def test_the_boundary_is_repeated_and_its_spread_reported(tmp_path: Any) -> None:
    runs: dict[int, int] = {}

    def noisy(n: int) -> tuple[dict[str, Any] | None, str | None]:
        runs[n] = runs.get(n, 0) + 1
        return fake_run(n, p95_ms=n + 10 * runs[n]), None  # each repeat 10 ms slower

    cfg = capacity.SearchConfig(start=100, growth=2, refine=3, confirm=0, repeat_boundary=3)
    found = capacity.search(noisy, cfg)
    r = found["result"]
    low, high = r["largest_passing"], r["smallest_failing"]
    assert low is not None and high is not None
    assert runs[low] == 3 and runs[high] == 3
    assert sum(runs.values()) == len(found["steps"])
    doc = capacity.document([{"label": "queued", "directory": "queued", **found}], cfg, {"rate": 0})
    search = doc["searches"][0]
    rows = {row[1]: row for row in capacity_report.boundary_rows(search)}
    p95 = sorted(s["p95_us"] or 0 for s in found["steps"] if s["clients"] == low)
    every = rows["passed every run"]
    assert every[0] == str(low) and rows["first failing"][0] == str(high)
    assert every[2] == "3"
    assert every[4] == f"{p95[0] / 1000:.1f}" and every[5] == f"{p95[-1] / 1000:.1f}"
    assert every[3] == "3 of 3"
    assert "## Boundary: queued" in capacity_report.render_markdown(doc)


def test_the_headline_is_a_count_that_passed_every_repeat_and_says_the_spread() -> None:
    # p95 = n ms, but 500 clients pass only their first run: the boundary is a band on this machine
    runs: dict[int, int] = {}

    def flaky(n: int) -> tuple[dict[str, Any] | None, str | None]:
        runs[n] = runs.get(n, 0) + 1
        return fake_run(n, p95_ms=600.0 if n == 500 and runs[n] > 1 else float(n)), None

    cfg = capacity.SearchConfig(start=100, growth=2, refine=3, confirm=0, repeat_boundary=3)
    found = capacity.search(flaky, cfg)
    r = found["result"]
    assert (r["largest_passing"], r["smallest_failing"]) == (400, 550)
    assert runs[400] == runs[500] == runs[550] == 3
    assert capacity.holds(found["steps"], 400) and not capacity.holds(found["steps"], 500)
    assert r["summary"].startswith(
        "400 clients pass all 3 runs (p95 400-400 ms); 500 passed 1 of 3 runs (p95 500-600 ms)"
    )
    assert "550 fail (0 of 3 runs passed): p95 latency 550.0 ms" in r["summary"]
    doc = capacity.document([{"label": "queued", "directory": "queued", **found}], cfg, {"rate": 0})
    rows = capacity_report.boundary_rows(doc["searches"][0])
    assert [(row[0], row[1], row[3]) for row in rows] == [
        ("400", "passed every run", "3 of 3"),
        ("500", "passed some runs", "1 of 3"),
        ("550", "first failing", "0 of 3"),
    ]
    assert "**queued: 400** — 400 clients pass all 3 runs" in capacity_report.render_markdown(doc)


def test_no_boundary_no_repeat() -> None:
    found = capacity.search(linear_server(0.01), capacity.SearchConfig(start=100, growth=3, repeat_boundary=3))
    assert [s["clients"] for s in found["steps"]] == [100, 300, 900, 2700, 5000]
    assert capacity_report.boundary_rows({"label": "q", "directory": "q", **found}) == []


def test_the_progress_line_estimates_the_time_left() -> None:
    cfg = capacity.SearchConfig(start=100, growth=2, max_clients=800, refine=2, repeat_boundary=3)
    progress = capacity.SearchProgress(cfg, lambda n: float(n))
    # before any failure: up to the maximum, the bisection, the repeats
    assert progress.counts_left(100) == [100, 200, 400, 800, 800, 800, 800, 800, 800, 800]
    assert "left at most" in progress.line(100) and "step 1;" in progress.line(100)
    progress.done({"clients": 100, "passed": True, "reasons": [], "saturated": False})
    progress.done({"clients": 200, "passed": False, "reasons": ["slow"], "saturated": False})
    # after the first failure: the bisection's remaining steps and the repeats only
    assert progress.counts_left(150) == [150, 150, 150, 150, 150, 150]
    assert "step 3;" in progress.line(150)


def test_the_capacity_chart_draws_the_bound_and_marks_failed_steps() -> None:
    line = plots.CapacityLine("queued", [100, 200, 400], [1e3, 2e3, 4e3], [5e4, 2e5, 9e5], [1e5, 4e5, 2e6])
    line.passed = [True, True, False]
    fig = plots.capacity_figure([line], 500.0)
    ax = fig.axes[0]
    bound = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [500.0, 500.0]]
    assert bound and bound[0].get_linestyle() == "--"
    crosses = [ln for ln in ax.get_lines() if ln.get_marker() == "X" and len(ln.get_xdata())]
    assert [list(c.get_xdata()) for c in crosses] == [[400]]
    p95 = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [50.0, 200.0, 900.0]]
    assert p95 and p95[0].get_linestyle() == "-"
    plots.plt.close(fig)


def test_client_count_labels_do_not_run_together() -> None:
    counts = [100, 200, 400, 800, 1600, 3200, 4100, 4325, 4550, 5000]
    for log in (True, False):
        kept = plots.labelled_ticks(counts, log)
        assert kept[0] == 100 and kept[-1] == 5000
        pos = dict(zip(counts, plots.axis_position(counts, log), strict=True))
        gaps = [pos[b] - pos[a] for a, b in itertools.pairwise(kept)]
        assert min(gaps) >= plots.MIN_LABEL_GAP
    assert plots.labelled_ticks([10, 50, 100, 250, 500, 1000], True) == [10, 50, 100, 250, 500, 1000]


def test_the_report_of_a_capacity_directory_shows_the_capacity_chart(tmp_path: Path) -> None:
    out = tmp_path / "cap"
    shutil.copytree(FIXTURES / "report_sweep", out)
    cfg = capacity.SearchConfig(start=100, growth=2, refine=1, confirm=0, repeat_boundary=2)
    found = capacity.search(linear_server(1.0), cfg)
    params = {"senders": 4, "rate": 100.0, "duration_s": 3.0, "payload_bytes": 64}
    capacity.write(out, capacity.document([{"label": "queued", "directory": "queued", **found}], cfg, params))
    written = report.build_report(out)
    assert written["capacity"] == out / plots.CAPACITY_PNG and written["capacity"].read_bytes()[:4] == b"\x89PNG"
    md = (out / report.REPORT_MD).read_text()
    capacity_section = md.split("## Capacity")[1].split("## Charts")[0]
    assert f"]({plots.CAPACITY_PNG})" in capacity_section and "### Boundary: queued" in capacity_section
