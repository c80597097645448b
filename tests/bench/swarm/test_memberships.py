"""A churn run's accounting against a brute-force count: memberships that
join and leave at random times, arrivals with losses, repeats and late
ones; what :class:`bench.swarm.memberships.Memberships` says each was owed,
lost, left in flight and received, against the definitions applied message
by message."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.measure.integrity import IntegrityTracker, Window
from bench.measure.intervals import IntervalAxis
from bench.measure.labelled import Labelled
from bench.swarm.memberships import Memberships
from bench.swarm.plan import Schedule
from bench.swarm.timeline import MessageTimes
from bench.workload import Client, labels, one_room
from bench.workload.membership import Churn, Membership

T0 = 10_000_000_000
MS = 1_000_000
RATE = 1000.0  # one message per ms, streams 0 and 1 in turn
TOTAL = 400
WARMUP = 40
SENDERS = (0, 1)
SEATS = (2, 3, 4, 5)
GRACE_MS = 25


def _setup() -> tuple[Any, Schedule, Labelled]:
    clients = [Client(cid, f"c{cid}", receives=True) for cid in range(6)]
    plan = one_room(clients, {0: 0, 1: 1})
    membership = Membership(Churn(rate=1.0), SEATS)
    from dataclasses import replace

    plan = replace(plan, membership=membership)
    schedule = Schedule(t0_ns=T0, rate=RATE, total=TOTAL, senders=2, warmup=WARMUP, audience={0: 1, 1: 1})
    keys, routes = labels.routes(plan, list(range(6)))
    return plan, schedule, Labelled(keys, routes)


def intended_ns(sid: int, seq: int) -> int:
    """Stream ``sid`` (slot sid) sends message m = seq * 2 + sid at T0 + m ms."""
    return T0 + (seq * 2 + sid) * MS


@dataclass
class Expected:
    window: Window
    lost_by_interval: Counter[int]
    duplicated: int = 0
    reordered: int = 0


def brute_force(memberships: list[tuple[int, int | None, list[tuple[int, int]]]], axis: IntervalAxis) -> Expected:
    """The definitions, message by message (docs/results.md, Churn and storms)."""
    out = Expected(Window(), Counter())
    for join_ms, leave_ms, arrivals in memberships:
        join_ns = T0 + join_ms * MS
        for sid in SENDERS:
            seqs = range(TOTAL // 2)
            got = [seq for s, seq in arrivals if s == sid]
            seen: set[int] = set()
            highest = -1
            for seq in got:
                if seq in seen:
                    out.duplicated += 1
                    continue
                if seq < highest:
                    out.reordered += 1
                seen.add(seq)
                highest = max(highest, seq)
            owed = [q for q in seqs if intended_ns(sid, q) > join_ns]
            if leave_ms is None:
                in_flight: list[int] = []
            else:
                leave_ns = T0 + leave_ms * MS
                in_flight = [q for q in owed if leave_ns - GRACE_MS * MS <= intended_ns(sid, q) < leave_ns]
                owed = [q for q in owed if intended_ns(sid, q) < leave_ns - GRACE_MS * MS]
            lost = [q for q in owed if q not in seen]
            measured = [q for q in owed if q * 2 + sid >= WARMUP]
            out.window.add(
                Window(
                    owed=len(owed),
                    lost=len(lost),
                    at_leave=sum(1 for q in in_flight if q not in seen),
                    arrived=len(seen),
                    owed_measured=len(measured),
                    lost_measured=sum(1 for q in measured if q not in seen),
                    arrived_measured=sum(1 for q in seen if q * 2 + sid >= WARMUP),
                )
            )
            for q in lost:
                out.lost_by_interval[axis.index(intended_ns(sid, q))] += 1
    return out


arrival = st.tuples(st.sampled_from(SENDERS), st.integers(min_value=0, max_value=TOTAL // 2 - 1))
membership = st.tuples(
    st.integers(min_value=0, max_value=350),  # joined (ms after t0)
    st.one_of(st.none(), st.integers(min_value=0, max_value=450)),  # left after joining, or stayed
    st.lists(arrival, max_size=60),
)


@settings(max_examples=200, deadline=None)
@given(memberships=st.lists(membership, min_size=1, max_size=5), in_order=st.booleans())
def test_memberships_count_what_a_brute_force_count_says(
    memberships: list[tuple[int, int | None, list[tuple[int, int]]]], in_order: bool
) -> None:
    plan, schedule, labelled = _setup()
    axis = IntervalAxis.of(T0, 0.05)
    book = Memberships(plan, labelled, schedule, MessageTimes(schedule, axis), GRACE_MS / 1000)
    cases = []
    for i, (join_ms, leave_ms, arrivals) in enumerate(memberships):
        leave = None if leave_ms is None else join_ms + leave_ms
        if in_order:  # what a working server does: each stream's messages from the join on, in order
            arrivals = sorted(arrivals, key=lambda a: (a[0], a[1]))
        cases.append((join_ms, leave, arrivals))
        conn = SimpleNamespace(spec=SimpleNamespace(cid=SEATS[i % len(SEATS)]), tracker=IntegrityTracker())
        book.opened(conn, T0 + join_ms * MS)  # type: ignore[arg-type]
        for sid, seq in arrivals:
            conn.tracker.observe(sid, seq)
        if leave is None:
            book.close(conn, None, {0: TOTAL // 2, 1: TOTAL // 2})  # type: ignore[arg-type]
        else:
            book.close(conn, T0 + leave * MS)  # type: ignore[arg-type]
    expected = brute_force(cases, axis)
    assert book.window == expected.window
    assert book.integrity.lost == expected.window.lost
    assert (book.integrity.duplicated, book.integrity.reordered) == (expected.duplicated, expected.reordered)
    assert +book.lost_by_interval == +expected.lost_by_interval
    assert sum(c.lost for c in book.by_pair.values()) == expected.window.lost
    # every label's share adds up to the whole (one label here: membership=churned)
    assert list(book.labels) == ["membership=churned"]
    assert book.closed == len(memberships)


@given(st.integers(1, 50), st.integers(0, 49), st.integers(0, 2000), st.integers(-5, 2100))
def test_seqs_before_counts_a_slots_messages_as_bisect_does(senders: int, slot: int, total: int, m: int) -> None:
    from bisect import bisect_left

    from bench.swarm.memberships import Seqs

    schedule = Schedule(t0_ns=T0, rate=RATE, total=total, senders=senders, warmup=0, audience={})
    seqs = Seqs(schedule)
    expected = bisect_left(list(range(slot, total, senders)), m) if slot < senders else 0
    assert seqs.before(slot, m) == expected
