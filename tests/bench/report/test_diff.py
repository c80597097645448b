"""``diff``, ``save`` and ``export`` on saved results (no runs): the ratio
table equals the JSON, --fail's limits and exit codes, the machine check,
named baselines, one CSV row per point; and the throughput and comparison
charts' labels."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import cli
from bench.report import compare as compare_report
from bench.report import plots
from bench.studies import diff
from tests.paths import FIXTURES

FIXTURE = FIXTURES / "report_sweep"

pytestmark = pytest.mark.timeout(60)


def _copy(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    shutil.copytree(FIXTURE, out)
    return out


def _edit(directory: Path, series: str, clients: int, fn: Any) -> dict[str, Any]:
    path = directory / series / f"run-c{clients:05d}.json"
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))
    return doc


def _slower(doc: dict[str, Any]) -> None:
    doc["latency_us"]["p99_us"] = int(doc["latency_us"]["p99_us"] * 1.5)
    doc["deliveries"]["per_s"] = doc["deliveries"]["per_s"] * 0.5


def _diff_table(out: str, series: str) -> dict[int, dict[str, str]]:
    lines = out.splitlines()
    start = lines.index(f"## {series}") + 2
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[int(cells[0])] = dict(zip(header, cells, strict=True))
    return rows


def test_diff_shows_base_new_and_their_ratio_per_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, new = _copy(tmp_path, "base"), _copy(tmp_path, "new")
    before = json.loads((base / "queued" / "run-c00006.json").read_text())
    after = _edit(new, "queued", 6, _slower)
    assert cli.main(["diff", str(base), str(new), "--out", str(tmp_path / "d")]) == diff.EXIT_OK
    out = capsys.readouterr().out
    row = _diff_table(out, "queued")[6]
    a, b = before["latency_us"]["p99_us"], after["latency_us"]["p99_us"]
    assert row["p99 ms"] == f"{a / 1000:.2f} → {b / 1000:.2f} ({b / a:.2f}x)"
    a, b = before["deliveries"]["per_s"], after["deliveries"]["per_s"]
    assert row["deliveries/s"] == f"{a:,.0f} → {b:,.0f} ({b / a:.2f}x)"
    assert _diff_table(out, "direct")[3]["p50 ms"].endswith("(1.00x)")
    # One run per point: the output says how much of a ratio is noise, and how to measure past it.
    assert "Run-to-run noise" in out and "8% at p99" in out and "--repeat N" in out
    assert (tmp_path / "d" / "diff.md").read_text().startswith("# chatbench diff")
    assert (tmp_path / "d" / "diff.png").read_bytes().startswith(b"\x89PNG")


def test_fail_limits_exit_1_past_them_and_0_within(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, new = _copy(tmp_path, "base"), _copy(tmp_path, "new")
    _edit(new, "queued", 6, _slower)  # p99 +50%, deliveries -50%
    assert cli.main(["diff", str(base), str(new), "--fail", "p99:+60%,deliveries:-60%"]) == diff.EXIT_OK
    assert cli.main(["diff", str(base), str(new), "--fail", "p99:+10%"]) == diff.EXIT_PAST_LIMIT
    out = capsys.readouterr().out
    assert "Past the limits" in out and "queued 6 clients: p99 +50.0%" in out and "limit p99:+10%" in out
    assert cli.main(["diff", str(base), str(new), "--fail", "deliveries:-5%"]) == diff.EXIT_PAST_LIMIT
    # a latency drop never fails a + limit; a deliveries rise never fails a - limit
    assert cli.main(["diff", str(new), str(base), "--fail", "p99:+1%"]) == diff.EXIT_OK
    assert cli.main(["diff", str(new), str(base), "--fail", "deliveries:-1%"]) == diff.EXIT_OK


def test_limit_syntax() -> None:
    (p99, dl) = diff.parse_limits("p99:+10%, deliveries:-5%")
    assert p99.allows(1.10) and not p99.allows(1.11) and p99.allows(0.2)
    assert dl.allows(0.95) and not dl.allows(0.94) and dl.allows(3.0)
    for bad in ("p99:10%", "p99:+10", "p42:+1%", ","):
        with pytest.raises(Exception, match="--fail"):
            diff.parse_limits(bad)


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == diff.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--help" in err[1], err
    return err[0]


def test_results_from_another_machine_are_refused_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, new = _copy(tmp_path, "base"), _copy(tmp_path, "new")
    for run in new.glob("*/run-*.json"):
        doc = json.loads(run.read_text())
        doc["environment"]["cpu_count"] = 64
        run.write_text(json.dumps(doc))
    err = _usage_error(["diff", str(base), str(new)], capsys)
    assert "different machines" in err and "cpu_count 2 vs 64" in err and "--force" in err
    assert cli.main(["diff", str(base), str(new), "--force"]) == diff.EXIT_OK


def test_usage_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "two directories" in _usage_error(["diff", str(FIXTURE)], capsys)
    assert "not a directory" in _usage_error(["diff", str(FIXTURE), str(tmp_path / "nope")], capsys)
    assert "expected METRIC" in _usage_error(["diff", str(FIXTURE), str(FIXTURE), "--fail", "p99"], capsys)
    assert "no baseline named 'x'" in _usage_error(
        ["diff", "--baseline", "x", str(FIXTURE), "--baselines-root", str(tmp_path)], capsys
    )


def test_a_saved_baseline_is_what_diff_compares_against(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "baselines"
    assert cli.main(["save", str(FIXTURE), "main", "--baselines-root", str(root)]) == 0
    capsys.readouterr()
    saved = sorted(p.relative_to(root / "main").as_posix() for p in (root / "main").rglob("*.json"))
    assert saved == sorted(p.relative_to(FIXTURE).as_posix() for p in FIXTURE.rglob("*.json"))
    assert "exists" in _usage_error(["save", str(FIXTURE), "main", "--baselines-root", str(root)], capsys)
    assert cli.main(["save", str(FIXTURE), "main", "--replace", "--baselines-root", str(root)]) == 0
    capsys.readouterr()
    assert "baseline name" in _usage_error(["save", str(FIXTURE), "../x", "--baselines-root", str(root)], capsys)
    new = _copy(tmp_path, "new")
    _edit(new, "direct", 3, _slower)
    argv = ["diff", "--baseline", "main", str(new), "--baselines-root", str(root), "--fail", "p99:+20%"]
    assert cli.main(argv) == diff.EXIT_PAST_LIMIT
    assert "BASE `baseline main`" in capsys.readouterr().out


def test_export_writes_one_flat_row_per_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = _copy(tmp_path, "sweep")
    index_file = sweep / "direct" / "index.json"
    index = json.loads(index_file.read_text())
    index["runs"].append({"clients": 12, "file": None, "status": "error", "error": "server failed to start"})
    index_file.write_text(json.dumps(index))
    assert cli.main(["export", str(sweep)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["series"], r["clients"], r["status"]) for r in rows] == [
        ("queued", "3", "ok"),
        ("queued", "6", "ok"),
        ("direct", "3", "ok"),
        ("direct", "6", "ok"),
        ("direct", "12", "error"),
    ]
    for row in rows[:4]:
        run = json.loads((sweep / row["file"]).read_text())
        for key in ("p50_us", "p95_us", "p99_us", "p99_9_us", "max_us", "count"):
            assert row[f"latency_us.{key}"] == str(run["latency_us"][key])
        assert float(row["deliveries.per_s"]) == run["deliveries"]["per_s"]
        assert row["integrity.lost"] == str(run["integrity"]["lost"])
        assert row["parameters.rate"] == str(run["parameters"]["rate"])
        assert row["parameters.fanout"] == row["series"]
    assert rows[4]["error"] == "server failed to start" and rows[4]["latency_us.p99_us"] == ""
    out = tmp_path / "points.csv"
    assert cli.main(["export", str(sweep), "--csv", str(out)]) == 0
    assert len(list(csv.DictReader(out.open()))) == 5


def test_throughput_series_that_coincide_stay_apart() -> None:
    same = {"clients": [10, 100], "deliveries_per_s": [90.0, 990.0], "offered_per_s": [90.0, 990.0]}
    series = [plots.Series(label=name, flagged=[False, False], **same) for name in ("queued", "direct")]  # type: ignore[arg-type]
    fig = plots.throughput_figure(series)
    ax = fig.axes[0]
    points = [ln for ln in ax.get_lines() if ln.get_linestyle() == "None" and len(ln.get_xdata())]
    assert len({ln.get_marker() for ln in points}) == 2
    assert len({tuple(ln.get_xdata()) for ln in points}) == 2  # side by side, not on top of each other
    plots.plt.close(fig)


def test_compare_charts_name_each_server_and_skip_a_single_point(tmp_path: Path) -> None:
    ours = {"kind": "embedded", "version": "chatbench 87d2086"}
    assert compare_report.server_label("embedded", ours) == "chatbench 87d2086"
    ngircd = {"version": "ngIRCd 26.1-IDENT+IPv6+IRCPLUS-x86_64/pc/linux-gnu"}
    assert compare_report.server_label("ngircd", ngircd) == "ngIRCd 26.1"
    assert compare_report.server_label("miniircd", {}) == "miniircd"
    # Each broker's --version, as its Debian package prints it: the name and the number.
    versions = {
        "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c971a948f0": "Redis 7.0.15",
        "nats-server: v2.9.10": "nats-server 2.9.10",
        "mosquitto version 2.0.11": "mosquitto 2.0.11",
        "miniircd 2.3": "miniircd 2.3",
    }
    for version, label in versions.items():
        assert compare_report.server_label("x", {"version": version}) == label
    point = {"clients": 10, "status": "ok", "p99_us": 1000, "deliveries_per_s": 90.0, "server_cpu_percent": 5.0}
    assert plots.compare_charts({"embedded": [point]}, tmp_path) == []
    two = [point, {**point, "clients": 20}]
    files = plots.compare_charts({"embedded": two}, tmp_path, {"embedded": "chatbench 87d2086"})
    assert len(files) == len(plots.COMPARE_CHARTS)


def test_compare_lines_differ_in_shape_and_place_and_ours_is_on_top() -> None:
    """ngircd's line used to hide ours where the two were alike: every target
    now has a marker, a line style and an x offset of its own, ours on top."""
    names = ["embedded", "ngircd", "miniircd", "mosquitto", "redis", "nats"]
    styles = plots.compare_styles(names, ours="embedded")
    assert len({(st.marker, st.linestyle) for st in styles.values()}) == len(names)
    assert len({st.shift for st in styles.values()}) == len(names)
    assert all(styles["embedded"].zorder > st.zorder for name, st in styles.items() if name != "embedded")
    assert styles["embedded"].linewidth > styles["ngircd"].linewidth
