"""``python -m bench compare``: one sweep per target, ratios ours/peer, charts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli, results
from bench.studies import compare
from bench.targets import miniircd_installed


@pytest.mark.skipif(
    not miniircd_installed(), reason="miniircd is not installed in this Python (run `make peers`: pip install miniircd)"
)
def test_compare_writes_sweeps_ratios_and_charts(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    code = cli.main(
        [
            "compare",
            "--targets",
            "embedded,miniircd",
            "--clients",
            "3,5",
            "--rate",
            "100",
            "--duration",
            "0.5",
            "--warmup",
            "0.2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    for target in ("embedded", "miniircd"):
        index = results.load_index(out / target / "index.json")
        assert [r["clients"] for r in index["runs"]] == [3, 5]
        assert all(r["status"] == "ok" for r in index["runs"])
    doc = json.loads((out / "compare.json").read_text())
    assert doc["ours"] == "embedded"
    assert doc["meta"]["quickack"] is True
    rows = doc["ratios"]["miniircd"]
    assert [r["clients"] for r in rows] == [3, 5]
    for row in rows:
        ours = next(p for p in doc["series"]["embedded"]["points"] if p["clients"] == row["clients"])
        peer = next(p for p in doc["series"]["miniircd"]["points"] if p["clients"] == row["clients"])
        # ratios are rounded to 3 decimals: 0.045 for 0.04451 is 1.1% off, within 0.0005
        assert row["p99"] == pytest.approx(ours["p99_us"] / peer["p99_us"], rel=1e-2, abs=5e-4)
        assert row["delivered"] == pytest.approx(ours["delivered_ratio"] / peer["delivered_ratio"], rel=1e-2, abs=5e-4)
        assert peer["delivered_ratio"] == 1.0
        assert peer["server_cpu_percent"] is not None
    report = (out / "COMPARE.md").read_text()
    assert "### embedded vs miniircd" in report
    assert "TCP_QUICKACK): yes" in report
    for chart in ("compare-p99.png", "compare-deliveries.png", "compare-server-cpu.png"):
        assert (out / chart).read_bytes().startswith(b"\x89PNG")
        assert f"]({chart})" in report
    # --rebuild re-reads the sweeps and rewrites the same report
    (out / "COMPARE.md").unlink()
    assert cli.main(["compare", "--rebuild", str(out)]) == 0
    assert (out / "COMPARE.md").read_text() == report
    # ... and so does `report DIR`
    (out / "COMPARE.md").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "COMPARE.md").read_text() == report


def test_compare_cli_help_and_errors() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "compare", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--targets" in run.stdout and "-m bench peers" in run.stdout  # named as it was started
    bad = subprocess.run(
        [sys.executable, "-m", "bench", "compare", "--targets", "embedded,quakeircd"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "unknown target 'quakeircd'" in bad.stderr


def test_flood_plan_says_what_is_used() -> None:
    senders, note = compare.flood_plan(["embedded", "miniircd"], 100.0, None)
    assert senders is None and "no ngircd" in note
