"""When in its period each Locust user sends: spread over the period, as the swarm's senders.

The swarm sends global message ``m`` at ``t0 + m / rate``: its senders take
turns at even gaps, so two probes never reach the server together unless the
rate says so.  Users that each picked a random phase would instead bunch up
now and then (with 100 users at 5 msg/s, several within one fan-out's
time), and the server's queueing behind such bunches is then in the Locust
figures but not in the swarm's, at the same load: measured here, 100 users x
5 msg/s, server pinned to one core, the fan-out p50 1.0 ms and p99 8-10 ms
with random phases against 0.43 and 3-4 ms for the swarm.

So by default (``--chat-phase spread``) the users of a process take phases
from the golden-ratio sequence, ``frac(k * 0.618...)`` of the period for the
``k``-th user the process starts: a low-discrepancy sequence, so any number
of users, added at any time (step loads, reconnects take a fresh slot), lies
nearly evenly over the period -- for 100 users no two are closer than half
the even gap, nor further apart than 1.32 of it -- without knowing the count
in advance.  Every user's schedule is on one grid of the process's monotonic
clock (its phase plus whole periods from 0), so users started at different
times still keep their places; a worker of a distributed run shifts its
grid by ``frac(index * (sqrt(2) - 1))`` of a period, so two workers on one
machine interleave rather than coincide.  ``--chat-phase random`` is the old
behaviour: a random phase per connection.
"""

from __future__ import annotations

import itertools
import os
import random

#: The golden ratio's fractional part: its multiples are the most evenly
#: spread sequence of points on a circle (the three-distance theorem).
GOLDEN = (5**0.5 - 1) / 2
#: Where a worker's grid starts, per worker index (irrational, unlike GOLDEN's
#: multiples, so the workers' points fall between each other's).
WORKER_SHIFT = 2**0.5 - 1
#: The choices of ``--chat-phase``.
SPREAD = "spread"
RANDOM = "random"
CHOICES = (SPREAD, RANDOM)


class Phases:
    """One process's phases (see the module docstring)."""

    def __init__(self, mode: str = SPREAD, worker_index: int = 0) -> None:
        if mode not in CHOICES:
            raise ValueError(f"phase must be one of {', '.join(CHOICES)}, not {mode!r}")
        self.mode = mode
        self.worker_index = worker_index
        self.pid = os.getpid()
        self._slots = itertools.count()

    def fraction(self) -> float:
        """The next user's phase as a fraction of its period, in [0, 1)."""
        if self.mode == RANDOM:
            return random.random()
        return (next(self._slots) * GOLDEN + self.worker_index * WORKER_SHIFT) % 1.0

    def first_send(self, period_ns: int, now_ns: int) -> int:
        """The intended time of a newly connected user's first probe: the
        first point of its phase's grid after ``now_ns``."""
        if period_ns <= 0:
            return now_ns
        phase = int(self.fraction() * period_ns)
        if self.mode == RANDOM:
            return now_ns + phase
        periods = -((phase - now_ns) // period_ns)  # ceil((now - phase) / period)
        return phase + periods * period_ns


_phases: Phases | None = None


def process_phases(mode: str, worker_index: int) -> Phases:
    """This process's phases (made at its first user; a forked
    ``--processes`` child makes its own)."""
    global _phases
    if _phases is None or _phases.pid != os.getpid():
        _phases = Phases(mode, worker_index)
    return _phases
