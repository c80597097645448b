"""The comparison's ratio compares delivered FRACTIONS: targets differ in who
hears whom (a Redis publisher is a connection of its own, so its subscribers
all get every message; our server skips the sender), so their raw counts
differ though both delivered everything (issue 27, item 5)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from bench.report import compare as compare_report
from bench.results.schema import RunDocument, SeriesParameters
from bench.results.store import SeriesWriter, load_run
from tests.paths import FIXTURES

FIXTURE = FIXTURES / "report_sweep" / "queued"


def _series(out: Path, name: str, per_s: float, delivered_ratio: float) -> None:
    base = load_run(FIXTURE / "run-c00006.json")
    doc: RunDocument = copy.deepcopy(base)
    doc["parameters"]["clients"] = 10
    doc["deliveries"]["per_s"] = per_s
    doc["deliveries"]["delivered_ratio"] = delivered_ratio
    doc["integrity"]["faults"] = 0
    doc["target"]["kind"] = name
    parameters: SeriesParameters = json.loads((FIXTURE / "index.json").read_text())["parameters"]
    SeriesWriter(out / name, parameters, name, None).add(doc)


def _report(out: Path, targets: list[str]) -> str:
    summary = compare_report.summarize(out, targets)
    meta = {
        "targets": targets,
        "created_at": "now",
        "command": ["chat-bench", "compare"],
        "clients": [10],
        "parameters": {"senders": 10, "rate": 100.0, "payload_bytes": 64, "warmup_s": 1.0, "duration_s": 5.0},
        "quickack": True,
        "flood_plan": "no ngircd among the targets",
        "environment": load_run(FIXTURE / "run-c00006.json")["environment"],
    }
    return compare_report.markdown(summary, meta, [])  # type: ignore[arg-type]


def test_both_delivering_everything_is_a_ratio_of_one_whatever_the_counts(tmp_path: Path) -> None:
    _series(tmp_path, "embedded", 900.0, 1.0)  # 10 senders x 10 msg/s x 9 others
    _series(tmp_path, "redis", 1000.0, 1.0)  # x 10 subscribers: the sender's own too
    summary = compare_report.summarize(tmp_path, ["embedded", "redis"])
    (row,) = summary["ratios"]["redis"]
    assert row["delivered"] == 1.0
    report = _report(tmp_path, ["embedded", "redis"])
    assert "| 10 | 100.0% (900/s) | 100.0% (1,000/s) | 1.00 |" in report
    assert "0.90" not in report
    assert "not the counts" in report


def test_a_smaller_share_delivered_is_a_ratio_below_one(tmp_path: Path) -> None:
    _series(tmp_path, "embedded", 810.0, 0.9)
    _series(tmp_path, "redis", 1000.0, 1.0)
    (row,) = compare_report.summarize(tmp_path, ["embedded", "redis"])["ratios"]["redis"]
    assert row["delivered"] == 0.9
    assert "| 10 | 90.0% (810/s) | 100.0% (1,000/s) | 0.90 |" in _report(tmp_path, ["embedded", "redis"])
