"""Clocks across Locust workers, in process (no locust, no gevent): the
clock key, the offset estimate and its bound, and the corrections a receiver
makes (bench/loadtest/clocks.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.loadtest.clocks import (
    MAX_DRIFT_PPM,
    OVER_BOUND,
    UNKNOWN,
    ClockEntry,
    ClockTable,
    Correction,
    Estimate,
    better,
    clock_key,
    disagreements,
    estimate,
    timens_monotonic_ns,
)

MS = 1_000_000
SECOND = 1_000_000_000


def test_clocks_module_imports_neither_locust_nor_gevent() -> None:
    code = (
        "import sys, bench.loadtest.clocks, bench.loadtest.document, bench.loadtest.receive\n"
        "bad = [m for m in ('locust', 'gevent') if m in sys.modules]\n"
        "sys.exit(f'imported {bad}' if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr + done.stdout


def test_clock_key_names_the_boot_and_the_time_namespace(tmp_path: Path) -> None:
    boot = tmp_path / "boot_id"
    boot.write_text("0f7e1c2a-aaaa-bbbb-cccc-1234567890ab\n")
    outside = tmp_path / "outside"
    outside.write_text("monotonic           0         0\nboottime            0         0\n")
    inside = tmp_path / "inside"
    inside.write_text("monotonic           3         500\nboottime            0         0\n")
    key = clock_key(str(boot), str(outside))
    assert key == clock_key(str(boot), str(tmp_path / "no-such-file"))  # no time namespaces: the same clock
    assert timens_monotonic_ns(str(inside)) == 3 * SECOND + 500
    assert clock_key(str(boot), str(inside)) == key + "+monotonic=3.000000500"
    other = tmp_path / "other_boot"
    other.write_text("another boot\n")
    assert clock_key(str(other), str(outside)) != key


def test_this_process_in_a_time_namespace_gets_another_key() -> None:
    probe = [sys.executable, "-c", "from bench.loadtest.clocks import clock_key; print(clock_key())"]
    here = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    done = subprocess.run(
        ["unshare", "--time", "--monotonic", "3", "--fork", *probe], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        pytest.skip(f"no time namespaces here (unshare --time: {done.stderr.strip()[:100]})")
    assert done.stdout.strip() == here + "+monotonic=3.000000000"


def test_estimate_keeps_the_lowest_round_trip_and_half_of_it_as_bound() -> None:
    # The master's clock is 5 s ahead; the answers took (in, out): (1, 1), (0.1, 0.3), (2, 0.2) ms.
    exchanges = [
        (100 * MS, 5 * SECOND + 101 * MS, 102 * MS),
        (200 * MS, 5 * SECOND + 200 * MS + MS // 10, 200 * MS + 4 * MS // 10),
        (300 * MS, 5 * SECOND + 302 * MS, 302 * MS + MS // 5),
    ]
    est = estimate(exchanges)
    assert est is not None
    assert est.bound_ns == 200_000  # half of the 0.4 ms round trip
    assert est.at_ns == 200 * MS + 4 * MS // 10
    assert abs(est.offset_ns - 5 * SECOND) <= est.bound_ns  # the true offset lies within the bound
    assert est.offset_ns == 5 * SECOND - 100_000  # (the master answered early in the round trip)
    assert estimate([]) is None


def test_a_bound_grows_with_the_drift_allowance_and_a_better_estimate_replaces_it() -> None:
    old = Estimate(offset_ns=0, bound_ns=100_000, at_ns=0)
    assert old.bound_at(SECOND) == 100_000 + MAX_DRIFT_PPM * 1000
    assert old.bound_at(-5) == 100_000
    assert better(Estimate(10, 120_000, SECOND), old)  # the old one has grown to 150 us by then
    assert not better(Estimate(10, 200_000, SECOND), old)
    assert better(Estimate(10, 10**9, 0), None)


def entry(origin: int, key: str, offset_ms: float | None, bound_us: int = 100, at_master_ns: int = 0) -> ClockEntry:
    return ClockEntry(
        origin=origin,
        key=key,
        offset_ns=None if offset_ms is None else int(offset_ms * MS),
        bound_ns=None if offset_ms is None else bound_us * 1000,
        at_master_ns=None if offset_ms is None else at_master_ns,
    )


def test_corrections_between_clocks() -> None:
    table = ClockTable(origin=1, key="boot")
    max_error = MS
    assert table.correction(1, 0, max_error) == Correction(same=True)  # our own users
    assert table.correction(2, 0, max_error) == UNKNOWN  # nothing known of origin 2
    table.update([entry(2, "boot", None), entry(3, "boot+monotonic=3.000000000", None)])
    assert table.correction(2, 0, max_error) == Correction(same=True)  # one clock by its key, no offsets yet
    assert table.correction(3, 0, max_error) == UNKNOWN  # another clock, offsets not measured yet
    table.set_own(Estimate(offset_ns=0, bound_ns=150_000, at_ns=0))
    table.update([entry(2, "boot", 0.02, 90), entry(3, "boot+monotonic=3.000000000", -3000.0, 120)])
    assert table.correction(2, 0, max_error) == Correction(same=True)  # offsets agree within the bounds
    # The time namespace's clock is 3 s ahead: its stamps are moved back by 3 s, within 150 + 120 us.
    assert table.correction(3, 0, max_error) == Correction(same=False, shift_ns=-3000 * MS, bound_ns=270_000)
    # A second later both estimates are older: the bound grows by the drift allowance on each side.
    later = table.correction(3, SECOND, max_error)
    assert isinstance(later, Correction)
    assert later.bound_ns == 270_000 + 2 * MAX_DRIFT_PPM * 1000
    assert table.correction(3, 0, 200_000) == OVER_BOUND  # --chat-max-clock-error 0.2


def test_one_key_with_offsets_apart_is_two_clocks() -> None:
    # Same boot, same key, but 3 s apart: a clock the key cannot see (offsets compared, not just boot ids).
    table = ClockTable(origin=1, key="boot")
    table.set_own(Estimate(offset_ns=0, bound_ns=100_000, at_ns=0))
    table.update([entry(2, "boot", -3000.0, 100)])
    assert table.correction(2, 0, MS) == Correction(same=False, shift_ns=-3000 * MS, bound_ns=200_000)
    lines = disagreements([entry(1, "boot", 0.0), entry(2, "boot", -3000.0), entry(4, "other", 7.0)])
    assert len(lines) == 1 and "differ by 3000.000 ms" in lines[0], lines
    assert disagreements([entry(1, "boot", 0.0), entry(2, "boot", 0.1), entry(3, "boot", None)]) == []
