"""Issue 15's small print: --help shows each subcommand's real defaults once,
a usage error names the subcommand, counts are in the right number, and a
run's line says which window each figure covers."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from bench import cli
from bench.report import fmt, runline
from bench.results import load_run
from bench.results.schema import RunDocument
from bench.studies import capacity, clusterup, sweep
from tests.paths import FIXTURES

pytestmark = pytest.mark.timeout(60)

FIXTURE = FIXTURES / "report_sweep"


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # unwrapped


@pytest.mark.parametrize("command", list(cli.SUBCOMMANDS))
def test_help_shows_no_empty_doubled_or_python_defaults(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(command, capsys)
    assert "(default: None)" not in text and "(default: False)" not in text
    assert not re.search(r"\(default: \[", text), "a list default shown as a Python list"
    assert not re.search(r"\(default: [^()]*(\([^()]*\))?[^()]*\) \(default:", text), "a default shown twice"


def test_help_shows_the_value_each_subcommand_really_uses(capsys: pytest.CaptureFixture[str]) -> None:
    sweep_help = _help("sweep", capsys)
    assert f"(default: {','.join(map(str, sweep.DEFAULT_CLIENTS))})" in sweep_help
    assert f"(default: {cli.DEFAULT_RATE:g})" in sweep_help
    assert f"(default: {','.join(sweep.DEFAULT_FANOUTS)}; the server alone defaults to queued)" in sweep_help
    assert "(default: queued)" in _help("run", capsys)
    cap = _help("capacity", capsys)
    assert f"sending clients (default: {capacity.DEFAULT_SENDERS})" in cap
    assert f"(default: {capacity.CAPACITY_RATE:g})" in cap
    args = cli.build_parser().parse_args(["capacity"])
    assert args.senders == capacity.DEFAULT_SENDERS and args.rate == capacity.CAPACITY_RATE


def test_an_unknown_option_is_reported_by_its_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", "--clientz", "10"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"{cli.PROG} sweep: error: unrecognized arguments: --clientz 10",
        f"(see `{cli.PROG} sweep --help`)",
    ]


def test_plural_helper() -> None:
    assert fmt.plural(1, "point") == "1 point"
    assert fmt.plural(2, "point") == "2 points"
    assert fmt.plural(0, "run") == "0 runs"
    assert fmt.plural(1, "worker process", "worker processes") == "1 worker process"
    assert fmt.plural(1500, "time") == "1,500 times"


def _run() -> RunDocument:
    path = sorted(FIXTURE.glob("queued/run-*.json"))[0]
    return load_run(path)


def test_run_line_names_the_window_of_each_figure() -> None:
    doc = copy.deepcopy(_run())
    # everything measured arrived, but a warm-up message was lost and arrivals ran late
    doc["integrity"]["lost"] = 2
    doc["deliveries"]["per_s"] = doc["deliveries"]["offered_per_s"] / 2  # type: ignore[operator]
    line = runline.summary_line(doc)
    assert f"{runline.MEASURED}: delivered" in line and "(100.00%)" in line
    assert f"{runline.ALL_TRAFFIC}: lost 2" in line
    assert f"deliveries/s {runline.RATE_WINDOW} (offered " in line


def test_make_cluster_says_how_to_start_the_client_from_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make cluster` runs from the checkout, where chat-client is .venv/bin/chat-client, not on PATH."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python, script = bin_dir / "python", bin_dir / "chat-client"
    python.touch()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert clusterup.client_command(8000, str(python)) == f"{python} -m client --port 8000"  # not installed
    script.touch(mode=0o755)
    assert clusterup.client_command(8000, str(python)) == ".venv/bin/chat-client --port 8000"
    monkeypatch.setenv("PATH", str(bin_dir))
    assert clusterup.client_command(8000, str(python)) == "chat-client --port 8000"
