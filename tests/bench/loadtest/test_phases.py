"""Where in its period each Locust user sends (``--chat-phase``,
:mod:`bench.loadtest.phases`): sans-IO checks of the phases, and a real
Locust run whose probes, read by a listener on the real server, lie spread."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.loadtest.phases import RANDOM, SPREAD, Phases
from bench.measure.probe import is_probe, parse_probe
from bench.wire.client import WireClient
from server import protocol
from tests.bench.loadtest.test_run import chat_server, headless, run_locust

__all__ = ["chat_server"]  # the fixture, shared with test_run

PERIOD = 1_000_000_000


def gaps(fractions: list[float]) -> list[float]:
    """The gaps between neighbouring points on the circle [0, 1)."""
    points = sorted(fractions)
    return [b - a for a, b in zip(points, [*points[1:], points[0] + 1.0], strict=True)]


@pytest.mark.parametrize("users", [2, 7, 20, 100, 333, 1000])
def test_spread_phases_are_nearly_even_for_any_number_of_users(users: int) -> None:
    phases = Phases(SPREAD)
    between = gaps([phases.fraction() for _ in range(users)])
    even = 1.0 / users
    assert min(between) >= 0.38 * even  # random phases: the smallest gap of 100 is ~1% of even
    assert max(between) <= 2.62 * even


def test_users_started_at_different_times_keep_their_places_on_one_grid() -> None:
    phases = Phases(SPREAD)
    firsts = [phases.first_send(PERIOD, now) for now in (5, 3 * PERIOD + 17, 10 * PERIOD - 1, 7 * PERIOD)]
    fresh = Phases(SPREAD)
    expected = [int(fresh.fraction() * PERIOD) for _ in firsts]
    # Each first send is the user's phase on the grid of whole periods from 0, after "now".
    assert [first % PERIOD for first in firsts] == expected
    for now, first in zip((5, 3 * PERIOD + 17, 10 * PERIOD - 1, 7 * PERIOD), firsts, strict=True):
        assert now <= first < now + PERIOD


def test_workers_interleave_and_random_is_random() -> None:
    one, two = Phases(SPREAD, 0), Phases(SPREAD, 1)
    shift = (two.fraction() - one.fraction()) % 1.0
    assert 0.3 < shift < 0.5  # the second worker's grid sits between the first's points
    randoms = Phases(RANDOM)
    fractions = {randoms.fraction() for _ in range(50)}
    assert len(fractions) == 50 and all(0.0 <= f < 1.0 for f in fractions)
    assert randoms.first_send(PERIOD, 10) - 10 < PERIOD
    with pytest.raises(ValueError, match="spread, random"):
        Phases("even")


def test_a_locust_run_sends_its_users_probes_spread_over_the_period(tmp_path: Path, chat_server: int) -> None:
    """20 users at 2 msg/s: a listener on the server reads every probe and
    its intended time; each sender's phase (intended time modulo the period)
    lies nearly evenly among the others'.  With random phases, the chance
    that no two of 20 are closer than 0.38 of the even gap is about 1e-4."""
    listener = WireClient.connect(("127.0.0.1", chat_server), "phase-listener")
    users, rate = 20, 2.0
    try:
        code, output = run_locust(
            tmp_path,
            "spread",
            [*headless(chat_server, tmp_path / "spread", users=users, seconds=4), "--chat-rate", "2"],
        )
        assert code == 0, output[-3000:]
        phase_of: dict[int, float] = {}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            lines = listener.take_lines() or [listener.next_line(deadline)]
            for line in lines:
                event = protocol.parse_server_line(protocol.decode_text(line))
                if isinstance(event, protocol.Message) and is_probe(event.text):
                    probe = parse_probe(event.text)
                    phase_of[probe.sender] = (probe.intended_ns % int(1e9 / rate)) / (1e9 / rate)
            if len(phase_of) == users:
                break
    finally:
        listener.close()
    assert len(phase_of) == users
    assert min(gaps(list(phase_of.values()))) >= 0.38 / users
