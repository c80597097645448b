"""``chat-bench connect-rate`` and the churn options on the command line:
the steps, what makes one fail, the report, and clear usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli
from bench.measure.stats import LatencyHistogram
from bench.studies import connectrate
from tests.paths import REPO


def test_rates_grow_by_the_factor_up_to_the_most() -> None:
    assert connectrate.rates(100, 2, 800) == [100, 200, 400, 800]
    assert connectrate.rates(100, 3, 800) == [100, 300]
    with pytest.raises(cli.UsageError):
        connectrate.rates(100, 1, 800)


def _step(**kw: object) -> connectrate.ConnectRateStep:
    step = connectrate._failed_step(400, "x")
    latency = LatencyHistogram()
    latency.record(5000)
    step.update({"registered": 600, "achieved_per_s": 400.0, "why": [], "total_us": latency.summary()})
    step.update(kw)  # type: ignore[typeddict-item]
    return step


def test_a_step_fails_on_its_p99_its_failures_or_a_short_rate() -> None:
    assert connectrate.judge(_step(), bound_ms=100) == []
    slow = LatencyHistogram()
    slow.record(250_000)
    assert connectrate.judge(_step(total_us=slow.summary()), 100) == ["p99 250.1 ms > 100 ms"]  # HDR: within 0.1%
    assert connectrate.judge(_step(failures={"refused: server full": 3}), 100) == ["3 failed (refused: server full)"]
    assert connectrate.judge(_step(achieved_per_s=300.0), 100) == ["300/s registered of 400/s offered"]


@pytest.mark.timeout(120)
def test_connect_rate_against_our_server_writes_its_steps_and_report(tmp_path: Path) -> None:
    out = tmp_path / "cr"
    args = ["connect-rate", "--targets", "embedded", "--start", "50", "--max", "100", "--step-duration", "1.5"]
    assert cli.main([*args, "--clients", "4", "--rate", "10", "--workers", "1", "--out", str(out), "--quiet"]) == 0
    study = json.loads((out / "connect-rate.json").read_text())
    assert study["kind"] == "chatbench.connect-rate" and study["parameters"]["p99_bound_ms"] == 100
    (target,) = study["targets"]
    assert target["target"] == "embedded" and target["registration"] == "the welcome line"
    assert [s["rate"] for s in target["steps"]] == [50, 100]
    for step in target["steps"]:
        assert step["passed"], step["why"]
        assert step["registered"] == step["attempts"] > 0 and step["failures"] == {}
        assert step["total_us"]["count"] == step["registered"]
        assert step["tls_us"] is None  # plaintext: no handshake
        assert step["tcp_us"]["p99_us"] <= step["total_us"]["max_us"]
        run = json.loads((out / step["file"]).read_text())
        assert run["churn"]["probes"] == step["registered"] and run["integrity"]["faults"] == 0
    assert target["capacity_per_s"] == 100
    assert (out / "connect-rate.png").stat().st_size > 0
    assert "| embedded | chat | the welcome line | 100 |" in (out / "connect-rate.md").read_text()


@pytest.mark.timeout(120)
def test_connect_rate_over_tls_times_every_probes_handshake(tmp_path: Path) -> None:
    """``--tls --tls-resume``: every probe handshakes (resuming the worker's
    session), and the step and its report show the handshake's part."""
    out = tmp_path / "cr"
    args = ["connect-rate", "--targets", "embedded", "--start", "50", "--max", "50", "--step-duration", "1.5"]
    tls = ["--tls", "--tls-resume"]
    assert (
        cli.main([*args, *tls, "--clients", "4", "--rate", "10", "--workers", "1", "--out", str(out), "--quiet"]) == 0
    )
    study = json.loads((out / "connect-rate.json").read_text())
    params = study["parameters"]
    assert params["transport"] == "tls" and params["tls"]["resume"] is True and params["logins"] is None
    (step,) = study["targets"][0]["steps"]
    assert step["passed"], step["why"]
    assert step["tls_us"] is not None and step["tls_us"]["count"] == step["registered"] > 0
    assert 1 <= step["tls_resumed"] <= step["registered"]  # offered once a connection of the worker registered
    run = json.loads((out / step["file"]).read_text())
    assert run["connects"]["probe"]["tls_us"] == step["tls_us"] and run["labels"][0]["values"]["transport"] == "tls"
    report = (out / "connect-rate.md").read_text()
    assert "| TLS p99 ms |" in report and "Every connection is over TLS." in report


def test_connect_rate_over_tls_leaves_out_the_targets_that_cannot_serve_it() -> None:
    assert connectrate.default_targets(tls=False) == list(connectrate.DEFAULT_TARGETS)
    secured = connectrate.default_targets(tls=True)
    assert "miniircd" not in secured and {"embedded", "embedded-ws", "mosquitto"} <= set(secured)


def test_connect_rate_refuses_what_cannot_run_before_any_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for args, message in [
        (["--targets", "miniircd", "--tls"], "cannot be started with TLS"),
        (["--targets", "embedded", "--password", "pw"], "a new name has no account"),  # probes cannot log in
    ]:
        with pytest.raises(SystemExit) as exited:
            cli.main(["connect-rate", *args, "--out", str(tmp_path / "x"), "--quiet"])
        assert exited.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clients", "3", "--senders", "3", "--churn", "5"], "receivers that do not send"),
        (["--clients", "20", "--storm", "50@100", "--duration", "2"], "--storm's time must fall"),
        (["--clients", "20", "--storm", "fifty"], "--storm is PCT@T"),
        (["--clients", "20", "--storm", "50@1", "--storm-node", "0"], "a cluster:M target"),
        (["--clients", "20", "--churn", "5", "--backoff", "5,1"], "0 < BASE <= CAP"),
        (["--clients", "20", "--churn", "5", "--tls", "--password", "pw"], "--churn-names same"),
    ],
)
def test_churn_options_say_what_is_wrong_in_one_line(args: list[str], message: str) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "bench", "run", *args, "--quiet"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert bad.returncode == 2, bad.stderr
    assert message in bad.stderr and "Traceback" not in bad.stderr
