"""The studies over TLS, small: ``cost --tls`` interleaves plaintext and TLS
per target and gives the ratio; ``handshakes`` counts handshakes per second
with full and resumed ones timed apart; ``selftest --tls`` keeps the exact
counts and the stated latency bound with the relay speaking TLS (kernel
stamps of the ciphertext, decrypted after); ``onebroadcast`` and the gate
speak TLS with logins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import cli
from bench.gate.run import run_gate
from bench.gate.scenario import Scenario
from bench.net.tls import TlsOptions
from bench.studies import onebroadcast, selftest
from bench.swarm import pinning
from bench.targets.packages import find_binary
from bench.wire.client import Access
from bench.wire.credentials import single

pytestmark = pytest.mark.timeout(180)


def test_cost_with_tls_runs_plaintext_then_tls_and_gives_the_ratio(tmp_path: Path) -> None:
    cpus = pinning.available_cpus()
    pin = ["--server-cpus", str(cpus[-1]), "--harness-cpus", str(cpus[0])] if len(cpus) >= 2 else []
    out = tmp_path / "cost"
    code = cli.main(
        [
            *("cost", "--tls", "--targets", "embedded", "--clients", "4", "--rate", "300", "--duration", "1.2"),
            *("--warmup", "0.2", "--repeat", "2", *pin, "--out", str(out), "--quiet"),
        ]
    )
    assert code == 0
    doc = json.loads((out / "cost.json").read_text())
    # interleaved: plain, tls, plain, tls
    assert [(r["transport"], r["repeat"]) for r in doc["runs"]] == [("plain", 1), ("tls", 1), ("plain", 2), ("tls", 2)]
    assert all(r["status"] == "ok" and r["delivered_ratio"] == 1.0 for r in doc["runs"])
    assert set(doc["medians"]) == {"embedded", "embedded:tls"}
    median, lo, hi = doc["tls_ratio"]["embedded"]
    assert lo <= median <= hi and median > 0
    by_rep = {(r["repeat"], r["transport"]): r["cpu_us_per_delivery"] for r in doc["runs"]}
    ratios = sorted(round(by_rep[n, "tls"] / by_rep[n, "plain"], 3) for n in (1, 2))
    assert [lo, hi] == ratios  # the ratio of each repeat's adjacent pair
    run = json.loads(next((out / "embedded-tls").glob("run-*.json")).read_text())
    assert run["parameters"]["transport"] == "tls" and run["setup"]["tls_full_us"]["count"] > 0
    with pytest.raises(SystemExit):  # logins do not change the traffic: refused
        cli.main(["cost", "--password", "x", "--out", str(tmp_path / "x")])


def test_handshakes_counts_full_and_resumed_handshakes(tmp_path: Path) -> None:
    out = tmp_path / "hs"
    code = cli.main(
        ["handshakes", "--targets", "embedded", "--duration", "1", "--workers", "1", "--out", str(out), "--quiet"]
    )
    assert code == 0
    doc = json.loads((out / "handshakes.json").read_text())
    runs = {r["phase"]: r for r in doc["runs"]}
    assert set(runs) == {"full", "resumed"}
    full, resumed = runs["full"], runs["resumed"]
    for r in (full, resumed):
        assert r["status"] == "ok" and r["completed"] > 5 and not r["failures"], r
        assert r["attempts_per_s"] == pytest.approx(r["completed"] / 1.0)
        assert r["server_cpu_us_per_attempt"] is not None and r["server_cpu_us_per_attempt"] > 0
        assert r["register_us"] is not None and r["register_us"]["count"] >= r["completed"]
    assert full["resumed_share"] == 0 and full["tls_full_us"]["count"] >= full["completed"]
    assert resumed["resumed_share"] > 0.5  # after the first, every attempt resumes
    assert {"connect", "tls_full", "tls_resumed", "register", "total"} <= set(resumed["histograms"])
    assert doc["medians"]["embedded"]["resumed"]["attempts_per_s"][0] == resumed["attempts_per_s"]


def test_selftest_over_tls_keeps_counts_and_latency_bounds() -> None:
    out, _ = selftest.selftest(ci=True, only={"integrity", "constant-20"}, tls=True)
    failed = [c for c in out.checks if not c["ok"]]
    assert not failed, selftest.table(out)
    checked = {(c["scenario"], c["check"]) for c in out.checks}
    assert ("constant-20", "p99 ms") in checked and ("integrity", "per (receiver, sender) pair") in checked


def test_onebroadcast_over_tls_with_a_password() -> None:
    study = onebroadcast.Study(clients=8, rounds=3, tls=TlsOptions(), logins=single(None, "pw"))
    result = onebroadcast.measure(study)
    assert len(result["rounds"]) == 3
    assert 0 < result["median"]["first_us"] <= result["median"]["last_us"]


@pytest.mark.skipif(find_binary("nats-server") is None, reason="nats-server is not installed (make peers)")
def test_the_gate_measures_a_target_over_tls_with_a_login() -> None:
    access = Access(TlsOptions(), single("bench", "pw"))
    scenario = Scenario(clients=5, lines=10, rounds=3, warmup=1, target="nats", access=access)
    measurement = run_gate(scenario)
    assert measurement.server.timed_out == 0 and measurement.server.incomplete_receivers == 0
    assert measurement.to_json()["scenario"]["access"]["tls"] is not None
    with pytest.raises(ValueError, match="apply with --target"):
        Scenario(access=access)
