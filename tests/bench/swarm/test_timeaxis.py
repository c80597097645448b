"""The time axis end to end: real swarm runs, their interval series and logs.

A run's intervals add up exactly to its histogram and counts; the ``.hlog``
beside its JSON reads back with the ``hdrhistogram`` package to the same
totals; a relay that stalls in second 3 shows in interval 3 only, and its
injected faults in the intervals they happened in.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from bench import cli
from bench.measure.stats import HIGHEST_US, LOWEST_US, SIGNIFICANT_FIGURES, LatencyHistogram
from bench.measure.thresholds import THRESHOLDS_FAILED_EXIT
from bench.results import store
from bench.results.schema import RunDocument
from bench.swarm import SwarmConfig, run_swarm
from bench.targets.faultplan import FaultOptions
from bench.targets.faultrelay import option_argv

pytestmark = pytest.mark.slow


def _counts(h: LatencyHistogram) -> tuple[list[int], int]:
    return list(h._hist.counts), h.count


def _added(doc: RunDocument) -> LatencyHistogram:
    total = LatencyHistogram()
    for section in doc["intervals"]["intervals"]:
        h = section["histogram"]
        total.merge(LatencyHistogram.decode(h["data"], h["clamped"]))
    return total


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunDocument, Path]:
    """20 clients on our server, 0.5 s intervals, written as a series is."""
    config = SwarmConfig(clients=20, senders=5, rate=400, duration_s=2.0, warmup_s=0.5, interval_s=0.5, progress=False)
    doc = run_swarm(config)
    out = tmp_path_factory.mktemp("timeaxis")
    writer = store.SeriesWriter(out, config.series_parameters(), "queued", None)
    writer.add(doc)
    return doc, out


def test_the_intervals_add_up_exactly_to_the_run(plain_run: tuple[RunDocument, Path]) -> None:
    doc, _ = plain_run
    series = doc["intervals"]
    sections = series["intervals"]
    assert series["interval_s"] == 0.5 and series["assigned_by"] == "arrival"
    assert [s["index"] for s in sections] == list(range(len(sections)))
    assert len(sections) >= 5  # 2.5 s of sends, the drain after
    assert _counts(_added(doc)) == _counts(store.run_histogram(doc))
    assert sum(s["delivered"] for s in sections) == doc["deliveries"]["delivered"] == doc["latency_us"]["count"]
    assert sum(s["delivered_all"] for s in sections) == doc["deliveries"]["delivered_all"]
    assert sum(s["sent"] or 0 for s in sections) == doc["messages"]["sent"]
    assert sum(s["scheduled"] for s in sections) == doc["messages"]["scheduled"]
    assert sum(s["owed"] for s in sections) == doc["deliveries"]["expected_all"]
    assert sum(s["lost"] or 0 for s in sections) == doc["integrity"]["lost"] == 0
    assert [s["phase"] for s in sections[:2]] == ["warmup", "measured"]
    assert sections[0]["delivered"] == 0 < sections[0]["delivered_all"]  # the warm-up is counted, not measured
    assert any(s["server_cpu_percent"] is not None for s in sections)


def test_the_interval_log_reads_back_with_hdrhistogram_to_the_runs_totals(plain_run: tuple[RunDocument, Path]) -> None:
    doc, out = plain_run
    written = json.loads((out / "run-c00020.json").read_text())
    assert written["intervals"]["hlog"] == "run-c00020.hlog"
    reader = HistogramLogReader(str(out / "run-c00020.hlog"), HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES))
    total = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
    starts = []
    while (h := reader.get_next_interval_histogram()) is not None:
        assert h.get_tag() is None  # one label: no tagged lines
        starts.append(round((h.get_start_time_stamp() / 1000 - reader.get_start_time_sec()), 3))
        total.add(h)
    reader.close()
    assert starts == [s["start_s"] for s in doc["intervals"]["intervals"]]
    run = store.run_histogram(doc)
    assert total.get_total_count() == run.count
    assert list(total.counts) == list(run._hist.counts)
    for pct in (50, 99, 99.9, 100):
        assert total.get_value_at_percentile(pct) == run.percentile(pct)


def _relay_run(tmp_path: Path, opts: FaultOptions, **config: Any) -> tuple[RunDocument, dict[str, Any]]:
    schedule = tmp_path / "schedule.json"
    base = {"clients": 10, "senders": 2, "rate": 100.0, "warmup_s": 0.0, "payload_bytes": 32, "interval_s": 1.0}
    base.update(config)
    opts = replace(opts, senders=int(base["senders"]), clients=int(base["clients"]), rate=float(base["rate"]))
    doc = run_swarm(
        SwarmConfig(
            target="faultrelay",
            server_args=tuple(option_argv(opts, str(schedule))),
            drain_timeout_s=5.0,
            progress=False,
            **base,
        )
    )
    return doc, json.loads(schedule.read_text())


def test_a_relay_that_stalls_in_second_3_shows_in_interval_3_only(tmp_path: Path) -> None:
    """The relay holds every delivery from 3.3 s to 3.7 s after the first
    intended send: they arrive at 3.7 s, in interval 3, up to 400 ms late;
    every other interval stays fast.  It also drops, duplicates, swaps and
    corrupts a few messages: each shows in the interval it happened in."""
    opts = FaultOptions(
        delay_ms=1, stall_at_ms=3300, stall_ms=400, seq_lo=10, seq_hi=240, drop=2, duplicate=2, swap=2, corrupt=2
    )
    doc, sched = _relay_run(tmp_path, opts, duration_s=6.0)
    sections = doc["intervals"]["intervals"]
    top = {s["index"]: s["latency_us"]["max_us"] or 0 for s in sections}
    assert top[3] >= 350_000
    assert all(v < 200_000 for k, v in top.items() if k != 3), top
    assert sections[3]["delivered"] > 0.8 * sections[2]["delivered"]  # held, not lost: they arrive within 3

    totals = doc["integrity"]
    for kind in ("duplicated", "reordered", "corrupted", "lost"):
        assert sum(s[kind] or 0 for s in sections) == totals[kind], kind  # type: ignore[literal-required]
    assert (totals["duplicated"], totals["reordered"], totals["corrupted"]) == (2, 2, 2)
    # A dropped message is lost in the interval it was intended in (message m at m / rate).
    senders, rate = doc["parameters"]["senders"], doc["parameters"]["rate"]
    dropped = [f for f in sched["faults"] if f["kind"] == "drop" and f["applied"]]
    want: dict[int, int] = {}
    for f in dropped:
        k = int((f["seq"] * senders + f["sender"]) / rate)
        want[k] = want.get(k, 0) + 1
    assert {s["index"]: s["lost"] for s in sections if s["lost"]} == want


def _run_cli(tmp_path: Path, *extra: str) -> tuple[int, RunDocument]:
    out = tmp_path / "out"
    argv = [
        "run",
        "--clients",
        "10",
        "--senders",
        "2",
        "--rate",
        "100",
        "--warmup",
        "0.5",
        "--quiet",
        "--out",
        str(out),
    ]
    code = cli.main([*argv, *extra])
    return code, json.loads(next(out.glob("*/run-*.json")).read_text())


def test_thresholds_pass_and_fail_on_a_known_run(tmp_path: Path) -> None:
    """Against the fault relay: every delivery 20 ms late, two messages dropped."""
    schedule = tmp_path / "schedule.json"
    relay = option_argv(
        FaultOptions(delay_ms=20, senders=2, clients=10, rate=100, seq_lo=5, seq_hi=80, drop=2), str(schedule)
    )
    code, doc = _run_cli(
        tmp_path,
        "--duration",
        "2",
        "--target",
        "faultrelay",
        *(f"--server-arg={a}" for a in relay),
        "--drain-timeout",
        "1",
        "--threshold",
        "p50>=20ms",
        "--threshold",
        "p99<1s",
        "--threshold",
        "lost==2",
        "--threshold",
        "delivered>=99%",
        "--threshold",
        "lost==0",
        "--threshold",
        "p50<15ms",
    )
    assert code == THRESHOLDS_FAILED_EXIT
    assert [(t["threshold"], t["ok"]) for t in doc["thresholds"]] == [
        ("p50>=20ms", True),
        ("p99<1s", True),
        ("lost==2", True),
        ("delivered>=99%", True),
        ("lost==0", False),
        ("p50<15ms", False),
    ]
    assert doc["thresholds"][4]["value"] == 2


def test_all_thresholds_passing_exit_0(tmp_path: Path) -> None:
    code, doc = _run_cli(tmp_path, "--duration", "1", "--threshold", "lost==0", "--threshold", "p99<5s")
    assert code == 0 and all(t["ok"] for t in doc["thresholds"])


def test_abort_on_fail_stops_the_run_when_crossed(tmp_path: Path) -> None:
    code, doc = _run_cli(tmp_path, "--duration", "30", "--threshold", "max<1us abort-on-fail")
    assert code == THRESHOLDS_FAILED_EXIT
    assert doc["thresholds"][0]["aborted"] and not doc["thresholds"][0]["ok"]
    assert doc["timing"]["traffic_s"] < 10  # stopped after the first measured interval, not after 30 s
    assert not doc["completed"]
    assert any(note.startswith("stopped early: max<1us abort-on-fail: crossed at interval") for note in doc["notes"])


def test_a_bad_threshold_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--threshold", "p99<5%", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    assert "a latency is in us, ms or s" in capsys.readouterr().err
