"""The selftest's latency bounds: what the harness claims, and how much of a
miss the machine, not the harness, is to blame for.

The claim: a reported percentile lies within ``rel`` x the relay's value +
``abs_us`` of it (1% + 0.2 ms; 10% + 5 ms with ``--ci``).  What a busy
machine adds on top: when the harness reads a socket late and a later line
reached it meanwhile, the kernel stamps the whole read with the last
segment's arrival, so an earlier line in it looks late by up to the read
lag.  That error is one-sided (a line never looks *early*) and bounded by
how late the harness read, which every run measures (``receive_lag_us``).

So each latency check has three outcomes (:func:`judge`):

* ``pass``: within the stated bound;
* ``pass, busy machine``: late by more than the stated bound but by no more
  than the bound plus this run's read lag p99 -- the machine kept the
  harness from reading in time; the check's note says so with the numbers;
* ``FAIL``: later than even that, or earlier than the stated bound allows
  (no late read explains an early line): a harness error.

:func:`scheduling_delay` measures the machine's scheduling noise before the
scenarios (how far a 1 ms sleep overshoots), so the report says how busy
the machine was when it blames the machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TypedDict

#: The verdicts of one check.
PASS = "pass"
PASS_BUSY = "pass, busy machine"
FAIL = "FAIL"

#: The scheduling-noise probe: this many sleeps of this many seconds.
NOISE_SLEEPS = 300
NOISE_SLEEP_S = 0.001


@dataclass(frozen=True)
class Bound:
    """One run's latency bound: the stated one and the machine's allowance."""

    rel: float  #: stated: this share of the expected value ...
    abs_us: float  #: ... plus this (microseconds)
    read_lag_us: float  #: this run's harness read lag p99: how late a late read can make a line look


def judge(want_us: float, got_us: float, bound: Bound) -> tuple[str, str]:
    """The verdict on one reported value against the expected one, and a
    note saying why when it is not a plain pass."""
    stated = bound.rel * want_us + bound.abs_us
    off = got_us - want_us
    if abs(off) <= stated:
        return PASS, ""
    ms = f"{abs(off) / 1000:.2f} ms"
    claim = f"the stated {bound.rel:.0%} + {bound.abs_us / 1000:g} ms ({stated / 1000:.2f} ms here)"
    lag = f"this run's harness read lag p99 ({bound.read_lag_us / 1000:.2f} ms)"
    if off < 0:
        return FAIL, f"{ms} early, beyond {claim}: a late read cannot make a line look early (a harness error)"
    if off <= stated + bound.read_lag_us:
        return PASS_BUSY, (
            f"{ms} late, beyond {claim} but within it + {lag}: the machine kept the harness from reading in "
            "time and the kernel stamped the late read with its last segment's arrival (not a measurement error)"
        )
    return FAIL, f"{ms} late, beyond {claim} even widened by {lag} (a harness error)"


class SchedulingDelay(TypedDict):
    """How far a short sleep overshoots on this machine right now (microseconds)."""

    sleep_us: float
    sleeps: int
    overshoot_p50_us: float
    overshoot_p99_us: float
    overshoot_max_us: float


def scheduling_delay(sleeps: int = NOISE_SLEEPS, sleep_s: float = NOISE_SLEEP_S) -> SchedulingDelay:
    """Sleep ``sleeps`` times for ``sleep_s`` and measure the overshoot: on an
    idle machine tens of microseconds, on a busy one milliseconds."""
    over = []
    for _ in range(sleeps):
        t = time.monotonic_ns()
        time.sleep(sleep_s)
        over.append(max(0.0, (time.monotonic_ns() - t) / 1000 - sleep_s * 1e6))
    over.sort()
    return SchedulingDelay(
        sleep_us=sleep_s * 1e6,
        sleeps=sleeps,
        overshoot_p50_us=round(over[len(over) // 2], 1),
        overshoot_p99_us=round(over[min(len(over) - 1, int(len(over) * 0.99))], 1),
        overshoot_max_us=round(over[-1], 1),
    )


def noise_line(noise: SchedulingDelay) -> str:
    return (
        f"machine scheduling noise before the scenarios: a {noise['sleep_us'] / 1000:g} ms sleep overshot by "
        f"p50 {noise['overshoot_p50_us'] / 1000:.2f} / p99 {noise['overshoot_p99_us'] / 1000:.2f} / "
        f"max {noise['overshoot_max_us'] / 1000:.2f} ms ({noise['sleeps']} sleeps)"
    )
