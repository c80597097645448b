"""Membership over time: who is in the run when (churn, storms, connect probes).

A run's plan (:mod:`bench.workload.plan`) says who is in which room: the
**audience** of every stream.  This module adds *when*: the plan's receiving
clients are **seats**, and a seat's connection may leave during the run and
be replaced -- by the same name reconnecting or by a new name in the same
seat (the same rooms, so the same streams and labels).  Who is a member
*when* is data in the plan (:class:`Membership`), drawn from the run's seed
like every other part of the workload:

* **churn** (``--churn RATE``): from the end of the warm-up on, one seat
  leaves every ``1 / RATE`` seconds and is replaced at once; the seats are
  taken in a seeded random order, each once per round, so a seat leaves
  again only after every other churnable seat did;
* a **storm** (``--storm PCT@T``): at ``T`` seconds on the run's time axis
  (0: the first intended send) ``PCT`` % of the churnable seats leave at
  once and reconnect with the ``--reconnect`` policy;
* **probes** (the connect-rate study, :mod:`bench.studies.connectrate`):
  connections that open at a fixed rate, register and leave at once; they
  hold no seat and are owed nothing.

A leave is a protocol **quit** (our ``/quit``, IRC ``QUIT``, MQTT
``DISCONNECT``; a clean close where the protocol has none) or an abrupt
**reset** (TCP RST), or a seeded mix of both (``--churn-mode``).

Only receivers that do not send are churnable: the senders stay, so every
stream is sent for the whole run and a seat's absence is the only thing
that changes what it is owed.  What a seat is owed while it is in, and what
its absences leave out, is the swarm's to measure
(:mod:`bench.swarm.churn`): a connection's membership starts when the server
confirmed its registration and ends when its leave was sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from bench.workload.model import WorkloadError

#: How a connection leaves (``--churn-mode``).
CHURN_MODES = ("quit", "reset", "mixed")
#: Who replaces a seat's connection (``--churn-names``): a new name each time, or the same one.
NAME_MODES = ("new", "same")
#: How a dropped connection comes back (``--reconnect``).
RECONNECT_POLICIES = ("immediate", "backoff")

#: numpy seeds per purpose (with the workload's seed), apart from the
#: workload's own (bench.workload.traffic uses 1-3).
_ORDER, _STORM, _MODES = 11, 12, 13

#: Messages intended this long before a connection's leave are owed to it;
#: those intended later may still have been in flight when it left (the
#: server's latency plus the harness's read).  250 ms is well above a working
#: server's p99.9 on loopback (a few ms), yet short beside a seat's time in
#: the room at the churn rates measured (seconds): a server slower than that
#: shows the messages as lost to the leaving connections.
DEFAULT_LEAVE_GRACE_S = 0.25
#: A longer grace would leave most of a churned connection's time unowed.
MAX_LEAVE_GRACE_S = 10.0

#: Default jittered exponential backoff: the first retry within 100 ms, doubling up to 5 s.
DEFAULT_BACKOFF_BASE_S = 0.1
DEFAULT_BACKOFF_CAP_S = 5.0


@dataclass(frozen=True)
class Churn:
    """The options of membership over time (all off by default)."""

    rate: float = 0.0  #: --churn: seats per second that leave and are replaced
    mode: str = "quit"  #: --churn-mode: quit, reset or mixed (churn and storm leaves)
    names: str = "new"  #: --churn-names: a replacement's name: new (NAMErK) or the same
    storm_percent: float = 0.0  #: --storm PCT@T: the share of the churnable seats dropped at once
    storm_at_s: float = 0.0  #: ... at T seconds on the run's time axis
    reconnect: str = "immediate"  #: --reconnect: how a dropped connection comes back
    backoff_base_s: float = DEFAULT_BACKOFF_BASE_S  #: --backoff BASE,CAP (jittered exponential)
    backoff_cap_s: float = DEFAULT_BACKOFF_CAP_S
    probe_rate: float = 0.0  #: connect-and-leave connections per second (the connect-rate study)
    #: --leave-grace: messages intended this long before a leave are owed to the
    #: leaving connection; later ones were possibly in flight (bench.swarm.memberships)
    leave_grace_s: float = DEFAULT_LEAVE_GRACE_S
    #: --storm-node: a cluster's storm strikes this node's seats only, and they
    #: reconnect to the next node (as a client behind a balancer avoids the one
    #: that dropped it); None: every node's
    storm_node: int | None = None

    def __post_init__(self) -> None:
        if self.rate < 0 or not math.isfinite(self.rate):
            raise WorkloadError("--churn must be a rate >= 0 (seats per second)")
        if self.mode not in CHURN_MODES:
            raise WorkloadError(f"--churn-mode is one of {', '.join(CHURN_MODES)}")
        if self.names not in NAME_MODES:
            raise WorkloadError(f"--churn-names is one of {', '.join(NAME_MODES)}")
        if self.reconnect not in RECONNECT_POLICIES:
            raise WorkloadError(f"--reconnect is one of {', '.join(RECONNECT_POLICIES)}")
        if not 0 <= self.storm_percent <= 100:
            raise WorkloadError("--storm's share is 0-100 %")
        if self.storm_at_s < 0:
            raise WorkloadError("--storm's time is >= 0 s")
        if not 0 < self.backoff_base_s <= self.backoff_cap_s:
            raise WorkloadError("--backoff BASE,CAP needs 0 < BASE <= CAP (seconds)")
        if self.probe_rate < 0:
            raise WorkloadError("the probe rate must be >= 0")
        if self.storm_node is not None and self.storm_node < 0:
            raise WorkloadError("--storm-node is a node's index, from 0")
        if not 0 <= self.leave_grace_s <= MAX_LEAVE_GRACE_S:
            raise WorkloadError(f"--leave-grace is 0-{MAX_LEAVE_GRACE_S:g} s")

    @property
    def storm(self) -> bool:
        return self.storm_percent > 0

    @property
    def active(self) -> bool:
        """Anything changes membership during the run."""
        return self.rate > 0 or self.storm or self.probe_rate > 0

    def describe(self) -> str:
        """One line, e.g. ``churn 100/s (quit, new names); storm 50% at 10 s (reconnect immediate)``."""
        parts = []
        if self.rate > 0:
            parts.append(f"churn {self.rate:g}/s ({self.mode}, {self.names} names)")
        if self.storm:
            policy = self.reconnect
            if policy == "backoff":
                policy += f" {self.backoff_base_s:g}-{self.backoff_cap_s:g} s"
            where = f" of node {self.storm_node}" if self.storm_node is not None else ""
            parts.append(
                f"storm {self.storm_percent:g}%{where} at {self.storm_at_s:g} s ({self.mode}, reconnect {policy})"
            )
        if self.probe_rate > 0:
            parts.append(f"probes {self.probe_rate:g}/s")
        return "; ".join(parts) or "none"


def parse_storm(text: str) -> tuple[float, float]:
    """``50@10``, ``50%@10``, ``50%@10s`` -> (50.0, 10.0)."""
    pct, sep, at = text.partition("@")
    try:
        if not sep:
            raise ValueError
        share = float(pct.strip().removesuffix("%"))
        when = float(at.strip().removesuffix("s"))
    except ValueError:
        raise WorkloadError(f"--storm is PCT@T, e.g. 50@10 (50% of the connections at 10 s); got {text!r}") from None
    if not 0 < share <= 100 or when < 0 or not math.isfinite(when):
        raise WorkloadError(f"--storm's PCT is 0-100 and its T >= 0 s; got {text!r}")
    return share, when


def parse_backoff(text: str) -> tuple[float, float]:
    """``0.1,5`` -> (0.1, 5.0): the first retry's bound and the cap, in seconds."""
    base, sep, cap = text.partition(",")
    try:
        if not sep:
            raise ValueError
        low, high = float(base), float(cap)
    except ValueError:
        raise WorkloadError(f"--backoff is BASE,CAP in seconds, e.g. 0.1,5; got {text!r}") from None
    if not 0 < low <= high or not math.isfinite(high):
        raise WorkloadError(f"--backoff needs 0 < BASE <= CAP; got {text!r}")
    return low, high


@dataclass(frozen=True, slots=True)
class Leave:
    """One planned leave: seat ``seat`` leaves at ``at_s`` (seconds on the
    run's time axis) by ``mode`` (quit or reset), and is replaced at once."""

    index: int  #: the event's number (0, 1, ...): churn events in time order
    at_s: float
    seat: int
    mode: str


@dataclass(frozen=True)
class Membership:
    """Who is a member when (see the module docstring): the churnable seats,
    the churn's events (drawn lazily, one round of the seats at a time), the
    storm's seats, the probes' rate."""

    churn: Churn
    #: the churnable seats: receivers that do not send, by client id
    seats: tuple[int, ...]
    seed: int = 1
    #: churn begins here (seconds on the time axis: the end of the warm-up)
    start_s: float = 0.0
    #: the seats the storm takes its share of (empty: every seat; --storm-node: that node's)
    storm_pool: tuple[int, ...] = ()

    @cached_property
    def storm_seats(self) -> tuple[int, ...]:
        """The seats the storm drops: the first PCT % of a seeded order of the seats."""
        pool = set(self.storm_pool or self.seats)
        if not self.churn.storm or not pool:
            return ()
        count = min(len(pool), max(1, round(len(pool) * self.churn.storm_percent / 100)))
        order = [seat for seat in self._permutation(_STORM, 0) if seat in pool]
        return tuple(sorted(order[:count]))

    @cached_property
    def churned(self) -> frozenset[int]:
        """Seats that leave at some point (by churn or the storm): the
        ``membership=churned`` label; the others are ``steady``."""
        out = set(self.storm_seats)
        if self.churn.rate > 0:
            out.update(self.seats)
        return frozenset(out)

    def steady(self, cid: int) -> bool:
        return cid not in self.churned

    def events(self, until_s: float) -> Iterator[Leave]:
        """The churn's leaves before ``until_s``, in time order: event k at
        ``start_s + k / rate``, its seat the (k mod n)-th of round k // n's
        seeded order, its mode for ``mixed`` a seeded draw."""
        rate = self.churn.rate
        n = len(self.seats)
        if rate <= 0 or n == 0:
            return
        k = 0
        while True:
            at = self.start_s + k / rate
            if at >= until_s:
                return
            cycle, i = divmod(k, n)
            if i == 0:
                order = self._permutation(_ORDER, cycle)
                modes = self._modes(cycle, n)
            yield Leave(k, at, order[i], modes[i])
            k += 1

    def storm_mode(self, seat: int) -> str:
        """How ``seat`` leaves in the storm (``mixed``: a seeded draw per seat)."""
        if self.churn.mode != "mixed":
            return self.churn.mode
        modes = self._modes(-1, len(self.seats))
        return modes[self.seats.index(seat)]

    def _permutation(self, purpose: int, cycle: int) -> list[int]:
        import numpy as np

        rng = np.random.default_rng([self.seed, purpose, cycle + 1])
        return [self.seats[i] for i in rng.permutation(len(self.seats)).tolist()]

    def _modes(self, cycle: int, n: int) -> list[str]:
        mode = self.churn.mode
        if mode != "mixed":
            return [mode] * n
        import numpy as np

        rng = np.random.default_rng([self.seed, _MODES, cycle + 2])
        return ["reset" if bit else "quit" for bit in rng.integers(0, 2, size=n).tolist()]
