"""What the churned seats' connections were owed, lost and received: one
worker's accounting of membership over time (:mod:`bench.workload.membership`).

A **membership** is one connection of a churned seat, from the moment its
registration was confirmed to the moment its leave was sent (or the end of
the run).  Its boundaries in sequence numbers, per stream it hears:

* it is **owed** the messages intended strictly *after* its registration was
  confirmed (the **floor**: any such message reaches the server after the
  server had put it in the room, because the server confirmed the join
  before the harness saw the confirmation, and a message is never sent
  before its intended time); messages intended earlier may still arrive
  (they were in the server's hands when it joined): they are counted as
  **boundary** deliveries, neither owed nor faults;
* at its leave, the messages intended more than the **leave grace**
  (``--leave-grace``, :data:`bench.workload.membership.DEFAULT_LEAVE_GRACE_S`)
  before the leave was sent are owed; the ones intended in the grace before the
  leave may or may not have arrived (in flight when it left): those that
  did not are counted as ``at_leave``, not lost, and those that did as
  boundary deliveries.  Arrivals after the leave was sent are not read.

Within those bounds integrity is exact: a hole is lost, a repeat duplicated,
a late one reordered, per (seat, stream), in the seat's label.  A connection
is accounted the moment it leaves and then forgotten: a worker keeps no
history per connection, only these sums (its memory does not grow with the
number of connections churned).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence

from bench.measure.integrity import IntegrityCounts, IntegrityTracker, Window
from bench.measure.labelled import Labelled
from bench.swarm.connections import Conn
from bench.swarm.plan import Schedule
from bench.swarm.timeline import MessageTimes
from bench.workload import Plan


class Seqs:
    """The schedule per stream slot: how many of a slot's messages were
    intended before a moment (their sequence numbers count from 0)."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.by_slot: list[Sequence[int]] = schedule.slot_messages()
        offsets = schedule.traffic.offset_ns
        self._offsets = offsets

    def _first_at(self, t_ns: int) -> int:
        """The first global message intended at or after ``t_ns``."""
        if self._offsets is not None:
            import numpy as np

            return int(np.searchsorted(self._offsets, t_ns - self.schedule.t0_ns, "left"))
        return self.schedule.first_at(t_ns)

    def before(self, slot: int, t_ns: int) -> int:
        """The slot's messages intended before ``t_ns`` (= the first seq intended at or after it)."""
        if slot >= len(self.by_slot):
            return 0
        return bisect_left(self.by_slot[slot], self._first_at(t_ns))

    def after(self, slot: int, t_ns: int) -> int:
        """The first seq of the slot intended strictly after ``t_ns``."""
        return self.before(slot, t_ns + 1)

    def measured_from(self, slot: int) -> int:
        """The slot's first measured seq (past the warm-up)."""
        if slot >= len(self.by_slot):
            return 0
        return bisect_left(self.by_slot[slot], self.schedule.warmup)


class Memberships:
    """One worker's accounting of its churned seats' memberships (see the module docstring)."""

    def __init__(
        self, plan: Plan, labelled: Labelled, schedule: Schedule, times: MessageTimes | None, grace_s: float
    ) -> None:
        self.plan = plan
        self.labelled = labelled
        self.seqs = Seqs(schedule)
        self.times = times
        #: streams whose sender registered: the others send nothing and owe nothing
        self.live = frozenset(schedule.audience)
        self.grace_ns = int(grace_s * 1e9)
        self.window = Window()
        self.integrity = IntegrityCounts()
        #: label key -> (its memberships' windows, its integrity counters)
        self.labels: dict[str, tuple[Window, IntegrityCounts]] = {}
        self.by_pair: dict[tuple[int, int], IntegrityCounts] = {}
        self.lost_by_interval: Counter[int] = Counter()
        self.closed = 0  #: memberships accounted

    def opened(self, conn: Conn, now: int) -> None:
        """``conn`` (a churned seat's) registered at ``now``: it is owed each
        stream it hears from the first message intended after ``now``."""
        tracker = conn.tracker
        if tracker is None:
            return
        plan, seqs = self.plan, self.seqs
        for sid in plan.heard_by(conn.spec.cid):
            tracker.expect_from(sid, seqs.after(plan.streams[sid].slot, now))

    def close(self, conn: Conn, leave_ns: int | None, sent: dict[int, int] | None = None) -> None:
        """Account ``conn``'s membership: it left at ``leave_ns`` (the
        harness sent its leave then), or stayed to the end of the run
        (``leave_ns`` None, ``sent``: stream id -> messages sent)."""
        tracker = conn.tracker
        if tracker is None:
            return
        self.closed += 1
        plan, seqs = self.plan, self.seqs
        cid = conn.spec.cid
        route = self.labelled.routes.get(cid, {})
        keys = self.labelled.keys
        heard = plan.heard_by(cid)
        for sid in heard:
            slot = plan.streams[sid].slot
            if sid not in self.live:
                hi = end = 0
            elif leave_ns is None:
                hi = end = (sent or {}).get(sid, 0)
            else:
                hi = seqs.before(slot, leave_ns - self.grace_ns)
                end = seqs.before(slot, leave_ns)
            window = tracker.window(sid, hi, end, seqs.measured_from(slot))
            at = route.get(sid)
            key = keys[at] if at is not None else keys[0]
            label_window, label_counts = self._label(key)
            self.window.add(window)
            label_window.add(window)
            pair = self._pair(tracker, sid, window.lost)
            if pair.faults:
                self.by_pair.setdefault((cid, sid), IntegrityCounts()).add(pair)
                label_counts.add(pair)
            self._lost_in_intervals(tracker, sid, slot, hi)
        self.integrity.add(
            IntegrityCounts(duplicated=tracker.duplicated, reordered=tracker.reordered, corrupted=tracker.corrupted)
        )
        # faults from streams it does not hear (strays) and damaged probes of no readable stream
        heard_set = set(heard)
        for sid, (dup, reord, corrupt) in tracker.faults_by_sender.items():
            if sid not in heard_set:
                pair = IntegrityCounts(duplicated=dup, reordered=reord, corrupted=corrupt)
                self.by_pair.setdefault((cid, sid), IntegrityCounts()).add(pair)

    def _label(self, key: str) -> tuple[Window, IntegrityCounts]:
        got = self.labels.get(key)
        if got is None:
            got = self.labels[key] = (Window(), IntegrityCounts())
        return got

    def _pair(self, tracker: IntegrityTracker, sid: int, lost: int) -> IntegrityCounts:
        """One (seat, stream)'s counters of this membership; adds its loss to the worker's."""
        self.integrity.lost += lost
        dup, reord, corrupt = tracker.faults_by_sender.get(sid, (0, 0, 0))
        return IntegrityCounts(lost=lost, duplicated=dup, reordered=reord, corrupted=corrupt)

    def _lost_in_intervals(self, tracker: IntegrityTracker, sid: int, slot: int, hi: int) -> None:
        """The lost messages of ``sid``, by the interval each was intended in."""
        times = self.times
        if times is None:
            return
        singles, ranges = tracker.missing_between(sid, tracker.floor(sid), hi)
        for seq in singles:
            self.lost_by_interval[times.interval_of(slot, seq)] += 1
        for r in ranges:
            times.count(slot, r.start, r.stop, self.lost_by_interval)
