"""Issue 18's study support: server and harness pinned apart (``--server-cpus``,
``--harness-cpus``) and ``compare --repeat N`` (interleaved runs, medians with
their spread)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli
from bench.report import repeats
from bench.results.schema import ComparePoint
from bench.swarm import SwarmConfig, pinning
from bench.targets import EmbeddedTarget

TWO_CPUS = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="pinning apart needs at least two CPUs available to this process"
)
#: Seconds a helper process gets to start its thread and say so.
READY_TIMEOUT_S = 10.0


def test_cpu_lists_parse_format_and_check() -> None:
    assert pinning.parse_cpus("0-3,8, 10-11") == (0, 1, 2, 3, 8, 10, 11)
    assert pinning.format_cpus((0, 1, 2, 3, 8, 10, 11)) == "0-3,8,10-11"
    assert pinning.parse_cpus(pinning.format_cpus((5,))) == (5,)
    for bad in ("", "x", "3-1", "-1", "1-", "99999"):
        with pytest.raises(ValueError, match="CPU"):
            pinning.parse_cpus(bad)
    mine = pinning.available_cpus()
    assert pinning.check_cpus(mine[:1], ()) is None
    assert "share CPU" in str(pinning.check_cpus(mine[:1], mine[:1]))
    assert "not available here" in str(pinning.check_cpus((max(mine) + 1,), ()))
    with pytest.raises(ValueError, match="share CPU"):
        SwarmConfig(clients=4, server_cpus=mine[:1], harness_cpus=mine[:1])


@TWO_CPUS
def test_default_workers_follow_the_harness_cpus() -> None:
    cpus = pinning.available_cpus()
    assert SwarmConfig(clients=50, harness_cpus=cpus[:1], server_cpus=cpus[1:2]).worker_count == 1
    assert SwarmConfig(clients=50, server_cpus=cpus[:1]).worker_count == len(cpus) - 1


def test_the_command_line_rejects_overlapping_cpus_in_one_line() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--clients", "4", "--server-cpus", "0", "--harness-cpus", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "share CPU 0" in run.stderr
    assert "Traceback" not in run.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "bench", "compare", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for option in ("--repeat", "--server-cpus", "--harness-cpus"):
        assert option in helped.stdout


@TWO_CPUS
def test_pin_process_pins_every_thread_and_those_started_later() -> None:
    cpu = pinning.available_cpus()[-1]
    code = (
        "import sys, threading, time\n"
        "print('up', flush=True); sys.stdin.readline()\n"
        "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "print('thread', flush=True); time.sleep(30)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdin is not None
            assert proc.stdout.readline() == "up\n"  # bounded by the child's own 30 s sleep at worst
            pinning.pin_process(proc.pid, [cpu])
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == "thread\n"
            assert len(pinning.threads_of(proc.pid)) >= 2
            assert pinning.process_cpus(proc.pid) == (cpu,)
        finally:
            proc.kill()
            proc.wait(timeout=READY_TIMEOUT_S)


@TWO_CPUS
def test_pinned_self_restores_this_process() -> None:
    before = pinning.process_cpus(os.getpid())
    with pinning.pinned_self(before[:1]):
        assert pinning.process_cpus(os.getpid()) == before[:1]
    assert pinning.process_cpus(os.getpid()) == before


def _point(clients: int, p99_us: int, rate: float, ok: bool = True) -> ComparePoint:
    if not ok:
        return {"clients": clients, "status": "error", "error": "boom"}
    return {
        "clients": clients,
        "status": "ok",
        "deliveries_per_s": rate,
        "delivered_ratio": 1.0 if p99_us < 5000 else 0.99,
        "p50_us": p99_us // 2,
        "p99_us": p99_us,
        "max_us": p99_us * 2,
        "faults": 1,
        "failed_connections": 0,
        "server_cpu_percent": 50.0,
        "load_generator_saturated": False,
    }


def test_merge_takes_medians_worst_cases_and_the_spread() -> None:
    runs = [_point(100, 1000, 9000.0), _point(100, 6000, 10000.0), _point(100, 2000, 9500.0), _point(100, 0, 0, False)]
    merged = repeats.merge_repeats([*runs, _point(200, 3000, 1.0)])
    assert [p["clients"] for p in merged] == [100, 200]
    p = merged[0]
    assert (p["p99_us"], p["deliveries_per_s"], p["runs"], p["failed_runs"]) == (2000, 9500.0, 3, 1)
    assert p["spread"]["p99_us"] == [1000.0, 6000.0]
    assert p["delivered_ratio"] == 0.99  # the worst run
    assert p["faults"] == 3 and p["max_us"] == 12000
    assert merged[1] == _point(200, 3000, 1.0)  # one run: unchanged
    peer = repeats.merge([_point(100, 4000, 9000.0), _point(100, 8000, 9000.0)])
    spread = repeats.ratio_spread(p, peer, "p99_us")
    assert spread == [0.125, 1.5]
    assert not repeats.decisive(spread)
    assert repeats.decisive([0.2, 0.9]) and repeats.decisive(None)
    assert repeats.ratio_text(0.5, spread).endswith("≈1")
    assert repeats.with_spread(p, "p99_us", lambda v: f"{v:g}") == "2000 (1000-6000)"


@TWO_CPUS
def test_compare_repeats_interleaved_and_pins_server_and_harness_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two real servers (one started by compare, one given as HOST:PORT with
    its pid), two runs each, interleaved; both servers pinned to one CPU."""
    cpus = pinning.available_cpus()
    server, harness = cpus[-1:], cpus[:-1]
    out = tmp_path / "cmp"
    with EmbeddedTarget() as external:  # entering starts it
        assert external.pid is not None and external.address is not None
        host, port = external.address
        code = cli.main(
            [
                *("compare", "--targets", f"embedded,{host}:{port}", "--server-pid", str(external.pid)),
                *("--clients", "3", "--rate", "100", "--duration", "0.3", "--warmup", "0.1", "--repeat", "2"),
                *("--server-cpus", pinning.format_cpus(server), "--harness-cpus", pinning.format_cpus(harness)),
                *("--quickack-targets", f"{host}:{port}", "--out", str(out), "--quiet"),
            ]
        )
        assert pinning.process_cpus(external.pid) == server
    assert code == 0
    labels = [line.split(":")[0] for line in capsys.readouterr().out.splitlines() if "delivered" in line]
    assert labels == ["embedded", f"{host}", "embedded", f"{host}"]  # A B A B
    runs = sorted(p.name for p in (out / "embedded").glob("run-*.json"))
    assert runs == ["run-c00003-r2.json", "run-c00003.json"]
    first = json.loads((out / "embedded" / "run-c00003.json").read_text())
    assert first["parameters"]["server_cpus"] == list(server)
    assert first["parameters"]["workers"] == len(harness)
    assert first["parameters"]["quickack"] is False  # only the HOST:PORT target ACKs at once
    other = next(p for p in out.iterdir() if p.is_dir() and p.name != "embedded")
    assert json.loads((other / "run-c00003-r2.json").read_text())["parameters"]["quickack"] is True
    doc = json.loads((out / "compare.json").read_text())
    assert doc["meta"]["repeat"] == 2 and doc["meta"]["server_cpus"] == list(server)
    ours = doc["series"]["embedded"]["points"]
    assert len(ours) == 1 and ours[0]["runs"] == 2
    lo, hi = ours[0]["spread"]["p99_us"]
    assert lo <= ours[0]["p99_us"] <= hi
    (ratio,) = next(iter(doc["ratios"].values()))
    assert ratio["p99_spread"][0] <= ratio["p99"] <= ratio["p99_spread"][1]
    report = (out / "COMPARE.md").read_text()
    assert "each point run 2 times, interleaved" in report
    assert f"server on CPUs {pinning.format_cpus(server)}" in report
    assert f"for {host}:{port} only (the others: delayed ACKs)" in report
    assert pinning.process_cpus(os.getpid()) == cpus  # the harness's own pinning was undone


@TWO_CPUS
def test_cost_measures_cpu_and_switches_per_delivery(tmp_path: Path) -> None:
    """`bench cost`: our server started, pinned and measured twice; the figures come from real runs."""
    cpus = pinning.available_cpus()
    out = tmp_path / "cost"
    code = cli.main(
        [
            *("cost", "--targets", "embedded", "--clients", "4", "--rate", "500", "--duration", "1.5"),
            *("--warmup", "0.2", "--repeat", "2", "--server-cpus", str(cpus[-1]), "--harness-cpus", str(cpus[0])),
            *("--out", str(out), "--quiet"),
        ]
    )
    assert code == 0
    doc = json.loads((out / "cost.json").read_text())
    assert [r["repeat"] for r in doc["runs"]] == [1, 2]
    for r in doc["runs"]:
        assert r["status"] == "ok" and r["delivered_ratio"] == 1.0
        assert r["cpu_us_per_delivery"] is not None and r["cpu_us_per_delivery"] > 0
        assert r["switches_per_delivery"] is not None and r["switches_per_delivery"] > 0
    median, lo, hi = doc["medians"]["embedded"]["cpu_us_per_delivery"]
    assert lo <= median <= hi
    assert sorted(p.name for p in (out / "embedded").glob("run-*.json")) == ["run-c00004-r2.json", "run-c00004.json"]
    with pytest.raises(SystemExit):
        cli.main(["cost", "--targets", "127.0.0.1:1", "--out", str(tmp_path / "x")])
