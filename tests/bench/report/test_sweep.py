"""The report builder on saved results: charts drawn, table numbers equal to
the JSON, warnings in plain words, redraw from the command line.

The fixture under ``fixtures/report_sweep/`` is a real sweep (3 and 6
clients, both fan-out strategies, 40 msg/s for 1 s) written by
``python -m bench sweep``; only its JSON is committed.  The committed example
reports under ``reports/`` are redrawn by ``python -m bench report`` too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import cli, results
from bench.report import plots
from bench.report import sweep as report
from tests.paths import FIXTURES, REPO

FIXTURE = FIXTURES / "report_sweep"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    out = tmp_path / "sweep"
    shutil.copytree(FIXTURE, out)
    return out


def _raw_runs(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """(strategy, run) read with plain json, independent of the report code."""
    out = []
    for index_file in sorted(directory.glob("*/index.json")):
        index = json.loads(index_file.read_text())
        for entry in index["runs"]:
            if entry["file"]:
                out.append((index["parameters"]["fanout"], json.loads((index_file.parent / entry["file"]).read_text())))
    return out


def _table(md: str) -> dict[tuple[str, int], dict[str, str]]:
    """The 'Every point' table of report.md: (strategy, clients) -> header -> cell."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| strategy | clients |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows: dict[tuple[str, int], dict[str, str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        row = dict(zip(header, cells, strict=True))
        rows[(row["strategy"], int(row["clients"]))] = row
    return rows


def _num(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_report_draws_four_pngs_and_its_table_equals_the_json(sweep_dir: Path) -> None:
    written = report.build_report(sweep_dir)
    for name, file in plots.CHART_FILES.items():
        png = sweep_dir / file
        assert written[name] == png
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name

    md = (sweep_dir / report.REPORT_MD).read_text()
    rows = _table(md)
    raw = _raw_runs(sweep_dir)
    assert len(raw) == 4 and set(rows) == {(f, r["parameters"]["clients"]) for f, r in raw}
    for fanout, run in raw:
        row = rows[(fanout, run["parameters"]["clients"])]
        lat, d = run["latency_us"], run["deliveries"]
        srv = run["resources"]["server"]["summary"]
        m = re.fullmatch(r"([\d,]+) / ([\d,]+) \(([\d.]+)%\)", row["delivered / expected"])
        assert m is not None, row
        assert _num(m[1]) == d["delivered"] and _num(m[2]) == d["expected"]
        assert float(m[3]) == pytest.approx(100 * d["delivered_ratio"], abs=0.005)
        assert int(row["faults"]) == run["integrity"]["faults"]
        for col, key in [("p50 ms", "p50_us"), ("p90 ms", "p90_us"), ("p99 ms", "p99_us")]:
            assert _num(row[col]) == pytest.approx(lat[key] / 1000, abs=0.005), col
        assert _num(row["p99.9 ms"]) == pytest.approx(lat["p99_9_us"] / 1000, abs=0.005)
        assert _num(row["max ms"]) == pytest.approx(lat["max_us"] / 1000, abs=0.005)
        assert _num(row["deliveries/s"]) == pytest.approx(d["per_s"], abs=0.5)
        assert _num(row["offered/s"]) == pytest.approx(d["offered_per_s"], abs=0.5)
        assert _num(row["rate msg/s"]) == run["parameters"]["rate"]
        assert _num(row["server CPU %"]) == pytest.approx(srv["cpu_percent_window"], abs=0.5)
        assert _num(row["server RSS MiB"]) == pytest.approx(srv["rss_max_bytes"] / 2**20, abs=0.05)
        assert int(row["server threads"]) == srv["threads_max"]
        assert row["data"] == f"[json]({fanout}/run-c{run['parameters']['clients']:05d}.json)"

    # The fixture is a clean run: no warnings, and the page says so.
    assert "None: every run delivered every message" in md
    for file in plots.CHART_FILES.values():
        assert f"]({file})" in md
    page = (sweep_dir / report.REPORT_HTML).read_text()
    for file in plots.CHART_FILES.values():
        assert f'<img src="{file}"' in page
    assert page.count("<tr") == 1 + 4 + len(report.environment_rows(report.load_series(sweep_dir)))
    env = dict(report.environment_rows(report.load_series(sweep_dir)))
    assert env["CPU"].endswith(f"x {raw[0][1]['environment']['cpu_count']}")
    assert "load average" in " ".join(env)


def test_series_are_ordered_queued_then_direct_with_fixed_colours(sweep_dir: Path) -> None:
    series = report.load_series(sweep_dir)
    assert [s.label for s in series] == ["queued", "direct"]
    assert [[r["parameters"]["clients"] for r in s.runs] for s in series] == [[3, 6], [3, 6]]
    chart = report.chart_series(series)
    assert plots.colours([c.label for c in chart]) == {"queued": "tab:blue", "direct": "tab:orange"}
    # the distribution chart gets the exact HDR distribution of each run
    run = series[0].runs[0]
    assert chart[0].distributions[3] == results.run_histogram(run).distribution()
    assert chart[0].sample_counts[3] == run["latency_us"]["count"]


def _rewrite(path: Path, change: dict[str, Any]) -> None:
    doc = results.load_run(path)
    for dotted, value in change.items():
        target = doc
        *parents, leaf = dotted.split(".")
        for key in parents:
            target = target[key]
        target[leaf] = value
    results.write_json(path, doc)


def test_warnings_are_in_plain_words_at_the_top(sweep_dir: Path) -> None:
    _rewrite(sweep_dir / "queued" / "run-c00006.json", {"load_generator_saturated": True})
    _rewrite(
        sweep_dir / "direct" / "run-c00006.json",
        {
            "integrity.lost": 7,
            "integrity.faults": 7,
            "completed": False,
            "deliveries.delivered": 193,
            "connections.failed": 2,
            "connections.failures": {"connection refused": 2},
        },
    )
    index_file = sweep_dir / "direct" / "index.json"
    index = results.load_index(index_file)
    index["runs"].append({"clients": 12, "file": None, "status": "error", "error": "embedded server failed to start"})
    results.write_json(index_file, index)

    report.build_report(sweep_dir)
    md = (sweep_dir / report.REPORT_MD).read_text()
    top = md.split("## Charts")[0]
    assert "None: every run" not in top
    assert "**Load generator saturated** in 1 of 5 runs" in top
    assert "(queued 6 clients: workers busy " in top and "waiting for a CPU" in top
    assert "**Integrity faults** in 1 run: direct 6 clients: 7 lost" in top
    assert "**Failed connections** in 1 run: direct 6 clients: 2 of " in top and "2x connection refused" in top
    assert "**Incomplete runs**: direct 6 clients: 7 of 200 deliveries missing" in top
    assert "**1 of 5 points have no result**" in top and "embedded server failed to start" in top
    rows = _table(md)
    assert rows[("queued", 6)]["warnings"] == "load generator saturated"
    assert rows[("direct", 6)]["warnings"] == "integrity faults, failed connections, incomplete"
    assert rows[("direct", 12)]["delivered / expected"] == "not run"
    assert rows[("queued", 3)]["warnings"] == ""
    page = (sweep_dir / report.REPORT_HTML).read_text()
    assert '<div class="warn">' in page and "<strong>Load generator saturated</strong>" in page


def test_cli_redraws_from_saved_json_into_another_directory(sweep_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "report", str(sweep_dir), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert all((out / f).read_bytes().startswith(PNG_MAGIC) for f in plots.CHART_FILES.values())
    # the links to the run JSON resolve from the report's new place
    md = (out / report.REPORT_MD).read_text()
    links = re.findall(r"\[json\]\(([^)]+)\)", md)
    assert len(links) == 4 and all((out / link).is_file() for link in links)
    assert not (sweep_dir / report.REPORT_MD).exists()


def test_cli_explains_a_directory_without_results(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "report", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "no index.json" in proc.stderr
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", str(tmp_path / "missing")])
    assert exc.value.code == 2


def test_percentile_axis_maps_percentiles_to_one_over_one_minus_p() -> None:
    assert plots._percentile_x(50.0, 10**6) == pytest.approx(2.0)
    assert plots._percentile_x(99.0, 10**6) == pytest.approx(100.0)
    assert plots._percentile_x(99.9, 10**6) == pytest.approx(1000.0)
    # the maximum (100%) and anything finer than one sample sit at the sample count
    assert plots._percentile_x(100.0, 5000) == 5000.0
    assert plots._percentile_x(99.999, 5000) == 5000.0


def test_report_says_which_clock_timed_the_arrivals(sweep_dir: Path) -> None:
    # The fixture predates the kernel clock: its runs timed the read.
    assert "arrival is the moment the harness read it" in report.render_markdown(report.load_series(sweep_dir), {})
    for run_file in sweep_dir.glob("*/run-*.json"):
        doc = json.loads(run_file.read_text())
        doc["rx_clock"] = "kernel"
        run_file.write_text(json.dumps(doc))
    md = report.render_markdown(report.load_series(sweep_dir), {})
    assert "arrival is the kernel's receive stamp at the client's socket" in md
    assert "harness read lag" in md


REPORTS = REPO / "reports"


@pytest.mark.parametrize("example", ["example", "compare-example"])
def test_the_committed_example_reports_are_redrawn(example: str, tmp_path: Path) -> None:
    """``python -m bench report`` redraws what is committed under reports/: the
    same tables from the same JSON (only the generation time may differ)."""
    copy = tmp_path / example
    shutil.copytree(REPORTS / example, copy)
    name = "COMPARE.md" if (copy / "compare.json").is_file() else report.REPORT_MD
    before = (copy / name).read_text()
    assert cli.main(["report", str(copy)]) == 0
    after = (copy / name).read_text()

    def stable(md: str) -> list[str]:
        return [line for line in md.splitlines() if not line.startswith("Generated ")]

    # COMPARE.md in compare-example ends with a note written by hand, after what the code draws
    assert stable(after) == stable(before)[: len(stable(after))]
    assert len(stable(after)) > 40
