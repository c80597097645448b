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
        self._offsets = schedule.traffic.offset_ns
        self._measured: dict[int, int] = {}

    def first_at(self, t_ns: int) -> int:
        """The first global message intended at or after ``t_ns``."""
        if self._offsets is not None:
            import numpy as np

            return int(np.searchsorted(self._offsets, t_ns - self.schedule.t0_ns, "left"))
        return self.schedule.first_at(t_ns)

    def before(self, slot: int, m: int) -> int:
        """The slot's messages among the global messages before ``m`` (its
        first seq at or after message ``m``: ``m = first_at(t)`` for a time)."""
        if slot >= len(self.by_slot):
            return 0
        seq = self.by_slot[slot]
        if isinstance(seq, range):
            # The even timetable (slot s sends s, s + n, s + 2n...): the count
            # in closed form.  bisect over a range takes ~0.15 us a step through
            # the sequence protocol (1.8 us for 3,000 messages a slot), and a
            # leave makes two calls per stream it hears.
            if m <= seq.start:
                return 0
            return min(len(seq), -((seq.start - m) // seq.step))
        return bisect_left(seq, m)

    def measured_from(self, slot: int) -> int:
        """The slot's first measured seq (past the warm-up)."""
        got = self._measured.get(slot)
        if got is None:
            got = self._measured[slot] = self.before(slot, self.schedule.warmup)
        return got


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
        after = seqs.first_at(now + 1)  # the first message intended strictly after now
        for sid in plan.heard_by(conn.spec.cid):
            tracker.expect_from(sid, seqs.before(plan.streams[sid].slot, after))

    def close(self, conn: Conn, leave_ns: int | None, sent: dict[int, int] | None = None) -> None:
        """Account ``conn``'s membership: it left at ``leave_ns`` (the
        harness sent its leave then), or stayed to the end of the run
        (``leave_ns`` None, ``sent``: stream id -> messages sent)."""
        tracker = conn.tracker
        if tracker is None:
            return
        self.closed += 1
        plan, seqs, live = self.plan, self.seqs, self.live
        cid = conn.spec.cid
        route = self.labelled.routes.get(cid, {})
        keys = self.labelled.keys
        faults = tracker.faults_by_sender
        m_hi = m_end = 0
        if leave_ns is not None:
            m_hi = seqs.first_at(leave_ns - self.grace_ns)
            m_end = seqs.first_at(leave_ns)
        for sid in plan.heard_by(cid):
            slot = plan.streams[sid].slot
            if sid not in live:
                hi = end = 0
            elif leave_ns is None:
                hi = end = (sent or {}).get(sid, 0)
            else:
                hi = seqs.before(slot, m_hi)
                end = seqs.before(slot, m_end)
            window = tracker.window(sid, hi, end, seqs.measured_from(slot))
            at = route.get(sid)
            label_window, label_counts = self._label(keys[at] if at is not None else keys[0])
            label_window.add(window)
            if window.lost or sid in faults:
                dup, reord, corrupt = faults.get(sid, (0, 0, 0))
                pair = IntegrityCounts(lost=window.lost, duplicated=dup, reordered=reord, corrupted=corrupt)
                self.integrity.lost += window.lost
                self.by_pair.setdefault((cid, sid), IntegrityCounts()).add(pair)
                label_counts.add(pair)
                if window.lost:
                    self._lost_in_intervals(tracker, sid, slot, hi)
        self.integrity.add(
            IntegrityCounts(duplicated=tracker.duplicated, reordered=tracker.reordered, corrupted=tracker.corrupted)
        )
        if faults:  # from streams it does not hear (strays), or damaged probes of no readable stream
            heard = set(plan.heard_by(cid))
            for sid, (dup, reord, corrupt) in faults.items():
                if sid not in heard:
                    pair = IntegrityCounts(duplicated=dup, reordered=reord, corrupted=corrupt)
                    self.by_pair.setdefault((cid, sid), IntegrityCounts()).add(pair)

    @property
    def window(self) -> Window:
        """Every membership's windows, summed over the labels."""
        out = Window()
        for label_window, _ in self.labels.values():
            out.add(label_window)
        return out

    def _label(self, key: str) -> tuple[Window, IntegrityCounts]:
        got = self.labels.get(key)
        if got is None:
            got = self.labels[key] = (Window(), IntegrityCounts())
        return got

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
