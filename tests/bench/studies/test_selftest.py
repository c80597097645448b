"""The selftest: the harness against the fault-injecting relay, at CI scale.

The exact-count scenario (drops, duplicates, swaps, corruptions per receiver
and sender, and a disconnect) must match to the message: a harness change
that miscounts by one fails here.  The latency scenarios run small, with the
wide CI tolerance.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.measure import probe
from bench.measure.integrity import IntegrityTracker, total
from bench.studies import selftest
from bench.studies import selftest_bounds as bounds
from bench.targets.faultplan import FAULT_SPACING, DelayModel, FaultOptions, Timetable, client_id, plan_faults
from bench.targets.faultrelay import corrupt_text, option_argv

pytestmark = pytest.mark.timeout(120)


def _failed(out: selftest.Outcome) -> list[selftest.Check]:
    return [c for c in out.checks if not c["ok"]]


def test_latency_stall_and_pause_scenarios_small() -> None:
    out, figures = selftest.selftest(ci=True, only={"constant-20", "uniform-20", "stall", "pause"})
    assert not _failed(out), selftest.table(out)
    assert {c["scenario"] for c in out.checks} == {"constant-20", "uniform-20", "stall", "pause"}
    pause_max = next(c for c in out.checks if c["scenario"] == "pause" and c["check"] == "max ms")
    assert float(pause_max["reported"]) > 200  # the 300 ms read pause shows as latency
    assert figures["stall"]


def test_harness_stall_keeps_the_timetable_and_shows_as_latency() -> None:
    """The swarm's workers are stopped 200 ms mid-run: every probe still carries
    its open-loop intended time, so the late sends show as latency."""
    out, _ = selftest.selftest(ci=True, only={"harness-stall"})
    assert not _failed(out), selftest.table(out)
    checks = {c["check"]: c for c in out.checks}
    assert checks["probes off the timetable"]["reported"].startswith("0 of ")
    assert float(checks["harness stop shows (max ms)"]["reported"]) >= 150


def test_a_late_tail_within_the_read_lag_passes_as_a_busy_machine_and_says_so() -> None:
    """The issue's run: uniform-100 p99.9 51.17 ms expected, 52.26 reported.
    Beyond the stated 1% + 0.2 ms; a late read explains it only when the run's
    read lag was that large, and nothing explains an early value."""
    stated = bounds.Bound(rel=0.01, abs_us=200, read_lag_us=0)
    assert bounds.judge(51_170, 51_500, stated) == (bounds.PASS, "")  # within 0.71 ms
    busy = bounds.Bound(rel=0.01, abs_us=200, read_lag_us=3_000)
    verdict, note = bounds.judge(51_170, 52_260, busy)
    assert verdict == bounds.PASS_BUSY
    assert "1.09 ms late" in note and "0.71 ms here" in note and "read lag p99 (3.00 ms)" in note
    verdict, note = bounds.judge(51_170, 52_260, bounds.Bound(rel=0.01, abs_us=200, read_lag_us=300))
    assert verdict == bounds.FAIL and "even widened" in note and "harness error" in note
    verdict, note = bounds.judge(51_170, 50_000, busy)
    assert verdict == bounds.FAIL and "early" in note


def test_the_table_and_json_say_which_checks_the_machine_is_to_blame_for(tmp_path: Path) -> None:
    out = selftest.Outcome()
    out.add("integrity", "lost (total)", 3, 3, True)
    busy = bounds.Bound(rel=0.01, abs_us=200, read_lag_us=3_000)
    out.judged("uniform-100", "p99.9 ms", "51.17", "52.26", bounds.judge(51_170, 52_260, busy))
    assert [c["ok"] for c in out.checks] == [True, True] and out.busy() == out.checks[1:]
    text = selftest.table(out)
    assert "pass, busy machine" in text
    assert "Notes:\n  uniform-100 p99.9 ms: 1.09 ms late" in text
    noise = bounds.scheduling_delay(sleeps=20)
    assert (
        noise["sleeps"] == 20
        and 0 <= noise["overshoot_p50_us"] <= noise["overshoot_p99_us"] <= noise["overshoot_max_us"]
    )
    assert "sleep overshot by p50" in bounds.noise_line(noise)


def test_timetable_flags_a_probe_stamped_with_its_actual_send_time() -> None:
    table = Timetable(senders=2, rate=1000.0)  # m = seq * 2 + sender, 1 ms apart
    for seq in range(3):
        for sender in range(2):
            table.check(sender, seq, 5_000_000 + (seq * 2 + sender) * 1_000_000)
    table.check(0, 3, 5_000_000 + 6 * 1_000_000 + 40_000)  # sent 40 us late, stamped late
    assert table.record() == {"checked": 7, "off": 1, "max_off_us": 40.0}


def test_fault_plan_is_seeded_spaced_and_avoids_the_disconnected_receiver() -> None:
    opts = FaultOptions(seed=7, senders=3, clients=6, seq_lo=0, seq_hi=60, drop=4, swap=4, corrupt=2, disconnect=5)
    plan = plan_faults(opts)
    assert plan == plan_faults(opts)
    assert plan != plan_faults(FaultOptions(**{**opts.__dict__, "seed": 8}))
    assert len({(f.sender, f.seq) for f in plan}) == len(plan) == 10
    for f in plan:
        assert f.receiver not in (f.sender, 5) and f.seq % FAULT_SPACING == 0 and f.seq + 1 < 60
    with pytest.raises(ValueError, match="widen the seq range"):
        plan_faults(FaultOptions(senders=1, clients=3, seq_lo=0, seq_hi=4, drop=5))


def test_delay_model_stall_moves_due_times_to_the_window_end_and_keeps_order() -> None:
    model = DelayModel(FaultOptions(delay_ms=1, stall_every_ms=1000, stall_ms=200))
    second = 10**9
    assert model.due_ns(0, 0, 5 * second + 50_000_000) == 5 * second + 200_000_000  # in the window: held
    assert model.due_ns(0, 1, 5 * second + 500_000_000) == 5 * second + 501_000_000
    assert model.due_ns(0, 2, 5 * second) == 5 * second + 501_000_000  # never before its predecessor
    uniform = DelayModel(FaultOptions(seed=3, uniform_ms=(5, 50)))
    fractions = [uniform.uniform_fraction(1, q) for q in range(2000)]
    assert 0 <= min(fractions) < 0.01 and 0.99 < max(fractions) < 1
    assert 0.45 < sum(fractions) / len(fractions) < 0.55


def test_corrupt_text_changes_one_payload_byte_and_keeps_the_header() -> None:
    text = probe.encode_probe(3, 17, 123456789, probe.make_payload(20, 3, 17))
    bad = corrupt_text(text)
    assert len(bad) == len(text) and sum(a != b for a, b in zip(text, bad, strict=True)) == 1
    with pytest.raises(probe.CorruptProbe):
        probe.parse_probe(bad)
    assert probe.probe_header(bad) == (3, 17)
    assert client_id("cbx1y2-17") == 17 and client_id("alice") is None


def test_integrity_counts_per_sender_add_up_to_the_totals() -> None:
    t = IntegrityTracker()
    for seq in (0, 2, 1, 1, 3):  # 1 reordered, then duplicated
        t.observe(0, seq)
    t.observe(1, 0)
    t.observe_corrupt(1, 1)
    t.observe_corrupt()
    sent = {0: 5, 1: 3, 2: 2}
    by_sender = t.finish_by_sender(sent, skip_sender=2)
    assert by_sender[0].as_dict() == {"lost": 1, "duplicated": 1, "reordered": 1, "corrupted": 0}
    assert by_sender[1].as_dict() == {"lost": 1, "duplicated": 0, "reordered": 0, "corrupted": 1}
    assert by_sender[-1].corrupted == 1
    assert total(by_sender.values()) == t.finish(sent, skip_sender=2)


def test_relay_refuses_impossible_faults_with_one_line(tmp_path: Path) -> None:
    argv = option_argv(FaultOptions(senders=1, clients=2, seq_lo=0, seq_hi=3, drop=9), f"{tmp_path}/s.json")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.targets.faultrelay", *argv], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "bad fault options" in proc.stderr and "widen the seq range" in proc.stderr


def test_exact_counts_per_receiver_and_sender_through_the_command(tmp_path: Path) -> None:
    """``chat-bench selftest --ci --only integrity``: drops, duplicates, swaps,
    corruptions and a disconnect, counted exactly per (receiver, sender)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "selftest", "--ci", "--only", "integrity", "--quiet", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "per (receiver, sender) pair" in proc.stdout
    doc = json.loads((tmp_path / "selftest.json").read_text())
    assert doc["failed"] == 0
    assert doc["machine_noise"]["sleeps"] > 0 and "machine scheduling noise" in proc.stdout
    assert all(c["verdict"] == "pass" and c["note"] == "" for c in doc["checks"])
    rows = {c["check"]: c for c in doc["checks"]}
    # Every kind of fault was injected (so a miscount could not pass as zero = zero).
    for name in ("duplicated", "reordered", "corrupted"):
        assert int(rows[f"{name} (total)"]["expected"]) == 3
    assert int(rows["lost (total)"]["expected"]) > 3  # 3 drops + the disconnected receiver's


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_locust_scenarios_exact_counts_latency_and_a_disconnect() -> None:
    out, _ = selftest.selftest(ci=True, only={"none"}, locust=True)
    assert not _failed(out), selftest.table(out)
    rows = {(c["scenario"], c["check"]): c for c in out.checks}
    assert rows[("locust-integrity", "master merged 2 workers")]["reported"] == "2"
    injected = [int(rows[("locust-integrity", f"{n} (total)")]["expected"]) for n in ("lost", "duplicated")]
    injected += [int(rows[("locust-integrity", f"{n} (total)")]["expected"]) for n in ("reordered", "corrupted")]
    assert sum(injected) >= 8
    assert {"locust-light", "locust-heavy"} <= {c["scenario"] for c in out.checks if c["check"] == "p50 ms"}
    assert rows[("locust-disconnect", "CONNECT failures")]["reported"] == "1"
