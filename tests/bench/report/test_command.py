"""``python -m bench``: a very short real sweep (what ``make bench`` does, in
miniature), a tiny capacity search, and the command line's checks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from bench import cli, report, results
from bench.report import plots
from bench.report.stall import STALL_DIR
from bench.results import store
from bench.studies import capacity, sweep
from bench.swarm import SwarmConfig
from tests.paths import FIXTURES

pytestmark = pytest.mark.timeout(120)

TINY = ["--rate", "20", "--duration", "1", "--warmup", "0.2", "--workers", "1", "--quiet"]


def test_short_sweep_writes_runs_charts_report_and_latest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "reports"
    code = cli.main(["sweep", "--clients", "3,5", *TINY, "--reports-root", str(root)])
    assert code == 0
    latest = root / sweep.LATEST
    assert latest.is_symlink()
    out = latest.resolve()
    assert out.parent == root.resolve() and out.name[:8].isdigit()
    for fanout in ("queued", "direct"):
        index = results.load_index(out / fanout)
        assert index["parameters"]["fanout"] == fanout
        assert [(r["clients"], r["status"]) for r in index["runs"]] == [(3, "ok"), (5, "ok")]
        runs = results.load_runs(out / fanout)
        assert [r["deliveries"]["expected"] for r in runs] == [20 * 2, 20 * 4]  # 20 msgs x (clients - 1)
        assert all(r["deliveries"]["delivered"] == r["deliveries"]["expected"] for r in runs)
    for file in plots.CHART_FILES.values():
        assert (out / file).stat().st_size > 10_000
    md = (out / report.REPORT_MD).read_text()
    assert md.count("| direct |") == 3
    # The report says how long the room took to fall quiet and what each server ran with.
    assert "| quiet room | traffic began once no client had received anything" in md
    for fanout in ("queued", "direct"):
        assert f"| server options ({fanout}) |" in md and f"fanout={fanout}, " in md
    assert "rate_limit=0.0" in md  # the harness turns flood control off
    # The last point, per strategy: one client stops reading -- what the strategies are for.
    for fanout in ("queued", "direct"):
        (stalled,) = results.load_runs(out / STALL_DIR / fanout)
        assert stalled["parameters"]["stalled_clients"] == 1 and stalled["parameters"]["clients"] == 20
    section = md[md.index("## When a client stops reading") : md.index("## Charts")]
    assert "| queued |" in section and "cut off by the server at its 64 KiB send queue" in section
    assert "| direct |" in section and "kept: the server waited on it" in section
    assert "stalls everyone under `direct`" in section
    assert md.count("| queued |") == 3  # the sweep's two points and this one; the charts leave it out
    printed = capsys.readouterr().out
    assert "queued: clients=3" in printed and "direct: clients=5" in printed
    assert f"report: {out.name}" in printed.replace(str(root.resolve()) + "/", "").replace(str(root) + "/", "")

    # a second run moves the link
    assert cli.main(["run", "--clients", "3", *TINY, "--duration", "0.5", "--reports-root", str(root)]) == 0
    second = latest.resolve()
    assert second != out and [p.name for p in second.iterdir() if p.is_dir()] == ["queued"]


def test_tiny_capacity_search_writes_its_json_and_section(tmp_path: Path) -> None:
    out = tmp_path / "cap"
    args = ["capacity", "--fanout", "queued", "--start", "3", "--max-clients", "5", "--refine", "0"]
    assert cli.main([*args, *TINY, "--out", str(out)]) == 0
    doc = results.load_capacity(out)
    (search,) = doc["searches"]
    assert [s["clients"] for s in search["steps"]] == [3, 5]
    assert search["result"]["largest_passing"] == 5 and search["result"]["reached_max_clients"] is True
    assert doc["parameters"]["senders"] == capacity.DEFAULT_SENDERS
    runs = results.load_runs(out / "queued")
    assert [r["parameters"]["senders"] for r in runs] == [3, 4]  # 4 senders, capped at the client count
    md = (out / report.REPORT_MD).read_text()
    assert "## Capacity" in md and "**queued: 5**" in md
    assert (out / capacity.CAPACITY_MD).read_text().startswith("# Capacity")
    assert not (tmp_path / capacity.LATEST_CAPACITY).exists()  # --out leaves the links alone


def _args(**kw: Any) -> argparse.Namespace:
    parser = cli.build_parser()
    args = parser.parse_args(["sweep", "--quiet", "--workers", "1"])
    args.argv = ["test"]
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_a_strategy_that_cannot_finish_skips_its_larger_counts(tmp_path: Path) -> None:
    calls: list[tuple[int, str | None]] = []

    def fake_run(config: SwarmConfig) -> dict[str, Any]:
        calls.append((config.clients, config.fanout))
        doc = _fake_doc(config)
        doc["completed"] = not (config.fanout == "direct" and config.clients >= 50)
        return doc

    clients = [10, 50, 100]
    series = sweep.make_series(_args(), clients, ["queued", "direct"], tmp_path)
    writers = sweep.run_series(series, clients, sweep.Plan(keep_going=False, quiet=True), run=fake_run)
    assert calls == [(10, "queued"), (10, "direct"), (50, "queued"), (50, "direct"), (100, "queued")]
    direct = results.load_index(tmp_path / "direct")
    assert [r["status"] for r in direct["runs"]] == ["ok", "ok", "error"]
    assert direct["runs"][2]["error"].startswith("skipped: 50 clients did not deliver everything")
    assert sweep.exit_code(writers, strict=False) == 1


def _fake_doc(config: SwarmConfig) -> dict[str, Any]:
    """A real run document from the report fixture, relabelled as this point."""
    doc = results.load_run(FIXTURES / "report_sweep" / "queued" / "run-c00003.json")
    doc["parameters"] = config.parameters()
    return doc


def test_command_line_errors_are_clear(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", "--fanout", "fastest"])
    assert exc.value.code == 2
    assert "fan-out strategies are queued, threads, direct" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--clients", "1,10"])
    assert "at least 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["run", "--clients", "0"])
    assert "client counts must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--target", "127.0.0.1:1", "--fanout", "direct"])
    assert "--fanout applies to the embedded server only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--target", "example.invalid:7000"])
    assert "cannot resolve" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    assert "sweep" in capsys.readouterr().out


def test_latest_link_is_replaced_not_followed(tmp_path: Path) -> None:
    a, b = tmp_path / "20260101-000000", tmp_path / "20260101-000100"
    a.mkdir()
    b.mkdir()
    assert store.point_latest(tmp_path, a) == tmp_path / "latest"
    assert store.point_latest(tmp_path, b) == tmp_path / "latest"
    assert (tmp_path / "latest").readlink() == Path(b.name)
    assert a.is_dir() and list(a.iterdir()) == []
    real = tmp_path / "other"
    real.mkdir()
    assert store.point_latest(tmp_path, a, "other") is None  # a real directory of that name is left alone


SWARM_OPTIONS = ["--target", "127.0.0.1:7000", "--protocol", "irc", "--senders", "3", "--stalled-clients", "1"]
SWARM_OPTIONS += ["--rate", "50", "--duration", "2", "--payload", "32", "--rx-clock", "read", "--quickack"]
SWARM_OPTIONS += ["--connect-batch", "4", "--pacing-spin-us", "10", "--label", "x", "--quiet"]


@pytest.mark.parametrize("command", ["sweep", "run", "capacity"])
def test_the_swarm_options_are_declared_once_and_built_into_one_config(command: str) -> None:
    args = cli.build_parser().parse_args([command, *SWARM_OPTIONS])
    config = cli.swarm_config(args, 10)
    assert (config.target, config.protocol, config.senders, config.stalled_clients) == ("127.0.0.1:7000", "irc", 3, 1)
    assert (config.rate, config.duration_s, config.payload_bytes) == (50.0, 2.0, 32)
    assert (config.rx_clock, config.quickack, config.connect_batch, config.spin_us) == ("read", True, 4, 10)
    assert (config.label, config.progress) == ("x", False)


def test_one_client_is_a_valid_run_only_with_dedicated_senders() -> None:
    parser = cli.build_parser()
    alone = parser.parse_args(["run", "--clients", "1", "--dedicated-senders", "--senders", "1"])
    cli.validate(alone, alone.clients, ["queued"])  # one receiver, one extra sender: fine
    assert cli.swarm_config(alone, 1).clients == 1
    shared = parser.parse_args(["run", "--clients", "1"])
    with pytest.raises(ValueError, match="at least 2 clients"):
        cli.validate(shared, shared.clients, ["queued"])


def test_capacity_and_compare_keep_their_own_defaults() -> None:
    parser = cli.build_parser()
    cap = parser.parse_args(["capacity"])
    assert (cap.rate, cap.duration, cap.senders) == (capacity.CAPACITY_RATE, capacity.CAPACITY_DURATION_S, 4)
    cmp = parser.parse_args(["compare"])
    assert cmp.quickack is True and cmp.rate == 100.0
    assert parser.parse_args(["compare", "--no-quickack"]).quickack is False
    assert parser.parse_args(["sweep"]).quickack is False


def test_usage_errors_are_one_line_and_point_at_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", "--no-such-option"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unrecognized arguments" in err[0] and "--help" in err[1]


def test_one_command_line_has_every_subcommand() -> None:
    names = ["sweep", "run", "capacity", "compare", "gate", "onebroadcast", "soak", "replay", "cost", "handshakes"]
    names += ["selftest"]
    names += ["report", "diff", "save", "export", "cluster", "cluster-scaling", "cluster-paths", "peers"]
    assert list(cli.SUBCOMMANDS) == names
    for name in [n for n in names if n not in ("gate", "onebroadcast")]:
        module = cli.load(name)
        assert callable(module.configure) and callable(module.run), name
