"""The swarm end to end against the embedded server on loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import cli, results
from bench.report.runline import summary_line
from bench.swarm import SwarmConfig, run_swarm

pytestmark = pytest.mark.timeout(90)


def _run(**kw: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {"progress": False, "workers": 2, "sample_interval_s": 0.2}
    return run_swarm(SwarmConfig(**{**defaults, **kw}))


def test_small_run_delivers_everything_without_faults(tmp_path: Path) -> None:
    doc = _run(clients=20, rate=0, messages=200)
    d = doc["deliveries"]
    # 10 senders among 20 clients; a sender never gets its own message: 200 x 19.
    assert d["expected"] == 200 * 19
    assert d["delivered"] == d["expected"]
    assert d["delivered_ratio"] == 1.0
    assert doc["completed"] is True
    assert doc["integrity"] == {"lost": 0, "duplicated": 0, "reordered": 0, "corrupted": 0, "faults": 0, "pairs": []}
    assert doc["connections"]["failed"] == 0 and doc["connections"]["registered"] == 20
    assert doc["messages"]["sent"] == 200 and doc["messages"]["unsent"] == 0
    lat = doc["latency_us"]
    assert lat["count"] == d["delivered"]
    assert 0 < lat["p50_us"] <= lat["p90_us"] <= lat["p99_us"] <= lat["p99_9_us"] <= lat["max_us"]
    assert doc["resources"]["server"]["pid"] == doc["target"]["pid"]
    assert doc["resources"]["server"]["summary"]["rss_max_bytes"] > 0
    assert doc["resources"]["server"]["summary"]["threads_max"] >= 20  # a reader thread per client
    assert len(doc["resources"]["workers"]) == 2
    # One node: no paths kept, the document has no key of a cluster's.
    assert not {"latency_same_node_us", "latency_cross_node_us"} & set(doc)
    assert not {"expected_same_node", "expected_cross_node"} & set(d)

    # The document survives the trip through JSON and the loader.
    path = results.write_json(tmp_path / "run.json", doc)
    loaded = results.load_run(path)
    assert loaded["schema_version"] == results.SCHEMA_VERSION
    assert results.run_histogram(loaded).count == d["delivered"]
    assert "delivered 3800/3800 (100.00%)" in summary_line(loaded)


def test_rate_run_excludes_warmup_and_senders_can_be_dedicated() -> None:
    doc = _run(clients=6, senders=2, dedicated_senders=True, rate=400, messages=80, warmup_s=0.1)
    d = doc["deliveries"]
    assert doc["messages"]["warmup"] == 40
    assert doc["messages"]["scheduled"] == 120 and doc["messages"]["measured_sent"] == 80
    assert d["expected"] == 80 * 6  # dedicated senders are not receivers: every client gets every message
    assert d["delivered"] == d["expected"]
    assert d["expected_all"] == 120 * 6 and d["delivered_all"] == d["expected_all"]
    assert doc["latency_us"]["count"] == 80 * 6
    assert doc["integrity"]["faults"] == 0


def test_sweep_writes_one_json_per_point_and_an_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `python -m bench run` with a list of counts: what `python -m bench.swarm` did (one series: queued)
    sweep = tmp_path / "sweep"
    args = ["run", "--clients", "3,5", "--rate", "0", "--messages", "20", "--workers", "1", "--quiet"]
    code = cli.main([*args, "--out", str(sweep)])
    assert code == 0
    out = sweep / "queued"
    index = results.load_index(out)
    assert [r["clients"] for r in index["runs"]] == [3, 5]
    assert all(r["status"] == "ok" and r["summary"]["delivered_ratio"] == 1.0 for r in index["runs"])
    runs = results.load_runs(out)
    assert [r["parameters"]["clients"] for r in runs] == [3, 5]
    assert [r["deliveries"]["expected"] for r in runs] == [20 * 2, 20 * 4]
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("queued: clients=")]
    assert len(printed) == 2 and all("lost 0 dup 0 reord 0 corrupt 0" in line for line in printed)


def test_loader_rejects_other_documents(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"kind": "chatbench.swarm.run", "schema_version": 999}')
    with pytest.raises(results.ResultsError, match="schema_version"):
        results.load_run(path)
    path.write_text("not json")
    with pytest.raises(results.ResultsError, match="not JSON"):
        results.load_run(path)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"rate": 0}, "needs --messages"),
        ({"payload_bytes": 5000}, "line limit"),
        ({"clients": 5, "senders": 6}, "cannot exceed"),
        ({"clients": 1}, "at least 2 clients"),
    ],
)
def test_bad_configurations_say_what_is_wrong(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SwarmConfig(**kw)


def test_cli_help_and_usage_errors() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--help"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    for option in ("--clients", "--rate", "--stalled-clients", "--target", "--fanout", "--warmup", "--payload"):
        assert option in help_text
    bad = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--target", "10.1.2.3:6667"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "loopback" in bad.stderr
