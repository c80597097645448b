"""The gate's bursts go through the harness's one receive path, so they run
against any target (measured only: the baseline is our server's), and a
probe that arrives damaged, twice or not at all fails the measurement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import cli
from bench.gate.burst import FanoutGroup
from bench.gate.scenario import GateError, Scenario
from bench.targets import TargetError, make_target
from bench.targets.faultrelay import FaultRelayTarget

pytestmark = pytest.mark.timeout(120)

SMALL = ["--clients", "4", "--lines", "20", "--rounds", "3", "--warmup", "1", "-q"]


@pytest.mark.parametrize("target", ["redis", "embedded-ws"])
def test_the_gate_measures_another_target_without_judging_it(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        make_target(target).describe()
    except TargetError as exc:
        pytest.skip(str(exc))
    assert cli.main(["gate", "--target", target, *SMALL]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{target}: burst to 4 receivers in ")
    assert "fanout_ratio" in out and "measured only" in out


def test_the_gate_refuses_a_baseline_for_another_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gate", "--target", "redis", "--write-baseline", *SMALL]) == 2
    assert "--write-baseline records our server's baseline" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fault", "expected"), [("--duplicate", "twice"), ("--corrupt", "damaged"), ("--drop", "never arrived")]
)
def test_a_faulty_burst_fails_the_measurement(fault: str, expected: str, tmp_path: Path) -> None:
    """A fault-injecting relay duplicates, corrupts or drops probes of the
    first burst: the gate says so instead of measuring it."""
    schedule = tmp_path / "schedule.json"
    # Receivers are numbered by their names (gate-r-000 is 0); the gate's sender is probe sender 1.
    args = ["--schedule", str(schedule), "--ids", "name", "--clients", "3", "--senders", "2", "--seed", "1"]
    relay = FaultRelayTarget([*args, "--seq-hi", "20", fault, "3"])
    scenario = Scenario(clients=3, lines=20, rounds=1, warmup=0, burst_timeout=1.0)
    host, port = relay.start()
    try:
        group = FanoutGroup((host, port), scenario, stalled=0)
        try:
            with pytest.raises(GateError, match=expected):
                group.burst()
        finally:
            group.close()
    finally:
        relay.stop()
    applied = [f for f in json.loads(schedule.read_text())["faults"] if f["applied"]]
    assert applied and all(f["sender"] == 1 for f in applied)
